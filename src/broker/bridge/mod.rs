//! Bridges: the broker as a client of a remote broker (mosquitto.conf's `connection`
//! sections).
//!
//! A bridge is two things the core already knows:
//!
//! - a **local session** (`local_clientid`) subscribed to the `out` and `both` topics with No
//!   Local and Retain As Published. Messages for the remote are delivered into its queue like
//!   any subscriber's: bounded by `max_queued_messages` / `max_queued_bytes` (dropped with a log
//!   line when full), kept while the link is down, saved with `persistence true` like any
//!   persistent session, and sent in order within the in-flight window (`pump`) once the link
//!   is up again, in-flight ones first, with DUP set;
//! - a **connection** whose roles are reversed: the broker sends CONNECT and SUBSCRIBE and reads
//!   CONNACK and SUBACK. Its PUBLISH packets go through `on_publish` like a client's, so the
//!   remote's QoS 1/2 messages are acknowledged only once they are routed locally.
//!
//! Topics are remapped on the way (`topic PATTERN DIR QOS LOCAL_PREFIX REMOTE_PREFIX`, as
//! mosquitto's `bridge_topic.c`). Messages do not loop on `both` topics: the local subscription
//! has No Local, the remote one has No Local in MQTT 5, and mosquitto remotes are told this is a
//! bridge (`try_private`: protocol level | 0x80) so they do not echo what the bridge sent.
//!
//! The network layer asks [`Broker::bridge_due`] which bridge should connect and where, resolves
//! the name off the loop, opens the socket and calls [`Broker::bridge_open`] (or
//! [`Broker::bridge_failed`]). Everything else (back-off with jitter, keepalive, the connect
//! timeout, notifications) is decided here from `now`.
//!
//! `config.rs` holds a bridge's settings and the CONNECT they make, `topics.rs` the topic
//! remapping; this file the bridge's state in the core and the driving of its link.

mod config;
mod topics;

use std::rc::Rc;

use log::{debug, info, warn};

use super::conn::{Conn, State, V5Conn};
use super::out::Out;
use super::session::{Lazy, Session, NEVER};
use super::{Broker, Close, ConnId, Fault, Handled, Key, Message, Millis, SessionId};
use crate::mqtt::{self, Packet, Properties, QoS, SubOptions, Version};

use config::encode_connect;
pub use config::{BridgeConfig, BridgeTls, BridgeTopic, Direction, StartType};
pub use topics::to_local;
pub(super) use topics::{outgoing, too_large};

/// Where a bridge's link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not connected; the next attempt is due at `Bridge::retry_at` (`Millis::MAX`: none).
    Down,
    /// The network layer is resolving and connecting; given up at `until`.
    Starting {
        until: Millis,
    },
    /// CONNECT sent on `conn`, waiting for CONNACK.
    Connecting {
        conn: ConnId,
    },
    Up {
        conn: ConnId,
    },
}

/// A bridge's state in the core.
pub(super) struct Bridge {
    pub(super) cfg: Rc<BridgeConfig>,
    sid: Option<SessionId>,
    link: Link,
    retry_at: Millis,
    /// The current back-off, milliseconds.
    backoff: Millis,
    /// Attempt number: an answer from the network layer for an older attempt is ignored.
    attempt: u64,
    address: usize,
    /// The remote refused protocol level | 0x80: connect as a plain client from now on.
    private_refused: bool,
    next_ping: Millis,
    /// Lazy start: when the link was last used.
    last_use: Millis,
    pub(super) reconnects: u64,
    started_once: bool,
    /// Connected to a secondary address without round_robin: when to check whether the
    /// first one answers again (`Millis::MAX`: not now).
    primary_check: Millis,
    /// The first address answered: the next attempt goes to it, at once.
    back_to_primary: bool,
}

impl Bridge {
    pub(super) fn new(cfg: BridgeConfig) -> Bridge {
        Bridge {
            cfg: Rc::new(cfg),
            sid: None,
            link: Link::Down,
            retry_at: Millis::MAX,
            backoff: 0,
            attempt: 0,
            address: 0,
            private_refused: false,
            next_ping: Millis::MAX,
            last_use: 0,
            reconnects: 0,
            started_once: false,
            primary_check: Millis::MAX,
            back_to_primary: false,
        }
    }
}

/// What the network layer should do for a bridge: connect to `host`:`port`, for attempt
/// number `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub bridge: usize,
    pub attempt: u64,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Longest the network layer may take to resolve and connect, and the remote to answer
/// CONNECT.
const CONNECT_TIMEOUT_MS: Millis = 10_000;

/// Connected to a secondary address (no `round_robin`): how often the first one is tried
/// again, as mosquitto does.
const PRIMARY_CHECK_MS: Millis = 5_000;

impl Broker {
    /// The bridges' settings, in configuration order.
    pub fn bridge_configs(&self) -> impl Iterator<Item = &BridgeConfig> {
        self.bridges.iter().map(|b| &*b.cfg)
    }

