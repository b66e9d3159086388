//! Interoperability with real MQTT clients: the Debian `mosquitto_pub`/`mosquitto_sub` tools and
//! Python paho-mqtt 2.x (scripts under `tests/interop/`), run against the real midge binary.
//!
//! Every client runs as a child process under a hard time limit; nothing can hang. A missing
//! client tool fails the test (run `scripts/test.sh`, which installs them) rather than skipping.

mod common;
use common::*;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// mosquitto_sub's exit status when `-W` expires (MOSQ_ERR_TIMEOUT).
const SUB_TIMED_OUT: i32 = 27;

/// Hard limit for one client process; well above any `-W` used below.
fn limit() -> Duration {
    patience() + Duration::from_secs(10)
}

/// What a finished client printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// A client process running in the background, its output collected by reader threads.
struct Bg {
    what: String,
    child: Child,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

impl Bg {
    fn spawn(cmd: &mut Command) -> Bg {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}; run scripts/test.sh"));
        let out = Some(reader(child.stdout.take().unwrap()));
        let err = Some(reader(child.stderr.take().unwrap()));
        Bg {
            what,
            child,
            out,
            err,
        }
    }

    /// Waits at most `limit` for the process to exit; kills it and fails the test otherwise.
    fn finish(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for client") {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stdout = self.out.take().unwrap().join().unwrap();
                let stderr = self.err.take().unwrap().join().unwrap();
                panic!(
                    "{} still running after {limit:?}; killed.\nstdout: {:?}\nstderr: {:?}",
                    self.what,
                    String::from_utf8_lossy(&stdout),
                    String::from_utf8_lossy(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.out.take().unwrap().join().unwrap();
        let stderr = self.err.take().unwrap().join().unwrap();
        Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Like `finish`, and the process must exit successfully; returns its stdout.
    fn finish_ok(self) -> String {
        let what = self.what.clone();
        let o = self.finish(limit());
        assert!(
            o.status.success(),
            "{what} failed with {}\nstdout: {:?}\nstderr: {:?}",
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        // Only reached with the child still running when a test fails part-way.
        if self.out.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a client to completion within `limit()`.
fn run(cmd: &mut Command) -> Output {
    Bg::spawn(cmd).finish(limit())
}

/// Runs a client that must succeed within `limit()`; returns its stdout.
fn run_ok(cmd: &mut Command) -> String {
    Bg::spawn(cmd).finish_ok()
}

fn need_mosquitto_clients() {
    for tool in ["mosquitto_pub", "mosquitto_sub"] {
        assert!(
            have(tool),
            "{tool} is not installed: run scripts/test.sh, which installs mosquitto-clients"
        );
    }
}

fn need_paho() {
    let ok = have("python3")
        && Command::new("python3")
            .args([
                "-c",
                "import paho.mqtt.client as m; assert hasattr(m, 'CallbackAPIVersion')",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    assert!(
        ok,
        "python3 with paho-mqtt 2.x is not available: run scripts/test.sh, which installs it"
    );
}

/// A broker that accepts anonymous clients (mosquitto 2.0 refuses them once a listener is set).
fn broker() -> Midge {
    Midge::start("allow_anonymous true\n")
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT` followed by `args`.
fn mpub(m: &Midge, args: &[&str]) -> Command {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-p", &m.port.to_string()])
        .args(args);
    c
}

/// `mosquitto_sub -h 127.0.0.1 -p PORT` followed by `args`.
fn msub(m: &Midge, args: &[&str]) -> Command {
    let mut c = Command::new("mosquitto_sub");
    c.args(["-h", "127.0.0.1", "-p", &m.port.to_string()])
        .args(args);
    c
}

/// Waits until some log line satisfies `pred`; fails with the log otherwise.
fn wait_log_where(m: &Midge, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + patience();
    loop {
        let text = m.log_text();
        if text.lines().any(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker never logged {what}; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the broker has processed client `id`'s SUBSCRIBE to `filter`. Midge logs each
/// subscription at debug level as "<id> <qos> <filter>", as mosquitto does; once that line is
/// written the subscription is in place, so anything published afterwards reaches it.
fn wait_subscribed(m: &Midge, id: &str, filter: &str) {
    let head = format!(": {id} ");
    let tail = format!(" {filter}");
    wait_log_where(m, &format!("the subscription of {id} to {filter}"), |l| {
        l.contains(&head) && l.ends_with(&tail)
    });
}

/// Waits until the broker has seen client `id` leave, so all it sent has been processed.
fn wait_gone(m: &Midge, id: &str) {
    let needle = format!("Client {id} disconnected.");
    assert!(
        m.wait_log(&needle).is_some(),
        "broker never logged {needle:?}; log:\n{}",
        m.log_text()
    );
}

/// The path of a helper script in tests/interop/.
fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(name)
}

/// Runs a paho script against the broker and expects it to print exactly "OK".
fn run_paho(m: &Midge, name: &str) {
    need_paho();
    let path = script(name);
    let o = run(Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&path)
        .arg("127.0.0.1")
        .arg(m.port.to_string()));
    assert!(
        o.status.success() && o.stdout == "OK\n",
        "{name} failed ({})\nstdout: {:?}\nstderr: {}\nbroker log:\n{}",
        o.status,
        o.stdout,
        o.stderr,
        m.log_text()
    );
}

/// Seed walkthrough 1: a message published with mosquitto_pub reaches a mosquitto_sub that
/// subscribed to the same topic beforehand, byte for byte.
#[test]
fn walkthrough_hello_world() {
    need_mosquitto_clients();
    let m = broker();
    let sub = Bg::spawn(&mut msub(
        &m,
        &[
            "-i",
            "chat-sub",
            "-t",
            "cstutoring/chatroom",
            "-C",
            "1",
            "-W",
            "10",
        ],
    ));
    wait_subscribed(&m, "chat-sub", "cstutoring/chatroom");
    run_ok(&mut mpub(
        &m,
        &["-t", "cstutoring/chatroom", "-m", "Hello world"],
    ));
    assert_eq!(sub.finish_ok(), "Hello world\n");
}

/// Seed walkthrough 2: two messages published one after the other arrive at the subscriber in
/// the order they were sent.
#[test]
fn walkthrough_lights_on_off() {
    need_mosquitto_clients();
    let m = broker();
    let topic = "home/lights/sitting_room";
    let sub = Bg::spawn(&mut msub(
        &m,
        &["-i", "lights-sub", "-t", topic, "-C", "2", "-W", "10"],
    ));
    wait_subscribed(&m, "lights-sub", topic);
    run_ok(&mut mpub(&m, &["-i", "lights-on", "-t", topic, "-m", "ON"]));
    wait_gone(&m, "lights-on");
    run_ok(&mut mpub(
        &m,
        &["-i", "lights-off", "-t", topic, "-m", "OFF"],
    ));
    assert_eq!(sub.finish_ok(), "ON\nOFF\n");
}

/// With `allow_anonymous false` and no password file, clients are refused with the CONNACK
/// code mosquitto_pub reports as "not authorised", with or without a username and password.
#[test]
fn refused_login_is_reported_as_not_authorised() {
    need_mosquitto_clients();
    let m = Midge::start("allow_anonymous false\n");
    for extra in [&[][..], &["-u", "bob", "-P", "secret"][..]] {
        let mut args = vec!["-t", "a", "-m", "b"];
        args.extend_from_slice(extra);
        let o = run(&mut mpub(&m, &args));
        assert!(
            !o.status.success(),
            "mosquitto_pub {args:?} succeeded against allow_anonymous false"
        );
        assert!(
            o.stderr.contains("Connection Refused: not authorised."),
            "mosquitto_pub {args:?} stderr: {:?}",
            o.stderr
        );
    }
    let log = m.log_text();
    assert!(
        !log.contains("New client connected"),
        "a refused client was logged as connected:\n{log}"
    );
}

/// A retained message is delivered to later subscribers (with the topic, under `-v`), and an
/// empty retained publish deletes it so a later subscriber receives nothing.
#[test]
fn retained_message_set_and_cleared() {
    need_mosquitto_clients();
    let m = broker();
    run_ok(&mut mpub(
        &m,
        &["-r", "-q", "1", "-t", "home/status", "-m", "online"],
    ));
    let out = run_ok(&mut msub(
        &m,
        &["-t", "home/#", "-C", "1", "-v", "-W", "10"],
    ));
    assert_eq!(out, "home/status online\n");

    run_ok(&mut mpub(
        &m,
        &["-i", "clearer", "-r", "-n", "-t", "home/status"],
    ));
    wait_gone(&m, "clearer");
    let o = run(&mut msub(&m, &["-t", "home/#", "-W", "2", "-v"]));
    assert_eq!(
        o.status.code(),
        Some(SUB_TIMED_OUT),
        "mosquitto_sub should time out with nothing to print; stderr: {:?}",
        o.stderr
    );
    assert_eq!(o.stdout, "", "a deleted retained message was delivered");
}

/// Messages published at QoS 0, 1 and 2 all reach a QoS 2 subscriber, once each and in order.
#[test]
fn qos_0_1_2_with_mosquitto_clients() {
    need_mosquitto_clients();
    let m = broker();
    let sub = Bg::spawn(&mut msub(
        &m,
        &[
            "-i", "qos-sub", "-q", "2", "-t", "qos/t", "-C", "3", "-W", "10",
        ],
    ));
    wait_subscribed(&m, "qos-sub", "qos/t");
    for q in ["0", "1", "2"] {
        let id = format!("qos-pub-{q}");
        let msg = format!("message at qos {q}");
        run_ok(&mut mpub(
            &m,
            &["-i", &id, "-q", q, "-t", "qos/t", "-m", &msg],
        ));
        wait_gone(&m, &id);
    }
    assert_eq!(
        sub.finish_ok(),
        "message at qos 0\nmessage at qos 1\nmessage at qos 2\n"
    );
}

/// A clean-session-off (`-c`) subscriber that goes away gets the QoS 1 messages published in
/// its absence, in order, when it reconnects with the same client id.
#[test]
fn persistent_session_with_mosquitto_clients() {
    need_mosquitto_clients();
    let m = broker();
    run_ok(&mut msub(
        &m,
        &["-c", "-i", "durable", "-q", "1", "-t", "queue/t", "-E"],
    ));
    wait_gone(&m, "durable");
    for i in 1..=3 {
        run_ok(&mut mpub(
            &m,
            &["-q", "1", "-t", "queue/t", "-m", &format!("queued {i}")],
        ));
    }
    let out = run_ok(&mut msub(
        &m,
        &[
            "-c", "-i", "durable", "-q", "1", "-t", "queue/t", "-C", "3", "-W", "10",
        ],
    ));
    assert_eq!(out, "queued 1\nqueued 2\nqueued 3\n");
    m.expect_log(" as durable (p2, c0, k60).");
}

/// An MQTT 3.1 (MQIsdp) publisher and an MQTT 3.1.1 subscriber interoperate, and the broker
/// logs the 3.1 client as protocol p1 like mosquitto does.
#[test]
fn mqtt31_publisher_to_mqtt311_subscriber() {
    need_mosquitto_clients();
    let m = broker();
    let sub = Bg::spawn(&mut msub(
        &m,
        &["-i", "sub311", "-t", "v/t", "-C", "1", "-W", "10"],
    ));
    wait_subscribed(&m, "sub311", "v/t");
    run_ok(&mut mpub(
        &m,
        &[
            "-V", "mqttv31", "-i", "pub31", "-q", "1", "-t", "v/t", "-m", "from 3.1",
        ],
    ));
    assert_eq!(sub.finish_ok(), "from 3.1\n");
    // The broker wrote these lines before it delivered the message, but the test reads its
    // log through a pipe and a thread: wait for them rather than read the log once.
    m.expect_log(" as pub31 (p1, c1,");
    m.expect_log(" as sub311 (p2, c1,");
}

/// paho-mqtt 2.x over MQTT 3.1.1: 10 messages at each of QoS 0/1/2 reach QoS 1 and QoS 2
/// subscribers in order with the right delivered QoS, a retained message reaches a later
/// subscriber with RETAIN set, and a will is published when a client's socket drops without
/// DISCONNECT (and not after a clean DISCONNECT).
#[test]
fn paho_roundtrip() {
    let m = broker();
    run_paho(&m, "paho_roundtrip.py");
    m.expect_log("Client paho-will closed its connection.");
}

/// paho-mqtt 2.x persistent session: a clean_session=False client that subscribed and left gets,
/// on reconnecting, session present in CONNACK and the QoS 1 and 2 messages queued meanwhile,
/// in order; a clean_session=True connection discards the session.
#[test]
fn paho_persistent_session() {
    let m = broker();
    run_paho(&m, "paho_session.py");
}
