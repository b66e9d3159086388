//! Topic remapping between a bridge's local and remote topics (`topic PATTERN DIR QOS
//! LOCAL_PREFIX REMOTE_PREFIX`, as mosquitto's `bridge_topic.c`), and the check that a message
//! fits the remote's limits.

use std::borrow::Cow;

use log::debug;

use crate::mqtt;

use super::config::BridgeTopic;
use super::Bridge;

/// `topic` as the remote knows it: the first `out`/`both` topic whose local filter it matches
/// has its local prefix replaced by the remote one (unchanged if none matches).
pub fn to_remote<'a>(topics: &[BridgeTopic], topic: &'a str) -> Cow<'a, str> {
    for t in topics.iter().filter(|t| t.outgoing()) {
        if mqtt::topic::matches(&t.local, topic) {
            let rest = topic.strip_prefix(t.local_prefix.as_str()).unwrap_or(topic);
            return if t.remote_prefix.is_empty() && rest.len() == topic.len() {
                Cow::Borrowed(topic)
            } else {
                Cow::Owned(format!("{}{rest}", t.remote_prefix))
            };
        }
    }
    Cow::Borrowed(topic)
}

/// The topic of a message sent on a connection: remapped for the remote if the connection is a
/// bridge's.
pub(in crate::broker) fn outgoing<'a>(bridge: Option<&Bridge>, topic: &'a str) -> Cow<'a, str> {
    match bridge {
        Some(b) => to_remote(&b.cfg.topics, topic),
        None => Cow::Borrowed(topic),
    }
}

/// Whether a PUBLISH is over the bridge's `bridge_max_packet_size` (MQTT 3.1.1 remotes; an
/// MQTT 5 remote's limit is the connection's Maximum Packet Size): it is not sent.
pub(in crate::broker) fn too_large(
    bridge: Option<&Bridge>,
    topic: &str,
    pid: bool,
    payload: usize,
) -> bool {
    bridge.is_some_and(|b| {
        let max = b.cfg.max_packet_size as usize;
        if max > 0 && mqtt::publish_len(topic, pid, None, payload) > max {
            debug!(
                "Bridge {}: a message on '{topic}' is over bridge_max_packet_size; not sent.",
                b.cfg.name
            );
            true
        } else {
            false
        }
    })
}

/// `topic` from the remote as it is published locally (mosquitto's
/// `bridge__remap_topic_in`).
pub fn to_local<'a>(topics: &[BridgeTopic], topic: &'a str) -> Cow<'a, str> {
    for t in topics.iter().filter(|t| t.incoming()) {
        if mqtt::topic::matches(&t.remote, topic) {
            let rest = topic
                .strip_prefix(t.remote_prefix.as_str())
                .unwrap_or(topic);
            return Cow::Owned(format!("{}{rest}", t.local_prefix));
        }
    }
    Cow::Borrowed(topic)
}
