//! MQTT 3.1.1: CONNECT, keepalive, wills, takeover, QoS flows, retained messages,
//! persistent sessions, backpressure and limits on what a client can make the core buffer.

use super::*;

#[test]
fn connect_is_answered_with_connack_accepted() {
    let mut h = H::new();
    assert_eq!(
        h.client(1, connect("sensor1", true, 60)),
        [0x20, 0x02, 0x00, 0x00]
    );
    assert!(!h.b.is_closed(1));
    assert_eq!(h.b.connection_count(), 1);
}

#[test]
fn first_packet_must_be_connect() {
    // [MQTT-3.1.0-1]
    let mut h = H::new();
    h.open(1);
    h.send(1, Packet::Pingreq);
    assert!(h.b.is_closed(1));
    assert!(h.take(1).is_empty());
}

#[test]
fn second_connect_is_a_protocol_violation() {
    // [MQTT-3.1.0-2]
    let mut h = H::new();
    h.client(1, connect("a", true, 0));
    h.send(1, Packet::connect(connect("a", true, 0)));
    assert!(h.b.is_closed(1));
}

#[test]
fn unsupported_protocol_level_gets_connack_1_then_close() {
    // [MQTT-3.1.2-2]
    let mut h = H::new();
    h.open(1);
    let bytes = [
        0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 60, 0, 1, b'c',
    ];
    h.b.received(1, &bytes, h.now);
    assert_eq!(h.take(1), [0x20, 0x02, 0x00, 0x01]);
    assert!(h.b.is_closed(1));
}

#[test]
fn empty_client_id_assigned_with_clean_session_refused_without() {
    // [MQTT-3.1.3-7] [MQTT-3.1.3-8]
    let mut h = H::new();
    assert_eq!(h.client(1, connect("", true, 0)), enc(&[connack(false, 0)]));
    assert_eq!(h.b.session_count(), 1);
    assert_eq!(
        h.client(2, connect("", false, 0)),
        enc(&[connack(false, connack::IDENTIFIER_REJECTED)])
    );
    assert!(h.b.is_closed(2));
    // MQTT 3.1 requires an identifier.
    let mut c = connect("", true, 0);
    c.version = Version::V31;
    assert_eq!(
        h.client(3, c),
        enc(&[connack(false, connack::IDENTIFIER_REJECTED)])
    );
}

#[test]
fn assigned_ids_are_distinct_and_prefixed() {
    let mut h = H::new();
    let a = h.b.assign_id(0);
    let b = h.b.assign_id(0);
    assert_ne!(a, b);
    assert!(a.starts_with("auto-") && a.len() == 5 + 36, "{a}");
}

#[test]
fn anonymous_refused_when_not_allowed() {
    let mut h = with_policy(|p| p.allow_anonymous = false, |_| {});
    assert_eq!(
        h.client(1, connect("a", true, 0)),
        enc(&[connack(false, connack::NOT_AUTHORIZED)])
    );
    assert!(h.b.is_closed(1));
    assert_eq!(h.b.session_count(), 0);
}

