//! `midge_bench`: an MQTT load generator (what `redis-benchmark` is to Redis), for midge or any
//! MQTT 3.1.1 / 5.0 broker on the same machine.
//!
//! ```text
//! midge_bench [-s fanin|fanout|pairs|latency|connections|abuse|retained|memprobe|subs]
//!             [-p PORT]
//!             [-V 3|5] [-q 0|1|2] [-d SECS] [-n COUNT] [--pid BROKER_PID] ...
//!             (midge_bench --help for all)
//! midge_bench --relay PORT    # a byte-copying reference relay (relay.rs), for comparisons
//! midge_bench --floor SIZE [SUBSCRIBERS] [BATCH] [SECS]   # the kernel's cost alone (floor.rs)
//! ```
//!
//! Scenarios:
//! - `fanin`: P publishers, each on its own topic, one subscriber on a wildcard;
//! - `fanout`: one publisher, S subscribers on its topic;
//! - `pairs`: N publisher -> subscriber pairs, each on its own topic;
//! - `latency`: one pair, paced (1,000 msg/s QoS 1 unless told otherwise);
//! - `connections`: open N idle clients, hold them, check they are all still served;
//! - `abuse`: a subscriber that never reads, flooded with QoS 0 then QoS 1 messages, while a
//!   probe pair on another topic must keep working; the broker's peak RSS against a bound
//!   derived from its queue limits;
//! - `retained`: N retained messages on distinct topics (bytes per retained message), then a
//!   new subscriber to all of them (how many arrive, how fast);
//! - `memprobe`: one large retained message, then S subscribers to it: how much the broker's
//!   memory grows while delivering one payload to all of them;
//! - `subs`: many subscriptions on distinct topics (bytes per subscription), and the cost of
//!   a publish matching one of them, with few and with many subscriptions.
//!
//! Every payload starts with its stream, sequence number and send time, so each subscriber
//! counts lost, duplicated and reordered messages per stream, and latency. With `--pid` the
//! broker's CPU time and RSS are read from /proc. Every run is bounded by `--duration` and
//! `--count`, plus a bounded drain, and stops by itself. Output: a table for people and one
//! `RESULT key=value ...` line for scripts (scripts/bench.sh).
//!
//! One thread and mio: nonblocking sockets, PUBLISH packets encoded from a template into 64 kB
//! batches (hundreds per write), reads of up to 256 kB. The generator's own CPU use is
//! reported so a run where it, not the broker, is the limit shows itself.

#![forbid(unsafe_code)]

mod engine;
mod floor;
mod proto;
mod relay;
mod stats;
mod stream;
mod sys;
mod ws;

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::{Engine, Params, Role, Route};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    FanIn,
    FanOut,
    Pairs,
    Latency,
    Connections,
    Abuse,
    Retained,
    Memprobe,
    Subs,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fanin",
            Scenario::FanOut => "fanout",
            Scenario::Pairs => "pairs",
            Scenario::Latency => "latency",
            Scenario::Connections => "connections",
            Scenario::Abuse => "abuse",
            Scenario::Retained => "retained",
            Scenario::Memprobe => "memprobe",
            Scenario::Subs => "subs",
        }
    }
}

