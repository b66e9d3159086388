//! Hostile input: for each rule of MQTT 3.1.1 and 5.0 that says the server MUST close the
//! connection (or that calls a packet malformed or a protocol error), a client breaks the rule
//! and the test checks the exact outcome: every byte the broker sends before closing (nothing at
//! all, a CONNACK with the right return or reason code, or an MQTT 5 DISCONNECT with the right
//! reason code), then the close. After each batch a watcher that connected first is still
//! served, and data sent after a refused CONNECT was not processed. Then the connect timeout:
//! a silent connection and one that trickles its CONNECT in are closed in time.
//!
//! The cases of a batch run at the same time, one connection each, so a batch takes about as
//! long as its slowest case.
//!
//! MQTT 5 reason codes: mosquitto 2.0.20's, which are within what the spec allows and which
//! tests/differential.rs checks byte for byte. A broken CONNECT (or one over the Maximum
//! Packet Size), a second CONNECT, a remaining length of five bytes and a PINGREQ with a body
//! are closed without a word. Otherwise the packet type and the fixed-header flags are judged
//! before the body: CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH and the reserved type 0 from a
//! client are a Protocol Error (0x82), wrong flags a Malformed Packet (0x81); then 0x81 for
//! bytes that break the encoding (lengths, UTF-8, topic names and filters, anything wrong in a
//! SUBSCRIBE or UNSUBSCRIBE) and 0x82 for a well-formed packet whose content is not allowed
//! (a property on the wrong packet, a property twice).

mod common;
use common::*;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ----- what a case is and how it runs --------------------------------------------------------

/// What the client does before sending the offending bytes.
#[derive(Clone, Copy, Debug)]
enum Before {
    /// Nothing: the offending bytes are the first on the connection.
    Nothing,
    /// An accepted MQTT 3.1.1 CONNECT.
    V311,
    /// An accepted MQTT 5 CONNECT.
    V5,
}

struct Case {
    /// The spec clause broken, and how.
    clause: &'static str,
    before: Before,
    send: Vec<u8>,
    /// Every byte the broker must send before it closes the connection.
    want: Vec<u8>,
}

fn case(clause: &'static str, before: Before, send: Vec<u8>, want: Vec<u8>) -> Case {
    Case {
        clause,
        before,
        send,
        want,
    }
}

/// Nothing at all is sent before the close.
fn nothing() -> Vec<u8> {
    Vec::new()
}

/// The first bytes on a connection; `want` before the close.
fn fresh(clause: &'static str, send: Vec<u8>, want: Vec<u8>) -> Case {
    case(clause, Before::Nothing, send, want)
}

/// The first bytes on a connection are an MQTT 5 CONNECT: CONNACK with `reason`, then close.
fn fresh5(clause: &'static str, send: Vec<u8>, reason: u8) -> Case {
    case(clause, Before::Nothing, send, connack5(reason))
}

/// Sent after a 3.1.1 CONNACK: closed with nothing sent.
fn after3(clause: &'static str, send: Vec<u8>) -> Case {
    case(clause, Before::V311, send, nothing())
}

/// Sent after an MQTT 5 CONNACK: DISCONNECT with `reason`, then close.
fn after5(clause: &'static str, send: Vec<u8>, reason: u8) -> Case {
    case(clause, Before::V5, send, disconnect5(reason))
}

/// A client id no other connection of this test run uses, so that no case takes over another.
fn uid(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}u{}", N.fetch_add(1, Ordering::Relaxed))
}

/// How long a connection may stay open after the offending bytes: a close should be at once.
fn close_wait() -> Duration {
    patience() / 4
}

/// Reads until the broker closes the connection: everything received, or an error saying it is
/// still open.
fn read_until_closed(c: &mut Client, wait: Duration) -> Result<Vec<u8>, String> {
    c.s.set_read_timeout(Some(wait)).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(format!(
                    "still open after {:?}, having sent {got:02x?}",
                    start.elapsed()
                ))
            }
            // Reset: closed (bytes that arrived before the reset were read first).
            Err(_) => return Ok(got),
        }
    }
}

fn run_case(port: u16, id: &str, case: &Case) -> Result<(), String> {
    let mut c = Client::connect(port);
    match case.before {
        Before::Nothing => {}
        Before::V311 => {
            c.send(&connect(id, true, 0));
            let ack = c.try_recv();
            if ack.as_deref() != Some(&CONNACK_OK[..]) {
                return Err(format!("handshake: CONNACK {ack:02x?}"));
            }
        }
        Before::V5 => {
            c.send(&connect5_ok(id));
            match c.try_recv() {
                Some(p) if p.len() >= 4 && p[0] == 0x20 && p[3] == 0x00 => {}
                other => return Err(format!("handshake: CONNACK {other:02x?}")),
            }
        }
    }
    c.s.write_all(&case.send)
        .map_err(|e| format!("writing the case: {e}"))?;
    let got = read_until_closed(&mut c, close_wait())?;
    if got != case.want {
        return Err(format!(
            "received {got:02x?} then close, want {:02x?}",
            case.want
        ));
    }
    Ok(())
}

/// Runs every case on its own connection, all at once, with a watcher connected before them;
/// then checks the broker still serves the watcher and new clients, and fails listing every
/// case whose outcome was wrong. Client ids start with `prefix`.
fn run_batch(m: &Midge, prefix: &str, cases: &[Case]) {
    let mut watcher = Watcher::new(m.port, prefix);
    let port = m.port;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let id = format!("{prefix}c{i}");
                s.spawn(move || run_case(port, &id, case))
            })
            .collect();
        handles
            .into_iter()
            .zip(cases)
            .filter_map(|(h, case)| {
                let outcome = match h.join() {
                    Ok(Ok(())) => return None,
                    Ok(Err(e)) => e,
                    Err(_) => "the case panicked".to_string(),
                };
                Some(format!("{} ({:?}): {outcome}", case.clause, case.before))
            })
            .collect()
    });
    watcher.check();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\nbroker log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        m.log_text()
    );
}

/// A client connected before a batch, subscribed to its own topic.
struct Watcher {
    c: Client,
    port: u16,
    prefix: String,
    topic: String,
}

