//! A client's session: what outlives its connection when clean session is 0.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use super::short::ShortStr;
use super::{ConnId, Key, Millis, Msg};
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

/// A value allocated on first write: while unused it costs one pointer instead of its whole
/// size. Most sessions never have anything queued or in flight, and an idle connection must
/// cost a few hundred bytes in all. Reads of an unallocated value see `T::BLANK`; writes
/// through `DerefMut` allocate it; `trim` frees it again once it is blank.
pub struct Lazy<T: Blank>(Option<Box<T>>);

/// A type whose empty value can be shared, for `Lazy`.
pub trait Blank: Default + 'static {
    const BLANK: &'static Self;
    fn is_blank(&self) -> bool;
}

impl<T: Blank> Default for Lazy<T> {
    fn default() -> Self {
        Lazy(None)
    }
}

impl<T: Blank> Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().unwrap_or(T::BLANK)
    }
}

impl<T: Blank> DerefMut for Lazy<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<T: Blank> Lazy<T> {
    /// The value if it is allocated, without allocating it.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// Frees the value if it is blank.
    pub fn trim(&mut self) {
        if self.0.as_deref().is_some_and(T::is_blank) {
            self.0 = None;
        }
    }
}

/// A session's subscriptions: (filter, options, identifier), also held in the trie.
pub type SubList = Vec<(Box<str>, SubOptions, u32)>;

impl Blank for SubList {
    const BLANK: &'static Self = &Vec::new();
    fn is_blank(&self) -> bool {
        self.is_empty()
    }
}

/// The messages on their way to and from a session's client, and what goes with them.
#[derive(Default)]
pub struct Flow {
    pub queue: VecDeque<Queued>,
    /// In the order sent, which is the order they are resent in.
    pub inflight: VecDeque<Inflight>,
    /// Packet identifiers of incoming QoS 2 messages delivered but not yet released, sorted.
    pub incoming: Vec<u16>,
    /// Set while messages are being dropped, so that the log says so once per episode.
    pub dropping: bool,
    /// Payload bytes in `queue` and in `inflight`.
    pub queued_bytes: usize,
    pub inflight_bytes: usize,
    /// A will waiting for its delay (MQTT 5 Will Delay Interval): when, and what.
    pub pending_will: Option<(Millis, Msg)>,
    /// Publishers paused because this session's queue is full: (connection, serial).
    pub blockers: Vec<(ConnId, u32)>,
}

impl Blank for Flow {
    const BLANK: &'static Self = &Flow {
        queue: VecDeque::new(),
        inflight: VecDeque::new(),
        incoming: Vec::new(),
        dropping: false,
        queued_bytes: 0,
        inflight_bytes: 0,
        pending_will: None,
        blockers: Vec::new(),
    };
    /// Nothing that must be kept: a new packet identifier sequence may start from 1 again,
    /// since identifiers only need to be unique among messages in flight [MQTT-2.3.1-2].
    fn is_blank(&self) -> bool {
        self.queue.is_empty()
            && self.inflight.is_empty()
            && self.incoming.is_empty()
            && self.pending_will.is_none()
            && self.blockers.is_empty()
    }
}

pub struct Session {
    pub client_id: ShortStr,
    pub clean: bool,
    pub conn: Key,
    pub subs: Lazy<SubList>,
    pub flow: Lazy<Flow>,
    /// The user name of its last connection, for ACL checks.
    pub username: Option<Box<str>>,
    /// The listener of its last connection.
    pub listener: u16,
    /// Seconds it outlives its connection: 0 ends it at disconnect, `NEVER` keeps it.
    pub expiry_interval: u32,
    /// While away: when it expires (`Millis::MAX`: not set).
    pub expires_at: Millis,
    /// Distinguishes this session from earlier ones in the same slot (for timers).
    pub serial: u32,
    /// The last packet identifier used towards the client; kept while no message is in
    /// flight, so that identifiers go on increasing as clients expect of mosquitto.
    pub last_pid: u16,
}

impl Session {
    /// A packet identifier not in use by any in-flight message [MQTT-2.3.1-2]. The caller keeps
    /// fewer than 65,535 messages in flight, so one is always free.
    pub fn next_pid(&mut self) -> u16 {
        loop {
            self.last_pid = self.last_pid.checked_add(1).unwrap_or(1);
            let pid = self.last_pid;
            if !self.flow.inflight.iter().any(|f| f.pid == pid) {
                return pid;
            }
        }
    }

    /// Removes the in-flight message `pid` waiting for `ack`; false if there is none.
    pub fn complete(&mut self, pid: u16, ack: Ack) -> bool {
        let done = self.flow.get_mut().is_some_and(|f| f.complete(pid, ack));
        self.flow.trim();
        done
    }

    /// PUBREL: forgets an incoming QoS 2 `pid`; false if it was not known.
    pub fn release_incoming(&mut self, pid: u16) -> bool {
        let known = self.flow.get_mut().is_some_and(|f| f.release_incoming(pid));
        self.flow.trim();
        known
    }

    pub fn new(client_id: impl Into<ShortStr>) -> Session {
        Session {
            client_id: client_id.into(),
            clean: true,
            conn: Key::NONE,
            subs: Lazy::default(),
            flow: Lazy::default(),
            username: None,
            listener: 0,
            expiry_interval: 0,
            expires_at: Millis::MAX,
            serial: 0,
            last_pid: 0,
        }
    }
}

impl Flow {
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
