//! The real binary on 127.0.0.1, driven by a raw-packet client: exact bytes in, exact bytes out.

mod common;
use common::*;

use std::time::{Duration, Instant};

#[test]
fn connect_subscribe_publish_round_trip() {
    let m = Midge::start("allow_anonymous true\n");
    let mut sub = m.client();
    sub.handshake("sub", true, 60, false);
    sub.send(&subscribe(1, &[("cstutoring/chatroom", 0)]));
    sub.expect(&suback(1, &[0]));
    let mut p = m.client();
    p.handshake("pub", true, 60, false);
    p.send(&publish("cstutoring/chatroom", b"Hello world", 0, false, 0));
    sub.expect(&publish("cstutoring/chatroom", b"Hello world", 0, false, 0));
    let line = m.expect_log(" as sub (p2, c1, k60).");
    assert!(
        line.contains("New client connected from 127.0.0.1:"),
        "{line}"
    );
}

#[test]
fn qos1_and_qos2_flows() {
    let m = Midge::start("allow_anonymous true\n");
    let mut sub = m.client();
    sub.handshake("sub", true, 0, false);
    sub.send(&subscribe(1, &[("t/#", 2)]));
    sub.expect(&suback(1, &[2]));
    let mut p = m.client();
    p.handshake("pub", true, 0, false);
    p.send(&publish("t/1", b"one", 1, false, 10));
    p.expect(&ack(0x40, 10));
    sub.expect(&publish("t/1", b"one", 1, false, 1));
    sub.send(&ack(0x40, 1));
    p.send(&publish("t/2", b"two", 2, false, 11));
    p.expect(&ack(0x50, 11));
    p.send(&ack(0x62, 11));
    p.expect(&ack(0x70, 11));
    sub.expect(&publish("t/2", b"two", 2, false, 2));
    sub.send(&ack(0x50, 2));
    sub.expect(&ack(0x62, 2));
    sub.send(&ack(0x70, 2));
    sub.send(&PINGREQ);
    sub.expect(&PINGRESP);
}

#[test]
fn qos2_duplicate_before_pubrel_is_delivered_once() {
    // [MQTT-4.3.3-2]
    let m = Midge::start("allow_anonymous true\n");
    let mut sub = m.client();
    sub.handshake("sub", true, 0, false);
    sub.send(&subscribe(1, &[("t", 0)]));
    sub.expect(&suback(1, &[0]));
    let mut p = m.client();
    p.handshake("pub", true, 0, false);
    p.send(&publish("t", b"x", 2, false, 5));
    p.expect(&ack(0x50, 5));
    let mut dup = publish("t", b"x", 2, false, 5);
    dup[0] |= 0x08;
    p.send(&dup);
    p.expect(&ack(0x50, 5));
    p.send(&ack(0x62, 5));
    p.expect(&ack(0x70, 5));
    sub.expect(&publish("t", b"x", 0, false, 0));
    sub.send(&PINGREQ);
    sub.expect(&PINGRESP); // and nothing in between: no second copy
}

#[test]
fn refused_login_gets_connack_5() {
    let m = Midge::start("");
    let mut c = m.client();
    c.send(&connect("anon", true, 60));
    c.expect(&[0x20, 0x02, 0x00, 0x05]);
    c.expect_closed();
    m.wait_log("not authorised").expect("refusal logged");
}

#[test]
fn first_packet_not_connect_closes() {
    // [MQTT-3.1.0-1]
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.send(&PINGREQ);
    c.expect_closed();
    m.wait_log("MQTT-3.1.0-1").expect("protocol error logged");
}

#[test]
fn second_connect_closes() {
    // [MQTT-3.1.0-2]
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.handshake("c", true, 0, false);
    c.send(&connect("c", true, 0));
    c.expect_closed();
}

#[test]
fn unsupported_protocol_level_gets_connack_1() {
    // [MQTT-3.1.2-2]
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.send(&connect_raw(b"MQTT", 6, 0x02, 60, &[b"c"]));
    c.expect(&[0x20, 0x02, 0x00, 0x01]);
    c.expect_closed();
}

