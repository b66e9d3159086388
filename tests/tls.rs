//! TLS listeners and client certificates, against the real midge binary with real tools:
//! `mosquitto_pub`/`mosquitto_sub` (`--cafile`, `--cert`/`--key`, `--tls-version`),
//! paho-mqtt with TLS, and `openssl s_client`.
//!
//! The certificates are made once per run of this test binary by the `openssl` CLI: a CA, a
//! server certificate for localhost and 127.0.0.1 (two, with different serial numbers, for
//! the SIGHUP swap), and client certificates that are valid, expired, revoked in the CA's CRL,
//! or signed by another CA. EC P-256 keys throughout: quick to make.

#![cfg(feature = "tls")]

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the certificates are, made on first use.
fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(make_pki)
}

fn pem(name: &str) -> String {
    pki().join(name).to_str().unwrap().to_string()
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the TLS tests: run scripts/test.sh");
    assert!(
        o.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn make_pki() -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // Certificates of earlier runs are not reused: they may have expired.
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("tls-pki-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("tls-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.as_path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    // `openssl ca` keeps its database here; it signs with explicit dates, so a certificate
    // can be made expired, and it writes the CRL.
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("serial"), "1000\n").unwrap();
    // With a crlnumber file `openssl ca -gencrl` writes a version 2 CRL, as RFC 5280 asks.
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        d.join("ca.cnf"),
        "[ca]\ndefault_ca = test_ca\n[test_ca]\ndir = .\ndatabase = index.txt\nserial = serial\n\
         new_certs_dir = .\ncrlnumber = crlnumber\ncertificate = ca.crt\nprivate_key = ca.key\ndefault_md = sha256\n\
         policy = any\nunique_subject = no\ncopy_extensions = copy\ndefault_crl_days = 30\n\
         [any]\ncountryName = optional\norganizationName = optional\ncommonName = supplied\n\
         [client]\nbasicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n\
         [server]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    for ca in ["ca", "other-ca"] {
        let subj = format!("/CN=midge test {ca}");
        let mut a = vec!["req", "-x509", "-days", "30", "-subj", &subj];
        a.extend(ec);
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        a.extend(["-keyout", &key, "-out", &crt]);
        openssl(d, &a);
    }
    // (name, subject, extensions, start, end, CA config)
    let sign = |name: &str, subj: &str, ext: &str, start: &str, end: &str, cnf: &str| {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut a = vec!["req", "-new", "-subj", subj, "-keyout", &key, "-out", &csr];
        a.extend(ec);
        openssl(d, &a);
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                cnf,
                "-extensions",
                ext,
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &csr,
                "-out",
                &crt,
                "-notext",
            ],
        );
    };
    let (now, later) = ("20200101000000Z", "20991231000000Z");
    sign("server", "/CN=localhost", "server", now, later, "ca.cnf");
    sign("server2", "/CN=localhost", "server", now, later, "ca.cnf");
    sign(
        "client",
        "/C=GB/O=Midge, Inc./CN=sensor1",
        "client",
        now,
        later,
        "ca.cnf",
    );
    sign(
        "expired",
        "/CN=sensor1",
        "client",
        "20200101000000Z",
        "20200201000000Z",
        "ca.cnf",
    );
    sign("revoked", "/CN=sensor2", "client", now, later, "ca.cnf");
    sign("late", "/CN=sensor3", "client", now, later, "ca.cnf");
    openssl(d, &["ca", "-config", "ca.cnf", "-revoke", "revoked.crt"]);
    openssl(d, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl"]);
    // A later CRL that also revokes `late` (for the SIGHUP reload of the CRL).
    openssl(d, &["ca", "-config", "ca.cnf", "-revoke", "late.crt"]);
    openssl(
        d,
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca-later.crl"],
    );
    // Signed by the other CA: same subject as a good client.
    let other = std::fs::read_to_string(d.join("ca.cnf"))
        .unwrap()
        .replace("ca.crt", "other-ca.crt")
        .replace("ca.key", "other-ca.key")
        .replace("index.txt", "other-index.txt");
    std::fs::write(d.join("other.cnf"), other).unwrap();
    std::fs::write(d.join("other-index.txt"), "").unwrap();
    sign("foreign", "/CN=sensor1", "client", now, later, "other.cnf");
    dir
}

