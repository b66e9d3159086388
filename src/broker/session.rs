//! A client's session: what outlives its connection when clean session is 0.

use std::collections::VecDeque;

use super::{ConnId, Millis, Msg};
use crate::mqtt::{QoS, SubOptions};

/// What an outgoing QoS 1/2 message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Puback,
    Pubrec,
    Pubcomp,
}

/// A message waiting for its turn to be sent.
pub struct Queued {
    pub msg: Msg,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 subscription identifiers of the subscriptions it matched.
    pub sub_ids: Box<[u32]>,
    /// The shared subscription group it was given to this session through; 0: none.
    pub share: u32,
}

/// A message sent and not yet acknowledged.
pub struct Inflight {
    pub pid: u16,
    pub state: Ack,
    pub msg: Msg,
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: Box<[u32]>,
    /// False for a resumed session's message not yet sent again on the new connection.
    pub sent: bool,
    pub share: u32,
}

/// Session expiry interval meaning "never" [MQTT-3.1.2.11.2].
pub const NEVER: u32 = u32::MAX;

pub struct Session {
    pub client_id: Box<str>,
    pub clean: bool,
    pub conn: Option<ConnId>,
    /// The client's subscriptions (filter, options, identifier), also held in the trie.
    pub subs: Vec<(Box<str>, SubOptions, u32)>,
    pub queue: VecDeque<Queued>,
    /// In the order sent, which is the order they are resent in.
    pub inflight: VecDeque<Inflight>,
    /// Packet identifiers of incoming QoS 2 messages delivered but not yet released, sorted.
    pub incoming: Vec<u16>,
    pub last_pid: u16,
    /// Set while messages are being dropped, so that the log says so once per episode.
    pub dropping: bool,
    /// Payload bytes in `queue` and in `inflight`.
    pub queued_bytes: usize,
    pub inflight_bytes: usize,
    /// The user name of its last connection, for ACL checks.
    pub username: Option<Box<str>>,
    /// The listener of its last connection.
    pub listener: usize,
    /// Seconds it outlives its connection: 0 ends it at disconnect, `NEVER` keeps it.
    pub expiry_interval: u32,
    /// While away: when it expires.
    pub expires_at: Option<Millis>,
    /// A will waiting for its delay (MQTT 5 Will Delay Interval): when, and what.
    pub pending_will: Option<(Millis, Msg)>,
    /// Distinguishes this session from earlier ones in the same slot (for timers).
    pub serial: u64,
    /// Publishers paused because this session's queue is full: (connection, serial).
    pub blockers: Vec<(ConnId, u64)>,
}

impl Session {
    pub fn new(client_id: Box<str>) -> Session {
        Session {
            client_id,
            clean: true,
            conn: None,
            subs: Vec::new(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            incoming: Vec::new(),
            last_pid: 0,
            dropping: false,
            queued_bytes: 0,
            inflight_bytes: 0,
            username: None,
            listener: 0,
            expiry_interval: 0,
            expires_at: None,
            pending_will: None,
            serial: 0,
            blockers: Vec::new(),
        }
    }

    /// A packet identifier not in use by any in-flight message [MQTT-2.3.1-2]. The caller keeps
    /// fewer than 65,535 messages in flight, so one is always free.
    pub fn next_pid(&mut self) -> u16 {
        loop {
            self.last_pid = self.last_pid.checked_add(1).unwrap_or(1);
            let pid = self.last_pid;
            if !self.inflight.iter().any(|f| f.pid == pid) {
                return pid;
            }
        }
    }

    pub fn inflight_mut(&mut self, pid: u16, state: Ack) -> Option<&mut Inflight> {
        self.inflight
            .iter_mut()
            .find(|f| f.pid == pid && f.state == state)
    }

    /// Removes the in-flight message `pid` waiting for `ack`; false if there is none.
    pub fn complete(&mut self, pid: u16, ack: Ack) -> bool {
        match self
            .inflight
            .iter()
            .position(|f| f.pid == pid && f.state == ack)
        {
            Some(i) => {
                if let Some(f) = self.inflight.remove(i) {
                    self.inflight_bytes -= f.msg.payload.len();
                }
                true
            }
            None => false,
        }
    }

    /// Records an incoming QoS 2 `pid`; false if it was already recorded (a resend whose
    /// message has been delivered already).
    pub fn receive_incoming(&mut self, pid: u16) -> bool {
        match self.incoming.binary_search(&pid) {
            Ok(_) => false,
            Err(i) => {
                self.incoming.insert(i, pid);
                true
            }
        }
    }

    /// PUBREL: forgets an incoming QoS 2 `pid`; false if it was not known.
    pub fn release_incoming(&mut self, pid: u16) -> bool {
        match self.incoming.binary_search(&pid) {
            Ok(i) => {
                self.incoming.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}