    /// Whether `id` is a bridge's local client id: a client may not take its session over.
    pub(super) fn is_bridge_id(&self, id: &str) -> bool {
        self.bridges.iter().any(|b| {
            b.sid
                .and_then(|sid| self.sessions.get(sid))
                .is_some_and(|s| *s.client_id == *id)
        })
    }

    /// Whether `listener` (a connection's policy index) is a bridge's, and which.
    pub(super) fn bridge_of(&self, listener: usize) -> Option<usize> {
        listener
            .checked_sub(self.bridge_base)
            .filter(|&b| b < self.bridges.len())
    }

    /// Creates (or, after a restore, takes back) each bridge's local session and its
    /// subscriptions, and schedules the first connection. Called once, after `restore`.
    pub fn start_bridges(&mut self, now: Millis) {
        self.now = now;
        for b in 0..self.bridges.len() {
            let cfg = self.bridges[b].cfg.clone();
            let id = cfg.local_id();
            let local_clean = cfg.local_clean_session.unwrap_or(cfg.clean_session);
            let existing = self.by_id.get(&id, &self.sessions);
            if let (Some(sid), true) = (existing, local_clean) {
                // local_cleansession: nothing kept from before the restart.
                self.end_session(sid);
            }
            let sid = match self.by_id.get(&id, &self.sessions) {
                Some(sid) => {
                    let (q, f) = (
                        self.sessions[sid].flow.queue.len(),
                        self.sessions[sid].flow.inflight.len(),
                    );
                    if q + f > 0 {
                        info!(
                            "Bridge {}: {} messages kept for the remote from before the restart.",
                            cfg.name,
                            q + f
                        );
                    }
                    sid
                }
                None => {
                    self.serial += 1;
                    let mut s = Session::new(id.as_str());
                    s.serial = self.serial as u32;
                    let sid = self.sessions.insert(s);
                    self.by_id.insert(sid, &self.sessions);
                    sid
                }
            };
            let s = &mut self.sessions[sid];
            s.clean = local_clean;
            s.expiry_interval = NEVER;
            s.expires_at = Millis::MAX;
            s.listener = (self.bridge_base + b) as u16;
            // The configuration's topics, and only those.
            let old: Vec<Box<str>> = s.subs.iter().map(|(k, _, _)| k.clone()).collect();
            for k in old {
                self.unsubscribe_key(sid, &k);
            }
            for t in cfg.topics.iter().filter(|t| t.outgoing()) {
                let opts = SubOptions {
                    qos: t.qos,
                    no_local: true,
                    retain_as_published: cfg.outgoing_retain,
                    retain_handling: 2,
                };
                self.subscribe_key(sid, &t.local, opts, 0);
            }
            let br = &mut self.bridges[b];
            br.sid = Some(sid);
            br.link = Link::Down;
            br.backoff = cfg.restart_base as Millis * 1000;
            br.retry_at = match cfg.start_type {
                StartType::Lazy => Millis::MAX,
                _ => now,
            };
            self.bridge_notify(b, false);
        }
    }

    /// The next bridge that should connect now, if any: the network layer resolves `host`,
    /// connects, and calls [`Broker::bridge_open`] or [`Broker::bridge_failed`] with `attempt`.
    pub fn bridge_due(&mut self, now: Millis) -> Option<Dial> {
        self.now = now;
        for b in 0..self.bridges.len() {
            self.lazy_check(b, now);
            let br = &mut self.bridges[b];
            if br.link != Link::Down || br.retry_at > now || br.cfg.addresses.is_empty() {
                continue;
            }
            br.attempt += 1;
            br.retry_at = Millis::MAX;
            br.link = Link::Starting {
                until: now + CONNECT_TIMEOUT_MS,
            };
            br.started_once = true;
            let (host, port) = br.cfg.addresses[br.address % br.cfg.addresses.len()].clone();
            info!("Connecting bridge {} ({host}:{port})", br.cfg.name);
            return Some(Dial {
                bridge: b,
                attempt: br.attempt,
                host,
                port,
                tls: br.cfg.tls.enabled(),
            });
        }
        None
    }

    /// A bridge connected to a secondary address whose first address should be tried again
    /// now: the network layer checks that a connection to it opens, off the loop, and calls
    /// [`Broker::bridge_probed`].
    pub fn bridge_probe_due(&mut self, now: Millis) -> Option<Dial> {
        for (b, br) in self.bridges.iter_mut().enumerate() {
            if !matches!(br.link, Link::Up { .. }) || br.primary_check > now {
                continue;
            }
            br.primary_check = Millis::MAX;
            let (host, port) = br.cfg.addresses.first()?.clone();
            return Some(Dial {
                bridge: b,
                attempt: br.attempt,
                host,
                port,
                tls: br.cfg.tls.enabled(),
            });
        }
        None
    }