#[test]
fn malformed_packets_close_only_their_connection() {
    let m = Midge::start("allow_anonymous true\n");
    let mut watcher = m.client();
    watcher.handshake("watcher", true, 0, false);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "MQTT-3.1.2-3 reserved flag",
            connect_raw(b"MQTT", 4, 0x03, 0, &[b"c"]),
        ),
        (
            "MQTT-3.1.2-13 will qos without will",
            connect_raw(b"MQTT", 4, 0x0a, 0, &[b"c"]),
        ),
        (
            "MQTT-1.5.3-2 nul in client id",
            connect_raw(b"MQTT", 4, 0x02, 0, &[b"a\0"]),
        ),
        ("MQTT-2.2.2-2 bad flags", vec![0x12, 0x00]),
        (
            "MQTT-2.2.3 five-byte length",
            vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ];
    for (what, bytes) in bad {
        let mut c = m.client();
        c.send(&bytes);
        c.expect_closed();
        eprintln!("closed: {what}");
    }
    let after_connect: Vec<(&str, Vec<u8>)> = vec![
        (
            "MQTT-3.3.2-2 wildcard topic",
            publish("a/+", b"x", 0, false, 0),
        ),
        (
            "MQTT-2.3.1-1 zero packet id",
            publish("a", b"x", 1, false, 0),
        ),
        ("MQTT-3.8.3-3 empty subscribe", packet(0x82, &[0, 1])),
        ("MQTT-4.7.1-2 bad #", subscribe(1, &[("a/#/b", 0)])),
        ("MQTT-4.7.1-3 bad +", subscribe(1, &[("a+", 0)])),
        ("MQTT-3.8.3-4 qos 3", subscribe(1, &[("a", 3)])),
        ("MQTT-3.10.3-2 empty unsubscribe", packet(0xa2, &[0, 1])),
        (
            "MQTT-3.3.1-4 publish qos 3",
            vec![0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
        ),
        (
            "MQTT-1.5.3-1 surrogate",
            vec![0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80],
        ),
        ("reserved type 15", vec![0xf0, 0x00]),
        ("CONNACK from a client", vec![0x20, 0x02, 0x00, 0x00]),
    ];
    for (what, bytes) in after_connect {
        let mut c = m.client();
        c.handshake("c", true, 0, false);
        c.send(&bytes);
        c.expect_closed();
        eprintln!("closed: {what}");
    }
    // Everyone else is still served.
    watcher.send(&PINGREQ);
    watcher.expect(&PINGRESP);
}

#[test]
fn keepalive_timeout_publishes_will() {
    // [MQTT-3.1.2-24] [MQTT-3.1.2-8]
    let m = Midge::start("allow_anonymous true\n");
    let mut w = m.client();
    w.handshake("watcher", true, 0, false);
    w.send(&subscribe(1, &[("status/#", 1)]));
    w.expect(&suback(1, &[1]));
    let mut dev = m.client();
    dev.send(&connect_will("dev", 1, "status/dev", b"offline", 1, false));
    dev.expect(&CONNACK_OK);
    let start = Instant::now();
    // Silent for 1.5 × 1 s: closed, and the will goes out.
    dev.expect_closed();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    w.expect(&publish("status/dev", b"offline", 1, false, 1));
    m.wait_log("Client dev has exceeded timeout, disconnecting.")
        .expect("timeout logged");
}

#[test]
fn will_on_socket_close_not_on_disconnect() {
    // [MQTT-3.1.2-8] [MQTT-3.1.2-10]
    let m = Midge::start("allow_anonymous true\n");
    let mut w = m.client();
    w.handshake("watcher", true, 0, false);
    w.send(&subscribe(1, &[("will/#", 0)]));
    w.expect(&suback(1, &[0]));
    let mut polite = m.client();
    polite.send(&connect_will("polite", 0, "will/polite", b"bye", 0, false));
    polite.expect(&CONNACK_OK);
    polite.send(&DISCONNECT);
    polite.expect_closed();
    let mut rude = m.client();
    rude.send(&connect_will("rude", 0, "will/rude", b"gone", 0, true));
    rude.expect(&CONNACK_OK);
    rude.close();
    w.expect(&publish("will/rude", b"gone", 0, false, 0));
    m.wait_log("Client rude closed its connection.").unwrap();
    // The will was retained.
    let mut late = m.client();
    late.handshake("late", true, 0, false);
    late.send(&subscribe(1, &[("will/#", 0)]));
    late.expect(&suback(1, &[0]));
    late.expect(&publish("will/rude", b"gone", 0, true, 0));
}

