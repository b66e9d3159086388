//! The seeds' security chapter, end to end with the real binary: password files, ACLs,
//! clientid_prefixes, reload on SIGHUP, and configuration errors.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::Duration;

fn midge_passwd(args: &[&str]) -> std::process::Output {
    wrapped(env!("CARGO_BIN_EXE_midge_passwd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run midge_passwd")
}

fn need_clients() {
    assert!(
        have("mosquitto_pub"),
        "mosquitto_pub is missing: run scripts/test.sh, which installs mosquitto-clients"
    );
}

/// `mosquitto_pub` with a hard time limit; returns (success, stderr).
fn mosquitto_pub(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("10")
        .arg("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mosquitto_pub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A CONNECT with user name and password (3.1.1, clean session).
fn connect_login(id: &str, user: &str, pass: &str) -> Vec<u8> {
    connect_raw(
        b"MQTT",
        4,
        0x02 | 0x80 | 0x40,
        0,
        &[id.as_bytes(), user.as_bytes(), pass.as_bytes()],
    )
}

fn sighup(m: &Midge) {
    let ok = Command::new("kill")
        .args(["-HUP", &m.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP");
}

#[test]
fn seeds_password_walkthrough() {
    // The Ubuntu guide: a plaintext file converted with `midge_passwd -U`, then
    // mosquitto_pub -u john_doe -P EXAMPLE_PASSWORD is delivered, wrong or missing credentials
    // are refused with "Connection Refused: not authorised."
    need_clients();
    let dir = TempDir::new();
    let pw = dir.write(
        "passwd",
        "john_doe:EXAMPLE_PASSWORD\nmary_smith:EXAMPLE_PASSWORD_2\n",
    );
    let out = midge_passwd(&["-U", pw.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let converted = std::fs::read_to_string(&pw).unwrap();
    assert!(converted.starts_with("john_doe:$7$101$"), "{converted}");
    assert!(!converted.contains("EXAMPLE_PASSWORD"));

    let m = Midge::start(&format!(
        "allow_anonymous false\npassword_file {}\n",
        pw.display()
    ));
    let mut sub = m.client();
    sub.send(&connect_login("sub", "mary_smith", "EXAMPLE_PASSWORD_2"));
    sub.expect(&CONNACK_OK);
    sub.send(&subscribe(1, &[("home/lights/kitchen", 0)]));
    sub.expect(&suback(1, &[0]));

    let (ok, err) = mosquitto_pub(
        m.port,
        &[
            "-u",
            "john_doe",
            "-P",
            "EXAMPLE_PASSWORD",
            "-t",
            "home/lights/kitchen",
            "-m",
            "ON",
        ],
    );
    assert!(ok, "{err}");
    sub.expect(&publish("home/lights/kitchen", b"ON", 0, false, 0));

    for args in [
        &["-u", "john_doe", "-P", "wrong", "-t", "t", "-m", "x"][..],
        &[
            "-u",
            "nobody",
            "-P",
            "EXAMPLE_PASSWORD",
            "-t",
            "t",
            "-m",
            "x",
        ][..],
        &["-t", "t", "-m", "x"][..],
    ] {
        let (ok, err) = mosquitto_pub(m.port, args);
        assert!(!ok, "{args:?} was admitted");
        assert!(
            err.contains("Connection Refused: not authorised."),
            "{args:?}: {err}"
        );
    }
    // The log says why, and never the password.
    m.wait_log("not authorised").unwrap();
    assert!(!m.log_text().contains("EXAMPLE_PASSWORD"));
    assert!(!m.log_text().contains("wrong"));
}

#[test]
fn mosquitto_made_password_files_are_accepted() {
    // Files written by Debian's mosquitto_passwd, both formats.
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for file in ["mosquitto_passwd_pbkdf2.txt", "mosquitto_passwd_sha512.txt"] {
        let m = Midge::start(&format!("password_file {fixtures}/{file}\n"));
        let mut c = m.client();
        c.send(&connect_login("c", "john_doe", "EXAMPLE_PASSWORD"));
        c.expect(&CONNACK_OK);
        let mut bad = m.client();
        bad.send(&connect_login("c2", "john_doe", "EXAMPLE_PASSWORD!"));
        bad.expect(&[0x20, 0x02, 0x00, 0x05]);
    }
}

#[test]
fn damaged_and_plaintext_password_lines_are_reported_and_refused() {
    let dir = TempDir::new();
    let out = midge_passwd(&["-c", "-b", dir.path("pw").to_str().unwrap(), "good", "pw1"]);
    assert!(out.status.success(), "{out:?}");
    let good = std::fs::read_to_string(dir.path("pw")).unwrap();
    let pw = dir.write(
        "pw",
        &format!("{good}broken:$7$101$!!!$###\nplain:secret\n"),
    );
    let m = Midge::start(&format!("password_file {}\n", pw.display()));
    m.wait_log("line 2")
        .expect("damaged line reported with its number");
    m.wait_log("line 3")
        .expect("plaintext line reported with its number");
    assert!(m.log_text().contains("midge_passwd -U"), "{}", m.log_text());
    assert!(!m.log_text().contains("secret"));
    let mut c = m.client();
    c.send(&connect_login("a", "good", "pw1"));
    c.expect(&CONNACK_OK);
    for (user, pass) in [("broken", "x"), ("plain", "secret")] {
        let mut c = m.client();
        c.send(&connect_login("b", user, pass));
        c.expect(&[0x20, 0x02, 0x00, 0x05]);
    }
}

#[test]
fn clientid_prefixes_seed_example() {
    // "a client with client id of C1-python1 would be allowed but a client with id of python2
    // would not be allowed."
    need_clients();
    let m = Midge::start("allow_anonymous true\nclientid_prefixes C1-\n");
    let (ok, err) = mosquitto_pub(m.port, &["-i", "C1-python1", "-t", "t", "-m", "x"]);
    assert!(ok, "{err}");
    let (ok, err) = mosquitto_pub(m.port, &["-i", "python2", "-t", "t", "-m", "x"]);
    assert!(!ok);
    assert!(
        err.contains("Connection Refused: identifier rejected."),
        "{err}"
    );
}

#[test]
fn acl_file_end_to_end_and_reload_on_sighup() {
    let dir = TempDir::new();
    let pwf = dir.path("pw");
    for (i, (u, p)) in [("alice", "a"), ("bob", "b")].iter().enumerate() {
        let mut args = vec!["-b", pwf.to_str().unwrap(), u, p];
        if i == 0 {
            args.insert(0, "-c");
        }
        assert!(midge_passwd(&args).status.success());
    }
    let acl = dir.write(
        "acl",
        "topic read public/#\nuser alice\ntopic readwrite home/#\ntopic deny home/secret\nuser bob\ntopic read home/#\npattern write clients/%u/#\n",
    );
    // acl_refuse_subscribe (midge only) checks SUBSCRIBE too; mosquitto's default, granting
    // every SUBSCRIBE, is in tests/differential.rs (acl/*).
    let m = Midge::start(&format!(
        "allow_anonymous true\npassword_file {}\nacl_file {}\nacl_refuse_subscribe true\n",
        pwf.display(),
        acl.display()
    ));
    let mut bob = m.client();
    bob.send(&connect_login("bob", "bob", "b"));
    bob.expect(&CONNACK_OK);
    bob.send(&subscribe(
        1,
        &[("home/#", 0), ("#", 0), ("clients/bob/x", 0)],
    ));
    bob.expect(&suback(1, &[0, 0x80, 0x80]));
    let mut alice = m.client();
    alice.send(&connect_login("alice", "alice", "a"));
    alice.expect(&CONNACK_OK);
    alice.send(&publish("home/lights", b"1", 1, false, 1));
    alice.expect(&ack(0x40, 1));
    alice.send(&publish("home/secret", b"2", 1, false, 2));
    alice.expect(&ack(0x40, 2)); // denied, still acknowledged
    bob.expect(&publish("home/lights", b"1", 0, false, 0));
    // Bob may not write home/#; his own clients/bob/... he may.
    bob.send(&publish("home/lights", b"3", 0, false, 0));
    bob.send(&publish("clients/bob/status", b"up", 0, false, 0));
    alice.send(&subscribe(2, &[("home/#", 0)]));
    alice.expect(&suback(2, &[0]));
    bob.send(&publish("home/lights", b"4", 0, false, 0));
    bob.send(&PINGREQ);
    bob.expect(&PINGRESP);
    alice.expect_silence(300);
    m.wait_log("Dropped denied PUBLISH from bob").unwrap();
    // Anonymous clients get the lines before the first user.
    let mut anon = m.client();
    anon.handshake("anon", true, 0, false);
    anon.send(&subscribe(1, &[("public/#", 0), ("home/#", 0)]));
    anon.expect(&suback(1, &[0, 0x80]));

    // Reload: bob gains write on home/#; his connection stays and the rule applies at once.
    std::fs::write(
        &acl,
        "topic read public/#\nuser alice\ntopic readwrite home/#\nuser bob\ntopic readwrite home/#\n",
    )
    .unwrap();
    sighup(&m);
    m.wait_log("Reloading config.").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    bob.send(&publish("home/lights", b"5", 0, false, 0));
    alice.expect(&publish("home/lights", b"5", 0, false, 0));

    // A reload that fails to parse keeps the old rules and says why.
    std::fs::write(&acl, "topic bogus home/#\n").unwrap();
    sighup(&m);
    m.wait_log("reload failed").unwrap();
    bob.send(&publish("home/lights", b"6", 0, false, 0));
    alice.expect(&publish("home/lights", b"6", 0, false, 0));
}

#[test]
fn config_errors_name_the_file_and_line_and_exit_1() {
    let dir = TempDir::new();
    let cases = [
        (
            "listener 0 127.0.0.1\nfoo_bar 1\n",
            ":2: unknown option 'foo_bar'",
        ),
        (
            "listener 0 127.0.0.1\ncertfile /etc/x.pem\n",
            ":2: listener 0: certfile without keyfile; both must be given to enable TLS",
        ),
        (
            "allow_anonymous maybe\n",
            ":1: allow_anonymous: 'maybe' is not true or false",
        ),
        (
            "allow_anonymous true\nper_listener_settings true\n",
            ":2: per_listener_settings: must come before any security option",
        ),
    ];
    for (i, (conf, want)) in cases.iter().enumerate() {
        let path = dir.write(&format!("c{i}.conf"), conf);
        let (code, err) = Midge::run_to_exit(&["-c", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{conf}: {err}");
        assert!(err.contains(want), "{conf}: {err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(
            !err.contains("listen socket"),
            "opened a socket first: {err}"
        );
    }
    let (code, err) = Midge::run_to_exit(&["-c", "/nonexistent/midge.conf"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Unable to open config file"), "{err}");
    // A broken ACL file stops start-up too, naming the line.
    let acl = dir.write("acl", "user a\ntopic readwrite a/#\ntopic sometimes b\n");
    let conf = dir.write(
        "acl.conf",
        &format!("listener 0 127.0.0.1\nacl_file {}\n", acl.display()),
    );
    let (code, err) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn include_dir_files_are_read_in_order() {
    let dir = TempDir::new();
    std::fs::create_dir(dir.path("conf.d")).unwrap();
    dir.write("conf.d/b.conf", "allow_anonymous true\n");
    dir.write("conf.d/a.conf", "allow_anonymous false\n");
    dir.write("conf.d/ignored.txt", "garbage line\n");
    let main = dir.write(
        "main.conf",
        &format!(
            "listener 0 127.0.0.1\ninclude_dir {}\n",
            dir.path("conf.d").display()
        ),
    );
    let m = Midge::spawn(dir, &["-c", main.to_str().unwrap()]);
    let mut c = m.client();
    c.handshake("c", true, 0, false);
}
