//! The core without sockets: a fake clock, packets in, exact bytes out.

use std::rc::Rc;

use super::*;
use crate::auth::acl::Acl;
use crate::mqtt::{Ack, Connect, Properties, Publish, QoS, SubOptions, Will};

struct H {
    b: Broker,
    now: Millis,
}

fn enc(ps: &[Packet<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        p.encode(&mut out);
    }
    out
}

fn connect(id: &str, clean: bool, ka: u16) -> Connect<'_> {
    Connect {
        props: Properties::default(),
        version: Version::V311,
        clean_session: clean,
        keep_alive: ka,
        client_id: id,
        will: None,
        username: None,
        password: None,
    }
}

fn publish<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, pid: Option<u16>) -> Packet<'a> {
    Packet::Publish(Publish {
        props: Properties::default(),
        dup: false,
        qos,
        retain: false,
        topic,
        pid,
        payload,
    })
}

fn connack(sp: bool, code: u8) -> Packet<'static> {
    Packet::Connack {
        props: Properties::default(),
        session_present: sp,
        code,
    }
}

impl H {
    fn new() -> H {
        H::with(Config::default())
    }
    fn with(cfg: Config) -> H {
        H {
            b: Broker::new(cfg),
            now: 1_000,
        }
    }
    fn open(&mut self, id: ConnId) {
        self.b.open(id, "127.0.0.1:50000", 0, self.now);
    }
    fn send(&mut self, id: ConnId, p: Packet<'_>) {
        let bytes = enc(&[p]);
        assert_eq!(self.b.received(id, &bytes, self.now), bytes.len());
    }
    /// Everything written to `id` since the last call (the socket takes it all).
    fn take(&mut self, id: ConnId) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let out = self.b.output(id).to_vec();
            if out.is_empty() {
                return all;
            }
            self.b.written(id, out.len(), self.now);
            all.extend_from_slice(&out);
        }
    }
    fn client(&mut self, id: ConnId, c: Connect<'_>) -> Vec<u8> {
        self.open(id);
        self.send(id, Packet::Connect(c));
        self.take(id)
    }
    fn subscriber(&mut self, id: ConnId, client: &str, filter: &str, qos: QoS) {
        assert_eq!(
            self.client(id, connect(client, true, 0)),
            enc(&[connack(false, 0)])
        );
        self.send(
            id,
            Packet::Subscribe {
                props: Properties::default(),
                pid: 1,
                filters: vec![(filter, qos.into())],
            },
        );
        assert_eq!(
            self.take(id),
            enc(&[Packet::Suback {
                props: Properties::default(),
                pid: 1,
                codes: vec![qos.as_u8()]
            }])
        );
    }
    fn advance(&mut self, ms: Millis) {
        self.now += ms;
        self.b.tick(self.now);
    }
}

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
    h.send(1, Packet::Connect(connect("a", true, 0)));
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
            props: Properties::default(),
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
            props: Properties::default(),
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
            props: Properties::default(),
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
            props: Properties::default(),
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
            props: Properties::default(),
            pid: 1,
            filters: vec![("home/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[
            Packet::Suback {
                props: Properties::default(),
                pid: 1,
                codes: vec![0]
            },
            Packet::Publish(Publish {
                props: Properties::default(),
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
            props: Properties::default(),
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
            props: Properties::default(),
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
            props: Properties::default(),
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
    let bytes = enc(&[Packet::Connect(connect("abc", true, 0)), Packet::Pingreq]);
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
                0 | 1 => enc(&[Packet::Connect(Connect {
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
                        props: Properties::default(),
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
                    props: Properties::default(),
                    pid,
                    filters: vec![(filters[next(6) as usize], qos.into())],
                }]),
                6 => enc(&[Packet::Unsubscribe {
                    props: Properties::default(),
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

fn with_policy(f: impl FnOnce(&mut ListenerPolicy), g: impl FnOnce(&mut Config)) -> H {
    let mut cfg = Config::default();
    f(&mut cfg.listeners[0]);
    g(&mut cfg);
    H::with(cfg)
}

fn acl(text: &str) -> Option<Rc<Acl>> {
    Some(Rc::new(Acl::parse(text).unwrap()))
}

fn login<'a>(id: &'a str, user: Option<&'a str>) -> Connect<'a> {
    let mut c = connect(id, true, 0);
    c.username = user;
    c
}

#[test]
fn clientid_prefixes_admit_only_matching_ids() {
    let mut h = with_policy(|_| {}, |c| c.clientid_prefixes = Some("C1-".into()));
    assert_eq!(
        h.client(1, connect("C1-python1", true, 0)),
        enc(&[connack(false, 0)])
    );
    assert_eq!(
        h.client(2, connect("python2", true, 0)),
        enc(&[connack(false, connack::IDENTIFIER_REJECTED)])
    );
    assert!(h.b.is_closed(2));
}

#[test]
fn zero_length_ids_can_be_refused_and_prefixed() {
    let mut h = with_policy(|p| p.allow_zero_length_clientid = false, |_| {});
    assert_eq!(
        h.client(1, connect("", true, 0)),
        enc(&[connack(false, connack::IDENTIFIER_REJECTED)])
    );
    let mut h = with_policy(|p| p.auto_id_prefix = "dev-".into(), |_| {});
    h.client(1, connect("", true, 0));
    assert_eq!(h.b.by_id.len(), 1);
    assert!(h
        .b
        .sessions
        .iter()
        .all(|(_, s)| s.client_id.starts_with("dev-")));
}

#[test]
fn username_as_client_id() {
    let mut h = with_policy(|p| p.use_username_as_clientid = true, |_| {});
    h.client(1, login("ignored", Some("alice")));
    assert!(h.b.session_queue("alice").is_some());
    assert!(h.b.session_queue("ignored").is_none());
    assert_eq!(
        h.client(2, connect("x", true, 0)),
        enc(&[connack(false, connack::NOT_AUTHORIZED)])
    );
}

#[test]
fn named_clients_without_a_password_file_follow_allow_anonymous() {
    // mosquitto 2.0: no password file and allow_anonymous false refuses everyone.
    let mut h = with_policy(|p| p.allow_anonymous = false, |_| {});
    assert_eq!(
        h.client(1, login("a", Some("bob"))),
        enc(&[connack(false, connack::NOT_AUTHORIZED)])
    );
    let mut h = H::new();
    assert_eq!(
        h.client(1, login("a", Some("bob"))),
        enc(&[connack(false, 0)])
    );
}

#[test]
fn acl_filters_publish_subscribe_and_delivery() {
    let rules =
        "topic read public/#\nuser bob\ntopic home/#\ntopic deny home/secret\ntopic read other/#\n";
    let mut h = with_policy(|p| p.acl = acl(rules), |_| {});
    h.client(1, login("bob1", Some("bob")));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![
                ("home/#", QoS::AtMostOnce.into()),
                ("#", QoS::AtMostOnce.into()),
                ("other/+", QoS::AtMostOnce.into()),
            ],
        },
    );
    // A filter the rules do not cover is refused with 0x80.
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default(),
            pid: 1,
            codes: vec![0, 0x80, 0]
        }])
    );
    // Delivery is checked per message: home/secret is denied by a deny rule.
    h.client(2, login("bob2", Some("bob")));
    h.send(2, publish("home/a", b"1", QoS::AtMostOnce, None));
    h.send(2, publish("home/secret", b"2", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(1),
        enc(&[publish("home/a", b"1", QoS::AtMostOnce, None)])
    );
    // Writing where only read is granted: dropped, yet acknowledged.
    h.send(2, publish("other/x", b"3", QoS::AtLeastOnce, Some(4)));
    assert_eq!(h.take(2), enc(&[Packet::puback(4)]));
    assert!(h.take(1).is_empty());
    // Anonymous clients get the rules before the first user line.
    h.client(3, connect("anon", true, 0));
    h.send(3, publish("home/a", b"x", QoS::AtMostOnce, None));
    assert!(h.take(1).is_empty());
}

#[test]
fn acl_applies_to_retained_messages_and_their_source() {
    let rules = "user w\ntopic write r/#\nuser r\ntopic read r/#\n";
    let mut h = with_policy(|p| p.acl = acl(rules), |_| {});
    h.client(1, login("writer", Some("w")));
    let retained = Packet::Publish(Publish {
        props: Properties::default(),
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "r/1",
        pid: None,
        payload: b"kept",
    });
    h.send(1, retained);
    h.client(2, login("reader", Some("r")));
    h.send(
        2,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    let mut want = enc(&[Packet::Suback {
        props: Properties::default(),
        pid: 1,
        codes: vec![0],
    }]);
    want.extend(enc(&[Packet::Publish(Publish {
        props: Properties::default(),
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "r/1",
        pid: None,
        payload: b"kept",
    })]));
    assert_eq!(h.take(2), want);
    // The writer loses its right: check_retain_source withholds the message.
    h.b.cfg.listeners[0].acl = acl("user r\ntopic read r/#\n");
    h.send(
        2,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 2,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(2),
        enc(&[Packet::Suback {
            props: Properties::default(),
            pid: 2,
            codes: vec![0]
        }])
    );
    // The writer itself (user w) may not read.
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 3,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default(),
            pid: 3,
            codes: vec![0x80]
        }])
    );
}