#[test]
fn takeover_closes_the_old_connection() {
    // [MQTT-3.1.4-2]
    let m = Midge::start("allow_anonymous true\n");
    let mut a = m.client();
    a.handshake("same", false, 0, false);
    let mut b = m.client();
    b.handshake("same", false, 0, true);
    a.expect_closed();
    b.send(&PINGREQ);
    b.expect(&PINGRESP);
    m.wait_log("Client same already connected, closing old connection.")
        .unwrap();
}

#[test]
fn persistent_session_receives_what_was_queued() {
    let m = Midge::start("allow_anonymous true\n");
    let mut s = m.client();
    s.handshake("durable", false, 0, false);
    s.send(&subscribe(1, &[("q", 1)]));
    s.expect(&suback(1, &[1]));
    s.send(&DISCONNECT);
    s.expect_closed();
    let mut p = m.client();
    p.handshake("pub", true, 0, false);
    for i in 1..=3u16 {
        p.send(&publish("q", format!("m{i}").as_bytes(), 1, false, i));
        p.expect(&ack(0x40, i));
    }
    p.send(&publish("q", b"qos0 is not queued", 0, false, 0));
    p.send(&PINGREQ);
    p.expect(&PINGRESP);
    let mut s = m.client();
    s.handshake("durable", false, 0, true);
    for i in 1..=3u16 {
        s.expect(&publish("q", format!("m{i}").as_bytes(), 1, false, i));
    }
    // Not acknowledged: on the next reconnect they come again with DUP [MQTT-4.4.0-1].
    s.close();
    m.wait_log("Client durable closed its connection.").unwrap();
    let mut s = m.client();
    s.handshake("durable", false, 0, true);
    for i in 1..=3u16 {
        let mut want = publish("q", format!("m{i}").as_bytes(), 1, false, i);
        want[0] |= 0x08;
        s.expect(&want);
        s.send(&ack(0x40, i));
    }
    s.send(&PINGREQ);
    s.expect(&PINGRESP);
}

#[test]
fn zero_length_client_id() {
    // [MQTT-3.1.3-7] [MQTT-3.1.3-8]
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.handshake("", true, 0, false);
    m.wait_log(" as auto-").expect("assigned id logged");
    let mut c = m.client();
    c.send(&connect("", false, 0));
    c.expect(&[0x20, 0x02, 0x00, 0x02]);
    c.expect_closed();
}

#[test]
fn mqtt31_clients_are_served() {
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    c.send(&connect_raw(b"MQIsdp", 3, 0x02, 30, &[b"old"]));
    c.expect(&CONNACK_OK);
    c.send(&subscribe(1, &[("x", 1)]));
    c.expect(&suback(1, &[1]));
    c.send(&publish("x", b"y", 0, false, 0));
    c.expect(&publish("x", b"y", 0, false, 0));
    m.wait_log("as old (p1, c1, k30).").unwrap();
}

#[test]
fn fragmented_and_coalesced_packets() {
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    let mut all = connect("frag", true, 0);
    all.extend_from_slice(&subscribe(1, &[("f", 0)]));
    all.extend_from_slice(&publish("f", &[b'z'; 300], 0, false, 0));
    // One byte at a time for the first packet, the rest in one write.
    let first = connect("frag", true, 0).len();
    for b in &all[..first] {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(2));
    }
    c.send(&all[first..]);
    c.expect(&CONNACK_OK);
    c.expect(&suback(1, &[0]));
    c.expect(&publish("f", &[b'z'; 300], 0, false, 0));
}

#[test]
fn large_message_through_the_broker() {
    let m = Midge::start("allow_anonymous true\n");
    let mut s = m.client();
    s.handshake("s", true, 0, false);
    s.send(&subscribe(1, &[("big", 1)]));
    s.expect(&suback(1, &[1]));
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    p.send(&publish("big", &payload, 1, false, 1));
    p.expect(&ack(0x40, 1));
    s.expect(&publish("big", &payload, 1, false, 1));
}

