//! Outgoing QoS 1/2 flows and the incoming acknowledgements: the in-flight window, `pump`
//! (queue to output), PUBACK / PUBREC / PUBREL / PUBCOMP, resending on resume, and the release
//! of publishers paused by a full queue. A session's QoS 2 state is in `session.rs`
//! (`Flow::inflight`, `Flow::incoming`).

use log::debug;

use super::session::{Ack, Inflight};
use super::timers::secs_left;
use super::{
    bridge, reason, unmounted, Broker, ConnId, Fault, Handled, Message, Millis, SessionId, State,
    OUT_HIGH_WATER,
};
use crate::mqtt::{self, QoS};

impl Broker {
    /// The Receive Maximum the broker announces and enforces on incoming QoS 2 messages, and
    /// its own limit of outgoing QoS 1/2 messages in flight (`max_inflight_messages`).
    pub(super) fn receive_maximum(&self) -> u16 {
        match self.cfg.max_inflight_messages {
            0 => u16::MAX,
            n => n.min(u16::MAX as usize) as u16,
        }
    }

    /// On resuming a session, unacknowledged PUBLISH packets are sent again with DUP set and
    /// their original packet identifiers, and PUBRELs again for those already received
    /// [MQTT-4.4.0-1]; `pump` sends them, within the new connection's Receive Maximum
    /// [MQTT-3.3.4-9] and Maximum Packet Size [MQTT-3.1.2-25].
    pub(super) fn resend_inflight(&mut self, sid: SessionId) {
        if let Some(flow) = self.sessions[sid].flow.get_mut() {
            for f in flow.inflight.iter_mut() {
                f.sent = false;
            }
        }
    }