#[test]
fn sys_topics_are_read_only_to_clients() {
    let mut h = H::new();
    h.subscriber(1, "sub", "$SYS/#", QoS::AtMostOnce);
    h.client(2, connect("pub", true, 0));
    h.send(
        2,
        publish(
            "$SYS/broker/uptime",
            b"0 seconds",
            QoS::AtLeastOnce,
            Some(1),
        ),
    );
    assert_eq!(h.take(2), enc(&[Packet::puback(1)]));
    assert!(h.take(1).is_empty());
}

#[test]
fn mount_point_prefixes_topics_and_hides_the_prefix() {
    let mut cfg = Config::default();
    cfg.listeners.push(ListenerPolicy {
        mount_point: Some("site1/".into()),
        ..ListenerPolicy::default()
    });
    let mut h = H::with(cfg);
    // Client 1 on the plain listener sees everything under its real name.
    h.subscriber(1, "admin", "#", QoS::AtMostOnce);
    // Client 2 on the mounted listener.
    h.b.open(2, "127.0.0.1:1", 1, h.now);
    h.send(2, Packet::Connect(connect("site", true, 0)));
    h.take(2);
    h.send(
        2,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("t", QoS::AtMostOnce.into())],
        },
    );
    h.take(2);
    h.send(2, publish("t", b"x", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(1),
        enc(&[publish("site1/t", b"x", QoS::AtMostOnce, None)])
    );
    assert_eq!(h.take(2), enc(&[publish("t", b"x", QoS::AtMostOnce, None)]));
}

#[test]
fn max_qos_caps_grants_and_refuses_higher_publishes() {
    let mut h = with_policy(|p| p.max_qos = QoS::AtLeastOnce, |_| {});
    h.client(1, connect("s", true, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("t", QoS::ExactlyOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default(),
            pid: 1,
            codes: vec![1]
        }])
    );
    h.send(1, publish("t", b"x", QoS::ExactlyOnce, Some(1)));
    assert!(h.b.is_closed(1));
}

#[test]
fn max_connections_refuses_the_extra_connection() {
    let mut h = with_policy(|p| p.max_connections = Some(1), |_| {});
    h.client(1, connect("a", true, 0));
    h.open(2);
    assert!(h.b.is_closed(2));
    h.b.release(2);
    h.b.lost(1, false, h.now);
    h.b.release(1);
    h.open(3);
    assert!(!h.b.is_closed(3));
}