#[test]
fn keepalive_expiry_closes_and_publishes_will() {
    // [MQTT-3.1.2-24]: 1.5 × keepalive; [MQTT-3.1.2-8]: the will is published.
    let mut h = H::new();
    h.subscriber(1, "watcher", "status/#", QoS::AtLeastOnce);
    let mut c = connect("sensor", true, 10);
    c.will = Some(Will {
        props: Properties::default(),
        topic: "status/sensor",
        payload: b"offline",
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    h.client(2, c);
    h.advance(14_999);
    assert!(!h.b.is_closed(2));
    assert_eq!(h.b.next_deadline(), Some(h.now + 1));
    h.advance(1);
    assert!(h.b.is_closed(2));
    assert_eq!(
        h.take(1),
        enc(&[Packet::Publish(Publish {
            props: Properties::default().into(),
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "status/sensor",
            pid: Some(1),
            payload: b"offline",
        })])
    );
    // Retained too, since the will had its retain flag.
    assert_eq!(
        &*h.b.retained().get("status/sensor").unwrap().payload,
        b"offline"
    );
}

#[test]
fn activity_postpones_the_keepalive_deadline() {
    let mut h = H::new();
    h.client(1, connect("a", true, 2));
    h.advance(2_000);
    h.send(1, Packet::Pingreq);
    assert_eq!(h.take(1), [0xd0, 0x00]);
    h.advance(2_999);
    assert!(!h.b.is_closed(1));
    h.advance(1);
    assert!(h.b.is_closed(1));
}

#[test]
fn connect_must_arrive_in_time() {
    let mut h = H::new();
    h.open(1);
    h.advance(19_999);
    assert!(!h.b.is_closed(1));
    h.advance(1);
    assert!(h.b.is_closed(1));
}

#[test]
fn disconnect_discards_the_will() {
    // [MQTT-3.1.2-10]
    let mut h = H::new();
    h.subscriber(1, "watcher", "#", QoS::AtMostOnce);
    let mut c = connect("sensor", true, 0);
    c.will = Some(Will {
        props: Properties::default(),
        topic: "status/sensor",
        payload: b"offline",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    h.client(2, c);
    h.send(2, Packet::disconnect());
    assert!(h.b.is_closed(2));
    assert!(h.take(1).is_empty());
}

#[test]
fn socket_loss_publishes_the_will() {
    let mut h = H::new();
    h.subscriber(1, "watcher", "#", QoS::AtMostOnce);
    let mut c = connect("sensor", true, 0);
    c.will = Some(Will {
        props: Properties::default(),
        topic: "w",
        payload: b"x",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    h.client(2, c);
    h.b.lost(2, false, h.now);
    assert_eq!(h.take(1), enc(&[publish("w", b"x", QoS::AtMostOnce, None)]));
}

#[test]
fn protocol_error_publishes_the_will() {
    let mut h = H::new();
    h.subscriber(1, "watcher", "#", QoS::AtMostOnce);
    let mut c = connect("sensor", true, 0);
    c.will = Some(Will {
        props: Properties::default(),
        topic: "w",
        payload: b"x",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    h.client(2, c);
    // PUBLISH with a wildcard in its topic [MQTT-3.3.2-2].
    h.b.received(2, &[0x30, 0x03, 0x00, 0x01, b'#'], h.now);
    assert!(h.b.is_closed(2));
    assert_eq!(h.take(1), enc(&[publish("w", b"x", QoS::AtMostOnce, None)]));
}

#[test]
fn takeover_closes_the_first_connection() {
    // [MQTT-3.1.4-2]
    let mut h = H::new();
    h.client(1, connect("dup", false, 0));
    assert_eq!(
        h.client(2, connect("dup", false, 0)),
        enc(&[connack(true, 0)])
    );
    assert!(h.b.is_closed(1));
    assert!(!h.b.is_closed(2));
    assert_eq!(h.b.session_count(), 1);
    // The first socket closing afterwards does not disturb the new owner.
    h.b.lost(1, false, h.now);
    h.b.release(1);
    assert!(!h.b.is_closed(2));
    h.send(2, Packet::Pingreq);
    assert_eq!(h.take(2), [0xd0, 0x00]);
}

#[test]
fn qos2_resend_before_pubrel_is_not_delivered_twice() {
    // [MQTT-4.3.3-2]
    let mut h = H::new();
    h.subscriber(1, "sub", "t", QoS::AtMostOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"once", QoS::ExactlyOnce, Some(7)));
    assert_eq!(h.take(2), enc(&[Packet::pubrec(7)]));
    let mut dup = enc(&[publish("t", b"once", QoS::ExactlyOnce, Some(7))]);
    dup[0] |= 0x08;
    h.b.received(2, &dup, h.now);
    assert_eq!(h.take(2), enc(&[Packet::pubrec(7)]));
    h.send(2, Packet::pubrel(7));
    assert_eq!(h.take(2), enc(&[Packet::pubcomp(7)]));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"once", QoS::AtMostOnce, None)])
    );
    // After PUBREL the identifier is free: a new message with it is delivered.
    h.send(2, publish("t", b"again", QoS::ExactlyOnce, Some(7)));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"again", QoS::AtMostOnce, None)])
    );
}

