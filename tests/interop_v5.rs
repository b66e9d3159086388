//! MQTT 5 interoperability with a real MQTT 5 client: Python paho-mqtt 2.x, driven by the
//! scripts `tests/interop/v5_*.py` (helpers in `tests/interop/v5_util.py`), against the real
//! midge binary. One test per feature, each with its own broker.
//!
//! Each script prints a transcript of what its clients observed, one fact a line, and the
//! test compares it with the exact expected text. Every wait in a script is bounded (10 s) and
//! the script itself runs under a hard time limit, after which it is killed and the test fails.
//! A missing python3 or paho-mqtt 2.x fails the test (run `scripts/test.sh`, which installs
//! it) rather than skipping it.

mod common;
use common::*;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hard limit for one script: its longest run is about 8 s, and a failing wait gives up after
/// 10 s.
fn limit() -> Duration {
    patience() + Duration::from_secs(30)
}

fn need_paho() {
    let ok = have("python3")
        && Command::new("python3")
            .args([
                "-c",
                "import paho.mqtt.client as m; assert hasattr(m, 'CallbackAPIVersion'); \
                 from paho.mqtt.properties import Properties",
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

/// A broker that accepts anonymous clients, with its default MQTT 5 settings (Topic Alias
/// Maximum 10, no shared subscriptions).
fn broker() -> Midge {
    Midge::start("allow_anonymous true\n")
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Runs `tests/interop/<name>` against the broker within `limit()`; it must exit 0. Returns
/// its transcript (stdout).
fn run_script(m: &Midge, name: &str) -> String {
    need_paho();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(name);
    let mut child = Command::new("python3")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONUNBUFFERED", "1")
        .arg(&path)
        .arg("127.0.0.1")
        .arg(m.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start python3 {name}: {e}"));
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let limit = limit();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for python3") {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    match status {
        None => panic!(
            "{name} still running after {limit:?}; killed.\ntranscript:\n{stdout}\nstderr:\n{stderr}\nbroker log:\n{}",
            m.log_text()
        ),
        Some(st) if !st.success() => panic!(
            "{name} failed ({st}).\ntranscript:\n{stdout}\nstderr:\n{stderr}\nbroker log:\n{}",
            m.log_text()
        ),
        Some(_) => stdout,
    }
}

/// Runs the script and asserts that its transcript is exactly `want`, line for line.
fn expect_transcript(m: &Midge, name: &str, want: &[&str]) {
    let got = run_script(m, name);
    let got_lines: Vec<&str> = got.lines().collect();
    if got_lines != want {
        let mut report = String::new();
        for i in 0..got_lines.len().max(want.len()) {
            let g = got_lines.get(i).copied().unwrap_or("<nothing>");
            let w = want.get(i).copied().unwrap_or("<nothing>");
            let mark = if g == w { "  " } else { "!!" };
            report.push_str(&format!(
                "{mark} line {}\n   got:    {g}\n   wanted: {w}\n",
                i + 1
            ));
        }
        panic!(
            "{name}: transcript differs from the expected one:\n{report}\nbroker log:\n{}",
            m.log_text()
        );
    }
}

/// User properties (in order, duplicates and empty values kept), Content Type, Payload Format
/// Indicator, Response Topic and Correlation Data reach an MQTT 5 subscriber unchanged, at
/// QoS 0, 1 and 2, and stay with a retained message [MQTT-3.3.2-4] [MQTT-3.3.2-15]
/// [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20].
#[test]
fn v5_publish_properties_forwarded_unchanged() {
    let m = broker();
    let props = "PayloadFormatIndicator=1 ContentType='text/plain; charset=utf-8' \
                 ResponseTopic='props/reply' CorrelationData=b'\\x00\\x01corr\\xff' \
                 UserProperty=[('b', '2'), ('a', '1'), ('b', '3'), ('kéy', '')]";
    let got = |qos: u8| {
        format!("got topic='props/t' payload=b'hello at qos {qos}' qos={qos} retain=0 {props}")
    };
    let (g0, g1, g2) = (got(0), got(1), got(2));
    expect_transcript(
        &m,
        "v5_properties.py",
        &[
            "publish qos 0 ack None",
            "publish qos 1 ack 0",
            "publish qos 2 ack 0",
            &g0,
            &g1,
            &g2,
            "got topic='props/t' payload=b'bare' qos=1 retain=0",
            "later subscriber got topic='props/retained' payload=b'{}' qos=1 retain=1 \
             ContentType='application/json' UserProperty=[('z', '26'), ('a', '1')]",
        ],
    );
}

/// Request/response (MQTT 5 section 4.10): a responder answers each request on its Response
/// Topic with its Correlation Data, and the requester gets each answer with the right one.
#[test]
fn v5_request_response() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_request_response.py",
        &[
            "request 1 ack 0",
            "requester got topic='rr/reply/v5-rr-requester' payload=b'answer to question 1' \
             qos=1 retain=0 CorrelationData=b'req-1'",
            "request 2 ack 0",
            "requester got topic='rr/reply/v5-rr-requester' payload=b'answer to question 2' \
             qos=1 retain=0 CorrelationData=b'\\x00\\x02'",
            "responder got topic='rr/service/request' payload=b'question 1' qos=1 retain=0 \
             ResponseTopic='rr/reply/v5-rr-requester' CorrelationData=b'req-1'",
            "responder got topic='rr/service/request' payload=b'question 2' qos=1 retain=0 \
             ResponseTopic='rr/reply/v5-rr-requester' CorrelationData=b'\\x00\\x02'",
        ],
    );
}

/// Topic aliases from the client [MQTT-3.3.2-12] (section 3.3.2.3.4): CONNACK announces Topic
/// Alias Maximum 10; PUBLISH with topic + alias, then empty topic + alias, reaches the
/// subscriber under the full topic (alias 1 can be re-pointed; a retained message sent through
/// an alias is stored under the full topic); alias 11 gets DISCONNECT 0x94 (Topic Alias
/// invalid) and the message is not forwarded.
#[test]
fn v5_topic_alias_from_client() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_topic_alias_in.py",
        &[
            "TopicAliasMaximum 10",
            "ack 0",
            "ack 0",
            "ack 0",
            "ack 0",
            "got topic='alias/in/t' payload=b'one' qos=1 retain=0",
            "got topic='alias/in/t' payload=b'two' qos=1 retain=0",
            "got topic='alias/in/u' payload=b'three' qos=1 retain=0",
            "got topic='alias/in/u' payload=b'four' qos=1 retain=0",
            "ack 0",
            "new subscriber got topic='alias/in/u' payload=b'retained via alias' qos=1 retain=1",
            "over-maximum alias: disconnect reason 148 from server True",
            "then got topic='alias/in/t' payload=b'marker' qos=1 retain=0",
        ],
    );
}