    /// The answer to [`Broker::bridge_probe_due`]: if the first address accepts connections
    /// again, the bridge leaves the secondary one and reconnects to it at once.
    pub fn bridge_probed(&mut self, b: usize, attempt: u64, reachable: bool, now: Millis) {
        self.now = now;
        let Some(br) = self.bridges.get_mut(b) else {
            return;
        };
        let Link::Up { conn } = br.link else {
            return;
        };
        if br.attempt != attempt {
            return;
        }
        if !reachable {
            br.primary_check = now + PRIMARY_CHECK_MS;
            return;
        }
        info!(
            "Bridge {}: the first address answers again; reconnecting to it.",
            br.cfg.name
        );
        br.back_to_primary = true;
        self.bridge_disconnect(conn, now);
    }

    /// Lazy bridges connect once `threshold` messages wait for the remote.
    fn lazy_check(&mut self, b: usize, now: Millis) {
        let br = &self.bridges[b];
        if br.cfg.start_type != StartType::Lazy || br.link != Link::Down {
            return;
        }
        let queued = br.sid.map_or(0, |sid| self.sessions[sid].flow.queue.len());
        if queued >= br.cfg.threshold && br.retry_at == Millis::MAX {
            self.bridges[b].retry_at = now;
        }
    }

    /// Attempt `attempt` of bridge `b` could not resolve or connect (`why`, for the log).
    pub fn bridge_failed(&mut self, b: usize, attempt: u64, why: &str, now: Millis) {
        self.now = now;
        let Some(br) = self.bridges.get(b) else {
            return;
        };
        if br.attempt != attempt || !matches!(br.link, Link::Starting { .. }) {
            return;
        }
        warn!("Bridge {}: connection failed: {why}.", br.cfg.name);
        self.bridge_down(b, now);
    }

    /// The network layer opened socket `id` for attempt `attempt` of bridge `b` (the connection
    /// may still be in progress: CONNECT waits in its output). False if that attempt was given
    /// up meanwhile: the caller closes the socket and must not use `id`.
    pub fn bridge_open(&mut self, b: usize, attempt: u64, id: ConnId, now: Millis) -> bool {
        self.now = now;
        let Some(br) = self.bridges.get(b) else {
            return false;
        };
        if br.attempt != attempt || !matches!(br.link, Link::Starting { .. }) {
            return false;
        }
        let cfg = br.cfg.clone();
        // MQTT 5 remotes get No Local instead of the bridge bit.
        let private = cfg.try_private && !br.private_refused && cfg.version != Version::V5;
        if self.conns.len() <= id {
            self.conns.resize_with(id + 1, || None);
        }
        let listener = self.bridge_base + b;
        if let Some(n) = self.per_listener.get_mut(listener) {
            *n += 1;
        }
        self.serial += 1;
        let mut out = Out::default();
        encode_connect(&cfg, private, self.receive_maximum(), out.bytes());
        self.conns[id] = Some(Conn {
            serial: self.serial as u32,
            listener: listener as u16,
            state: State::AwaitConnect,
            version: cfg.version,
            session: Key::NONE,
            keep_alive: 0,
            last_rx: now,
            out,
            dirty: false,
            timer_at: Millis::MAX,
            v5: None,
            extra: Lazy::default(),
        });
        self.mark(id);
        self.stats.pkts_sent += 1;
        self.bridges[b].link = Link::Connecting { conn: id };
        self.bridges[b].next_ping = now + CONNECT_TIMEOUT_MS;
        true
    }

    /// A packet from a bridge's remote.
    pub(super) fn bridge_dispatch(
        &mut self,
        id: ConnId,
        b: usize,
        p: Packet<'_>,
        now: Millis,
    ) -> Handled {
        let Some(conn) = self.live(id) else {
            return Ok(());
        };
        if conn.state == State::AwaitConnect {
            let Packet::Connack {
                code,
                props,
                session_present,
            } = p
            else {
                return Err(Fault::protocol(
                    mqtt::reason::PROTOCOL_ERROR,
                    format!("bridge: {} before CONNACK", p.name()),
                ));
            };
            return self.bridge_connack(id, b, code, session_present, &props, now);
        }
        let Some(sid) = conn.session.get() else {
            return Ok(());
        };
        match p {
            Packet::Publish(mut pb) => {
                self.bridges[b].last_use = now;
                let cfg = self.bridges[b].cfg.clone();
                let local = to_local(&cfg.topics, pb.topic);
                pb.topic = &local;
                return self.on_publish(id, sid, pb, now);
            }
            Packet::Puback(a) => return self.on_ack(sid, a.pid, super::Ack::Puback),
            Packet::Pubrec(a) => return self.on_pubrec(id, sid, a.pid, a.reason),
            Packet::Pubcomp(a) => return self.on_ack(sid, a.pid, super::Ack::Pubcomp),
            Packet::Pubrel(a) => self.on_pubrel(id, sid, a.pid),
            Packet::Suback { codes, .. } => {
                if let Some(c) = codes.iter().find(|&&c| c >= 0x80) {
                    warn!(
                        "Bridge {}: the remote refused a subscription (0x{c:02x}).",
                        self.bridges[b].cfg.name
                    );
                }
            }
            Packet::Unsuback { .. } | Packet::Pingresp => {}
            Packet::Disconnect { reason: r, .. } => {
                info!(
                    "Bridge {}: the remote disconnected (reason 0x{r:02x}).",
                    self.bridges[b].cfg.name
                );
                self.close(id, Close::Disconnect, now);
            }
            other => {
                return Err(Fault::protocol(
                    mqtt::reason::PROTOCOL_ERROR,
                    format!("bridge: {} is not sent by brokers", other.name()),
                ))
            }
        }
        Ok(())
    }