#[derive(Debug, Clone)]
struct Opts {
    host: String,
    port: u16,
    allow_remote: bool,
    scenario: Scenario,
    v5: bool,
    qos: u8,
    publishers: usize,
    subscribers: usize,
    pairs: usize,
    clients: usize,
    size: usize,
    rate: f64,
    duration: f64,
    count: u64,
    inflight: u32,
    backlog: u64,
    drain: f64,
    idle: f64,
    settle: f64,
    connect_window: usize,
    connect_timeout: f64,
    keep_alive: u16,
    nodelay: bool,
    ws: bool,
    sub_port: Option<u16>,
    pid: Option<String>,
    label: String,
    topic: String,
    per_stream: bool,
    check: bool,
    qos0_count: u64,
    qos1_count: u64,
    after: f64,
    max_queued: u64,
    max_queued_bytes: u64,
    max_inflight: u64,
    subs: usize,
    subs_small: usize,
    /// `--tls`: the server name to send (SNI); `None`: plain TCP.
    tls: Option<String>,
}

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt(
        "s",
        "scenario",
        "fanin (default), fanout, pairs, latency, connections, abuse, retained, memprobe or subs",
        "NAME",
    );
    o.optopt("H", "host", "broker host (default 127.0.0.1)", "HOST");
    o.optopt("p", "port", "broker port (default 1883)", "PORT");
    o.optflag(
        "",
        "allow-remote",
        "allow a host that is not a loopback address",
    );
    o.optopt("V", "mqtt", "protocol: 3 (3.1.1, default) or 5", "VER");
    o.optopt(
        "q",
        "qos",
        "QoS of publications and subscriptions (default 0; latency, abuse, retained: 1)",
        "0|1|2",
    );
    o.optopt(
        "P",
        "publishers",
        "fanin: publishers (default 4); abuse: flooding publishers of each QoS (default 2)",
        "N",
    );
    o.optopt("S", "subscribers", "fanout: subscribers (default 100)", "N");
    o.optopt(
        "N",
        "pairs",
        "pairs: publisher/subscriber pairs (default 100; latency: 1)",
        "N",
    );
    o.optopt(
        "c",
        "clients",
        "connections: idle clients to hold (default 1000); subs: subscribers (default 100)",
        "N",
    );
    o.optopt(
        "",
        "size",
        "payload bytes, at least 20 (default 64)",
        "BYTES",
    );
    o.optopt(
        "r",
        "rate",
        "total messages per second, 0 = as fast as possible (default 0; latency: 1000; \
         abuse: the probe's rate, 500)",
        "N",
    );
    o.optopt(
        "d",
        "duration",
        "seconds of publishing (connections: of holding; abuse: at most, per flood; subs: per \
         stage) (default 10; connections: 5; abuse: 30; retained: 60)",
        "SECS",
    );
    o.optopt(
        "n",
        "count",
        "stop after this many messages in total, 0 = no limit (default 0; retained: the \
         number of retained messages, 100000)",
        "N",
    );
    o.optopt(
        "",
        "inflight",
        "QoS 1/2 messages in flight per publisher (default 20; capped by MQTT 5 Receive Maximum)",
        "N",
    );
    o.optopt(
        "",
        "backlog",
        "a publisher waits while it is this many messages ahead of the slowest subscriber of \
         its stream (highest sequence number received), 0 = never (default QoS 0: 1000, \
         subs: 10000 ahead of the furthest subscriber; QoS 1/2: 0, the acknowledgements are the flow \
         control)",
        "N",
    );
    o.optopt(
        "",
        "drain",
        "at most this many seconds to wait for outstanding deliveries after publishing (default 10)",
        "SECS",
    );
    o.optopt(
        "",
        "idle-timeout",
        "end the drain when nothing arrived for this long (default 1)",
        "SECS",
    );
    o.optopt(
        "",
        "settle",
        "connections: seconds between the last CONNACK and the RSS reading (default 1)",
        "SECS",
    );
    o.optopt(
        "",
        "connect-window",
        "connections opened at once (default 64)",
        "N",
    );
    o.optopt(
        "",
        "connect-timeout",
        "seconds allowed for connecting and subscribing (default 30)",
        "SECS",
    );
    o.optopt("k", "keepalive", "keep alive seconds (default 60)", "SECS");
    o.optopt(
        "",
        "sub-port",
        "subscribers connect to this port of the same host, publishers to --port (a bridge)",
        "PORT",
    );
    o.optflag(
        "",
        "ws",
        "MQTT over WebSockets: every client upgrades first (a `protocol websockets` listener)",
    );
    o.optflag(
        "",
        "no-nodelay",
        "leave Nagle's algorithm on for the generator's sockets",
    );
    o.optopt(
        "",
        "pid",
        "the broker's pid: report its CPU time and RSS from /proc",
        "PID",
    );
    o.optopt(
        "",
        "label",
        "name of the broker in the RESULT line (default broker)",
        "NAME",
    );
    o.optopt("", "topic", "topic prefix (default midge_bench)", "PREFIX");
    o.optflag("", "per-stream", "print every stream's counts");
    o.optflag(
        "",
        "check",
        "exit 3 if messages were duplicated or reordered, or lost at QoS 1/2, or a connection broke",
    );
    o.optopt(
        "",
        "qos0-count",
        "abuse: QoS 0 messages flooded at the sink (default 1000000)",
        "N",
    );
    o.optopt(
        "",
        "qos1-count",
        "abuse: QoS 1 messages flooded at the sink after the QoS 0 ones (default 100000)",
        "N",
    );
    o.optopt(
        "",
        "after",
        "abuse: seconds the probe goes on after the floods (default 2)",
        "SECS",
    );
    o.optopt(
        "",
        "max-queued",
        "abuse: the broker's max_queued_messages, for the memory bound (default 1000)",
        "N",
    );
    o.optopt(
        "",
        "max-queued-bytes",
        "abuse: the broker's max_queued_bytes, for the memory bound (default 0: none)",
        "N",
    );
    o.optopt(
        "",
        "max-inflight",
        "abuse: the broker's max_inflight_messages, for the memory bound (default 20)",
        "N",
    );
    o.optopt(
        "",
        "subs",
        "subs: subscriptions in the large stage, a multiple of --clients (default 100000)",
        "N",
    );
    o.optopt(
        "",
        "subs-small",
        "subs: subscriptions in the small stage, a multiple of --clients (default 1000)",
        "N",
    );
    o.optflag(
        "",
        "tls",
        "connect with TLS (1.2 or 1.3, full handshakes, the broker's certificate not checked)",
    );
    o.optopt(
        "",
        "tls-sni",
        "with --tls: the server name to send (default localhost)",
        "NAME",
    );
    o.optflag("h", "help", "print this help");
    o
}