/// Topic aliases to the client [MQTT-3.3.2-11] [MQTT-3.3.2-7]: with Topic Alias Maximum 5 the
/// first message on a topic carries the full topic and an alias, later ones an empty topic and
/// the same alias (a second topic gets alias 2); with maximum 1 only the first topic is
/// aliased; with none, no alias is ever sent; after a reconnect aliases start afresh.
#[test]
fn v5_topic_alias_to_client() {
    let m = broker();
    let mut want = Vec::new();
    let five = [
        ("'alias/out/t'", "m1", "1"),
        ("''", "m2", "1"),
        ("''", "m3", "1"),
        ("'alias/out/u'", "m4", "2"),
        ("''", "m5", "2"),
        ("''", "m6", "1"),
    ];
    let one = [
        ("'alias/out/t'", "m1", "1"),
        ("''", "m2", "1"),
        ("''", "m3", "1"),
        ("'alias/out/u'", "m4", "None"),
        ("'alias/out/u'", "m5", "None"),
        ("''", "m6", "1"),
    ];
    let resolved = |p: &str| match p {
        "m4" | "m5" | "m7" | "m8" => "alias/out/u",
        _ => "alias/out/t",
    };
    let line = |who: &str, topic: &str, payload: &str, alias: &str| {
        format!(
            "{who} got topic={topic} payload=b'{payload}' qos=1 retain=0 TopicAlias={alias} \
             resolved '{}'",
            resolved(payload)
        )
    };
    for (t, p, a) in five {
        want.push(line("v5-ao-5", t, p, a));
    }
    for (t, p, a) in one {
        want.push(line("v5-ao-1", t, p, a));
    }
    for p in ["m1", "m2", "m3", "m4", "m5", "m6"] {
        want.push(line("v5-ao-0", &format!("'{}'", resolved(p)), p, "None"));
    }
    want.push("reconnected, session present: True".into());
    want.push(line("v5-ao-5", "'alias/out/u'", "m7", "1"));
    want.push(line("v5-ao-5", "''", "m8", "1"));
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    expect_transcript(&m, "v5_topic_alias_out.py", &want);
}