#[test]
fn qos_flows_in_both_directions() {
    let mut h = H::new();
    h.subscriber(1, "sub", "t", QoS::ExactlyOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"1", QoS::AtLeastOnce, Some(1)));
    assert_eq!(h.take(2), enc(&[Packet::puback(1)]));
    h.send(2, publish("t", b"2", QoS::ExactlyOnce, Some(2)));
    assert_eq!(h.take(2), enc(&[Packet::pubrec(2)]));
    // Outbound QoS = min(published, granted).
    assert_eq!(
        h.take(1),
        enc(&[
            publish("t", b"1", QoS::AtLeastOnce, Some(1)),
            publish("t", b"2", QoS::ExactlyOnce, Some(2)),
        ])
    );
    h.send(1, Packet::puback(1));
    h.send(1, Packet::pubrec(2));
    assert_eq!(h.take(1), enc(&[Packet::pubrel(2)]));
    assert_eq!(h.b.session_queue("sub"), Some((0, 1)));
    h.send(1, Packet::pubcomp(2));
    assert_eq!(h.b.session_queue("sub"), Some((0, 0)));
}

#[test]
fn granted_qos_caps_outbound_qos() {
    let mut h = H::new();
    h.subscriber(1, "sub", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"x", QoS::ExactlyOnce, Some(1)));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"x", QoS::AtLeastOnce, Some(1))])
    );
}

#[test]
fn overlapping_subscriptions_deliver_once_at_highest_qos() {
    let mut h = H::new();
    h.subscriber(1, "sub", "a/#", QoS::AtMostOnce);
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 2,
            filters: vec![("a/+", QoS::AtLeastOnce.into())],
        },
    );
    h.take(1);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("a/b", b"x", QoS::AtLeastOnce, Some(1)));
    assert_eq!(
        h.take(1),
        enc(&[publish("a/b", b"x", QoS::AtLeastOnce, Some(1))])
    );
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // [MQTT-4.7.2-1]
    let mut h = H::new();
    h.subscriber(1, "sub", "#", QoS::AtMostOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("$SYS/x", b"x", QoS::AtMostOnce, None));
    assert!(h.take(1).is_empty());
}

#[test]
fn unsubscribe_stops_delivery() {
    let mut h = H::new();
    h.subscriber(1, "sub", "t", QoS::AtMostOnce);
    h.send(
        1,
        Packet::Unsubscribe {
            props: Properties::default().into(),
            pid: 9,
            filters: vec!["t"],
        },
    );
    assert_eq!(h.take(1), [0xb0, 0x02, 0x00, 0x09]);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"x", QoS::AtMostOnce, None));
    assert!(h.take(1).is_empty());
    assert!(h.b.subscriptions().is_empty());
}

#[test]
fn retained_messages_stored_replaced_deleted() {
    // [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
    let mut h = H::new();
    h.client(2, connect("pub", true, 0));
    let retained = |p: &'static [u8]| {
        Packet::Publish(Publish {
            props: Properties::default().into(),
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "home/lights/sitting_room",
            pid: Some(1),
            payload: p,
        })
    };
    h.send(2, retained(b"ON"));
    h.send(2, retained(b"OFF"));
    h.take(2);
    h.client(1, connect("sub", true, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("home/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[
            Packet::Suback {
                props: Properties::default().into(),
                pid: 1,
                codes: vec![0]
            },
            Packet::Publish(Publish {
                props: Properties::default().into(),
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "home/lights/sitting_room",
                pid: None,
                payload: b"OFF",
            })
        ])
    );
    h.send(2, retained(b""));
    // Delivered to the current subscriber as an ordinary message, and deleted from the store.
    assert_eq!(
        h.take(1),
        enc(&[publish(
            "home/lights/sitting_room",
            b"",
            QoS::AtMostOnce,
            None
        )])
    );
    assert!(h.b.retained().is_empty());
}

