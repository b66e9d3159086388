//! The load generator's event loop: one thread, one `mio::Poll`, nonblocking sockets, PUBLISH
//! packets written in 64 kB batches and read in up to 256 kB per syscall.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::proto::{self, In, Spread, Template};
use crate::stats::{Histogram, RecvStream, Seen};
use crate::stream::{Stream, TlsClient};
use crate::ws;

/// Bytes of PUBLISH packets a publisher encodes before each write.
const BATCH: usize = 64 * 1024;
/// Reads per readiness event before the connection is put back in the queue, so one busy
/// socket cannot starve the others.
const READ_BUDGET: usize = 4;
/// Read buffer of an active (publishing or subscribed) connection.
const ACTIVE_RBUF: usize = 256 * 1024;
/// Read buffer of an idle connection (grown when a packet needs more).
const IDLE_RBUF: usize = 128;
/// A PUBLISH whose bytes beyond those read are at least this many is handled from its first
/// `SKIP_PREFIX` bytes (its header and the payload's stamp; nothing after the stamp is checked)
/// and the rest is discarded in the kernel without being copied out (`recv` with `MSG_TRUNC`,
/// plain TCP only): reading 50 copies of every long payload would otherwise make the load
/// generator, not the broker, the limit of a long-payload fan-out.
const SKIP_MIN: usize = 4096;
const SKIP_PREFIX: usize = 1024;
/// Topic filters per SUBSCRIBE packet when a connection subscribes to many.
const SUB_BATCH: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// Publishes stream `n`.
    Pub(u32),
    /// Subscriber `n`.
    Sub(u32),
    /// Connects and holds.
    Idle,
    /// Connects, subscribes, then never reads its socket again (a slow or stuck consumer).
    Sink,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    WaitConnack,
    WaitSuback,
    Ready,
    Dead,
}

/// Which streams each subscriber is meant to receive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Route {
    /// Every subscriber receives every stream (fan-in: one subscriber; fan-out: one stream).
    All,
    /// Subscriber n receives stream n only (a stream with no subscriber n goes nowhere).
    Pairs,
    /// Every message goes to exactly one subscriber: message `seq` of a stream published on a
    /// [`Spread`] topic reaches subscriber `(seq % modulo) % cols`.
    Spread { modulo: u64, cols: u64 },
}

#[derive(Clone, Debug)]
pub struct Params {
    pub addr: SocketAddr,
    pub v5: bool,
    pub qos: u8,
    pub nodelay: bool,
    pub keep_alive: u16,
    pub max_packet: usize,
    pub window: u32,
    /// How many messages a publisher may be ahead of the slowest subscriber of its stream
    /// (by the highest sequence number it received); 0: no limit.
    pub backlog: u64,
    /// MQTT over WebSockets (the broker's `protocol websockets` listener at `addr`).
    pub ws: bool,
    /// Where subscribers connect, if not to `addr` (a bridged pair of brokers).
    pub sub_addr: Option<SocketAddr>,
    /// TLS (`--tls`), or plain TCP.
    pub tls: TlsClient,
}

/// What a publisher sends: see [`Engine::add_publisher_spec`].
pub struct PubSpec<'a> {
    /// The topic, or with `spread` the prefix of the numbered topics.
    pub topic: &'a str,
    pub spread: Option<Spread>,
    pub stream: u32,
    pub size: usize,
    /// Messages to send in all (`u64::MAX`: until the time is up).
    pub limit: u64,
    /// Messages per second, 0: as fast as possible.
    pub rate: f64,
    pub qos: u8,
    pub retain: bool,
    /// A background publisher (a probe) does not keep a run going: the publishing stage
    /// ends when the other active publishers are done, or at the time limit.
    pub background: bool,
}

/// What one publisher is doing.
struct PubState {
    tpl: Template,
    stream: u32,
    qos: u8,
    background: bool,
    /// Only active publishers send.
    active: bool,
    next_seq: u64,
    limit: u64,
    window: u32,
    inflight: u32,
    /// Per packet identifier: 0 free, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP.
    pids: Vec<u8>,
    next_pid: u16,
    acked: u64,
    /// 0: as fast as possible; else nanoseconds between two messages.
    interval_ns: u64,
    next_due_ns: u64,
}

struct Conn {
    sock: Stream,
    role: Role,
    state: State,
    rbuf: Vec<u8>,
    rlo: usize,
    rhi: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    /// With `--ws`: `wbuf[..wframed]` is ready for the wire, what follows still needs a frame.
    wframed: usize,
    ws: Option<Box<ws::Rx>>,
    write_blocked: bool,
    hot: bool,
    ping_wait: bool,
    last_tx: Instant,
    /// Filters still to subscribe to (sent after CONNACK, or by [`Engine::subscribe_more`]).
    filters: Vec<String>,
    next_sub_pid: u16,
    /// SUBACKs still due.
    subacks_due: u32,
    publisher: Option<Box<PubState>>,
    /// Bytes of the PUBLISH being received still to discard unread (see [`SKIP_MIN`]).
    skip: usize,
    /// The last PUBLISH was long: read the next one's first bytes only, then skip the rest.
    long: bool,
}

