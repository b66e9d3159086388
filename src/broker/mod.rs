//! The broker core: sessions, routing, retained messages, QoS flows, keepalive and wills.
//!
//! It performs no IO and reads no clock. The network layer calls, in this order:
//! 1. [`Broker::open`] when a connection is accepted;
//! 2. [`Broker::received`] with the bytes read, which returns how many it consumed (a partial
//!    packet is left for the caller to keep and hand back with the next bytes);
//! 3. [`Broker::take_dirty`] after a batch of events, then for each connection named
//!    [`Broker::output`] / [`Broker::written`] to write what is pending, and
//!    [`Broker::is_closed`] to learn whether to close the socket;
//! 4. [`Broker::lost`] when the socket reports end of file or an error;
//! 5. [`Broker::release`] once the socket is gone, which frees the connection's slot;
//! 6. [`Broker::tick`] whenever [`Broker::next_deadline`] has passed.
//!
//! Time is milliseconds on a monotonic clock chosen by the caller.

mod ids;
mod retain;
mod session;
mod subs;
mod sys;
mod table;
mod trie;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::rc::Rc;

use log::{debug, info, warn};
use slab::Slab;

use crate::auth::acl::{Access, Acl};
use crate::auth::password::PasswordFile;
use crate::mqtt::props::Properties;
use crate::mqtt::{self, connack, Packet, QoS, Status, SubOptions, Version};
pub use retain::Retained;
use session::{Ack, Blank, Inflight, Lazy, Queued, Session, NEVER};
pub use subs::{SubEntry, Subscriptions};

/// Index of a connection, chosen by the network layer (its slab key).
pub type ConnId = usize;
/// Index of a session in the broker's slab.
pub type SessionId = usize;
/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

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

/// Output queued for one connection beyond which no further queued message is encoded until
/// the socket has taken some: a subscriber that cannot keep up holds its backlog in its bounded
/// message queue, not in an ever-growing byte buffer.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// Longest a publisher is paused because a subscriber's queue is full. Past it, messages for
/// full queues are dropped (as mosquitto does) for `THROTTLE_MAX_MS` before pausing again,
/// so two clients that fill each other's queues cannot stall each other for good.
const THROTTLE_MAX_MS: Millis = 2_000;

/// Largest CONNECT a client can need (protocol name, flags and five 65,535-byte fields), and so
/// the most a connection that has not yet been accepted may make the broker buffer.
pub const MAX_CONNECT_LEN: usize = 5 + 8 + 4 + 5 * (2 + 65_535);

/// What a listener lets its clients do: authentication and limits that mosquitto.conf sets
/// per listener (or globally, copied to each).
#[derive(Debug, Clone)]
pub struct ListenerPolicy {
    pub port: u16,
    pub allow_anonymous: bool,
    pub allow_zero_length_clientid: bool,
    pub auto_id_prefix: String,
    pub use_username_as_clientid: bool,
    /// Highest QoS granted to subscriptions and accepted on PUBLISH.
    pub max_qos: QoS,
    /// Topic aliases an MQTT 5 client may set up (0: none).
    pub max_topic_alias: u16,
    /// Prefixed to every topic of this listener's clients, and stripped on the way out.
    pub mount_point: Option<String>,
    /// Connections this listener accepts at once; `None`: no limit.
    pub max_connections: Option<usize>,
    pub passwords: Option<Rc<PasswordFile>>,
    pub acl: Option<Rc<Acl>>,
}

impl Default for ListenerPolicy {
    fn default() -> Self {
        ListenerPolicy {
            port: 1883,
            allow_anonymous: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            use_username_as_clientid: false,
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            mount_point: None,
            max_connections: None,
            passwords: None,
            acl: None,
        }
    }
}

/// The broker's settings (mosquitto.conf's, filled by the config module).
#[derive(Debug, Clone)]
pub struct Config {
    /// One per listener, by the index the network layer passes to [`Broker::open`].
    pub listeners: Vec<ListenerPolicy>,
    /// Only client ids starting with this are accepted.
    pub clientid_prefixes: Option<String>,
    /// Unacknowledged outgoing QoS 1/2 messages per client; 0 means no limit (65,535 at most,
    /// the number of packet identifiers).
    pub max_inflight_messages: usize,
    /// Payload bytes of unacknowledged outgoing messages per client; 0 means no limit. One
    /// message is always allowed.
    pub max_inflight_bytes: usize,
    /// Messages queued per client beyond those in flight; 0 means no limit.
    pub max_queued_messages: usize,
    /// Payload bytes queued per client; 0 means no limit.
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages for persistent clients that are away.
    pub queue_qos0_messages: bool,
    /// Largest PUBLISH payload accepted; 0 means no limit. A larger one is dropped.
    pub message_size_limit: usize,
    /// Largest packet accepted from a client, all of it; 0 means no limit. A larger one closes
    /// the connection.
    pub max_packet_size: usize,
    /// When false, a PUBLISH with RETAIN set is a protocol error.
    pub retain_available: bool,
    /// Deliver at the subscription's QoS even when the message's is lower.
    pub upgrade_outgoing_qos: bool,
    /// Check that the publisher of a retained message may still write its topic before
    /// delivering it to a new subscriber.
    pub check_retain_source: bool,
    /// mosquitto 2.0 applies max_keepalive to MQTT 5 clients only; kept for that.
    pub max_keepalive: u16,
    /// How long a connection may take to send its CONNECT.
    pub connect_timeout_ms: Millis,
    /// Seconds a persistent session of an MQTT 3.1/3.1.1 client outlives its connection
    /// (`persistent_client_expiration`); `None`: forever.
    pub persistent_client_expiration: Option<u32>,
    /// Send topic aliases to MQTT 5 clients that accept them.
    pub topic_alias_to_clients: bool,
    /// Log connections and disconnections.
    pub connection_messages: bool,
    /// Seconds between `$SYS` updates; 0: none.
    pub sys_interval: u32,
    /// Seed for assigned client identifiers.
    pub id_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerPolicy::default()],
            clientid_prefixes: None,
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            message_size_limit: 0,
            max_packet_size: 0,
            retain_available: true,
            upgrade_outgoing_qos: false,
            check_retain_source: true,
            max_keepalive: 65_535,
            connect_timeout_ms: 20_000,
            persistent_client_expiration: None,
            topic_alias_to_clients: true,
            connection_messages: true,
            sys_interval: 0,
            id_seed: 0x5eed,
        }
    }
}

/// MQTT 5 reason codes the broker sends.
pub mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    pub const MALFORMED_PACKET: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const PACKET_IDENTIFIER_NOT_FOUND: u8 = 0x92;
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnect,
    Connected,
    Closed,
}

/// What an MQTT 5 client told the broker about itself, and its topic aliases.
#[derive(Default)]
struct V5Conn {
    /// The client's Receive Maximum: outgoing QoS 1/2 in flight at most.
    receive_max: u16,
    /// The client's Maximum Packet Size (0: none).
    max_packet: u32,
    /// Topic aliases the broker may use towards the client.
    alias_max_out: u16,
    aliases_out: HashMap<Box<str>, u16>,
    /// Aliases the client set up, by alias - 1.
    aliases_in: Vec<Option<Box<str>>>,
}

/// A connection, kept small: an idle client costs this, its session and its socket. What only
/// some connections need for some of the time is in `extra`.
struct Conn {
    /// Distinguishes this connection from earlier ones that used the same slot.
    serial: u64,
    session: Option<SessionId>,
    /// When the last complete packet arrived; before CONNECT, when the connection was opened
    /// (CONNECT is the first complete packet).
    last_rx: Millis,
    out: Vec<u8>,
    /// Due time of this connection's one live entry in the timer heap (`Millis::MAX`: none).
    timer_at: Millis,
    v5: Option<Box<V5Conn>>,
    extra: Lazy<ConnExtra>,
    out_pos: usize,
    /// Index into `Config::listeners`.
    listener: u16,
    keep_alive: u16,
    state: State,
    version: Version,
    dirty: bool,
}