#[test]
fn persistent_session_queues_qos1_while_away() {
    let mut h = H::new();
    h.client(1, connect("sub", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("t", QoS::AtLeastOnce.into())],
        },
    );
    h.take(1);
    h.send(1, Packet::disconnect());
    h.b.release(1);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"0", QoS::AtMostOnce, None));
    h.send(2, publish("t", b"1", QoS::AtLeastOnce, Some(1)));
    h.send(2, publish("t", b"2", QoS::ExactlyOnce, Some(2)));
    assert_eq!(h.b.session_queue("sub"), Some((2, 0)));
    assert_eq!(
        h.client(1, connect("sub", false, 0)),
        enc(&[
            connack(true, 0),
            publish("t", b"1", QoS::AtLeastOnce, Some(1)),
            publish("t", b"2", QoS::AtLeastOnce, Some(2)),
        ])
    );
}

#[test]
fn unacknowledged_messages_are_resent_with_dup_on_reconnect() {
    // [MQTT-4.4.0-1]
    let mut h = H::new();
    h.client(1, connect("sub", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("t", QoS::ExactlyOnce.into())],
        },
    );
    h.take(1);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"a", QoS::AtLeastOnce, Some(1)));
    h.send(2, publish("t", b"b", QoS::ExactlyOnce, Some(2)));
    h.take(1);
    h.send(1, Packet::pubrec(2)); // b is half-way: PUBREL is due on resume.
    h.take(1);
    h.b.lost(1, false, h.now);
    h.b.release(1);
    let mut dup = enc(&[publish("t", b"a", QoS::AtLeastOnce, Some(1))]);
    dup[0] |= 0x08;
    dup.extend_from_slice(&enc(&[Packet::pubrel(2)]));
    let mut want = enc(&[connack(true, 0)]);
    want.extend_from_slice(&dup);
    assert_eq!(h.client(1, connect("sub", false, 0)), want);
}

#[test]
fn clean_session_discards_the_old_session() {
    let mut h = H::new();
    h.client(1, connect("c", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("t", QoS::AtLeastOnce.into())],
        },
    );
    h.send(1, Packet::disconnect());
    h.b.release(1);
    assert_eq!(h.b.session_count(), 1);
    assert_eq!(
        h.client(1, connect("c", true, 0)),
        enc(&[connack(false, 0)])
    );
    assert!(h.b.subscriptions().is_empty());
    h.send(1, Packet::disconnect());
    assert_eq!(h.b.session_count(), 0);
}