#[test]
fn retain_unavailable_closes_on_retained_publish() {
    let mut h = with_policy(|_| {}, |c| c.retain_available = false);
    h.client(1, connect("a", true, 0));
    h.b.received(
        1,
        &enc(&[Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "t",
            pid: None,
            payload: b"x",
        })]),
        h.now,
    );
    assert!(h.b.is_closed(1));
    assert!(h.b.retained().is_empty());
}

#[test]
fn queued_bytes_and_inflight_bytes_limits() {
    let mut h = with_policy(
        |_| {},
        |c| {
            c.max_inflight_bytes = 10;
            c.max_queued_bytes = 25;
        },
    );
    h.subscriber(1, "slow", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    for i in 1..=4u16 {
        h.send(2, publish("t", b"0123456789", QoS::AtLeastOnce, Some(i)));
    }
    // One 10-byte message in flight fills the window; two more queue (20 <= 25); the fourth
    // would pass the byte limit: kept, and the publisher paused.
    assert_eq!(h.b.session_queue("slow"), Some((3, 1)));
    assert!(h.b.is_paused(2));
    // QoS 0 messages over the limit are dropped, as before.
    h.client(3, connect("pub0", true, 0));
    h.send(3, publish("t", b"0123456789", QoS::AtMostOnce, None));
    assert_eq!(h.b.stats.msgs_dropped, 1);
}

#[test]
fn qos0_queued_for_away_clients_when_configured() {
    let mut h = with_policy(|_| {}, |c| c.queue_qos0_messages = true);
    h.client(1, connect("sub", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("t", QoS::AtMostOnce.into())],
        },
    );
    h.send(1, Packet::disconnect());
    h.b.release(1);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"q0", QoS::AtMostOnce, None));
    assert_eq!(
        h.client(1, connect("sub", false, 0)),
        enc(&[connack(true, 0), publish("t", b"q0", QoS::AtMostOnce, None)])
    );
}

#[test]
fn upgrade_outgoing_qos_delivers_at_granted_qos() {
    let mut h = with_policy(|_| {}, |c| c.upgrade_outgoing_qos = true);
    h.subscriber(1, "sub", "t", QoS::AtLeastOnce);
    h.client(2, connect("pub", true, 0));
    h.send(2, publish("t", b"x", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"x", QoS::AtLeastOnce, Some(1))])
    );
}

// ----- MQTT 5 -------------------------------------------------------------------------------

fn enc5(ps: &[Packet<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        p.encode_version(Version::V5, &mut out);
    }
    out
}

/// Every packet in `bytes`, decoded as MQTT 5.
fn packets5(bytes: &[u8]) -> Vec<Packet<'_>> {
    packets(bytes, Version::V5)
}

fn packets(bytes: &[u8], version: Version) -> Vec<Packet<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match mqtt::decode(&bytes[pos..], version, usize::MAX).unwrap() {
            Status::Complete(p, n) => {
                out.push(p);
                pos += n;
            }
            Status::Partial => panic!("partial packet in output"),
        }
    }
    out
}

fn connect5<'a>(id: &'a str, clean: bool, props: Properties<'a>) -> Connect<'a> {
    Connect {
        props,
        version: Version::V5,
        clean_session: clean,
        keep_alive: 0,
        client_id: id,
        will: None,
        username: None,
        password: None,
    }
}

impl H {
    fn send5(&mut self, id: ConnId, p: Packet<'_>) {
        let bytes = enc5(&[p]);
        assert_eq!(self.b.received(id, &bytes, self.now), bytes.len());
    }
    fn client5(&mut self, id: ConnId, c: Connect<'_>) -> Vec<u8> {
        self.open(id);
        self.send5(id, Packet::Connect(c));
        self.take(id)
    }
    fn sub5(&mut self, id: ConnId, filter: &str, opts: SubOptions, sub_id: Option<u32>) {
        self.send5(
            id,
            Packet::Subscribe {
                pid: 1,
                filters: vec![(filter, opts)],
                props: Properties {
                    subscription_identifiers: sub_id.into_iter().collect(),
                    ..Properties::default()
                },
            },
        );
    }
}

fn pub5<'a>(
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    pid: Option<u16>,
    props: Properties<'a>,
) -> Packet<'a> {
    Packet::Publish(Publish {
        props,
        dup: false,
        qos,
        retain: false,
        topic,
        pid,
        payload,
    })
}

#[test]
fn v5_connack_announces_the_brokers_limits() {
    let mut h = H::new();
    let out = h.client5(1, connect5("", true, Properties::default()));
    let ps = packets5(&out);
    let Packet::Connack { code, props, .. } = &ps[0] else {
        panic!("{ps:?}")
    };
    assert_eq!(*code, 0);
    assert!(props
        .assigned_client_identifier
        .unwrap()
        .starts_with("auto-"));
    assert_eq!(props.topic_alias_maximum, Some(10));
    assert_eq!(props.receive_maximum, Some(20));
    // Shared subscriptions are offered: the property is left at its default (available).
    assert_eq!(props.shared_subscription_available, None);
    assert_eq!(props.maximum_qos, None);
    // max_keepalive lowers the client's keepalive: Server Keep Alive says so.
    let mut h = with_policy(|_| {}, |c| c.max_keepalive = 30);
    let mut c = connect5("k", true, Properties::default());
    c.keep_alive = 120;
    let out = h.client5(1, c);
    let ps = packets5(&out);
    assert!(matches!(&ps[0], Packet::Connack { props, .. } if props.server_keep_alive == Some(30)));
}

