//! MQTT 5: reason codes, session and message expiry, will delay, topic aliases, flow control,
//! subscription options.

use super::*;

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
    // A malformed MQTT 5 CONNECT (reserved flag set) is closed without a CONNACK, as
    // mosquitto 2.0 does.
    h.open(2);
    let mut bad = enc5(&[Packet::connect(connect5("b", true, Properties::default()))]);
    bad[9] |= 0x01;
    h.b.received(2, &bad, h.now);
    assert_eq!(h.take(2), Vec::<u8>::new());
    assert!(h.b.is_closed(2));
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
    assert_eq!(
        h.advance_until(|h| h.b.session_queue("s").is_none()),
        10_000
    );
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
            }
            .into(),
        },
    );
    // [MQTT-3.14.2-2]: a protocol error, answered with DISCONNECT 0x82.
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Disconnect {
            reason: reason::PROTOCOL_ERROR,
            props: Properties::default().into()
        }])
    );
    assert!(h.b.is_closed(1));
    assert_eq!(h.b.session_count(), 0);
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
            props: Properties::default().into(),
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
        }
        .into(),
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: "r",
        pid: None,
        payload: b"soon gone",
    };
    h.send5(2, Packet::Publish(p.clone()));
    p.topic = "r2";
    p.props = Properties::default().into();
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
                props: Properties::default().into(),
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
            props: Properties::default().into()
        }])
    );
    h.client5(3, connect5("p3", true, Properties::default()));
    h.send5(3, pub5("t", b"x", QoS::AtMostOnce, None, alias(11)));
    assert_eq!(
        h.take(3),
        enc5(&[Packet::Disconnect {
            reason: reason::TOPIC_ALIAS_INVALID,
            props: Properties::default().into()
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
    // A client exceeding the broker's Receive Maximum (20) gets PUBREC 0x97 (Quota Exceeded)
    // for that message, and the connection goes on; a refusal gives one message back, so the
    // next is accepted, as in mosquitto 2.0.20.
    h.client5(3, connect5("q", true, Properties::default()));
    for i in 1..=20 {
        h.send5(
            3,
            pub5("x", b"m", QoS::ExactlyOnce, Some(i), Properties::default()),
        );
    }
    h.take(3);
    for i in 21..=22 {
        h.send5(
            3,
            pub5("x", b"m", QoS::ExactlyOnce, Some(i), Properties::default()),
        );
    }
    let mut want = Vec::new();
    mqtt::encode_ack_v5(
        &mut want,
        mqtt::PUBREC,
        21,
        reason::QUOTA_EXCEEDED,
        &Properties::default(),
    );
    mqtt::encode_ack(&mut want, mqtt::PUBREC, 22);
    assert_eq!(h.take(3), want);
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
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
            props: Properties::default().into()
        })])
    );
    // A shared filter with an empty group name is granted, as mosquitto 2.0 grants it.
    h.sub5(1, "$share//t", QoS::AtMostOnce.into(), None);
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Suback {
            pid: 1,
            codes: vec![0],
            props: Properties::default().into()
        }])
    );
    h.send5(
        1,
        Packet::Unsubscribe {
            pid: 2,
            filters: vec!["never"],
            props: Properties::default().into(),
        },
    );
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Unsuback {
            pid: 2,
            codes: vec![reason::NO_SUBSCRIPTION_EXISTED],
            props: Properties::default().into()
        }])
    );
}

#[test]
fn v5_server_disconnects_say_why() {
    let mut h = H::new();
    let mut c = connect5("k", true, Properties::default());
    c.keep_alive = 1;
    h.client5(1, c);
    assert_eq!(h.advance_until(|h| h.b.is_closed(1)), 1_500);
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Disconnect {
            reason: reason::KEEP_ALIVE_TIMEOUT,
            props: Properties::default().into()
        }])
    );
    h.client5(2, connect5("same", true, Properties::default()));
    h.client5(3, connect5("same", true, Properties::default()));
    assert_eq!(
        h.take(2),
        enc5(&[Packet::Disconnect {
            reason: reason::SESSION_TAKEN_OVER,
            props: Properties::default().into()
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
