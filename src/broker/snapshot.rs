//! What survives a restart: retained messages and persistent sessions, turned into the
//! `persist` module's records ([`Broker::snapshot`], [`Broker::write_snapshot`]) and back
//! ([`Broker::restore`]). Times are saved as seconds left and count again from the restore.

use std::rc::Rc;

use super::session::{Ack, Inflight, Queued, Session, NEVER};
use super::shared::split_share;
use super::timers::{after_secs, secs_left};
use super::{Broker, Message, Millis, Msg, Origin};
use crate::mqtt::{self, QoS, SubOptions};
use crate::persist::{OutState, Snapshot, StoredMsg, StoredOut, StoredSession, StoredSub};

fn stored_msg(m: &Message, now: Millis) -> StoredMsg {
    StoredMsg {
        topic: m.topic.to_string(),
        payload: m.payload.to_vec(),
        qos: m.qos.as_u8(),
        retain: m.retain,
        props: m.props.to_vec(),
        expiry_left: m.expiry.map(|t| secs_left(t, now)),
        origin: m.origin.as_ref().map(|o| {
            (
                o.client_id.to_string(),
                o.username.as_ref().map(|u| u.to_string()),
                o.listener as u32,
            )
        }),
    }
}

/// Whether a retained message goes into a snapshot: not expired, and not one of the running
/// broker's own `$SYS` values.
fn saved_retained(m: &Message, now: Millis) -> bool {
    m.expiry.is_none_or(|t| t > now) && !m.topic.starts_with("$SYS")
}

fn stored_session(s: &Session, now: Millis) -> StoredSession {
    let mut out = Vec::with_capacity(s.flow.inflight.len() + s.flow.queue.len());
    for f in &s.flow.inflight {
        out.push(StoredOut {
            state: match f.state {
                Ack::Pubcomp => OutState::AwaitComp,
                _ => OutState::AwaitAck,
            },
            pid: f.pid,
            qos: f.qos.as_u8(),
            retain: f.retain,
            sub_ids: f.sub_ids.to_vec(),
            msg: stored_msg(&f.msg, now),
        });
    }
    for q in &s.flow.queue {
        out.push(StoredOut {
            state: OutState::Queued,
            pid: 0,
            qos: q.qos.as_u8(),
            retain: q.retain,
            sub_ids: q.sub_ids.to_vec(),
            msg: stored_msg(&q.msg, now),
        });
    }
    StoredSession {
        client_id: s.client_id.to_string(),
        username: s.username.as_ref().map(|u| u.to_string()),
        listener: s.listener as u32,
        expiry_interval: s.expiry_interval,
        expiry_left: (s.expires_at != Millis::MAX).then(|| secs_left(s.expires_at, now)),
        subs: s
            .subs
            .iter()
            .map(|(f, o, id)| StoredSub {
                filter: f.to_string(),
                options: o.byte(),
                id: *id,
            })
            .collect(),
        out,
        incoming_qos2: s.flow.incoming.clone(),
        pending_will: s
            .flow
            .pending_will
            .as_ref()
            .map(|(t, w)| (secs_left(*t, now), stored_msg(w, now))),
        last_pid: s.last_pid,
    }
}

fn message_from(s: StoredMsg, now: Millis) -> Msg {
    Rc::new(Message {
        topic: s.topic.into(),
        payload: s.payload.into(),
        qos: QoS::from_u8(s.qos).unwrap_or(QoS::AtMostOnce),
        retain: s.retain,
        origin: s.origin.map(|(c, u, l)| {
            Box::new(Origin {
                client_id: c.into(),
                username: u.map(Into::into),
                listener: l as usize,
            })
        }),
        props: s.props.into(),
        expiry: s.expiry_left.map(|e| after_secs(now, e)),
    })
}

impl Broker {
    /// Changes since start that a save would record (retained messages, subscriptions,
    /// messages queued for sessions): `autosave_on_changes` counts these.
    pub fn changes(&self) -> u64 {
        self.stats.changes
    }