    fn bridge_connack(
        &mut self,
        id: ConnId,
        b: usize,
        code: u8,
        session_present: bool,
        props: &Properties<'_>,
        now: Millis,
    ) -> Handled {
        let cfg = self.bridges[b].cfg.clone();
        let private =
            cfg.try_private && !self.bridges[b].private_refused && cfg.version != Version::V5;
        if code != 0 {
            if private && code == mqtt::connack::UNACCEPTABLE_PROTOCOL_VERSION {
                // Not a mosquitto: connect again at once as a plain client.
                info!(
                    "Bridge {}: the remote does not accept bridge mode (try_private); connecting as a plain client.",
                    cfg.name
                );
                self.bridges[b].private_refused = true;
                self.close(id, Close::Refused, now);
                self.bridges[b].retry_at = now;
                return Ok(());
            }
            warn!(
                "Bridge {}: connection refused by the remote (CONNACK 0x{code:02x}).",
                cfg.name
            );
            self.close(id, Close::Refused, now);
            return Ok(());
        }
        let Some(sid) = self.bridges[b].sid else {
            return Ok(());
        };
        info!(
            "Bridge {} connected to the remote as {} (session present {}).",
            cfg.name,
            cfg.remote_id(),
            session_present as u8
        );
        let v5 = cfg.version == Version::V5;
        let Some(conn) = self.live(id) else {
            return Ok(());
        };
        conn.state = State::Connected;
        conn.session = Key::some(sid);
        conn.keep_alive = cfg.keepalive;
        conn.last_rx = now;
        if v5 {
            let mut max_packet = props.maximum_packet_size.unwrap_or(0);
            if cfg.max_packet_size > 0 {
                max_packet = match max_packet {
                    0 => cfg.max_packet_size,
                    m => m.min(cfg.max_packet_size),
                };
            }
            conn.v5 = Some(Box::new(V5Conn {
                receive_max: props.receive_maximum.unwrap_or(u16::MAX),
                max_packet,
                alias_max_out: 0,
                // The remote keeps to the Receive Maximum of the bridge's CONNECT.
                in_quota: u16::MAX,
                ..V5Conn::default()
            }));
        }
        if cfg.keepalive > 0 {
            let at = super::timers::keepalive_deadline(now, cfg.keepalive);
            self.arm(id, at);
        }
        let br = &mut self.bridges[b];
        br.link = Link::Up { conn: id };
        br.backoff = cfg.restart_base as Millis * 1000;
        br.next_ping = if cfg.keepalive > 0 {
            now + cfg.keepalive as Millis * 1000
        } else {
            Millis::MAX
        };
        br.last_use = now;
        let n = cfg.addresses.len();
        br.primary_check = if !cfg.round_robin && n > 1 && br.address % n != 0 {
            now + PRIMARY_CHECK_MS
        } else {
            Millis::MAX
        };
        self.sessions[sid].conn = Key::some(id);
        // The remote's subscriptions: the `in` and `both` topics; `out` ones are unsubscribed
        // in case an earlier configuration had them the other way (bridge_attempt_unsubscribe).
        let mut out = Vec::new();
        for t in &cfg.topics {
            let pid = self.sessions[sid].next_pid();
            if t.incoming() {
                let opts = SubOptions {
                    qos: t.qos,
                    no_local: v5,
                    retain_as_published: true,
                    retain_handling: 0,
                };
                Packet::Subscribe {
                    pid,
                    filters: vec![(t.remote.as_str(), opts)],
                    props: Default::default(),
                }
                .encode_version(cfg.version, &mut out);
            } else if cfg.attempt_unsubscribe {
                Packet::Unsubscribe {
                    pid,
                    filters: vec![t.remote.as_str()],
                    props: Default::default(),
                }
                .encode_version(cfg.version, &mut out);
            }
        }
        if cfg.notifications && !cfg.notifications_local_only {
            mqtt::encode_publish(
                &mut out,
                false,
                QoS::AtMostOnce,
                true,
                &cfg.state_topic(),
                None,
                v5.then_some(&[][..]),
                b"1",
            );
        }
        if let Some(c) = self.live(id) {
            c.out.bytes().extend_from_slice(&out);
        }
        self.mark(id);
        self.bridge_notify(b, true);
        self.resend_inflight(sid);
        self.pump(sid);
        Ok(())
    }