/// Shared subscriptions (section 4.8.2): available (CONNACK leaves the property at its
/// default), each message to exactly one member of the group while an ordinary subscriber gets
/// them all; a shared filter with an empty group name is granted, as mosquitto 2.0 grants it
/// (tests/differential.rs, subscribe/*/share-*).
#[test]
fn v5_shared_subscriptions() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_shared.py",
        &[
            "SharedSubscriptionAvailable None",
            "suback [1]",
            "suback [1]",
            "suback [1]",
            "total 10",
            "each got some True",
            "no message twice True",
            "plain got 10",
            "suback [1]",
            "disconnects []",
        ],
    );
}

/// Subscription options: Retain Handling 0 sends retained messages on every SUBSCRIBE, 1 only
/// when the subscription is new, 2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; No
/// Local keeps a client's own messages from it [MQTT-3.8.3-3]; Retain As Published keeps
/// RETAIN on forwarded messages, otherwise it is cleared [MQTT-3.3.1-12] [MQTT-3.3.1-13].
#[test]
fn v5_retain_handling_no_local_retain_as_published() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_retain_options.py",
        &[
            "rh0 subscribe 1: [('retained for rh0', 1), ('marker 1', 0)]",
            "rh0 subscribe 2: [('retained for rh0', 1), ('marker 2', 0)]",
            "rh1 subscribe 1: [('retained for rh1', 1), ('marker 1', 0)]",
            "rh1 subscribe 2: [('marker 2', 0)]",
            "rh2 subscribe 1: [('marker 1', 0)]",
            "rh2 subscribe 2: [('marker 2', 0)]",
            "no_local=1 got: [('from nl0', 0), ('marker', 0)]",
            "no_local=0 got: [('from nl1', 0), ('from nl0', 0), ('marker', 0)]",
            "retain_as_published=1 got: [('published retained', 1), ('published plain', 0)]",
            "retain_as_published=0 got: [('published retained', 0), ('published plain', 0)]",
            "new subscription, retain_as_published=0 got: [('published retained', 1), ('marker', 0)]",
        ],
    );
}

/// Subscription Identifiers [MQTT-3.3.4-3] [MQTT-3.3.4-4]: `a/#` with 7 and `a/+` with 9 (two
/// SUBSCRIBEs of one client): a message on `a/b` arrives once with both; `a/c/d` with 7 only;
/// a retained message sent on subscribing carries that subscription's identifier (here the
/// largest, 268,435,455).
#[test]
fn v5_subscription_identifiers() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_subscription_ids.py",
        &[
            "got topic='a/b' payload=b'both' qos=1 retain=0 SubscriptionIdentifier=[7, 9]",
            "got topic='a/c/d' payload=b'only a/#' qos=1 retain=0 SubscriptionIdentifier=[7]",
            "got topic='a/end' payload=b'marker' qos=1 retain=0 SubscriptionIdentifier=[7, 9]",
            "got topic='sid/r' payload=b'retained' qos=1 retain=1 SubscriptionIdentifier=[268435455]",
        ],
    );
}

/// Flow control [MQTT-3.3.4-9]: a subscriber with Receive Maximum 2 that does not acknowledge
/// gets exactly 2 of 5 QoS 1 messages; each PUBACK lets one more through; all arrive once, in
/// order.
#[test]
fn v5_receive_maximum_flow_control() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_flow_control.py",
        &[
            "before any PUBACK: ['m1', 'm2']",
            "after 1 PUBACK: ['m1', 'm2', 'm3']",
            "after 2 PUBACKs: ['m1', 'm2', 'm3', 'm4']",
            "after 4 PUBACKs: ['m1', 'm2', 'm3', 'm4', 'm5']",
            "duplicates: 0",
        ],
    );
}