#[test]
fn inflight_window_and_full_queue_pause_the_publisher_instead_of_dropping() {
    let mut h = H::with(Config {
        max_inflight_messages: 2,
        max_queued_messages: 5,
        ..Config::default()
    });
    h.subscriber(1, "slow", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    for i in 1..=8u16 {
        h.send(2, publish("t", b"m", QoS::AtLeastOnce, Some(i)));
    }
    // 2 in flight, 5 queued, and the 8th kept too: the publisher is paused, nothing dropped.
    assert_eq!(h.b.session_queue("slow"), Some((6, 2)));
    assert_eq!(h.b.stats.msgs_dropped, 0);
    assert!(h.b.is_paused(2));
    let ninth = enc(&[publish("t", b"m", QoS::AtLeastOnce, Some(9))]);
    assert_eq!(
        h.b.received(2, &ninth, h.now),
        0,
        "a paused connection consumes nothing"
    );
    assert_eq!(
        h.take(1),
        enc(&[
            publish("t", b"m", QoS::AtLeastOnce, Some(1)),
            publish("t", b"m", QoS::AtLeastOnce, Some(2)),
        ])
    );
    // Acks drain the queue; at half of max_queued_messages the publisher goes on.
    for pid in 1..=4u16 {
        h.send(1, Packet::puback(pid));
    }
    assert!(!h.b.is_paused(2));
    let mut resumed = Vec::new();
    h.b.take_resumed(&mut resumed);
    assert_eq!(resumed, vec![2]);
    assert_eq!(h.b.received(2, &ninth, h.now), ninth.len());
    assert_eq!(h.b.session_queue("slow"), Some((3, 2)));
}

#[test]
fn a_pause_that_runs_out_falls_back_to_dropping() {
    let mut h = H::with(Config {
        max_inflight_messages: 1,
        max_queued_messages: 2,
        ..Config::default()
    });
    h.subscriber(1, "stalled", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    for i in 1..=4u16 {
        h.send(2, publish("t", b"m", QoS::AtLeastOnce, Some(i)));
    }
    assert!(h.b.is_paused(2));
    h.advance(THROTTLE_MAX_MS);
    assert!(!h.b.is_paused(2));
    // For a while, messages for the full queue are dropped rather than pausing again.
    h.send(2, publish("t", b"m", QoS::AtLeastOnce, Some(5)));
    assert_eq!(h.b.stats.msgs_dropped, 1);
    assert!(!h.b.is_paused(2));
    // A subscriber going away releases its publishers at once.
    h.advance(THROTTLE_MAX_MS);
    h.send(2, publish("t", b"m", QoS::AtLeastOnce, Some(6)));
    assert!(h.b.is_paused(2));
    h.b.lost(1, false, h.now);
    assert!(!h.b.is_paused(2));
}

#[test]
fn a_client_publishing_to_its_own_full_queue_is_not_paused() {
    let mut h = H::with(Config {
        max_inflight_messages: 1,
        max_queued_messages: 1,
        ..Config::default()
    });
    h.subscriber(1, "loop", "t", QoS::AtLeastOnce);
    for i in 1..=4u16 {
        h.send(1, publish("t", b"m", QoS::AtLeastOnce, Some(i)));
    }
    assert!(!h.b.is_paused(1));
    assert_eq!(h.b.stats.msgs_dropped, 2);
}

#[test]
fn qos0_to_a_reader_that_stalls_is_bounded() {
    let mut h = H::with(Config {
        max_queued_messages: 100,
        ..Config::default()
    });
    h.subscriber(1, "stalled", "t", QoS::AtMostOnce);
    h.client(2, connect("pub", true, 0));
    let payload = [7u8; 1000];
    for _ in 0..1000 {
        h.send(2, publish("t", &payload, QoS::AtMostOnce, None));
    }
    // The socket took nothing: output stops near the high-water mark, the queue at its limit.
    let pending = h.b.output(1).len();
    assert!(
        (OUT_HIGH_WATER..OUT_HIGH_WATER + 1100).contains(&pending),
        "{pending}"
    );
    assert_eq!(h.b.session_queue("stalled"), Some((100, 0)));
    let sent_now = pending / 1006;
    assert_eq!(h.b.stats.msgs_dropped, 1000 - 100 - sent_now as u64);
    // Once it reads, the queue drains in order.
    let all = h.take(1);
    assert_eq!(all.len(), (sent_now + 100) * 1006);
}

#[test]
fn oversized_payload_is_dropped_but_acknowledged() {
    let mut h = H::with(Config {
        message_size_limit: 4,
        ..Config::default()
    });
    h.subscriber(1, "sub", "t", QoS::AtMostOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"12345", QoS::AtLeastOnce, Some(1)));
    assert_eq!(h.take(2), enc(&[Packet::puback(1)]));
    assert!(h.take(1).is_empty());
    h.send(2, publish("t", b"1234", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"1234", QoS::AtMostOnce, None)])
    );
}