#[test]
fn v5_refusals_carry_v5_reason_codes() {
    let mut h = with_policy(|p| p.allow_anonymous = false, |_| {});
    assert_eq!(
        h.client5(1, connect5("a", true, Properties::default())),
        enc5(&[Packet::connack(false, reason::NOT_AUTHORIZED)])
    );
    let mut h = with_policy(|_| {}, |c| c.clientid_prefixes = Some("C1-".into()));
    assert_eq!(
        h.client5(1, connect5("x", true, Properties::default())),
        enc5(&[Packet::connack(false, reason::CLIENT_IDENTIFIER_NOT_VALID)])
    );
    let mut h = H::new();
    let c = connect5(
        "a",
        true,
        Properties {
            authentication_method: Some("SCRAM-SHA-1"),
            ..Properties::default()
        },
    );
    assert_eq!(
        h.client5(1, c),
        enc5(&[Packet::connack(false, reason::BAD_AUTHENTICATION_METHOD)])
    );
    // A malformed MQTT 5 CONNECT is answered with CONNACK 0x81 (reserved flag set).
    h.open(2);
    let mut bad = enc5(&[Packet::Connect(connect5("b", true, Properties::default()))]);
    bad[9] |= 0x01;
    h.b.received(2, &bad, h.now);
    assert_eq!(
        h.take(2),
        enc5(&[Packet::connack(false, reason::MALFORMED_PACKET)])
    );
}

#[test]
fn v5_empty_client_id_allowed_without_clean_start() {
    // [MQTT-3.1.3-6]
    let mut h = H::new();
    let out = h.client5(1, connect5("", false, Properties::default()));
    assert!(matches!(
        &packets5(&out)[0],
        Packet::Connack { code: 0, .. }
    ));
}

#[test]
fn session_expiry_keeps_then_ends_the_session() {
    let mut h = H::new();
    let c = connect5(
        "s",
        true,
        Properties {
            session_expiry_interval: Some(10),
            ..Properties::default()
        },
    );
    h.client5(1, c.clone());
    h.sub5(1, "t", QoS::AtLeastOnce.into(), None);
    h.b.lost(1, false, h.now);
    h.b.release(1);
    h.client(2, connect("p", true, 0));
    h.send(2, publish("t", b"kept", QoS::AtLeastOnce, Some(1)));
    h.advance(9_999);
    assert_eq!(h.b.session_queue("s"), Some((1, 0)));
    let mut c2 = c.clone();
    c2.clean_session = false;
    let out = h.client5(1, c2);
    let ps = packets5(&out);
    assert!(matches!(
        &ps[0],
        Packet::Connack {
            session_present: true,
            ..
        }
    ));
    assert!(matches!(&ps[1], Packet::Publish(p) if p.payload == b"kept"));
    // Away again, past the interval: gone.
    h.b.lost(1, false, h.now);
    h.b.release(1);
    h.advance(10_000);
    assert_eq!(h.b.session_queue("s"), None);
    assert!(h.b.subscriptions().is_empty());
}

#[test]
fn session_expiry_zero_ends_at_disconnect_and_cannot_be_raised() {
    let mut h = H::new();
    h.client5(1, connect5("z", false, Properties::default()));
    h.send5(
        1,
        Packet::Disconnect {
            reason: 0,
            props: Properties {
                session_expiry_interval: Some(60),
                ..Properties::default()
            },
        },
    );
    // [MQTT-3.14.2-2]: a protocol error, answered with DISCONNECT 0x82.
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Disconnect {
            reason: reason::PROTOCOL_ERROR,
            props: Properties::default()
        }])
    );
    assert!(h.b.is_closed(1));
    assert_eq!(h.b.session_count(), 0);
}

fn will_client(delay: u32, expiry: u32) -> Connect<'static> {
    let mut c = connect5(
        "dev",
        true,
        Properties {
            session_expiry_interval: Some(expiry),
            ..Properties::default()
        },
    );
    c.will = Some(Will {
        props: Properties {
            will_delay_interval: Some(delay),
            ..Properties::default()
        },
        topic: "status/dev",
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    c
}

#[test]
fn will_delay_postpones_the_will() {
    let mut h = H::new();
    h.subscriber(1, "watch", "status/#", QoS::AtMostOnce);
    h.client5(2, will_client(5, 60));
    h.b.lost(2, false, h.now);
    h.b.release(2);
    assert!(h.take(1).is_empty());
    h.advance(4_999);
    assert!(h.take(1).is_empty());
    h.advance(1);
    assert_eq!(
        h.take(1),
        enc(&[publish("status/dev", b"gone", QoS::AtMostOnce, None)])
    );
}

#[test]
fn reconnecting_within_the_will_delay_cancels_the_will() {
    // [MQTT-3.1.3-9]
    let mut h = H::new();
    h.subscriber(1, "watch", "status/#", QoS::AtMostOnce);
    h.client5(2, will_client(5, 60));
    h.b.lost(2, false, h.now);
    h.b.release(2);
    h.advance(2_000);
    let mut c = will_client(5, 60);
    c.clean_session = false;
    c.will = None;
    h.client5(2, c);
    h.advance(10_000);
    assert!(h.take(1).is_empty());
}

#[test]
fn session_end_before_will_delay_sends_the_will_then() {
    let mut h = H::new();
    h.subscriber(1, "watch", "status/#", QoS::AtMostOnce);
    h.client5(2, will_client(30, 2));
    h.b.lost(2, false, h.now);
    h.b.release(2);
    h.advance(1_999);
    assert!(h.take(1).is_empty());
    h.advance(1);
    assert_eq!(
        h.take(1),
        enc(&[publish("status/dev", b"gone", QoS::AtMostOnce, None)])
    );
}

#[test]
fn disconnect_with_will_message_sends_the_will() {
    let mut h = H::new();
    h.subscriber(1, "watch", "status/#", QoS::AtMostOnce);
    h.client5(2, will_client(0, 0));
    h.send5(
        2,
        Packet::Disconnect {
            reason: reason::DISCONNECT_WITH_WILL,
            props: Properties::default(),
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[publish("status/dev", b"gone", QoS::AtMostOnce, None)])
    );
}

#[test]
fn message_expiry_counts_down_and_drops() {
    let mut h = H::new();
    let mut c = connect5(
        "s",
        true,
        Properties {
            session_expiry_interval: Some(600),
            ..Properties::default()
        },
    );
    h.client5(1, c.clone());
    h.sub5(1, "t", QoS::AtLeastOnce.into(), None);
    h.take(1);
    h.b.lost(1, false, h.now);
    h.b.release(1);
    h.client5(2, connect5("p", true, Properties::default()));
    let exp = |s| Properties {
        message_expiry_interval: Some(s),
        ..Properties::default()
    };
    h.send5(2, pub5("t", b"short", QoS::AtLeastOnce, Some(1), exp(1)));
    h.send5(2, pub5("t", b"long", QoS::AtLeastOnce, Some(2), exp(60)));
    h.advance(2_500);
    c.clean_session = false;
    let out = h.client5(1, c);
    let ps = packets5(&out);
    assert_eq!(ps.len(), 2, "{ps:?}");
    let Packet::Publish(p) = &ps[1] else { panic!() };
    assert_eq!(p.payload, b"long");
    // 60 s minus the 2.5 s it waited, rounded up.
    assert_eq!(p.props.message_expiry_interval, Some(58));
}

#[test]
fn retained_message_expires() {
    let mut h = H::new();
    h.client5(2, connect5("p", true, Properties::default()));
    let mut p = Publish {
        props: Properties {
            message_expiry_interval: Some(1),
            ..Properties::default()
        },
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "r",
        pid: None,
        payload: b"soon gone",
    };
    h.send5(2, Packet::Publish(p.clone()));
    p.topic = "r2";
    p.props = Properties::default();
    h.send5(2, Packet::Publish(p));
    h.advance(1_001);
    h.client(1, connect("s", true, 0));
    h.send(1, subscribe_pkt("#"));
    let out = h.take(1);
    assert_eq!(
        out,
        enc(&[
            Packet::suback(1, vec![0]),
            Packet::Publish(Publish {
                props: Properties::default(),
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "r2",
                pid: None,
                payload: b"soon gone",
            })
        ])
    );
    assert_eq!(h.b.retained().len(), 1);
}

fn subscribe_pkt(filter: &str) -> Packet<'_> {
    Packet::Subscribe {
        props: Properties::default(),
        pid: 1,
        filters: vec![(filter, QoS::AtMostOnce.into())],
    }
}