/// Flow control on a resumed session [MQTT-3.3.4-9] [MQTT-4.4.0-1]: 5 unacknowledged QoS 1
/// messages are in flight when the subscriber's connection drops; it comes back (Clean Start
/// 0) with Receive Maximum 2, so the broker may resend only 2 of them (DUP set) and the rest as
/// PUBACKs free the window; all 8 arrive once, in order.
#[test]
fn v5_receive_maximum_on_resumed_session() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_flow_control_resume.py",
        &[
            "first connection (Receive Maximum 5), no PUBACK: ['m1', 'm2', 'm3', 'm4', 'm5']",
            "reconnected (Receive Maximum 2), session present: True",
            "after reconnecting, no PUBACK: ['m1', 'm2']",
            "  DUP: [True, True]",
            "after 2 PUBACKs: ['m1', 'm2', 'm3', 'm4']",
            "after 4 PUBACKs: ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']",
            "after 6 PUBACKs: ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']",
        ],
    );
}

/// Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25]: a subscriber with Maximum Packet Size
/// 100 gets the small messages but not the 500-byte ones (QoS 1 and QoS 0), which are
/// silently discarded for it (it stays connected); a subscriber without a limit gets all.
#[test]
fn v5_maximum_packet_size() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_max_packet.py",
        &[
            "ack 0",
            "ack 0",
            "ack 0",
            "ack None",
            "ack 0",
            "v5-mps-small got [(7, 'small 1'), (7, 'small 2'), (7, 'small 3')]",
            "v5-mps-small disconnects []",
            "v5-mps-big got [(7, 'small 1'), (500, 'xxxxxxx'), (7, 'small 2'), (500, 'yyyyyyy'), \
             (7, 'small 3')]",
            "v5-mps-big disconnects []",
        ],
    );
}

/// Maximum Packet Size on a resumed session [MQTT-3.1.2-24] [MQTT-3.1.2-25]: an unacknowledged
/// 500-byte QoS 1 message is not resent to a subscriber that comes back (Clean Start 0) with
/// Maximum Packet Size 100; the small unacknowledged one is (DUP set), and later ones arrive.
#[test]
fn v5_maximum_packet_size_on_resumed_session() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_max_packet_resume.py",
        &[
            "first connection, no PUBACK: [(500, 'xxxxxxx', 0), (7, 'small 1', 0)]",
            "reconnected (Maximum Packet Size 100), session present: True",
            "after reconnecting: [(7, 'small 1', 1), (7, 'small 2', 0)]",
            "disconnects: []",
        ],
    );
}

/// Will Delay Interval (section 3.1.3.2.2): with delay 2 s and session expiry 10 s the will
/// of a dropped client arrives about 2 s later (not before 1.5 s), with its properties; a
/// client that reconnects within the delay has no will published [MQTT-3.1.3-9].
#[test]
fn v5_will_delay() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_will_delay.py",
        &[
            "will of a arrived: topic='will/t' payload=b'will of a' qos=1 retain=0 \
             ContentType='text/plain' UserProperty=[('why', 'gone'), ('who', 'a')]",
            "after at least 1.5 s: True and at most 4 s: True",
            "b reconnected, session present: True",
            "watcher got: ['marker']",
        ],
    );
}

/// Session Expiry Interval (section 3.1.2.11.2) [MQTT-3.1.2-23] [MQTT-3.2.2-3]: with 2 s, the
/// messages published while the client is away are delivered when it reconnects within 2 s
/// (session present); 3 s after it leaves again the session is gone (no matching subscribers,
/// session present false).
#[test]
fn v5_session_expiry() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_session_expiry.py",
        &[
            "first connection, session present: False",
            "publish while away, ack 0",
            "publish while away, ack 0",
            "publish while away, ack 0",
            "reconnect within 2 s, session present: True",
            "got: [('away 1', 1), ('away 2', 1), ('away 3', 1)]",
            "publish after expiry, ack 16",
            "reconnect after 3 s, session present: False",
            "got: ['marker']",
        ],
    );
    m.expect_log("Client v5-se-sub expired.");
}