    /// Connection `id` of the bridge on `listener` closed: the session stays, with its queue,
    /// and the next attempt is scheduled.
    pub(super) fn bridge_closed(&mut self, listener: usize, id: ConnId, now: Millis) {
        let Some(b) = self.bridge_of(listener) else {
            return;
        };
        match self.bridges[b].link {
            Link::Connecting { conn } | Link::Up { conn } if conn == id => {}
            _ => return,
        }
        let was_up = matches!(self.bridges[b].link, Link::Up { .. });
        if !was_up {
            warn!(
                "Bridge {}: connection failed (refused, reset or timed out).",
                self.bridges[b].cfg.name
            );
        }
        if was_up {
            self.bridges[b].reconnects += 1;
            let queued = self.bridges[b].sid.map_or(0, |sid| {
                let f = &self.sessions[sid].flow;
                f.queue.len() + f.inflight.len()
            });
            info!(
                "Bridge {} disconnected; {queued} messages wait for the remote.",
                self.bridges[b].cfg.name
            );
            self.bridge_notify(b, false);
        }
        self.bridge_down(b, now);
    }

    /// The link is down: schedule the next attempt (restart_timeout, with back-off), or none.
    fn bridge_down(&mut self, b: usize, now: Millis) {
        let jitter = self.bridge_rand();
        let br = &mut self.bridges[b];
        br.link = Link::Down;
        br.next_ping = Millis::MAX;
        br.primary_check = Millis::MAX;
        let n = br.cfg.addresses.len().max(1);
        if std::mem::take(&mut br.back_to_primary) {
            br.address = 0;
            br.retry_at = now;
            br.backoff = br.cfg.restart_base as Millis * 1000;
            return;
        }
        br.address = (br.address + 1) % n;
        let base = br.cfg.restart_base as Millis * 1000;
        let delay = match br.cfg.restart_cap {
            None => base,
            Some(cap) => {
                // Decorrelated jitter: uniform in [base, 3 x the previous delay], at most cap.
                let cap = cap as Millis * 1000;
                let hi = br.backoff.max(base).saturating_mul(3).max(base + 1);
                let d = base + jitter % (hi - base);
                d.min(cap).max(base.min(cap))
            }
        };
        br.backoff = delay;
        br.retry_at = match br.cfg.start_type {
            StartType::Once => Millis::MAX,
            StartType::Lazy => Millis::MAX,
            StartType::Automatic => now + delay,
        };
        if br.retry_at != Millis::MAX {
            debug!("Bridge {}: next attempt in {delay} ms.", br.cfg.name);
        }
    }

