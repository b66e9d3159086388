//! Shared subscriptions, `$share/GROUP/FILTER` (MQTT 5 section 4.8.2): the groups, which
//! member gets each message, and the hand-over of a departing member's messages.

use std::collections::VecDeque;

use super::session::{Queued, Session};
use super::{Broker, Msg, SessionId, SubEntry};
use crate::mqtt::QoS;

/// A shared subscription group, `$share/GROUP/FILTER` (MQTT 5 section 4.8.2): each message
/// matching FILTER goes to one member of GROUP.
pub(super) struct Share {
    group: Box<str>,
    filter: Box<str>,
    members: usize,
    /// Round-robin position.
    next: usize,
}

/// Splits `$share/GROUP/FILTER`: `None` for an ordinary filter, `Some(None)` for a malformed
/// shared one [MQTT-4.8.2-1] [MQTT-4.8.2-2].
pub(super) fn split_share(f: &str) -> Option<Option<(&str, &str)>> {
    let rest = f.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        // An empty group name is accepted, as mosquitto 2.0 accepts it.
        Some((g, filter)) if !filter.is_empty() && !g.contains(['+', '#']) => Some((g, filter)),
        _ => None,
    })
}

impl Broker {
    /// The number of group `group` with filter `filter` (its slot in `shares`, plus one),
    /// which is created if it does not exist.
    pub(super) fn share_number(&mut self, group: &str, filter: &str) -> u32 {
        let k = (Box::<str>::from(group), Box::<str>::from(filter));
        let idx = match self.share_ids.get(&k) {
            Some(&i) => i,
            None => {
                let i = self.shares.insert(Share {
                    group: k.0.clone(),
                    filter: k.1.clone(),
                    members: 0,
                    next: 0,
                });
                self.share_ids.insert(k, i);
                i
            }
        };
        idx as u32 + 1
    }

    /// The number of an existing group, if there is one.
    pub(super) fn existing_share(&self, group: &str, filter: &str) -> Option<u32> {
        let k = (Box::<str>::from(group), Box::<str>::from(filter));
        self.share_ids.get(&k).map(|&i| i as u32 + 1)
    }

    /// A session joined group `share`.
    pub(super) fn joined_share(&mut self, share: u32) {
        self.shares[share as usize - 1].members += 1;
    }

    /// A session left group `share`; a group with no members left goes.
    pub(super) fn left_share(&mut self, share: u32) {
        let i = share as usize - 1;
        let sh = &mut self.shares[i];
        sh.members -= 1;
        if sh.members == 0 {
            let sh = self.shares.remove(i);
            self.share_ids.remove(&(sh.group, sh.filter));
        }
    }

    /// Shared subscriptions: each group gets one copy, for one member, in turn, preferring
    /// members that are connected and whose queue has room. Returns the copies delivered.
    pub(super) fn publish_shared(&mut self, msg: &Msg, shared: &mut [SubEntry]) -> usize {
        if shared.is_empty() {
            return 0;
        }
        shared.sort_unstable_by_key(|e| (e.share, e.sid));
        let mut reached = 0;
        let mut i = 0;
        while i < shared.len() {
            let share = shared[i].share;
            let mut j = i;
            while j < shared.len() && shared[j].share == share {
                j += 1;
            }
            let group = &shared[i..j];
            i = j;
            if let Some(e) = self.choose_member(share, group, None) {
                if !self.may_read(e.sid, &msg.topic) {
                    continue;
                }
                let qos = self.outgoing_qos(msg.qos, e.opts.qos);
                let ids = e.sub_ids();
                let retain = e.opts.retain_as_published && msg.retain;
                self.deliver(e.sid, msg, qos, retain, ids, share);
                reached += 1;
            }
        }
        reached
    }

    /// The member of a shared group to give the next message to, other than `except`.
    fn choose_member(
        &mut self,
        share: u32,
        group: &[SubEntry],
        except: Option<SessionId>,
    ) -> Option<SubEntry> {
        let max_queued = self.cfg.max_queued_messages;
        let n = group.len();
        let sh = self.shares.get_mut(share as usize - 1)?;
        let start = sh.next;
        sh.next = sh.next.wrapping_add(1);
        let ok = |e: &SubEntry, strict: bool| {
            if Some(e.sid) == except {
                return false;
            }
            let s = &self.sessions[e.sid];
            !strict || (s.conn.is_some() && (max_queued == 0 || s.flow.queue.len() < max_queued))
        };
        (0..n)
            .map(|k| group[(start + k) % n])
            .find(|e| ok(e, true))
            .or_else(|| {
                (0..n)
                    .map(|k| group[(start + k) % n])
                    .find(|e| ok(e, false))
            })
    }

    /// Messages a departing member of shared groups had not been sent yet (and, when its
    /// session ends, QoS 1 messages it had not acknowledged) go to another member.
    pub(super) fn hand_over_shared(&mut self, sid: SessionId, ending: bool) {
        let mut moving: Vec<Queued> = Vec::new();
        if let Some(f) = self.sessions[sid].flow.get_mut() {
            let mut keep = VecDeque::with_capacity(f.queue.len());
            for q in f.queue.drain(..) {
                if q.share != 0 {
                    f.queued_bytes -= q.msg.payload.len();
                    moving.push(q);
                } else {
                    keep.push_back(q);
                }
            }
            f.queue = keep;
            if ending {
                for m in f.inflight.iter() {
                    if m.share != 0 && m.qos == QoS::AtLeastOnce {
                        moving.push(Queued {
                            msg: m.msg.clone(),
                            qos: m.qos,
                            retain: m.retain,
                            sub_ids: m.sub_ids.clone(),
                            share: m.share,
                        });
                    }
                }
            }
        }
        self.sessions[sid].flow.trim();
        for q in moving {
            let Queued {
                msg,
                qos: granted,
                retain,
                sub_ids,
                share,
            } = q;
            let Some(sh) = self.shares.get(share as usize - 1) else {
                continue;
            };
            let filter = sh.filter.clone();
            let group: Vec<SubEntry> = self
                .subs
                .entries(&filter)
                .iter()
                .filter(|e| e.share == share)
                .copied()
                .collect();
            match self.choose_member(share, &group, Some(sid)) {
                Some(e) => {
                    let qos = self.outgoing_qos(msg.qos, e.opts.qos);
                    let ids = e.sub_ids();
                    self.deliver(e.sid, &msg, qos, retain, ids, share);
                }
                None if !ending => {
                    // No one else: it stays with this session.
                    let s = &mut self.sessions[sid];
                    s.flow.queued_bytes += msg.payload.len();
                    // Put back as it was queued: the QoS and identifiers of its subscription.
                    s.flow.queue.push_back(Queued {
                        qos: granted,
                        msg,
                        retain,
                        sub_ids,
                        share,
                    });
                }
                None => {}
            }
        }
    }
}

/// Whether a session holds messages it was given through a shared subscription.
pub(super) fn has_shared(s: &Session) -> bool {
    s.flow.queue.iter().any(|q| q.share != 0)
}