/// Long payloads sent by reference to several subscribers: every subscriber gets every byte, in
/// order, with its own head (QoS 1 with its packet identifier), also one that reads only after
/// everything was published, and a payload longer than a read.
#[test]
fn long_payloads_reach_many_subscribers_byte_for_byte() {
    let m = Midge::start("allow_anonymous true\n");
    let mut subs: Vec<Client> = (0..5)
        .map(|i| {
            let mut s = m.client();
            s.handshake(&format!("s{i}"), true, 0, false);
            let qos = u8::from(i == 1);
            s.send(&subscribe(1, &[("big/#", qos)]));
            s.expect(&suback(1, &[qos]));
            s
        })
        .collect();
    let payloads: Vec<Vec<u8>> = [300_000usize, 70_000, 1_500_000, 300_000]
        .iter()
        .enumerate()
        .map(|(k, &n)| (0..n).map(|i| ((i * 7 + k * 13) % 253) as u8).collect())
        .collect();
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    for (k, payload) in payloads.iter().enumerate() {
        let pid = k as u16 + 1;
        p.send(&publish(&format!("big/{k}"), payload, 1, false, pid));
        p.expect(&ack(0x40, pid));
    }
    // Subscriber 4 reads last, everything at once.
    for (i, s) in subs.iter_mut().enumerate().take(4) {
        for (k, payload) in payloads.iter().enumerate() {
            let topic = format!("big/{k}");
            if i == 1 {
                let pid = k as u16 + 1;
                s.expect(&publish(&topic, payload, 1, false, pid));
                s.send(&ack(0x40, pid));
            } else {
                s.expect(&publish(&topic, payload, 0, false, 0));
            }
        }
    }
    for (k, payload) in payloads.iter().enumerate() {
        subs[4].expect(&publish(&format!("big/{k}"), payload, 0, false, 0));
    }
    subs[0].expect_silence(100);
}

#[test]
fn message_size_limit_drops_and_oversized_packet_closes() {
    let m = Midge::start("allow_anonymous true\nmessage_size_limit 100\n");
    let mut s = m.client();
    s.handshake("s", true, 0, false);
    s.send(&subscribe(1, &[("t", 0)]));
    s.expect(&suback(1, &[0]));
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    p.send(&publish("t", &[1u8; 101], 1, false, 1));
    p.expect(&ack(0x40, 1)); // acknowledged, dropped
    p.send(&publish("t", &[2u8; 100], 0, false, 0));
    s.expect(&publish("t", &[2u8; 100], 0, false, 0));
    // A packet announcing 200 MB is refused from its header alone.
    p.send(&[0x30, 0x80, 0x80, 0x80, 0x64]);
    p.expect_closed();
    m.wait_log("Dropped too large PUBLISH").unwrap();
}

#[test]
fn slow_subscriber_is_bounded_and_others_keep_flowing() {
    let m = Midge::start("allow_anonymous true\nmax_queued_messages 50\n");
    let mut stalled = m.client();
    stalled.handshake("stalled", true, 0, false);
    stalled.send(&subscribe(1, &[("flood", 0)]));
    stalled.expect(&suback(1, &[0]));
    let mut ok = m.client();
    ok.handshake("ok", true, 0, false);
    ok.send(&subscribe(1, &[("flood", 0)]));
    ok.expect(&suback(1, &[0]));
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    let payload = vec![9u8; 10_000];
    let msg = publish("flood", &payload, 0, false, 0);
    let n = 3000; // 30 MB offered to a client that reads nothing
    let end = publish("flood", b"end", 0, false, 0);
    let end2 = end.clone();
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        loop {
            let pkt = ok.recv();
            if pkt == end2 {
                return (ok, got);
            }
            got += 1;
        }
    });
    for _ in 0..n {
        p.send(&msg);
    }
    // Every flood message has been handled once the publisher's PINGRESP arrives.
    p.send(&PINGREQ);
    p.expect(&PINGRESP);
    std::thread::sleep(Duration::from_millis(300));
    p.send(&end);
    let (mut ok, got) = reader.join().unwrap();
    assert!(got > 0, "the reading subscriber received {got} messages");
    ok.send(&PINGREQ);
    ok.expect(&PINGRESP);
    m.wait_log("Outgoing messages are being dropped for client stalled.")
        .unwrap();
    // The broker's memory did not take the 30 MB.
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    if std::env::var_os("XCHECK_EXEC_WRAPPER").is_none() {
        assert!(rss_kb < 20_000, "broker RSS {rss_kb} kB");
    }
}

