//! The broker core: sessions, routing, retained messages, QoS flows, keepalive and wills.
//!
//! It performs no IO and reads no clock. The network layer calls, in this order:
//! 1. [`Broker::open`] when a connection is accepted;
//! 2. [`Broker::received`] with the bytes read, which returns how many it consumed (a partial
//!    packet is left for the caller to keep and hand back with the next bytes);
//! 3. [`Broker::take_dirty`] after a batch of events, then for each connection named
//!    [`Broker::output_vectored`] (or [`Broker::output`], a run at a time) and
//!    [`Broker::written`] to write what is pending, and
//!    [`Broker::is_closed`] to learn whether to close the socket;
//! 4. [`Broker::lost`] when the socket reports end of file or an error;
//! 5. [`Broker::release`] once the socket is gone, which frees the connection's slot;
//! 6. [`Broker::tick`] whenever [`Broker::next_deadline`] has passed.
//!
//! Time is milliseconds on a monotonic clock chosen by the caller.
//!
//! This file holds the [`Broker`] type, those entry points and the dispatcher
//! (`Broker::handle`), which hands each packet to its handler and turns a handler's `Fault`
//! into the close of the connection. Each concern has its own file, a child module with its
//! own `impl Broker`:
//!
//! | file | what |
//! | --- | --- |
//! | `connect.rs` | CONNECT: validation, then admission (takeover, session resume, CONNACK) |
//! | `publish.rs` | incoming PUBLISH, routing to subscriptions, delivery into queues, backpressure |
//! | `flow.rs` | QoS 1/2 out: in-flight window, `pump`, PUBACK/PUBREC/PUBREL/PUBCOMP |
//! | `subscribe.rs` | SUBSCRIBE/UNSUBSCRIBE, their SUBACK/UNSUBACK codes, retained on subscribe |
//! | `shared.rs` | `$share` groups, the member that gets a message, hand-over |
//! | `lifecycle.rs` | DISCONNECT, close, wills, session expiry and end |
//! | `malformed.rs` | bytes that can never become a packet: the close mosquitto makes of them |
//! | `timers.rs` | the deadline heaps and where deadlines are armed; keepalive, CONNECT timeout |
//! | `snapshot.rs` | persistence: snapshot and restore |
//! | `sys.rs` | `$SYS` topics, the `Stats` counters |
//! | `bridge/` | bridges: the broker as a client of a remote broker (`topics.rs`: remapping) |
//! | `conn.rs`, `session.rs` | a connection's and a session's state (QoS 2 state: `session.rs`) |
//! | `message.rs`, `config.rs` | the message type; the core's settings |
//! | `out.rs` | a connection's output: a ring of encoded bytes and shared payload references |
//! | `subs.rs`, `trie.rs`, `retain.rs`, `table.rs`, `ids.rs` | subscription and retained stores |

mod bridge;
mod config;
mod conn;
mod connect;
mod flow;
mod ids;
mod lifecycle;
mod malformed;
mod message;
mod out;
mod publish;
mod retain;
mod session;
mod shared;
mod short;
mod snapshot;
mod subs;
mod subscribe;
mod sys;
mod table;
mod timers;
mod trie;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::IoSlice;

use log::{info, warn};
use slab::Slab;

use crate::mqtt::{self, connack, reason, Packet, Status, Version};
pub use bridge::{BridgeConfig, BridgeTls, BridgeTopic, Dial, Direction, StartType};
pub use config::{Config, ListenerPolicy};
use conn::{Conn, ConnExtra, State};
pub use lifecycle::Close;
use message::{mounted, unmounted};
pub use message::{Message, Msg, Origin};
pub use retain::Retained;
use session::{Ack, Lazy, Session};
use shared::Share;
pub use subs::{SubEntry, Subscriptions};
pub use sys::Stats;
use timers::Timers;

/// Index of a connection, chosen by the network layer (its slab key).
pub type ConnId = usize;
/// Index of a session in the broker's slab.
pub type SessionId = usize;
/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// An optional slab key (a connection's session, a session's connection) in 4 bytes instead of
/// an `Option<usize>`'s 16: every idle client holds two. Keys are below `u32::MAX` (a slab of
/// that many connections or sessions cannot be allocated); `u32::MAX` is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(u32);

impl Key {
    pub const NONE: Key = Key(u32::MAX);

    pub fn some(k: usize) -> Key {
        u32::try_from(k).map_or(Key::NONE, Key)
    }

    #[inline(always)]
    pub fn get(self) -> Option<usize> {
        (self != Key::NONE).then_some(self.0 as usize)
    }

    pub fn is_some(self) -> bool {
        self != Key::NONE
    }

    pub fn is_none(self) -> bool {
        self == Key::NONE
    }

    pub fn take(&mut self) -> Option<usize> {
        std::mem::replace(self, Key::NONE).get()
    }
}

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