    /// Moves messages from the session's queue to its connection's output while the output is
    /// below its high-water mark and, for QoS 1/2, while the in-flight window has room.
    /// Expired messages are dropped on the way; for MQTT 5 clients a message larger than their
    /// Maximum Packet Size is not sent to them [MQTT-3.1.2-25].
    pub(super) fn pump(&mut self, sid: SessionId) {
        let mut max_inflight = self.receive_maximum() as usize;
        let max_inflight_bytes = self.cfg.max_inflight_bytes;
        let now = self.now;
        let s = &mut self.sessions[sid];
        let Some(id) = s.conn.get() else {
            return;
        };
        let Some(Some(conn)) = self.conns.get_mut(id) else {
            return;
        };
        if conn.state != State::Connected {
            return;
        }
        if let Some(v) = &conn.v5 {
            // Never more in flight than the client's Receive Maximum.
            max_inflight = max_inflight.min(v.receive_max as usize);
        }
        let mount = self.cfg.listeners[conn.listener as usize]
            .mount_point
            .as_deref();
        let bridge = (conn.listener as usize)
            .checked_sub(self.bridge_base)
            .and_then(|b| self.bridges.get(b));
        let props = &mut self.scratch_props;
        let spare = &mut self.spare;
        let mut sent = 0;
        // In-flight messages of a resumed session not yet resent, in their original order.
        let mut window = s.flow.inflight.iter().filter(|f| f.sent).count();
        let mut i = 0;
        while i < s.flow.inflight.len() && window < max_inflight {
            if conn.out.full(OUT_HIGH_WATER) {
                break;
            }
            let f = &mut s.flow.inflight[i];
            if f.sent {
                i += 1;
                continue;
            }
            match f.state {
                Ack::Pubcomp => mqtt::encode_ack(conn.out.bytes(), mqtt::PUBREL, f.pid),
                Ack::Puback | Ack::Pubrec => {
                    let topic = &*bridge::outgoing(bridge, unmounted(mount, &f.msg.topic));
                    let v5 = conn.v5.as_ref();
                    if let Some(v) = v5 {
                        props.clear();
                        v5_props(props, &f.msg, now, &f.sub_ids, None);
                        let len = mqtt::publish_len(topic, true, Some(props), f.msg.payload.len());
                        if v.max_packet > 0 && len > v.max_packet as usize {
                            // Too large for this client now: discarded as if sent and
                            // acknowledged [MQTT-3.1.2-25].
                            if let Some(f) = s.flow.inflight.remove(i) {
                                s.flow.inflight_bytes -= f.msg.payload.len();
                            }
                            continue;
                        }
                    }
                    conn.out.publish(
                        true,
                        f.qos,
                        f.retain,
                        topic,
                        Some(f.pid),
                        v5.map(|_| &props[..]),
                        &f.msg,
                        spare,
                        now,
                    );
                }
            }
            f.sent = true;
            window += 1;
            sent += 1;
            i += 1;
        }
        if s.flow.inflight.iter().any(|f| !f.sent) {
            // New messages wait until every resumed one has gone out again.
            if sent > 0 {
                self.mark(id);
            }
            return;
        }
        while let Some(front) = s.flow.queue.front() {
            if conn.out.full(OUT_HIGH_WATER) {
                break;
            }
            let expired = front.msg.expiry.is_some_and(|t| t <= now);
            let needs_pid = front.qos != QoS::AtMostOnce && !expired;
            if needs_pid
                && (s.flow.inflight.len() >= max_inflight
                    || (max_inflight_bytes > 0
                        && !s.flow.inflight.is_empty()
                        && s.flow.inflight_bytes + front.msg.payload.len() > max_inflight_bytes))
            {
                break;
            }
            let Some(q) = s.flow.queue.pop_front() else {
                break;
            };
            let len = q.msg.payload.len();
            s.flow.queued_bytes -= len;
            if expired {
                continue;
            }
            let remote = bridge::outgoing(bridge, unmounted(mount, &q.msg.topic));
            let mut topic = &*remote;
            if conn.v5.is_none() && bridge::too_large(bridge, topic, needs_pid, len) {
                continue;
            }
            let mut v5_props_ref = None;
            if let Some(v) = conn.v5.as_mut() {
                // Topic aliases towards the client: the first `alias_max_out` topics get one;
                // a topic already aliased is sent as an empty string.
                let known = v.aliases_out.get(topic).copied();
                let fresh = (known.is_none() && v.aliases_out.len() < v.alias_max_out as usize)
                    .then(|| v.aliases_out.len() as u16 + 1);
                props.clear();
                v5_props(props, &q.msg, now, &q.sub_ids, known.or(fresh));
                let full_len = mqtt::publish_len(
                    if known.is_some() { "" } else { topic },
                    needs_pid,
                    Some(props),
                    len,
                );
                if v.max_packet > 0 && full_len > v.max_packet as usize {
                    // [MQTT-3.1.2-25]: too large for this client; it is not sent.
                    continue;
                }
                if let Some(a) = fresh {
                    v.aliases_out.insert(topic.into(), a);
                }
                if known.is_some() {
                    topic = "";
                }
                v5_props_ref = Some(&props[..]);
            }
            let pid = needs_pid.then(|| s.next_pid());
            conn.out.publish(
                false,
                q.qos,
                q.retain,
                topic,
                pid,
                v5_props_ref,
                &q.msg,
                spare,
                now,
            );
            self.stats.publish_bytes_sent += len as u64;
            if let Some(pid) = pid {
                s.flow.inflight_bytes += len;
                s.flow.inflight.push_back(Inflight {
                    pid,
                    state: if q.qos == QoS::AtLeastOnce {
                        Ack::Puback
                    } else {
                        Ack::Pubrec
                    },
                    qos: q.qos,
                    retain: q.retain,
                    msg: q.msg,
                    sub_ids: q.sub_ids,
                    sent: true,
                    share: q.share,
                });
            }
            sent += 1;
        }
        if let Some(f) = s.flow.get_mut() {
            if f.queue.is_empty() {
                f.dropping = false;
            }
        }
        let max_queued = self.cfg.max_queued_messages;
        let max_bytes = self.cfg.max_queued_bytes;
        if !s.flow.blockers.is_empty()
            && (max_queued == 0 || s.flow.queue.len() <= max_queued / 2)
            && (max_bytes == 0 || s.flow.queued_bytes <= max_bytes / 2)
        {
            let blockers = std::mem::take(&mut s.flow.blockers);
            self.resume(&blockers);
        }
        if sent > 0 {
            self.stats.msgs_sent += sent;
            self.stats.pkts_sent += sent;
            self.mark(id);
        }
    }

    /// Lets paused publishers go on (those that are still the same connections).
    pub(super) fn resume(&mut self, who: &[(ConnId, u32)]) {
        for &(p, serial) in who {
            if let Some(Some(c)) = self.conns.get_mut(p) {
                let paused = c
                    .extra
                    .get_mut()
                    .and_then(|e| e.throttled_until.take())
                    .is_some();
                if c.serial == serial && paused {
                    // Not reading it was the broker's doing, not the client's silence.
                    c.last_rx = self.now;
                    c.trim(self.now);
                    self.resumed.push(p);
                }
            }
        }
    }

