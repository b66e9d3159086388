//! Snapshots: what is saved and restored, and the clocks that carry over; `$SYS`.

use super::*;

#[test]
fn snapshot_and_restore_carry_sessions_retained_and_inflight_state() {
    let mut a = H::new();
    // A persistent subscriber with one message in flight at each stage and more queued.
    a.client(1, connect("sub", false, 0));
    a.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
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
            props: Properties::default().into(),
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
    assert_eq!(b.advance_until(|b| b.b.session_count() == 1), 50_000);
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
                props: Properties::default().into(),
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
fn sys_rounds_are_no_changes_for_autosave() {
    let mut h = with_policy(|_| {}, |c| c.sys_interval = 10);
    let before = h.b.changes();
    h.b.tick(h.now);
    h.client(1, connect("dash", true, 0));
    h.advance(10_000);
    h.advance(10_000);
    assert!(h.b.retained().get("$SYS/broker/uptime").is_some());
    assert_eq!(h.b.changes(), before, "$SYS values are not saved");
    // A client's retained message is one.
    h.send(
        1,
        Packet::Publish(Publish {
            props: Properties::default().into(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "home/state",
            pid: None,
            payload: b"on",
        }),
    );
    assert_eq!(h.b.changes(), before + 1);
}

#[test]
fn streamed_snapshot_decodes_to_the_collected_one() {
    let mut h = H::new();
    h.client(1, connect("sub", false, 0));
    h.send(
        1,
        Packet::Subscribe {
            props: Properties::default().into(),
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
                props: Properties::default().into(),
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