impl Watcher {
    fn new(port: u16, prefix: &str) -> Watcher {
        let mut c = Client::connect(port);
        let id = format!("{prefix}watcher");
        c.handshake(&id, true, 0, false);
        let topic = format!("watch/{id}");
        c.send(&subscribe(1, &[(&topic, 0)]));
        c.expect(&suback(1, &[0]));
        Watcher {
            c,
            port,
            prefix: prefix.to_string(),
            topic,
        }
    }

    /// The broker goes on serving: the watcher gets PINGRESP and its own message back, a new
    /// client connects and publishes to it, and nothing sent after a refused CONNECT was
    /// processed (no retained message under `leak/`).
    fn check(&mut self) {
        self.c.send(&PINGREQ);
        self.c.expect(&PINGRESP);
        let p = publish(&self.topic, b"still here", 0, false, 0);
        self.c.send(&p);
        self.c.expect(&p);
        let mut late = Client::connect(self.port);
        late.handshake(&format!("{}late", self.prefix), true, 0, false);
        let p = publish(&self.topic, b"from a new client", 0, false, 0);
        late.send(&p);
        self.c.expect(&p);
        // [MQTT-3.1.4-5]: data after a refused CONNECT is not processed.
        late.send(&subscribe(2, &[("leak/#", 0)]));
        late.expect(&suback(2, &[0]));
        late.send(&PINGREQ);
        late.expect(&PINGRESP);
        late.send(&DISCONNECT);
        late.expect_closed();
    }
}

/// A retained PUBLISH that must never be processed (sent after a CONNECT that is refused).
fn leak() -> Vec<u8> {
    publish("leak/x", b"processed after a refused CONNECT", 0, true, 0)
}

// ----- packet builders -------------------------------------------------------------------------

/// A two-byte length and the bytes: an MQTT string or binary field.
fn s(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    string(b, &mut v);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// MQTT 5 properties: their length, then the properties.
fn props(items: &[&[u8]]) -> Vec<u8> {
    let body = items.concat();
    let mut v = Vec::new();
    rl(body.len(), &mut v);
    v.extend_from_slice(&body);
    v
}

const NO_PROPS: &[u8] = &[0x00];

fn p_u16(id: u8, v: u16) -> Vec<u8> {
    cat(&[&[id], &v.to_be_bytes()])
}

fn p_u32(id: u8, v: u32) -> Vec<u8> {
    cat(&[&[id], &v.to_be_bytes()])
}

fn p_str(id: u8, v: &[u8]) -> Vec<u8> {
    cat(&[&[id], &s(v)])
}

/// Topic Alias property.
fn alias(n: u16) -> Vec<u8> {
    p_u16(0x23, n)
}

/// MQTT 5 CONNECT (keepalive 60): properties and payload as given.
fn connect5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    packet(
        0x10,
        &cat(&[&s(b"MQTT"), &[5, flags, 0, 60], props, payload]),
    )
}

fn connect5_ok(id: &str) -> Vec<u8> {
    connect5(0x02, NO_PROPS, &s(id.as_bytes()))
}

/// MQTT 5 CONNECT payload with a will: client id, will properties, will topic, will payload.
fn will5(id: &str, will_props: &[u8], topic: &[u8]) -> Vec<u8> {
    cat(&[&s(id.as_bytes()), will_props, &s(topic), &s(b"gone")])
}

fn publish5(byte1: u8, topic: &[u8], pid: Option<u16>, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let pid = pid.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default();
    packet(byte1, &cat(&[&s(topic), &pid, props, payload]))
}

fn subscribe5(pid: u16, props: &[u8], entries: &[(&[u8], u8)]) -> Vec<u8> {
    let mut b = cat(&[&pid.to_be_bytes(), props]);
    for (f, opts) in entries {
        b.extend_from_slice(&s(f));
        b.push(*opts);
    }
    packet(0x82, &b)
}

fn unsubscribe5(pid: u16, props: &[u8], filters: &[&[u8]]) -> Vec<u8> {
    let mut b = cat(&[&pid.to_be_bytes(), props]);
    for f in filters {
        b.extend_from_slice(&s(f));
    }
    packet(0xa2, &b)
}

/// 3.1.1 CONNACK refusing with `code`.
fn connack3(code: u8) -> Vec<u8> {
    vec![0x20, 0x02, 0x00, code]
}

/// MQTT 5 CONNACK refusing with `reason`, no properties.
fn connack5(reason: u8) -> Vec<u8> {
    vec![0x20, 0x03, 0x00, reason, 0x00]
}

/// MQTT 5 DISCONNECT from the server with `reason`, no properties.
fn disconnect5(reason: u8) -> Vec<u8> {
    vec![0xe0, 0x01, reason]
}

/// A packet with its first byte replaced.
fn with_byte1(mut p: Vec<u8>, byte1: u8) -> Vec<u8> {
    p[0] = byte1;
    p
}

/// Raw 3.1.1 PUBLISH QoS 0 with a topic given as bytes.
fn publish_raw_topic(topic: &[u8]) -> Vec<u8> {
    packet(0x30, &cat(&[&s(topic), b"x"]))
}

const BAD_UTF8: &[u8] = &[0xff];
const SURROGATE: &[u8] = &[0xed, 0xa0, 0x80];
const NUL: &[u8] = b"a\0b";
const FIVE_BYTE_LENGTH: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x01];

// ----- MQTT 3.1.1 -------------------------------------------------------------------------------