#[test]
fn retained_on_subscribe_replace_and_delete() {
    // [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
    let m = Midge::start("allow_anonymous true\n");
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    p.send(&publish("home/lights/sitting_room", b"ON", 0, true, 0));
    p.send(&publish("home/lights/sitting_room", b"OFF", 1, true, 1));
    p.expect(&ack(0x40, 1));
    let mut s = m.client();
    s.handshake("s", true, 0, false);
    s.send(&subscribe(1, &[("home/+/sitting_room", 1)]));
    s.expect(&suback(1, &[1]));
    s.expect(&publish("home/lights/sitting_room", b"OFF", 1, true, 1));
    s.send(&ack(0x40, 1));
    p.send(&publish("home/lights/sitting_room", b"", 0, true, 0));
    s.expect(&publish("home/lights/sitting_room", b"", 0, false, 0));
    let mut s2 = m.client();
    s2.handshake("s2", true, 0, false);
    s2.send(&subscribe(1, &[("home/#", 0)]));
    s2.expect(&suback(1, &[0]));
    s2.expect_silence(300);
}

#[test]
fn dollar_topics_and_overlapping_subscriptions() {
    // [MQTT-4.7.2-1]
    let m = Midge::start("allow_anonymous true\n");
    let mut s = m.client();
    s.handshake("s", true, 0, false);
    s.send(&subscribe(1, &[("#", 0), ("a/+", 1), ("a/b", 2)]));
    s.expect(&suback(1, &[0, 1, 2]));
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    p.send(&publish("$private/x", b"no", 0, false, 0));
    p.send(&publish("a/b", b"once", 2, false, 1));
    p.expect(&ack(0x50, 1));
    s.expect(&publish("a/b", b"once", 2, false, 1));
    s.send(&ack(0x50, 1));
    s.expect(&ack(0x62, 1));
    s.send(&ack(0x70, 1));
    s.expect_silence(300);
}

#[test]
fn unsubscribe_stops_delivery() {
    let m = Midge::start("allow_anonymous true\n");
    let mut s = m.client();
    s.handshake("s", true, 0, false);
    s.send(&subscribe(1, &[("t", 0)]));
    s.expect(&suback(1, &[0]));
    s.send(&unsubscribe(2, &["t"]));
    s.expect(&ack(0xb0, 2));
    s.send(&publish("t", b"x", 0, false, 0));
    s.send(&PINGREQ);
    s.expect(&PINGRESP);
}

#[test]
fn many_clients_at_once() {
    let m = Midge::start("allow_anonymous true\n");
    let mut clients: Vec<Client> = (0..200)
        .map(|i| {
            let mut c = m.client();
            c.handshake(&format!("c{i}"), true, 0, false);
            c.send(&subscribe(1, &[("all", 0)]));
            c.expect(&suback(1, &[0]));
            c
        })
        .collect();
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    p.send(&publish("all", b"hi", 0, false, 0));
    for c in &mut clients {
        c.expect(&publish("all", b"hi", 0, false, 0));
    }
}

#[test]
fn qos1_flood_to_a_slow_subscriber_loses_nothing() {
    // A full queue pauses the publisher instead of dropping what was acknowledged.
    let m = Midge::start("allow_anonymous true\nmax_queued_messages 10\nmax_inflight_messages 2\n");
    let mut s = m.client();
    s.handshake("slow", true, 0, false);
    s.send(&subscribe(1, &[("f", 1)]));
    s.expect(&suback(1, &[1]));
    let mut p = m.client();
    p.handshake("fast", true, 0, false);
    let n = 300u16;
    let publisher = std::thread::spawn(move || {
        let mut all = Vec::new();
        for i in 1..=n {
            all.extend_from_slice(&publish("f", &i.to_be_bytes(), 1, false, i));
        }
        p.send(&all);
        for i in 1..=n {
            p.expect(&ack(0x40, i));
        }
    });
    for i in 1..=n {
        let pkt = s.recv();
        // PUBLISH QoS 1 (maybe DUP-free), topic "f", then packet id and the payload.
        assert_eq!(pkt[0] & 0xf6, 0x32, "{pkt:02x?}");
        assert_eq!(
            &pkt[pkt.len() - 2..],
            &i.to_be_bytes(),
            "message {i} out of order or lost"
        );
        let pid = u16::from_be_bytes([pkt[5], pkt[6]]);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        s.send(&ack(0x40, pid));
    }
    publisher.join().unwrap();
    assert!(!m.log_text().contains("being dropped"), "{}", m.log_text());
}

