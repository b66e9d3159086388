//! An application message, as routed, queued and retained; and topics under a listener's
//! mount point.

use std::rc::Rc;

use super::Millis;
use crate::mqtt::QoS;

/// An application message, stored once and shared by every queue and the retained store.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: Box<str>,
    pub payload: Box<[u8]>,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// Who published it, kept for retained messages while an ACL is in force so that
    /// `check_retain_source` can ask whether they may still write the topic.
    pub origin: Option<Box<Origin>>,
    /// MQTT 5 properties forwarded unchanged (payload format, content type, response topic,
    /// correlation data, user properties), encoded once.
    pub props: Box<[u8]>,
    /// When it expires (MQTT 5 Message Expiry Interval), on the broker's clock.
    pub expiry: Option<Millis>,
}

impl Message {
    /// A message with no MQTT 5 properties.
    pub fn new(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            origin: None,
            props: Box::default(),
            expiry: None,
        }
    }
}

/// Payloads up to this long are kept in [`Spare`] for the next message: small enough that the
/// one message kept costs nothing worth freeing.
const SPARE_MAX_PAYLOAD: usize = 2048;

/// One published message that nothing kept, its memory reused by the next message a client
/// publishes: its `Rc`, and its topic and payload when the next one's are as long (a sensor
/// publishing the same topic again), so that a message delivered at once to connected
/// subscribers (whose output copies small payloads) costs no allocation.
#[derive(Default)]
pub(super) struct Spare(Option<Msg>);

impl Spare {
    /// Keeps `msg` if it is the last reference to a small message.
    pub(super) fn keep(&mut self, msg: Msg) {
        if msg.payload.len() <= SPARE_MAX_PAYLOAD && Rc::strong_count(&msg) == 1 {
            self.0 = Some(msg);
        }
    }

    /// A message with these fields, in the kept one's memory where it can be.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn message(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        origin: Option<Box<Origin>>,
        props: Box<[u8]>,
        expiry: Option<Millis>,
    ) -> Msg {
        if let Some(mut m) = self.0.take() {
            if let Some(old) = Rc::get_mut(&mut m) {
                // Every field named, so that a new one cannot be left stale.
                let Message {
                    topic: t,
                    payload: p,
                    qos: q,
                    retain: r,
                    origin: o,
                    props: pr,
                    expiry: e,
                } = old;
                if **t != *topic {
                    *t = topic.into();
                }
                if p.len() == payload.len() {
                    p.copy_from_slice(payload);
                } else {
                    *p = payload.into();
                }
                *q = qos;
                *r = retain;
                *o = origin;
                *pr = props;
                *e = expiry;
                return m;
            }
        }
        Rc::new(Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            origin,
            props,
            expiry,
        })
    }
}

/// The publisher of a retained message.
#[derive(Debug, PartialEq, Eq)]
pub struct Origin {
    pub client_id: Box<str>,
    pub username: Option<Box<str>>,
    pub listener: usize,
}

pub type Msg = Rc<Message>;

/// `topic` under a listener's mount point.
pub(super) fn mounted<'a>(mount: Option<&str>, topic: &'a str) -> std::borrow::Cow<'a, str> {
    match mount {
        Some(m) => format!("{m}{topic}").into(),
        None => topic.into(),
    }
}

/// `topic` as a client of a listener with this mount point sees it.
pub(super) fn unmounted<'a>(mount: Option<&str>, topic: &'a str) -> &'a str {
    match mount {
        Some(m) => topic.strip_prefix(m).unwrap_or(topic),
        None => topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Option<Box<Origin>> {
        Some(Box::new(Origin {
            client_id: "c".into(),
            username: None,
            listener: 0,
        }))
    }

    #[test]
    fn a_kept_message_is_reused_with_every_field_replaced() {
        let mut spare = Spare::default();
        let a = spare.message(
            "a/b",
            b"one",
            QoS::AtLeastOnce,
            true,
            origin(),
            [1u8][..].into(),
            Some(5),
        );
        let at = Rc::as_ptr(&a);
        spare.keep(a);
        // Same topic, same payload length: the same memory, every field new.
        let b = spare.message(
            "a/b",
            b"two",
            QoS::AtMostOnce,
            false,
            None,
            Box::default(),
            None,
        );
        assert_eq!(Rc::as_ptr(&b), at);
        assert_eq!(*b, Message::new("a/b", b"two", QoS::AtMostOnce, false));
        spare.keep(b);
        // Another topic and length.
        let c = spare.message(
            "x",
            b"longer payload",
            QoS::ExactlyOnce,
            true,
            origin(),
            [3u8][..].into(),
            Some(9),
        );
        assert_eq!(Rc::as_ptr(&c), at);
        let want = Message {
            topic: "x".into(),
            payload: b"longer payload"[..].into(),
            qos: QoS::ExactlyOnce,
            retain: true,
            origin: origin(),
            props: [3u8][..].into(),
            expiry: Some(9),
        };
        assert_eq!(*c, want);
    }

    #[test]
    fn a_message_still_held_or_large_is_not_kept() {
        let mut spare = Spare::default();
        let a = spare.message(
            "t",
            b"p",
            QoS::AtMostOnce,
            false,
            None,
            Box::default(),
            None,
        );
        let held = a.clone();
        spare.keep(a);
        let b = spare.message(
            "t",
            b"q",
            QoS::AtMostOnce,
            false,
            None,
            Box::default(),
            None,
        );
        assert!(
            !Rc::ptr_eq(&b, &held),
            "a queued message must not be overwritten"
        );
        assert_eq!(&*held.payload, b"p");
        let big = vec![7u8; SPARE_MAX_PAYLOAD + 1];
        let c = spare.message(
            "t",
            &big,
            QoS::AtMostOnce,
            false,
            None,
            Box::default(),
            None,
        );
        spare.keep(c);
        assert!(spare.0.is_none(), "a large payload is freed, not kept");
    }
}