#[derive(Default, Debug, Clone)]
pub struct Counters {
    /// Connections the broker closed (or that failed) after they were established.
    pub closed: u64,
    /// Connections that never got to CONNACK (refused, reset, timed out).
    pub connect_failed: u64,
    /// CONNACK with a non-zero return code.
    pub refused: u64,
    pub suback_failed: u64,
    /// Acknowledgements with an error reason code (MQTT 5) or for an identifier not in flight.
    pub ack_errors: u64,
    /// Packets that should not arrive where they did, or could not be parsed.
    pub protocol_errors: u64,
    /// Payload bytes discarded in the kernel unread (see [`SKIP_MIN`]).
    pub skipped: u64,
    /// A PUBLISH of a known stream at a subscriber not meant to receive it.
    pub unexpected: u64,
    /// A PUBLISH whose payload stamp is short or names an unknown stream or sequence.
    pub corrupt: u64,
    pub pingresp: u64,
    /// Every PUBLISH received, duplicates included.
    pub received: u64,
    /// PUBLISH packets received with the RETAIN flag.
    pub retained: u64,
    /// Sinks (subscribers that do not read) the broker closed.
    pub sinks_closed: u64,
    /// Last reason a connection was lost, for the report.
    pub last_error: Option<String>,
}

pub struct Engine {
    poll: Poll,
    events: Option<Events>,
    p: Params,
    conns: Vec<Conn>,
    pubs: Vec<usize>,
    route: Route,
    /// Per subscriber, per stream.
    pub subs: Vec<Vec<RecvStream>>,
    /// Per stream: messages encoded so far.
    pub published: Vec<u64>,
    pub hist: Histogram,
    pub c: Counters,
    /// Deliveries of a message to a subscriber meant to get it, the first time.
    pub delivered: u64,
    pub last_delivery: Option<Instant>,
    /// When a publisher last had a message acknowledged (PUBACK, PUBCOMP).
    pub last_ack: Option<Instant>,
    base: Instant,
    now: Instant,
    hot: Vec<usize>,
    pending: usize,
    last_progress: Instant,
    shutting_down: bool,
    /// SUBACKs due on established connections (see [`Engine::subscribe_more`]).
    subacks_pending: u64,
}

fn ns_since(base: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(base).as_nanos() as u64
}

impl Engine {
    /// The caller's 200 ms `tick` and the 1 s keepalive, when due.
    fn periodic(
        &mut self,
        now: Instant,
        last_tick: &mut Instant,
        last_ka: &mut Instant,
        tick: &mut dyn FnMut(),
    ) {
        if now.duration_since(*last_tick) >= Duration::from_millis(200) {
            *last_tick = now;
            tick();
        }
        if now.duration_since(*last_ka) >= Duration::from_secs(1) {
            *last_ka = now;
            self.keepalive();
        }
    }

    pub fn new(p: Params, route: Route, streams: usize, subs: usize) -> io::Result<Engine> {
        let now = Instant::now();
        Ok(Engine {
            poll: Poll::new()?,
            events: Some(Events::with_capacity(1024)),
            p,
            conns: Vec::new(),
            pubs: Vec::new(),
            route,
            subs: vec![vec![RecvStream::default(); streams]; subs],
            published: vec![0; streams],
            hist: Histogram::default(),
            c: Counters::default(),
            delivered: 0,
            last_delivery: None,
            last_ack: None,
            base: now,
            now,
            hot: Vec::new(),
            pending: 0,
            last_progress: now,
            shutting_down: false,
            subacks_pending: 0,
        })
    }

