//! SUBSCRIBE and UNSUBSCRIBE: the codes of SUBACK and UNSUBACK, the ACL's say, a session's
//! own list of subscriptions, and the retained messages a new subscription receives.

use log::{debug, info};

use super::shared::split_share;
use super::{mounted, reason, Broker, ConnId, Fault, Handled, Message, SessionId, SubEntry};
use crate::auth::acl::Access;
use crate::mqtt::{self, Properties, SubOptions};

impl Broker {
    /// Adds a subscription; `key` is the filter as the session knows it (`$share/GROUP/F` or
    /// `F`, mount point applied). Returns whether it replaced one, or `None` for a malformed
    /// shared filter.
    pub(super) fn subscribe_key(
        &mut self,
        sid: SessionId,
        key: &str,
        opts: SubOptions,
        id: u32,
    ) -> Option<bool> {
        let (filter, share) = match split_share(key) {
            None => (key, 0),
            Some(None) => return None,
            Some(Some((group, filter))) => (filter, self.share_number(group, filter)),
        };
        let existed = self.subs.insert(
            filter,
            SubEntry {
                sid,
                opts,
                id,
                share,
            },
        );
        if share != 0 && !existed {
            self.joined_share(share);
        }
        let s = &mut self.sessions[sid];
        match s.subs.iter_mut().find(|(g, _, _)| **g == *key) {
            Some(e) => {
                e.1 = opts;
                e.2 = id;
            }
            None => s.subs.push((key.into(), opts, id)),
        }
        self.stats.changes += 1;
        Some(existed)
    }

    /// Removes a subscription by the session's key; whether it existed.
    pub(super) fn unsubscribe_key(&mut self, sid: SessionId, key: &str) -> bool {
        let existed = match split_share(key) {
            None => self.subs.remove(key, sid, 0),
            Some(None) => false,
            Some(Some((group, filter))) => match self.existing_share(group, filter) {
                None => false,
                Some(share) => {
                    let existed = self.subs.remove(filter, sid, share);
                    if existed {
                        self.left_share(share);
                    }
                    existed
                }
            },
        };
        if let Some(s) = self.sessions.get_mut(sid) {
            s.subs.retain(|(g, _, _)| **g != *key);
            s.subs.trim();
        }
        self.stats.changes += 1;
        existed
    }

