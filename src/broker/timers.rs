//! Deadlines: the [`Timers`] that hold them, where they are armed, and what happens when a
//! connection's deadline passes (CONNECT timeout, keepalive [MQTT-3.1.2-24], the end of a
//! publisher's pause). A session's deadlines (expiry, delayed will) fire in `lifecycle.rs`.
//!
//! Also the conversions between the broker's milliseconds and the protocol's seconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use log::warn;

use super::{Broker, Close, ConnId, Millis, SessionId, State, THROTTLE_MAX_MS};

/// Both deadline heaps. An entry carries the serial of the connection or session it was armed
/// for: one left behind by a connection or session that has gone since is skipped when it pops.
#[derive(Default)]
pub(super) struct Timers {
    /// Connection timers (keepalive, CONNECT timeout, end of a pause): (due, connection,
    /// serial). 16 bytes an entry: connection slots and serials fit in 32 bits (a serial only
    /// has to tell this connection from the slot's previous ones).
    conns: BinaryHeap<Reverse<(Millis, u32, u32)>>,
    /// Session timers (expiry, delayed wills): (due, session, serial).
    sessions: BinaryHeap<Reverse<(Millis, SessionId, u32)>>,
}

impl Timers {
    /// Makes sure connection `id`'s timer fires no later than `at`. Each connection has one
    /// live entry, the one due at its `timer_at`; others left behind are skipped when they pop.
    pub(super) fn arm_conn(&mut self, timer_at: &mut Millis, id: ConnId, serial: u32, at: Millis) {
        if at < *timer_at {
            *timer_at = at;
            self.conns.push(Reverse((at, id as u32, serial)));
        }
    }

    /// Adds a deadline for session `sid` (its expiry or its delayed will).
    pub(super) fn arm_session(&mut self, sid: SessionId, serial: u32, at: Millis) {
        self.sessions.push(Reverse((at, sid, serial)));
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Millis> {
        let a = self.conns.peek().map(|Reverse((t, _, _))| *t);
        let b = self.sessions.peek().map(|Reverse((t, _, _))| *t);
        a.into_iter().chain(b).min()
    }

    /// Takes the next connection entry due at `now`: (due, connection, serial).
    fn pop_conn(&mut self, now: Millis) -> Option<(Millis, ConnId, u32)> {
        let &Reverse((due, id, serial)) = self.conns.peek()?;
        if due > now {
            return None;
        }
        self.conns.pop();
        Some((due, id as ConnId, serial))
    }

    /// Takes the next session entry due at `now`: (session, serial).
    pub(super) fn pop_session(&mut self, now: Millis) -> Option<(SessionId, u32)> {
        let &Reverse((due, sid, serial)) = self.sessions.peek()?;
        if due > now {
            return None;
        }
        self.sessions.pop();
        Some((sid, serial))
    }
}

/// `secs` seconds after `now`.
pub(super) fn after_secs(now: Millis, secs: u32) -> Millis {
    now + secs as Millis * 1000
}

/// The whole seconds left from `now` until `t`, rounded up (0 once `t` has passed).
pub(super) fn secs_left(t: Millis, now: Millis) -> u32 {
    t.saturating_sub(now).div_ceil(1000).min(u32::MAX as u64) as u32
}

/// When a client with this keepalive (seconds), last heard from at `last_rx`, has been silent
/// too long: one and a half times the keepalive [MQTT-3.1.2-24].
pub(super) fn keepalive_deadline(last_rx: Millis, keep_alive: u16) -> Millis {
    last_rx + keep_alive as Millis * 1500
}

impl Broker {
    /// Makes sure connection `id`'s timer fires no later than `at`.
    pub(super) fn arm(&mut self, id: ConnId, at: Millis) {
        if let Some(Some(c)) = self.conns.get_mut(id) {
            self.timers.arm_conn(&mut c.timer_at, id, c.serial, at);
        }
    }

    /// Connection deadlines due at `now`: a pause that ran out ends; a connection that sent no
    /// CONNECT in time, or nothing for 1.5 × its keepalive, is closed; others are re-armed for
    /// their next deadline.
    pub(super) fn conn_timers_due(&mut self, now: Millis) {
        while let Some((due, id, serial)) = self.timers.pop_conn(now) {
            let Some(Some(c)) = self.conns.get_mut(id) else {
                continue;
            };
            if c.serial != serial || c.timer_at != due {
                continue;
            }
            c.timer_at = Millis::MAX;
            if let Some(until) = c.extra.throttled_until {
                if until <= now {
                    // A pause that ran out: go on, dropping for full queues for a while.
                    c.extra.throttled_until = None;
                    c.extra.no_throttle_until = now + THROTTLE_MAX_MS;
                    c.last_rx = now;
                    self.resumed.push(id);
                    warn!("Publisher paused for {THROTTLE_MAX_MS} ms by a full subscriber queue; resuming.");
                } else {
                    self.arm(id, until);
                    continue;
                }
            }
            let Some(Some(c)) = self.conns.get_mut(id) else {
                continue;
            };
            let deadline = match c.state {
                State::AwaitConnect => c.last_rx + self.cfg.connect_timeout_ms,
                State::Connected if c.keep_alive > 0 => keepalive_deadline(c.last_rx, c.keep_alive),
                _ => continue,
            };
            if deadline > now {
                self.arm(id, deadline);
            } else {
                self.close(id, Close::Timeout, now);
            }
        }
    }
}