/// The parts of a connection that are usually absent: allocated while present.
#[derive(Default)]
struct ConnExtra {
    /// The peer's address, until CONNECT has been logged.
    peer: Option<Box<str>>,
    will: Option<Msg>,
    /// MQTT 5 Will Delay Interval, seconds.
    will_delay: u32,
    /// Paused (no more packets handled) until a full subscriber queue drains, or this time.
    throttled_until: Option<Millis>,
    /// After a pause ran out: not paused again before this time (0: no such time).
    no_throttle_until: Millis,
}

impl Blank for ConnExtra {
    const BLANK: &'static Self = &ConnExtra {
        peer: None,
        will: None,
        will_delay: 0,
        throttled_until: None,
        no_throttle_until: 0,
    };
    fn is_blank(&self) -> bool {
        self.peer.is_none()
            && self.will.is_none()
            && self.throttled_until.is_none()
            && self.no_throttle_until == 0
    }
}

impl Conn {
    /// Frees `extra` once nothing in it matters any more.
    fn trim(&mut self, now: Millis) {
        if let Some(e) = self.extra.get_mut() {
            if e.no_throttle_until <= now {
                e.no_throttle_until = 0;
            }
        }
        self.extra.trim();
    }
}

/// Why a connection ends; decides the log line, the MQTT 5 DISCONNECT reason code and whether
/// the will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client sent DISCONNECT: the will is discarded [MQTT-3.1.2-10] (unless MQTT 5
    /// reason 0x04 asked for it).
    Disconnect,
    /// The client closed the socket without DISCONNECT.
    Eof,
    /// The socket failed.
    SocketError,
    /// Nothing heard for 1.5 × keepalive [MQTT-3.1.2-24], or no CONNECT in time.
    Timeout,
    /// The client broke the protocol; the MQTT 5 reason code to send.
    Protocol(u8),
    /// Another connection took over the client id [MQTT-3.1.4-2].
    Takeover,
    /// CONNECT was refused with a CONNACK return code.
    Refused,
    /// The broker is shutting down.
    Shutdown,
}

/// A shared subscription group, `$share/GROUP/FILTER` (MQTT 5 section 4.8.2): each message
/// matching FILTER goes to one member of GROUP.
struct Share {
    group: Box<str>,
    filter: Box<str>,
    members: usize,
    /// Round-robin position.
    next: usize,
}

/// Splits `$share/GROUP/FILTER`: `None` for an ordinary filter, `Some(None)` for a malformed
/// shared one [MQTT-4.8.2-1] [MQTT-4.8.2-2].
fn split_share(f: &str) -> Option<Option<(&str, &str)>> {
    let rest = f.strip_prefix("$share/")?;
    Some(match rest.split_once('/') {
        Some((g, filter)) if !g.is_empty() && !filter.is_empty() && !g.contains(['+', '#']) => {
            Some((g, filter))
        }
        _ => None,
    })
}

/// Counters for logs and $SYS.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// PUBLISH packets received from clients and sent to them; messages dropped.
    pub msgs_received: u64,
    pub msgs_sent: u64,
    pub msgs_dropped: u64,
    pub connections_total: u64,
    /// All packets and bytes, both ways.
    pub pkts_received: u64,
    pub pkts_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_bytes_received: u64,
    pub publish_bytes_sent: u64,
    /// Sessions removed because they expired.
    pub expired: u64,
    /// Most clients connected at once.
    pub max_connected: u64,
    /// Changes worth saving: retained messages set, subscriptions made or removed, messages
    /// queued for sessions.
    pub changes: u64,
}

pub struct Broker {
    cfg: Config,
    conns: Vec<Option<Conn>>,
    sessions: Slab<Session>,
    by_id: ids::IdIndex,
    subs: Subscriptions,
    retained: Retained,
    /// Connection timers (keepalive, CONNECT timeout): (due, connection, serial).
    /// 16 bytes an entry: connection slots and serials fit in 32 bits (a serial only has to
    /// tell this connection from the slot's previous ones).
    timers: BinaryHeap<Reverse<(Millis, u32, u32)>>,
    /// Session timers (expiry, delayed wills): (due, session, serial).
    session_timers: BinaryHeap<Reverse<(Millis, SessionId, u32)>>,
    dirty: Vec<ConnId>,
    serial: u64,
    rng: u64,
    max_packet: usize,
    /// Open connections per listener.
    per_listener: Vec<usize>,
    /// The time of the call being handled.
    now: Millis,
    /// The connection whose PUBLISH is being routed (for backpressure).
    publishing: Option<ConnId>,
    /// Paused connections that may be read again.
    resumed: Vec<ConnId>,
    sys: sys::SysState,
    shares: Slab<Share>,
    share_ids: HashMap<(Box<str>, Box<str>), usize>,
    scratch_shared: Vec<SubEntry>,
    /// The process's memory (current, maximum) in bytes, filled in by the caller for `$SYS`.
    pub heap: (u64, u64),
    scratch_matches: Vec<SubEntry>,
    scratch_stack: Vec<(usize, usize)>,
    scratch_props: Vec<u8>,
    pub stats: Stats,
}