    /// Whether the broker has paused reading from `id` (a subscriber it publishes to is full).
    pub fn is_paused(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id), Some(Some(c)) if c.extra.throttled_until.is_some())
    }

    /// Moves the connections that may be read again into `into` (cleared first): the caller
    /// hands them their kept bytes with [`Broker::received`] and reads their sockets again.
    pub fn take_resumed(&mut self, into: &mut Vec<ConnId>) {
        into.clear();
        std::mem::swap(into, &mut self.resumed);
    }

    /// PUBACK or PUBCOMP: the exchange with this packet identifier is complete. One for a
    /// message of the other QoS (PUBCOMP for QoS 1, PUBACK for QoS 2, PUBCOMP before PUBREC)
    /// is a Protocol Error, as mosquitto answers; one for an unknown identifier is ignored.
    pub(super) fn on_ack(&mut self, sid: SessionId, pid: u16, expect: Ack) -> Handled {
        if self.sessions[sid].complete(pid, expect) {
            self.pump(sid);
        } else if self.in_flight_as(sid, pid).is_some() {
            return Err(Fault::protocol(
                reason::PROTOCOL_ERROR,
                format!("{expect:?} for packet identifier {pid}, which is not waiting for it"),
            ));
        } else {
            debug!(
                "Received {expect:?} from {} for an unknown packet identifier {pid}.",
                self.sessions[sid].client_id
            );
        }
        Ok(())
    }

    /// What the in-flight message `pid` of session `sid` waits for, if there is one.
    fn in_flight_as(&mut self, sid: SessionId, pid: u16) -> Option<Ack> {
        let f = self.sessions[sid].flow.get_mut()?;
        [Ack::Puback, Ack::Pubrec, Ack::Pubcomp]
            .into_iter()
            .find(|&a| f.inflight_mut(pid, a).is_some())
    }

    /// PUBREC: answered with PUBREL, also for an unknown packet identifier or a second PUBREC
    /// (as mosquitto does). A PUBREC with an error code ends the exchange [MQTT-4.3.3-4] and is
    /// not answered; one for a QoS 1 message is a Protocol Error.
    pub(super) fn on_pubrec(&mut self, id: ConnId, sid: SessionId, pid: u16, code: u8) -> Handled {
        match self.in_flight_as(sid, pid) {
            Some(Ack::Puback) => {
                return Err(Fault::protocol(
                    reason::PROTOCOL_ERROR,
                    format!("PUBREC for packet identifier {pid}, a QoS 1 message"),
                ))
            }
            Some(Ack::Pubrec) if reason::is_error(code) => {
                self.sessions[sid].complete(pid, Ack::Pubrec);
                self.pump(sid);
                return Ok(());
            }
            Some(Ack::Pubrec) => {
                if let Some(f) = self.sessions[sid]
                    .flow
                    .get_mut()
                    .and_then(|f| f.inflight_mut(pid, Ack::Pubrec))
                {
                    f.state = Ack::Pubcomp;
                }
            }
            _ if reason::is_error(code) => return Ok(()),
            _ => {}
        }
        self.send_ack(id, mqtt::PUBREL, pid);
        Ok(())
    }

    /// PUBREL: the incoming QoS 2 message is released and PUBCOMP sent, also for an unknown
    /// packet identifier (as mosquitto does).
    pub(super) fn on_pubrel(&mut self, id: ConnId, sid: SessionId, pid: u16) {
        if self.sessions[sid].release_incoming(pid) {
            let max = self.receive_maximum();
            if let Some(v) = self.live(id).and_then(|c| c.v5.as_mut()) {
                v.in_quota = v.in_quota.saturating_add(1).min(max);
            }
        }
        self.send_ack(id, mqtt::PUBCOMP, pid);
    }

    /// PUBREL or PUBCOMP for `pid`, reason Success.
    fn send_ack(&mut self, id: ConnId, kind: u8, pid: u16) {
        if let Some(out) = self.out(id) {
            mqtt::encode_ack(out, kind, pid);
        }
    }
}

/// The MQTT 5 properties of an outgoing PUBLISH: the subscription identifiers, the topic
/// alias, the forwarded properties, then the remaining message expiry.
fn v5_props(out: &mut Vec<u8>, msg: &Message, now: Millis, sub_ids: &[u32], alias: Option<u16>) {
    use mqtt::props::id;
    // mosquitto's order: the subscription identifiers, the publisher's properties as it sent
    // them, then the remaining message expiry.
    for &s in sub_ids {
        out.push(id::SUBSCRIPTION_IDENTIFIER);
        mqtt::write_remaining_length(out, s as usize);
    }
    if let Some(a) = alias {
        out.push(id::TOPIC_ALIAS);
        out.extend_from_slice(&a.to_be_bytes());
    }
    out.extend_from_slice(&msg.props);
    if let Some(t) = msg.expiry {
        let secs = secs_left(t, now);
        out.push(id::MESSAGE_EXPIRY_INTERVAL);
        out.extend_from_slice(&secs.to_be_bytes());
    }
}
