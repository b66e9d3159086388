//! Shared subscriptions (MQTT 5 section 4.8.2).

use super::*;

fn share_member(h: &mut H, id: ConnId, name: &str, qos: QoS) {
    h.client5(id, connect5(name, true, Properties::default()));
    h.sub5(id, "$share/workers/jobs/#", qos.into(), None);
    assert_eq!(
        h.take(id),
        enc5(&[Packet::Suback {
            pid: 1,
            codes: vec![qos.as_u8()],
            props: Properties::default().into()
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
            props: Properties::default().into(),
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
            props: Properties::default().into()
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
            props: Properties::default().into(),
        },
    );
    assert_eq!(
        h.take(1),
        enc5(&[Packet::Unsuback {
            pid: 2,
            codes: vec![0],
            props: Properties::default().into()
        }])
    );
    assert!(h.b.subscriptions().is_empty());
    assert_eq!(h.b.shares.len(), 0);
}