    /// SUBSCRIBE: a SUBACK code per filter, then the retained messages for the granted ones.
    pub(super) fn on_subscribe(
        &mut self,
        id: ConnId,
        sid: SessionId,
        pid: u16,
        filters: &[(&str, SubOptions)],
        props: &Properties<'_>,
    ) -> Handled {
        let v5 = self.is_v5(id);
        let s = &self.sessions[sid];
        debug!("Received SUBSCRIBE from {}", s.client_id);
        let mount = self.cfg.listeners[s.listener as usize].mount_point.clone();
        let sub_id = props.subscription_identifiers.first().copied().unwrap_or(0);
        let mut codes = Vec::with_capacity(filters.len());
        let mut granted = Vec::with_capacity(filters.len());
        for &(f, requested) in filters {
            let s = &self.sessions[sid];
            let policy = &self.cfg.listeners[s.listener as usize];
            let qos = requested.qos.min(policy.max_qos);
            debug!("\t{f} (QoS {})", requested.qos.as_u8());
            let shared = match split_share(f) {
                None => None,
                Some(Some((_, filter))) => Some(filter),
                // `$share/GROUP` without a filter: a Protocol Error, as mosquitto answers.
                Some(None) => {
                    return Err(Fault::protocol(
                        reason::PROTOCOL_ERROR,
                        "shared subscription without a topic filter",
                    ))
                }
            };
            if shared.is_some() && requested.no_local {
                return Err(Fault::protocol(
                    reason::PROTOCOL_ERROR,
                    "[MQTT-3.8.3-4] No Local on a shared subscription",
                ));
            }
            let acl_filter = shared.unwrap_or(f);
            // mosquitto's acl_file never refuses a SUBSCRIBE: read access is checked on each
            // message delivered. `acl_refuse_subscribe true` refuses what may not be read.
            let check = self.cfg.acl_refuse_subscribe;
            let allowed = !check
                || policy.acl.as_ref().is_none_or(|acl| {
                    acl.check(
                        s.username.as_deref(),
                        &s.client_id,
                        acl_filter,
                        Access::Subscribe,
                    )
                });
            if !allowed {
                info!("Denied SUBSCRIBE from {} to '{f}'.", s.client_id);
                codes.push(if v5 {
                    reason::NOT_AUTHORIZED
                } else {
                    reason::SUBACK_FAILURE
                });
                continue;
            }
            info!(target: "subscribe", "{} {} {f}", s.client_id, qos.as_u8());
            let key = session_key(mount.as_deref(), f);
            let opts = SubOptions { qos, ..requested };
            // [MQTT-3.8.4-3]: the same filter replaces the existing subscription.
            let Some(existed) = self.subscribe_key(sid, &key, opts, sub_id) else {
                codes.push(reason::SUBACK_FAILURE);
                continue;
            };
            let full = if shared.is_some() {
                // Retained messages are not sent for shared subscriptions (4.8.2).
                None
            } else {
                Some(key)
            };
            codes.push(qos.as_u8());
            // Retain Handling: 0 always, 1 only for a new subscription, 2 never.
            let send_retained = match opts.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if let (true, Some(full)) = (send_retained, full) {
                granted.push((full, qos));
            }
        }
        debug!("Sending SUBACK to {}", self.sessions[sid].client_id);
        if let Some(out) = self.out(id) {
            let p = Properties::default();
            mqtt::encode_suback(out, pid, v5.then_some(&p), &codes);
        }
        // [MQTT-3.3.1-6]: retained messages matching each filter, with RETAIN set
        // [MQTT-3.3.1-8].
        let ids: Box<[u32]> = if sub_id != 0 {
            Box::new([sub_id])
        } else {
            Box::default()
        };
        let now = self.now;
        let mut msgs = Vec::new();
        for (f, qos) in &granted {
            msgs.clear();
            self.retained.matching(f, &mut msgs);
            for m in &msgs {
                if m.expiry.is_some_and(|t| t <= now) {
                    self.retained.remove(&m.topic);
                    continue;
                }
                if self.may_read(sid, &m.topic) && self.source_may_write(m) {
                    // upgrade_outgoing_qos applies to retained messages too, as in mosquitto.
                    let q = self.outgoing_qos(m.qos, *qos);
                    self.deliver(sid, m, q, true, ids.clone(), 0);
                }
            }
        }
        Ok(())
    }

    /// UNSUBSCRIBE: UNSUBACK with a code per filter (MQTT 5: whether it existed).
    pub(super) fn on_unsubscribe(
        &mut self,
        id: ConnId,
        sid: SessionId,
        pid: u16,
        filters: &[&str],
    ) -> Handled {
        if filters.iter().any(|f| split_share(f) == Some(None)) {
            return Err(Fault::protocol(
                reason::PROTOCOL_ERROR,
                "shared subscription without a topic filter",
            ));
        }
        let v5 = self.is_v5(id);
        let listener = self.sessions[sid].listener as usize;
        let mount = self.cfg.listeners[listener].mount_point.clone();
        let mut codes = Vec::with_capacity(filters.len());
        for f in filters {
            let key = session_key(mount.as_deref(), f);
            let existed = self.unsubscribe_key(sid, &key);
            codes.push(if existed {
                reason::SUCCESS
            } else {
                reason::NO_SUBSCRIPTION_EXISTED
            });
        }
        debug!("Sending UNSUBACK to {}", self.client_name(id));
        if let Some(out) = self.out(id) {
            let props = Properties::default();
            mqtt::encode_unsuback(out, pid, v5.then_some(&props), &codes);
        }
        Ok(())
    }

    /// `check_retain_source`: whether the publisher of retained message `m` may still write
    /// its topic.
    pub(super) fn source_may_write(&self, m: &Message) -> bool {
        if !self.cfg.check_retain_source {
            return true;
        }
        let Some(o) = &m.origin else {
            return true;
        };
        match self
            .cfg
            .listeners
            .get(o.listener)
            .and_then(|l| l.acl.as_ref())
        {
            None => true,
            Some(acl) => acl.check(o.username.as_deref(), &o.client_id, &m.topic, Access::Write),
        }
    }
}

/// The subscription key a session keeps: the filter under the mount point, with a shared
/// subscription's `$share/GROUP/` kept in front.
fn session_key(mount: Option<&str>, f: &str) -> String {
    match split_share(f) {
        Some(Some((group, filter))) => format!("$share/{group}/{}", mounted(mount, filter)),
        _ => mounted(mount, f).into_owned(),
    }
}
