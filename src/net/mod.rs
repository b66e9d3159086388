//! The network layer: one thread, one `mio::Poll`, a `Slab` of sockets.
//!
//! Readiness is edge-triggered: a readable socket is read until `WouldBlock` (or until it has had
//! its fair share of the loop, then it waits in a ready list), output is written until
//! `WouldBlock`, and `WRITABLE` interest is held only while output is pending. A connection the
//! broker closes is flushed and shut down at once but keeps its slab slot until the whole batch of
//! events has been handled, so no stale event can reach a reused slot. Bytes are read into one
//! shared buffer and handed to the broker straight from it; only the tail of an incomplete
//! packet is copied into a per-connection buffer, so an idle connection holds no buffers.
//!
//! # Transports
//!
//! Between a socket and the broker a connection may have layers: TLS, WebSocket framing, or
//! both, bottom (next to the socket) first:
//!
//! ```text
//! socket <-> TLS (optional) <-> WebSocket (optional) <-> broker (plain MQTT bytes)
//! ```
//!
//! A layer is a [`Layer`]: sans-IO like the broker, it never touches the socket. A listener's
//! [`Stack`] says which layers each of its connections gets; [`Server::set_stacks`] replaces
//! the stacks (SIGHUP), and a connection keeps the layers it was accepted with. A plain TCP
//! connection has none, and pays for the possibility with nothing: its slab slot holds one
//! pointer, `Sock::extra`, which is null while it has neither layers nor a kept tail.
//!
//! **Read path.** The socket is read into the shared `scratch` buffer. Without layers those
//! bytes go straight to `Broker::received`. With layers, each layer's [`Layer::decode`] takes
//! all the bytes from below and appends what they carry to a shared buffer for the layer above
//! (two buffers used in turn, owned by the server, not the connection); the top layer's output
//! is plain MQTT and goes to `Broker::received` like a plain socket's bytes. The "kept tail"
//! logic is the same for both: whatever the broker did not consume (an incomplete packet, or
//! everything after backpressure paused the connection) is copied into `Extra::kept`, which
//! always holds *decoded* bytes, and is handed to the broker first next time (`sock::feed`):
//! a kept incomplete packet takes from the next read only the bytes it lacks, and the rest of
//! that read goes to the broker in place.
//! Bytes a layer must answer with (TLS handshake records, a WebSocket pong) are queued in that
//! layer and written by the write path, which the read path runs after decoding.
//!
//! **Write path.** Without layers, every pending run of broker output (packet heads and short
//! packets, and the payloads of long messages, shared with the other connections sending them)
//! goes to the socket in one vectored write (`Broker::output_vectored`), and the count written
//! to `Broker::written`, which advances across runs. With layers, `Broker::output` (one run at a
//! time) is offered to the top layer's [`Layer::encode`], which
//! takes as much as its bounded buffer allows and says how much; that count goes to
//! `Broker::written`, so the broker's queue stays the one place where undelivered messages
//! wait. Each layer's [`Layer::drain`] then writes its output into the layer below (through
//! `encode`), the bottom one into the socket. A full socket (`WouldBlock`) leaves bytes in the
//! layers and asks for `WRITABLE`, exactly as unwritten broker output does without layers; a
//! full layer takes 0 bytes, which stops the broker's output from moving down (backpressure
//! goes up the stack to the broker's bounded queues, never into an unbounded buffer).
//!
//! **Close.** A `decode` error (a bad TLS record, plaintext MQTT on a TLS listener, a bad
//! WebSocket frame) is logged and closes the connection as a socket error. When the broker
//! closes a connection, its last output is encoded, each layer's [`Layer::close`] queues its
//! goodbye (TLS close_notify, WebSocket close frame), one drain writes what the socket takes,
//! and the socket is shut down.
//!
//! **Idle.** A layer that holds nothing a fresh one would not (a WebSocket between frames,
//! [`Layer::idle`]) lets an idle connection drop its layers and its `Extra` after a flush; the
//! listener's [`Stack::resume`] builds them again when bytes next come or go, so an idle
//! WebSocket connection costs what a plain one does. TLS layers are never idle.
//!
//! **Timeouts.** The broker times a connection from `Broker::open`, which is called at accept:
//! a handshake that does not finish in time is closed by the broker's `connect_timeout` like a
//! client that never sends CONNECT.
//!
//! # Files
//!
//! This file holds the [`Server`] and its loop: `run`, the read path (`read`, `resume`), the
//! write path (`flush`), lingering and closing. Beside it: `listen.rs` (binding listeners,
//! accepting connections), `transport.rs` ([`Layer`], [`Stack`], draining layers to the
//! socket), `sock.rs` (a connection's slab slot and its `Extra`: kept tail, layers, parking an
//! idle connection's layers), `autosave.rs` (the persistence file and when it is written),
//! `signals.rs` (signals as loop events, SIGHUP reload), `bridge.rs` (outgoing bridge
//! connections), `tls.rs` / `tls_client.rs` and `websocket.rs` (the layers) with `ws.rs` (the
//! WebSocket protocol, no IO) and `http.rs` (`http_dir` files).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