#[test]
fn topic_aliases_from_the_client() {
    let mut h = H::new();
    h.subscriber(1, "s", "#", QoS::AtMostOnce);
    h.client5(2, connect5("p", true, Properties::default()));
    let alias = |a| Properties {
        topic_alias: Some(a),
        ..Properties::default()
    };
    h.send5(
        2,
        pub5("long/topic/name", b"1", QoS::AtMostOnce, None, alias(3)),
    );
    h.send5(2, pub5("", b"2", QoS::AtMostOnce, None, alias(3)));
    assert_eq!(
        h.take(1),
        enc(&[
            publish("long/topic/name", b"1", QoS::AtMostOnce, None),
            publish("long/topic/name", b"2", QoS::AtMostOnce, None)
        ])
    );
    // An alias never set up is a protocol error; one over the maximum is 0x94.
    h.send5(2, pub5("", b"3", QoS::AtMostOnce, None, alias(4)));
    assert_eq!(
        h.take(2),
        enc5(&[Packet::Disconnect {
            reason: reason::PROTOCOL_ERROR,
            props: Properties::default()
        }])
    );
    h.client5(3, connect5("p3", true, Properties::default()));
    h.send5(3, pub5("t", b"x", QoS::AtMostOnce, None, alias(11)));
    assert_eq!(
        h.take(3),
        enc5(&[Packet::Disconnect {
            reason: reason::TOPIC_ALIAS_INVALID,
            props: Properties::default()
        }])
    );
}

#[test]
fn topic_aliases_to_the_client() {
    let mut h = H::new();
    h.client5(
        1,
        connect5(
            "s",
            true,
            Properties {
                topic_alias_maximum: Some(1),
                ..Properties::default()
            },
        ),
    );
    h.sub5(1, "#", QoS::AtMostOnce.into(), None);
    h.take(1);
    h.client(2, connect("p", true, 0));
    for t in ["a/b", "a/b", "c"] {
        h.send(2, publish(t, b"x", QoS::AtMostOnce, None));
    }
    let out = h.take(1);
    let ps = packets5(&out);
    let got: Vec<(&str, Option<u16>)> = ps
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.topic, p.props.topic_alias),
            _ => panic!(),
        })
        .collect();
    // The first topic takes the one alias; then it is sent empty; "c" goes in full.
    assert_eq!(got, vec![("a/b", Some(1)), ("", Some(1)), ("c", None)]);
}

#[test]
fn receive_maximum_both_ways() {
    // The broker never has more in flight than the client's Receive Maximum.
    let mut h = H::new();
    h.client5(
        1,
        connect5(
            "s",
            true,
            Properties {
                receive_maximum: Some(2),
                ..Properties::default()
            },
        ),
    );
    h.sub5(1, "t", QoS::AtLeastOnce.into(), None);
    h.take(1);
    h.client(2, connect("p", true, 0));
    for i in 1..=5 {
        h.send(2, publish("t", b"m", QoS::AtLeastOnce, Some(i)));
    }
    assert_eq!(h.b.session_queue("s"), Some((3, 2)));
    // A client exceeding the broker's Receive Maximum (20) gets DISCONNECT 0x93.
    h.client5(3, connect5("q", true, Properties::default()));
    for i in 1..=20 {
        h.send5(
            3,
            pub5("x", b"m", QoS::ExactlyOnce, Some(i), Properties::default()),
        );
    }
    h.take(3);
    h.send5(
        3,
        pub5("x", b"m", QoS::ExactlyOnce, Some(21), Properties::default()),
    );
    assert_eq!(
        h.take(3),
        enc5(&[Packet::Disconnect {
            reason: reason::RECEIVE_MAXIMUM_EXCEEDED,
            props: Properties::default()
        }])
    );
}