fn num<T: std::str::FromStr>(m: &getopts::Matches, name: &str, default: T) -> Result<T, String> {
    match m.opt_str(name) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| format!("--{name}: '{s}' is not a valid number")),
    }
}

fn parse_opts(args: &[String]) -> Result<Option<Opts>, String> {
    let o = options();
    let m = o.parse(args).map_err(|e| e.to_string())?;
    if m.opt_present("h") {
        return Ok(None);
    }
    if !m.free.is_empty() {
        return Err(format!("unexpected argument '{}'", m.free[0]));
    }
    let scenario = match m.opt_str("scenario").as_deref().unwrap_or("fanin") {
        "fanin" | "fan-in" => Scenario::FanIn,
        "fanout" | "fan-out" => Scenario::FanOut,
        "pairs" => Scenario::Pairs,
        "latency" => Scenario::Latency,
        "connections" | "conn" => Scenario::Connections,
        "abuse" => Scenario::Abuse,
        "retained" | "retain" => Scenario::Retained,
        "memprobe" => Scenario::Memprobe,
        "subs" | "subscriptions" => Scenario::Subs,
        s => return Err(format!("unknown scenario '{s}'")),
    };
    let lat = scenario == Scenario::Latency;
    let abuse = scenario == Scenario::Abuse;
    let v5 = match m.opt_str("mqtt").as_deref().unwrap_or("3") {
        "3" | "4" | "311" | "3.1.1" => false,
        "5" | "5.0" => true,
        v => return Err(format!("--mqtt: '{v}' is not 3 (3.1.1) or 5")),
    };
    let qos_default = match scenario {
        Scenario::Latency | Scenario::Abuse | Scenario::Retained | Scenario::Memprobe => 1,
        _ => 0,
    };
    let qos: u8 = num(&m, "qos", qos_default)?;
    if qos > 2 {
        return Err("--qos must be 0, 1 or 2".into());
    }
    let size: usize = num(&m, "size", 64)?;
    if size < proto::STAMP_LEN {
        return Err(format!(
            "--size must be at least {} (the stamp)",
            proto::STAMP_LEN
        ));
    }
    if size > 16 << 20 {
        return Err("--size must be at most 16 MiB".into());
    }
    let duration: f64 = num(
        &m,
        "duration",
        match scenario {
            Scenario::Connections => 5.0,
            Scenario::Abuse => 30.0,
            Scenario::Retained => 60.0,
            _ => 10.0,
        },
    )?;
    if !(duration > 0.0 && duration <= 86_400.0) {
        return Err("--duration must be between 0 and 86400 seconds".into());
    }
    let opts = Opts {
        host: m.opt_str("host").unwrap_or_else(|| "127.0.0.1".into()),
        port: num(&m, "port", 1883)?,
        allow_remote: m.opt_present("allow-remote"),
        scenario,
        v5,
        qos,
        publishers: num(&m, "publishers", if abuse { 2 } else { 4 })?,
        subscribers: num(&m, "subscribers", 100)?,
        pairs: num(&m, "pairs", if lat { 1 } else { 100 })?,
        clients: num(
            &m,
            "clients",
            if scenario == Scenario::Subs {
                100
            } else {
                1000
            },
        )?,
        size,
        rate: num(
            &m,
            "rate",
            match scenario {
                Scenario::Latency => 1000.0,
                Scenario::Abuse => 500.0,
                _ => 0.0,
            },
        )?,
        duration,
        count: num(
            &m,
            "count",
            if scenario == Scenario::Retained {
                100_000
            } else {
                0
            },
        )?,
        inflight: num(&m, "inflight", 20)?,
        backlog: num(
            &m,
            "backlog",
            match (qos, scenario) {
                (0, Scenario::Subs) => 10_000,
                (0, _) => 1000,
                _ => 0,
            },
        )?,
        drain: num(&m, "drain", 10.0)?,
        idle: num(&m, "idle-timeout", 1.0)?,
        settle: num(&m, "settle", 1.0)?,
        connect_window: num(&m, "connect-window", 64)?,
        connect_timeout: num(&m, "connect-timeout", 30.0)?,
        keep_alive: num(&m, "keepalive", 60)?,
        nodelay: !m.opt_present("no-nodelay"),
        ws: m.opt_present("ws"),
        sub_port: match m.opt_str("sub-port") {
            None => None,
            Some(_) => Some(num(&m, "sub-port", 0)?),
        },
        pid: m.opt_str("pid"),
        label: m.opt_str("label").unwrap_or_else(|| "broker".into()),
        topic: m.opt_str("topic").unwrap_or_else(|| "midge_bench".into()),
        per_stream: m.opt_present("per-stream"),
        check: m.opt_present("check"),
        qos0_count: num(&m, "qos0-count", 1_000_000)?,
        qos1_count: num(&m, "qos1-count", 100_000)?,
        after: num(&m, "after", 2.0)?,
        max_queued: num(&m, "max-queued", 1000)?,
        max_queued_bytes: num(&m, "max-queued-bytes", 0)?,
        max_inflight: num(&m, "max-inflight", 20)?,
        subs: num(&m, "subs", 100_000)?,
        subs_small: num(&m, "subs-small", 1000)?,
        tls: m
            .opt_present("tls")
            .then(|| m.opt_str("tls-sni").unwrap_or_else(|| "localhost".into())),
    };
    let counts = [
        ("publishers", opts.publishers),
        ("subscribers", opts.subscribers),
        ("pairs", opts.pairs),
        ("clients", opts.clients),
        ("connect-window", opts.connect_window),
    ];
    for (name, v) in counts {
        if v == 0 || v > 1_000_000 {
            return Err(format!("--{name} must be between 1 and 1000000"));
        }
    }
    if opts.inflight == 0 {
        return Err("--inflight must be at least 1".into());
    }
    for (name, v) in [
        ("drain", opts.drain),
        ("idle-timeout", opts.idle),
        ("settle", opts.settle),
        ("connect-timeout", opts.connect_timeout),
        ("after", opts.after),
    ] {
        if !(0.0..=3600.0).contains(&v) {
            return Err(format!("--{name} must be between 0 and 3600 seconds"));
        }
    }
    if !(opts.rate >= 0.0 && opts.rate.is_finite()) {
        return Err("--rate must be 0 or more".into());
    }
    if opts.topic.is_empty() || opts.topic.contains(['+', '#', '\0']) {
        return Err("--topic must be a plain topic prefix".into());
    }
    match scenario {
        Scenario::Abuse => {
            if opts.qos0_count + opts.qos1_count == 0 {
                return Err("abuse: --qos0-count and --qos1-count are both 0".into());
            }
            if opts.qos0_count > 1 << 40 || opts.qos1_count > 1 << 40 {
                return Err("abuse: --qos0-count and --qos1-count must be below 2^40".into());
            }
            if opts.qos == 0 {
                return Err("abuse: the sink and the probe need --qos 1 or 2".into());
            }
            if opts.max_queued == 0 && opts.max_queued_bytes == 0 {
                return Err("abuse: a broker with no queue limit has no memory bound \
                     (--max-queued or --max-queued-bytes)"
                    .into());
            }
        }
        Scenario::Retained if opts.count == 0 || opts.count > 100_000_000 => {
            return Err("retained: --count must be between 1 and 100000000".into());
        }
        Scenario::Subs => {
            let c = opts.clients;
            if opts.subs_small == 0
                || opts.subs_small > opts.subs
                || opts.subs > 10_000_000
                || opts.subs % c != 0
                || opts.subs_small % c != 0
            {
                return Err(format!(
                    "subs: --subs-small and --subs must be multiples of --clients ({c}), \
                     0 < subs-small <= subs <= 10000000"
                ));
            }
        }
        _ => {}
    }
    Ok(Some(opts))
}