mod autosave;
mod bridge;
pub mod http;
mod listen;
mod signals;
mod sock;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tls")]
pub mod tls_client;
mod transport;
pub mod websocket;
pub mod ws;

pub use listen::{bind, Bound};
pub use signals::{Signal, Signals};
pub use transport::{Layer, NewLayers, Stack};

use autosave::Persist;
use listen::peer_string;
use sock::{feed, feed_kept, mid_long_packet, park, unpark, Extra, Sock};
use transport::{drain_layers, Down};

use crate::broker::{Broker, ConnId, ListenerPolicy, Millis};

/// Tokens below this belong to listeners; a connection's token is its slab key plus this.
const CONN_BASE: usize = 1 << 16;
/// The signal wake-up socket's token.
const SIGNAL_TOKEN: usize = CONN_BASE - 1;

/// What SIGHUP re-read: the listeners' policies, and their transports unless those failed to
/// load (then new connections keep getting the old ones).
pub struct Reloaded {
    pub policies: Vec<ListenerPolicy>,
    pub stacks: Option<Vec<Stack>>,
}

/// Re-reads the security files on SIGHUP, or says why not.
pub type Reload = Box<dyn FnMut() -> Result<Reloaded, String>>;
/// Reads per turn of the loop before a connection yields to the others. One read (up to
/// `READ_CHUNK`, about 1,000 small PUBLISHes) per turn: output is written at the end of each
/// turn, so a publisher read for longer than its subscribers are written to only fills their
/// queues (measured: one unpaced QoS 0 publisher, 16 reads a turn: 17,000 msg/s delivered,
/// 99 % dropped, 225 ms latency for other clients; one read a turn: 1.5 M msg/s delivered,
/// none dropped, about 1 ms).
const READS_PER_TURN: usize = 1;
const READ_CHUNK: usize = 64 * 1024;
/// The read after one that ended inside a long packet (1 KiB or more, `sock::mid_long_packet`)
/// may take this much: a connection sending long messages then has up to 256 KiB of them
/// handled per turn, and each subscriber's vectored write carries more of them, while a
/// connection of short packets is still read 64 KiB (about 1,000 packets) at a time. Measured
/// on a QoS 0 fan-out of 16 KiB to 50 subscribers (alternating runs, BENCHMARKS.md).
const LONG_READ: usize = 256 * 1024;
/// Most runs of broker output passed to one vectored write (Linux takes up to 1,024).
const WRITE_SLICES: usize = 64;
/// How long a closed connection's input is read and dropped before the socket is closed.
const LINGER_MS: Millis = 2_000;
/// How often lingering connections are read.
const LINGER_POLL_MS: Millis = 20;
/// At most this many lingering connections (each holds a file descriptor); more close at once.
const LINGER_MAX: usize = 1024;