pub struct Broker {
    cfg: Config,
    conns: Vec<Option<Conn>>,
    sessions: Slab<Session>,
    by_id: ids::IdIndex,
    subs: Subscriptions,
    retained: Retained,
    /// Deadlines of connections (keepalive, CONNECT timeout) and sessions (expiry, delayed
    /// wills).
    timers: Timers,
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
    /// The last published message, when nothing kept it (every delivery copied its small
    /// payload into output): the next one from a client reuses its memory.
    spare_msg: message::Spare,
    /// Emptied output segments kept for reuse while traffic lasts.
    spare: out::Spare,
    pub stats: Stats,
    /// Bridges (`bridge/`); bridge `b`'s connections use listener policy `bridge_base + b`.
    bridges: Vec<bridge::Bridge>,
    bridge_base: usize,
}

impl Broker {
    pub fn new(mut cfg: Config) -> Broker {
        let bridge_base = cfg.listeners.len();
        let bridges: Vec<bridge::Bridge> = std::mem::take(&mut cfg.bridges)
            .into_iter()
            .map(bridge::Bridge::new)
            .collect();
        cfg.listeners
            .extend(bridges.iter().map(|_| ListenerPolicy::default()));
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
            timers: Timers::default(),
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
            spare_msg: message::Spare::default(),
            spare: out::Spare::default(),
            stats: Stats::default(),
            bridges,
            bridge_base,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Replaces the listener policies (SIGHUP: re-read password and ACL files). Connected
    /// clients stay; the new rules apply to their next operation. A list of the wrong length
    /// (a configuration with other listeners) is refused.
    pub fn set_policies(&mut self, policies: Vec<ListenerPolicy>) {
        if policies.len() == self.bridge_base {
            self.cfg.listeners.splice(..self.bridge_base, policies);
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
            serial: self.serial as u32,
            listener: listener as u16,
            state: State::AwaitConnect,
            version: Version::V311,
            session: Key::NONE,
            keep_alive: 0,
            last_rx: now,
            out: out::Out::default(),
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

    /// The TLS layer of `id` verified the client's certificate and read `name` from it (its
    /// CN or subject, as the listener says): with `cert_username` it is the user name.
    pub fn tls_identity(&mut self, id: ConnId, name: &str) {
        if let Some(c) = self.live(id) {
            c.extra.cert_name = Some(name.into());
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

    /// The first of the byte runs waiting to be written to `id` (empty when nothing is):
    /// a caller that must copy output (a TLS layer) takes it run by run, calling
    /// [`Broker::written`] after each.
    pub fn output(&self, id: ConnId) -> &[u8] {
        match self.conns.get(id) {
            Some(Some(c)) => c.out.front(),
            _ => &[],
        }
    }

    /// Everything waiting to be written to `id`, as up to `bufs.len()` byte runs for a
    /// vectored write: encoded packet heads and short packets, and the payloads of long
    /// messages, which are shared with every other connection sending them. Returns how many
    /// entries of `bufs` it filled.
    pub fn output_vectored<'a>(&'a self, id: ConnId, bufs: &mut [IoSlice<'a>]) -> usize {
        match self.conns.get(id) {
            Some(Some(c)) => c.out.slices(bufs),
            _ => 0,
        }
    }

    /// `n` bytes of the output were written (across as many runs as they cover). Frees what
    /// they finish and refills the output from the client's queue.
    pub fn written(&mut self, id: ConnId, n: usize, now: Millis) {
        self.now = now;
        let Some(Some(c)) = self.conns.get_mut(id) else {
            return;
        };
        let n = n.min(c.out.pending());
        // Idle connections hold no output (the ring is freed once empty).
        c.out.advance(n, &mut self.spare, now);
        self.stats.bytes_sent += n as u64;
        if c.state == State::Connected {
            if let Some(sid) = c.session.get() {
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
        self.bridges_shutdown(now);
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
        let timers = self.timers.next();
        timers
            .into_iter()
            .chain(self.sys_due())
            .chain(self.bridge_deadline())
            .chain(self.spare.deadline())
            .min()
    }

    /// Runs every timer due at `now`: keepalive expiry, CONNECT timeouts, the end of publisher
    /// pauses, session expiry and delayed wills.
    pub fn tick(&mut self, now: Millis) {
        self.now = now;
        let sys = self.sys_due().is_some_and(|t| t <= now);
        self.sys_tick(now);
        if sys {
            self.bridge_sys();
        }
        self.conn_timers_due(now);
        self.session_timers_due(now);
        self.bridge_tick(now);
        self.spare.expire(now);
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
            Some(Some(c)) => c
                .session
                .get()
                .and_then(|sid| self.sessions.get(sid))
                .map_or("<unknown>", |s| &s.client_id),
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
            Some(Some(c)) if c.state != State::Closed => Some(c.out.bytes()),
            _ => None,
        }
    }

    // ----- the dispatcher -------------------------------------------------------------------

    /// One packet from connection `id`, to its handler; a handler's [`Fault`] becomes the
    /// close of the connection, and the CONNACK or DISCONNECT that says why.
    fn handle(&mut self, id: ConnId, p: Packet<'_>, now: Millis) {
        if let Err(fault) = self.dispatch(id, p, now) {
            self.fail(id, fault, now);
        }
    }

    fn dispatch(&mut self, id: ConnId, p: Packet<'_>, now: Millis) -> Handled {
        let Some(conn) = self.live(id) else {
            return Ok(());
        };
        let listener = conn.listener as usize;
        if listener >= self.bridge_base {
            if let Some(b) = self.bridge_of(listener) {
                return self.bridge_dispatch(id, b, p, now);
            }
        }
        let Some(conn) = self.live(id) else {
            return Ok(());
        };
        if conn.state == State::AwaitConnect {
            return match p {
                Packet::Connect(c) => self.on_connect(id, *c, now),
                other => Err(Fault::protocol(
                    reason::PROTOCOL_ERROR,
                    format!(
                        "[MQTT-3.1.0-1] first packet was {}, not CONNECT",
                        other.name()
                    ),
                )),
            };
        }
        let Some(sid) = conn.session.get() else {
            return Ok(());
        };
        match p {
            Packet::Publish(p) => return self.on_publish(id, sid, p, now),
            Packet::Puback(a) => return self.on_ack(sid, a.pid, Ack::Puback),
            Packet::Pubrec(a) => return self.on_pubrec(id, sid, a.pid, a.reason),
            Packet::Pubcomp(a) => return self.on_ack(sid, a.pid, Ack::Pubcomp),
            Packet::Pubrel(a) => self.on_pubrel(id, sid, a.pid),
            Packet::Subscribe {
                pid,
                filters,
                props,
            } => return self.on_subscribe(id, sid, pid, &filters, &props),
            Packet::Unsubscribe { pid, filters, .. } => {
                return self.on_unsubscribe(id, sid, pid, &filters)
            }
            Packet::Pingreq => {
                if let Some(out) = self.out(id) {
                    Packet::Pingresp.encode(out);
                }
            }
            Packet::Disconnect { reason: r, props } => {
                return self.on_disconnect(id, sid, r, &props, now)
            }
            // mosquitto closes without a DISCONNECT.
            Packet::Connect(_) => return Err(Fault::Dropped("[MQTT-3.1.0-2] second CONNECT")),
            other => {
                return Err(Fault::protocol(
                    reason::PROTOCOL_ERROR,
                    format!("{} is not sent by clients", other.name()),
                ))
            }
        }
        Ok(())
    }

    /// Ends connection `id` for `fault`: logs why, answers as the fault asks and closes.
    fn fail(&mut self, id: ConnId, fault: Fault, now: Millis) {
        match fault {
            Fault::Protocol(code, why) => {
                info!(
                    "Client {} disconnected due to protocol error: {why}.",
                    self.client_name(id)
                );
                self.close(id, Close::Protocol(code), now);
            }
            Fault::Dropped(why) => {
                info!(
                    "Client {} disconnected due to protocol error: {why}.",
                    self.client_name(id)
                );
                self.close(id, Close::Dropped, now);
            }
            Fault::Refused { code, code5, why } => {
                info!("Client <unknown> disconnected, {why}.");
                let v5 = self.is_v5(id);
                let props = self.refusal_props(id);
                if let Some(out) = self.out(id) {
                    if v5 {
                        mqtt::encode_connack_v5(out, false, code5, &props);
                    } else {
                        mqtt::encode_connack(out, false, code);
                    }
                }
                self.close(id, Close::Refused, now);
            }
            Fault::WillRefused { code5, why } => {
                info!("Client <unknown> disconnected: {why}.");
                if self.is_v5(id) {
                    let props = self.refusal_props(id);
                    if let Some(out) = self.out(id) {
                        mqtt::encode_connack_v5(out, false, code5, &props);
                    }
                }
                self.close(id, Close::Refused, now);
            }
        }
    }
}

/// Why a packet handler gives up on its connection. [`Broker::handle`] turns it into the
/// close, the log line and the CONNACK or DISCONNECT that says why.
#[derive(Debug)]
enum Fault {
    /// The client broke the protocol: closed with this MQTT 5 reason code (sent to an MQTT 5
    /// client in a DISCONNECT).
    Protocol(u8, Cow<'static, str>),
    /// The client broke the protocol: closed without a DISCONNECT, as mosquitto does.
    Dropped(&'static str),
    /// CONNECT refused: CONNACK with the MQTT 3.1 / 3.1.1 return code `code`, or `code5` for
    /// MQTT 5, then close.
    Refused {
        code: u8,
        code5: u8,
        why: &'static str,
    },
    /// A will the broker could not publish as asked: MQTT 5 is refused with `code5`; MQTT
    /// 3.1.1 has no code for it and the connection is just closed (as in mosquitto).
    WillRefused { code5: u8, why: &'static str },
}

impl Fault {
    fn protocol(code: u8, why: impl Into<Cow<'static, str>>) -> Fault {
        Fault::Protocol(code, why.into())
    }
}

/// What a packet handler returns: `Err` closes the connection.
type Handled = Result<(), Fault>;