#[test]
fn packet_over_the_limit_closes_before_its_body_arrives() {
    let mut h = H::with(Config {
        message_size_limit: 10,
        ..Config::default()
    });
    h.client(1, connect("c", true, 0));
    // Announces 2 MB; only the header has arrived.
    assert_eq!(h.b.received(1, &[0x30, 0x80, 0x80, 0x80, 0x01], h.now), 5);
    assert!(h.b.is_closed(1));
}

#[test]
fn before_connect_only_a_connect_sized_packet_is_buffered() {
    let mut h = H::new();
    h.open(1);
    h.b.received(1, &[0x10, 0xff, 0xff, 0xff, 0x7f], h.now);
    assert!(h.b.is_closed(1));
}

#[test]
fn partial_packets_are_left_for_the_caller() {
    let mut h = H::new();
    h.open(1);
    let bytes = enc(&[Packet::connect(connect("abc", true, 0)), Packet::Pingreq]);
    let n = bytes.len();
    assert_eq!(h.b.received(1, &bytes[..n - 1], h.now), n - 2);
    assert_eq!(h.b.received(1, &bytes[n - 2..], h.now), 2);
    assert_eq!(h.take(1), [0x20, 0x02, 0x00, 0x00, 0xd0, 0x00]);
}

#[test]
fn released_slot_is_reused_without_stale_state() {
    let mut h = H::new();
    h.client(1, connect("a", true, 1));
    h.b.lost(1, true, h.now);
    h.b.release(1);
    h.client(1, connect("b", true, 0));
    // The old keepalive timer of slot 1 must not close the new connection.
    h.advance(10_000);
    assert!(!h.b.is_closed(1));
}

/// Arbitrary packet sequences from several clients, with socket losses, partial writes and
/// clock jumps: the core must never panic and must keep its bounds. (The cargo-fuzz target
/// explores far more; this runs in every `cargo test`.)
#[test]
fn random_packet_sequences_keep_the_core_sound() {
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let topics = ["a", "a/b", "a/c", "$SYS/x", "b"];
    let filters = ["#", "a/+", "a/b", "+/c", "$SYS/#", "b"];
    let ids = ["c0", "c1", "c2", "c3"];
    for round in 0..40 {
        let mut h = H::with(Config {
            max_inflight_messages: 3,
            max_queued_messages: 10,
            message_size_limit: 64,
            ..Config::default()
        });
        let mut open = [false; 6];
        for _ in 0..800 {
            let id = next(6) as usize;
            if !open[id] {
                h.open(id);
                open[id] = true;
            }
            let qos = QoS::from_u8(next(3) as u8).unwrap();
            let pid = (next(5) + 1) as u16;
            let bytes = match next(14) {
                0 | 1 => enc(&[Packet::connect(Connect {
                    props: Properties::default(),
                    version: if next(4) == 0 {
                        Version::V31
                    } else {
                        Version::V311
                    },
                    clean_session: next(2) == 0,
                    keep_alive: next(3) as u16,
                    client_id: ids[next(4) as usize],
                    will: (next(2) == 0).then(|| Will {
                        props: Properties::default(),
                        topic: topics[next(5) as usize],
                        payload: b"w",
                        qos,
                        retain: next(2) == 0,
                    }),
                    username: None,
                    password: None,
                })]),
                2..=4 => {
                    let mut b = enc(&[Packet::Publish(Publish {
                        props: Properties::default().into(),
                        dup: false,
                        qos,
                        retain: next(3) == 0,
                        topic: topics[next(5) as usize],
                        pid: (qos != QoS::AtMostOnce).then_some(pid),
                        payload: if next(8) == 0 { &[0u8; 100] } else { b"p" },
                    })]);
                    if qos != QoS::AtMostOnce && next(4) == 0 {
                        b[0] |= 0x08;
                    }
                    b
                }
                5 => enc(&[Packet::Subscribe {
                    props: Properties::default().into(),
                    pid,
                    filters: vec![(filters[next(6) as usize], qos.into())],
                }]),
                6 => enc(&[Packet::Unsubscribe {
                    props: Properties::default().into(),
                    pid,
                    filters: vec![filters[next(6) as usize]],
                }]),
                7 => enc(&[Packet::puback(pid)]),
                8 => enc(&[Packet::pubrec(pid)]),
                9 => enc(&[Packet::pubrel(pid)]),
                10 => enc(&[Packet::pubcomp(pid)]),
                11 => enc(&[Packet::Pingreq]),
                12 => enc(&[Packet::disconnect()]),
                _ => {
                    let n = next(8) as usize;
                    (0..n).map(|_| next(256) as u8).collect()
                }
            };
            // Sometimes split the bytes, as a socket would.
            let cut = next(bytes.len() as u64 + 1) as usize;
            let used = h.b.received(id, &bytes[..cut], h.now);
            let mut rest = bytes[used..cut].to_vec();
            rest.extend_from_slice(&bytes[cut..]);
            h.b.received(id, &rest, h.now);
            match next(10) {
                0 => {
                    h.b.lost(id, next(2) == 0, h.now);
                }
                1 => h.advance(next(4000)),
                2 => {
                    // A socket that takes only part of the output.
                    let n = h.b.output(id).len() / 2;
                    h.b.written(id, n, h.now);
                }
                _ => {
                    let n = h.b.output(id).len();
                    h.b.written(id, n, h.now);
                }
            }
            if h.b.is_closed(id) {
                h.b.release(id);
                open[id] = false;
            }
            for c in ids {
                if let Some((queued, inflight)) = h.b.session_queue(c) {
                    assert!(
                        queued <= 10 && inflight <= 3,
                        "round {round}: {queued} {inflight}"
                    );
                }
            }
        }
    }
}