/// The broker's clock: milliseconds since the server started. A field of its own so that it can
/// be read while a connection is borrowed.
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Millis {
        self.0.elapsed().as_millis() as Millis
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Bound>,
    socks: Slab<Sock>,
    broker: Broker,
    scratch: Vec<u8>,
    /// Decoded bytes between layers (two, used in turn), for connections with layers.
    up: [Vec<u8>; 2],
    /// Per listener configuration (`Bound::index`): the layers of its new connections.
    stacks: Vec<Stack>,
    clock: Clock,
    /// Connections that still had input when their turn ended.
    ready: Vec<usize>,
    /// Closed connections whose slots are released at the end of the batch.
    to_release: Vec<usize>,
    /// Closed plain connections whose write side is shut: what the client still sends is read
    /// and dropped until it closes or the deadline passes, so that it reads the broker's last
    /// packet (a DISCONNECT with a reason, a refusing CONNACK) rather than a reset.
    lingering: Vec<(TcpStream, Millis)>,
    dirty: Vec<ConnId>,
    /// After running out of file descriptors, when to try accepting again.
    accept_retry: Option<Millis>,
    nodelay: bool,
    signals: Option<Signals>,
    reload: Option<Reload>,
    persist: Option<Persist>,
    /// Bridges: the resolver thread, TLS client configurations.
    links: bridge::Links,
}