    /// Everything that must survive a restart: retained messages and persistent sessions
    /// with their subscriptions, queued and in-flight messages and pending wills.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        self.each_saved(
            |m| {
                snap.retained.push(m);
                Ok(())
            },
            |_| Ok(()),
        )
        .ok();
        self.each_saved(
            |_| Ok(()),
            |s| {
                snap.sessions.push(s);
                Ok(())
            },
        )
        .ok();
        snap
    }

    /// Writes the snapshot to `out` record by record, holding one record's copy at a time.
    /// Returns the retained messages and sessions written.
    pub fn write_snapshot(&self, out: &mut impl std::io::Write) -> std::io::Result<(u64, u64)> {
        let now = self.now;
        let mut nr = 0u64;
        self.retained.for_each(|m| {
            if saved_retained(m, now) {
                nr += 1;
            }
        });
        let ns = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expiry_interval > 0)
            .count() as u64;
        let mut enc = crate::persist::format::Encoder::new(out, nr, ns);
        // Each record converted once, straight into the encoder.
        self.each_retained(|m| enc.retained(&m))?;
        self.each_session(|s| enc.session(&s))?;
        enc.finish()?;
        Ok((nr, ns))
    }

    /// Calls `retained` for every retained message worth keeping, then `session` for every
    /// persistent session, each converted on its own.
    fn each_saved(
        &self,
        retained: impl FnMut(StoredMsg) -> std::io::Result<()>,
        session: impl FnMut(StoredSession) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        self.each_retained(retained)?;
        self.each_session(session)
    }

    /// Calls `f` for every retained message worth keeping, converted.
    fn each_retained(
        &self,
        mut f: impl FnMut(StoredMsg) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let now = self.now;
        let mut result = Ok(());
        self.retained.for_each(|m| {
            if result.is_ok() && saved_retained(m, now) {
                result = f(stored_msg(m, now));
            }
        });
        result
    }

    /// Calls `f` for every persistent session, converted.
    fn each_session(
        &self,
        mut f: impl FnMut(StoredSession) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let now = self.now;
        for (_, s) in self.sessions.iter() {
            if s.expiry_interval == 0 {
                continue;
            }
            f(stored_session(s, now))?;
        }
        Ok(())
    }

    /// Loads a snapshot into a broker that has no sessions yet. Sessions come back as clients
    /// that are away: their expiry counts from `now`. Returns (retained, sessions) restored.
    pub fn restore(&mut self, snap: Snapshot, now: Millis) -> (usize, usize) {
        self.now = now;
        let mut nret = 0;
        for m in snap.retained {
            if m.payload.is_empty() || mqtt::topic::validate_name(&m.topic).is_err() {
                continue;
            }
            let msg = message_from(m, now);
            self.retained.set(&msg);
            nret += 1;
        }
        let mut nses = 0;
        for st in snap.sessions {
            if self
                .by_id
                .get(st.client_id.as_str(), &self.sessions)
                .is_some()
                || st.expiry_interval == 0
            {
                continue;
            }
            self.serial += 1;
            let mut s = Session::new(st.client_id.as_str());
            s.serial = self.serial as u32;
            s.clean = false;
            s.username = st.username.map(Into::into);
            s.listener =
                (st.listener as usize).min(self.cfg.listeners.len().saturating_sub(1)) as u16;
            s.expiry_interval = st.expiry_interval;
            s.last_pid = st.last_pid;
            s.flow.incoming = st.incoming_qos2;
            s.flow.incoming.sort_unstable();
            s.flow.incoming.dedup();
            for o in st.out {
                let msg = message_from(o.msg, now);
                let qos = QoS::from_u8(o.qos).unwrap_or(QoS::AtLeastOnce);
                let sub_ids: Box<[u32]> = o.sub_ids.into();
                let len = msg.payload.len();
                match o.state {
                    OutState::Queued => {
                        s.flow.queued_bytes += len;
                        s.flow.queue.push_back(Queued {
                            msg,
                            qos,
                            retain: o.retain,
                            sub_ids,
                            share: 0,
                        });
                    }
                    state if o.pid != 0 && qos != QoS::AtMostOnce => {
                        if s.flow.inflight.iter().any(|f| f.pid == o.pid) {
                            continue;
                        }
                        s.flow.inflight_bytes += len;
                        s.flow.inflight.push_back(Inflight {
                            pid: o.pid,
                            state: match (state, qos) {
                                (OutState::AwaitComp, _) => Ack::Pubcomp,
                                (_, QoS::ExactlyOnce) => Ack::Pubrec,
                                _ => Ack::Puback,
                            },
                            msg,
                            qos,
                            retain: o.retain,
                            sub_ids,
                            sent: false,
                            share: 0,
                        });
                    }
                    _ => {}
                }
            }
            let sid = self.sessions.insert(s);
            for sub in st.subs {
                let plain = match split_share(&sub.filter) {
                    None => sub.filter.as_str(),
                    Some(Some((_, f))) => f,
                    Some(None) => continue,
                };
                if mqtt::topic::validate_filter(plain).is_err() {
                    continue;
                }
                let opts = SubOptions {
                    qos: QoS::from_u8(sub.options & 3).unwrap_or(QoS::AtMostOnce),
                    no_local: sub.options & 0x04 != 0,
                    retain_as_published: sub.options & 0x08 != 0,
                    retain_handling: (sub.options >> 4) & 3,
                };
                self.subscribe_key(sid, &sub.filter, opts, sub.id);
            }
            let s = &mut self.sessions[sid];
            if let Some((left, w)) = st.pending_will {
                let at = after_secs(now, left);
                s.flow.pending_will = Some((at, message_from(w, now)));
                self.timers.arm_session(sid, s.serial, at);
            }
            if s.expiry_interval != NEVER {
                let left = st.expiry_left.unwrap_or(s.expiry_interval);
                let at = after_secs(now, left);
                s.expires_at = at;
                self.timers.arm_session(sid, s.serial, at);
            }
            self.by_id.insert(sid, &self.sessions);
            nses += 1;
        }
        (nret, nses)
    }
}