/// Resolves the broker's address; loopback only unless `allow_remote`.
fn resolve(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "{host} ({}) is not a loopback address: a load generator on a network is a flood; \
             pass --allow-remote if you mean it",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// A short run identifier, so topics and client ids never meet another run's.
fn run_id() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:06x}",
        (t ^ (std::process::id() as u64) << 20) & 0xff_ffff
    )
}

/// The messages publisher `i` of `n` sends: an equal share of `count` (0: no limit).
fn share(count: u64, n: usize, i: usize) -> u64 {
    if count == 0 {
        return u64::MAX;
    }
    let n = n as u64;
    count / n + u64::from((i as u64) < count % n)
}

/// Integrity of every (subscriber, stream) pair meant to meet.
#[derive(Default, Debug, PartialEq, Eq)]
struct Integrity {
    lost: u64,
    dup: u64,
    ooo: u64,
    streams: u64,
    streams_lossy: u64,
}

/// One printable line per (subscriber, stream): `(sub, stream, published, received, lost,
/// dup, ooo)`.
type StreamLine = (usize, usize, u64, u64, u64, u64, u64);

fn integrity(e: &Engine, route: Route) -> (Integrity, Vec<StreamLine>) {
    let mut t = Integrity::default();
    let mut lines = Vec::new();
    for (s, streams) in e.subs.iter().enumerate() {
        for (k, rs) in streams.iter().enumerate() {
            if (route == Route::Pairs && s != k) || matches!(route, Route::Spread { .. }) {
                continue;
            }
            let published = e.published[k];
            let lost = rs.lost(published);
            t.lost += lost;
            t.dup += rs.dup;
            t.ooo += rs.ooo;
            t.streams += 1;
            if lost + rs.dup + rs.ooo > 0 {
                t.streams_lossy += 1;
            }
            lines.push((s, k, published, rs.unique, lost, rs.dup, rs.ooo));
        }
    }
    (t, lines)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

struct Broker {
    pid: String,
    tck: f64,
}

impl Broker {
    fn sample(&self) -> Option<sys::Sample> {
        sys::sample(&self.pid, self.tck)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--relay") {
        // A byte-copying reference relay for comparisons (relay.rs), not a load generator.
        let port = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(1883);
        return match relay::serve(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("midge_bench: {e}");
                ExitCode::from(1)
            }
        };
    }
    if args.first().map(String::as_str) == Some("--floor") {
        // The kernel's cost of sending to loopback subscribers, no broker (floor.rs).
        return match floor::run(&args[1..]) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("midge_bench: {e}");
                ExitCode::from(1)
            }
        };
    }
    let opts = match parse_opts(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!(
                "{}",
                options().usage(
                    "midge_bench: MQTT load generator.\n\n\
                     Usage: midge_bench [-s fanin|fanout|pairs|latency|connections|abuse|\
                     retained|memprobe|subs] [options]"
                )
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("midge_bench: {e} (try --help)");
            return ExitCode::from(1);
        }
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("midge_bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the scenario and prints the report. `Ok(false)`: `--check` failed.
fn run(o: &Opts) -> Result<bool, String> {
    let addr = resolve(&o.host, o.port, o.allow_remote)?;
    let tck = sys::clk_tck();
    let broker = match &o.pid {
        Some(pid) => {
            let b = Broker {
                pid: pid.clone(),
                tck,
            };
            b.sample()
                .ok_or_else(|| format!("cannot read /proc/{pid}/stat and status"))?;
            Some(b)
        }
        None => None,
    };
    let conns = match o.scenario {
        Scenario::FanIn => o.publishers + 1,
        Scenario::FanOut => o.subscribers + 1,
        Scenario::Pairs | Scenario::Latency => 2 * o.pairs,
        Scenario::Connections => o.clients,
        Scenario::Abuse => 2 * o.publishers + 3,
        Scenario::Retained => 3,
        Scenario::Memprobe => o.subscribers + 1,
        Scenario::Subs => o.clients + 1,
    };
    if let Some(limit) = sys::nofile_limit() {
        if (conns as u64).saturating_add(32) > limit {
            return Err(format!(
                "{conns} connections need more open files than the limit of {limit}: \
                 raise it (ulimit -n)"
            ));
        }
    }
    let params = Params {
        addr,
        v5: o.v5,
        qos: o.qos,
        nodelay: o.nodelay,
        keep_alive: o.keep_alive,
        max_packet: (o.size + 1024).max(1 << 20),
        window: o.inflight.min(65_000),
        backlog: o.backlog,
        ws: o.ws,
        sub_addr: match o.sub_port {
            Some(p) => Some(resolve(&o.host, p, o.allow_remote)?),
            None => None,
        },
        tls: match &o.tls {
            None => None,
            Some(sni) => stream::client(sni)?,
        },
    };
    match o.scenario {
        Scenario::Connections => run_connections(o, params, broker.as_ref()),
        Scenario::Abuse => run_abuse(o, params, broker.as_ref()),
        Scenario::Retained => run_retained(o, params, broker.as_ref()),
        Scenario::Memprobe => run_memprobe(o, params, broker.as_ref()),
        Scenario::Subs => run_subs(o, params, broker.as_ref()),
        _ => run_traffic(o, params, broker.as_ref()),
    }
}

fn run_connections(o: &Opts, params: Params, broker: Option<&Broker>) -> Result<bool, String> {
    let rid = run_id();
    let mut e = Engine::new(params, Route::All, 0, 0).map_err(|e| e.to_string())?;
    let before = broker.and_then(Broker::sample);
    let specs = (0..o.clients)
        .map(|i| (Role::Idle, format!("mb{rid}c{i}"), Vec::new()))
        .collect();
    let t = Instant::now();
    e.connect_all(
        specs,
        o.connect_window,
        t + Duration::from_secs_f64(o.connect_timeout),
    )
    .map_err(|e| e.to_string())?;
    let connect_s = t.elapsed().as_secs_f64();
    let connected = e.ready() as u64;
    let settle = o.settle.min(o.duration);
    e.hold(Duration::from_secs_f64(settle))
        .map_err(|e| e.to_string())?;
    let after = broker.and_then(Broker::sample);
    e.hold(Duration::from_secs_f64(o.duration - settle))
        .map_err(|e| e.to_string())?;
    let alive = e
        .ping_all(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let end = broker.and_then(Broker::sample);
    e.disconnect_all();

    let rate = connected as f64 / connect_s.max(1e-9);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "midge_bench  connections  MQTT {}  {} clients  broker={}",
        if o.v5 { "5.0" } else { "3.1.1" },
        o.clients,
        o.label
    );
    let _ = writeln!(
        out,
        "  connected       {connected} of {} in {connect_s:.2} s ({rate:.0} connections/s, {} at once)",
        o.clients, o.connect_window
    );
    let _ = writeln!(
        out,
        "  held            {:.1} s; answered PINGREQ at the end: {alive} of {connected}",
        o.duration
    );
    let _ = writeln!(
        out,
        "  failures        connect {}  refused {}  closed by broker {}{}",
        e.c.connect_failed,
        e.c.refused,
        e.c.closed,
        e.c.last_error
            .as_ref()
            .map_or(String::new(), |m| format!("  (last: {m})"))
    );
    let mut result = format!(
        "RESULT scenario=connections broker={} mqtt={} clients={} connected={connected} \
         failed={} connect_s={connect_s:.3} connect_per_s={rate:.0} alive={alive} closed={}",
        o.label,
        if o.v5 { 5 } else { 3 },
        o.clients,
        e.c.connect_failed + e.c.refused,
        e.c.closed
    );
    if let (Some(b), Some(a), Some(z)) = (before, after, end) {
        let per = (a.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / connected.max(1) as f64;
        let _ = writeln!(
            out,
            "  broker RSS      {} before, {} with {connected} idle clients: {per:.0} bytes per connection; CPU {:.2} s",
            mb(b.rss_kb),
            mb(a.rss_kb),
            z.cpu_s - b.cpu_s
        );
        let _ = write!(
            result,
            " rss_before_kb={} rss_after_kb={} bytes_per_conn={per:.0} cpu_s={:.3}",
            b.rss_kb,
            a.rss_kb,
            z.cpu_s - b.cpu_s
        );
    }
    print!("{out}");
    println!("{result}");
    Ok(!o.check || (connected == o.clients as u64 && alive == connected && e.c.closed == 0))
}

fn run_traffic(o: &Opts, params: Params, broker: Option<&Broker>) -> Result<bool, String> {
    let rid = run_id();
    let base = format!("{}/{rid}", o.topic);
    // (streams, subscriber filters, route)
    let (streams, filters, route): (usize, Vec<String>, Route) = match o.scenario {
        Scenario::FanIn => (o.publishers, vec![format!("{base}/+")], Route::All),
        Scenario::FanOut => (
            1,
            (0..o.subscribers).map(|_| format!("{base}/0")).collect(),
            Route::All,
        ),
        Scenario::Pairs | Scenario::Latency => (
            o.pairs,
            (0..o.pairs).map(|i| format!("{base}/{i}")).collect(),
            Route::Pairs,
        ),
        _ => unreachable!("not a traffic scenario"),
    };
    let nsubs = filters.len();
    let mut e = Engine::new(params, route, streams, nsubs).map_err(|e| e.to_string())?;
    let rss_before = broker.and_then(Broker::sample);
    let deadline = Instant::now() + Duration::from_secs_f64(o.connect_timeout);
    let sub_specs = filters
        .into_iter()
        .enumerate()
        .map(|(i, f)| (Role::Sub(i as u32), format!("mb{rid}s{i}"), vec![f]))
        .collect();
    e.connect_all(sub_specs, o.connect_window, deadline)
        .map_err(|e| e.to_string())?;
    let pub_specs = (0..streams)
        .map(|i| (Role::Pub(i as u32), format!("mb{rid}p{i}"), Vec::new()))
        .collect();
    e.connect_all(pub_specs, o.connect_window, deadline)
        .map_err(|e| e.to_string())?;
    established(&e, nsubs + streams)?;
    for i in 0..streams {
        e.add_publisher(
            &format!("{base}/{i}"),
            i as u32,
            o.size,
            share(o.count, streams, i),
            o.rate / streams as f64,
        );
    }
    let tck = broker.map_or(100.0, |b| b.tck);
    let gen0 = sys::sample("self", tck);
    let b0 = broker.and_then(Broker::sample);
    let mut peak_kb = b0.map_or(0, |s| s.rss_kb);
    let mut tick = || {
        if let Some(s) = broker.and_then(Broker::sample) {
            peak_kb = peak_kb.max(s.rss_kb);
        }
    };
    let (t0, pub_end, end) = e
        .run_traffic(
            Duration::from_secs_f64(o.duration),
            Duration::from_secs_f64(o.drain),
            Duration::from_secs_f64(o.idle),
            &mut tick,
        )
        .map_err(|e| e.to_string())?;
    let b1 = broker.and_then(Broker::sample);
    if let Some(s) = b1 {
        peak_kb = peak_kb.max(s.rss_kb);
    }
    let gen1 = sys::sample("self", tck);
    e.disconnect_all();

    // Figures.
    let published: u64 = e.published.iter().sum();
    let pub_s = (pub_end - t0).as_secs_f64().max(1e-9);
    let last = e.last_delivery.unwrap_or(pub_end);
    let window_s = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    let msgs_per_s = e.delivered as f64 / window_s;
    let pub_per_s = published as f64 / pub_s;
    let (integ, lines) = integrity(&e, route);
    let expected = e.expected();
    let unacked = e.unacked();
    let acked = e.acked();
    let h = &e.hist;
    let wall = (end - t0).as_secs_f64();
    // Utilisation over the time messages flowed, not the idle end of the drain.
    let busy = window_s.max(pub_s);
    let gen_cpu = match (gen0, gen1) {
        (Some(a), Some(b)) => b.cpu_s - a.cpu_s,
        _ => 0.0,
    };

    let mut out = String::new();
    let who = match o.scenario {
        Scenario::FanIn => format!("{streams} publishers -> 1 subscriber"),
        Scenario::FanOut => format!("1 publisher -> {nsubs} subscribers"),
        _ => format!("{streams} publisher -> subscriber pairs"),
    };
    let _ = writeln!(
        out,
        "midge_bench  {}  MQTT {}  QoS {}  {who}  payload {} B ({} B packets)  broker={}",
        o.scenario.name(),
        if o.v5 { "5.0" } else { "3.1.1" },
        o.qos,
        o.size,
        e.publish_len(),
        o.label
    );
    let _ = writeln!(
        out,
        "  flow control    {}{}",
        if o.qos > 0 {
            format!("{} in flight per publisher, ", e.window())
        } else {
            String::new()
        },
        if o.backlog > 0 {
            format!(
                "publishers at most {} messages ahead of their slowest subscriber",
                o.backlog
            )
        } else {
            "no backlog limit".to_string()
        }
    );
    let _ = writeln!(
        out,
        "  time            {pub_s:.2} s publishing{}, {window_s:.2} s to the last delivery, {wall:.2} s with the drain",
        if o.rate > 0.0 {
            format!(" at {:.0} msg/s", o.rate)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  published       {published} ({pub_per_s:.0} msg/s){}",
        if o.qos > 0 {
            format!(", acknowledged {acked}, unacknowledged {unacked}")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  delivered       {} of {expected} expected ({msgs_per_s:.0} msg/s)",
        e.delivered
    );
    let _ = writeln!(
        out,
        "  latency (us)    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}  ({} samples)",
        us(h.quantile(0.5)),
        us(h.quantile(0.9)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        us(h.mean()),
        h.count()
    );
    let _ = writeln!(
        out,
        "  integrity       lost {}  duplicated {}  out of order {}  ({} of {} streams affected)  \
         unexpected {}  corrupt {}",
        integ.lost,
        integ.dup,
        integ.ooo,
        integ.streams_lossy,
        integ.streams,
        e.c.unexpected,
        e.c.corrupt
    );
    let _ = writeln!(
        out,
        "  connections     closed by broker {}  ack errors {}  protocol errors {}{}",
        e.c.closed,
        e.c.ack_errors,
        e.c.protocol_errors,
        e.c.last_error
            .as_ref()
            .map_or(String::new(), |m| format!("  (last: {m})"))
    );
    let mut result = format!(
        "RESULT scenario={} broker={} mqtt={} qos={} pubs={streams} subs={nsubs} size={} \
         rate={:.0} inflight={} backlog={} published={published} acked={acked} unacked={unacked} expected={expected} \
         delivered={} pub_s={pub_s:.3} window_s={window_s:.3} msgs_per_s={msgs_per_s:.0} \
         pub_per_s={pub_per_s:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} \
         lost={} dup={} ooo={} unexpected={} corrupt={} closed={} ack_errors={} \
         protocol_errors={} gen_cpu_util={:.2}",
        o.scenario.name(),
        o.label,
        if o.v5 { 5 } else { 3 },
        o.qos,
        o.size,
        o.rate,
        e.window(),
        o.backlog,
        e.delivered,
        us(h.quantile(0.5)),
        us(h.quantile(0.9)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        integ.lost,
        integ.dup,
        integ.ooo,
        e.c.unexpected,
        e.c.corrupt,
        e.c.closed,
        e.c.ack_errors,
        e.c.protocol_errors,
        gen_cpu / busy
    );
    if let (Some(rb), Some(a), Some(b)) = (rss_before, b0, b1) {
        let cpu = b.cpu_s - a.cpu_s;
        let per_m = cpu / (e.delivered.max(1) as f64) * 1e6;
        let _ = writeln!(
            out,
            "  broker          CPU {cpu:.2} s ({:.0}% of a core), {per_m:.3} s per million deliveries; \
             RSS {} idle, {} at the end, peak {}",
            100.0 * cpu / busy,
            mb(rb.rss_kb),
            mb(b.rss_kb),
            mb(peak_kb)
        );
        let _ = write!(
            result,
            " cpu_s={cpu:.3} cpu_s_per_M={per_m:.4} broker_cpu_util={:.2} rss_before_kb={} \
             rss_after_kb={} rss_peak_kb={peak_kb} hwm_kb={}",
            cpu / busy,
            rb.rss_kb,
            b.rss_kb,
            b.hwm_kb
        );
    }
    let gen_util = gen_cpu / busy;
    let _ = writeln!(
        out,
        "  generator       CPU {gen_cpu:.2} s ({:.0}% of a core){}",
        100.0 * gen_util,
        if gen_util > 0.9 {
            "  WARNING: the generator may be the limit"
        } else {
            ""
        }
    );
    let bad: Vec<&StreamLine> = lines.iter().filter(|l| l.4 + l.5 + l.6 > 0).collect();
    let show: Vec<&StreamLine> = if o.per_stream {
        lines.iter().collect()
    } else {
        bad.iter().take(20).copied().collect()
    };
    if !show.is_empty() {
        let _ = writeln!(
            out,
            "  per stream      subscriber <- stream: published received lost dup ooo"
        );
        for (s, k, p, r, l, d, x) in &show {
            let _ = writeln!(out, "                  s{s} <- p{k}: {p} {r} {l} {d} {x}");
        }
        if !o.per_stream && bad.len() > show.len() {
            let _ = writeln!(
                out,
                "                  ... {} more streams with problems (--per-stream)",
                bad.len() - show.len()
            );
        }
    }
    print!("{out}");
    println!("{result}");
    let ok = integ.dup == 0
        && integ.ooo == 0
        && e.c.unexpected == 0
        && e.c.corrupt == 0
        && e.c.closed == 0
        && e.c.protocol_errors == 0
        && e.c.ack_errors == 0
        && (o.qos == 0 || (integ.lost == 0 && unacked == 0));
    Ok(!o.check || ok)
}

mod scenarios;
use scenarios::{run_abuse, run_memprobe, run_retained, run_subs};

#[cfg(test)]
mod tests;

/// Fails, saying why, unless `want` connections are established.
fn established(e: &Engine, want: usize) -> Result<(), String> {
    if e.ready() == want {
        return Ok(());
    }
    Err(format!(
        "only {} of {want} connections were established ({} failed, {} refused, {} SUBACK \
         failures{})",
        e.ready(),
        e.c.connect_failed,
        e.c.refused,
        e.c.suback_failed,
        e.c.last_error
            .as_ref()
            .map_or(String::new(), |m| format!("; last: {m}"))
    ))
}