#[test]
fn v311_connect_errors_close_without_connack_or_with_the_prescribed_return_code() {
    let m = Midge::start("allow_anonymous true\n");
    let id = || uid("a");
    let c4 = |flags: u8, fields: &[&[u8]]| connect_raw(b"MQTT", 4, flags, 0, fields);
    #[rustfmt::skip]
    let cases = vec![
        fresh("[MQTT-3.1.0-1] first packet PINGREQ",
            PINGREQ.to_vec(), nothing()),
        fresh("[MQTT-3.1.0-1] first packet PUBLISH",
            publish("t", b"x", 0, false, 0), nothing()),
        fresh("[MQTT-3.1.0-1] first packet SUBSCRIBE",
            subscribe(1, &[("t", 0)]), nothing()),
        fresh("[MQTT-3.1.0-1] first packet DISCONNECT",
            DISCONNECT.to_vec(), nothing()),
        fresh("[MQTT-3.1.2-1] protocol name MQTX",
            connect_raw(b"MQTX", 4, 0x02, 0, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-1] protocol name mqtt",
            connect_raw(b"mqtt", 4, 0x02, 0, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-2] protocol level 6: CONNACK 0x01",
            cat(&[&connect_raw(b"MQTT", 6, 0x02, 0, &[id().as_bytes()]), &leak()]), connack3(0x01)),
        fresh("[MQTT-3.1.2-2] protocol level 3 with name MQTT: CONNACK 0x01",
            connect_raw(b"MQTT", 3, 0x02, 0, &[id().as_bytes()]), connack3(0x01)),
        fresh("[MQTT-3.1.2-2] protocol level 0: CONNACK 0x01",
            connect_raw(b"MQTT", 0, 0x02, 0, &[id().as_bytes()]), connack3(0x01)),
        fresh("[MQTT-3.1.2-3] reserved connect flag set",
            cat(&[&c4(0x03, &[id().as_bytes()]), &leak()]), nothing()),
        fresh("[MQTT-3.1.2-11] will flag 0 with will topic and message present",
            c4(0x02, &[id().as_bytes(), b"w", b"m"]), nothing()),
        fresh("[MQTT-3.1.2-13] will flag 0, will QoS 1",
            c4(0x0a, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-13] will flag 0, will QoS 2",
            c4(0x12, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-14] will QoS 3",
            c4(0x1e, &[id().as_bytes(), b"w", b"m"]), nothing()),
        fresh("[MQTT-3.1.2-15] will flag 0, will retain 1",
            c4(0x22, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-9] will flag 1, will topic and message missing",
            c4(0x06, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-9] will flag 1, will message missing",
            c4(0x06, &[id().as_bytes(), b"w"]), nothing()),
        fresh("[MQTT-3.1.2-18] user name flag 0, user name present",
            c4(0x02, &[id().as_bytes(), b"u"]), nothing()),
        fresh("[MQTT-3.1.2-19] user name flag 1, user name missing",
            c4(0x82, &[id().as_bytes()]), nothing()),
        fresh("[MQTT-3.1.2-20] password flag 0, password present",
            c4(0x82, &[id().as_bytes(), b"u", b"p"]), nothing()),
        fresh("[MQTT-3.1.2-21] password flag 1, password missing",
            c4(0xc2, &[id().as_bytes(), b"u"]), nothing()),
        fresh("[MQTT-3.1.2-22] password flag without user name flag",
            c4(0x42, &[id().as_bytes(), b"p"]), nothing()),
        fresh("[MQTT-3.1.3-3] client identifier missing",
            c4(0x02, &[]), nothing()),
        fresh("[MQTT-3.1.3-4] [MQTT-1.5.3-1] client id is ill-formed UTF-8",
            c4(0x02, &[BAD_UTF8]), nothing()),
        fresh("[MQTT-1.5.3-1] client id holds a surrogate (U+D800)",
            c4(0x02, &[SURROGATE]), nothing()),
        fresh("[MQTT-1.5.3-2] client id contains U+0000",
            c4(0x02, &[NUL]), nothing()),
        fresh("[MQTT-3.1.3-10] will topic is ill-formed UTF-8",
            c4(0x06, &[id().as_bytes(), BAD_UTF8, b"m"]), nothing()),
        fresh("[MQTT-3.1.3-11] user name is ill-formed UTF-8",
            c4(0x82, &[id().as_bytes(), BAD_UTF8]), nothing()),
        fresh("[MQTT-4.7.1-1] will topic contains a wildcard",
            c4(0x06, &[id().as_bytes(), b"w/+", b"m"]), nothing()),
        fresh("[MQTT-4.7.3-1] will topic is empty",
            c4(0x06, &[id().as_bytes(), b"", b"m"]), nothing()),
        fresh("[MQTT-3.1.3-8] zero-byte client id with CleanSession 0: CONNACK 0x02",
            cat(&[&c4(0x00, &[b""]), &leak()]), connack3(0x02)),
        fresh("[MQTT-2.2.2-2] CONNECT with fixed-header flags 0001",
            with_byte1(connect(&id(), true, 0), 0x11), nothing()),
        fresh("2.2.3 remaining length in five bytes",
            cat(&[&[0x10], &FIVE_BYTE_LENGTH]), nothing()),
        fresh("[MQTT-3.1.4-1] CONNECT longer than its fields",
            packet(0x10, &cat(&[&s(b"MQTT"), &[4, 0x02, 0, 0], &s(id().as_bytes()), &[0]])), nothing()),
        fresh("[MQTT-3.1.4-1] client id runs past the end of the packet",
            packet(0x10, &cat(&[&s(b"MQTT"), &[4, 0x02, 0, 0], &[0, 16], b"abc"])), nothing()),
        fresh("2.2.1 reserved packet type 0 first",
            vec![0x00, 0x00], nothing()),
        fresh("2.2.1 reserved packet type 15 first",
            vec![0xf0, 0x00], nothing()),
    ];
    run_batch(&m, "a-", &cases);
}