impl Broker {
    pub fn new(cfg: Config) -> Broker {
        let mut max_packet = if cfg.message_size_limit > 0 {
            // The payload limit, plus room for the largest topic, packet id, properties and
            // fixed header.
            cfg.message_size_limit
                .saturating_add(2 + 65_535 + 2 + 5 + 65_536)
                .min(mqtt::MAX_REMAINING_LENGTH + 5)
        } else {
            mqtt::MAX_REMAINING_LENGTH + 5
        };
        if cfg.max_packet_size > 0 {
            max_packet = max_packet.min(cfg.max_packet_size);
        }
        let per_listener = vec![0; cfg.listeners.len()];
        let rng = cfg.id_seed;
        Broker {
            cfg,
            conns: Vec::new(),
            sessions: Slab::new(),
            by_id: ids::IdIndex::new(),
            subs: Subscriptions::default(),
            retained: Retained::default(),
            timers: BinaryHeap::new(),
            session_timers: BinaryHeap::new(),
            dirty: Vec::new(),
            serial: 0,
            rng,
            max_packet,
            per_listener,
            now: 0,
            publishing: None,
            resumed: Vec::new(),
            sys: sys::SysState::default(),
            shares: Slab::new(),
            share_ids: HashMap::new(),
            scratch_shared: Vec::new(),
            heap: (0, 0),
            scratch_matches: Vec::new(),
            scratch_stack: Vec::new(),
            scratch_props: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces the listener policies (SIGHUP: re-read password and ACL files). Connected
    /// clients stay; the new rules apply to their next operation. A list of the wrong length
    /// (a configuration with other listeners) is refused.
    pub fn set_policies(&mut self, policies: Vec<ListenerPolicy>) {
        if policies.len() == self.cfg.listeners.len() {
            self.cfg.listeners = policies;
        } else {
            warn!("Reload ignored: the listeners changed; restart midge to apply them.");
        }
    }

    // ----- the network layer's interface ---------------------------------------------------

    /// A connection was accepted from `peer` ("127.0.0.1:50000") on listener number
    /// `listener` (an index into `Config::listeners`). One over the listener's
    /// `max_connections` is closed at once.
    pub fn open(&mut self, id: ConnId, peer: &str, listener: usize, now: Millis) {
        self.now = now;
        if self.conns.len() <= id {
            self.conns.resize_with(id + 1, || None);
        }
        let listener = listener.min(self.cfg.listeners.len().saturating_sub(1));
        self.serial += 1;
        self.stats.connections_total += 1;
        let policy = &self.cfg.listeners[listener];
        let over = policy
            .max_connections
            .is_some_and(|max| self.per_listener[listener] >= max);
        if over {
            info!(
                "Client connection from {peer} denied: max_connections exceeded on port {}.",
                policy.port
            );
        } else if self.cfg.connection_messages {
            info!("New connection from {peer} on port {}.", policy.port);
        }
        self.per_listener[listener] += 1;
        let mut extra = Lazy::<ConnExtra>::default();
        extra.peer = Some(peer.into());
        self.conns[id] = Some(Conn {
            serial: self.serial,
            listener: listener as u16,
            state: State::AwaitConnect,
            version: Version::V311,
            session: None,
            keep_alive: 0,
            last_rx: now,
            out: Vec::new(),
            out_pos: 0,
            dirty: false,
            timer_at: Millis::MAX,
            v5: None,
            extra,
        });
        if over {
            if let Some(c) = self.live(id) {
                c.state = State::Closed;
            }
            self.mark(id);
            return;
        }
        self.arm(id, now + self.cfg.connect_timeout_ms);
    }

    /// Makes sure the connection's timer fires no later than `at`. Each connection has one live
    /// heap entry (the one due at `timer_at`); others left behind are skipped when they pop.
    fn arm(&mut self, id: ConnId, at: Millis) {
        if let Some(Some(c)) = self.conns.get_mut(id) {
            if at < c.timer_at {
                c.timer_at = at;
                self.timers.push(Reverse((at, id as u32, c.serial as u32)));
            }
        }
    }

    /// Handles the bytes read from connection `id`, packet by packet. Returns how many were
    /// consumed: the rest is an incomplete packet that the caller keeps and passes again, with
    /// what follows it, next time. Once the connection is closed every byte is consumed.
    pub fn received(&mut self, id: ConnId, data: &[u8], now: Millis) -> usize {
        self.now = now;
        let mut pos = 0;
        let max_packet = self.max_packet;
        loop {
            let Some(conn) = self.live(id) else {
                return data.len();
            };
            if conn.extra.throttled_until.is_some() {
                // Paused: the rest waits with the caller until `take_resumed` names us.
                return pos;
            }
            let max = if conn.state == State::AwaitConnect {
                max_packet.min(MAX_CONNECT_LEN)
            } else {
                max_packet
            };
            match mqtt::decode(&data[pos..], conn.version, max) {
                Ok(Status::Complete(p, n)) => {
                    pos += n;
                    conn.last_rx = now;
                    self.stats.pkts_received += 1;
                    self.stats.bytes_received += n as u64;
                    if let Packet::Publish(pb) = &p {
                        self.stats.publish_bytes_received += pb.payload.len() as u64;
                    }
                    self.handle(id, p, now);
                }
                Ok(Status::Partial) => return pos,
                Err(e) => {
                    self.decode_error(id, e, &data[pos..], now);
                    return data.len();
                }
            }
        }
    }

    /// The socket of `id` reached end of file (`error` false) or failed.
    pub fn lost(&mut self, id: ConnId, error: bool, now: Millis) {
        self.now = now;
        if self.live(id).is_some() {
            let why = if error {
                Close::SocketError
            } else {
                Close::Eof
            };
            self.close(id, why, now);
        }
    }

    /// Bytes waiting to be written to `id`.
    pub fn output(&self, id: ConnId) -> &[u8] {
        match self.conns.get(id) {
            Some(Some(c)) => &c.out[c.out_pos..],
            _ => &[],
        }
    }

    /// `n` bytes of [`Broker::output`] were written. Frees the buffer once it is empty and refills
    /// it from the client's queue.
    pub fn written(&mut self, id: ConnId, n: usize, now: Millis) {
        self.now = now;
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        c.out_pos = (c.out_pos + n).min(c.out.len());
        self.stats.bytes_sent += n as u64;
        if c.out_pos == c.out.len() {
            // Idle connections hold no output buffer.
            c.out = Vec::new();
            c.out_pos = 0;
        } else if c.out_pos >= OUT_HIGH_WATER {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
        if c.state == State::Connected {
            if let Some(sid) = c.session {
                self.pump(sid);
                // Everything sent: a session with nothing queued or in flight gives its
                // message state back (here, once per drained batch, not per message).
                if let (Some(s), Some(Some(c))) = (self.sessions.get_mut(sid), self.conns.get(id)) {
                    if c.out.is_empty() {
                        s.flow.trim();
                    }
                }
            }
        }
    }

    /// Whether the broker has closed `id`: the caller writes what output it can, closes the
    /// socket and calls [`Broker::release`].
    pub fn is_closed(&self, id: ConnId) -> bool {
        !matches!(self.conns.get(id), Some(Some(c)) if c.state != State::Closed)
    }

    /// The socket of `id` is gone; its slot may be reused by the next [`Broker::open`].
    pub fn release(&mut self, id: ConnId) {
        if self.live(id).is_some() {
            // The caller dropped a live connection: treat it as a socket error.
            let now = self.now;
            self.close(id, Close::SocketError, now);
        }
        if let Some(c) = self.conns.get_mut(id).and_then(Option::take) {
            if let Some(n) = self.per_listener.get_mut(c.listener as usize) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Closes every connection (MQTT 5 clients are told the server is shutting down).
    pub fn shutdown(&mut self, now: Millis) {
        self.now = now;
        for id in 0..self.conns.len() {
            if self.live(id).is_some() {
                self.close(id, Close::Shutdown, now);
            }
        }
    }

    /// Moves the connections with new output or a new close into `into` (cleared first).
    pub fn take_dirty(&mut self, into: &mut Vec<ConnId>) {
        into.clear();
        std::mem::swap(into, &mut self.dirty);
        for &id in into.iter() {
            if let Some(Some(c)) = self.conns.get_mut(id) {
                c.dirty = false;
            }
        }
    }

    /// The earliest time at which [`Broker::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        let a = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let b = self.session_timers.peek().map(|Reverse((t, _, _))| *t);
        a.into_iter().chain(b).chain(self.sys_due()).min()
    }

    /// Runs every timer due at `now`: keepalive expiry, CONNECT timeouts, session expiry and
    /// delayed wills.
    pub fn tick(&mut self, now: Millis) {
        self.now = now;
        self.sys_tick(now);
        while let Some(&Reverse((due, id, serial))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let id = id as ConnId;
            let Some(Some(c)) = self.conns.get_mut(id) else {
                continue;
            };
            if c.serial as u32 != serial || c.timer_at != due {
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
                State::Connected if c.keep_alive > 0 => c.last_rx + c.keep_alive as u64 * 1500,
                _ => continue,
            };
            if deadline > now {
                self.arm(id, deadline);
            } else {
                self.close(id, Close::Timeout, now);
            }
        }
        while let Some(&Reverse((due, sid, serial))) = self.session_timers.peek() {
            if due > now {
                break;
            }
            self.session_timers.pop();
            let Some(s) = self.sessions.get_mut(sid) else {
                continue;
            };
            if s.serial != serial || s.conn.is_some() {
                continue;
            }
            if let Some((at, _)) = &s.flow.pending_will {
                if *at <= now {
                    if let Some((_, w)) = s.flow.pending_will.take() {
                        debug!("Sending delayed will of {} to '{}'.", s.client_id, w.topic);
                        self.publish(w, None);
                    }
                }
            }
            let s = &self.sessions[sid];
            if s.expires_at.is_some_and(|t| t <= now) {
                info!("Client {} expired.", s.client_id);
                self.stats.expired += 1;
                self.end_session(sid);
            }
        }
    }

    // ----- queries, for tests and $SYS -------------------------------------------------------

    pub fn connection_count(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|c| c.state == State::Connected)
            .count()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn retained(&self) -> &Retained {
        &self.retained
    }

    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subs
    }

    /// (queued, in flight) message counts of a client's session.
    pub fn session_queue(&self, client_id: &str) -> Option<(usize, usize)> {
        let s = &self.sessions[self.by_id.get(client_id, &self.sessions)?];
        Some((s.flow.queue.len(), s.flow.inflight.len()))
    }

    // ----- internals ------------------------------------------------------------------------

    fn live(&mut self, id: ConnId) -> Option<&mut Conn> {
        match self.conns.get_mut(id) {
            Some(Some(c)) if c.state != State::Closed => Some(c),
            _ => None,
        }
    }

    fn client_name(&self, id: ConnId) -> &str {
        match self.conns.get(id) {
            Some(Some(Conn {
                session: Some(sid), ..
            })) => &self.sessions[*sid].client_id,
            _ => "<unknown>",
        }
    }

    fn is_v5(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id), Some(Some(c)) if c.version == Version::V5)
    }

    fn mark(&mut self, id: ConnId) {
        if let Some(Some(c)) = self.conns.get_mut(id) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// The output buffer of `id`, marked for writing (one packet is about to be written).
    fn out(&mut self, id: ConnId) -> Option<&mut Vec<u8>> {
        self.mark(id);
        self.stats.pkts_sent += 1;
        match self.conns.get_mut(id) {
            Some(Some(c)) if c.state != State::Closed => Some(&mut c.out),
            _ => None,
        }
    }

    fn decode_error(&mut self, id: ConnId, e: mqtt::Error, bytes: &[u8], now: Millis) {
        let connected = self.live(id).is_some_and(|c| c.state == State::Connected);
        let code = match e {
            mqtt::Error::Malformed(_) => reason::MALFORMED_PACKET,
            mqtt::Error::Protocol(_) => reason::PROTOCOL_ERROR,
            mqtt::Error::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            // A second CONNECT is a Protocol Error whatever its version [MQTT-3.1.0-2].
            mqtt::Error::UnsupportedVersion(_) if connected => reason::PROTOCOL_ERROR,
            mqtt::Error::UnsupportedVersion(_) => reason::UNSUPPORTED_PROTOCOL_VERSION,
        };
        if let mqtt::Error::UnsupportedVersion(level) = e {
            if !connected {
                info!(
                    "Client <unknown> disconnected: unsupported protocol version {level} [MQTT-3.1.2-2]."
                );
                if let Some(out) = self.out(id) {
                    mqtt::encode_connack(out, false, connack::UNACCEPTABLE_PROTOCOL_VERSION);
                }
                return self.close(id, Close::Refused, now);
            }
        }
        info!(
            "Client {} disconnected due to protocol error: {e}.",
            self.client_name(id)
        );
        if !connected && connect_is_v5(bytes) {
            // A broken MQTT 5 CONNECT is answered with a CONNACK carrying the reason.
            if let Some(out) = self.out(id) {
                mqtt::encode_connack_v5(out, false, code, &Properties::default());
            }
            return self.close(id, Close::Refused, now);
        }
        self.close(id, Close::Protocol(code), now);
    }

    fn protocol_error(&mut self, id: ConnId, code: u8, why: &str, now: Millis) {
        info!(
            "Client {} disconnected due to protocol error: {why}.",
            self.client_name(id)
        );
        self.close(id, Close::Protocol(code), now);
    }

    fn handle(&mut self, id: ConnId, p: Packet<'_>, now: Millis) {
        let Some(conn) = self.live(id) else {
            return;
        };
        if conn.state == State::AwaitConnect {
            return match p {
                Packet::Connect(c) => self.on_connect(id, c, now),
                // [MQTT-3.1.0-1]
                other => self.protocol_error(
                    id,
                    reason::PROTOCOL_ERROR,
                    &format!(
                        "[MQTT-3.1.0-1] first packet was {}, not CONNECT",
                        other.name()
                    ),
                    now,
                ),
            };
        }
        let Some(sid) = conn.session else {
            return;
        };
        let v5 = conn.version == Version::V5;
        match p {
            Packet::Publish(p) => self.on_publish(id, sid, p, now),
            Packet::Puback(a) => self.on_ack(sid, a.pid, Ack::Puback),
            Packet::Pubrec(a) => {
                let known = match self.sessions[sid]
                    .flow
                    .get_mut()
                    .and_then(|f| f.inflight_mut(a.pid, Ack::Pubrec))
                {
                    Some(f) if a.reason < 0x80 => {
                        f.state = Ack::Pubcomp;
                        true
                    }
                    Some(_) => {
                        // MQTT 5: a PUBREC with an error ends the exchange [MQTT-4.3.3-?].
                        self.sessions[sid].complete(a.pid, Ack::Pubrec);
                        self.pump(sid);
                        return;
                    }
                    None => false,
                };
                if let Some(out) = self.out(id) {
                    if v5 && !known {
                        mqtt::encode_ack_v5(
                            out,
                            mqtt::PUBREL,
                            a.pid,
                            reason::PACKET_IDENTIFIER_NOT_FOUND,
                            &Properties::default(),
                        );
                    } else {
                        mqtt::encode_ack(out, mqtt::PUBREL, a.pid);
                    }
                }
            }
            Packet::Pubcomp(a) => self.on_ack(sid, a.pid, Ack::Pubcomp),
            Packet::Pubrel(a) => {
                let known = self.sessions[sid].release_incoming(a.pid);
                if let Some(out) = self.out(id) {
                    if v5 && !known {
                        mqtt::encode_ack_v5(
                            out,
                            mqtt::PUBCOMP,
                            a.pid,
                            reason::PACKET_IDENTIFIER_NOT_FOUND,
                            &Properties::default(),
                        );
                    } else {
                        mqtt::encode_ack(out, mqtt::PUBCOMP, a.pid);
                    }
                }
            }
            Packet::Subscribe {
                pid,
                filters,
                props,
            } => self.on_subscribe(id, sid, pid, &filters, &props),
            Packet::Unsubscribe { pid, filters, .. } => {
                let listener = self.sessions[sid].listener as usize;
                let mount = self.cfg.listeners[listener].mount_point.clone();
                let mut codes = Vec::with_capacity(filters.len());
                for f in &filters {
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
            }
            Packet::Pingreq => {
                if let Some(out) = self.out(id) {
                    Packet::Pingresp.encode(out);
                }
            }
            Packet::Disconnect { reason: r, props } => self.on_disconnect(id, sid, r, &props, now),
            // [MQTT-3.1.0-2]
            Packet::Connect(_) => self.protocol_error(
                id,
                reason::PROTOCOL_ERROR,
                "[MQTT-3.1.0-2] second CONNECT",
                now,
            ),
            other => self.protocol_error(
                id,
                reason::PROTOCOL_ERROR,
                &format!("{} is not sent by clients", other.name()),
                now,
            ),
        }
    }

    fn on_disconnect(
        &mut self,
        id: ConnId,
        sid: SessionId,
        code: u8,
        props: &Properties<'_>,
        now: Millis,
    ) {
        if let Some(interval) = props.session_expiry_interval {
            let s = &mut self.sessions[sid];
            // [MQTT-3.14.2-2]: a session that was to end at disconnect cannot be extended.
            if s.expiry_interval == 0 && interval != 0 {
                return self.protocol_error(
                    id,
                    reason::PROTOCOL_ERROR,
                    "[MQTT-3.14.2-2] DISCONNECT raised a session expiry interval of 0",
                    now,
                );
            }
            s.expiry_interval = interval;
        }
        if code == reason::DISCONNECT_WITH_WILL {
            // The will is published as if the connection had been lost.
            self.close(id, Close::Eof, now);
        } else {
            self.close(id, Close::Disconnect, now);
        }
    }

    fn assign_id(&mut self, listener: usize) -> String {
        let x = &mut self.rng;
        let mut next = || {
            *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{}{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
            self.cfg.listeners[listener].auto_id_prefix,
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// Refuses a CONNECT: CONNACK with the 3.1.1 `code`, or `code5` for MQTT 5, then close.
    fn refuse(&mut self, id: ConnId, code: u8, code5: u8, why: &str, now: Millis) {
        info!("Client <unknown> disconnected, {why}.");
        let v5 = self.is_v5(id);
        if let Some(out) = self.out(id) {
            if v5 {
                mqtt::encode_connack_v5(out, false, code5, &Properties::default());
            } else {
                mqtt::encode_connack(out, false, code);
            }
        }
        self.close(id, Close::Refused, now);
    }

    fn on_connect(&mut self, id: ConnId, c: mqtt::Connect<'_>, now: Millis) {
        let Some(conn) = self.live(id) else {
            return;
        };
        conn.version = c.version;
        let v5 = c.version == Version::V5;
        let listener = conn.listener as usize;
        if c.props.authentication_data.is_some() && c.props.authentication_method.is_none() {
            // MQTT 5 section 3.1.2.11.10.
            return self.refuse(
                id,
                connack::NOT_AUTHORIZED,
                reason::PROTOCOL_ERROR,
                "Authentication Data without Authentication Method",
                now,
            );
        }
        if let Some(w) = &c.will {
            // [MQTT-3.2.2-12] [MQTT-3.2.2-13]: a will the server could not publish as asked is
            // refused at CONNECT (MQTT 5 says why; 3.1.1 has no code for it, as in mosquitto).
            let policy = &self.cfg.listeners[listener];
            let refusal = if w.qos > policy.max_qos {
                Some((
                    reason::QOS_NOT_SUPPORTED,
                    "will QoS over max_qos [MQTT-3.2.2-12]",
                ))
            } else if w.retain && !self.cfg.retain_available {
                Some((
                    reason::RETAIN_NOT_SUPPORTED,
                    "retained will while retain_available is false [MQTT-3.2.2-13]",
                ))
            } else {
                None
            };
            if let Some((code5, why)) = refusal {
                info!("Client <unknown> disconnected: {why}.");
                if v5 {
                    if let Some(out) = self.out(id) {
                        mqtt::encode_connack_v5(out, false, code5, &Properties::default());
                    }
                }
                return self.close(id, Close::Refused, now);
            }
        }
        if c.props.authentication_method.is_some() {
            // Enhanced authentication is not offered.
            return self.refuse(
                id,
                connack::NOT_AUTHORIZED,
                reason::BAD_AUTHENTICATION_METHOD,
                "unsupported authentication method",
                now,
            );
        }
        let policy = &self.cfg.listeners[listener];
        let mut client_id: String = if c.client_id.is_empty() {
            // [MQTT-3.1.3-8]: in 3.1.1 an empty id needs a clean session (and MQTT 3.1 allows
            // none); MQTT 5 allows it either way [MQTT-3.1.3-6].
            if c.version == Version::V31
                || (!c.clean_session && !v5)
                || !policy.allow_zero_length_clientid
            {
                return self.refuse(
                    id,
                    connack::IDENTIFIER_REJECTED,
                    reason::CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id not allowed [MQTT-3.1.3-8]",
                    now,
                );
            }
            String::new()
        } else {
            c.client_id.to_owned()
        };
        if policy.use_username_as_clientid {
            match c.username {
                Some(u) => client_id = u.to_owned(),
                None => {
                    return self.refuse(
                        id,
                        connack::NOT_AUTHORIZED,
                        reason::NOT_AUTHORIZED,
                        "not authorised (use_username_as_clientid needs a user name)",
                        now,
                    )
                }
            }
        }
        if let Some(prefix) = &self.cfg.clientid_prefixes {
            if !client_id.starts_with(prefix.as_str()) && !client_id.is_empty() {
                return self.refuse(
                    id,
                    connack::IDENTIFIER_REJECTED,
                    reason::CLIENT_IDENTIFIER_NOT_VALID,
                    "client id lacks the required clientid_prefixes",
                    now,
                );
            }
        }
        // Authentication, as mosquitto 2.0: a user name is checked against the password file
        // if there is one; without one, a client is admitted only when anonymous access is on.
        let policy = &self.cfg.listeners[listener];
        let (admitted, code5) = match (c.username, &policy.passwords) {
            // A user name without a password is refused, as in mosquitto.
            (Some(u), Some(pw)) => (
                c.password.is_some_and(|p| pw.check(u, p)),
                reason::BAD_USER_NAME_OR_PASSWORD,
            ),
            _ => (policy.allow_anonymous, reason::NOT_AUTHORIZED),
        };
        if !admitted {
            return self.refuse(id, connack::NOT_AUTHORIZED, code5, "not authorised", now);
        }
        let assigned = client_id.is_empty();
        if assigned {
            // [MQTT-3.1.3-7]
            client_id = self.assign_id(listener);
        }

        // [MQTT-3.1.4-2]: an existing connection with this id is closed first.
        if let Some(old) = self
            .by_id
            .get(client_id.as_str(), &self.sessions)
            .and_then(|sid| self.sessions[sid].conn)
        {
            info!("Client {client_id} already connected, closing old connection.");
            self.close(old, Close::Takeover, now);
        }
        let existing = self.by_id.get(client_id.as_str(), &self.sessions);
        let (sid, present) = match existing {
            Some(sid) if !c.clean_session => (sid, true),
            other => {
                if let Some(sid) = other {
                    self.end_session(sid);
                }
                self.serial += 1;
                let mut s = Session::new(client_id.as_str().into());
                s.serial = self.serial as u32;
                let sid = self.sessions.insert(s);
                self.by_id.insert(sid, &self.sessions);
                (sid, false)
            }
        };
        let expiry_interval = if v5 {
            c.props.session_expiry_interval.unwrap_or(0)
        } else if c.clean_session {
            0
        } else {
            self.cfg.persistent_client_expiration.unwrap_or(NEVER)
        };
        let s = &mut self.sessions[sid];
        s.clean = expiry_interval == 0;
        s.expiry_interval = expiry_interval;
        s.expires_at = None;
        // A will waiting for its delay is not sent once the session is resumed [MQTT-3.1.3-9].
        if let Some(f) = s.flow.get_mut() {
            f.pending_will = None;
        }
        s.flow.trim();
        s.conn = Some(id);
        s.username = c.username.map(Into::into);
        s.listener = listener as u16;

        let policy = &self.cfg.listeners[listener];
        let mount = policy.mount_point.as_deref();
        let will = c.will.as_ref().map(|w| {
            Rc::new(Message {
                topic: mounted(mount, w.topic).into(),
                payload: w.payload.into(),
                qos: w.qos,
                retain: w.retain,
                origin: None,
                props: w.props.forwardable().into(),
                expiry: w
                    .props
                    .message_expiry_interval
                    .map(|e| now + e as Millis * 1000),
            })
        });
        let will_delay = c
            .will
            .as_ref()
            .and_then(|w| w.props.will_delay_interval)
            .unwrap_or(0);
        let max_topic_alias = policy.max_topic_alias;
        let max_qos = policy.max_qos;
        let log = self.cfg.connection_messages;
        let max_keepalive = self.cfg.max_keepalive;
        let recv_max = self.receive_maximum();
        let retain_available = self.cfg.retain_available;
        let max_packet_size = self.cfg.max_packet_size;
        let alias_to_clients = self.cfg.topic_alias_to_clients;
        let Some(conn) = self.live(id) else {
            return;
        };
        conn.state = State::Connected;
        conn.session = Some(sid);
        let peer = conn.extra.get_mut().and_then(|e| e.peer.take());
        if will.is_some() {
            conn.extra.will = will;
            conn.extra.will_delay = will_delay;
        }
        conn.trim(now);
        // MQTT 5: a keepalive over max_keepalive (or none at all) is replaced by the server's.
        let keep_alive = if v5 && (c.keep_alive > max_keepalive || c.keep_alive == 0) {
            max_keepalive
        } else {
            c.keep_alive
        };
        conn.keep_alive = keep_alive;
        if v5 {
            conn.v5 = Some(Box::new(V5Conn {
                receive_max: c.props.receive_maximum.unwrap_or(u16::MAX),
                max_packet: c.props.maximum_packet_size.unwrap_or(0),
                alias_max_out: if alias_to_clients {
                    c.props.topic_alias_maximum.unwrap_or(0)
                } else {
                    0
                },
                aliases_out: HashMap::new(),
                aliases_in: Vec::new(),
            }));
        }
        let keepalive_due = conn.last_rx + keep_alive as Millis * 1500;
        if log {
            let user = c.username.map(|u| format!(", u'{u}'")).unwrap_or_default();
            info!(
                "New client connected from {} as {client_id} (p{}, c{}, k{}{user}).",
                peer.as_deref().unwrap_or("?"),
                match c.version {
                    Version::V31 => 1,
                    Version::V311 => 2,
                    Version::V5 => 5,
                },
                c.clean_session as u8,
                c.keep_alive,
            );
        }
        if keep_alive > 0 {
            self.arm(id, keepalive_due);
        }
        if let Some(out) = self.out(id) {
            if v5 {
                let mut props = Properties {
                    assigned_client_identifier: assigned.then_some(client_id.as_str()),
                    topic_alias_maximum: Some(max_topic_alias),
                    ..Properties::default()
                };
                if recv_max != u16::MAX {
                    props.receive_maximum = Some(recv_max);
                }
                if max_qos != QoS::ExactlyOnce {
                    props.maximum_qos = Some(max_qos.as_u8());
                }
                if !retain_available {
                    props.retain_available = Some(0);
                }
                if max_packet_size > 0 {
                    props.maximum_packet_size = Some(max_packet_size as u32);
                }
                if keep_alive != c.keep_alive {
                    props.server_keep_alive = Some(keep_alive);
                }
                mqtt::encode_connack_v5(out, present, reason::SUCCESS, &props);
            } else {
                mqtt::encode_connack(out, present, connack::ACCEPTED);
            }
        }
        if present {
            self.resend_inflight(sid);
            self.pump(sid);
        }
    }

    /// The Receive Maximum the broker announces and enforces on incoming QoS 2 messages.
    fn receive_maximum(&self) -> u16 {
        match self.cfg.max_inflight_messages {
            0 => u16::MAX,
            n => n.min(u16::MAX as usize) as u16,
        }
    }

    /// On resuming a session, unacknowledged PUBLISH packets are sent again with DUP set and
    /// their original packet identifiers, and PUBRELs again for those already received
    /// [MQTT-4.4.0-1]; `pump` sends them, within the new connection's Receive Maximum
    /// [MQTT-3.3.4-9] and Maximum Packet Size [MQTT-3.1.2-25].
    fn resend_inflight(&mut self, sid: SessionId) {
        if let Some(flow) = self.sessions[sid].flow.get_mut() {
            for f in flow.inflight.iter_mut() {
                f.sent = false;
            }
        }
    }

    fn on_publish(&mut self, id: ConnId, sid: SessionId, p: mqtt::Publish<'_>, now: Millis) {
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
            return self.protocol_error(
                id,
                reason::QOS_NOT_SUPPORTED,
                &format!("PUBLISH at QoS {} over max_qos", p.qos.as_u8()),
                now,
            );
        }
        if !p.props.subscription_identifiers.is_empty() {
            return self.protocol_error(
                id,
                reason::PROTOCOL_ERROR,
                "[MQTT-3.3.4-6] PUBLISH from a client with a Subscription Identifier",
                now,
            );
        }
        if p.retain && !self.cfg.retain_available {
            return self.protocol_error(
                id,
                reason::RETAIN_NOT_SUPPORTED,
                "retained PUBLISH while retain_available is false",
                now,
            );
        }
        // MQTT 5 topic aliases from the client.
        let mut aliased: Option<Box<str>> = None;
        if let Some(alias) = p.props.topic_alias {
            let max = policy.max_topic_alias;
            if alias == 0 || alias > max {
                return self.protocol_error(
                    id,
                    reason::TOPIC_ALIAS_INVALID,
                    &format!("topic alias {alias} outside 1..={max}"),
                    now,
                );
            }
            let Some(v) = self.live(id).and_then(|c| c.v5.as_mut()) else {
                return;
            };
            let slot = alias as usize - 1;
            if v.aliases_in.len() <= slot {
                v.aliases_in.resize(slot + 1, None);
            }
            if p.topic.is_empty() {
                match &v.aliases_in[slot] {
                    Some(t) => aliased = Some(t.clone()),
                    None => {
                        return self.protocol_error(
                            id,
                            reason::PROTOCOL_ERROR,
                            &format!("unknown topic alias {alias}"),
                            now,
                        )
                    }
                }
            } else {
                v.aliases_in[slot] = Some(p.topic.into());
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
            (QoS::ExactlyOnce, Some(pid)) => {
                let s = &self.sessions[sid];
                if v5
                    && !s.flow.incoming.contains(&pid)
                    && s.flow.incoming.len() >= self.receive_maximum() as usize
                {
                    // The client sent more unacknowledged QoS 2 messages than allowed.
                    return self.protocol_error(
                        id,
                        reason::RECEIVE_MAXIMUM_EXCEEDED,
                        "receive maximum exceeded",
                        now,
                    );
                }
                if drop_why.is_none() || v5 {
                    self.sessions[sid].flow.receive_incoming(pid)
                } else {
                    true
                }
            }
            _ => true,
        };
        if fresh && drop_why.is_none() {
            let origin = (p.retain && policy.acl.is_some()).then(|| {
                let s = &self.sessions[sid];
                Box::new(Origin {
                    client_id: s.client_id.clone(),
                    username: s.username.clone(),
                    listener,
                })
            });
            let msg = Rc::new(Message {
                topic: topic.into(),
                payload: p.payload.into(),
                qos: p.qos,
                retain: p.retain,
                origin,
                props: if v5 {
                    p.props.forwardable().into()
                } else {
                    Box::default()
                },
                expiry: p
                    .props
                    .message_expiry_interval
                    .map(|e| now + e as Millis * 1000),
            });
            self.publishing = Some(id);
            let reached = self.publish(msg, Some(sid));
            self.publishing = None;
            if reached == 0 {
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
    }

    /// Whether the subscriber of session `sid` may read `topic` under its listener's ACL.
    fn may_read(&self, sid: SessionId, topic: &str) -> bool {
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
            self.stats.changes += 1;
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
            let qos = if self.cfg.upgrade_outgoing_qos {
                granted
            } else {
                msg.qos.min(granted)
            };
            reached += 1;
            self.deliver(sid, &msg, qos, rap && msg.retain, ids.into(), 0);
        }
        self.scratch_matches = matches;
        reached
    }

    /// Shared subscriptions: each group gets one copy, for one member, in turn, preferring
    /// members that are connected and whose queue has room. Returns the copies delivered.
    fn publish_shared(&mut self, msg: &Msg, shared: &mut [SubEntry]) -> usize {
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
                let qos = if self.cfg.upgrade_outgoing_qos {
                    e.opts.qos
                } else {
                    msg.qos.min(e.opts.qos)
                };
                let ids: Box<[u32]> = if e.id != 0 {
                    Box::new([e.id])
                } else {
                    Box::default()
                };
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
    fn hand_over_shared(&mut self, sid: SessionId, ending: bool) {
        let mut moving: Vec<(Msg, u32, bool, Box<[u32]>)> = Vec::new();
        if let Some(f) = self.sessions[sid].flow.get_mut() {
            let mut keep = std::collections::VecDeque::with_capacity(f.queue.len());
            for q in f.queue.drain(..) {
                if q.share != 0 {
                    f.queued_bytes -= q.msg.payload.len();
                    moving.push((q.msg, q.share, q.retain, q.sub_ids));
                } else {
                    keep.push_back(q);
                }
            }
            f.queue = keep;
            if ending {
                for m in f.inflight.iter() {
                    if m.share != 0 && m.qos == QoS::AtLeastOnce {
                        moving.push((m.msg.clone(), m.share, m.retain, m.sub_ids.clone()));
                    }
                }
            }
        }
        self.sessions[sid].flow.trim();
        for (msg, share, retain, _) in moving {
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
                    let qos = msg.qos.min(e.opts.qos);
                    let ids: Box<[u32]> = if e.id != 0 {
                        Box::new([e.id])
                    } else {
                        Box::default()
                    };
                    self.deliver(e.sid, &msg, qos, retain, ids, share);
                }
                None if !ending => {
                    // No one else: it stays with this session.
                    let s = &mut self.sessions[sid];
                    s.flow.queued_bytes += msg.payload.len();
                    s.flow.queue.push_back(Queued {
                        qos: msg.qos,
                        msg,
                        retain,
                        sub_ids: Box::default(),
                        share,
                    });
                }
                None => {}
            }
        }
    }

    /// Adds a subscription; `key` is the filter as the session knows it (`$share/GROUP/F` or
    /// `F`, mount point applied). Returns whether it replaced one, or `None` for a malformed
    /// shared filter.
    fn subscribe_key(
        &mut self,
        sid: SessionId,
        key: &str,
        opts: SubOptions,
        id: u32,
    ) -> Option<bool> {
        let (filter, share) = match split_share(key) {
            None => (key, 0),
            Some(None) => return None,
            Some(Some((group, filter))) => {
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
                (filter, idx as u32 + 1)
            }
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
            self.shares[share as usize - 1].members += 1;
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
    fn unsubscribe_key(&mut self, sid: SessionId, key: &str) -> bool {
        let existed = match split_share(key) {
            None => self.subs.remove(key, sid, 0),
            Some(None) => false,
            Some(Some((group, filter))) => {
                let k = (Box::<str>::from(group), Box::<str>::from(filter));
                match self.share_ids.get(&k).copied() {
                    None => false,
                    Some(i) => {
                        let existed = self.subs.remove(filter, sid, i as u32 + 1);
                        if existed {
                            let sh = &mut self.shares[i];
                            sh.members -= 1;
                            if sh.members == 0 {
                                let sh = self.shares.remove(i);
                                self.share_ids.remove(&(sh.group, sh.filter));
                            }
                        }
                        existed
                    }
                }
            }
        };
        if let Some(s) = self.sessions.get_mut(sid) {
            s.subs.retain(|(g, _, _)| **g != *key);
            s.subs.trim();
        }
        self.stats.changes += 1;
        existed
    }

    fn deliver(
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
                Some(p) != s.conn
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
                    if at < c.timer_at {
                        c.timer_at = at;
                        self.timers.push(Reverse((at, p as u32, c.serial as u32)));
                    }
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

    /// Moves messages from the session's queue to its connection's output while the output is
    /// below its high-water mark and, for QoS 1/2, while the in-flight window has room.
    /// Expired messages are dropped on the way; for MQTT 5 clients a message larger than their
    /// Maximum Packet Size is not sent to them [MQTT-3.1.2-25].
    fn pump(&mut self, sid: SessionId) {
        let mut max_inflight = match self.cfg.max_inflight_messages {
            0 => u16::MAX as usize,
            n => n.min(u16::MAX as usize),
        };
        let max_inflight_bytes = self.cfg.max_inflight_bytes;
        let now = self.now;
        let s = &mut self.sessions[sid];
        let Some(id) = s.conn else {
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
        let props = &mut self.scratch_props;
        let mut sent = 0;
        // In-flight messages of a resumed session not yet resent, in their original order.
        let mut window = s.flow.inflight.iter().filter(|f| f.sent).count();
        let mut i = 0;
        while i < s.flow.inflight.len() && window < max_inflight {
            if conn.out.len() - conn.out_pos >= OUT_HIGH_WATER {
                break;
            }
            let f = &mut s.flow.inflight[i];
            if f.sent {
                i += 1;
                continue;
            }
            match f.state {
                Ack::Pubcomp => mqtt::encode_ack(&mut conn.out, mqtt::PUBREL, f.pid),
                Ack::Puback | Ack::Pubrec => {
                    let topic = unmounted(mount, &f.msg.topic);
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
                    mqtt::encode_publish(
                        &mut conn.out,
                        true,
                        f.qos,
                        f.retain,
                        topic,
                        Some(f.pid),
                        v5.map(|_| &props[..]),
                        &f.msg.payload,
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
            if conn.out.len() - conn.out_pos >= OUT_HIGH_WATER {
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
            let mut topic = unmounted(mount, &q.msg.topic);
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
            mqtt::encode_publish(
                &mut conn.out,
                false,
                q.qos,
                q.retain,
                topic,
                pid,
                v5_props_ref,
                &q.msg.payload,
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
    fn resume(&mut self, who: &[(ConnId, u64)]) {
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

    fn on_ack(&mut self, sid: SessionId, pid: u16, expect: Ack) {
        if self.sessions[sid].complete(pid, expect) {
            self.pump(sid);
        } else {
            debug!(
                "Received {expect:?} from {} for an unknown packet identifier {pid}.",
                self.sessions[sid].client_id
            );
        }
    }

    fn on_subscribe(
        &mut self,
        id: ConnId,
        sid: SessionId,
        pid: u16,
        filters: &[(&str, SubOptions)],
        props: &Properties<'_>,
    ) {
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
                Some(None) => {
                    codes.push(if v5 {
                        reason::TOPIC_FILTER_INVALID
                    } else {
                        mqtt::SUBACK_FAILURE
                    });
                    continue;
                }
            };
            if shared.is_some() && requested.no_local {
                return self.protocol_error(
                    id,
                    reason::PROTOCOL_ERROR,
                    "[MQTT-3.8.3-4] No Local on a shared subscription",
                    self.now,
                );
            }
            let acl_filter = shared.unwrap_or(f);
            let allowed = policy.acl.as_ref().is_none_or(|acl| {
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
                    mqtt::SUBACK_FAILURE
                });
                continue;
            }
            info!(target: "subscribe", "{} {} {f}", s.client_id, qos.as_u8());
            let key = session_key(mount.as_deref(), f);
            let opts = SubOptions { qos, ..requested };
            // [MQTT-3.8.4-3]: the same filter replaces the existing subscription.
            let Some(existed) = self.subscribe_key(sid, &key, opts, sub_id) else {
                codes.push(mqtt::SUBACK_FAILURE);
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
                    self.deliver(sid, m, m.qos.min(*qos), true, ids.clone(), 0);
                }
            }
        }
    }

    /// `check_retain_source`: whether the publisher of retained message `m` may still write
    /// its topic.
    fn source_may_write(&self, m: &Message) -> bool {
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

    /// Ends a session: its subscriptions go, and a will still waiting for its delay is sent
    /// now (the will goes at the earlier of its delay and the session's end).
    fn end_session(&mut self, sid: SessionId) {
        self.hand_over_shared(sid, true);
        let keys: Vec<Box<str>> = self.sessions[sid]
            .subs
            .iter()
            .map(|(k, _, _)| k.clone())
            .collect();
        for k in keys {
            self.unsubscribe_key(sid, &k);
        }
        let mut s = self.sessions.remove(sid);
        self.by_id.remove(&s.client_id, sid, &self.sessions);
        if let Some((_, w)) = s.flow.get_mut().and_then(|f| f.pending_will.take()) {
            debug!("Sending will of {} to '{}'.", s.client_id, w.topic);
            self.publish(w, None);
        }
    }

    fn will_allowed(&self, listener: usize, user: Option<&str>, client: &str, topic: &str) -> bool {
        if topic.starts_with("$SYS") {
            return false;
        }
        match &self.cfg.listeners[listener].acl {
            None => true,
            Some(acl) => {
                let mount = self.cfg.listeners[listener].mount_point.as_deref();
                acl.check(user, client, unmounted(mount, topic), Access::Write)
            }
        }
    }

    /// Ends connection `id`: logs why, tells an MQTT 5 client why in a DISCONNECT, detaches (or
    /// ends) its session and publishes its will unless it sent DISCONNECT. The socket is
    /// closed by the network layer.
    pub fn close(&mut self, id: ConnId, why: Close, now: Millis) {
        self.now = now;
        let name = self.client_name(id).to_owned();
        let Some(conn) = self.live(id) else {
            return;
        };
        let was_connected = conn.state == State::Connected;
        let v5 = conn.version == Version::V5;
        if was_connected && v5 {
            let code = match why {
                Close::Protocol(c) => Some(c),
                Close::Timeout => Some(reason::KEEP_ALIVE_TIMEOUT),
                Close::Takeover => Some(reason::SESSION_TAKEN_OVER),
                Close::Shutdown => Some(0x8B),
                _ => None,
            };
            if let Some(code) = code {
                mqtt::encode_reason(
                    &mut conn.out,
                    mqtt::DISCONNECT,
                    code,
                    &Properties::default(),
                );
            }
        }
        conn.state = State::Closed;
        let (will, will_delay) = match conn.extra.get_mut() {
            Some(e) => (e.will.take(), e.will_delay),
            None => (None, 0),
        };
        let session = conn.session.take();
        let listener = conn.listener as usize;
        let username = session.and_then(|sid| self.sessions[sid].username.clone());
        match why {
            Close::Disconnect => info!("Client {name} disconnected."),
            Close::Eof => info!("Client {name} closed its connection."),
            Close::SocketError => info!("Socket error on client {name}, disconnecting."),
            Close::Timeout => info!("Client {name} has exceeded timeout, disconnecting."),
            Close::Shutdown => info!("Client {name} disconnected: server shutting down."),
            Close::Protocol(_) | Close::Takeover | Close::Refused => {}
        }
        self.mark(id);
        let will = will.filter(|w| {
            was_connected
                && why != Close::Disconnect
                && if self.will_allowed(listener, username.as_deref(), &name, &w.topic) {
                    true
                } else {
                    info!("Denied will of {name} to '{}'.", w.topic);
                    false
                }
        });
        let Some(sid) = session else {
            if let Some(w) = will {
                self.publish(w, None);
            }
            return;
        };
        let s = &mut self.sessions[sid];
        s.conn = None;
        let blockers = s
            .flow
            .get_mut()
            .map(|f| std::mem::take(&mut f.blockers))
            .unwrap_or_default();
        self.resume(&blockers);
        if s_has_shared(&self.sessions[sid]) {
            self.hand_over_shared(sid, false);
        }
        let s = &mut self.sessions[sid];
        if let Some(w) = will {
            if will_delay > 0 && s.expiry_interval > 0 {
                // MQTT 5 Will Delay: sent later, unless the session is resumed first.
                let at = now + will_delay as Millis * 1000;
                s.flow.pending_will = Some((at, w));
                let serial = s.serial;
                self.session_timers.push(Reverse((at, sid, serial)));
            } else {
                debug!("Sending will of {name} to '{}'.", w.topic);
                self.publish(w, None);
            }
        }
        let s = &mut self.sessions[sid];
        if s.expiry_interval == 0 {
            self.end_session(sid);
            return;
        }
        if !self.cfg.queue_qos0_messages {
            if let Some(f) = s.flow.get_mut() {
                f.queue.retain(|q| q.qos != QoS::AtMostOnce);
                f.queued_bytes = f.queue.iter().map(|q| q.msg.payload.len()).sum();
            }
        }
        s.flow.trim();
        if s.expiry_interval != NEVER {
            let at = now + s.expiry_interval as Millis * 1000;
            s.expires_at = Some(at);
            let serial = s.serial;
            self.session_timers.push(Reverse((at, sid, serial)));
        }
    }
}

/// Whether a session holds messages it was given through a shared subscription.
fn s_has_shared(s: &Session) -> bool {
    s.flow.queue.iter().any(|q| q.share != 0)
}

/// Whether the bytes of a (broken) CONNECT say protocol level 5.
fn connect_is_v5(bytes: &[u8]) -> bool {
    let Some(&b0) = bytes.first() else {
        return false;
    };
    if b0 >> 4 != mqtt::CONNECT {
        return false;
    }
    let Ok(Status::Complete(_, n)) = mqtt::read_remaining_length(&bytes[1..]) else {
        return false;
    };
    let body = &bytes[1 + n..];
    body.get(..7) == Some(&[0, 4, b'M', b'Q', b'T', b'T', 5][..])
}

/// The MQTT 5 properties of an outgoing PUBLISH: the remaining message expiry, the
/// subscription identifiers, the topic alias, then the forwarded properties.
fn v5_props(out: &mut Vec<u8>, msg: &Message, now: Millis, sub_ids: &[u32], alias: Option<u16>) {
    use mqtt::props::id;
    if let Some(t) = msg.expiry {
        let secs = t.saturating_sub(now).div_ceil(1000).min(u32::MAX as u64) as u32;
        out.push(id::MESSAGE_EXPIRY_INTERVAL);
        out.extend_from_slice(&secs.to_be_bytes());
    }
    for &s in sub_ids {
        out.push(id::SUBSCRIPTION_IDENTIFIER);
        mqtt::write_remaining_length(out, s as usize);
    }
    if let Some(a) = alias {
        out.push(id::TOPIC_ALIAS);
        out.extend_from_slice(&a.to_be_bytes());
    }
    out.extend_from_slice(&msg.props);
}

/// The subscription key a session keeps: the filter under the mount point, with a shared
/// subscription's `$share/GROUP/` kept in front.
fn session_key(mount: Option<&str>, f: &str) -> String {
    match split_share(f) {
        Some(Some((group, filter))) => format!("$share/{group}/{}", mounted(mount, filter)),
        _ => mounted(mount, f).into_owned(),
    }
}

/// `topic` under a listener's mount point.
fn mounted<'a>(mount: Option<&str>, topic: &'a str) -> std::borrow::Cow<'a, str> {
    match mount {
        Some(m) => format!("{m}{topic}").into(),
        None => topic.into(),
    }
}

/// `topic` as a client of a listener with this mount point sees it.
fn unmounted<'a>(mount: Option<&str>, topic: &'a str) -> &'a str {
    match mount {
        Some(m) => topic.strip_prefix(m).unwrap_or(topic),
        None => topic,
    }
}

// ----- persistence ------------------------------------------------------------------------------

use crate::persist::{OutState, Snapshot, StoredMsg, StoredOut, StoredSession, StoredSub};

fn stored_msg(m: &Message, now: Millis) -> StoredMsg {
    StoredMsg {
        topic: m.topic.to_string(),
        payload: m.payload.to_vec(),
        qos: m.qos.as_u8(),
        retain: m.retain,
        props: m.props.to_vec(),
        expiry_left: m
            .expiry
            .map(|t| t.saturating_sub(now).div_ceil(1000).min(u32::MAX as u64) as u32),
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
        expiry_left: s
            .expires_at
            .map(|t| t.saturating_sub(now).div_ceil(1000).min(u32::MAX as u64) as u32),
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
        pending_will: s.flow.pending_will.as_ref().map(|(t, w)| {
            (
                t.saturating_sub(now).div_ceil(1000).min(u32::MAX as u64) as u32,
                stored_msg(w, now),
            )
        }),
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
        expiry: s.expiry_left.map(|e| now + e as Millis * 1000),
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
        self.each_saved(|m| enc.retained(&m), |_| Ok(()))?;
        self.each_saved(|_| Ok(()), |s| enc.session(&s))?;
        enc.finish()?;
        Ok((nr, ns))
    }

    /// Calls `retained` for every retained message worth keeping, then `session` for every
    /// persistent session, each converted on its own.
    fn each_saved(
        &self,
        mut retained: impl FnMut(StoredMsg) -> std::io::Result<()>,
        mut session: impl FnMut(StoredSession) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let now = self.now;
        let mut result = Ok(());
        self.retained.for_each(|m| {
            if result.is_ok() && saved_retained(m, now) {
                result = retained(stored_msg(m, now));
            }
        });
        result?;
        for (_, s) in self.sessions.iter() {
            if s.expiry_interval == 0 {
                continue;
            }
            session(stored_session(s, now))?;
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
            let mut s = Session::new(st.client_id.as_str().into());
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
                let at = now + left as Millis * 1000;
                s.flow.pending_will = Some((at, message_from(w, now)));
                self.session_timers.push(Reverse((at, sid, s.serial)));
            }
            if s.expiry_interval != NEVER {
                let left = st.expiry_left.unwrap_or(s.expiry_interval);
                let at = now + left as Millis * 1000;
                s.expires_at = Some(at);
                self.session_timers.push(Reverse((at, sid, s.serial)));
            }
            self.by_id.insert(sid, &self.sessions);
            nses += 1;
        }
        (nret, nses)
    }
}
