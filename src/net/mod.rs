//! The network layer: one thread, one `mio::Poll`, a `Slab` of sockets.
//!
//! Readiness is edge-triggered: a readable socket is read until `WouldBlock` (or until it has had
//! its fair share of the loop, then it waits in a ready list), output is written until
//! `WouldBlock`, and `WRITABLE` interest is held only while output is pending. A connection the
//! broker closes is flushed and shut down at once but keeps its slab slot until the whole batch of
//! events has been handled, so no stale event can reach a reused slot. Bytes are read into one
//! shared buffer and handed to the broker straight from it; only the tail of an incomplete
//! packet is copied into a per-connection buffer, so an idle connection holds no buffers.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

mod signals;

pub use signals::{Signal, Signals};

use crate::broker::{Broker, ConnId, ListenerPolicy, Millis};
use crate::config::{Domain, Listener};

/// Tokens below this belong to listeners; a connection's token is its slab key plus this.
const CONN_BASE: usize = 1 << 16;
/// The signal wake-up socket's token.
const SIGNAL_TOKEN: usize = CONN_BASE - 1;

/// Re-reads the security files on SIGHUP: new listener policies, or why not.
pub type Reload = Box<dyn FnMut() -> Result<Vec<ListenerPolicy>, String>>;
/// Reads per turn of the loop before a connection yields to the others. One read (up to
/// `READ_CHUNK`, about 1,000 small PUBLISHes) per turn: output is written at the end of each
/// turn, so a publisher read for longer than its subscribers are written to only fills their
/// queues (measured: one unpaced QoS 0 publisher, 16 reads a turn: 17,000 msg/s delivered,
/// 99 % dropped, 225 ms latency for other clients; one read a turn: 1.5 M msg/s delivered,
/// none dropped, about 1 ms).
const READS_PER_TURN: usize = 1;
const READ_CHUNK: usize = 64 * 1024;

/// Bytes kept between reads: 8 bytes in every connection's slot instead of a `Vec`'s 24, one
/// more allocation only while a packet is incomplete.
#[allow(clippy::box_collection)]
type Kept = Option<Box<Vec<u8>>>;

struct Sock {
    stream: TcpStream,
    /// The incomplete packet left over from earlier reads (none, unallocated, when none): a
    /// pointer, not a `Vec`, since an idle connection has none.
    rbuf: Kept,
    writable: bool,
    /// The broker has closed it; the slot is released after the current batch.
    closing: bool,
    /// In `Server::ready`: read again next turn. Each connection is there at most once, so
    /// a turn reads at most `READS_PER_TURN` chunks from it however long it floods.
    queued: bool,
}

/// A bound listening socket.
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
    /// Index of the listener configuration it belongs to (the broker's listener policy).
    pub index: usize,
}

/// Binds the configured listeners (index i of `listeners` becomes policy i), or mosquitto's
/// local-only pair (policy 0) when there are none.
pub fn bind(listeners: &[Listener], local_only_port: u16) -> io::Result<Vec<Bound>> {
    let mut out = Vec::new();
    // (addresses to try, whether failing is tolerated, interface, v6 only)
    type Spec = (Vec<SocketAddr>, bool, Option<String>, bool);
    let specs: Vec<Spec> = if listeners.is_empty() {
        let p = local_only_port;
        vec![
            (
                vec![SocketAddr::from(([127, 0, 0, 1], p))],
                false,
                None,
                false,
            ),
            (
                vec![SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], p))],
                true,
                None,
                true,
            ),
        ]
    } else {
        let mut v = Vec::new();
        for l in listeners {
            let v4 = SocketAddr::from(([0u8; 4], l.port));
            let v6 = SocketAddr::from(([0u16; 8], l.port));
            let addrs: Vec<SocketAddr> = match &l.bind {
                // [::] accepts IPv4 too (as IPv4-mapped addresses); 0.0.0.0 if IPv6 is off.
                None => match l.socket_domain {
                    None => vec![v6, v4],
                    Some(Domain::Ipv4) => vec![v4],
                    Some(Domain::Ipv6) => vec![v6],
                },
                Some(host) => (host.as_str(), l.port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("listener address '{host}': {e}"))
                    })?
                    .filter(|a| match l.socket_domain {
                        None => true,
                        Some(Domain::Ipv4) => a.is_ipv4(),
                        Some(Domain::Ipv6) => a.is_ipv6(),
                    })
                    .collect(),
            };
            let v6_only = l.socket_domain == Some(Domain::Ipv6);
            v.push((addrs, false, l.bind_interface.clone(), v6_only));
        }
        v
    };
    for (index, (addrs, optional, iface, v6_only)) in specs.into_iter().enumerate() {
        let index = if listeners.is_empty() { 0 } else { index };
        let wildcard = addrs.len() == 2 && addrs.iter().all(|a| a.ip().is_unspecified());
        let mut last_err = None;
        let mut bound_any = false;
        for addr in addrs {
            match listen(addr, iface.as_deref(), v6_only || addr.ip().is_loopback()) {
                Ok(listener) => {
                    let local = listener.local_addr()?;
                    info!(
                        "Opening {} listen socket on port {}.",
                        if local.is_ipv4() { "ipv4" } else { "ipv6" },
                        local.port()
                    );
                    out.push(Bound {
                        listener,
                        addr: local,
                        index,
                    });
                    bound_any = true;
                    if wildcard {
                        // [::] already took the IPv4 side.
                        break;
                    }
                }
                Err(e) => {
                    if optional || (wildcard && addr.is_ipv6()) {
                        warn!(
                            "Could not open ipv6 listen socket on port {}: {e}.",
                            addr.port()
                        );
                    }
                    last_err = Some(io::Error::new(
                        e.kind(),
                        format!("cannot listen on {addr}: {e}"),
                    ));
                }
            }
        }
        // In local only mode a machine without IPv6 still gets its 127.0.0.1 listener.
        if !bound_any && !optional {
            return Err(last_err.unwrap_or_else(|| io::Error::other("no address to bind")));
        }
    }
    if out.is_empty() {
        return Err(io::Error::other("no listener could be opened"));
    }
    Ok(out)
}