/// A serial number as `openssl x509 -serial` prints it ("serial=1000").
fn serial_of(cert: &str) -> String {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", cert])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A TLS listener (127.0.0.1, ephemeral port) with `extra` config lines after it.
fn tls_broker(extra: &str) -> Midge {
    Midge::start(&format!(
        "certfile {}\nkeyfile {}\n{extra}",
        pem("server.crt"),
        pem("server.key")
    ))
}

/// Runs a command to completion within a hard limit.
fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}; run scripts/test.sh"));
    let deadline = Instant::now() + patience() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `mosquitto_pub`/`mosquitto_sub` (`tool`) to midge's TLS port, trusting `ca`.
fn mosq(tool: &str, m: &Midge, ca: &str, args: &[&str]) -> Command {
    let mut c = Command::new(tool);
    c.args(["-h", "localhost", "-p", &m.port.to_string(), "--cafile"])
        .arg(pem(ca))
        .args(args);
    c
}

fn with_cert<'a>(name: &'a str, args: &[&'a str]) -> Vec<String> {
    let mut v = vec![
        "--cert".to_string(),
        pem(&format!("{name}.crt")),
        "--key".to_string(),
        pem(&format!("{name}.key")),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A subscriber in the background: waits until midge has its subscription.
struct Sub(std::process::Child);

impl Sub {
    fn start(m: &Midge, id: &str, args: &[String]) -> Sub {
        let child = mosq("mosquitto_sub", m, "ca.crt", &[])
            .args(args)
            .args(["-i", id, "-v", "-W", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub: run scripts/test.sh");
        let needle = format!("Sending SUBACK to {id}");
        assert!(
            m.wait_log(&needle).is_some(),
            "no SUBACK to {id}; log:\n{}",
            m.log_text()
        );
        Sub(child)
    }
    fn output(self) -> Output {
        let mut child = self.0;
        let deadline = Instant::now() + patience() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mosquitto_sub did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }
}

fn assert_ok(o: &Output, what: &str, m: &Midge) {
    assert!(
        o.status.success(),
        "{what} failed: {}{}\nbroker log:\n{}",
        text(&o.stdout),
        text(&o.stderr),
        m.log_text()
    );
}

/// mosquitto_sub and mosquitto_pub over TLS 1.2 and 1.3, QoS 0 and 1, server certificate
/// checked against the CA (`--cafile`) and the host name localhost.
#[test]
fn pub_sub_over_tls_1_2_and_1_3() {
    let m = tls_broker("allow_anonymous true\n");
    let sub = Sub::start(
        &m,
        "tls-sub",
        &["-t".into(), "t/#".into(), "-C".into(), "4".into()],
    );
    for (v, q) in [
        ("tlsv1.2", "0"),
        ("tlsv1.2", "1"),
        ("tlsv1.3", "0"),
        ("tlsv1.3", "1"),
    ] {
        let topic = format!("t/{v}/{q}");
        let o = run(mosq("mosquitto_pub", &m, "ca.crt", &[]).args([
            "--tls-version",
            v,
            "-q",
            q,
            "-t",
            &topic,
            "-m",
            "hello",
        ]));
        assert_ok(&o, &format!("mosquitto_pub {v} QoS {q}"), &m);
    }
    let o = sub.output();
    assert_eq!(
        text(&o.stdout),
        "t/tlsv1.2/0 hello\nt/tlsv1.2/1 hello\nt/tlsv1.3/0 hello\nt/tlsv1.3/1 hello\n"
    );
}

/// A client that trusts another CA refuses midge's certificate: nothing is published.
#[test]
fn a_client_trusting_another_ca_fails() {
    let m = tls_broker("allow_anonymous true\n");
    let o = run(mosq(
        "mosquitto_pub",
        &m,
        "other-ca.crt",
        &["-t", "x", "-m", "y"],
    ));
    assert!(!o.status.success(), "published with the wrong CA");
    assert!(m
        .log_text()
        .lines()
        .all(|l| !l.contains("Received PUBLISH")));
    // openssl s_client says why.
    let o = run(Command::new("openssl").args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{}", m.port),
        "-CAfile",
        &pem("other-ca.crt"),
        "-verify_return_error",
    ]));
    assert!(!o.status.success());
    assert!(
        text(&o.stdout).contains("unable to get local issuer certificate")
            || text(&o.stderr).contains("unable to get local issuer certificate"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// require_certificate: only a current certificate from the CA in cafile, not revoked in
/// crlfile, gets through the handshake; each refusal is logged with its reason.
#[test]
fn require_certificate_refuses_missing_expired_revoked_and_foreign_certificates() {
    let m = tls_broker(&format!(
        "cafile {}\ncrlfile {}\nrequire_certificate true\nallow_anonymous true\n",
        pem("ca.crt"),
        pem("ca.crl")
    ));
    let publish = |cert: Option<&str>| {
        let mut c = mosq("mosquitto_pub", &m, "ca.crt", &["-t", "x", "-m", "y"]);
        if let Some(name) = cert {
            c.args(with_cert(name, &[]));
        }
        run(&mut c)
    };
    for (cert, why) in [
        (None, "the client sent no certificate"),
        (Some("expired"), "the client's certificate has expired"),
        (Some("revoked"), "the client's certificate is revoked"),
        (
            Some("foreign"),
            "the client's certificate is not signed by a CA in cafile/capath",
        ),
    ] {
        let o = publish(cert);
        assert!(!o.status.success(), "{cert:?} got through");
        assert!(
            m.wait_log(why).is_some(),
            "{cert:?}: log:\n{}",
            m.log_text()
        );
    }
    assert!(m
        .log_text()
        .lines()
        .all(|l| !l.contains("Received PUBLISH")));
    let o = publish(Some("client"));
    assert_ok(&o, "mosquitto_pub with a valid certificate", &m);
    assert!(m.wait_log("Received PUBLISH").is_some());
}

/// use_identity_as_username: the certificate's CN is the user name the ACL sees; the password
/// file is not consulted and no password is needed.
#[test]
fn use_identity_as_username_with_an_acl_keyed_on_the_cn() {
    let dir = TempDir::new();
    let acl = dir.write(
        "acl",
        "user sensor1\ntopic readwrite sensors/sensor1/#\ntopic read sensors/#\n",
    );
    let m = tls_broker(&format!(
        "cafile {}\nrequire_certificate true\nuse_identity_as_username true\n\
         allow_anonymous false\nacl_file {}\n",
        pem("ca.crt"),
        acl.display()
    ));
    let sub = Sub::start(
        &m,
        "cn-sub",
        &with_cert("client", &["-t", "sensors/#", "-C", "1"]),
    );
    // Denied by the ACL (not the user's topic), then allowed; the user name in CONNECT is
    // ignored.
    for topic in ["sensors/sensor2/t", "sensors/sensor1/t"] {
        let o = run(mosq("mosquitto_pub", &m, "ca.crt", &[]).args(with_cert(
            "client",
            &["-u", "someone-else", "-t", topic, "-m", topic],
        )));
        assert_ok(&o, "mosquitto_pub", &m);
    }
    assert_eq!(
        text(&sub.output().stdout),
        "sensors/sensor1/t sensors/sensor1/t\n"
    );
    m.expect_log("u'sensor1'");
    assert!(
        m.wait_log("Dropped denied PUBLISH").is_some(),
        "log:\n{}",
        m.log_text()
    );
}

/// use_subject_as_username: the user name is the subject exactly as OpenSSL prints it in RFC
/// 2253 form (what mosquitto uses).
#[test]
fn use_subject_as_username_is_openssls_rfc2253_subject() {
    let m = tls_broker(&format!(
        "cafile {}\nrequire_certificate true\nuse_subject_as_username true\n\
         allow_anonymous false\n",
        pem("ca.crt")
    ));
    let o = run(Command::new("openssl").args([
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        &pem("client.crt"),
    ]));
    let subject = text(&o.stdout)
        .trim()
        .trim_start_matches("subject=")
        .to_string();
    assert_eq!(subject, "CN=sensor1,O=Midge\\, Inc.,C=GB");
    let o = run(mosq("mosquitto_pub", &m, "ca.crt", &[])
        .args(with_cert("client", &["-i", "subj", "-t", "x", "-m", "y"])));
    assert_ok(&o, "mosquitto_pub", &m);
    let line = m.wait_log("New client connected").unwrap();
    assert!(line.ends_with(&format!("u'{subject}').")), "{line}");
}

/// A password file works over TLS as over TCP: the password now travels encrypted.
#[test]
fn a_password_file_with_tls() {
    let dir = TempDir::new();
    let pw = dir.path("passwd");
    let o = run(Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pw)
        .args(["bob", "secret"]));
    assert!(o.status.success(), "mosquitto_passwd: {}", text(&o.stderr));
    let m = tls_broker(&format!(
        "allow_anonymous false\npassword_file {}\n",
        pw.display()
    ));
    let o = run(mosq(
        "mosquitto_pub",
        &m,
        "ca.crt",
        &["-u", "bob", "-P", "wrong", "-t", "x", "-m", "y"],
    ));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not authorised"),
        "{}",
        text(&o.stderr)
    );
    let o = run(mosq(
        "mosquitto_pub",
        &m,
        "ca.crt",
        &["-u", "bob", "-P", "secret", "-t", "x", "-m", "y"],
    ));
    assert_ok(&o, "mosquitto_pub with the right password", &m);
}

/// Plaintext MQTT to a TLS port: closed at once, and the log says what happened.
#[test]
fn plaintext_mqtt_to_a_tls_port_is_closed_and_logged() {
    let m = tls_broker("allow_anonymous true\n");
    let mut c = m.client();
    c.send(&connect("plain", true, 60));
    c.expect_closed();
    let line = m.wait_log("plaintext MQTT on a TLS listener").unwrap();
    assert!(line.contains("Client connection from 127.0.0.1:"), "{line}");
    // mosquitto_pub without --cafile speaks plaintext too.
    let o = run(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &m.port.to_string(),
        "-t",
        "x",
        "-m",
        "y",
    ]));
    assert!(!o.status.success());
}

/// A client that opens TCP and never finishes the handshake is closed by connect_timeout,
/// like one that never sends CONNECT.
#[test]
fn connect_timeout_covers_the_handshake() {
    let m = tls_broker("allow_anonymous true\nconnect_timeout 1\n");
    let mut s = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    // The first bytes of a ClientHello record, and no more.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 16];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

/// paho-mqtt (Python) with TLS and a client certificate: QoS 1 round trip.
#[test]
fn paho_over_tls_with_a_client_certificate() {
    paho_tls("", "tcp");
}

/// The same over WebSocket in TLS (wss): the TLS layer under the WebSocket layer.
#[test]
fn paho_over_wss_with_a_client_certificate() {
    paho_tls("protocol websockets\n", "websockets");
}

fn paho_tls(extra: &str, transport: &str) {
    let m = tls_broker(&format!(
        "cafile {}\nrequire_certificate true\nallow_anonymous true\n{extra}",
        pem("ca.crt")
    ));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/paho_tls.py");
    let o = run(Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(script)
        .arg("localhost")
        .arg(m.port.to_string())
        .arg(pem("ca.crt"))
        .arg(pem("client.crt"))
        .arg(pem("client.key"))
        .arg(transport));
    assert!(
        o.status.success() && text(&o.stdout) == "OK\n",
        "paho_tls.py {transport}: {}{}\nlog:\n{}",
        text(&o.stdout),
        text(&o.stderr),
        m.log_text()
    );
}

/// SIGHUP re-reads the certificate: the next client sees the new one (its serial number),
/// while a client connected before stays connected and keeps receiving. A reload that fails
/// keeps the certificate in use and logs why.
#[test]
fn sighup_swaps_the_certificate_for_new_clients() {
    let dir = TempDir::new();
    let (crt, key) = (dir.path("server.crt"), dir.path("server.key"));
    std::fs::copy(pem("server.crt"), &crt).unwrap();
    std::fs::copy(pem("server.key"), &key).unwrap();
    let m = Midge::start(&format!(
        "certfile {}\nkeyfile {}\nallow_anonymous true\n",
        crt.display(),
        key.display()
    ));
    let seen_serial = || {
        let o = run(Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", m.port),
            "-CAfile",
            &pem("ca.crt"),
        ]));
        let served = dir.write("served.pem", &text(&o.stdout));
        serial_of(served.to_str().unwrap())
    };
    let first = serial_of(&pem("server.crt"));
    let second = serial_of(&pem("server2.crt"));
    assert_ne!(first, second);
    assert_eq!(seen_serial(), first);
    let sub = Sub::start(
        &m,
        "stays",
        &["-t".into(), "t".into(), "-C".into(), "1".into()],
    );
    std::fs::copy(pem("server2.crt"), &crt).unwrap();
    std::fs::copy(pem("server2.key"), &key).unwrap();
    let hup = |m: &Midge| {
        let o = run(Command::new("kill").args(["-HUP", &m.pid().to_string()]));
        assert!(o.status.success());
    };
    hup(&m);
    let deadline = Instant::now() + patience();
    while seen_serial() != second {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken certificate file: the reload fails, the second certificate stays.
    std::fs::write(&crt, "not a certificate\n").unwrap();
    hup(&m);
    assert!(
        m.wait_log("TLS reload failed").is_some(),
        "log:\n{}",
        m.log_text()
    );
    assert_eq!(seen_serial(), second);
    let o = run(mosq(
        "mosquitto_pub",
        &m,
        "ca.crt",
        &["-t", "t", "-m", "still here"],
    ));
    assert_ok(&o, "mosquitto_pub after the reloads", &m);
    let o = sub.output();
    assert_eq!(text(&o.stdout), "t still here\n");
}

/// tls_version is the minimum; ciphers and ciphers_tls1.3 limit the suites offered.
#[test]
fn tls_version_and_ciphers_limit_what_is_negotiated() {
    let m = tls_broker(
        "allow_anonymous true\nciphers ECDHE-ECDSA-AES128-GCM-SHA256\n\
         listener 0 127.0.0.1\ncertfile SERVER_CRT\nkeyfile SERVER_KEY\ntls_version tlsv1.3\n\
         ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256\n"
            .replace("SERVER_CRT", &pem("server.crt"))
            .replace("SERVER_KEY", &pem("server.key"))
            .as_str(),
    );
    // The second listener's port: the second "Opening" line.
    let deadline = Instant::now() + patience();
    let second = loop {
        let ports: Vec<u16> = m
            .log_text()
            .lines()
            .filter(|l| l.contains("Opening ipv4 listen socket on port "))
            .filter_map(|l| l.trim_end_matches('.').rsplit(' ').next()?.parse().ok())
            .collect();
        if ports.len() == 2 {
            break ports[1];
        }
        assert!(Instant::now() < deadline, "log:\n{}", m.log_text());
        std::thread::sleep(Duration::from_millis(10));
    };
    let s_client = |port: u16, args: &[&str]| {
        let o = run(Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-CAfile",
            ])
            .arg(pem("ca.crt"))
            .args(args));
        (o.status.success(), text(&o.stdout))
    };
    let (ok, out) = s_client(
        m.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(
        ok && out.contains("Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{out}"
    );
    let (ok, _) = s_client(
        m.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert!(!ok, "a TLS 1.2 cipher outside `ciphers` was negotiated");
    let (ok, out) = s_client(second, &["-tls1_3"]);
    assert!(ok && out.contains("TLS_CHACHA20_POLY1305_SHA256"), "{out}");
    let (ok, _) = s_client(second, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 accepted on a tlsv1.3 listener");
}

/// Files that cannot be used stop start-up with the option's file and line and the reason.
#[test]
fn unusable_tls_files_stop_start_up_with_the_line() {
    let dir = TempDir::new();
    let locked = dir.path("locked.key");
    let o = run(Command::new("openssl")
        .args(["pkey", "-aes256", "-passout", "pass:secret", "-in"])
        .arg(pem("server.key"))
        .arg("-out")
        .arg(&locked));
    assert!(o.status.success(), "{}", text(&o.stderr));
    for (lines, want) in [
        (
            format!(
                "certfile {}\nkeyfile {}\n",
                pem("server.crt"),
                locked.display()
            ),
            ":3: Unable to load server key file",
        ),
        (
            format!(
                "certfile {}\nkeyfile {}\n",
                pem("server.crt"),
                locked.display()
            ),
            "the key is encrypted with a passphrase",
        ),
        (
            format!("certfile /nonexistent.crt\nkeyfile {}\n", pem("server.key")),
            ":2: certfile '/nonexistent.crt': No such file or directory",
        ),
        (
            format!(
                "certfile {}\nkeyfile {}\n",
                pem("server.crt"),
                pem("client.key")
            ),
            "do not go together",
        ),
    ] {
        let conf = dir.write("m.conf", &format!("listener 0 127.0.0.1\n{lines}"));
        let (code, log) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains(want), "wanted {want:?} in:\n{log}");
    }
}

/// SIGHUP also re-reads the CRL (mosquitto does not): a certificate revoked in the new CRL is
/// refused from the next connection on, while the other clients go on.
#[test]
fn sighup_reloads_the_crl() {
    let dir = TempDir::new();
    let crl = dir.path("ca.crl");
    std::fs::copy(pem("ca.crl"), &crl).unwrap();
    let m = tls_broker(&format!(
        "cafile {}\ncrlfile {}\nrequire_certificate true\nallow_anonymous true\n",
        pem("ca.crt"),
        crl.display()
    ));
    let publish = |cert: &str| {
        run(mosq("mosquitto_pub", &m, "ca.crt", &[]).args(with_cert(cert, &["-t", "x", "-m", "y"])))
            .status
            .success()
    };
    assert!(publish("late"), "log:\n{}", m.log_text());
    std::fs::copy(pem("ca-later.crl"), &crl).unwrap();
    let o = run(Command::new("kill").args(["-HUP", &m.pid().to_string()]));
    assert!(o.status.success());
    assert!(m.wait_log("Reloading config.").is_some());
    let deadline = Instant::now() + patience();
    while publish("late") {
        assert!(Instant::now() < deadline, "the new CRL was never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(m.wait_log("the client's certificate is revoked").is_some());
    assert!(publish("client"), "log:\n{}", m.log_text());
}
