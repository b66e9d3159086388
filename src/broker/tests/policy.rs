//! Listener policies and broker limits: client id rules, authentication, ACLs, `$SYS`,
//! mount points, max_qos, max_connections, retain_available, queue limits.

use super::*;

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

/// use_identity_as_username: the certificate's name is the user name (the CONNECT's name and
/// password are ignored, a password file is not consulted); a TLS client without one is
/// refused as a bad user name, as mosquitto does.
#[test]
fn a_certificate_name_replaces_the_connect_user_name() {
    let pw = crate::auth::password::PasswordFile::parse_bytes(b"bob:$7$101$x$y\n").0;
    let mut h = with_policy(
        |p| {
            p.cert_username = true;
            p.allow_anonymous = false;
            p.passwords = Some(Rc::new(pw));
        },
        |_| {},
    );
    h.open(1);
    h.b.tls_identity(1, "sensor1");
    let mut c = login("c1", Some("bob"));
    c.password = Some(b"wrong");
    h.send(1, Packet::connect(c));
    assert_eq!(h.take(1), enc(&[connack(false, 0)]));
    let sid = h.b.conns[1].as_ref().unwrap().session.get().unwrap();
    assert_eq!(h.b.sessions[sid].username.as_deref(), Some("sensor1"));
    // No certificate name: refused with "bad user name or password".
    assert_eq!(
        h.client(2, login("c2", Some("sensor1"))),
        enc(&[connack(false, connack::BAD_USERNAME_OR_PASSWORD)])
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
fn acl_grants_every_subscribe_and_filters_delivery_as_mosquitto() {
    // mosquitto's acl_file never refuses a SUBSCRIBE: a client subscribing wider than it may
    // read gets the QoS it asked for, and only the messages it may read.
    let rules = "user alice\ntopic read cmd/sensor1/#\nuser bob\ntopic write cmd/#\n";
    let mut h = with_policy(|p| p.acl = acl(rules), |_| {});
    h.client(1, login("a", Some("alice")));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 1,
            filters: vec![
                ("cmd/#", QoS::AtLeastOnce.into()),
                ("z", QoS::AtMostOnce.into()),
            ],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default().into(),
            pid: 1,
            codes: vec![1, 0]
        }])
    );
    h.client(2, login("b", Some("bob")));
    h.send(2, publish("cmd/sensor2", b"no", QoS::AtMostOnce, None));
    h.send(2, publish("cmd/sensor1", b"yes", QoS::AtMostOnce, None));
    assert_eq!(
        h.take(1),
        enc(&[publish("cmd/sensor1", b"yes", QoS::AtMostOnce, None)])
    );
}

#[test]
fn acl_filters_publish_subscribe_and_delivery() {
    // With acl_refuse_subscribe (midge only), SUBSCRIBE is checked against the rules too.
    let rules =
        "topic read public/#\nuser bob\ntopic home/#\ntopic deny home/secret\ntopic read other/#\n";
    let mut h = with_policy(|p| p.acl = acl(rules), |c| c.acl_refuse_subscribe = true);
    h.client(1, login("bob1", Some("bob")));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
    let mut h = with_policy(|p| p.acl = acl(rules), |c| c.acl_refuse_subscribe = true);
    h.client(1, login("writer", Some("w")));
    let retained = Packet::Publish(Publish {
        props: Properties::default().into(),
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
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    let mut want = enc(&[Packet::Suback {
        props: Properties::default().into(),
        pid: 1,
        codes: vec![0],
    }]);
    want.extend(enc(&[Packet::Publish(Publish {
        props: Properties::default().into(),
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
            props: Properties::default().into(),
            pid: 2,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(2),
        enc(&[Packet::Suback {
            props: Properties::default().into(),
            pid: 2,
            codes: vec![0]
        }])
    );
    // The writer itself (user w) may not read.
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 3,
            filters: vec![("r/#", QoS::AtMostOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default().into(),
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
    h.send(2, Packet::connect(connect("site", true, 0)));
    h.take(2);
    h.send(
        2,
        Packet::Subscribe {
            props: Properties::default().into(),
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
            props: Properties::default().into(),
            pid: 1,
            filters: vec![("t", QoS::ExactlyOnce.into())],
        },
    );
    assert_eq!(
        h.take(1),
        enc(&[Packet::Suback {
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
