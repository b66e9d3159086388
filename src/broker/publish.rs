//! PUBLISH: an incoming message is checked (QoS, topic alias, size, ACL, QoS 2 duplicates),
//! acknowledged, routed to every matching subscription and delivered into each subscriber's
//! queue, where backpressure may pause its publisher.

use log::{debug, info, warn};

use super::session::Queued;
use super::timers::after_secs;
use super::{mounted, reason, unmounted, Broker, ConnId, Fault, Handled, Millis, Msg};
use super::{Origin, SessionId, THROTTLE_MAX_MS};
use crate::auth::acl::Access;
use crate::mqtt::{self, Properties, QoS};

impl Broker {
    /// PUBLISH from a client.
    pub(super) fn on_publish(
        &mut self,
        id: ConnId,
        sid: SessionId,
        p: mqtt::Publish<'_>,
        now: Millis,
    ) -> Handled {
        self.stats.msgs_received += 1;
        let name = self.sessions[sid].client_id.clone();
        debug!(
            "Received PUBLISH from {name} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            p.dup as u8,
            p.qos.as_u8(),
            p.retain as u8,
            p.pid.unwrap_or(0),
            p.topic,
            p.payload.len()
        );
        let listener = self.sessions[sid].listener as usize;
        let v5 = self.is_v5(id);
        let policy = &self.cfg.listeners[listener];
        if p.qos > policy.max_qos {
            return Err(Fault::protocol(
                reason::QOS_NOT_SUPPORTED,
                format!("PUBLISH at QoS {} over max_qos", p.qos.as_u8()),
            ));
        }
        // A Subscription Identifier from a client is ignored (never forwarded), as mosquitto
        // 2.0 ignores it.
        if p.retain && !self.cfg.retain_available {
            return Err(Fault::protocol(
                reason::RETAIN_NOT_SUPPORTED,
                "retained PUBLISH while retain_available is false",
            ));
        }
        // MQTT 5 topic aliases from the client.
        let mut aliased: Option<Box<str>> = None;
        if let Some(alias) = p.props.topic_alias {
            let max = policy.max_topic_alias;
            // Alias 0 is a Protocol Error and one over the maximum Topic Alias Invalid, as
            // mosquitto answers [MQTT-3.3.2-8] [MQTT-3.3.2-9].
            if alias == 0 {
                return Err(Fault::protocol(reason::PROTOCOL_ERROR, "topic alias 0"));
            }
            if alias > max {
                return Err(Fault::protocol(
                    reason::TOPIC_ALIAS_INVALID,
                    format!("topic alias {alias} over {max}"),
                ));
            }
            let Some(v) = self.live(id).and_then(|c| c.v5.as_mut()) else {
                return Ok(());
            };
            let slot = alias as usize - 1;
            if v.aliases_in.len() <= slot {
                v.aliases_in.resize(slot + 1, None);
            }
            if p.topic.is_empty() {
                match &v.aliases_in[slot] {
                    Some(t) => aliased = Some(t.clone()),
                    None => {
                        return Err(Fault::protocol(
                            reason::PROTOCOL_ERROR,
                            format!("unknown topic alias {alias}"),
                        ))
                    }
                }
            } else {
                v.aliases_in[slot] = Some(p.topic.into());
            }
        }
        // More QoS 1/2 messages than the broker's Receive Maximum allows: refused with Quota
        // Exceeded and not delivered, and the connection goes on, as mosquitto 2.0.20 answers
        // (it never sends DISCONNECT 0x93 [MQTT-3.3.4-9]).
        let resend = p.qos == QoS::ExactlyOnce
            && p.pid
                .is_some_and(|pid| self.sessions[sid].flow.incoming.contains(&pid));
        if v5 && p.qos != QoS::AtMostOnce && !resend {
            let max = self.receive_maximum();
            if let Some(v) = self.live(id).and_then(|c| c.v5.as_mut()) {
                if v.in_quota == 0 {
                    v.in_quota = 1.min(max);
                    info!("Dropped PUBLISH from {name} over the receive maximum.");
                    if let (Some(pid), Some(out)) = (p.pid, self.out(id)) {
                        let kind = if p.qos == QoS::AtLeastOnce {
                            mqtt::PUBACK
                        } else {
                            mqtt::PUBREC
                        };
                        mqtt::encode_ack_v5(
                            out,
                            kind,
                            pid,
                            reason::QUOTA_EXCEEDED,
                            &Properties::default(),
                        );
                    }
                    return Ok(());
                }
                if p.qos == QoS::ExactlyOnce {
                    v.in_quota -= 1;
                }
            }
        }
        let client_topic: &str = aliased.as_deref().unwrap_or(p.topic);
        let policy = &self.cfg.listeners[listener];
        let topic = mounted(policy.mount_point.as_deref(), client_topic);
        let limit = self.cfg.message_size_limit;
        let mut drop_why = None;
        let mut code = reason::SUCCESS;
        if limit > 0 && p.payload.len() > limit {
            drop_why = Some("too large");
            code = reason::PACKET_TOO_LARGE;
        } else if topic.starts_with("$SYS") {
            // $SYS is the broker's own: read-only to clients.
            drop_why = Some("denied ($SYS is read-only)");
            code = reason::NOT_AUTHORIZED;
        } else if let Some(acl) = &policy.acl {
            let s = &self.sessions[sid];
            if !acl.check(s.username.as_deref(), &s.client_id, &topic, Access::Write) {
                drop_why = Some("denied");
                code = reason::NOT_AUTHORIZED;
            }
        }
        if let Some(why) = drop_why {
            info!(
                "Dropped {why} PUBLISH from {name} (q{}, '{}', {} bytes).",
                p.qos.as_u8(),
                client_topic,
                p.payload.len()
            );
        }
        let fresh = match (p.qos, p.pid) {
            // [MQTT-4.3.3-2]: a QoS 2 PUBLISH resent before PUBREL is acknowledged again but
            // not delivered again.
            (QoS::ExactlyOnce, Some(pid)) if drop_why.is_none() || v5 => {
                self.sessions[sid].flow.receive_incoming(pid)
            }
            _ => true,
        };
        if fresh && drop_why.is_none() {
            let origin = (p.retain && policy.acl.is_some()).then(|| {
                let s = &self.sessions[sid];
                Box::new(Origin {
                    client_id: s.client_id.as_str().into(),
                    username: s.username.clone(),
                    listener,
                })
            });
            let props = if v5 {
                p.props.forwardable().into()
            } else {
                Box::default()
            };
            let expiry = p.props.message_expiry_interval.map(|e| after_secs(now, e));
            let msg = self
                .spare_msg
                .message(&topic, p.payload, p.qos, p.retain, origin, props, expiry);
            self.publishing = Some(id);
            let reached = self.publish(msg, Some(sid));
            self.publishing = None;
            // mosquitto says No Matching Subscribers in PUBACK, never in PUBREC.
            if reached == 0 && p.qos == QoS::AtLeastOnce {
                code = reason::NO_MATCHING_SUBSCRIBERS;
            }
        }
        // A dropped message is still acknowledged: MQTT 3.1.1 has no way to say no; MQTT 5
        // says why in the reason code.
        if let (Some(pid), Some(out)) = (p.pid, self.out(id)) {
            let kind = if p.qos == QoS::AtLeastOnce {
                mqtt::PUBACK
            } else {
                mqtt::PUBREC
            };
            if v5 {
                mqtt::encode_ack_v5(out, kind, pid, code, &Properties::default());
            } else {
                mqtt::encode_ack(out, kind, pid);
            }
        }
        Ok(())
    }