#[test]
fn v311_errors_after_connack_close_the_connection_silently() {
    let m = Midge::start("allow_anonymous true\n");
    #[rustfmt::skip]
    let cases = vec![
        after3("[MQTT-3.1.0-2] second CONNECT",
            connect(&uid("b"), true, 0)),
        after3("[MQTT-3.1.0-2] second CONNECT with level 6 (no second CONNACK)",
            connect_raw(b"MQTT", 6, 0x02, 0, &[uid("b").as_bytes()])),
        after3("[MQTT-3.6.1-1] PUBREL with flags 0000",
            ack(0x60, 1)),
        after3("[MQTT-3.8.1-1] SUBSCRIBE with flags 0000",
            with_byte1(subscribe(1, &[("t", 0)]), 0x80)),
        after3("[MQTT-3.8.1-1] SUBSCRIBE with flags 0011",
            with_byte1(subscribe(1, &[("t", 0)]), 0x83)),
        after3("[MQTT-3.10.1-1] UNSUBSCRIBE with flags 0000",
            with_byte1(unsubscribe(1, &["t"]), 0xa0)),
        after3("[MQTT-2.2.2-2] PINGREQ with flags 0001",
            vec![0xc1, 0x00]),
        after3("[MQTT-2.2.2-2] PUBACK with flags 0010",
            ack(0x42, 1)),
        after3("[MQTT-3.14.1-1] DISCONNECT with reserved bits set",
            vec![0xe1, 0x00]),
        after3("[MQTT-3.3.1-4] PUBLISH with QoS 3",
            vec![0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01]),
        after3("[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH",
            with_byte1(publish("t", b"x", 0, false, 0), 0x38)),
        after3("[MQTT-3.3.2-2] '+' in a topic name",
            publish("a/+", b"x", 0, false, 0)),
        after3("[MQTT-3.3.2-2] '#' in a topic name",
            publish("a/#", b"x", 1, false, 1)),
        after3("[MQTT-4.7.3-1] empty topic name",
            publish("", b"x", 0, false, 0)),
        after3("[MQTT-3.3.2-1] [MQTT-1.5.3-1] topic name is ill-formed UTF-8",
            publish_raw_topic(BAD_UTF8)),
        after3("[MQTT-1.5.3-1] topic name holds a surrogate (U+D800)",
            publish_raw_topic(SURROGATE)),
        after3("[MQTT-1.5.3-2] topic name contains U+0000",
            publish_raw_topic(NUL)),
        after3("[MQTT-2.3.1-1] QoS 1 PUBLISH with packet id 0",
            publish("t", b"x", 1, false, 0)),
        after3("[MQTT-2.3.1-1] QoS 2 PUBLISH with packet id 0",
            publish("t", b"x", 2, false, 0)),
        after3("[MQTT-2.3.1-1] SUBSCRIBE with packet id 0",
            subscribe(0, &[("t", 0)])),
        after3("[MQTT-2.3.1-1] UNSUBSCRIBE with packet id 0",
            unsubscribe(0, &["t"])),
        after3("[MQTT-3.8.3-3] SUBSCRIBE with no topic filter",
            packet(0x82, &[0, 1])),
        after3("[MQTT-3.8.3-4] SUBSCRIBE requesting QoS 3",
            subscribe(1, &[("t", 3)])),
        after3("[MQTT-3.8.3-4] SUBSCRIBE with reserved bits set in the QoS byte",
            subscribe(1, &[("t", 0x04)])),
        after3("[MQTT-3.8.3-1] topic filter is ill-formed UTF-8",
            packet(0x82, &cat(&[&[0, 1], &s(BAD_UTF8), &[0]]))),
        after3("[MQTT-4.7.1-2] '#' not the last level: a/#/b",
            subscribe(1, &[("a/#/b", 0)])),
        after3("[MQTT-4.7.1-2] '#' not a whole level: a#",
            subscribe(1, &[("a#", 0)])),
        after3("[MQTT-4.7.1-3] '+' not a whole level: a+",
            subscribe(1, &[("a+", 0)])),
        after3("[MQTT-4.7.1-3] '+' not a whole level: +a/b",
            subscribe(1, &[("+a/b", 0)])),
        after3("[MQTT-4.7.3-1] empty topic filter in SUBSCRIBE",
            subscribe(1, &[("", 0)])),
        after3("[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter",
            packet(0xa2, &[0, 1])),
        after3("[MQTT-3.10.3-1] UNSUBSCRIBE filter is ill-formed UTF-8",
            packet(0xa2, &cat(&[&[0, 1], &s(BAD_UTF8)]))),
        after3("[MQTT-4.7.1-2] UNSUBSCRIBE filter a/#/b",
            unsubscribe(1, &["a/#/b"])),
        after3("[MQTT-4.7.3-1] empty topic filter in UNSUBSCRIBE",
            unsubscribe(1, &[""])),
        after3("2.2.3 remaining length in five bytes",
            cat(&[&[0x30], &FIVE_BYTE_LENGTH])),
        after3("[MQTT-4.8.0-1] PINGREQ longer than its fields",
            vec![0xc0, 0x01, 0x00]),
        after3("[MQTT-4.8.0-1] DISCONNECT longer than its fields",
            vec![0xe0, 0x01, 0x00]),
        after3("[MQTT-4.8.0-1] PUBACK longer than its fields",
            vec![0x40, 0x03, 0x00, 0x01, 0x00]),
        after3("[MQTT-4.8.0-1] SUBSCRIBE entry without its QoS byte",
            packet(0x82, &cat(&[&[0, 1], &s(b"t")]))),
        after3("[MQTT-4.8.0-1] topic length runs past the end of the PUBLISH",
            vec![0x30, 0x03, 0x00, 0x05, b'a']),
        after3("2.2.1 reserved packet type 0",
            vec![0x00, 0x00]),
        after3("2.2.1 reserved packet type 15",
            vec![0xf0, 0x00]),
        after3("[MQTT-4.8.0-1] CONNACK from the client",
            CONNACK_OK.to_vec()),
        after3("[MQTT-4.8.0-1] SUBACK from the client",
            suback(1, &[0])),
        after3("[MQTT-4.8.0-1] UNSUBACK from the client",
            ack(0xb0, 1)),
        after3("[MQTT-4.8.0-1] PINGRESP from the client",
            PINGRESP.to_vec()),
    ];
    run_batch(&m, "b-", &cases);
}

// ----- MQTT 5.0 ---------------------------------------------------------------------------------