/// A listening socket: SO_REUSEADDR, IPv6 sockets dual-stack unless `v6_only`, bound to
/// `iface` (SO_BINDTODEVICE) when given, non-blocking.
fn listen(addr: SocketAddr, iface: Option<&str>, v6_only: bool) -> io::Result<TcpListener> {
    use socket2::{Domain as D, Socket, Type};
    let domain = if addr.is_ipv4() { D::IPV4 } else { D::IPV6 };
    let sock = Socket::new(domain, Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(v6_only)?;
    }
    if let Some(name) = iface {
        sock.bind_device(Some(name.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("bind_interface {name}: {e}")))?;
    }
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(TcpListener::from_std(sock.into()))
}

fn peer_string(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        ip => ip,
    };
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{}", addr.port()),
        IpAddr::V6(v6) => format!("{v6}:{}", addr.port()),
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<Bound>,
    socks: Slab<Sock>,
    broker: Broker,
    scratch: Vec<u8>,
    start: Instant,
    /// Connections that still had input when their turn ended.
    ready: Vec<usize>,
    /// Closed connections whose slots are released at the end of the batch.
    to_release: Vec<usize>,
    dirty: Vec<ConnId>,
    /// After running out of file descriptors, when to try accepting again.
    accept_retry: Option<Millis>,
    nodelay: bool,
    signals: Option<Signals>,
    reload: Option<Reload>,
    persist: Option<Persist>,
}

