//! The output ring: long payloads stored once and sent by reference, exact bytes across
//! segments and partial writes.

use super::*;

#[test]
fn a_long_payload_is_stored_once_and_sent_by_reference_to_every_subscriber() {
    let mut h = H::new();
    for id in 1..=10 {
        h.subscriber(id, &format!("s{id}"), "big", QoS::AtLeastOnce);
    }
    h.client(20, connect("pub", true, 0));
    let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut p = publish("big", &payload, QoS::AtLeastOnce, Some(7));
    if let Packet::Publish(pb) = &mut p {
        pb.retain = true;
    }
    h.send(20, p);
    // One stored message: the retained store's reference and one in each subscriber's output
    // (and in-flight window), none of them a copy.
    let stored = Rc::clone(h.b.retained().get("big").unwrap());
    assert_eq!(Rc::strong_count(&stored), 1 + 1 + 10 * 2);
    for id in 1..=10 {
        // The subscriber's bytes are exact across the head and the shared payload, and a
        // socket that takes them a little at a time gets the same bytes.
        let mut got = Vec::new();
        loop {
            let out = h.b.output(id);
            if out.is_empty() {
                break;
            }
            let n = out.len().min(777);
            got.extend_from_slice(&out[..n]);
            h.b.written(id, n, h.now);
        }
        let mut want = publish("big", &payload, QoS::AtLeastOnce, Some(1));
        if let Packet::Publish(pb) = &mut want {
            pb.retain = false;
        }
        assert_eq!(got, enc(&[want]), "subscriber {id}");
    }
    // Written: the outputs hold nothing; the in-flight windows keep theirs until PUBACK.
    assert_eq!(Rc::strong_count(&stored), 1 + 1 + 10);
    for id in 1..=10 {
        h.send(
            id,
            Packet::Puback(Ack {
                pid: 1,
                reason: 0,
                props: Properties::default().into(),
            }),
        );
    }
    assert_eq!(Rc::strong_count(&stored), 2);
}