#[test]
fn maximum_packet_size_of_the_client_is_respected() {
    // [MQTT-3.1.2-25]
    let mut h = H::new();
    h.client5(
        1,
        connect5(
            "s",
            true,
            Properties {
                maximum_packet_size: Some(50),
                ..Properties::default()
            },
        ),
    );
    h.sub5(1, "t", QoS::AtMostOnce.into(), None);
    h.take(1);
    h.client(2, connect("p", true, 0));
    h.send(2, publish("t", &[1u8; 100], QoS::AtMostOnce, None));
    h.send(2, publish("t", b"small", QoS::AtMostOnce, None));
    let out = h.take(1);
    let ps = packets5(&out);
    assert_eq!(ps.len(), 1);
    assert!(matches!(&ps[0], Packet::Publish(p) if p.payload == b"small"));
}

#[test]
fn no_local_retain_as_published_and_subscription_ids() {
    let mut h = H::new();
    h.client5(1, connect5("me", true, Properties::default()));
    let opts = SubOptions {
        qos: QoS::AtMostOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: 0,
    };
    h.sub5(1, "a/#", opts, Some(7));
    h.sub5(1, "a/+", QoS::AtMostOnce.into(), Some(9));
    h.take(1);
    // Its own message matches only "a/+" (no_local excludes "a/#").
    h.send5(
        1,
        Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "a/b",
            pid: None,
            payload: b"own",
        }),
    );
    let out = h.take(1);
    let ps = packets5(&out);
    let Packet::Publish(p) = &ps[0] else { panic!() };
    assert_eq!(p.props.subscription_identifiers, vec![9]);
    assert!(!p.retain, "retain cleared: a/+ is not retain-as-published");
    // Someone else's: both subscriptions, one copy, both identifiers, retain kept.
    h.client(2, connect("other", true, 0));
    h.b.received(
        2,
        &enc(&[Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "a/c",
            pid: None,
            payload: b"theirs",
        })]),
        h.now,
    );
    let out = h.take(1);
    let ps = packets5(&out);
    assert_eq!(ps.len(), 1);
    let Packet::Publish(p) = &ps[0] else { panic!() };
    assert_eq!(p.props.subscription_identifiers, vec![7, 9]);
    assert!(p.retain);
}

#[test]
fn retain_handling_options() {
    let mut h = H::new();
    h.client(2, connect("p", true, 0));
    h.b.received(
        2,
        &enc(&[Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "r",
            pid: None,
            payload: b"kept",
        })]),
        h.now,
    );
    h.client5(1, connect5("s", true, Properties::default()));
    let rh = |n| SubOptions {
        qos: QoS::AtMostOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: n,
    };
    let count = |h: &mut H| {
        let out = h.take(1);
        packets5(&out)
            .iter()
            .filter(|p| matches!(p, Packet::Publish(_)))
            .count()
    };
    h.sub5(1, "r", rh(2), None);
    assert_eq!(count(&mut h), 0);
    h.sub5(1, "r", rh(1), None);
    assert_eq!(count(&mut h), 0, "1: not for an existing subscription");
    h.sub5(1, "#", rh(1), None);
    assert_eq!(count(&mut h), 1, "1: a new subscription gets it");
    h.sub5(1, "r", rh(0), None);
    assert_eq!(count(&mut h), 1);
}

#[test]
fn v5_acks_and_subacks_carry_reason_codes() {
    let mut h = H::new();
    h.client5(1, connect5("p", true, Properties::default()));
    h.send5(
        1,
        pub5(
            "nobody/listens",
            b"x",
            QoS::AtLeastOnce,
            Some(1),
            Properties::default(),
        ),
    );
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Puback(Ack {
            pid: 1,
            reason: reason::NO_MATCHING_SUBSCRIBERS,
            props: Properties::default()
        })])
    );
    // A shared filter without a group name is invalid (0x8F) [MQTT-4.8.2-1].
    h.sub5(1, "$share//t", QoS::AtMostOnce.into(), None);
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Suback {
            pid: 1,
            codes: vec![reason::TOPIC_FILTER_INVALID],
            props: Properties::default()
        }])
    );
    h.send5(
        1,
        Packet::Unsubscribe {
            pid: 2,
            filters: vec!["never"],
            props: Properties::default(),
        },
    );
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Unsuback {
            pid: 2,
            codes: vec![reason::NO_SUBSCRIPTION_EXISTED],
            props: Properties::default()
        }])
    );
}

#[test]
fn v5_server_disconnects_say_why() {
    let mut h = H::new();
    let mut c = connect5("k", true, Properties::default());
    c.keep_alive = 1;
    h.client5(1, c);
    h.advance(1_500);
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Disconnect {
            reason: reason::KEEP_ALIVE_TIMEOUT,
            props: Properties::default()
        }])
    );
    h.client5(2, connect5("same", true, Properties::default()));
    h.client5(3, connect5("same", true, Properties::default()));
    assert_eq!(
        h.take(2),
        enc5(&[Packet::Disconnect {
            reason: reason::SESSION_TAKEN_OVER,
            props: Properties::default()
        }])
    );
}