/// A client that closes its socket (here with a reset: unread data) while the broker still has
/// output for it is logged as mosquitto logs it, "Client X closed its connection.", not as a
/// socket error (seen with `mosquitto_sub -t '$SYS/#' -C 5`).
#[test]
fn a_client_closing_under_output_is_logged_as_closing_its_connection() {
    let m = Midge::start("allow_anonymous true\n");
    let mut p = m.client();
    p.handshake("big-pub", true, 0, false);
    let payload = vec![b'x'; 256 * 1024];
    for i in 0..4 {
        p.send(&publish(&format!("big/{i}"), &payload, 0, true, 0));
    }
    p.send(&PINGREQ);
    p.expect(&PINGRESP);
    let mut s = m.client();
    s.handshake("leaver", true, 0, false);
    s.send(&subscribe(1, &[("big/#", 0)]));
    // Unread data in the receive buffer makes the close a reset.
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(s);
    let line = m
        .wait_log("Client leaver")
        .expect("a line about the client");
    let closed = m.wait_log("Client leaver closed its connection.");
    assert!(
        closed.is_some(),
        "first line: {line}\nlog:\n{}",
        m.log_text()
    );
    assert!(!m.log_text().contains("Socket error on client leaver"));
}

/// After a DISCONNECT with a reason, the broker shuts its write side and reads and drops what
/// the client still sends for a while, so that a client that is still writing (paho sending
/// its acknowledgements) gets no "broken pipe" and reads the reason, then the end of the stream.
#[test]
fn a_client_still_sending_reads_the_disconnect_reason_not_a_reset() {
    use std::io::{Read, Write};
    let m = Midge::start("allow_anonymous true\n");
    let mut c = m.client();
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.extend_from_slice(&[5, 0x02, 0, 0, 0]);
    string(b"lingering", &mut body);
    c.send(&packet(0x10, &body));
    let ack = c.recv();
    assert_eq!(&ack[..4], &[0x20, 0x09, 0x00, 0x00], "{ack:02x?}");
    // PUBLISH with QoS 3: malformed, DISCONNECT 0x81.
    c.send(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]);
    std::thread::sleep(Duration::from_millis(100));
    // The client goes on writing for a while before it reads.
    for i in 0..10 {
        if let Err(e) = c.s.write_all(&[0xc0, 0x00].repeat(2048)) {
            panic!("write {i} after the broker's DISCONNECT: {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match c.s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {got:02x?}: {e}"),
        }
    }
    assert_eq!(got, [0xe0, 0x01, 0x81]);
}

#[test]
fn long_and_short_payloads_reach_every_subscriber_byte_for_byte() {
    // Long payloads go out by reference to the stored message (vectored writes of heads and
    // payloads), short ones are copied after their heads: mixed, they must arrive exactly and
    // in order however the sockets split them.
    let m = Midge::start("allow_anonymous true\n");
    let mut subs = Vec::new();
    for i in 0..4 {
        let mut c = m.client();
        c.handshake(&format!("s{i}"), true, 0, false);
        c.send(&subscribe(1, &[("big/#", 0)]));
        c.expect(&suback(1, &[0]));
        subs.push(c);
    }
    let sizes = [
        3_000usize, 10, 300_000, 2_047, 2_048, 65_536, 1, 150_000, 70_000, 5,
    ];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    let mut want = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        want.push(publish(&format!("big/{i}"), p, 0, false, 0));
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            let n = want.len();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(c.recv());
                }
                (c, got)
            })
        })
        .collect();
    let mut p = m.client();
    p.handshake("p", true, 0, false);
    for (i, pl) in payloads.iter().enumerate() {
        p.send(&publish(&format!("big/{i}"), pl, 0, false, 0));
    }
    for r in readers {
        let (_c, got) = r.join().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g == w, "message {i} ({} bytes) differs", sizes[i]);
        }
    }
}
