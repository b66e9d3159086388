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
