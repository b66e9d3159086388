//! Running as a service: pid_file, user, signals, listener socket options.

mod common;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn status_field(pid: u32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

#[test]
fn pid_file_written_and_removed_on_sigterm_exit_0() {
    let dir = TempDir::new();
    let pid_path = dir.path("midge.pid");
    let conf = dir.write(
        "m.conf",
        &format!(
            "listener 0 127.0.0.1\nallow_anonymous true\npid_file {}\n",
            pid_path.display()
        ),
    );
    let mut m = Midge::spawn(dir, &["-c", conf.to_str().unwrap()]);
    let written = std::fs::read_to_string(&pid_path).unwrap();
    if std::env::var_os("XCHECK_EXEC_WRAPPER").is_none() {
        assert_eq!(written, format!("{}\n", m.pid()));
    }
    let mut c = m.client();
    c.handshake("c", true, 0, false);
    signal(m.pid(), "-TERM");
    m.wait_log("midge terminating").expect("clean stop logged");
    let deadline = Instant::now() + patience();
    while m.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!m.alive(), "still running after SIGTERM");
    assert_eq!(m.exit_code(), Some(0));
    assert!(!pid_path.exists(), "pid file left behind");
}

#[test]
fn user_option_drops_root_privileges() {
    // Only meaningful when the test runs as root (as in CI); as another user midge keeps
    // its identity, which is checked instead.
    let root = status_field(std::process::id(), "Uid:").starts_with("0\t");
    let m = Midge::start("allow_anonymous true\nuser nobody\n");
    let uid = status_field(m.pid(), "Uid:");
    if root && std::env::var_os("XCHECK_EXEC_WRAPPER").is_none() {
        let nobody = String::from_utf8(
            Command::new("id")
                .args(["-u", "nobody"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        assert!(
            uid.starts_with(&format!("{}\t", nobody.trim())),
            "uid line {uid:?}"
        );
        m.wait_log("Dropped privileges to user 'nobody'.").unwrap();
    } else {
        assert!(!uid.is_empty());
    }
    let mut c = m.client();
    c.handshake("c", true, 0, false);
}

#[test]
fn unknown_user_is_an_error_when_root() {
    let root = status_field(std::process::id(), "Uid:").starts_with("0\t");
    if !root {
        // Not root: the option is ignored, as in mosquitto; proven by starting fine.
        let m = Midge::start("allow_anonymous true\nuser no-such-user-xyz\n");
        m.client().handshake("c", true, 0, false);
        return;
    }
    let dir = TempDir::new();
    let conf = dir.write("m.conf", "listener 0 127.0.0.1\nuser no-such-user-xyz\n");
    let (code, err) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Invalid user 'no-such-user-xyz'."), "{err}");
}

#[test]
fn bind_interface_and_socket_domain() {
    let m = Midge::start_conf(
        "listener 0\nbind_interface lo\nsocket_domain ipv4\nallow_anonymous true\n",
    );
    let mut c = m.client();
    c.handshake("c", true, 0, false);
    assert!(m.log_text().contains("Opening ipv4 listen socket"));
    assert!(!m.log_text().contains("Opening ipv6 listen socket"));
    let dir = TempDir::new();
    let conf = dir.write("m.conf", "listener 0\nbind_interface no-such-if0\n");
    let (code, err) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bind_interface no-such-if0"), "{err}");
}

#[test]
fn sys_tree_is_published_like_mosquittos() {
    let m = Midge::start("allow_anonymous true\nsys_interval 1\n");
    let mut c = m.client();
    c.handshake("dash", true, 0, false);
    c.send(&subscribe(
        1,
        &[
            ("$SYS/broker/version", 0),
            ("$SYS/broker/clients/connected", 0),
        ],
    ));
    c.expect(&suback(1, &[0, 0]));
    let version = format!("midge version {}", env!("CARGO_PKG_VERSION"));
    // The retained values come at once: the version, and the connected count (0 from the
    // round at start-up, or already 1 if a round ran since, as it may on a slow machine).
    let mut got = vec![c.recv(), c.recv()];
    got.sort();
    let v = publish("$SYS/broker/version", version.as_bytes(), 0, true, 0);
    let zero = publish("$SYS/broker/clients/connected", b"0", 0, true, 0);
    let one = publish("$SYS/broker/clients/connected", b"1", 0, true, 0);
    assert!(got.contains(&v), "{got:02x?}");
    if got.contains(&zero) {
        // The next round counts this client.
        c.expect(&publish("$SYS/broker/clients/connected", b"1", 0, false, 0));
    } else {
        assert!(got.contains(&one), "{got:02x?}");
    }
    // Clients cannot write to $SYS.
    c.send(&publish("$SYS/broker/version", b"fake", 0, true, 0));
    c.send(&PINGREQ);
    c.expect(&PINGRESP);
    let mut d = m.client();
    d.handshake("other", true, 0, false);
    d.send(&subscribe(1, &[("$SYS/broker/version", 0)]));
    d.expect(&suback(1, &[0]));
    d.expect(&publish(
        "$SYS/broker/version",
        version.as_bytes(),
        0,
        true,
        0,
    ));
}

/// Under an emulator (`XCHECK_EXEC_WRAPPER`) the broker cannot start copies of itself or be
/// started by a shell script directly; these tests say so and check only what they can.
fn emulated() -> bool {
    let e = std::env::var_os("XCHECK_EXEC_WRAPPER").is_some();
    if e {
        eprintln!("under XCHECK_EXEC_WRAPPER: the daemon/init-script part of this test needs a native binary");
    }
    e
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + patience();
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn port_of_log(path: &std::path::Path) -> u16 {
    let find = || -> Option<u16> {
        let log = std::fs::read_to_string(path).ok()?;
        let l = log
            .lines()
            .find(|l| l.contains("Opening ipv4 listen socket on port "))?;
        l.rsplit(' ').next()?.trim_end_matches('.').parse().ok()
    };
    wait_until("the listener in the log", || find().is_some());
    find().unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

use std::path::Path;

#[test]
fn daemon_mode_detaches_and_writes_the_pid_file() {
    if emulated() {
        return;
    }
    let dir = TempDir::new();
    let pid_path = dir.path("midge.pid");
    let log_path = dir.path("midge.log");
    let conf = dir.write(
        "m.conf",
        &format!(
            "listener 0 127.0.0.1\nallow_anonymous true\npid_file {}\nlog_dest file {}\n",
            pid_path.display(),
            log_path.display()
        ),
    );
    let status = midge_command()
        .args(["-d", "-c", conf.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success(), "the foreground process exits 0 at once");
    // The daemon writes the file atomically, so it appears holding the whole line; the
    // content is still checked whole (digits and one newline).
    let read_pid = || -> Option<u32> {
        let text = std::fs::read_to_string(&pid_path).ok()?;
        text.strip_suffix('\n')?.parse().ok()
    };
    wait_until("the pid file", || read_pid().is_some());
    let pid = read_pid().unwrap();
    assert!(alive(pid));
    let port = port_of_log(&log_path);
    let mut c = Client::connect(port);
    c.handshake("c", true, 0, false);
    signal(pid, "-TERM");
    wait_until("the daemon to exit", || !alive(pid));
    assert!(!pid_path.exists());
}

#[test]
fn init_script_start_status_reload_stop() {
    if emulated() {
        return;
    }
    let dir = TempDir::new();
    let log_path = dir.path("midge.log");
    let pid_path = dir.path("midge.pid");
    let conf = dir.write(
        "m.conf",
        &format!(
            "listener 0 127.0.0.1\nallow_anonymous true\nlog_dest file {}\n",
            log_path.display()
        ),
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/midge.init");
    let run = |arg: &str| {
        let out = Command::new("sh")
            .args([script, arg])
            .env("DAEMON", env!("CARGO_BIN_EXE_midge"))
            .env("CONF", &conf)
            .env("PIDFILE", &pid_path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(run("status"), (Some(3), "midge is not running\n".into()));
    let (code, out) = run("start");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("midge started (pid "), "{out}");
    let (code, out) = run("status");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("midge is running (pid "), "{out}");
    let port = port_of_log(&log_path);
    let mut c = Client::connect(port);
    c.handshake("c", true, 0, false);
    assert_eq!(run("reload"), (Some(0), "midge reloaded\n".into()));
    wait_until("the reload in the log", || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Reloading config.")
    });
    assert_eq!(run("stop"), (Some(0), "midge stopped\n".into()));
    assert_eq!(run("status").0, Some(3));
    // A broken configuration is reported as a failed start.
    std::fs::write(&conf, "bogus_option 1\n").unwrap();
    let (code, out) = run("start");
    assert_eq!(code, Some(1), "{out}");
}

#[test]
fn systemd_unit_verifies() {
    if !have("systemd-analyze") {
        // Not every machine has systemd; the unit is then checked for its essentials only.
        let unit =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/midge.service"))
                .unwrap();
        assert!(unit.contains("Type=notify") && unit.contains("ExecStart=/usr/local/bin/midge"));
        return;
    }
    let dir = TempDir::new();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/midge.service"))
        .unwrap()
        .replace("/usr/local/bin/midge", env!("CARGO_BIN_EXE_midge"));
    let path = dir.write("midge.service", &unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sys_counts_follow_what_clients_do() {
    let m = Midge::start("allow_anonymous true\nsys_interval 1\n");
    let mut a = m.client();
    a.handshake("a", true, 0, false);
    a.send(&subscribe(1, &[("x/#", 0), ("y", 0)]));
    a.expect(&suback(1, &[0, 0]));
    for i in 0..3 {
        a.send(&publish(&format!("r/{i}"), b"v", 0, true, 0));
    }
    a.send(&PINGREQ);
    a.expect(&PINGRESP);
    let mut d = m.client();
    d.handshake("dash", true, 0, false);
    d.send(&subscribe(
        1,
        &[
            ("$SYS/broker/retained messages/count", 0),
            ("$SYS/broker/subscriptions/count", 0),
            ("$SYS/broker/clients/connected", 0),
        ],
    ));
    d.expect(&suback(1, &[0, 0, 0]));
    // Wait for a round of $SYS that counts both clients, then read the values it carries.
    let deadline = Instant::now() + patience();
    let mut seen = std::collections::HashMap::new();
    while Instant::now() < deadline {
        let pkt = d.recv();
        let tlen = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
        let topic = String::from_utf8(pkt[4..4 + tlen].to_vec()).unwrap();
        let value = String::from_utf8(pkt[4 + tlen..].to_vec()).unwrap();
        seen.insert(topic, value);
        if seen
            .get("$SYS/broker/clients/connected")
            .map(String::as_str)
            == Some("2")
            && seen
                .get("$SYS/broker/subscriptions/count")
                .map(String::as_str)
                == Some("5")
        {
            break;
        }
    }
    assert_eq!(seen["$SYS/broker/clients/connected"], "2");
    // a's two and dash's three subscriptions.
    assert_eq!(seen["$SYS/broker/subscriptions/count"], "5");
    // Three retained by a, plus the $SYS topics themselves (retained too, as in mosquitto).
    let retained: usize = seen["$SYS/broker/retained messages/count"].parse().unwrap();
    assert!(retained > 3, "{retained}");
}

#[test]
fn install_script_stages_every_file() {
    let dir = TempDir::new();
    let root = dir.path("root");
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args([
            "--root",
            root.to_str().unwrap(),
            env!("CARGO_BIN_EXE_midge"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "usr/local/bin/midge",
        "etc/midge/midge.conf",
        "etc/systemd/system/midge.service",
        "etc/init.d/midge",
    ] {
        assert!(root.join(f).is_file(), "{f} not installed");
    }
    // An existing configuration is never overwritten.
    std::fs::write(root.join("etc/midge/midge.conf"), "# mine\n").unwrap();
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args([
            "--root",
            root.to_str().unwrap(),
            env!("CARGO_BIN_EXE_midge"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(root.join("etc/midge/midge.conf")).unwrap(),
        "# mine\n"
    );
}