/// The persistence file and when to write it.
struct Persist {
    store: crate::store::Store,
    autosave: crate::store::Autosave,
    last_at: Millis,
    last_changes: u64,
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
            scratch: vec![0; READ_CHUNK],
            start: Instant::now(),
            ready: Vec::new(),
            to_release: Vec::new(),
            dirty: Vec::new(),
            accept_retry: None,
            nodelay,
            signals: None,
            reload: None,
            persist: None,
        })
    }

    /// Saves to `store` per `autosave`, on SIGUSR1 and when stopping.
    pub fn persist(&mut self, store: crate::store::Store, autosave: crate::store::Autosave) {
        self.persist = Some(Persist {
            store,
            autosave,
            last_at: 0,
            last_changes: self.broker.changes(),
        });
    }

    /// Writes the snapshot now.
    fn save(&mut self) {
        let now = self.now();
        if let Some(p) = self.persist.as_mut() {
            crate::store::save_logged(&p.store, &self.broker);
            p.last_at = now;
            p.last_changes = self.broker.changes();
        }
    }

    /// When the next autosave is due (time-based autosave with unsaved changes).
    fn save_due(&self) -> Option<Millis> {
        let p = self.persist.as_ref()?;
        if p.autosave.interval == 0 || p.autosave.on_changes {
            return None;
        }
        if self.broker.changes() == p.last_changes {
            return None;
        }
        Some(p.last_at + p.autosave.interval as Millis * 1000)
    }

    fn maybe_save(&mut self, now: Millis) {
        let Some(p) = self.persist.as_ref() else {
            return;
        };
        let changed = self.broker.changes() - p.last_changes;
        let due = match (p.autosave.interval, p.autosave.on_changes) {
            (0, _) => false,
            (n, true) => changed >= n as u64,
            (_, false) => self.save_due().is_some_and(|t| t <= now),
        };
        if due {
            self.save();
        }
    }

    /// Handles SIGHUP (calling `reload`), SIGTERM and SIGINT (run returns) from now on.
    pub fn handle_signals(&mut self, mut signals: Signals, reload: Reload) -> io::Result<()> {
        self.poll.registry().register(
            &mut signals.wake,
            Token(SIGNAL_TOKEN),
            Interest::READABLE,
        )?;
        self.signals = Some(signals);
        self.reload = Some(reload);
        Ok(())
    }

    /// The broker, for inspection after the loop ends.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Handles pending signals; true when the loop must stop.
    fn on_signals(&mut self) -> bool {
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        let mut stop = false;
        for sig in signals.take() {
            match sig {
                Signal::Reload => {
                    info!("Reloading config.");
                    if let Some(reload) = self.reload.as_mut() {
                        match reload() {
                            Ok(p) => self.broker.set_policies(p),
                            Err(e) => error!("Error: reload failed, keeping the old rules: {e}"),
                        }
                    }
                }
                Signal::Stop => stop = true,
                Signal::Save => self.save(),
            }
        }
        stop
    }

    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
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
                let next = [
                    self.broker.next_deadline(),
                    self.accept_retry,
                    self.save_due(),
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
            self.flush_dirty();
            self.maybe_save(now);
            for key in self.to_release.drain(..) {
                let mut s = self.socks.remove(key);
                let _ = self.poll.registry().deregister(&mut s.stream);
                self.broker.release(key);
            }
        }
    }

    fn accept(&mut self, listener: usize) {
        let Some(b) = self.listeners.get(listener) else {
            return;
        };
        let index = b.index;
        loop {
            match b.listener.accept() {
                Ok((mut stream, addr)) => {
                    let key = self.socks.vacant_key();
                    if key >= usize::MAX - CONN_BASE {
                        drop(stream);
                        continue;
                    }
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(CONN_BASE + key),
                        Interest::READABLE,
                    ) {
                        error!("Unable to register new connection: {e}.");
                        continue;
                    }
                    if self.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    self.socks.insert(Sock {
                        stream,
                        rbuf: None,
                        writable: false,
                        closing: false,
                        queued: true,
                    });
                    let now = self.start.elapsed().as_millis() as Millis;
                    self.broker.open(key, &peer_string(addr), index, now);
                    // Data may have arrived with the connection; edge-triggered readiness
                    // will not report it again.
                    self.ready.push(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE/ENFILE and the like: leave the backlog and try again shortly
                    // rather than spin on a socket that stays readable.
                    error!("Unable to accept new connection: {e}.");
                    self.accept_retry = Some(self.now() + 100);
                    return;
                }
            }
        }
    }

    fn read(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(sock) = self.socks.get_mut(key) else {
                return;
            };
            let n = match sock.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let now = self.now();
                    self.broker.lost(key, false, now);
                    self.closed(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    let now = self.now();
                    self.broker.lost(key, true, now);
                    self.closed(key);
                    return;
                }
            };
            let now = self.start.elapsed().as_millis() as Millis;
            let data = &self.scratch[..n];
            match &mut sock.rbuf {
                None => {
                    let used = self.broker.received(key, data, now);
                    if used < n {
                        sock.rbuf = Some(Box::new(data[used..].to_vec()));
                    }
                }
                Some(kept) => {
                    kept.extend_from_slice(data);
                    feed_kept(&mut self.broker, key, &mut sock.rbuf, now);
                }
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
        if sock.rbuf.is_some() {
            let now = self.start.elapsed().as_millis() as Millis;
            feed_kept(&mut self.broker, key, &mut sock.rbuf, now);
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
        loop {
            let out = self.broker.output(key);
            if out.is_empty() {
                break;
            }
            match sock.stream.write(out) {
                Ok(n) => {
                    let now = self.start.elapsed().as_millis() as Millis;
                    self.broker.written(key, n, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    pending = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            let now = self.now();
            self.broker.lost(key, true, now);
        }
        if self.broker.is_closed(key) {
            self.closed(key);
            return;
        }
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
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
    fn closed(&mut self, key: usize) {
        let Some(sock) = self.socks.get_mut(key) else {
            return;
        };
        if sock.closing {
            return;
        }
        sock.closing = true;
        let out = self.broker.output(key);
        if !out.is_empty() {
            let _ = sock.stream.write(out);
        }
        let _ = sock.stream.shutdown(Shutdown::Both);
        sock.rbuf = None;
        self.to_release.push(key);
    }
}

/// Hands the broker the bytes kept for `key` and keeps what it did not consume (an incomplete
/// packet, or everything after a pause); the buffer is freed once empty.
fn feed_kept(broker: &mut Broker, key: usize, rbuf: &mut Kept, now: Millis) {
    let Some(kept) = rbuf else {
        return;
    };
    let used = broker.received(key, kept, now);
    if used >= kept.len() {
        *rbuf = None;
    } else {
        kept.drain(..used);
    }
}

/// The process's resident memory, from /proc/self/statm (0 where unavailable).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