    /// Whether the subscriber of session `sid` may read `topic` under its listener's ACL.
    pub(super) fn may_read(&self, sid: SessionId, topic: &str) -> bool {
        let s = &self.sessions[sid];
        match &self.cfg.listeners[s.listener as usize].acl {
            None => true,
            Some(acl) => {
                let mount = self.cfg.listeners[s.listener as usize]
                    .mount_point
                    .as_deref();
                acl.check(
                    s.username.as_deref(),
                    &s.client_id,
                    unmounted(mount, topic),
                    Access::Read,
                )
            }
        }
    }

    /// Routes a message to every matching subscription and updates the retained store.
    /// `from` is the publishing session (for No Local). Returns how many sessions it reached.
    pub fn publish(&mut self, msg: Msg, from: Option<SessionId>) -> usize {
        if msg.retain {
            // [MQTT-3.3.1-5] [MQTT-3.3.1-10]
            self.retained.set(&msg);
            // The broker's own `$SYS` values are never saved (snapshot.rs), so they are no
            // change for `autosave_on_changes` to count: a `$SYS` round must not trigger a
            // save ahead of the changes it is meant to wait for.
            if !msg.topic.starts_with("$SYS") {
                self.stats.changes += 1;
            }
        }
        let mut matches = std::mem::take(&mut self.scratch_matches);
        self.subs
            .matches(&msg.topic, &mut matches, &mut self.scratch_stack);
        let mut shared = std::mem::take(&mut self.scratch_shared);
        shared.clear();
        matches.retain(|e| {
            if e.share != 0 {
                shared.push(*e);
                false
            } else {
                true
            }
        });
        let mut reached = self.publish_shared(&msg, &mut shared);
        self.scratch_shared = shared;
        let mut i = 0;
        while i < matches.len() {
            let sid = matches[i].sid;
            let mut j = i;
            let mut qos = None::<QoS>;
            let mut rap = false;
            let mut ids: Vec<u32> = Vec::new();
            while j < matches.len() && matches[j].sid == sid {
                let e = matches[j];
                j += 1;
                // No Local: not back to the publisher [MQTT-3.8.3-3].
                if e.opts.no_local && from == Some(sid) {
                    continue;
                }
                qos = Some(qos.map_or(e.opts.qos, |q| q.max(e.opts.qos)));
                rap |= e.opts.retain_as_published;
                if e.id != 0 {
                    ids.push(e.id);
                }
            }
            i = j;
            let Some(granted) = qos else { continue };
            if !self.may_read(sid, &msg.topic) {
                continue;
            }
            // Outbound QoS is the lower of published and granted (unless
            // upgrade_outgoing_qos); the RETAIN flag is cleared on messages forwarded to
            // existing subscriptions [MQTT-3.3.1-9] unless Retain As Published.
            let qos = self.outgoing_qos(msg.qos, granted);
            reached += 1;
            self.deliver(sid, &msg, qos, rap && msg.retain, ids.into(), 0);
        }
        self.scratch_matches = matches;
        self.spare_msg.keep(msg);
        reached
    }