/// Message Expiry Interval [MQTT-3.3.2-5] [MQTT-3.3.2-6]: a queued QoS 1 message with 1 s is
/// not delivered 2.5 s later; one with 60 s is, with 57 to 60 s left; one without has none; a
/// retained message with 1 s is gone 2.5 s later, one with 60 s has 57 to 60 s left.
#[test]
fn v5_message_expiry() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_message_expiry.py",
        &[
            "session present: True",
            "got topic='me/t' payload=b'expires in 60 s' qos=1 retain=0",
            "  MessageExpiryInterval between 57 and 60: True",
            "got topic='me/t' payload=b'never expires' qos=1 retain=0",
            "got topic='me/t' payload=b'marker' qos=1 retain=0",
            "retained check got topic='mer/kept' payload=b'retained for good' qos=1 retain=1",
            "retained check got topic='mer/long' payload=b'retained for 60 s' qos=1 retain=1",
            "  MessageExpiryInterval between 57 and 60: True",
            "retained check got topic='mer/marker' payload=b'marker' qos=1 retain=0",
        ],
    );
}

/// Mixed versions: an MQTT 3.1.1 publisher's message reaches MQTT 5 and 3.1.1 subscribers; an
/// MQTT 5 publisher's message with properties reaches the MQTT 5 subscriber with them and the
/// 3.1.1 subscriber with its payload intact (QoS 2 published, QoS 1 granted).
#[test]
fn v5_mixed_protocol_versions() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_mixed_versions.py",
        &[
            "mix-sub5 got topic='mix/from311' payload=b'from 3.1.1 \\x00\\xff' qos=1 retain=0",
            "mix-sub5 got topic='mix/from5' payload=b'from 5 \\x00\\xff' qos=1 retain=0 \
             ContentType='application/octet-stream' ResponseTopic='mix/reply' \
             CorrelationData=b'cd' UserProperty=[('k', 'v'), ('k2', 'v2')]",
            "mix-sub311 got topic='mix/from311' payload=b'from 3.1.1 \\x00\\xff' qos=1 retain=0",
            "mix-sub311 got topic='mix/from5' payload=b'from 5 \\x00\\xff' qos=1 retain=0",
        ],
    );
    for who in [
        "mix-sub5 (p5,",
        "mix-sub311 (p2,",
        "mix-pub5 (p5,",
        "mix-pub311 (p2,",
    ] {
        m.expect_log(&format!(" as {who}"));
    }
}

/// PUBACK reason codes (section 3.4.2.1): 0x10 (No matching subscribers, 16) for a QoS 1
/// publish nobody subscribed to, 0x00 once somebody has.
#[test]
fn v5_puback_no_matching_subscribers() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_puback_reason.py",
        &[
            "qos 1, no subscribers: PUBACK reason 16",
            "qos 1, one subscriber: PUBACK reason 0",
            "qos 2, no subscribers: PUBCOMP reason 0",
        ],
    );
}

/// Session takeover [MQTT-3.1.4-3]: a second connection with the same client id gets the first
/// one DISCONNECT 0x8E (Session taken over, 142); the second stays connected and works.
#[test]
fn v5_session_takeover() {
    let m = broker();
    expect_transcript(
        &m,
        "v5_takeover.py",
        &[
            "first: disconnect reason 142 sent by the server True",
            "second: ack 0",
            "second got ['still here']",
            "second: disconnects [] first: disconnects [(142, True)]",
        ],
    );
}

/// The broker's Receive Maximum (max_inflight_messages 2) with paho sending 8 QoS 2 messages at
/// once: answered with PUBREC 0x97 over the quota, as mosquitto 2.0.20 does, so paho is never
/// cut off mid-acknowledgement ("broken pipe") and goes on working [MQTT-3.3.4-9].
#[test]
fn v5_receive_maximum_of_the_broker_with_paho() {
    let m = Midge::start("allow_anonymous true\nmax_inflight_messages 2\n");
    expect_transcript(
        &m,
        "v5_receive_max_in.py",
        &[
            "broker Receive Maximum 2",
            "all acknowledged True",
            "publisher disconnects []",
            "then a QoS 1 publish is acknowledged with 0",
            "publisher disconnects []",
        ],
    );
}