#[test]
fn mixed_versions_exchange_messages() {
    let mut h = H::new();
    h.subscriber(1, "v3", "t", QoS::AtMostOnce);
    h.client5(2, connect5("v5", true, Properties::default()));
    h.sub5(2, "t", QoS::AtMostOnce.into(), None);
    h.take(2);
    // From 5.0 with properties: the 3.1.1 subscriber gets the plain message.
    let props = Properties {
        user: vec![("k", "v")],
        content_type: Some("text/plain"),
        ..Properties::default()
    };
    h.send5(2, pub5("t", b"from5", QoS::AtMostOnce, None, props.clone()));
    assert_eq!(
        h.take(1),
        enc(&[publish("t", b"from5", QoS::AtMostOnce, None)])
    );
    // The 5.0 subscriber (itself) gets the properties, in order.
    let out = h.take(2);
    let ps = packets5(&out);
    assert!(
        matches!(&ps[0], Packet::Publish(p) if p.props.user == vec![("k", "v")] && p.props.content_type == Some("text/plain"))
    );
    // From 3.1.1: the 5.0 subscriber gets it with no properties.
    h.send(1, publish("t", b"from3", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(2),
        enc5(&[pub5(
            "t",
            b"from3",
            QoS::AtMostOnce,
            None,
            Properties::default()
        )])
    );
}

// ----- snapshots --------------------------------------------------------------------------------

#[test]
fn snapshot_and_restore_carry_sessions_retained_and_inflight_state() {
    let mut a = H::new();
    // A persistent subscriber with one message in flight at each stage and more queued.
    a.client(1, connect("sub", false, 0));
    a.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("q/#", QoS::ExactlyOnce.into())],
        },
    );
    a.take(1);
    a.client(2, connect("pub", true, 0));
    a.send(2, publish("q/1", b"one", QoS::ExactlyOnce, Some(1)));
    a.send(2, publish("q/2", b"two", QoS::AtLeastOnce, Some(2)));
    a.take(1);
    a.send(1, Packet::pubrec(1)); // q/1 awaits PUBCOMP
    a.take(1);
    a.b.lost(1, false, a.now);
    a.b.release(1);
    a.send(2, publish("q/3", b"three", QoS::AtLeastOnce, Some(3)));
    // Retained, and a half-received QoS 2 message from a persistent publisher.
    a.send(
        2,
        Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "home/state",
            pid: None,
            payload: b"on",
        }),
    );
    a.client(3, connect("half", false, 0));
    a.send(3, publish("x", b"once", QoS::ExactlyOnce, Some(9)));
    a.b.lost(3, false, a.now);
    a.b.release(3);

    let snap = a.b.snapshot();
    assert_eq!(snap.sessions.len(), 2);
    assert_eq!(snap.retained.len(), 1);

    let mut b = H::new();
    assert_eq!(b.b.restore(snap.clone(), b.now), (1, 2));
    assert_eq!(b.b.snapshot(), {
        // Restoring and snapshotting again gives the same picture.
        snap
    });
    // The subscriber resumes: PUBREL for q/1, q/2 again with DUP, then q/3.
    let mut want = enc(&[connack(true, 0), Packet::pubrel(1)]);
    let mut dup = enc(&[publish("q/2", b"two", QoS::AtLeastOnce, Some(2))]);
    dup[0] |= 0x08;
    want.extend(dup);
    want.extend(enc(&[publish("q/3", b"three", QoS::AtLeastOnce, Some(3))]));
    assert_eq!(b.client(1, connect("sub", false, 0)), want);
    // The half-received QoS 2 message is still remembered: a resend is not delivered again.
    b.client(3, connect("half", false, 0));
    b.subscriber(4, "watch", "x", QoS::AtMostOnce);
    b.send(3, publish("x", b"once", QoS::ExactlyOnce, Some(9)));
    assert!(b.take(4).is_empty());
    // The retained message is back.
    assert_eq!(&*b.b.retained().get("home/state").unwrap().payload, b"on");
}

#[test]
fn restored_pending_will_and_expiry_keep_their_clocks() {
    let mut a = H::new();
    a.client5(1, will_client(10, 60));
    a.b.lost(1, false, a.now);
    a.b.release(1);
    a.advance(4_000);
    let snap = a.b.snapshot();
    let s = &snap.sessions[0];
    assert_eq!(s.pending_will.as_ref().map(|w| w.0), Some(6));
    assert_eq!(s.expiry_left, Some(56));
    let mut b = H::new();
    b.b.restore(snap, b.now);
    b.subscriber(2, "watch", "status/#", QoS::AtMostOnce);
    b.advance(5_999);
    assert!(b.take(2).is_empty());
    b.advance(1);
    assert_eq!(
        b.take(2),
        enc(&[publish("status/dev", b"gone", QoS::AtMostOnce, None)])
    );
    b.advance(50_000);
    assert_eq!(b.b.session_count(), 1, "the watcher only");
}

#[test]
fn sys_topics_are_published_retained_when_they_change() {
    let mut h = with_policy(|_| {}, |c| c.sys_interval = 10);
    h.b.tick(h.now);
    h.client(1, connect("dash", true, 0));
    h.send(1, subscribe_pkt("$SYS/broker/clients/connected"));
    // The retained value is there at once.
    assert_eq!(
        h.take(1),
        enc(&[
            Packet::suback(1, vec![0]),
            Packet::Publish(Publish {
                props: Properties::default(),
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic: "$SYS/broker/clients/connected",
                pid: None,
                payload: b"0",
            })
        ])
    );
    h.send(1, subscribe_pkt("$SYS/broker/uptime"));
    h.take(1);
    h.advance(10_000);
    // connected changed to 1; uptime changed; both sent, as plain (not retained) deliveries.
    let out = h.take(1);
    let ps = packets(&out, Version::V311);
    let got: Vec<(&str, &[u8])> = ps
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.topic, p.payload),
            _ => panic!(),
        })
        .collect();
    assert!(
        got.contains(&("$SYS/broker/clients/connected", b"1".as_slice())),
        "{got:?}"
    );
    assert!(
        got.contains(&("$SYS/broker/uptime", b"11 seconds".as_slice())),
        "{got:?}"
    );
    // Nothing changed but the uptime: only the uptime again.
    h.advance(10_000);
    let out = h.take(1);
    assert_eq!(packets(&out, Version::V311).len(), 1);
    // Wildcards starting the filter do not see $SYS [MQTT-4.7.2-1]; clients cannot write it.
    assert!(h.b.retained().get("$SYS/broker/version").is_some());
}