    /// The QoS a message published at `published` goes out at to a subscription granted
    /// `granted`: the lower of the two, or `granted` with `upgrade_outgoing_qos` (on live
    /// delivery, retained messages sent on SUBSCRIBE and shared hand-over alike, as mosquitto).
    pub(super) fn outgoing_qos(&self, published: QoS, granted: QoS) -> QoS {
        if self.cfg.upgrade_outgoing_qos {
            granted
        } else {
            published.min(granted)
        }
    }

    /// Queues a message for session `sid` (and sends it, if the session is connected). A full
    /// queue drops it, or keeps it and pauses its publisher (backpressure).
    pub(super) fn deliver(
        &mut self,
        sid: SessionId,
        msg: &Msg,
        qos: QoS,
        retain: bool,
        sub_ids: Box<[u32]>,
        share: u32,
    ) {
        let max_queued = self.cfg.max_queued_messages;
        let max_bytes = self.cfg.max_queued_bytes;
        let s = &mut self.sessions[sid];
        if s.conn.is_none() && qos == QoS::AtMostOnce && !self.cfg.queue_qos0_messages {
            // QoS 0 messages are not queued for clients that are away.
            return;
        }
        let len = msg.payload.len();
        let full = (max_queued > 0 && s.flow.queue.len() >= max_queued)
            || (max_bytes > 0 && !s.flow.queue.is_empty() && s.flow.queued_bytes + len > max_bytes);
        // Backpressure: a QoS 1/2 message for a connected subscriber whose queue is full is
        // kept, and its publisher is paused until the queue drains, so nothing acknowledged
        // is lost. (Not for a client publishing to itself, nor while a pause has run out.)
        let pause = full
            && qos != QoS::AtMostOnce
            && s.conn.is_some()
            && self.publishing.is_some_and(|p| {
                Some(p) != s.conn.get()
                    && matches!(self.conns.get(p), Some(Some(c)) if c.extra.no_throttle_until <= self.now)
            });
        if pause {
            if let Some(p) = self.publishing {
                if let Some(Some(c)) = self.conns.get_mut(p) {
                    if c.extra.throttled_until.is_none() {
                        c.extra.throttled_until = Some(self.now + THROTTLE_MAX_MS);
                    }
                    let entry = (p, c.serial);
                    if !s.flow.blockers.contains(&entry) {
                        s.flow.blockers.push(entry);
                    }
                    let at = self.now + THROTTLE_MAX_MS;
                    self.timers.arm_conn(&mut c.timer_at, p, c.serial, at);
                }
            }
        } else if full {
            self.stats.msgs_dropped += 1;
            if !s.flow.dropping {
                s.flow.dropping = true;
                warn!(
                    "Outgoing messages are being dropped for client {}.",
                    s.client_id
                );
            }
            return;
        }
        s.flow.queued_bytes += len;
        s.flow.queue.push_back(Queued {
            msg: msg.clone(),
            qos,
            retain,
            sub_ids,
            share,
        });
        if qos != QoS::AtMostOnce && s.expiry_interval > 0 {
            self.stats.changes += 1;
        }
        if s.conn.is_some() {
            self.pump(sid);
        }
    }
}