impl Server {
    /// `nodelay`: set TCP_NODELAY on client sockets (`set_tcp_nodelay`).
    pub fn new(broker: Broker, mut listeners: Vec<Bound>, nodelay: bool) -> io::Result<Server> {
        let poll = Poll::new()?;
        for (i, b) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(&mut b.listener, Token(i), Interest::READABLE)?;
        }
        Ok(Server {
            poll,
            listeners,
            socks: Slab::new(),
            broker,
            scratch: vec![0; LONG_READ],
            up: [Vec::new(), Vec::new()],
            stacks: Vec::new(),
            clock: Clock(Instant::now()),
            ready: Vec::new(),
            to_release: Vec::new(),
            lingering: Vec::new(),
            dirty: Vec::new(),
            accept_retry: None,
            nodelay,
            signals: None,
            reload: None,
            persist: None,
            links: bridge::Links::default(),
        })
    }

    /// The transports of the listeners' new connections, by listener configuration index
    /// (`Bound::index`); a listener without one is plain TCP. Open connections keep theirs.
    pub fn set_stacks(&mut self, stacks: Vec<Stack>) {
        self.stacks = stacks;
    }

    /// The broker, for inspection after the loop ends.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Milliseconds since the server started: the broker's clock.
    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Runs the event loop until an unrecoverable poll error.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut ready = Vec::new();
        loop {
            let now = self.now();
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                let linger =
                    (!self.lingering.is_empty()).then(|| now.saturating_add(LINGER_POLL_MS));
                let next = [
                    self.broker.next_deadline(),
                    self.accept_retry,
                    self.save_due(),
                    linger,
                ]
                .into_iter()
                .flatten()
                .min();
                next.map(|t| Duration::from_millis(t.saturating_sub(now)))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                let t = event.token().0;
                if t == SIGNAL_TOKEN {
                    if self.on_signals() {
                        info!("midge terminating");
                        let now = self.now();
                        self.broker.shutdown(now);
                        self.flush_dirty();
                        self.save();
                        return Ok(());
                    }
                    continue;
                }
                if t == bridge::RESOLVER_TOKEN {
                    self.bridges_resolved();
                    continue;
                }
                if t < CONN_BASE {
                    self.accept(t);
                    continue;
                }
                let key = t - CONN_BASE;
                match self.socks.get(key) {
                    Some(s) if !s.closing => {}
                    _ => continue,
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(key);
                    // Write what this read produced before reading the next client, so that
                    // subscribers' queues drain between publishers rather than once a turn.
                    self.flush_dirty();
                }
                if event.is_writable() {
                    self.flush(key);
                }
            }
            std::mem::swap(&mut ready, &mut self.ready);
            for key in ready.drain(..) {
                if let Some(s) = self.socks.get_mut(key) {
                    s.queued = false;
                    if !s.closing {
                        self.read(key);
                        self.flush_dirty();
                    }
                }
            }
            let now = self.now();
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            if self.broker.sys_due().is_some_and(|t| t <= now) {
                let rss = resident_bytes();
                self.broker.heap = (rss, self.broker.heap.1.max(rss));
            }
            self.broker.tick(now);
            self.bridges_due();
            self.flush_dirty();
            self.maybe_save(now);
            for key in self.to_release.drain(..) {
                let mut s = self.socks.remove(key);
                let _ = self.poll.registry().deregister(&mut s.stream);
                self.broker.release(key);
                if s.extra.is_none() && s.stack == 0 && self.lingering.len() < LINGER_MAX {
                    self.lingering
                        .push((s.stream, now.saturating_add(LINGER_MS)));
                }
            }
            self.linger(now);
        }
    }

    fn read(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(sock) = self.socks.get_mut(key) else {
                return;
            };
            let room = if mid_long_packet(&sock.extra) {
                LONG_READ
            } else {
                READ_CHUNK
            };
            let n = match sock
                .stream
                .read(self.scratch.get_mut(..room).unwrap_or_default())
            {
                Ok(0) => {
                    let now = self.now();
                    self.broker.lost(key, false, now);
                    self.closed(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let now = self.now();
                    self.broker.lost(key, !conn_lost(&e), now);
                    self.closed(key);
                    return;
                }
            };
            let now = self.clock.now();
            let mut data = &self.scratch[..n];
            unpark(sock, &self.stacks);
            if let Some(extra) = sock.extra.as_mut().filter(|e| !e.layers.is_empty()) {
                // Up through the layers: each one's output is the next one's input.
                let [a, b] = &mut self.up;
                let (mut from, mut to) = (a, b);
                for (i, layer) in extra.layers.iter_mut().enumerate() {
                    to.clear();
                    let input = if i == 0 { data } else { &from[..] };
                    if let Err(why) = layer.decode(input, to) {
                        let peer = sock.stream.peer_addr().map(peer_string);
                        let peer = peer.as_deref().unwrap_or("<unknown>");
                        warn!("Client connection from {peer} closed: {why}.");
                        self.broker.lost(key, true, now);
                        self.closed(key);
                        return;
                    }
                    if let Some(name) = layer.take_identity() {
                        self.broker.tls_identity(key, &name);
                    }
                    std::mem::swap(&mut from, &mut to);
                }
                data = &from[..];
            }
            feed(&mut self.broker, key, &mut sock.extra, data, now);
            if sock.extra.as_ref().is_some_and(|e| !e.layers.is_empty()) {
                // Handshake records and other answers a layer queued while decoding.
                self.flush(key);
            }
            if !self.still_reading(key) {
                return;
            }
        }
        // More may be waiting, and edge-triggered readiness will not say so again.
        if let Some(sock) = self.socks.get_mut(key) {
            if !sock.queued {
                sock.queued = true;
                self.ready.push(key);
            }
        }
    }

    /// After bytes were handled: closes the socket if the broker closed the connection; false
    /// when reading must stop (closed, or paused by backpressure until `resume`).
    fn still_reading(&mut self, key: usize) -> bool {
        if self.broker.is_closed(key) {
            self.closed(key);
            return false;
        }
        !self.broker.is_paused(key)
    }

    /// A paused connection may go on: hand the broker the bytes kept for it, then read.
    fn resume(&mut self, key: usize) {
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
        if sock.closing {
            return;
        }
        if sock.extra.as_ref().is_some_and(|e| !e.kept.is_empty()) {
            let now = self.clock.now();
            feed_kept(&mut self.broker, key, &mut sock.extra, now);
            if !self.still_reading(key) {
                return;
            }
        }
        self.read(key);
    }

    /// Writes what the broker has queued for `key`, until it is all written or the socket is
    /// full; then asks for `WRITABLE` only if output remains.
    fn flush(&mut self, key: usize) {
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
        let mut pending = false;
        let mut failed = false;
        let mut finished = false;
        if !self.broker.output(key).is_empty() {
            unpark(sock, &self.stacks);
        }
        loop {
            let layers = match sock.extra.as_mut() {
                Some(e) if !e.layers.is_empty() => Some(&mut e.layers),
                _ => None,
            };
            let r = match layers {
                None => {
                    // Plain TCP: every pending run (packet heads, shared payloads) in one
                    // vectored write, straight from the broker's output.
                    let mut bufs = [IoSlice::new(&[]); WRITE_SLICES];
                    let k = self.broker.output_vectored(key, &mut bufs);
                    if k == 0 {
                        break;
                    }
                    sock.stream.write_vectored(&bufs[..k])
                }
                Some(layers) => match drain_layers(layers, &mut sock.stream) {
                    Ok(()) => {
                        if layers.iter().any(|l| l.finished()) {
                            finished = true;
                            break;
                        }
                        let out = self.broker.output(key);
                        if out.is_empty() {
                            break;
                        }
                        let top = layers.len() - 1;
                        let (below, top) = layers.split_at_mut(top);
                        let sent = match below.last_mut() {
                            Some(b) => top[0].send(out, &mut Down(b.as_mut())),
                            None => top[0].send(out, &mut sock.stream),
                        };
                        match sent {
                            Ok(0) => {
                                // Drained, yet no room: wait for the socket.
                                pending = true;
                                break;
                            }
                            r => r,
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            match r {
                Ok(n) => {
                    let now = self.clock.now();
                    self.broker.written(key, n, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pending = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = !conn_lost(&e);
                    finished |= !failed;
                    break;
                }
            }
        }
        if failed || finished {
            let now = self.now();
            self.broker.lost(key, failed, now);
        }
        if self.broker.is_closed(key) {
            self.closed(key);
            return;
        }
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
        if !pending {
            park(sock);
        }
        if pending != sock.writable {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut sock.stream, Token(CONN_BASE + key), interest)
                .is_ok()
            {
                sock.writable = pending;
            }
        }
    }

    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        let mut resumed = Vec::new();
        loop {
            self.broker.take_dirty(&mut dirty);
            if dirty.is_empty() {
                self.broker.take_resumed(&mut resumed);
                if resumed.is_empty() {
                    break;
                }
                for &key in &resumed {
                    self.resume(key);
                }
                continue;
            }
            for &key in &dirty {
                if self.socks.get(key).is_some_and(|s| !s.closing) {
                    self.flush(key);
                }
            }
        }
        self.dirty = dirty;
    }

    /// The broker has closed `key`: write what is left if the socket takes it, shut it down,
    /// and release the slot after this batch.
    /// Reads and drops what lingering connections received; closes those whose client closed
    /// too, failed, or whose time is up.
    fn linger(&mut self, now: Millis) {
        let buf = &mut self.scratch;
        self.lingering.retain_mut(|(s, until)| {
            if now >= *until {
                return false;
            }
            loop {
                match s.read(buf) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
        });
    }

    fn closed(&mut self, key: usize) {
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
        if sock.closing {
            return;
        }
        sock.closing = true;
        unpark(sock, &self.stacks);
        match sock.extra.as_mut() {
            Some(e) if !e.layers.is_empty() => {
                if let Some(top) = e.layers.last_mut() {
                    // The output's runs, while the layer takes them whole.
                    loop {
                        let out = self.broker.output(key);
                        let n = top.encode(out);
                        if out.is_empty() || n < out.len() {
                            break;
                        }
                        let now = self.clock.now();
                        self.broker.written(key, n, now);
                    }
                }
                // Top down, each goodbye written through the layers below before they close.
                for i in (0..e.layers.len()).rev() {
                    e.layers[i].close();
                    let _ = drain_layers(&mut e.layers, &mut sock.stream);
                }
            }
            _ => {
                let mut bufs = [IoSlice::new(&[]); WRITE_SLICES];
                let k = self.broker.output_vectored(key, &mut bufs);
                if k > 0 {
                    let _ = sock.stream.write_vectored(&bufs[..k]);
                }
            }
        }
        // A plain connection shuts its write side only and lingers (see `lingering`).
        let plain = sock.stack == 0 && sock.extra.as_ref().is_none_or(|e| e.layers.is_empty());
        let _ = sock.stream.shutdown(if plain {
            Shutdown::Write
        } else {
            Shutdown::Both
        });
        if !plain {
            // Not lingering: released as it is.
            sock.stack = u8::MAX;
        }
        sock.extra = None;
        self.to_release.push(key);
    }
}

/// The process's resident memory, from `VmRSS` in /proc/self/status (in kB, whatever the page
/// size: a Pi 5's kernel uses 16 KiB pages); 0 where unavailable.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_rss_kib(&s))
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// The `VmRSS:   1234 kB` line of a /proc/PID/status text, in KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The peer closed or reset its end (mosquitto's "connection lost"): logged as "Client X closed
/// its connection.", as mosquitto logs it, rather than as a socket error.
fn conn_lost(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn resident_memory_is_read_from_vm_rss_in_kib() {
        let status = "Name:\tmidge\nVmPeak:\t   9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(vm_rss_kib(status), Some(1234));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert!(resident_bytes() > 0);
    }
    use super::sock::Kept;
    use super::*;

    /// A plain connection's slot stays one socket, one pointer and three flags, as it was
    /// before transports (when "bytes per idle connection" was measured).
    #[test]
    fn an_idle_plain_connection_pays_nothing_for_transports() {
        #[allow(dead_code, clippy::box_collection)]
        struct Before {
            stream: TcpStream,
            rbuf: Option<Box<Vec<u8>>>,
            writable: bool,
            closing: bool,
            queued: bool,
        }
        assert_eq!(std::mem::size_of::<Kept>(), std::mem::size_of::<usize>());
        assert_eq!(std::mem::size_of::<Sock>(), std::mem::size_of::<Before>());
    }

    /// A layer that frames each chunk as `len, bytes...` and holds at most `cap` bytes.
    struct Framing {
        out: Vec<u8>,
        cap: usize,
        closed: bool,
    }

    impl Layer for Framing {
        fn decode(&mut self, input: &[u8], up: &mut Vec<u8>) -> Result<(), String> {
            up.extend(input.iter().map(|b| b ^ 0x55));
            Ok(())
        }
        fn encode(&mut self, data: &[u8]) -> usize {
            let room = self.cap.saturating_sub(self.out.len() + 1).min(255);
            let n = data.len().min(room);
            if n > 0 {
                self.out.push(n as u8);
                self.out.extend_from_slice(&data[..n]);
            }
            n
        }
        fn drain(&mut self, down: &mut dyn Write) -> io::Result<()> {
            while !self.out.is_empty() {
                let n = down.write(&self.out)?;
                self.out.drain(..n);
            }
            Ok(())
        }
        fn pending(&self) -> bool {
            !self.out.is_empty()
        }
        fn close(&mut self) {
            if !self.closed {
                self.closed = true;
                self.out.push(0);
            }
        }
    }

    /// Bytes go down through two bounded layers into the socket, each layer framing what the
    /// one above gave it, and a full layer only delays the one above it.
    #[test]
    fn layers_drain_down_to_the_socket_through_small_buffers() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(server);
        let mut layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Framing {
                out: Vec::new(),
                cap: 8,
                closed: false,
            }),
            Box::new(Framing {
                out: Vec::new(),
                cap: 6,
                closed: false,
            }),
        ];
        let msg = b"0123456789";
        let mut sent = 0;
        while sent < msg.len() {
            drain_layers(&mut layers, &mut stream).unwrap();
            let n = layers[1].encode(&msg[sent..]);
            assert!(n > 0);
            sent += n;
        }
        layers[1].close();
        drain_layers(&mut layers, &mut stream).unwrap();
        layers[0].close();
        drain_layers(&mut layers, &mut stream).unwrap();
        drop(stream);
        let mut got = Vec::new();
        let mut client = client;
        client.read_to_end(&mut got).unwrap();
        // Unframe twice: the bottom layer's frames carry the top layer's frames.
        let unframe = |b: &[u8]| {
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                let n = b[i] as usize;
                out.extend_from_slice(&b[i + 1..i + 1 + n]);
                i += 1 + n;
                if n == 0 {
                    break;
                }
            }
            (out, i)
        };
        let (inner, used) = unframe(&got);
        assert_eq!(used, got.len());
        let (plain, _) = unframe(&inner);
        assert_eq!(plain, msg);
        // Both goodbyes arrived: the top one inside the bottom layer's frames, then the bottom.
        assert_eq!(inner.last(), Some(&0));
        assert_eq!(got.last(), Some(&0));
    }
}