/// (client id, socket). Bytes per idle connection are measured by `scripts/bench.sh`; this
/// keeps the structures from growing back unnoticed.
/// What an idle client costs the core: its connection and its session, before the heap parts
/// (client id, socket). Bytes per idle connection are measured by `scripts/bench.sh`; this
/// keeps the structures from growing back unnoticed.
#[test]
fn idle_connection_state_stays_small() {
    use std::mem::size_of;
    // 56 and 88 bytes on 64-bit targets (less on 32-bit ones): the links between them are
    // `Key`s (4 bytes, not 16), serials u32, an absent expiry `Millis::MAX`, not an `Option`,
    // and a client id of up to 22 bytes is kept in place (`ShortStr`, no heap chunk).
    assert!(
        size_of::<super::Conn>() <= 56,
        "{}",
        size_of::<super::Conn>()
    );
    assert!(
        size_of::<super::session::Session>() <= 88,
        "{}",
        size_of::<super::session::Session>()
    );
}

/// Found by fuzzing (fuzz/regressions/core_sequences): a PUBACK that arrives before the client
/// can have read the PUBLISH it acknowledges still completes it [MQTT-4.3.2-2] (the broker
/// only knows what it sent), and the next message goes out within the window.
#[test]
fn an_early_puback_completes_the_message_and_the_window_moves_on() {
    let mut h = H::with(Config {
        max_inflight_messages: 1,
        ..Config::default()
    });
    h.subscriber(1, "sub", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"1", QoS::AtLeastOnce, Some(1)));
    h.send(2, publish("t", b"2", QoS::AtLeastOnce, Some(2)));
    assert_eq!(h.b.session_queue("sub"), Some((1, 1)));
    // Nothing written to the subscriber's socket yet, and its PUBACK for 1 arrives.
    h.send(1, Packet::puback(1));
    assert_eq!(h.b.session_queue("sub"), Some((0, 1)));
    assert_eq!(
        h.take(1),
        enc(&[
            publish("t", b"1", QoS::AtLeastOnce, Some(1)),
            publish("t", b"2", QoS::AtLeastOnce, Some(2)),
        ])
    );
    h.send(1, Packet::puback(2));
    assert_eq!(h.b.session_queue("sub"), Some((0, 0)));
}