#[test]
fn v5_connect_errors_are_closed_without_connack() {
    let m = Midge::start("allow_anonymous true\n");
    let id = || uid("c");
    let sid = || s(uid("c").as_bytes());
    #[rustfmt::skip]
    let cases = vec![
        case("[MQTT-3.1.2-3] reserved connect flag set: closed, no CONNACK", Before::Nothing,
            cat(&[&connect5(0x03, NO_PROPS, &sid()), &leak()]), nothing()),
        case("[MQTT-2.1.3-1] CONNECT with fixed-header flags 0001: closed, no CONNACK", Before::Nothing,
            with_byte1(connect5_ok(&id()), 0x11), nothing()),
        case("[MQTT-3.1.2-11] will flag 0, will QoS 1: closed, no CONNACK", Before::Nothing,
            connect5(0x0a, NO_PROPS, &sid()), nothing()),
        case("[MQTT-3.1.2-12] will QoS 3: closed, no CONNACK", Before::Nothing,
            connect5(0x1e, NO_PROPS, &will5(&id(), NO_PROPS, b"w")), nothing()),
        case("[MQTT-3.1.2-13] will flag 0, will retain 1: closed, no CONNACK", Before::Nothing,
            connect5(0x22, NO_PROPS, &sid()), nothing()),
        case("[MQTT-3.1.2-9] will flag 1, will properties, topic and payload missing: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &sid()), nothing()),
        case("[MQTT-3.1.2-16] user name flag 0, user name present: closed, no CONNACK", Before::Nothing,
            connect5(0x02, NO_PROPS, &cat(&[&sid(), &s(b"u")])), nothing()),
        case("[MQTT-3.1.2-17] user name flag 1, user name missing: closed, no CONNACK", Before::Nothing,
            connect5(0x82, NO_PROPS, &sid()), nothing()),
        case("[MQTT-3.1.2-18] password flag 0, password present: closed, no CONNACK", Before::Nothing,
            connect5(0x82, NO_PROPS, &cat(&[&sid(), &s(b"u"), &s(b"p")])), nothing()),
        case("[MQTT-3.1.2-19] password flag 1, password missing: closed, no CONNACK", Before::Nothing,
            connect5(0x42, NO_PROPS, &sid()), nothing()),
        case("[MQTT-3.1.3-3] client identifier missing: closed, no CONNACK", Before::Nothing,
            connect5(0x02, NO_PROPS, &[]), nothing()),
        case("[MQTT-3.1.3-4] [MQTT-1.5.4-1] client id is ill-formed UTF-8: closed, no CONNACK", Before::Nothing,
            connect5(0x02, NO_PROPS, &s(BAD_UTF8)), nothing()),
        case("[MQTT-1.5.4-2] client id contains U+0000: closed, no CONNACK", Before::Nothing,
            connect5(0x02, NO_PROPS, &s(NUL)), nothing()),
        case("[MQTT-3.1.3-11] will topic is ill-formed UTF-8: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), NO_PROPS, BAD_UTF8)), nothing()),
        case("[MQTT-4.7.0-1] will topic contains a wildcard: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), NO_PROPS, b"w/#")), nothing()),
        case("[MQTT-4.7.3-1] will topic is empty: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), NO_PROPS, b"")), nothing()),
        case("[MQTT-3.1.3-12] user name is ill-formed UTF-8: closed, no CONNACK", Before::Nothing,
            connect5(0x82, NO_PROPS, &cat(&[&sid(), &s(BAD_UTF8)])), nothing()),
        case("2.2.2.2 property not allowed on CONNECT (Topic Alias): closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&alias(1)]), &sid()), nothing()),
        case("2.2.2.2 unknown property identifier 0x05: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&[0x05, 0x00]]), &sid()), nothing()),
        case("2.2.2.1 property length runs past the end of the packet: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &[0x7f], &[]), nothing()),
        case("3.1.2.11.2 Session Expiry Interval twice: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_u32(0x11, 10), &p_u32(0x11, 10)]), &sid()), nothing()),
        case("3.1.2.11.3 Receive Maximum 0: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_u16(0x21, 0)]), &sid()), nothing()),
        case("3.1.2.11.3 Receive Maximum twice: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_u16(0x21, 5), &p_u16(0x21, 5)]), &sid()), nothing()),
        case("3.1.2.11.4 Maximum Packet Size 0: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_u32(0x27, 0)]), &sid()), nothing()),
        case("3.1.2.11.5 Topic Alias Maximum twice: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_u16(0x22, 5), &p_u16(0x22, 5)]), &sid()), nothing()),
        case("3.1.2.11.6 Request Response Information 2: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&[0x19, 2]]), &sid()), nothing()),
        case("3.1.2.11.7 Request Problem Information 2: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&[0x17, 2]]), &sid()), nothing()),
        case("3.1.2.11.9 Authentication Method twice: closed, no CONNACK", Before::Nothing,
            connect5(0x02, &props(&[&p_str(0x15, b"X"), &p_str(0x15, b"X")]), &sid()), nothing()),
        // mosquitto 2.0.20 ignores it: accepted (the client's DISCONNECT ends it).
        case("3.1.2.11.10 Authentication Data without Authentication Method: accepted",
            Before::Nothing,
            cat(&[&connect5(0x02, &props(&[&p_str(0x16, b"data")]), &sid()), &DISCONNECT]),
            vec![0x20, 0x09, 0x00, 0x00, 0x06, 0x22, 0x00, 0x0a, 0x21, 0x00, 0x14]),
        fresh5("[MQTT-4.12.0-1] unsupported Authentication Method: 0x8C",
            cat(&[&connect5(0x02, &props(&[&p_str(0x15, b"SCRAM-SHA-1")]), &sid()), &leak()]), 0x8c),
        case("3.1.3.2.2 Will Delay Interval twice: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), &props(&[&p_u32(0x18, 1), &p_u32(0x18, 1)]), b"w")), nothing()),
        case("3.1.3.2.3 will Payload Format Indicator twice: closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), &props(&[&[0x01, 0], &[0x01, 0]]), b"w")), nothing()),
        case("2.2.2.2 property not allowed in Will Properties (Topic Alias): closed, no CONNACK", Before::Nothing,
            connect5(0x06, NO_PROPS, &will5(&id(), &props(&[&alias(1)]), b"w")), nothing()),
        fresh("[MQTT-3.1.2-1] protocol name MQTX with version 5: closed (the optional 0x84 not sent)",
            packet(0x10, &cat(&[&s(b"MQTX"), &[5, 0x02, 0, 60, 0], &sid()])), nothing()),
    ];
    run_batch(&m, "c-", &cases);
}

#[test]
fn v5_errors_after_connack_get_disconnect_with_the_reason_then_close() {
    let m = Midge::start("allow_anonymous true\n");
    let t = b"t".as_slice();
    #[rustfmt::skip]
    let cases = vec![
        case("[MQTT-3.1.0-2] second CONNECT: closed, no DISCONNECT", Before::V5,
            connect5_ok(&uid("d")), nothing()),
        case("[MQTT-3.1.0-2] [MQTT-3.14.2-1] second CONNECT with protocol level 6: closed, no DISCONNECT", Before::V5,
            connect_raw(b"MQTT", 6, 0x02, 0, &[uid("d").as_bytes()]), nothing()),
        after5("[MQTT-3.6.1-1] PUBREL with flags 0000: 0x81",
            ack(0x60, 1), 0x81),
        after5("[MQTT-3.8.1-1] SUBSCRIBE with flags 0000: 0x81",
            with_byte1(subscribe5(1, NO_PROPS, &[(t, 0)]), 0x80), 0x81),
        after5("[MQTT-3.10.1-1] UNSUBSCRIBE with flags 0000: 0x81",
            with_byte1(unsubscribe5(1, NO_PROPS, &[t]), 0xa0), 0x81),
        after5("[MQTT-2.1.3-1] PINGREQ with flags 0001: 0x81",
            vec![0xc1, 0x00], 0x81),
        after5("[MQTT-3.14.1-1] DISCONNECT with reserved bits set: 0x81",
            vec![0xe1, 0x00], 0x81),
        after5("[MQTT-3.15.1-1] AUTH with reserved bits set: 0x82",
            vec![0xf1, 0x00], 0x82),
        after5("[MQTT-3.3.1-4] PUBLISH with QoS 3: 0x81",
            publish5(0x36, t, Some(1), NO_PROPS, b"x"), 0x81),
        after5("[MQTT-3.3.1-2] [MQTT-2.1.3-1] DUP set on a QoS 0 PUBLISH: 0x81",
            publish5(0x38, t, None, NO_PROPS, b"x"), 0x81),
        after5("2.1.2 reserved packet type 0: 0x82",
            vec![0x00, 0x00], 0x82),
        case("2.1.4 remaining length in five bytes: closed, no DISCONNECT", Before::V5,
            cat(&[&[0x30], &FIVE_BYTE_LENGTH]), nothing()),
        after5("[MQTT-3.3.2-2] '+' in a topic name: 0x81",
            publish5(0x30, b"a/+", None, NO_PROPS, b"x"), 0x81),
        after5("[MQTT-3.3.2-2] '#' in a topic name: 0x81",
            publish5(0x30, b"#", None, NO_PROPS, b"x"), 0x81),
        after5("3.3.2.1 empty topic name and no Topic Alias: 0x81",
            publish5(0x30, b"", None, NO_PROPS, b"x"), 0x81),
        after5("[MQTT-3.3.2-1] [MQTT-1.5.4-1] topic name is ill-formed UTF-8: 0x81",
            publish5(0x30, BAD_UTF8, None, NO_PROPS, b"x"), 0x81),
        after5("[MQTT-1.5.4-2] topic name contains U+0000: 0x81",
            publish5(0x30, NUL, None, NO_PROPS, b"x"), 0x81),
        after5("[MQTT-2.2.1-3] QoS 1 PUBLISH with packet id 0: 0x82",
            publish5(0x32, t, Some(0), NO_PROPS, b"x"), 0x82),
        after5("[MQTT-2.2.1-3] SUBSCRIBE with packet id 0: 0x81",
            subscribe5(0, NO_PROPS, &[(t, 0)]), 0x81),
        after5("[MQTT-2.2.1-3] UNSUBSCRIBE with packet id 0: 0x81",
            unsubscribe5(0, NO_PROPS, &[t]), 0x81),
        after5("2.2.2.2 property not allowed on PUBLISH (Session Expiry Interval): 0x82",
            publish5(0x30, t, None, &props(&[&p_u32(0x11, 1)]), b"x"), 0x82),
        after5("2.2.2.2 unknown property identifier 0x05 on PUBLISH: 0x81",
            publish5(0x30, t, None, &props(&[&[0x05, 0x00]]), b"x"), 0x81),
        after5("2.2.2.1 PUBLISH property length runs past the end: 0x81",
            publish5(0x30, t, None, &[0x7f], b""), 0x81),
        after5("3.3.2.3.2 Payload Format Indicator twice: 0x82",
            publish5(0x30, t, None, &props(&[&[0x01, 0], &[0x01, 0]]), b"x"), 0x82),
        after5("3.3.2.3.3 Message Expiry Interval twice: 0x82",
            publish5(0x30, t, None, &props(&[&p_u32(0x02, 9), &p_u32(0x02, 9)]), b"x"), 0x82),
        after5("3.3.2.3.4 Topic Alias twice: 0x82",
            publish5(0x30, t, None, &props(&[&alias(1), &alias(1)]), b"x"), 0x82),
        after5("3.3.2.3.5 Response Topic twice: 0x82",
            publish5(0x30, t, None, &props(&[&p_str(0x08, b"r"), &p_str(0x08, b"r")]), b"x"), 0x82),
        after5("3.3.2.3.6 Correlation Data twice: 0x82",
            publish5(0x30, t, None, &props(&[&p_str(0x09, b"c"), &p_str(0x09, b"c")]), b"x"), 0x82),
        after5("3.3.2.3.9 Content Type twice: 0x82",
            publish5(0x30, t, None, &props(&[&p_str(0x03, b"c"), &p_str(0x03, b"c")]), b"x"), 0x82),
        // The spec names no code for alias 0; 0x82, as mosquitto 2.0.20 answers.
        after5("[MQTT-3.3.2-8] Topic Alias 0: 0x82",
            publish5(0x30, t, None, &props(&[&alias(0)]), b"x"), 0x82),
        after5("[MQTT-3.3.2-9] Topic Alias 11 above the Topic Alias Maximum 10: 0x94",
            publish5(0x30, t, None, &props(&[&alias(11)]), b"x"), 0x94),
        after5("3.3.2.3.4 empty topic name with a Topic Alias never mapped: 0x82",
            publish5(0x30, b"", None, &props(&[&alias(1)]), b"x"), 0x82),
        after5("[MQTT-3.3.2-14] Response Topic contains a wildcard: 0x82",
            publish5(0x30, t, None, &props(&[&p_str(0x08, b"r/#")]), b"x"), 0x82),
        after5("[MQTT-3.3.2-13] Response Topic is ill-formed UTF-8: 0x81",
            publish5(0x30, t, None, &props(&[&p_str(0x08, BAD_UTF8)]), b"x"), 0x81),
        after5("[MQTT-3.3.2-19] Content Type is ill-formed UTF-8: 0x81",
            publish5(0x30, t, None, &props(&[&p_str(0x03, BAD_UTF8)]), b"x"), 0x81),
        after5("[MQTT-1.5.4-1] User Property name is ill-formed UTF-8: 0x81",
            publish5(0x30, t, None, &props(&[&cat(&[&[0x26], &s(BAD_UTF8), &s(b"v")])]), b"x"), 0x81),
        // mosquitto 2.0.20 ignores it: acknowledged (no subscribers: 0x10), still connected
        // (the client's DISCONNECT ends it).
        case("[MQTT-3.3.4-6] PUBLISH from the client with a Subscription Identifier: ignored",
            Before::V5, cat(&[&publish5(0x32, t, Some(1), &props(&[&[0x0b, 0x01]]), b"x"), &DISCONNECT]),
            vec![0x40, 0x03, 0x00, 0x01, 0x10]),
        after5("[MQTT-3.8.3-2] SUBSCRIBE with no topic filter: 0x81",
            packet(0x82, &[0, 1, 0]), 0x81),
        after5("[MQTT-3.8.3-5] SUBSCRIBE options with reserved bits set: 0x81",
            subscribe5(1, NO_PROPS, &[(t, 0x40)]), 0x81),
        after5("3.8.3.1 SUBSCRIBE Maximum QoS 3: 0x81",
            subscribe5(1, NO_PROPS, &[(t, 0x03)]), 0x81),
        after5("3.8.3.1 SUBSCRIBE Retain Handling 3: 0x81",
            subscribe5(1, NO_PROPS, &[(t, 0x30)]), 0x81),
        after5("[MQTT-3.8.3-4] No Local on a shared subscription: 0x82",
            subscribe5(1, NO_PROPS, &[(b"$share/g/t", 0x04)]), 0x82),
        after5("3.8.2.1.2 Subscription Identifier 0: 0x81",
            subscribe5(1, &props(&[&[0x0b, 0x00]]), &[(t, 0)]), 0x81),
        after5("3.8.2.1.2 Subscription Identifier twice: 0x82",
            subscribe5(1, &props(&[&[0x0b, 0x01], &[0x0b, 0x02]]), &[(t, 0)]), 0x82),
        after5("2.2.2.2 property not allowed on SUBSCRIBE (Topic Alias): 0x81",
            subscribe5(1, &props(&[&alias(1)]), &[(t, 0)]), 0x81),
        after5("[MQTT-3.8.3-1] topic filter is ill-formed UTF-8: 0x81",
            subscribe5(1, NO_PROPS, &[(BAD_UTF8, 0)]), 0x81),
        after5("[MQTT-4.7.1-2] '#' not the last level: 0x81",
            subscribe5(1, NO_PROPS, &[(b"a/#/b", 0)]), 0x81),
        after5("[MQTT-4.7.1-3] '+' not a whole level: 0x81",
            subscribe5(1, NO_PROPS, &[(b"a+", 0)]), 0x81),
        after5("[MQTT-4.7.3-1] empty topic filter: 0x81",
            subscribe5(1, NO_PROPS, &[(b"", 0)]), 0x81),
        after5("[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter: 0x81",
            packet(0xa2, &[0, 1, 0]), 0x81),
        after5("2.2.2.2 property not allowed on UNSUBSCRIBE (Subscription Identifier): 0x81",
            unsubscribe5(1, &props(&[&[0x0b, 0x01]]), &[t]), 0x81),
        after5("2.2.2.2 property not allowed on PUBACK (Topic Alias): 0x82",
            vec![0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01], 0x82),
        after5("2.2.2.2 property not allowed on DISCONNECT (Topic Alias): 0x82",
            vec![0xe0, 0x05, 0x00, 0x03, 0x23, 0x00, 0x01], 0x82),
        after5("3.14.2.2.2 DISCONNECT sets a Session Expiry Interval after CONNECT set 0: 0x82",
            vec![0xe0, 0x07, 0x00, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0a], 0x82),
        after5("4.12 AUTH without an Authentication Method in CONNECT: 0x82",
            vec![0xf0, 0x00], 0x82),
        after5("2.1.2 CONNACK from the client: 0x82",
            connack5(0x00), 0x82),
        after5("2.1.2 SUBACK from the client: 0x82",
            vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x00], 0x82),
        after5("2.1.2 UNSUBACK from the client: 0x82",
            vec![0xb0, 0x04, 0x00, 0x01, 0x00, 0x00], 0x82),
        after5("2.1.2 PINGRESP from the client: 0x82",
            PINGRESP.to_vec(), 0x82),
        case("1.2 PINGREQ longer than its fields: closed, no DISCONNECT", Before::V5,
            vec![0xc0, 0x01, 0x00], nothing()),
        after5("1.2 topic length runs past the end of the PUBLISH: 0x81",
            vec![0x30, 0x03, 0x00, 0x05, b'a'], 0x81),
        after5("1.2 SUBSCRIBE entry without its options byte: 0x81",
            packet(0x82, &cat(&[&[0, 1, 0], &s(b"t")])), 0x81),
    ];
    run_batch(&m, "d-", &cases);
}

#[test]
fn v5_payload_format_indicator_is_not_validated_and_the_connection_stays_open() {
    // 3.3.2.3.2: a receiver MAY check a payload marked UTF-8 and answer 0x99 (Payload format
    // invalid). midge does not: the message is accepted (no subscribers: 0x10).
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.send(&connect5_ok("pfi"));
    let ack = c.recv();
    assert_eq!((ack[0], ack[3]), (0x20, 0x00), "CONNACK {ack:02x?}");
    c.send(&publish5(
        0x32,
        b"pfi/t",
        Some(1),
        &props(&[&[0x01, 0x01]]),
        &[0xff, 0xfe],
    ));
    c.expect(&[0x40, 0x03, 0x00, 0x01, 0x10]);
    c.send(&PINGREQ);
    c.expect(&PINGRESP);
}

#[test]
fn v5_limits_announced_in_connack_are_enforced_with_their_reason_codes() {
    let m = Midge::start(
        "allow_anonymous true\nmax_topic_alias 0\nmax_packet_size 200\nmax_inflight_messages 2\n\
         retain_available false\nallow_zero_length_clientid false\nclientid_prefixes ok-\n",
    );
    // PUBREC says Success even without subscribers, as mosquitto does.
    let pubrec = |pid: u8| vec![0x50, 0x02, 0x00, pid];
    let qos2 = |pid: u16| publish5(0x34, b"rm/t", Some(pid), NO_PROPS, b"x");
    #[rustfmt::skip]
    let cases = vec![
        fresh("[MQTT-3.1.3-9] 3.1.1 zero-length client id not allowed: CONNACK 0x02",
            cat(&[&connect("", true, 0), &leak()]), connack3(0x02)),
        fresh("[MQTT-3.1.3-9] 3.1.1 client id without the required prefix: CONNACK 0x02",
            cat(&[&connect(&uid("bad"), true, 0), &leak()]), connack3(0x02)),
        fresh5("[MQTT-3.1.3-8] zero-length client id not allowed: 0x85",
            connect5(0x02, NO_PROPS, &s(b"")), 0x85),
        fresh5("[MQTT-3.1.3-8] client id without the required prefix: 0x85",
            cat(&[&connect5_ok(&uid("bad")), &leak()]), 0x85),
        fresh5("[MQTT-3.2.2-13] Will Retain while Retain Available is 0: 0x9A",
            connect5(0x26, NO_PROPS, &will5(&uid("ok-"), NO_PROPS, b"w")), 0x9a),
        case("3.2.2.3.6 CONNECT larger than the server's Maximum Packet Size: closed, no CONNACK",
            Before::Nothing, connect5_ok(&"ok-".repeat(80)), nothing()),
        after5("3.2.2.3.6 PUBLISH larger than the server's Maximum Packet Size: 0x95",
            publish5(0x30, b"big", None, NO_PROPS, &[b'x'; 250]), 0x95),
        after5("[MQTT-3.2.2-14] retained PUBLISH while Retain Available is 0: 0x9A",
            publish5(0x31, b"r", None, NO_PROPS, b"x"), 0x9a),
        // As mosquitto 2.0.20: PUBREC 0x97 (Quota Exceeded) and the connection goes on (the
        // client's DISCONNECT ends it), rather than DISCONNECT 0x93 [MQTT-3.3.4-9].
        case("[MQTT-3.3.4-9] more unacknowledged QoS 2 PUBLISHes than Receive Maximum 2: PUBREC 0x97",
            Before::V5, cat(&[&qos2(1), &qos2(2), &qos2(3), &DISCONNECT]),
            cat(&[&pubrec(1), &pubrec(2), &[0x50, 0x03, 0x00, 0x03, 0x97]])),
        after5("[MQTT-3.2.2-18] Topic Alias while Topic Alias Maximum is 0: 0x94",
            publish5(0x30, b"t", None, &props(&[&alias(1)]), b"x"), 0x94),
    ];
    // (The watcher, "ok-watcher", shows that clients with the prefix are let in.)
    run_batch(&m, "ok-", &cases);
}

#[test]
fn v5_maximum_qos_is_enforced_on_publish_and_will() {
    let m = Midge::start("allow_anonymous true\nmax_qos 1\n");
    #[rustfmt::skip]
    let cases = vec![
        after5("[MQTT-3.2.2-11] QoS 2 PUBLISH above Maximum QoS 1: 0x9B",
            publish5(0x34, b"q", Some(1), NO_PROPS, b"x"), 0x9b),
        // mosquitto's refusing CONNACK names the Maximum QoS.
        case("[MQTT-3.2.2-12] Will QoS 2 above Maximum QoS 1: 0x9B",
            Before::Nothing, connect5(0x16, NO_PROPS, &will5(&uid("e"), NO_PROPS, b"w")),
            vec![0x20, 0x05, 0x00, 0x9b, 0x02, 0x24, 0x01]),
    ];
    run_batch(&m, "e-", &cases);
}

// ----- connect timeout ----------------------------------------------------------------------

#[test]
fn connect_timeout_closes_silent_and_trickling_connections_only() {
    let m = Midge::start("allow_anonymous true\nconnect_timeout 2\n");
    let mut watcher = Watcher::new(m.port, "f-");
    let port = m.port;
    let lower = Duration::from_millis(1500);
    let upper = Duration::from_secs(2) + patience() * 2 / 5;
    std::thread::scope(|s| {
        // Sends nothing at all.
        let silent = s.spawn(move || {
            let mut c = Client::connect(port);
            let start = Instant::now();
            let got = read_until_closed(&mut c, upper);
            (start.elapsed(), got)
        });
        // Sends a valid CONNECT one byte per second: closed at the timeout, CONNECT unfinished.
        let trickle = s.spawn(move || {
            let mut c = Client::connect(port);
            let bytes = connect("f-trickler", true, 0);
            c.s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let start = Instant::now();
            let mut buf = [0u8; 64];
            for (sent, b) in bytes.iter().enumerate() {
                if c.s.write_all(&[*b]).is_err() {
                    return (start.elapsed(), sent, Ok(Vec::new()));
                }
                match c.s.read(&mut buf) {
                    Ok(0) => return (start.elapsed(), sent + 1, Ok(Vec::new())),
                    Ok(n) => return (start.elapsed(), sent + 1, Ok(buf[..n].to_vec())),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return (start.elapsed(), sent + 1, Ok(Vec::new())),
                }
            }
            (
                start.elapsed(),
                bytes.len(),
                Err("never closed".to_string()),
            )
        });
        // Slow, but completes its CONNECT within the timeout: accepted, and not closed later.
        let in_time = s.spawn(move || {
            let mut c = Client::connect(port);
            let start = Instant::now();
            let bytes = connect("f-in-time", true, 0);
            c.send(&bytes[..5]);
            std::thread::sleep(Duration::from_millis(1000));
            c.send(&bytes[5..]);
            c.expect(&CONNACK_OK);
            std::thread::sleep(Duration::from_millis(3000).saturating_sub(start.elapsed()));
            c.send(&PINGREQ);
            c.expect(&PINGRESP);
        });

        let (waited, got) = silent.join().unwrap();
        assert_eq!(
            got,
            Ok(Vec::new()),
            "silent connection: closed with nothing sent"
        );
        assert!(
            waited >= lower && waited < upper,
            "silent connection closed after {waited:?}, want about 2 s"
        );

        let (waited, sent, got) = trickle.join().unwrap();
        assert_eq!(
            got,
            Ok(Vec::new()),
            "trickling connection: closed with no CONNACK"
        );
        assert!(
            waited >= lower && waited < upper,
            "trickling connection closed after {waited:?}, want about 2 s"
        );
        assert!(
            sent < connect("f-trickler", true, 0).len(),
            "closed only after the whole CONNECT ({sent} bytes)"
        );

        in_time.join().unwrap();
    });
    // The watcher, silent for longer than connect_timeout after its CONNECT, is still served.
    watcher.check();
}
