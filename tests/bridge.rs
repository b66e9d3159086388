//! Bridges with real remote brokers on 127.0.0.1: Debian's mosquitto and midge itself.
//!
//! The fault test's length is a parameter: `MIDGE_BRIDGE_FAULT_SECS` (default 8) and
//! `MIDGE_BRIDGE_FAULT_RESTARTS` (remote restarts, default 3). The full run of the issue:
//! `MIDGE_BRIDGE_FAULT_SECS=30 MIDGE_BRIDGE_FAULT_RESTARTS=5 cargo test --test bridge faults -- --nocapture`.

mod common;
use common::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Debian's mosquitto; `MIDGE_TEST_MOSQUITTO` names another build to compare with.
fn mosquitto_path() -> String {
    std::env::var("MIDGE_TEST_MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Waits until something accepts connections on `port`.
fn wait_port(port: u16) {
    let deadline = Instant::now() + patience();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto remote on `port`, with `extra` config lines. Killed on drop.
struct Mosquitto {
    child: Child,
}

impl Mosquitto {
    fn start(dir: &TempDir, port: u16, extra: &str) -> Mosquitto {
        let mosquitto = mosquitto_path();
        assert!(
            Path::new(&mosquitto).exists(),
            "{mosquitto} is needed (apt-get install mosquitto)"
        );
        let conf = dir.write(
            "remote.conf",
            // `user root`: started as root, mosquitto would otherwise become `mosquitto`,
            // which cannot write its persistence file in our directory.
            &format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n{extra}"),
        );
        let child = Command::new(&mosquitto)
            .args(["-c", conf.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        wait_port(port);
        Mosquitto { child }
    }

    /// SIGTERM: a clean stop that saves its persistence file.
    fn stop(mut self) {
        signal(self.child.id(), "-TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// midge with a bridge to 127.0.0.1:`remote` and these bridge lines.
fn bridged(remote: u16, lines: &str) -> Midge {
    Midge::start(&format!(
        "allow_anonymous true\nconnection up\naddress 127.0.0.1:{remote}\nrestart_timeout 1 2\n{lines}"
    ))
}

/// A 3.1.1 subscriber to `filters` on `port`, clean session.
fn subscriber(port: u16, id: &str, filters: &[(&str, u8)]) -> Client {
    let mut c = Client::connect(port);
    c.handshake(id, true, 60, false);
    c.send(&subscribe(1, filters));
    let codes: Vec<u8> = filters.iter().map(|f| f.1).collect();
    c.expect(&suback(1, &codes));
    c
}

/// Waits for the bridge's local notification `1` (retained), read with a fresh subscriber.
fn wait_bridge_up(m: &Midge) {
    m.wait_log("Bridge up connected")
        .unwrap_or_else(|| panic!("bridge did not connect:\n{}", m.log_text()));
}

/// (topic, payload, qos, retain) of a PUBLISH packet (3.1.1); acknowledges it on `c`.
fn take_publish(c: &mut Client) -> (String, Vec<u8>, u8, bool) {
    let p = c.recv();
    assert_eq!(p[0] & 0xf0, 0x30, "expected PUBLISH, got {p:02x?}");
    let qos = (p[0] >> 1) & 3;
    let retain = p[0] & 1 == 1;
    let mut i = 1;
    while p[i] & 0x80 != 0 {
        i += 1;
    }
    i += 1;
    let tl = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
    let topic = String::from_utf8(p[i + 2..i + 2 + tl].to_vec()).unwrap();
    let mut j = i + 2 + tl;
    if qos > 0 {
        let pid = u16::from_be_bytes([p[j], p[j + 1]]);
        j += 2;
        if qos == 1 {
            c.send(&ack(0x40, pid));
        } else {
            c.send(&ack(0x50, pid));
            assert_eq!(c.recv(), ack(0x62, pid));
            c.send(&ack(0x70, pid));
        }
    }
    (topic, p[j..].to_vec(), qos, retain)
}

/// Publishes with QoS 1 or 2 on `c` and waits for the acknowledgement.
fn publish_acked(c: &mut Client, topic: &str, payload: &[u8], qos: u8, retain: bool, pid: u16) {
    c.send(&publish(topic, payload, qos, retain, pid));
    if qos == 1 {
        c.expect(&ack(0x40, pid));
    } else if qos == 2 {
        c.expect(&ack(0x50, pid));
        c.send(&ack(0x62, pid));
        c.expect(&ack(0x70, pid));
    }
}

/// Topic lines in every direction, with prefixes and the `""` pattern, against a remote
/// speaking `version`.
fn directions_and_prefixes(version: &str, remote_is_midge: bool) {
    let dir = TempDir::new();
    let (_mosq, _rmidge, rport);
    if remote_is_midge {
        let m = Midge::start("allow_anonymous true\n");
        rport = m.port;
        _rmidge = Some(m);
        _mosq = None;
    } else {
        rport = free_port();
        _mosq = Some(Mosquitto::start(&dir, rport, ""));
        _rmidge = None;
    }
    let m = bridged(
        rport,
        &format!(
            "bridge_protocol_version {version}\n\
             topic sensors/# out 1 local/ site1/\n\
             topic cmd/+ in 2 \"\" site1/\n\
             topic chat/# both 1\n\
             topic \"\" out 0 exact/local exact/remote\n"
        ),
    );
    wait_bridge_up(&m);
    let mut remote = subscriber(
        rport,
        "rsub",
        &[("site1/sensors/#", 2), ("chat/#", 2), ("exact/#", 2)],
    );
    let mut local = subscriber(m.port, "lsub", &[("cmd/#", 2), ("chat/#", 2)]);
    let mut lpub = m.client();
    lpub.handshake("lpub", true, 60, false);
    let mut rpub = Client::connect(rport);
    rpub.handshake("rpub", true, 60, false);

    // out, with the local prefix replaced by the remote one; QoS the lower of both.
    publish_acked(&mut lpub, "local/sensors/t1", b"21.5", 2, false, 1);
    assert_eq!(
        take_publish(&mut remote),
        ("site1/sensors/t1".into(), b"21.5".to_vec(), 1, false)
    );
    // Not under an out topic: stays local.
    publish_acked(&mut lpub, "sensors/t1", b"x", 1, false, 2);
    // "" pattern: the prefixes are the whole topics.
    publish_acked(&mut lpub, "exact/local", b"e", 1, false, 3);
    assert_eq!(
        take_publish(&mut remote),
        ("exact/remote".into(), b"e".to_vec(), 0, false)
    );
    // in, remote prefix removed, QoS 2 both ways.
    publish_acked(&mut rpub, "site1/cmd/go", b"run", 2, false, 4);
    assert_eq!(
        take_publish(&mut local),
        ("cmd/go".into(), b"run".to_vec(), 2, false)
    );
    // both: each way once, and not echoed back.
    publish_acked(&mut lpub, "chat/a", b"from local", 1, false, 5);
    assert_eq!(
        take_publish(&mut remote),
        ("chat/a".into(), b"from local".to_vec(), 1, false)
    );
    assert_eq!(
        take_publish(&mut local),
        ("chat/a".into(), b"from local".to_vec(), 1, false)
    );
    if version == "mqttv311" && remote_is_midge {
        // A 3.1.1 remote that is not a mosquitto has neither No Local nor bridge mode: it
        // echoes once, and the local subscription's No Local stops the loop there.
        assert_eq!(
            take_publish(&mut local),
            ("chat/a".into(), b"from local".to_vec(), 1, false)
        );
    }
    publish_acked(&mut rpub, "chat/b", b"from remote", 1, false, 6);
    assert_eq!(
        take_publish(&mut local),
        ("chat/b".into(), b"from remote".to_vec(), 1, false)
    );
    assert_eq!(
        take_publish(&mut remote),
        ("chat/b".into(), b"from remote".to_vec(), 1, false)
    );
    // No Local (MQTT 5) or mosquitto's bridge mode (try_private): nothing came back.
    local.expect_silence(300);
    remote.expect_silence(300);
}

#[test]
fn mosquitto_remote_v311_in_out_both_with_prefixes() {
    directions_and_prefixes("mqttv311", false);
}

#[test]
fn mosquitto_remote_v5_in_out_both_with_prefixes() {
    directions_and_prefixes("mqttv50", false);
}

#[test]
fn midge_remote_v311_in_out_both_with_prefixes() {
    directions_and_prefixes("mqttv311", true);
}

#[test]
fn midge_remote_v5_in_out_both_with_prefixes() {
    directions_and_prefixes("mqttv50", true);
}

/// A wildcard in the middle of a remapped pattern; retained messages keep their flag with
/// bridge_outgoing_retain true (the default) and lose it with false.
#[test]
fn remapped_wildcards_and_outgoing_retain() {
    for keep in [true, false] {
        let dir = TempDir::new();
        let rport = free_port();
        let _r = Mosquitto::start(&dir, rport, "");
        let m = bridged(
            rport,
            &format!("bridge_outgoing_retain {keep}\ntopic +/temp/# out 1 home/ hq/pi1/\n"),
        );
        wait_bridge_up(&m);
        let mut lpub = m.client();
        lpub.handshake("lpub", true, 60, false);
        publish_acked(&mut lpub, "home/kitchen/temp/now", b"20", 1, true, 1);
        publish_acked(&mut lpub, "home/kitchen/humidity", b"40", 1, true, 2);
        // A subscriber arriving later sees the retained message only if it kept its flag.
        std::thread::sleep(Duration::from_millis(300));
        let mut remote = subscriber(rport, "rsub", &[("hq/#", 1)]);
        if keep {
            assert_eq!(
                take_publish(&mut remote),
                ("hq/pi1/kitchen/temp/now".into(), b"20".to_vec(), 1, true)
            );
        }
        remote.expect_silence(300);
    }
}

/// The local state notification: retained `0` while down, `1` once connected; and on the
/// remote the will `0` when midge goes away.
#[test]
fn notifications_local_and_remote_will() {
    let dir = TempDir::new();
    let rport = free_port();
    let _r = Mosquitto::start(&dir, rport, "");
    let m = bridged(rport, "remote_clientid pi1\ntopic x/# out 1\n");
    wait_bridge_up(&m);
    let mut local = subscriber(m.port, "l", &[("$SYS/broker/connection/pi1/state", 0)]);
    assert_eq!(
        take_publish(&mut local),
        (
            "$SYS/broker/connection/pi1/state".into(),
            b"1".to_vec(),
            0,
            true
        )
    );
    let mut remote = subscriber(rport, "r", &[("$SYS/broker/connection/pi1/state", 1)]);
    assert_eq!(
        take_publish(&mut remote),
        (
            "$SYS/broker/connection/pi1/state".into(),
            b"1".to_vec(),
            0,
            true
        )
    );
    drop(m); // SIGKILL: the remote publishes the will.
    let (t, p, _, _) = take_publish(&mut remote);
    assert_eq!(
        (t.as_str(), &p[..]),
        ("$SYS/broker/connection/pi1/state", &b"0"[..])
    );
}

/// Boot without the remote: the bridge retries with back-off, queues QoS 1 messages
/// meanwhile and sends them in order once the remote appears.
#[test]
fn boot_without_remote_queues_and_connects_when_it_appears() {
    let dir = TempDir::new();
    let rport = free_port();
    let m = bridged(rport, "topic q/# out 1\n");
    let mut lpub = m.client();
    lpub.handshake("lpub", true, 60, false);
    for i in 0..50u16 {
        publish_acked(&mut lpub, "q/a", format!("{i}").as_bytes(), 1, false, i + 1);
    }
    m.wait_log("Bridge up: connection failed")
        .expect("a failed attempt is logged");
    // The remote appears with a persistent subscriber already known (saved by a first run).
    let remote = Mosquitto::start(
        &dir,
        rport,
        &format!(
            "persistence true\npersistence_location {}/\n",
            dir.0.display()
        ),
    );
    let mut s = Client::connect(rport);
    s.handshake("rsub", false, 60, false);
    s.send(&subscribe(1, &[("q/#", 1)]));
    s.expect(&suback(1, &[1]));
    wait_bridge_up(&m);
    for i in 0..50 {
        let (t, p, q, _) = take_publish(&mut s);
        assert_eq!((t.as_str(), q), ("q/a", 1));
        assert_eq!(p, format!("{i}").as_bytes(), "in order");
    }
    drop(remote);
}

/// Counts what a persistent subscriber on the remote receives, reconnecting as the remote
/// comes and goes: payloads are "Q:SEQ".
/// What the counting subscriber received: (QoS of the payload, sequence number, number of
/// its connection, DUP).
type Arrival = (u8, u64, u32, bool);

fn counting_subscriber(port: u16, stop: Arc<AtomicBool>, got: Arc<Mutex<Vec<Arrival>>>) {
    let mut first = true;
    let mut nconn = 0;
    // QoS 2 packet identifiers received and not yet released (the session outlives
    // connections).
    let mut pending = std::collections::HashSet::new();
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        nconn += 1;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let _ = s.set_nodelay(true);
        if s.write_all(&connect("counter", false, 60)).is_err() {
            continue;
        }
        if first {
            let _ = s.write_all(&subscribe(1, &[("site/#", 2)]));
            first = false;
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 65536];
        'conn: while !stop.load(Ordering::SeqCst) {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => break,
            }
            loop {
                if buf.len() < 2 {
                    break;
                }
                let mut len = 0usize;
                let mut i = 1;
                let mut ok = false;
                while i < buf.len() && i < 5 {
                    len |= ((buf[i] & 0x7f) as usize) << (7 * (i - 1));
                    if buf[i] & 0x80 == 0 {
                        ok = true;
                        break;
                    }
                    i += 1;
                }
                if !ok || buf.len() < i + 1 + len {
                    break;
                }
                let p: Vec<u8> = buf.drain(..i + 1 + len).collect();
                let body = &p[i + 1..];
                match p[0] >> 4 {
                    3 => {
                        let qos = (p[0] >> 1) & 3;
                        let tl = u16::from_be_bytes([body[0], body[1]]) as usize;
                        let mut j = 2 + tl;
                        let mut pid = 0;
                        if qos > 0 {
                            pid = u16::from_be_bytes([body[j], body[j + 1]]);
                            j += 2;
                        }
                        let text = String::from_utf8_lossy(&body[j..]).to_string();
                        // A QoS 2 message resent before PUBREL is the same delivery
                        // [MQTT-4.3.3-9]: counted once.
                        let fresh = qos != 2 || pending.insert(pid);
                        if let (true, Some((q, n))) = (fresh, text.split_once(':')) {
                            got.lock().unwrap().push((
                                q.parse().unwrap_or(9),
                                n.parse().unwrap_or(0),
                                nconn,
                                p[0] & 8 != 0,
                            ));
                        }
                        let a = match qos {
                            1 => Some(ack(0x40, pid)),
                            2 => Some(ack(0x50, pid)),
                            _ => None,
                        };
                        if let Some(a) = a {
                            if s.write_all(&a).is_err() {
                                break 'conn;
                            }
                        }
                    }
                    6 => {
                        let pid = u16::from_be_bytes([body[0], body[1]]);
                        pending.remove(&pid);
                        if s.write_all(&ack(0x70, pid)).is_err() {
                            break 'conn;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Publishes "Q:SEQ" with QoS 1 and 2 in turn to `port` at a steady rate until `stop`,
/// reconnecting when midge restarts; records the sequence numbers midge acknowledged.
fn steady_publisher(
    port: Arc<Mutex<u16>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u8, u64)>>>,
    sent: Arc<Mutex<u64>>,
) {
    let mut seq = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let p = *port.lock().unwrap();
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", p)) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = c.set_nodelay(true);
        let mut b = [0u8; 4];
        if c.write_all(&connect("steady", true, 60)).is_err() || c.read_exact(&mut b).is_err() {
            continue;
        }
        while !stop.load(Ordering::SeqCst) {
            seq += 1;
            let qos = if seq % 2 == 0 { 2 } else { 1 };
            let pid = (seq % 60000) as u16 + 1;
            let topic = if qos == 1 { "local/q1" } else { "local/q2" };
            *sent.lock().unwrap() += 1;
            let payload = format!("{qos}:{seq}");
            if c.write_all(&publish(topic, payload.as_bytes(), qos, false, pid))
                .is_err()
            {
                break;
            }
            // PUBACK, or PUBREC then PUBREL/PUBCOMP: acknowledged once PUBACK/PUBREC is in.
            if c.read_exact(&mut b).is_err() {
                break;
            }
            acked.lock().unwrap().push((qos, seq));
            if qos == 2 && (c.write_all(&ack(0x62, pid)).is_err() || c.read_exact(&mut b).is_err())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(4));
        }
    }
}

/// The remote of the fault test: midge or mosquitto.
enum Remote {
    Midge(Midge),
    Mosquitto(Mosquitto),
}

impl Remote {
    fn stop(self) {
        match self {
            Remote::Mosquitto(m) => m.stop(),
            Remote::Midge(mut m) => {
                signal(m.pid(), "-TERM");
                let deadline = Instant::now() + patience();
                while m.alive() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// A packet the bridge sent to the remote: a PUBLISH of "Q:SEQ", or a PUBREL.
#[derive(Clone, Copy, Debug)]
enum Sent {
    Publish {
        dup: bool,
        qos: u8,
        seq: u64,
        pid: u16,
    },
    Pubrel(u16),
}

/// A TCP relay between the bridge and the remote that records, per connection, the
/// PUBLISH packets the bridge sends (3.1.1 framing). A connection it cannot pass on to the
/// remote (stopped) is closed at once, as a refused connect would be.
fn recording_proxy(
    listener: TcpListener,
    remote: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Vec<Sent>>>>,
) {
    listener.set_nonblocking(true).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let Ok((down, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let _ = down.set_nonblocking(false);
        let Ok(up) = TcpStream::connect(("127.0.0.1", remote)) else {
            continue;
        };
        let _ = down.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let n = {
            let mut c = conns.lock().unwrap();
            c.push(Vec::new());
            c.len() - 1
        };
        let (mut d2, mut u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
        let (d3, u3) = (down.try_clone().unwrap(), up.try_clone().unwrap());
        // Remote to bridge: passed on as is.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut u2, &mut d2);
            let _ = d2.shutdown(std::net::Shutdown::Both);
            let _ = u2.shutdown(std::net::Shutdown::Both);
        });
        // Bridge to remote: passed on, PUBLISH packets recorded.
        let conns = conns.clone();
        std::thread::spawn(move || {
            let (mut down, mut up) = (down, up);
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let k = match down.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => k,
                };
                buf.extend_from_slice(&chunk[..k]);
                while let Some(p) = take_packet(&mut buf) {
                    let body = &p.1;
                    if p.0 >> 4 == 3 {
                        let qos = (p.0 >> 1) & 3;
                        let tl = u16::from_be_bytes([body[0], body[1]]) as usize;
                        let mut j = 2 + tl;
                        let mut pid = 0;
                        if qos > 0 {
                            pid = u16::from_be_bytes([body[j], body[j + 1]]);
                            j += 2;
                        }
                        let text = String::from_utf8_lossy(&body[j..]).to_string();
                        if let Some((_, s)) = text.split_once(':') {
                            conns.lock().unwrap()[n].push(Sent::Publish {
                                dup: p.0 & 8 != 0,
                                qos,
                                seq: s.parse().unwrap_or(0),
                                pid,
                            });
                        }
                    } else if p.0 == 0x62 && body.len() == 2 {
                        let pid = u16::from_be_bytes([body[0], body[1]]);
                        conns.lock().unwrap()[n].push(Sent::Pubrel(pid));
                    }
                }
                if up.write_all(&chunk[..k]).is_err() {
                    break;
                }
            }
            let _ = d3.shutdown(std::net::Shutdown::Both);
            let _ = u3.shutdown(std::net::Shutdown::Both);
        });
    }
}

/// Where the PUBLISH of `seq` and the PUBRELs of its packet identifier went: (connection,
/// position on it, packet).
fn wire_story(wire: &[Vec<Sent>], seq: u64) -> String {
    let mut pid = None;
    let mut out = Vec::new();
    for (n, c) in wire.iter().enumerate() {
        for (i, x) in c.iter().enumerate() {
            match *x {
                Sent::Publish { seq: s, pid: p, .. } if s == seq => {
                    pid = Some(p);
                    out.push(format!("{n}/{i}/{}: {x:?}", c.len()));
                }
                Sent::Pubrel(p) if Some(p) == pid => {
                    out.push(format!("{n}/{i}/{}: {x:?}", c.len()))
                }
                _ => {}
            }
        }
    }
    out.join(", ")
}

/// The first whole MQTT packet in `buf` as (first byte, body), removed from `buf`.
fn take_packet(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        len |= ((b & 0x7f) as usize) << (7 * (i - 1));
        if b & 0x80 == 0 {
            break;
        }
        i += 1;
        if i > 4 {
            return None;
        }
    }
    if buf.len() < i + 1 + len {
        return None;
    }
    let p: Vec<u8> = buf.drain(..i + 1 + len).collect();
    Some((p[0], p[i + 1..].to_vec()))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The remote (midge) is stopped and started again several times, and midge itself once (with
/// persistence), while a local publisher sends QoS 1 and QoS 2 messages at a steady rate:
/// every acknowledged QoS 1 message reaches the remote at least once and every QoS 2 message
/// exactly once, in the order published. The bridge reaches the remote through a relay that
/// records what it sends: on every connection, per QoS, the PUBLISH packets go out in the
/// order published (unacknowledged ones again first, with DUP, in their original order
/// [MQTT-4.4.0-1]), and the first transmissions over the whole run are in order
/// [MQTT-4.6.0-2] [MQTT-4.6.0-3].
#[test]
fn faults_midge_remote_and_midge_restarts_lose_nothing() {
    faults(true);
}

/// The same with Debian's mosquitto as the remote: nothing lost, no QoS 2 duplicate, and the
/// bridge's own sends checked in order as above. The order in which mosquitto hands the
/// messages to its subscriber is printed, not asserted: after its restarts mosquitto 2.0.11
/// now and then delivers one late. In a recorded run (30 s, 8 remote restarts) QoS 2 message
/// 1688 reached the subscriber after 1700, although the relay saw the bridge send 1688 once,
/// without DUP, before 1690..1700 on the same connection: the reordering is mosquitto's.
/// About one 30 s run in eight shows it (1 to 6 messages of some 5,000-7,000); with midge as
/// the remote, fed by the same bridge, none. `MIDGE_TEST_MOSQUITTO=PATH` runs another
/// mosquitto build as the remote.
#[test]
fn faults_mosquitto_remote_and_midge_restarts_lose_nothing() {
    faults(false);
}

fn faults(remote_midge: bool) {
    let secs = env_num("MIDGE_BRIDGE_FAULT_SECS", 8);
    let restarts = env_num("MIDGE_BRIDGE_FAULT_RESTARTS", 3);
    let rdir = TempDir::new();
    let ldir = TempDir::new();
    let rport = free_port();
    let rconf = format!(
        "persistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 20\n",
        rdir.0.display()
    );
    let rconf_midge = format!(
        "listener {rport} 127.0.0.1\nallow_anonymous true\npersistence true\n\
         persistence_location {}/\nmax_queued_messages 0\n",
        rdir.0.display()
    );
    let rconf_path = rdir.write("remote-midge.conf", &rconf_midge);
    let start_remote = || -> Remote {
        if remote_midge {
            Remote::Midge(Midge::spawn(
                TempDir::new(),
                &["-c", rconf_path.to_str().unwrap()],
            ))
        } else {
            Remote::Mosquitto(Mosquitto::start(&rdir, rport, &rconf))
        }
    };
    let mut remote = Some(start_remote());
    // The bridge reaches the remote through a relay that records what it sends.
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let pport = relay.local_addr().unwrap().port();
    let stop_relay = Arc::new(AtomicBool::new(false));
    let wire = Arc::new(Mutex::new(Vec::new()));
    let relay = {
        let (stop, wire) = (stop_relay.clone(), wire.clone());
        std::thread::spawn(move || recording_proxy(relay, rport, stop, wire))
    };
    let lport = free_port();
    let lconf = format!(
        "listener {lport} 127.0.0.1\nallow_anonymous true\npersistence true\n\
         persistence_location {}/\nmax_queued_messages 0\n\
         connection up\naddress 127.0.0.1:{pport}\nrestart_timeout 1 2\n\
         topic # out 2 local/ site/\n",
        ldir.0.display()
    );
    let conf_path = ldir.write("midge.conf", &lconf);
    let start_midge = || Midge::spawn(TempDir::new(), &["-c", conf_path.to_str().unwrap()]);
    let mut midge = Some(start_midge());
    wait_bridge_up(midge.as_ref().unwrap());

    let stop_sub = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::new()));
    let sub = {
        let (stop, got) = (stop_sub.clone(), got.clone());
        std::thread::spawn(move || counting_subscriber(rport, stop, got))
    };
    std::thread::sleep(Duration::from_millis(300));
    let stop_pub = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(Mutex::new(0u64));
    let port = Arc::new(Mutex::new(lport));
    let publ = {
        let (port, stop, acked, sent) =
            (port.clone(), stop_pub.clone(), acked.clone(), sent.clone());
        std::thread::spawn(move || steady_publisher(port, stop, acked, sent))
    };
    let start = Instant::now();
    let events = restarts + 1;
    let step = Duration::from_millis(secs * 1000 / (events + 1));
    for e in 0..events {
        std::thread::sleep(step);
        if e == events / 2 {
            // midge itself: a clean stop saves the queue; the publisher reconnects.
            let m = midge.take().unwrap();
            signal(m.pid(), "-TERM");
            let deadline = Instant::now() + patience();
            let mut m = m;
            while m.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(m.exit_code(), Some(0), "{}", m.log_text());
            midge = Some(start_midge());
        } else {
            remote.take().unwrap().stop();
            std::thread::sleep(Duration::from_millis(300));
            remote = Some(start_remote());
        }
    }
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop_pub.store(true, Ordering::SeqCst);
    publ.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    // Wait for the remote subscriber to have everything (or for patience to run out).
    let deadline = Instant::now() + patience() * 2;
    loop {
        let g = got.lock().unwrap();
        let have: std::collections::HashSet<u64> = g.iter().map(|x| x.1).collect();
        if acked.iter().all(|(_, s)| have.contains(s)) || Instant::now() > deadline {
            break;
        }
        drop(g);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop_sub.store(true, Ordering::SeqCst);
    sub.join().unwrap();
    let got = got.lock().unwrap().clone();
    let mut count: HashMap<u64, usize> = HashMap::new();
    for (_, s, ..) in &got {
        *count.entry(*s).or_default() += 1;
    }
    let lost: Vec<u64> = acked
        .iter()
        .filter(|(_, s)| !count.contains_key(s))
        .map(|x| x.1)
        .collect();
    let dup1 =
        got.iter().filter(|x| x.0 == 1).count() - count.iter().filter(|(s, _)| *s % 2 == 1).count();
    let dup2: Vec<u64> = count
        .iter()
        .filter(|(s, n)| *s % 2 == 0 && **n > 1)
        .map(|(s, _)| *s)
        .collect();
    // In order: the first arrival of each sequence number, per QoS, increases.
    let mut seen = std::collections::HashSet::new();
    let mut last = [0u64; 3];
    let mut out_of_order = 0;
    let mut disorder_seqs = std::collections::HashSet::new();
    for (q, s, ..) in &got {
        if seen.insert(*s) {
            let q = (*q as usize).min(2);
            if *s < last[q] {
                out_of_order += 1;
                println!("out of order: QoS {q} {s} after {}", last[q]);
                disorder_seqs.insert(*s);
            }
            last[q] = *s;
        }
    }
    stop_relay.store(true, Ordering::SeqCst);
    relay.join().unwrap();
    let wire = wire.lock().unwrap().clone();
    // What the bridge sent [MQTT-4.4.0-1] [MQTT-4.6.0-2..3]: on each connection, per QoS,
    // sequence numbers increase (the resent in-flight ones first, in their original order,
    // then the new ones); over the whole run, the first transmission of each one increases.
    let mut wire_disorder = Vec::new();
    let mut first_sent = std::collections::HashSet::new();
    let mut last_first = [0u64; 3];
    let (mut resent, mut first_disorder) = (0, Vec::new());
    for (n, c) in wire.iter().enumerate() {
        let mut last = [0u64; 3];
        for &x in c {
            let Sent::Publish {
                dup, qos: q, seq, ..
            } = x
            else {
                continue;
            };
            let q = (q as usize).min(2);
            if seq <= last[q] {
                wire_disorder.push((n, q, seq, last[q]));
            }
            last[q] = seq;
            resent += dup as usize;
            if first_sent.insert(seq) {
                if seq < last_first[q] {
                    first_disorder.push((q, seq, last_first[q]));
                }
                last_first[q] = seq;
            }
        }
    }
    let mut disorder_seqs: Vec<u64> = disorder_seqs.into_iter().collect();
    disorder_seqs.sort();
    for s in &disorder_seqs {
        println!("  {s}: {}", wire_story(&wire, *s));
        let at: Vec<_> = got.iter().filter(|x| x.1 == *s).collect();
        println!("  {s}: the subscriber got (QoS, seq, connection, DUP) {at:?}");
    }
    let mut last_seen = [0u64; 3];
    let mut seen2 = std::collections::HashSet::new();
    for (i, (q, s, ..)) in got.iter().enumerate() {
        let q = (*q as usize).min(2);
        if seen2.insert(*s) {
            if *s < last_seen[q] {
                let from = i.saturating_sub(12);
                println!(
                    "  subscriber arrivals around {s}: {:?}",
                    &got[from..(i + 4).min(got.len())]
                );
                println!("  {}: {}", last_seen[q], wire_story(&wire, last_seen[q]));
            }
            last_seen[q] = *s;
        }
    }
    let sent = *sent.lock().unwrap();
    println!(
        "bridge to remote: {} connections, {} PUBLISH, {resent} with DUP, out of order on a connection {}, first transmissions out of order {}",
        wire.len(),
        wire.iter()
            .flatten()
            .filter(|x| matches!(x, Sent::Publish { .. }))
            .count(),
        wire_disorder.len(),
        first_disorder.len()
    );
    println!(
        "bridge faults ({} remote, {secs} s, {restarts} remote restarts, 1 midge restart): sent {sent}, acknowledged {}, received {}, QoS 1 duplicates {dup1}, QoS 2 duplicates {}, lost {}, out of order {out_of_order}",
        if remote_midge { "midge" } else { "mosquitto" },
        acked.len(),
        got.len(),
        dup2.len(),
        lost.len()
    );
    assert!(acked.len() as u64 > secs * 20, "the publisher hardly ran");
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(dup2.is_empty(), "QoS 2 duplicates: {dup2:?}");
    assert!(
        wire_disorder.is_empty(),
        "sent out of order: {wire_disorder:?}"
    );
    assert!(
        first_disorder.is_empty(),
        "first sent out of order: {first_disorder:?}"
    );
    if remote_midge {
        assert_eq!(out_of_order, 0);
    }
    drop(remote);
    drop(midge);
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is needed for the TLS bridge test: run scripts/test.sh");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA, a server certificate for localhost / 127.0.0.1 and a client certificate, and a
/// second CA that signed nothing.
fn pki(d: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other"] {
        let subj = format!("/CN=bridge test {ca}");
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut a = vec!["req", "-x509", "-days", "30", "-subj", &subj];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &crt]);
        openssl(d, &a);
    }
    std::fs::write(
        d.join("ext.cnf"),
        "[server]\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n[client]\nextendedKeyUsage = clientAuth\n",
    )
    .unwrap();
    for (name, subj, ext) in [
        ("server", "/CN=localhost", "server"),
        ("client", "/CN=pi1", "client"),
    ] {
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
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &crt,
            ],
        );
    }
}

/// A TLS remote (mosquitto, client certificate required), reached by host name through the
/// resolver thread, with MQTT 5 and ALPN; a bridge trusting another CA does not connect and
/// says why.
#[test]
fn tls_remote_with_client_certificate() {
    let dir = TempDir::new();
    let d = dir.0.clone();
    pki(&d);
    let p = |n: &str| d.join(n).display().to_string();
    let rport = free_port();
    let _r = Mosquitto::start(
        &dir,
        rport,
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            p("ca.crt"),
            p("server.crt"),
            p("server.key")
        ),
    );
    let tls = |ca: &str| {
        format!(
            "address localhost:{rport}\nbridge_cafile {}\nbridge_certfile {}\nbridge_keyfile {}\n\
             bridge_alpn mqtt\nbridge_protocol_version mqttv50\ntopic t/# out 1\n",
            p(ca),
            p("client.crt"),
            p("client.key")
        )
    };
    let m = Midge::start(&format!(
        "allow_anonymous true\nconnection up\nrestart_timeout 1 2\n{}",
        tls("ca.crt")
    ));
    wait_bridge_up(&m);
    // The remote only speaks TLS: its subscriber is mosquitto_sub, with a certificate too.
    let sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "localhost",
            "-p",
            &rport.to_string(),
            "--cafile",
            &p("ca.crt"),
            "--cert",
            &p("client.crt"),
            "--key",
            &p("client.key"),
            "-t",
            "t/#",
            "-C",
            "1",
            "-W",
            "10",
            "-q",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    std::thread::sleep(Duration::from_millis(500));
    let mut lpub = m.client();
    lpub.handshake("lpub", true, 60, false);
    publish_acked(&mut lpub, "t/1", b"over tls", 1, false, 1);
    let out = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over tls\n");

    let bad = Midge::start(&format!(
        "allow_anonymous true\nconnection up\nrestart_timeout 1 2\n{}",
        tls("other.crt")
    ));
    let line = bad
        .wait_log("TLS error")
        .unwrap_or_else(|| panic!("no TLS error logged:\n{}", bad.log_text()));
    assert!(line.contains("certificate"), "{line}");
    assert!(!bad.log_text().contains("Bridge up connected"));
}

/// A bridge's unreadable CA file stops start-up with a message naming the option and file;
/// an unsupported bridge option names its line.
#[test]
fn bridge_config_errors_stop_start_up() {
    let dir = TempDir::new();
    let conf = dir.write(
        "m.conf",
        "listener 0 127.0.0.1\nconnection up\naddress 127.0.0.1:1\nbridge_cafile /nonexistent/ca.crt\n",
    );
    let (code, log) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("bridge_cafile '/nonexistent/ca.crt'"), "{log}");
    let conf = dir.write(
        "n.conf",
        "listener 0 127.0.0.1\nconnection up\naddress 127.0.0.1:1\nbridge_psk 00ff\n",
    );
    let (code, log) = Midge::run_to_exit(&["-c", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(":4:") && log.contains("bridge_psk"), "{log}");
}

/// Round trips of QoS 1 PUBLISH -> PUBACK on `c` for `dur`: the 99th percentile, in ms.
fn p99_round_trip(c: &mut Client, topic: &str, dur: Duration) -> f64 {
    let mut times = Vec::new();
    let start = Instant::now();
    let mut pid = 0u16;
    while start.elapsed() < dur {
        pid = pid % 60000 + 1;
        let t = Instant::now();
        publish_acked(c, topic, b"ping", 1, false, pid);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(2));
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[(times.len() * 99 / 100).min(times.len() - 1)]
}

/// A remote that accepts the connection and never answers (a stalled broker): local clients'
/// round trips stay fast while the bridge waits for CONNACK (and gives up after 10 s).
#[test]
fn a_remote_that_never_answers_does_not_stall_local_clients() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = silent.local_addr().unwrap().port();
    // Accepted and held, never read from or written to.
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for s in silent.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let m = Midge::start(&format!(
        "allow_anonymous true\nconnection up\naddress 127.0.0.1:{sport}\nrestart_timeout 1 2\n\
         topic # out 1\n"
    ));
    m.wait_log("Connecting bridge up").unwrap();
    let mut c = m.client();
    c.handshake("rtt", true, 60, false);
    let p99 = p99_round_trip(&mut c, "x/y", Duration::from_secs(2));
    println!("stalled remote: local QoS 1 round trip p99 {p99:.2} ms");
    assert!(!held.lock().unwrap().is_empty(), "the bridge connected");
    let limit = if std::env::var_os("XCHECK_EXEC_WRAPPER").is_some() {
        200.0
    } else {
        25.0
    };
    assert!(p99 < limit, "p99 {p99:.2} ms");
    assert!(!m.log_text().contains("Bridge up connected"));
}

/// `$SYS/broker/bridge/NAME/{connected,queued,reconnects}` each `sys_interval`: a bridge
/// whose remote is away shows 0, the messages waiting for it, and no reconnects yet (its next
/// attempt is a minute away, so a slow run under emulation cannot have made one).
#[test]
fn sys_topics_show_state_queue_and_reconnects() {
    let m = Midge::start(&format!(
        "allow_anonymous true\nsys_interval 1\nconnection up\naddress 127.0.0.1:{}\n\
         restart_timeout 60\ntopic q/# out 1\n",
        free_port()
    ));
    let mut p = m.client();
    p.handshake("p", true, 60, false);
    for i in 1..=3 {
        publish_acked(&mut p, "q/x", b"m", 1, false, i);
    }
    std::thread::sleep(Duration::from_millis(1100));
    let mut s = subscriber(m.port, "s", &[("$SYS/broker/bridge/up/#", 0)]);
    let mut got = HashMap::new();
    while got.len() < 3 {
        let (t, v, _, _) = take_publish(&mut s);
        got.insert(t, String::from_utf8(v).unwrap());
    }
    assert_eq!(got["$SYS/broker/bridge/up/connected"], "0");
    assert_eq!(got["$SYS/broker/bridge/up/queued"], "3");
    assert_eq!(got["$SYS/broker/bridge/up/reconnects"], "0");
}

/// A remote whose SYNs are dropped (blackholed: a listener whose accept queue is full and never
/// accepted, so the kernel drops new SYNs and the connect stays pending): local round trips stay
/// fast while the bridge's connect waits, and the attempt is given up by the bridge's deadline
/// rather than the kernel's minutes of SYN retries.
#[test]
fn a_blackholed_remote_does_not_stall_local_clients() {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let port = l.local_addr().unwrap().as_socket().unwrap().port();
    // Fill the accept queue; later SYNs are dropped.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&l.local_addr().unwrap());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let m = Midge::start(&format!(
        "allow_anonymous true\nconnection up\naddress 127.0.0.1:{port}\nrestart_timeout 1 2\n\
         topic # out 1\n"
    ));
    m.wait_log("Connecting bridge up").unwrap();
    let mut c = m.client();
    c.handshake("rtt", true, 60, false);
    let p99 = p99_round_trip(&mut c, "x/y", Duration::from_secs(2));
    println!("blackholed remote: local QoS 1 round trip p99 {p99:.2} ms");
    let limit = if std::env::var_os("XCHECK_EXEC_WRAPPER").is_some() {
        200.0
    } else {
        25.0
    };
    assert!(p99 < limit, "p99 {p99:.2} ms");
    // Neither connected nor refused: the connect is still pending.
    let log = m.log_text();
    assert!(
        !log.contains("Bridge up connected") && !log.contains("connection failed"),
        "{log}"
    );
    drop(l);
}

/// bridge_max_packet_size: a message whose PUBLISH would be larger is not sent to the remote
/// (3.1.1 and MQTT 5 remotes); the next one is.
#[test]
fn bridge_max_packet_size_holds_back_large_messages() {
    for version in ["mqttv311", "mqttv50"] {
        let dir = TempDir::new();
        let rport = free_port();
        let _r = Mosquitto::start(&dir, rport, "");
        let m = bridged(
            rport,
            &format!("bridge_protocol_version {version}\nbridge_max_packet_size 100\ntopic big/# out 1\n"),
        );
        wait_bridge_up(&m);
        let mut remote = subscriber(rport, "r", &[("big/#", 1)]);
        let mut lpub = m.client();
        lpub.handshake("p", true, 60, false);
        publish_acked(&mut lpub, "big/a", &[b'x'; 200], 1, false, 1);
        publish_acked(&mut lpub, "big/b", b"small", 1, false, 2);
        assert_eq!(
            take_publish(&mut remote),
            ("big/b".into(), b"small".to_vec(), 1, false),
            "{version}"
        );
        remote.expect_silence(200);
    }
}

/// Several addresses without round_robin: a failed first address moves the bridge to the
/// next one, and once the first one answers again the bridge goes back to it (checked every
/// 5 s, as mosquitto does).
#[test]
fn failover_to_the_second_address_and_back_to_the_first() {
    let dir1 = TempDir::new();
    let dir2 = TempDir::new();
    let (p1, p2) = (free_port(), free_port());
    let _second = Mosquitto::start(&dir2, p2, "");
    let m = Midge::start(&format!(
        "allow_anonymous true\nconnection up\naddress 127.0.0.1:{p1} 127.0.0.1:{p2}\n\
         restart_timeout 1\ntopic fo/# out 1\n"
    ));
    wait_bridge_up(&m);
    assert!(m
        .log_text()
        .contains(&format!("Connecting bridge up (127.0.0.1:{p2})")));
    let _first = Mosquitto::start(&dir1, p1, "");
    m.wait_log("the first address answers again")
        .unwrap_or_else(|| panic!("no switch back:\n{}", m.log_text()));
    let line = format!("Connecting bridge up (127.0.0.1:{p1})");
    m.wait_log(&line).unwrap();
    // Connected to the first address again: a message published now arrives there.
    let deadline = Instant::now() + patience();
    let mut s = subscriber(p1, "s1", &[("fo/#", 1)]);
    let mut lpub = m.client();
    lpub.handshake("p", true, 60, false);
    loop {
        let n = m.log_text().matches("Bridge up connected").count();
        if n >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", m.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    publish_acked(&mut lpub, "fo/x", b"back", 1, false, 1);
    assert_eq!(
        take_publish(&mut s),
        ("fo/x".into(), b"back".to_vec(), 1, false)
    );
}