    fn bridge_rand(&mut self) -> Millis {
        // xorshift64 on the broker's seed.
        let mut x = self.rng | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The local notification: `1` when connected, `0` when not, retained.
    fn bridge_notify(&mut self, b: usize, up: bool) {
        let cfg = &self.bridges[b].cfg;
        if !cfg.notifications {
            return;
        }
        let msg = Message::new(
            &cfg.state_topic(),
            if up { b"1" } else { b"0" },
            QoS::AtLeastOnce,
            true,
        );
        self.publish(Rc::new(msg), None);
    }

    /// Bridge deadlines: the next attempt, a PINGREQ, a connect timeout, a lazy bridge's idle
    /// timeout.
    pub(super) fn bridge_deadline(&self) -> Option<Millis> {
        self.bridges
            .iter()
            .map(|br| {
                let start = match br.link {
                    Link::Starting { until } => until,
                    _ => Millis::MAX,
                };
                let idle = match (br.cfg.start_type, br.link) {
                    (StartType::Lazy, Link::Up { .. }) => {
                        br.last_use + br.cfg.idle_timeout as Millis * 1000
                    }
                    _ => Millis::MAX,
                };
                let primary = match br.link {
                    Link::Up { .. } => br.primary_check,
                    _ => Millis::MAX,
                };
                br.retry_at
                    .min(br.next_ping)
                    .min(start)
                    .min(idle)
                    .min(primary)
            })
            .min()
            .filter(|&t| t != Millis::MAX)
    }

    pub(super) fn bridge_tick(&mut self, now: Millis) {
        for b in 0..self.bridges.len() {
            let br = &self.bridges[b];
            match br.link {
                Link::Starting { until } if until <= now => {
                    warn!(
                        "Bridge {}: no connection after {} s; trying again later.",
                        br.cfg.name,
                        CONNECT_TIMEOUT_MS / 1000
                    );
                    self.bridge_down(b, now);
                }
                Link::Connecting { conn } if br.next_ping <= now => {
                    warn!("Bridge {}: the remote did not answer CONNECT.", br.cfg.name);
                    self.close(conn, Close::Timeout, now);
                }
                Link::Up { conn } => {
                    let cfg = br.cfg.clone();
                    if cfg.start_type == StartType::Lazy
                        && br.last_use + cfg.idle_timeout as Millis * 1000 <= now
                        && br
                            .sid
                            .is_some_and(|s| self.sessions[s].flow.inflight.is_empty())
                    {
                        info!("Bridge {}: idle, disconnecting.", cfg.name);
                        self.bridge_disconnect(conn, now);
                        continue;
                    }
                    if br.next_ping <= now {
                        self.bridges[b].next_ping = now + cfg.keepalive as Millis * 1000;
                        if let Some(out) = self.out(conn) {
                            Packet::Pingreq.encode(out);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Ends a bridge's link with DISCONNECT (the remote discards the will).
    fn bridge_disconnect(&mut self, conn: ConnId, now: Millis) {
        if let Some(out) = self.out(conn) {
            out.extend_from_slice(&[mqtt::DISCONNECT << 4, 0]);
        }
        self.close(conn, Close::Disconnect, now);
    }

    /// Shutdown: each connected bridge says DISCONNECT to its remote.
    pub(super) fn bridges_shutdown(&mut self, now: Millis) {
        for b in 0..self.bridges.len() {
            if let Link::Up { conn } = self.bridges[b].link {
                self.bridge_disconnect(conn, now);
            }
            self.bridges[b].retry_at = Millis::MAX;
        }
    }

    /// (name, connected, messages waiting, reconnects) of each bridge, for `$SYS` and tests.
    pub fn bridge_status(&self) -> Vec<(String, bool, usize, u64)> {
        self.bridges
            .iter()
            .map(|br| {
                let waiting = br.sid.map_or(0, |sid| {
                    let f = &self.sessions[sid].flow;
                    f.queue.len() + f.inflight.len()
                });
                (
                    br.cfg.name.clone(),
                    matches!(br.link, Link::Up { .. }),
                    waiting,
                    br.reconnects,
                )
            })
            .collect()
    }

    /// `$SYS/broker/bridge/NAME/{connected,queued,reconnects}`, with the other `$SYS` topics.
    pub(super) fn bridge_sys(&mut self) {
        for (name, up, waiting, reconnects) in self.bridge_status() {
            for (t, v) in [
                ("connected", (up as u8).to_string()),
                ("queued", waiting.to_string()),
                ("reconnects", reconnects.to_string()),
            ] {
                let topic = format!("$SYS/broker/bridge/{name}/{t}");
                let msg = Message::new(&topic, v.as_bytes(), QoS::AtMostOnce, true);
                self.publish(Rc::new(msg), None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topics::to_remote;
    use super::*;

    fn t(p: &str, d: Direction, lp: &str, rp: &str) -> BridgeTopic {
        BridgeTopic::new(p, d, QoS::AtLeastOnce, lp, rp).unwrap()
    }

    /// mosquitto's remapping: the local prefix is replaced by the remote one on the way out,
    /// and back on the way in; the first matching topic wins; no match leaves the topic.
    #[test]
    fn topics_are_remapped_with_prefixes() {
        let topics = [
            t("sensors/#", Direction::Out, "local/", "site1/"),
            t("cmd/+", Direction::In, "", "site1/"),
            t("both/#", Direction::Both, "", ""),
            t("", Direction::Both, "a/exact", "b/exact"),
        ];
        assert_eq!(to_remote(&topics, "local/sensors/t1"), "site1/sensors/t1");
        assert_eq!(to_remote(&topics, "both/x"), "both/x");
        assert_eq!(to_remote(&topics, "a/exact"), "b/exact");
        assert_eq!(to_remote(&topics, "other"), "other");
        assert_eq!(to_local(&topics, "site1/cmd/go"), "cmd/go");
        assert_eq!(to_local(&topics, "b/exact"), "a/exact");
        // An `out` topic does not map incoming messages.
        assert_eq!(to_local(&topics, "site1/sensors/t1"), "site1/sensors/t1");
    }

    /// Prefix rules of mosquitto's `bridge__add_topic`.
    #[test]
    fn bad_prefixes_are_refused() {
        let q = QoS::AtMostOnce;
        assert!(BridgeTopic::new("", Direction::Out, q, "a/", "").is_err());
        assert!(BridgeTopic::new("x", Direction::Out, q, "a/+/", "").is_err());
        assert!(BridgeTopic::new("#", Direction::Out, q, "a", "").is_err());
        assert!(BridgeTopic::new("#", Direction::Out, q, "a/", "b/").is_ok());
    }

    /// With try_private the protocol level byte carries the bridge bit: 0x84 for 3.1.1, and
    /// the will is the `0` notification, retained at QoS 1.
    #[test]
    fn bridge_connect_bytes() {
        let mut cfg = BridgeConfig::new("b1");
        cfg.remote_clientid = Some("pi.b1".into());
        cfg.keepalive = 30;
        let mut out = Vec::new();
        encode_connect(&cfg, true, 20, &mut out);
        let topic = b"$SYS/broker/connection/pi.b1/state";
        let mut want = vec![0x10, 0];
        want.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 0x84, 0x2c, 0, 30]);
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice(b"pi.b1");
        want.extend_from_slice(&[0, topic.len() as u8]);
        want.extend_from_slice(topic);
        want.extend_from_slice(&[0, 1, b'0']);
        want[1] = (want.len() - 2) as u8;
        assert_eq!(out, want);
    }

    fn broker_with(f: impl FnOnce(&mut BridgeConfig)) -> Broker {
        let mut cfg = super::super::Config::default();
        let mut b = BridgeConfig::new("up");
        b.addresses.push(("remote.example".into(), 1883));
        b.addresses.push(("backup.example".into(), 1884));
        f(&mut b);
        cfg.bridges.push(b);
        let mut br = Broker::new(cfg);
        br.start_bridges(0);
        br
    }

    /// A name that never resolves (a resolver that does not answer) costs the loop nothing:
    /// the attempt is given up after the connect timeout, a late answer is ignored, and the
    /// next attempt goes to the next address after restart_timeout.
    #[test]
    fn a_resolver_that_never_answers_is_given_up_and_retried() {
        let mut br = broker_with(|b| {
            b.restart_base = 1;
            b.restart_cap = None;
        });
        let d = br.bridge_due(0).expect("due at start-up");
        assert_eq!((d.host.as_str(), d.port), ("remote.example", 1883));
        assert!(br.bridge_due(1).is_none(), "one attempt at a time");
        assert_eq!(br.next_deadline(), Some(CONNECT_TIMEOUT_MS));
        br.tick(CONNECT_TIMEOUT_MS);
        assert!(!br.bridge_open(0, d.attempt, 3, CONNECT_TIMEOUT_MS + 1));
        assert_eq!(br.next_deadline(), Some(CONNECT_TIMEOUT_MS + 1000));
        assert!(br.bridge_due(CONNECT_TIMEOUT_MS + 999).is_none());
        let d2 = br.bridge_due(CONNECT_TIMEOUT_MS + 1000).expect("retried");
        assert_eq!(d2.attempt, d.attempt + 1);
        assert_eq!((d2.host.as_str(), d2.port), ("backup.example", 1884));
    }

    /// restart_timeout BASE CAP: every delay lies between base and cap, and they grow from
    /// base while failures go on (decorrelated jitter).
    #[test]
    fn back_off_stays_between_base_and_cap() {
        let mut br = broker_with(|b| {
            b.restart_base = 1;
            b.restart_cap = Some(8);
        });
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..30 {
            let d = br.bridge_due(now).expect("due");
            br.bridge_failed(0, d.attempt, "refused", now);
            let next = br.next_deadline().unwrap();
            delays.push(next - now);
            now = next;
        }
        assert!(
            delays.iter().all(|&d| (1000..=8000).contains(&d)),
            "{delays:?}"
        );
        assert!(delays.iter().any(|&d| d > 3000), "{delays:?}");
        let mut br = broker_with(|b| {
            b.restart_base = 5;
            b.restart_cap = None;
        });
        let d = br.bridge_due(0).unwrap();
        br.bridge_failed(0, d.attempt, "refused", 0);
        assert_eq!(br.next_deadline(), Some(5000));
    }

    /// While the link is down, QoS 1 messages for the remote wait in the bridge's session,
    /// in order, bounded by max_queued_messages; QoS 0 ones are not kept.
    #[test]
    fn messages_wait_for_the_link_within_bounds() {
        let mut cfg = super::super::Config {
            max_queued_messages: 3,
            ..Default::default()
        };
        let mut b = BridgeConfig::new("up");
        b.addresses.push(("127.0.0.1".into(), 1883));
        b.topics
            .push(BridgeTopic::new("#", Direction::Out, QoS::AtLeastOnce, "", "").unwrap());
        cfg.bridges.push(b);
        let mut br = Broker::new(cfg);
        br.start_bridges(0);
        for i in 0..5u8 {
            br.publish(
                Rc::new(Message::new("a", &[i], QoS::AtLeastOnce, false)),
                None,
            );
        }
        br.publish(
            Rc::new(Message::new("a", b"q0", QoS::AtMostOnce, false)),
            None,
        );
        assert_eq!(br.bridge_status(), vec![("up".to_string(), false, 3, 0)]);
        let sid = br.bridges[0].sid.unwrap();
        let kept: Vec<u8> = br.sessions[sid]
            .flow
            .queue
            .iter()
            .map(|q| q.msg.payload[0])
            .collect();
        assert_eq!(kept, vec![0, 1, 2]);
    }

    /// start_type lazy: no connection until `threshold` messages wait for the remote;
    /// start_type once: one attempt, none after it fails.
    #[test]
    fn lazy_and_once_start_types() {
        let mut br = broker_with(|b| {
            b.start_type = StartType::Lazy;
            b.threshold = 3;
            b.topics
                .push(BridgeTopic::new("#", Direction::Out, QoS::AtLeastOnce, "", "").unwrap());
        });
        assert!(br.bridge_due(0).is_none());
        for i in 0..3u8 {
            assert!(br.bridge_due(1).is_none(), "{i} queued");
            br.publish(
                Rc::new(Message::new("a", &[i], QoS::AtLeastOnce, false)),
                None,
            );
        }
        assert!(br.bridge_due(1).is_some(), "threshold reached");

        let mut br = broker_with(|b| b.start_type = StartType::Once);
        let d = br.bridge_due(0).expect("once at start-up");
        br.bridge_failed(0, d.attempt, "refused", 0);
        assert_eq!(br.next_deadline(), None);
        assert!(br.bridge_due(3_600_000).is_none());
    }

    /// A client cannot connect with a bridge's local client id (it would take over the
    /// bridge's session): CONNACK 2, identifier rejected.
    #[test]
    fn a_client_cannot_use_the_bridges_local_id() {
        let mut br = broker_with(|_| {});
        br.open(7, "127.0.0.1:5000", 0, 0);
        let mut c = Vec::new();
        Packet::connect(mqtt::Connect {
            version: Version::V311,
            clean_session: true,
            keep_alive: 60,
            client_id: "local.localhost.up",
            will: None,
            username: None,
            password: None,
            props: Properties::default(),
        })
        .encode(&mut c);
        br.received(7, &c, 1);
        assert_eq!(br.output(7), &[0x20, 2, 0, 2]);
        assert!(br.is_closed(7));
    }

    /// Packets in `bytes`: (first byte, whole packet).
    fn packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (mut len, mut i) = (0usize, 1);
            loop {
                len |= ((bytes[i] & 0x7f) as usize) << (7 * (i - 1));
                i += 1;
                if bytes[i - 1] & 0x80 == 0 {
                    break;
                }
            }
            out.push(bytes[..i + len].to_vec());
            bytes = &bytes[i + len..];
        }
        out
    }

    /// Messages queued while the link was down go out in order once CONNACK arrives, no more
    /// than max_inflight_messages at once (no retransmit storm), each acknowledgement letting
    /// one more go; the remote's subscriptions are made on CONNACK; a PINGREQ goes out every
    /// keepalive_interval.
    #[test]
    fn reconnect_sends_the_queue_in_order_within_the_window() {
        let mut cfg = super::super::Config {
            max_queued_messages: 100,
            max_inflight_messages: 20,
            ..Default::default()
        };
        let mut b = BridgeConfig::new("up");
        b.addresses.push(("127.0.0.1".into(), 1883));
        b.keepalive = 30;
        b.notifications = false;
        b.topics
            .push(BridgeTopic::new("#", Direction::Out, QoS::AtLeastOnce, "", "r/").unwrap());
        b.topics
            .push(BridgeTopic::new("cmd/#", Direction::In, QoS::AtLeastOnce, "", "").unwrap());
        cfg.bridges.push(b);
        let mut br = Broker::new(cfg);
        br.start_bridges(0);
        for i in 0..50u8 {
            br.publish(
                Rc::new(Message::new("t", &[i], QoS::AtLeastOnce, false)),
                None,
            );
        }
        let d = br.bridge_due(0).unwrap();
        assert!(br.bridge_open(0, d.attempt, 4, 0));
        let connect = br.output(4).to_vec();
        assert_eq!(connect[0], 0x10);
        br.written(4, connect.len(), 0);
        br.received(4, &[0x20, 2, 0, 0], 10);
        let out = packets(br.output(4));
        // SUBSCRIBE for the `in` topic, UNSUBSCRIBE for the `out` one, then 20 PUBLISHes.
        assert_eq!(out[0][0], 0xa2, "UNSUBSCRIBE r/#");
        assert_eq!(out[1][0], 0x82, "SUBSCRIBE cmd/#");
        let pubs: Vec<&Vec<u8>> = out.iter().filter(|p| p[0] & 0xf0 == 0x30).collect();
        assert_eq!(pubs.len(), 20);
        for (i, p) in pubs.iter().enumerate() {
            // 0x32, len, topic "r/t", pid, payload.
            assert_eq!(&p[2..7], &[0, 3, b'r', b'/', b't']);
            assert_eq!(p[9], i as u8);
        }
        let n = br.output(4).len();
        br.written(4, n, 10);
        // Each PUBACK lets one more message go.
        let pid = u16::from_be_bytes([pubs[0][7], pubs[0][8]]);
        br.received(4, &[0x40, 2, (pid >> 8) as u8, pid as u8], 20);
        let out = packets(br.output(4));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][9], 20);
        let n = br.output(4).len();
        br.written(4, n, 20);
        assert_eq!(br.bridge_status()[0].2, 49);
        // Keepalive: PINGREQ after 30 s.
        assert_eq!(br.next_deadline(), Some(10 + 30_000));
        br.tick(10 + 30_000);
        assert_eq!(br.output(4), &[0xc0, 0]);
    }
}