#[test]
fn streamed_snapshot_decodes_to_the_collected_one() {
    let mut h = H::new();
    h.client(1, connect("sub", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default(),
            pid: 1,
            filters: vec![("#", QoS::AtLeastOnce.into())],
        },
    );
    h.b.lost(1, false, h.now);
    h.b.release(1);
    h.client(2, connect("pub", true, 0));
    for i in 0..50u16 {
        let t = format!("t/{i}");
        h.b.received(
            2,
            &enc(&[Packet::Publish(Publish {
                props: Properties::default(),
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: i % 2 == 0,
                topic: &t,
                pid: Some(i + 1),
                payload: b"data",
            })]),
            h.now,
        );
    }
    let mut bytes = Vec::new();
    assert_eq!(h.b.write_snapshot(&mut bytes).unwrap(), (25, 1));
    let d = crate::persist::format::decode(&bytes).unwrap();
    assert!(!d.damaged, "{:?}", d.problems);
    let mut want = h.b.snapshot();
    let mut got = d.snapshot;
    want.retained.sort_by(|a, b| a.topic.cmp(&b.topic));
    got.retained.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got, want);
    assert_eq!(got.sessions[0].out.len(), 50);
}

// ----- shared subscriptions ---------------------------------------------------------------------

fn share_member(h: &mut H, id: ConnId, name: &str, qos: QoS) {
    h.client5(id, connect5(name, true, Properties::default()));
    h.sub5(id, "$share/workers/jobs/#", qos.into(), None);
    assert_eq!(
        h.take(id),
        enc5(&[Packet::Suback {
            pid: 1,
            codes: vec![qos.as_u8()],
            props: Properties::default()
        }])
    );
}

fn payloads(h: &mut H, id: ConnId) -> Vec<Vec<u8>> {
    let out = h.take(id);
    packets5(&out)
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p.payload.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn shared_subscription_spreads_messages_one_copy_each() {
    let mut h = H::new();
    share_member(&mut h, 1, "w1", QoS::AtMostOnce);
    share_member(&mut h, 2, "w2", QoS::AtMostOnce);
    share_member(&mut h, 3, "w3", QoS::AtMostOnce);
    // An ordinary subscriber to the same filter gets every message as well.
    h.subscriber(4, "audit", "jobs/#", QoS::AtMostOnce);
    h.client(5, connect("boss", true, 0));
    for i in 0..9u8 {
        h.send(5, publish("jobs/x", &[i], QoS::AtMostOnce, None));
    }
    let (a, b, c) = (
        payloads(&mut h, 1),
        payloads(&mut h, 2),
        payloads(&mut h, 3),
    );
    assert_eq!((a.len(), b.len(), c.len()), (3, 3, 3), "{a:?} {b:?} {c:?}");
    let mut all: Vec<Vec<u8>> = a.into_iter().chain(b).chain(c).collect();
    all.sort();
    assert_eq!(all, (0..9u8).map(|i| vec![i]).collect::<Vec<_>>());
    // 9 PUBLISH packets of 11 bytes each.
    assert_eq!(h.take(4).len(), 9 * 11);
}

#[test]
fn shared_subscription_gets_no_retained_messages_and_rejects_no_local() {
    let mut h = H::new();
    h.client(5, connect("boss", true, 0));
    h.b.received(
        5,
        &enc(&[Packet::Publish(Publish {
            props: Properties::default(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "jobs/r",
            pid: None,
            payload: b"kept",
        })]),
        h.now,
    );
    share_member(&mut h, 1, "w1", QoS::AtMostOnce);
    h.client5(2, connect5("w2", true, Properties::default()));
    let opts = SubOptions {
        qos: QoS::AtMostOnce,
        no_local: true,
        retain_as_published: false,
        retain_handling: 0,
    };
    h.sub5(2, "$share/g/x", opts, None);
    // [MQTT-3.8.3-4]
    assert_eq!(
        h.take(2),
        enc5(&[Packet::Disconnect {
            reason: reason::PROTOCOL_ERROR,
            props: Properties::default()
        }])
    );
}

#[test]
fn a_departing_members_queued_messages_go_to_another_member() {
    let mut h = H::with(Config {
        max_inflight_messages: 1,
        ..Config::default()
    });
    share_member(&mut h, 1, "w1", QoS::AtLeastOnce);
    share_member(&mut h, 2, "w2", QoS::AtLeastOnce);
    h.client(5, connect("boss", true, 0));
    for i in 1..=6u16 {
        h.send(5, publish("jobs/x", &[i as u8], QoS::AtLeastOnce, Some(i)));
    }
    // Each member holds one in flight and two queued; w1 leaves without acknowledging.
    let w1 = payloads(&mut h, 1);
    assert_eq!(w1.len(), 1);
    h.b.lost(1, false, h.now);
    // w2 now gets everything w1 had: its queued two at once, and (the session ended) the one
    // in flight too.
    let mut got: Vec<Vec<u8>> = payloads(&mut h, 2);
    let mut pid = 1u16;
    while got.len() < 6 {
        h.send5(2, Packet::puback(pid));
        pid += 1;
        let more = payloads(&mut h, 2);
        assert!(!more.is_empty(), "stalled with {got:?}");
        got.extend(more);
    }
    got.sort();
    assert_eq!(got, (1..=6u8).map(|i| vec![i]).collect::<Vec<_>>());
}

#[test]
fn unsubscribing_the_last_member_removes_the_group() {
    let mut h = H::new();
    share_member(&mut h, 1, "w1", QoS::AtMostOnce);
    h.send5(
        1,
        Packet::Unsubscribe {
            pid: 2,
            filters: vec!["$share/workers/jobs/#"],
            props: Properties::default(),
        },
    );
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Unsuback {
            pid: 2,
            codes: vec![0],
            props: Properties::default()
        }])
    );
    assert!(h.b.subscriptions().is_empty());
    assert_eq!(h.b.shares.len(), 0);
}
/// What an idle client costs the core: its connection and its session, before the heap parts
/// (client id, socket). Bytes per idle connection are measured by `scripts/bench.sh`; this
/// keeps the structures from growing back unnoticed.
#[test]
fn idle_connection_state_stays_small() {
    use std::mem::size_of;
    assert!(
        size_of::<super::Conn>() <= 96,
        "{}",
        size_of::<super::Conn>()
    );
    assert!(size_of::<super::session::Session>() <= 96);
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