    /// Connections currently established (CONNACK, and SUBACK for subscribers, received).
    pub fn ready(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.state == State::Ready)
            .count()
    }

    /// Messages acknowledged to publishers (QoS 1 PUBACK, QoS 2 PUBCOMP).
    pub fn acked(&self) -> u64 {
        self.pubs
            .iter()
            .filter_map(|&i| self.conns[i].publisher.as_ref())
            .map(|p| p.acked)
            .sum()
    }

    /// Messages still awaiting their acknowledgement.
    pub fn unacked(&self) -> u64 {
        self.pubs
            .iter()
            .filter_map(|&i| self.conns[i].publisher.as_ref())
            .map(|p| p.inflight as u64)
            .sum()
    }

    /// Deliveries the subscribers should get for what was published.
    pub fn expected(&self) -> u64 {
        match self.route {
            Route::All => self.published.iter().sum::<u64>() * self.subs.len() as u64,
            Route::Pairs => self.published.iter().take(self.subs.len()).sum(),
            Route::Spread { .. } => self.published.iter().sum(),
        }
    }

    /// Whether message `seq` of `stream` is meant for subscriber `sub`.
    pub(crate) fn expects(&self, sub: usize, stream: usize, seq: u64) -> bool {
        match self.route {
            Route::All => true,
            Route::Pairs => sub == stream,
            Route::Spread { modulo, cols } => (seq % modulo.max(1)) % cols.max(1) == sub as u64,
        }
    }

    fn open(&mut self, role: Role, client_id: &str, filters: Vec<String>) {
        let addr = match (role, self.p.sub_addr) {
            (Role::Sub(_), Some(a)) => a,
            _ => self.p.addr,
        };
        let sock = if role == Role::Sink {
            sink_socket(addr)
        } else {
            TcpStream::connect(addr)
        };
        let sock = match sock {
            Ok(s) => s,
            Err(e) => {
                self.c.connect_failed += 1;
                self.c.last_error = Some(format!("connect: {e}"));
                return;
            }
        };
        if self.p.nodelay {
            let _ = sock.set_nodelay(true);
        }
        let i = self.conns.len();
        let mut sock = match Stream::new(sock, &self.p.tls) {
            Ok(s) => s,
            Err(e) => {
                self.c.connect_failed += 1;
                self.c.last_error = Some(format!("TLS: {e}"));
                return;
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock.tcp,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.c.connect_failed += 1;
            self.c.last_error = Some(format!("register: {e}"));
            return;
        }
        let active = !matches!(role, Role::Idle | Role::Sink);
        let mut wbuf = Vec::with_capacity(if active { 2 * BATCH } else { 64 });
        let mut wframed = 0;
        if self.p.ws {
            ws::request(&mut wbuf, &self.p.addr.to_string());
            wframed = wbuf.len();
        }
        proto::connect(&mut wbuf, self.p.v5, client_id, self.p.keep_alive);
        self.conns.push(Conn {
            sock,
            role,
            state: State::WaitConnack,
            rbuf: vec![0; if active { ACTIVE_RBUF } else { IDLE_RBUF }],
            rlo: 0,
            rhi: 0,
            wbuf,
            wpos: 0,
            wframed,
            ws: self.p.ws.then(Box::default),
            write_blocked: false,
            hot: false,
            ping_wait: false,
            last_tx: self.now,
            filters,
            next_sub_pid: 1,
            subacks_due: 0,
            publisher: None,
            skip: 0,
            long: false,
        });
        self.pending += 1;
        self.flush(i);
    }

    /// Opens connections `window` at a time until each is ready (or failed), or `deadline`.
    /// Subscribers (filters given) subscribe at QoS `qos` before they count as ready.
    pub fn connect_all(
        &mut self,
        specs: Vec<(Role, String, Vec<String>)>,
        window: usize,
        deadline: Instant,
    ) -> io::Result<()> {
        let mut specs = specs.into_iter();
        let mut left = specs.len();
        loop {
            while left > 0 && self.pending < window.max(1) {
                let (role, id, filters) = specs.next().expect("counted");
                left -= 1;
                self.open(role, &id, filters);
            }
            if left == 0 && self.pending == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Whatever is still pending has failed.
                for i in 0..self.conns.len() {
                    if matches!(self.conns[i].state, State::WaitConnack | State::WaitSuback) {
                        self.close(i, "no CONNACK/SUBACK before the connect timeout");
                    }
                }
                self.c.connect_failed += left as u64;
                return Ok(());
            }
            self.poll_once(Some(Duration::from_millis(20)))?;
            self.run_hot();
        }
    }

    /// Sets up publisher stream `stream` (at the run's QoS) on its connection (already open).
    pub fn add_publisher(&mut self, topic: &str, stream: u32, size: usize, limit: u64, rate: f64) {
        self.add_publisher_spec(&PubSpec {
            topic,
            spread: None,
            stream,
            size,
            limit,
            rate,
            qos: self.p.qos,
            retain: false,
            background: false,
        });
    }

    /// Sets up a publisher on the connection of role `Pub(spec.stream)` (already open).
    pub fn add_publisher_spec(&mut self, spec: &PubSpec) {
        let Some(i) = self
            .conns
            .iter()
            .position(|c| c.role == Role::Pub(spec.stream))
        else {
            return;
        };
        let (qos, rate, limit, stream) = (spec.qos, spec.rate, spec.limit, spec.stream);
        let receive_max = self.p.window;
        let tpl = Template::build(
            self.p.v5,
            spec.topic,
            spec.spread,
            qos,
            spec.size,
            stream,
            spec.retain,
        );
        self.conns[i].publisher = Some(Box::new(PubState {
            tpl,
            stream,
            qos,
            background: spec.background,
            active: true,
            next_seq: 0,
            limit,
            window: receive_max.clamp(1, 65_000),
            inflight: 0,
            pids: if qos > 0 { vec![0; 65_536] } else { Vec::new() },
            next_pid: 1,
            acked: 0,
            interval_ns: if rate > 0.0 {
                (1e9 / rate).max(1.0) as u64
            } else {
                0
            },
            next_due_ns: 0,
        }));
        self.pubs.push(i);
    }

    fn pub_mut(&mut self, stream: u32) -> Option<&mut PubState> {
        let i = *self
            .pubs
            .iter()
            .find(|&&i| self.conns[i].role == Role::Pub(stream))?;
        self.conns[i].publisher.as_deref_mut()
    }

    /// Lets publisher `stream` send (or not) in the next runs.
    pub fn set_active(&mut self, stream: u32, active: bool) {
        if let Some(p) = self.pub_mut(stream) {
            p.active = active;
        }
    }

    /// Messages publisher `stream` has had acknowledged (QoS 1/2) and still has in flight.
    pub fn pub_acks(&self, stream: u32) -> (u64, u64) {
        self.pubs
            .iter()
            .filter(|&&i| self.conns[i].role == Role::Pub(stream))
            .filter_map(|&i| self.conns[i].publisher.as_ref())
            .map(|p| (p.acked, p.inflight as u64))
            .next()
            .unwrap_or((0, 0))
    }

    /// Subscribes established connections to more filters (`SUB_BATCH` per SUBSCRIBE), and
    /// waits for every SUBACK or `deadline`. Returns the SUBACKs still missing.
    pub fn subscribe_more(
        &mut self,
        more: Vec<(Role, Vec<String>)>,
        deadline: Instant,
    ) -> io::Result<u64> {
        for (role, filters) in more {
            let Some(i) = self
                .conns
                .iter()
                .position(|c| c.role == role && c.state == State::Ready)
            else {
                continue;
            };
            self.conns[i].filters = filters;
            let n = self.send_subscribes(i);
            self.subacks_pending += n as u64;
            self.flush(i);
        }
        while self.subacks_pending > 0 && Instant::now() < deadline {
            self.poll_once(Some(Duration::from_millis(20)))?;
            self.run_hot();
        }
        Ok(self.subacks_pending)
    }

    /// Writes SUBSCRIBE packets for the connection's pending filters; returns how many.
    fn send_subscribes(&mut self, i: usize) -> u32 {
        let qos = self.p.qos;
        let v5 = self.p.v5;
        let c = &mut self.conns[i];
        let filters = std::mem::take(&mut c.filters);
        let mut n = 0;
        for chunk in filters.chunks(SUB_BATCH) {
            let pid = c.next_sub_pid;
            c.next_sub_pid = if pid == u16::MAX { 1 } else { pid + 1 };
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            proto::subscribe(&mut c.wbuf, v5, pid, &refs, qos);
            n += 1;
        }
        c.subacks_due += n;
        n
    }

    /// QoS 1/2 messages a publisher keeps in flight (after the broker's Receive Maximum).
    pub fn window(&self) -> u32 {
        self.p.window
    }

    /// The packet size of a publisher's PUBLISH.
    pub fn publish_len(&self) -> usize {
        self.pubs
            .first()
            .and_then(|&i| self.conns[i].publisher.as_ref())
            .map_or(0, |p| p.tpl.len())
    }

    fn close(&mut self, i: usize, why: &str) {
        let c = &mut self.conns[i];
        if c.state == State::Dead {
            return;
        }
        let was = c.state;
        c.state = State::Dead;
        let _ = self.poll.registry().deregister(&mut c.sock.tcp);
        c.sock.shutdown();
        c.wbuf = Vec::new();
        c.rbuf = Vec::new();
        c.wpos = 0;
        c.wframed = 0;
        c.rlo = 0;
        c.rhi = 0;
        if was == State::Ready {
            if !self.shutting_down {
                self.c.closed += 1;
                self.c.last_error = Some(why.to_string());
            }
        } else {
            self.pending -= 1;
            self.c.connect_failed += 1;
            self.c.last_error = Some(why.to_string());
        }
    }

    fn ready_now(&mut self, i: usize) {
        self.conns[i].state = State::Ready;
        self.pending -= 1;
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.state == State::Dead || c.write_blocked {
            return;
        }
        let mut err = None;
        if c.ws.is_some() && c.wframed < c.wbuf.len() {
            ws::frame_tail(&mut c.wbuf, c.wframed);
            c.wframed = c.wbuf.len();
        }
        while c.wpos < c.wbuf.len() {
            match c.sock.write(&c.wbuf[c.wpos..]) {
                Ok(0) => {
                    err = Some("write returned 0".to_string());
                    break;
                }
                Ok(n) => {
                    c.wpos += n;
                    c.last_tx = self.now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.write_blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(format!("write error: {e}"));
                    break;
                }
            }
        }
        if err.is_none() && !c.write_blocked {
            // TLS records still queued after the last write (nothing for plain TCP).
            match c.sock.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.write_blocked = true,
                Err(e) => err = Some(format!("write error: {e}")),
            }
        }
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
            c.wframed = 0;
        } else if c.wpos >= BATCH {
            c.wbuf.drain(..c.wpos);
            c.wframed = c.wframed.saturating_sub(c.wpos);
            c.wpos = 0;
        }
        if let Some(e) = err {
            self.close(i, &e);
        }
    }

    fn read(&mut self, i: usize) {
        let c = &self.conns[i];
        if c.state == State::Dead || (c.role == Role::Sink && c.state == State::Ready) {
            return;
        }
        let mut rbuf = std::mem::take(&mut self.conns[i].rbuf);
        let mut err: Option<String> = None;
        let mut budget = READ_BUDGET;
        'reads: loop {
            let c = &mut self.conns[i];
            if c.rlo > 0 {
                rbuf.copy_within(c.rlo..c.rhi, 0);
                c.rhi -= c.rlo;
                c.rlo = 0;
            }
            if c.rhi == rbuf.len() {
                if rbuf.len() >= self.p.max_packet {
                    err = Some("packet larger than the bench accepts".into());
                    break;
                }
                let n = (rbuf.len() * 2).min(self.p.max_packet);
                rbuf.resize(n, 0);
            }
            if c.skip > 0 {
                let want = c.skip.min(rbuf.len());
                match c.sock.discard(&mut rbuf[..want]) {
                    Ok(0) => {
                        err = Some("connection closed by the broker".into());
                        break;
                    }
                    Ok(n) => {
                        c.skip = c.skip.saturating_sub(n);
                        self.c.skipped += n as u64;
                        self.last_progress = Instant::now();
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        err = Some(format!("read error: {e}"));
                        break;
                    }
                }
            }
            // After a long PUBLISH, read no more than the next one's head and stamp at once.
            let end = if c.long {
                c.rhi.saturating_add(SKIP_PREFIX).min(rbuf.len())
            } else {
                rbuf.len()
            };
            match c.sock.read(&mut rbuf[c.rhi..end]) {
                Ok(0) => {
                    err = Some("connection closed by the broker".into());
                    break;
                }
                Ok(n) => match c.ws.as_mut() {
                    None => c.rhi += n,
                    Some(w) => {
                        c.rhi += w.decode(&mut rbuf[c.rhi..c.rhi + n]);
                        if w.closed {
                            err = Some("WebSocket closed by the broker".into());
                            break;
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    err = Some(format!("read error: {e}"));
                    break;
                }
            }
            let now = Instant::now();
            self.now = now;
            self.last_progress = now;
            let now_ns = ns_since(self.base, now);
            loop {
                let (lo, hi) = (self.conns[i].rlo, self.conns[i].rhi);
                match proto::frame(&rbuf[lo..hi]) {
                    Err(e) => {
                        err = Some(e.into());
                        break 'reads;
                    }
                    Ok(None) => break,
                    Ok(Some((b1, body, total))) => {
                        if total > hi - lo {
                            if total > self.p.max_packet {
                                err = Some("packet larger than the bench accepts".into());
                                break 'reads;
                            }
                            let c = &self.conns[i];
                            if b1 >> 4 == proto::PUBLISH
                                && total - (hi - lo) >= SKIP_MIN
                                && hi - lo >= body + SKIP_PREFIX
                                && c.ws.is_none()
                                && c.sock.is_plain()
                            {
                                // Handled from its first bytes; the rest is discarded unread.
                                let r = self.on_packet(i, b1, &rbuf[lo + body..hi], now, now_ns);
                                let c = &mut self.conns[i];
                                c.skip = total - (hi - lo);
                                c.long = true;
                                c.rlo = hi;
                                if let Err(e) = r {
                                    err = Some(e);
                                    break 'reads;
                                }
                                break;
                            }
                            if total > rbuf.len() {
                                rbuf.resize(total.next_power_of_two().min(self.p.max_packet), 0);
                            }
                            break;
                        }
                        let r = self.on_packet(i, b1, &rbuf[lo + body..lo + total], now, now_ns);
                        self.conns[i].rlo += total;
                        if total < SKIP_MIN {
                            self.conns[i].long = false;
                        }
                        if let Err(e) = r {
                            err = Some(e);
                            break 'reads;
                        }
                        let c = &self.conns[i];
                        if c.state == State::Dead
                            || (c.role == Role::Sink && c.state == State::Ready)
                        {
                            break 'reads;
                        }
                    }
                }
            }
            let c = &mut self.conns[i];
            if c.rlo == c.rhi {
                c.rlo = 0;
                c.rhi = 0;
            }
            budget -= 1;
            if budget == 0 {
                if !c.hot {
                    c.hot = true;
                    self.hot.push(i);
                }
                break;
            }
        }
        if self.conns[i].state != State::Dead {
            self.conns[i].rbuf = rbuf;
        }
        match err {
            Some(e) => self.close(i, &e),
            None => {
                if !self.conns[i].wbuf.is_empty() {
                    self.flush(i);
                }
            }
        }
    }

    fn on_packet(
        &mut self,
        i: usize,
        b1: u8,
        body: &[u8],
        now: Instant,
        now_ns: u64,
    ) -> Result<(), String> {
        let pkt = proto::parse(b1, body, self.p.v5).map_err(|e| e.to_string())?;
        let role = self.conns[i].role;
        let state = self.conns[i].state;
        match pkt {
            In::Connack { code, receive_max } => {
                if state != State::WaitConnack {
                    self.c.protocol_errors += 1;
                    return Ok(());
                }
                if code != 0 {
                    self.c.refused += 1;
                    return Err(format!("CONNACK refused the connection (code {code:#x})"));
                }
                if let Some(m) = receive_max {
                    self.p.window = self.p.window.min(m as u32);
                }
                if self.conns[i].filters.is_empty() {
                    self.ready_now(i);
                } else {
                    self.send_subscribes(i);
                    self.conns[i].state = State::WaitSuback;
                }
            }
            In::Suback { codes, .. } => {
                let c = &mut self.conns[i];
                if c.subacks_due == 0 {
                    self.c.protocol_errors += 1;
                    return Ok(());
                }
                c.subacks_due -= 1;
                if state == State::Ready {
                    self.subacks_pending = self.subacks_pending.saturating_sub(1);
                }
                if codes.iter().any(|&c| c >= 0x80) {
                    self.c.suback_failed += 1;
                    return Err(format!("SUBACK refused the subscription ({codes:x?})"));
                }
                if state == State::WaitSuback && c.subacks_due == 0 {
                    self.ready_now(i);
                }
            }
            In::Publish {
                qos,
                pid,
                payload,
                retain,
                ..
            } => {
                let Role::Sub(s) = role else {
                    self.c.protocol_errors += 1;
                    return Ok(());
                };
                let s = s as usize;
                self.c.received += 1;
                self.c.retained += u64::from(retain);
                match proto::read_stamp(payload) {
                    None => self.c.corrupt += 1,
                    Some(st) => {
                        let stream = st.stream as usize;
                        if stream >= self.published.len() || st.seq >= self.published[stream] {
                            self.c.corrupt += 1;
                        } else if !self.expects(s, stream, st.seq) {
                            self.c.unexpected += 1;
                        } else if self.subs[s][stream].record(st.seq) != Seen::Duplicate {
                            self.delivered += 1;
                            self.hist.record(now_ns.saturating_sub(st.ts_ns));
                            self.last_delivery = Some(now);
                        }
                    }
                }
                match qos {
                    1 => proto::ack(&mut self.conns[i].wbuf, proto::PUBACK, pid),
                    2 => proto::ack(&mut self.conns[i].wbuf, proto::PUBREC, pid),
                    _ => {}
                }
            }
            In::Ack { kind, pid, reason } => {
                if kind == proto::PUBREL {
                    // QoS 2 at a subscriber: release.
                    proto::ack(&mut self.conns[i].wbuf, proto::PUBCOMP, pid);
                    return Ok(());
                }
                let c = &mut self.conns[i];
                let Some(p) = c.publisher.as_mut() else {
                    self.c.protocol_errors += 1;
                    return Ok(());
                };
                if p.pids.is_empty() {
                    self.c.ack_errors += 1;
                    return Ok(());
                }
                let slot = &mut p.pids[pid as usize];
                let want = match (p.qos, kind) {
                    (1, proto::PUBACK) | (2, proto::PUBREC) => 1,
                    (2, proto::PUBCOMP) => 2,
                    _ => 0,
                };
                if want == 0 || *slot != want {
                    self.c.ack_errors += 1;
                    return Ok(());
                }
                // 0x10 "no matching subscribers" is a success; 0x80 and above are not.
                let failed = reason >= 0x80;
                if failed {
                    self.c.ack_errors += 1;
                }
                if kind == proto::PUBREC && !failed {
                    *slot = 2;
                    proto::ack(&mut c.wbuf, proto::PUBREL, pid);
                } else {
                    *slot = 0;
                    p.inflight -= 1;
                    if !failed {
                        p.acked += 1;
                        self.last_ack = Some(now);
                    }
                }
            }
            In::Pingresp => {
                let c = &mut self.conns[i];
                if c.ping_wait {
                    c.ping_wait = false;
                    self.c.pingresp += 1;
                }
            }
            In::Disconnect { reason } => {
                return Err(format!("DISCONNECT from the broker (reason {reason:#x})"));
            }
            In::Other(k) => {
                self.c.protocol_errors += 1;
                return Err(format!("unexpected packet type {k}"));
            }
        }
        Ok(())
    }

    fn poll_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut events = self.events.take().expect("events");
        let r = self.poll.poll(&mut events, timeout);
        self.now = Instant::now();
        if let Err(e) = r {
            self.events = Some(events);
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let c = &self.conns[i];
            if c.role == Role::Sink
                && c.state == State::Ready
                && (ev.is_read_closed() || ev.is_error())
            {
                // A sink does not read, so this is the only way it learns it was dropped.
                if !self.shutting_down {
                    self.c.sinks_closed += 1;
                }
                self.close(i, "the broker closed the sink");
                continue;
            }
            if ev.is_writable() || ev.is_write_closed() {
                self.conns[i].write_blocked = false;
                self.flush(i);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read(i);
            }
        }
        self.events = Some(events);
        Ok(())
    }

    /// Continues reading the connections whose read budget ran out.
    fn run_hot(&mut self) {
        for i in std::mem::take(&mut self.hot) {
            self.conns[i].hot = false;
            self.read(i);
        }
    }

    /// Encodes and writes what publisher connection `i` may send now. Returns whether it could
    /// send more right away (so the loop must not sleep), and its next due time when paced.
    fn produce(&mut self, i: usize, now_ns: u64) -> (bool, Option<u64>) {
        for _ in 0..4 {
            let (more, due) = self.can_send(i, now_ns);
            if !more {
                return (false, due);
            }
            let stream = self.conns[i].publisher.as_ref().map_or(0, |p| p.stream);
            let limit = self.backlog_limit(stream as usize);
            let c = &mut self.conns[i];
            let Some(p) = c.publisher.as_mut() else {
                return (false, None);
            };
            let limit = limit.min(p.limit);
            let qos = p.qos;
            while c.wbuf.len() - c.wpos < BATCH && p.next_seq < limit {
                if qos > 0 && p.inflight >= p.window {
                    break;
                }
                if p.interval_ns > 0 {
                    if p.next_due_ns > now_ns {
                        break;
                    }
                    p.next_due_ns += p.interval_ns;
                }
                let mut pid = 0;
                if qos > 0 {
                    loop {
                        pid = p.next_pid;
                        p.next_pid = if pid == u16::MAX { 1 } else { pid + 1 };
                        if p.pids[pid as usize] == 0 {
                            break;
                        }
                    }
                    p.pids[pid as usize] = 1;
                    p.inflight += 1;
                }
                p.tpl.append(&mut c.wbuf, pid, p.next_seq, now_ns);
                p.next_seq += 1;
            }
            self.published[p.stream as usize] = p.next_seq;
            self.flush(i);
        }
        self.can_send(i, now_ns)
    }

    /// The sequence number publisher `stream` must stay below for the backlog limit.
    pub(crate) fn backlog_limit(&self, stream: usize) -> u64 {
        if self.p.backlog == 0 {
            return u64::MAX;
        }
        let slowest = match self.route {
            Route::All => self.subs.iter().map(|s| s[stream].reached()).min(),
            Route::Pairs => self.subs.get(stream).map(|s| s[stream].reached()),
            // Each subscriber gets only some of the messages: follow the furthest one.
            Route::Spread { .. } => self.subs.iter().map(|s| s[stream].reached()).max(),
        };
        slowest.unwrap_or(0).saturating_add(self.p.backlog)
    }

    fn can_send(&self, i: usize, now_ns: u64) -> (bool, Option<u64>) {
        let c = &self.conns[i];
        let Some(p) = c.publisher.as_ref() else {
            return (false, None);
        };
        if c.state != State::Ready || c.write_blocked || !p.active || p.next_seq >= p.limit {
            return (false, None);
        }
        if p.next_seq >= self.backlog_limit(p.stream as usize) {
            return (false, None);
        }
        if p.qos > 0 && p.inflight >= p.window {
            return (false, None);
        }
        if p.interval_ns > 0 && p.next_due_ns > now_ns {
            return (false, Some(p.next_due_ns));
        }
        (true, None)
    }

    /// Whether every active foreground publisher has sent all it may (or is gone). With only
    /// background publishers (or none), never: the time limit ends the stage.
    fn all_published(&self) -> bool {
        let mut any = false;
        let done = self.pubs.iter().all(|&i| {
            let c = &self.conns[i];
            match c.publisher.as_ref() {
                Some(p) if p.active && !p.background => {
                    any = true;
                    c.state != State::Ready || p.next_seq >= p.limit
                }
                _ => true,
            }
        });
        any && done
    }

    fn complete(&self) -> bool {
        self.delivered >= self.expected()
            && self.pubs.iter().all(|&i| {
                let c = &self.conns[i];
                c.state != State::Ready
                    || (c.wbuf.is_empty() && c.publisher.as_ref().is_none_or(|p| p.inflight == 0))
            })
    }

    fn keepalive(&mut self) {
        if self.p.keep_alive == 0 {
            return;
        }
        let half = Duration::from_secs(self.p.keep_alive as u64) / 2;
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.state == State::Ready
                && c.wbuf.is_empty()
                && self.now.saturating_duration_since(c.last_tx) >= half
            {
                proto::pingreq(&mut c.wbuf);
                self.flush(i);
            }
        }
    }

    /// Publishes for `duration` (or until every publisher reached its limit), then waits for
    /// the deliveries and acknowledgements still due: until all have arrived, or nothing
    /// arrived for `idle`, or `drain` passed. `tick` runs about every 200 ms.
    /// Returns (start, end of publishing, end of the run).
    pub fn run_traffic(
        &mut self,
        duration: Duration,
        drain: Duration,
        idle: Duration,
        tick: &mut dyn FnMut(),
    ) -> io::Result<(Instant, Instant, Instant)> {
        let t0 = Instant::now();
        let t0_ns = ns_since(self.base, t0);
        for &i in &self.pubs {
            if let Some(p) = self.conns[i].publisher.as_mut() {
                p.next_due_ns = t0_ns;
            }
        }
        let stop = t0 + duration;
        let mut pub_end: Option<Instant> = None;
        let mut last_tick = t0;
        let mut last_ka = t0;
        loop {
            let now = Instant::now();
            self.now = now;
            if pub_end.is_none() && (now >= stop || self.all_published()) {
                pub_end = Some(now);
                self.last_progress = now;
            }
            if let Some(e) = pub_end {
                if self.complete()
                    || now >= e + drain
                    || now.saturating_duration_since(self.last_progress) >= idle
                {
                    return Ok((t0, e, now));
                }
            }
            self.run_hot();
            let mut busy = !self.hot.is_empty();
            let mut next_due: Option<u64> = None;
            if pub_end.is_none() {
                let now_ns = ns_since(self.base, Instant::now());
                for k in 0..self.pubs.len() {
                    let (more, due) = self.produce(self.pubs[k], now_ns);
                    busy |= more;
                    if let Some(d) = due {
                        next_due = Some(next_due.map_or(d, |n| n.min(d)));
                    }
                }
            }
            self.periodic(now, &mut last_tick, &mut last_ka, tick);
            let timeout = if busy {
                Duration::ZERO
            } else {
                let mut t = Duration::from_millis(50);
                if let Some(d) = next_due {
                    let now_ns = ns_since(self.base, Instant::now());
                    t = t.min(Duration::from_nanos(d.saturating_sub(now_ns)));
                }
                if pub_end.is_none() {
                    t = t.min(stop.saturating_duration_since(now));
                }
                t
            };
            self.poll_once(Some(timeout))?;
        }
    }

    /// Keeps the connections open (answering what arrives, pinging when the keep alive asks)
    /// for `d`.
    pub fn hold(&mut self, d: Duration) -> io::Result<()> {
        let end = Instant::now() + d;
        let mut last_ka = Instant::now();
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            if now.duration_since(last_ka) >= Duration::from_secs(1) {
                last_ka = now;
                self.keepalive();
            }
            self.run_hot();
            let t = (end - now).min(Duration::from_millis(200));
            self.poll_once(Some(if self.hot.is_empty() {
                t
            } else {
                Duration::ZERO
            }))?;
        }
    }

    /// Serves the connections until `done` holds, or nothing arrived for `idle`, or `max`
    /// passed. `tick` runs about every 200 ms. Returns whether `done` held.
    pub fn wait_until(
        &mut self,
        max: Duration,
        idle: Duration,
        done: &dyn Fn(&Engine) -> bool,
        tick: &mut dyn FnMut(),
    ) -> io::Result<bool> {
        let start = Instant::now();
        self.last_progress = start;
        let mut last_tick = start;
        let mut last_ka = start;
        loop {
            let now = Instant::now();
            self.now = now;
            if done(self) {
                return Ok(true);
            }
            if now >= start + max || now.saturating_duration_since(self.last_progress) >= idle {
                return Ok(false);
            }
            self.periodic(now, &mut last_tick, &mut last_ka, tick);
            self.run_hot();
            let t = if self.hot.is_empty() {
                Duration::from_millis(20)
            } else {
                Duration::ZERO
            };
            self.poll_once(Some(t))?;
        }
    }

    /// Sends PINGREQ on every established connection and counts the PINGRESPs that come back
    /// within `timeout`.
    pub fn ping_all(&mut self, timeout: Duration) -> io::Result<u64> {
        self.ping(&|_| true, timeout)
    }

    /// [`Engine::ping_all`] for the connections whose role passes `which` (a sink never
    /// reads its answer). A PINGRESP also tells that the broker has read everything sent
    /// before the PINGREQ.
    pub fn ping(&mut self, which: &dyn Fn(Role) -> bool, timeout: Duration) -> io::Result<u64> {
        let before = self.c.pingresp;
        let mut sent = 0;
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.state == State::Ready && c.role != Role::Sink && which(c.role) {
                c.ping_wait = true;
                proto::pingreq(&mut c.wbuf);
                sent += 1;
                self.flush(i);
            }
        }
        let end = Instant::now() + timeout;
        while self.c.pingresp - before < sent && Instant::now() < end {
            self.run_hot();
            self.poll_once(Some(Duration::from_millis(20)))?;
        }
        Ok(self.c.pingresp - before)
    }

    /// DISCONNECT on every connection, then close them all.
    pub fn disconnect_all(&mut self) {
        self.shutting_down = true;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Ready {
                proto::disconnect(&mut self.conns[i].wbuf);
                self.flush(i);
            }
        }
        // Give the last bytes a moment to leave (bounded).
        let end = Instant::now() + Duration::from_millis(500);
        while Instant::now() < end
            && self
                .conns
                .iter()
                .any(|c| c.state == State::Ready && !c.wbuf.is_empty())
        {
            let _ = self.poll_once(Some(Duration::from_millis(20)));
        }
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.state == State::Ready {
                c.state = State::Dead;
                let _ = self.poll.registry().deregister(&mut c.sock.tcp);
                c.sock.shutdown();
            }
        }
    }
}

/// A connection with a small receive buffer, for a subscriber that will stop reading: the
/// broker's own queue, not the kernel's buffers, must hold what it cannot send.
fn sink_socket(addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_recv_buffer_size(4096)?;
    // Blocking connect on loopback (one connection), then nonblocking like the rest.
    s.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    s.set_nonblocking(true)?;
    let std: std::net::TcpStream = s.into();
    Ok(TcpStream::from_std(std))
}
