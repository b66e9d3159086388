//! Real WebSocket clients against the real binary: MQTT.js under node (MQTT 3.1.1 and 5.0),
//! paho-mqtt with `transport="websockets"`, and headless Chromium loading a page from
//! `http_dir` that talks to `mosquitto_pub`/`mosquitto_sub` over TCP through midge.
//!
//! MQTT.js comes from `tests/js` (`npm ci`, which scripts/test.sh runs); Chromium and the
//! mosquitto clients from Debian's packages (scripts/test.sh installs them when missing).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

fn need_mqttjs() -> PathBuf {
    let dist = js_dir().join("node_modules/mqtt/dist/mqtt.min.js");
    assert!(
        have("node") && dist.exists(),
        "node and MQTT.js are needed: run scripts/test.sh, which runs `npm ci` in tests/js"
    );
    dist
}

/// Runs `cmd` to completion within `patience()` (killed after), with its output.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start client");
    let deadline = Instant::now() + patience() * 3;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ports midge opened, in the order of its listeners.
fn ports(m: &Midge, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + patience();
    loop {
        let ports: Vec<u16> = m
            .log_text()
            .lines()
            .filter_map(|l| l.split("Opening ipv4 listen socket on port ").nth(1))
            .filter_map(|p| p.trim_end_matches('.').parse().ok())
            .collect();
        if ports.len() >= n || Instant::now() > deadline {
            assert_eq!(ports.len(), n, "{}", m.log_text());
            return ports;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ws_broker(extra: &str) -> Midge {
    Midge::start_conf(&format!(
        "listener 0 127.0.0.1\nprotocol websockets\n{extra}allow_anonymous true\n\
         listener 0 127.0.0.1\nlog_type all\n"
    ))
}

/// Runs tests/js/mqttjs.mjs against `url` for MQTT 3.1.1 and 5.0 and checks every line.
fn mqttjs_both_versions(m: &Midge, url: &str, ca: Option<&Path>) {
    for v in [4, 5] {
        let mut cmd = Command::new("node");
        cmd.arg(js_dir().join("mqttjs.mjs"))
            .arg(url)
            .arg(v.to_string())
            .env(
                "MQTTJS_TIMEOUT_MS",
                (patience() * 2).as_millis().to_string(),
            );
        if let Some(ca) = ca {
            cmd.arg(ca);
        }
        let o = run(&mut cmd);
        let props = if v == 5 { " {\"from\":\"mqttjs\"}" } else { "" };
        let want = format!(
            "granted 2\n\
             js{v}/retained kept qos1 retained\n\
             js{v}/qos0 message 0 qos0\n\
             js{v}/qos1 message 1 qos1{props}\n\
             js{v}/qos2 message 2 qos2\n\
             js{v}/will gone qos1\n\
             done\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            want,
            "MQTT.js v{v} at {url}; stderr: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&o.stderr),
            m.log_text()
        );
        let p = if v == 5 { "p5" } else { "p2" };
        m.wait_log(&format!("as sub{v} ({p}, c1, k60)")).unwrap();
        m.wait_log(&format!("Client dying{v} closed its connection."))
            .unwrap();
    }
}

#[test]
fn mqttjs_over_websockets_v311_and_v5() {
    need_mqttjs();
    let m = ws_broker("");
    let ws = ports(&m, 2)[0];
    mqttjs_both_versions(&m, &format!("ws://127.0.0.1:{ws}/mqtt"), None);
}

/// wss: the listener's TLS settings put TLS under the WebSocket layer. The client checks the
/// server's certificate against the CA it was given.
#[test]
fn mqttjs_over_secure_websockets_v311_and_v5() {
    need_mqttjs();
    let dir = TempDir::new();
    let o = run(Command::new("openssl")
        .current_dir(&dir.0)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.crt",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ]));
    assert!(
        o.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m = ws_broker(&format!(
        "certfile {}\nkeyfile {}\n",
        dir.path("server.crt").display(),
        dir.path("server.key").display()
    ));
    let wss = ports(&m, 2)[0];
    mqttjs_both_versions(
        &m,
        &format!("wss://127.0.0.1:{wss}/mqtt"),
        Some(&dir.path("server.crt")),
    );
}

#[test]
fn paho_over_websockets() {
    let ok = have("python3")
        && Command::new("python3")
            .args([
                "-c",
                "import paho.mqtt.client as m; assert hasattr(m, 'CallbackAPIVersion')",
            ])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with paho-mqtt 2.x is needed: run scripts/test.sh, which installs it"
    );
    let m = ws_broker("");
    let ws = ports(&m, 2)[0];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/paho_websockets.py");
    let o = run(Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(script)
        .arg("127.0.0.1")
        .arg(ws.to_string()));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "OK\n",
        "stderr: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        m.log_text()
    );
}

fn spawn_sub(port: u16, topic: &str) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", "tcp-sub"])
        .args(["-t", topic, "-q", "1", "-C", "1", "-W", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub")
}

#[test]
fn a_browser_page_from_http_dir_talks_to_tcp_clients() {
    if std::env::var("XCHECK_EXEC_WRAPPER").is_ok_and(|w| !w.trim().is_empty()) {
        // Not a silent pass: the emulated run says what it did not do.
        let _ = writeln!(
            std::io::stderr(),
            "NOT RUN under XCHECK_EXEC_WRAPPER: the headless Chromium test is native only"
        );
        return;
    }
    let bundle = need_mqttjs();
    assert!(
        have("chromium") && have("mosquitto_pub") && have("mosquitto_sub"),
        "chromium and mosquitto-clients are needed: run scripts/test.sh, which installs them"
    );
    let www = TempDir::new();
    std::fs::copy(js_dir().join("browser.html"), www.path("index.html")).unwrap();
    std::fs::copy(bundle, www.path("mqtt.min.js")).unwrap();
    let m = ws_broker(&format!("http_dir {}\n", www.0.display()));
    let p = ports(&m, 2);
    let (ws, tcp) = (p[0], p[1]);

    // To the browser: a retained message from mosquitto_pub over TCP, waiting when the page
    // subscribes, and a live one published once the page has said hello.
    let o = run(Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &tcp.to_string(), "-q", "1", "-r"])
        .args(["-t", "browser/in", "-m", "retained from mosquitto_pub"]));
    assert!(o.status.success(), "{o:?}");
    // From the browser: mosquitto_sub over TCP, subscribed before the page loads.
    let mut sub = spawn_sub(tcp, "browser/out");
    m.wait_log("tcp-sub 1 browser/out")
        .expect("mosquitto_sub subscribed");

    // The page holds headless Chromium's virtual time with requests to `hold`, answered after
    // 20 ms of real time, until both messages have arrived (see browser.html).
    let hold = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hold.set_nonblocking(true).unwrap();
    let hold_port = hold.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let holder = std::thread::spawn(move || {
        let mut held = 0;
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            match hold.accept() {
                Ok((mut s, _)) => {
                    std::thread::sleep(Duration::from_millis(20));
                    let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                    held += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        held
    });
    let hellos = |m: &Midge| {
        m.log_text()
            .matches("Received PUBLISH from chromium")
            .count()
    };
    // A page that has not shown both messages is loaded again (a broken server fails every
    // try); each load says hello again, of which mosquitto_sub takes the first.
    let mut dom = String::new();
    for attempt in 1..=3 {
        let before = hellos(&m);
        let profile = TempDir::new();
        let url = format!("http://127.0.0.1:{ws}/?hold={hold_port}&want=2");
        let browser = std::thread::spawn(move || {
            let o = run(Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                ])
                .arg(format!("--user-data-dir={}", profile.0.display()))
                .arg(url));
            String::from_utf8_lossy(&o.stdout).into_owned()
        });
        // Once the page's hello has reached the broker, a live message goes to the page.
        let deadline = Instant::now() + patience();
        while hellos(&m) == before && Instant::now() < deadline && !browser.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if hellos(&m) > before {
            let o = run(Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &tcp.to_string(), "-q", "1"])
                .args(["-t", "browser/in", "-m", "live from mosquitto_pub"]));
            assert!(o.status.success(), "{o:?}");
        }
        dom = browser.join().unwrap();
        if dom.contains("live from") && dom.contains("retained from") {
            break;
        }
        let shown: Vec<&str> = dom
            .lines()
            .filter(|l| l.contains("<li>") || l.contains("id=\"status\""))
            .collect();
        let _ = writeln!(
            std::io::stderr(),
            "browser page, try {attempt}: not all shown yet: {shown:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(holder.join().unwrap() > 0, "the page held virtual time");
    assert!(
        dom.contains("<li>browser/in: retained from mosquitto_pub</li>")
            && dom.contains("<li>browser/in: live from mosquitto_pub</li>"),
        "the page shows both messages from mosquitto_pub; DOM:\n{dom}\nbroker log:\n{}",
        m.log_text()
    );
    let mut out = String::new();
    let deadline = Instant::now() + patience();
    while sub.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = sub.kill();
    sub.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(
        out, "hello from the browser\n",
        "mosquitto_sub got the page's message"
    );
    // The page and its script came from http_dir; the browser was an MQTT client like others.
    m.expect_log(" as chromium (p2, c1, k60).");
}
