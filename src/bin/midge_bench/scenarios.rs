//! The scenarios that measure how a broker holds up rather than how fast it goes:
//!
//! - `abuse`: a subscriber that never reads, flooded with QoS 0 then QoS 1 messages, while a
//!   probe pair on another topic must keep working, and the broker's memory must stay within
//!   what its queue limits allow;
//! - `retained`: many retained messages on distinct topics, then a new subscriber to them all;
//! - `subs`: many subscriptions on distinct topics, and what a publish matching one of them
//!   costs with few and with many.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Params, PubSpec, Role, Route};
use crate::proto::Spread;
use crate::stats::Histogram;
use crate::{established, mb, run_id, share, sys, us, Broker, Opts};

fn io(e: std::io::Error) -> String {
    e.to_string()
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d)
}

/// The broker's memory over a run: the highest VmRSS sampled, and VmHWM (the kernel's own
/// peak, which catches what sampling every 200 ms misses).
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Peak {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Peak {
    fn sample(&mut self, b: Option<&Broker>) -> Option<sys::Sample> {
        let s = b?.sample()?;
        self.rss_kb = self.rss_kb.max(s.rss_kb);
        self.hwm_kb = self.hwm_kb.max(s.hwm_kb);
        Some(s)
    }

    pub fn peak_kb(&self) -> u64 {
        self.rss_kb.max(self.hwm_kb)
    }
}

/// Opens `specs` and fails unless every one of them is established.
fn connect(
    e: &mut Engine,
    specs: Vec<(Role, String, Vec<String>)>,
    o: &Opts,
) -> Result<(), String> {
    let want = e.ready() + specs.len();
    let deadline = Instant::now() + secs(o.connect_timeout);
    e.connect_all(specs, o.connect_window, deadline)
        .map_err(io)?;
    established(e, want)
}

fn version(o: &Opts) -> (&'static str, u8) {
    if o.v5 {
        ("5.0", 5)
    } else {
        ("3.1.1", 3)
    }
}

// ---------------------------------------------------------------------------------------------
// abuse

/// The most a broker that honours its queue limits may add to its idle RSS while one
/// subscriber reads nothing, in kB; `None` when there is no queue limit (and so no bound).
///
/// What it may hold for the stuck subscriber: its queue (`max_queued` messages, or
/// `max_queued_bytes` of payload, whichever is reached first) plus its in-flight window, each
/// message with its payload, its topic and 512 bytes of bookkeeping (message header, queue
/// entry, allocator rounding: about twice what either broker needs); one 64 KiB output buffer
/// for the stuck connection. For every connection in the run: 256 KiB of read and write
/// buffers (midge reads 64 KiB at a time; a paused publisher keeps one read). And 2 MiB for
/// the allocator's own slack. Everything else a flood brings is transient: a QoS 0 message
/// for a full queue is dropped, a QoS 1 publisher is paused or its message dropped.
pub(crate) fn abuse_bound_kb(
    max_queued: u64,
    max_queued_bytes: u64,
    max_inflight: u64,
    size: usize,
    topic_len: usize,
    conns: usize,
) -> Option<u64> {
    let size = size as u64;
    let queued = match (max_queued, max_queued_bytes) {
        (0, 0) => return None,
        (n, 0) => n,
        (0, b) => b / size.max(1) + 1,
        (n, b) => n.min(b / size.max(1) + 1),
    };
    let per_msg = size + topic_len as u64 + 512;
    let bytes =
        (queued + max_inflight) * per_msg + (64 << 10) + conns as u64 * (256 << 10) + (2 << 20);
    Some(bytes.div_ceil(1024))
}

/// One stage of the abuse run, as the probe saw it.
struct Step {
    name: &'static str,
    wall_s: f64,
    flood_sent: u64,
    flood_acked: u64,
    probe_sent: u64,
    probe_got: u64,
    hist: Histogram,
}

impl Step {
    fn latency(&self) -> String {
        let h = &self.hist;
        format!(
            "p50 {} p99 {} max {} us",
            us(h.quantile(0.5)),
            us(h.quantile(0.99)),
            us(h.max())
        )
    }
}

pub(crate) fn run_abuse(
    o: &Opts,
    mut params: Params,
    broker: Option<&Broker>,
) -> Result<bool, String> {
    let rid = run_id();
    let base = format!("{}/{rid}", o.topic);
    let flood_topic = format!("{base}/flood");
    let probe_topic = format!("{base}/probe");
    // Nobody reads the floods, so nothing may hold them back but the broker.
    params.backlog = 0;
    let np = o.publishers;
    // Stream 0: the probe; 1..=np: QoS 0 floods; np+1..=2np: QoS 1 floods.
    let streams = 1 + 2 * np;
    let q0: Vec<u32> = (1..=np as u32).collect();
    let q1: Vec<u32> = (np as u32 + 1..streams as u32).collect();
    let mut e = Engine::new(params, Route::Pairs, streams, 1).map_err(io)?;
    let mut peak = Peak::default();
    let idle = peak.sample(broker);
    connect(
        &mut e,
        vec![
            (
                Role::Sink,
                format!("mb{rid}sink"),
                vec![flood_topic.clone()],
            ),
            (
                Role::Sub(0),
                format!("mb{rid}probe"),
                vec![probe_topic.clone()],
            ),
        ],
        o,
    )?;
    connect(
        &mut e,
        (0..streams)
            .map(|i| (Role::Pub(i as u32), format!("mb{rid}p{i}"), Vec::new()))
            .collect(),
        o,
    )?;
    e.add_publisher_spec(&PubSpec {
        topic: &probe_topic,
        spread: None,
        stream: 0,
        size: o.size,
        limit: u64::MAX,
        rate: o.rate,
        qos: o.qos,
        retain: false,
        background: true,
    });
    for (k, (&s0, &s1)) in q0.iter().zip(&q1).enumerate() {
        for (stream, qos, count) in [(s0, 0, o.qos0_count), (s1, 1, o.qos1_count)] {
            e.add_publisher_spec(&PubSpec {
                topic: &flood_topic,
                spread: None,
                stream,
                size: o.size,
                limit: if count == 0 { 0 } else { share(count, np, k) },
                rate: 0.0,
                qos,
                retain: false,
                background: false,
            });
        }
    }
    let cpu0 = broker.and_then(Broker::sample);
    let drain = secs(o.drain);
    // midge pauses a publisher for up to 2 s when the queue it feeds is full: a drain that
    // gives up after less silence than that would end the stage too early.
    let quiet = secs(o.idle.max(3.0));
    let mut tick = || {
        peak.sample(broker);
    };
    let mut steps = Vec::new();
    for (name, active, d) in [
        ("QoS 0 flood", &q0, o.duration),
        ("QoS 1 flood", &q1, o.duration),
        ("after", &Vec::new(), o.after),
    ] {
        for s in 1..streams as u32 {
            e.set_active(s, active.contains(&s));
        }
        e.hist = Histogram::default();
        let probe0 = e.published[0];
        let got0 = e.delivered;
        let sent0: u64 = active.iter().map(|&s| e.published[s as usize]).sum();
        let acked0: u64 = active.iter().map(|&s| e.pub_acks(s).0).sum();
        let (t0, _, mut end) = e
            .run_traffic(secs(d), drain, quiet, &mut tick)
            .map_err(io)?;
        if !active.is_empty() {
            // The broker has swallowed the flood when it answers a PINGREQ sent after it.
            let flooder = |r: Role| matches!(r, Role::Pub(s) if active.contains(&s));
            e.ping(&flooder, drain).map_err(io)?;
            end = Instant::now();
        }
        steps.push(Step {
            name,
            wall_s: (end - t0).as_secs_f64(),
            flood_sent: active.iter().map(|&s| e.published[s as usize]).sum::<u64>() - sent0,
            flood_acked: active.iter().map(|&s| e.pub_acks(s).0).sum::<u64>() - acked0,
            probe_sent: e.published[0] - probe0,
            probe_got: e.delivered - got0,
            hist: std::mem::take(&mut e.hist),
        });
    }
    // Whatever is still due: probe messages, QoS 1 acknowledgements (bounded).
    let all_in = |e: &Engine| e.published[0] == e.subs[0][0].unique && e.unacked() == 0;
    e.wait_until(drain, quiet, &all_in, &mut tick).map_err(io)?;
    let end = peak.sample(broker);
    e.disconnect_all();

    let probe = &e.subs[0][0];
    let probe_sent = e.published[0];
    let probe_lost = probe.lost(probe_sent);
    let (_, probe_unacked) = e.pub_acks(0);
    let sum = |ss: &[u32], f: &dyn Fn(u32) -> u64| ss.iter().map(|&s| f(s)).sum::<u64>();
    let q0_sent = sum(&q0, &|s| e.published[s as usize]);
    let q1_sent = sum(&q1, &|s| e.published[s as usize]);
    let q1_acked = sum(&q1, &|s| e.pub_acks(s).0);
    let q1_unacked = sum(&q1, &|s| e.pub_acks(s).1);
    let closed = e.c.closed - e.c.sinks_closed;
    let probe_ok = probe_sent > 0
        && probe_lost == 0
        && probe.dup == 0
        && probe.ooo == 0
        && probe_unacked == 0
        && closed == 0
        && e.c.protocol_errors == 0;
    let mut flood_hist = steps[0].hist.clone();
    flood_hist.merge(&steps[1].hist);
    let bound = abuse_bound_kb(
        o.max_queued,
        o.max_queued_bytes,
        o.max_inflight,
        o.size,
        flood_topic.len(),
        streams + 2,
    )
    .unwrap_or(u64::MAX);

    let (vname, vnum) = version(o);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "midge_bench  abuse  MQTT {vname}  1 subscriber that never reads (QoS {} subscription) \
         <- {np} + {np} publishers (QoS 0, then QoS 1), payload {} B; probe pair at QoS {}, \
         {:.0} msg/s  broker={}",
        o.qos, o.size, o.qos, o.rate, o.label
    );
    for st in &steps {
        let flood = match st.name {
            "QoS 0 flood" => format!("{} of {} sent", st.flood_sent, o.qos0_count),
            "QoS 1 flood" => format!(
                "{} of {} sent, {} acknowledged",
                st.flood_sent, o.qos1_count, st.flood_acked
            ),
            _ => "no flood".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<14}  {:.2} s: {flood}; probe {} of {} delivered, {}",
            st.name,
            st.wall_s,
            st.probe_got,
            st.probe_sent,
            st.latency()
        );
    }
    let _ = writeln!(
        out,
        "  probe           sent {probe_sent}, delivered {}, lost {probe_lost}, duplicated {}, out \
         of order {}, unacknowledged {probe_unacked}, connections closed {closed}: {}",
        probe.unique,
        probe.dup,
        probe.ooo,
        if probe_ok { "ok" } else { "FAILED" }
    );
    let _ = writeln!(
        out,
        "  floods          QoS 0: {q0_sent} sent; QoS 1: {q1_sent} sent, {q1_acked} acknowledged, \
         {q1_unacked} unacknowledged; the sink was {}",
        if e.c.sinks_closed > 0 {
            "closed by the broker"
        } else {
            "kept connected"
        }
    );
    let mut result = format!(
        "RESULT scenario=abuse broker={} mqtt={vnum} qos={} pubs={np} size={} qos0_count={} \
         qos1_count={} qos0_sent={q0_sent} qos0_s={:.3} qos1_sent={q1_sent} qos1_acked={q1_acked} \
         qos1_unacked={q1_unacked} qos1_s={:.3} probe_rate={:.0} probe_sent={probe_sent} \
         probe_delivered={} lost={probe_lost} dup={} ooo={} probe_unacked={probe_unacked} \
         probe_flood_p50_us={} probe_flood_p99_us={} probe_flood_max_us={} \
         probe_after_p99_us={} probe_ok={} sink_closed={} closed={closed} protocol_errors={}",
        o.label,
        o.qos,
        o.size,
        o.qos0_count,
        o.qos1_count,
        steps[0].wall_s,
        steps[1].wall_s,
        o.rate,
        probe.unique,
        probe.dup,
        probe.ooo,
        us(flood_hist.quantile(0.5)),
        us(flood_hist.quantile(0.99)),
        us(flood_hist.max()),
        us(steps[2].hist.quantile(0.99)),
        u8::from(probe_ok),
        e.c.sinks_closed,
        e.c.protocol_errors
    );
    let mut ok = probe_ok;
    if let (Some(i), Some(z), Some(c0)) = (idle, end, cpu0) {
        let growth = peak.peak_kb().saturating_sub(i.rss_kb);
        let held = growth <= bound;
        ok &= held;
        let _ = writeln!(
            out,
            "  broker RSS      {} idle, peak {} (VmHWM {}), {} at the end: growth {growth} kB; \
             bound {bound} kB (max_queued_messages {}, max_queued_bytes {}, \
             max_inflight_messages {}): {}; CPU {:.2} s",
            mb(i.rss_kb),
            mb(peak.rss_kb),
            mb(peak.hwm_kb),
            mb(z.rss_kb),
            o.max_queued,
            o.max_queued_bytes,
            o.max_inflight,
            if held { "held" } else { "EXCEEDED" },
            z.cpu_s - c0.cpu_s
        );
        let _ = write!(
            result,
            " rss_before_kb={} rss_peak_kb={} hwm_kb={} rss_after_kb={} rss_growth_kb={growth} \
             bound_kb={bound} bounded={} cpu_s={:.3}",
            i.rss_kb,
            peak.rss_kb,
            peak.hwm_kb,
            z.rss_kb,
            u8::from(held),
            z.cpu_s - c0.cpu_s
        );
    }
    print!("{out}");
    println!("{result}");
    Ok(!o.check || ok)
}

// ---------------------------------------------------------------------------------------------
// retained

pub(crate) fn run_retained(
    o: &Opts,
    mut params: Params,
    broker: Option<&Broker>,
) -> Result<bool, String> {
    let rid = run_id();
    let base = format!("{}/{rid}/r", o.topic);
    let n = o.count;
    // Nobody subscribes while they are published.
    params.backlog = 0;
    // 1,000 topics at the first level, n / 1,000 under each.
    let spread = Spread::new(1000, n);
    // Subscriber 0: the last topic only; subscriber 1: all of them.
    let mut e = Engine::new(params, Route::All, 1, 2).map_err(io)?;
    connect(
        &mut e,
        vec![(Role::Pub(0), format!("mb{rid}p0"), Vec::new())],
        o,
    )?;
    let mut peak = Peak::default();
    let mut tick = || {
        peak.sample(broker);
    };
    e.hold(Duration::from_millis(200)).map_err(io)?;
    let b0 = broker.and_then(Broker::sample);
    e.add_publisher_spec(&PubSpec {
        topic: &base,
        spread: Some(spread),
        stream: 0,
        size: o.size,
        limit: n,
        rate: o.rate,
        qos: o.qos,
        retain: true,
        background: false,
    });
    let (t0, pub_end, _) = e
        .run_traffic(secs(o.duration), secs(o.drain), secs(o.idle), &mut tick)
        .map_err(io)?;
    let published = e.published[0];
    let (acked, unacked) = e.pub_acks(0);
    let stored_at = if o.qos > 0 {
        e.last_ack.unwrap_or(pub_end)
    } else {
        pub_end
    };
    let store_s = stored_at.saturating_duration_since(t0).as_secs_f64();

    // The last one published must be there for a subscriber to its topic.
    let (a, b) = spread.cell(published.saturating_sub(1));
    connect(
        &mut e,
        vec![(
            Role::Sub(0),
            format!("mb{rid}s0"),
            vec![spread.topic(&base, a, b)],
        )],
        o,
    )?;
    e.wait_until(
        Duration::from_secs(5),
        Duration::from_secs(5),
        &|e: &Engine| e.subs[0][0].unique > 0,
        &mut tick,
    )
    .map_err(io)?;
    let last_ok = published > 0 && e.subs[0][0].unique == 1 && e.subs[0][0].reached() == published;
    e.hold(secs(o.settle)).map_err(io)?;
    let b1 = broker.and_then(Broker::sample);
    tick();

    // A new subscriber to all of them: how many arrive, how fast.
    let t_sub = Instant::now();
    connect(
        &mut e,
        vec![(
            Role::Sub(1),
            format!("mb{rid}s1"),
            vec![format!("{base}/#")],
        )],
        o,
    )?;
    let all = move |e: &Engine| e.subs[1][0].unique >= published;
    e.wait_until(secs(o.duration), secs(o.idle), &all, &mut tick)
        .map_err(io)?;
    tick();
    let b2 = broker.and_then(Broker::sample);
    e.disconnect_all();
    let r = &e.subs[1][0];
    let received = r.unique;
    let recv_s = e
        .last_delivery
        .filter(|&t| t > t_sub)
        .map_or(0.0, |t| (t - t_sub).as_secs_f64());
    let recv_per_s = received as f64 / recv_s.max(1e-9);
    let lost = published.saturating_sub(received);

    let (vname, vnum) = version(o);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "midge_bench  retained  MQTT {vname}  {n} retained messages, QoS {}, payload {} B, on \
         topics {}  broker={}",
        o.qos,
        o.size,
        spread.topic(&base, 0, 0),
        o.label
    );
    let _ = writeln!(
        out,
        "  stored          {published} published{} in {store_s:.2} s ({:.0} msg/s); a \
         subscriber to the last topic got it: {}",
        if o.qos > 0 {
            format!(", {acked} acknowledged, {unacked} unacknowledged")
        } else {
            String::new()
        },
        published as f64 / store_s.max(1e-9),
        if last_ok { "yes" } else { "NO" }
    );
    let _ = writeln!(
        out,
        "  new subscriber  {received} of {published} received ({} with RETAIN set, {} \
         duplicated, {} not in publishing order, which no broker promises) in {recv_s:.2} s: \
         {recv_per_s:.0} msg/s",
        e.c.retained.saturating_sub(e.subs[0][0].unique),
        r.dup,
        r.ooo
    );
    let mut result = format!(
        "RESULT scenario=retained broker={} mqtt={vnum} qos={} size={} count={n} \
         published={published} acked={acked} unacked={unacked} store_s={store_s:.3} \
         store_per_s={:.0} last_ok={} received={received} recv_s={recv_s:.3} \
         recv_per_s={recv_per_s:.0} lost={lost} dup={} reordered={} closed={} protocol_errors={}",
        o.label,
        o.qos,
        o.size,
        published as f64 / store_s.max(1e-9),
        u8::from(last_ok),
        r.dup,
        r.ooo,
        e.c.closed,
        e.c.protocol_errors
    );
    if let (Some(b0), Some(b1), Some(b2)) = (b0, b1, b2) {
        let per = (b1.rss_kb as f64 - b0.rss_kb as f64) * 1024.0 / published.max(1) as f64;
        let _ = writeln!(
            out,
            "  broker RSS      {} before, {} with the retained messages: {per:.0} bytes per \
             retained message; {} after the new subscriber, peak {}; CPU {:.2} s storing, {:.2} s \
             sending them",
            mb(b0.rss_kb),
            mb(b1.rss_kb),
            mb(b2.rss_kb),
            mb(peak.peak_kb()),
            b1.cpu_s - b0.cpu_s,
            b2.cpu_s - b1.cpu_s
        );
        let _ = write!(
            result,
            " rss_before_kb={} rss_retained_kb={} rss_after_kb={} rss_peak_kb={} \
             bytes_per_retained={per:.0} store_cpu_s={:.3} recv_cpu_s={:.3}",
            b0.rss_kb,
            b1.rss_kb,
            b2.rss_kb,
            peak.peak_kb(),
            b1.cpu_s - b0.cpu_s,
            b2.cpu_s - b1.cpu_s
        );
    }
    print!("{out}");
    println!("{result}");
    let ok = last_ok
        && unacked == 0
        && r.dup == 0
        && e.c.closed == 0
        && e.c.protocol_errors == 0
        && e.c.corrupt == 0;
    Ok(!o.check || ok)
}

// ---------------------------------------------------------------------------------------------
// memprobe

/// One large retained message, then S subscribers to its topic: how much the broker's memory
/// grows while it delivers that one payload to all of them. A broker that stores a payload
/// once and sends it by reference grows by about one payload (plus the output it keeps per
/// connection); one that encodes a copy per subscriber grows by S payloads.
pub(crate) fn run_memprobe(
    o: &Opts,
    mut params: Params,
    broker: Option<&Broker>,
) -> Result<bool, String> {
    let rid = run_id();
    let topic = format!("{}/{rid}/big", o.topic);
    params.backlog = 0;
    let subs = o.subscribers;
    let mut e = Engine::new(params, Route::All, 1, subs).map_err(io)?;
    connect(
        &mut e,
        vec![(Role::Pub(0), format!("mb{rid}p0"), Vec::new())],
        o,
    )?;
    let peak = std::cell::Cell::new(Peak::default());
    e.hold(Duration::from_millis(200)).map_err(io)?;
    let b0 = broker.and_then(Broker::sample);
    e.add_publisher_spec(&PubSpec {
        topic: &topic,
        spread: None,
        stream: 0,
        size: o.size,
        limit: 1,
        rate: 0.0,
        qos: o.qos,
        retain: true,
        background: false,
    });
    let mut tick = || {
        let mut p = peak.get();
        p.sample(broker);
        peak.set(p);
    };
    e.run_traffic(secs(o.duration), secs(o.drain), secs(o.idle), &mut tick)
        .map_err(io)?;
    let (acked, unacked) = e.pub_acks(0);
    e.hold(secs(o.settle)).map_err(io)?;
    let b1 = broker.and_then(Broker::sample);
    // The delivery phase gets a peak of its own: VmHWM counts only if it rose past the
    // storing phase's.
    let store_peak = peak.get();
    peak.set(Peak::default());
    let specs = (0..subs)
        .map(|i| {
            (
                Role::Sub(i as u32),
                format!("mb{rid}s{i}"),
                vec![topic.clone()],
            )
        })
        .collect();
    let t_sub = Instant::now();
    connect(&mut e, specs, o)?;
    let all = move |e: &Engine| e.subs.iter().all(|s| s[0].unique >= 1);
    e.wait_until(secs(o.duration), secs(o.idle), &all, &mut tick)
        .map_err(io)?;
    let deliver_s = e
        .last_delivery
        .filter(|&t| t > t_sub)
        .map_or(0.0, |t| (t - t_sub).as_secs_f64());
    tick();
    e.hold(secs(o.settle)).map_err(io)?;
    tick();
    let b2 = broker.and_then(Broker::sample);
    e.disconnect_all();
    let received: u64 = e.subs.iter().map(|s| s[0].unique.min(1)).sum();
    let dup: u64 = e.subs.iter().map(|s| s[0].dup).sum();

    let (vname, vnum) = version(o);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "midge_bench  memprobe  MQTT {vname}  one retained message of {} B (QoS {}), then {subs} \
         subscribers to it  broker={}",
        o.size, o.qos, o.label
    );
    let _ = writeln!(
        out,
        "  delivered       to {received} of {subs} subscribers in {deliver_s:.3} s ({dup} \
         duplicated)"
    );
    let mut result = format!(
        "RESULT scenario=memprobe broker={} mqtt={vnum} qos={} size={} subs={subs} acked={acked} \
         unacked={unacked} received={received} lost={} dup={dup} deliver_s={deliver_s:.3} \
         closed={} protocol_errors={}",
        o.label,
        o.qos,
        o.size,
        subs as u64 - received,
        e.c.closed,
        e.c.protocol_errors
    );
    if let (Some(b0), Some(b1), Some(b2)) = (b0, b1, b2) {
        let payload_kb = o.size as f64 / 1024.0;
        let d = peak.get();
        let hwm_rose = if d.hwm_kb > store_peak.hwm_kb {
            d.hwm_kb
        } else {
            0
        };
        let deliver_peak = d.rss_kb.max(hwm_rose).max(b1.rss_kb);
        let deliver = deliver_peak.saturating_sub(b1.rss_kb);
        let store = store_peak
            .peak_kb()
            .max(b1.rss_kb)
            .saturating_sub(b0.rss_kb);
        let kept = b1.rss_kb.saturating_sub(b0.rss_kb);
        let _ = writeln!(
            out,
            "  broker RSS      {} before; storing it: peak +{store} kB ({:.2} payloads), +{kept} \
             kB kept; delivering it to {subs}: peak +{deliver} kB more ({:.2} payloads); {} after",
            mb(b0.rss_kb),
            store as f64 / payload_kb,
            deliver as f64 / payload_kb,
            mb(b2.rss_kb)
        );
        let _ = write!(
            result,
            " rss_before_kb={} rss_stored_kb={} rss_after_kb={} store_growth_kb={store} \
             kept_kb={kept} deliver_growth_kb={deliver} store_payloads={:.2} \
             deliver_payloads={:.2}",
            b0.rss_kb,
            b1.rss_kb,
            b2.rss_kb,
            store as f64 / payload_kb,
            deliver as f64 / payload_kb
        );
    }
    print!("{out}");
    println!("{result}");
    let ok = received == subs as u64
        && unacked == 0
        && dup == 0
        && e.c.closed == 0
        && e.c.protocol_errors == 0
        && e.c.corrupt == 0;
    Ok(!o.check || ok)
}

// ---------------------------------------------------------------------------------------------
// subs

/// One stage of the subs run: `subs` subscriptions, then publishing to them.
struct SubStage {
    subs: usize,
    subscribe_s: f64,
    rss_conn_kb: u64,
    rss_subs_kb: u64,
    published: u64,
    delivered: u64,
    window_s: f64,
    cpu_s: f64,
    lost: u64,
    dup: u64,
    ooo: u64,
    unexpected: u64,
    closed: u64,
}

impl SubStage {
    fn msgs_per_s(&self) -> f64 {
        self.delivered as f64 / self.window_s.max(1e-9)
    }

    fn cpu_per_m(&self) -> f64 {
        self.cpu_s / self.delivered.max(1) as f64 * 1e6
    }

    fn bytes_per_sub(&self) -> f64 {
        (self.rss_subs_kb as f64 - self.rss_conn_kb as f64) * 1024.0 / self.subs.max(1) as f64
    }
}

/// `clients` subscribers with `subs / clients` filters each (`PREFIX/CLIENT/J`), one
/// publisher whose message `seq` goes to topic cell `seq % subs`: every message matches
/// exactly one subscription, and consecutive messages go to consecutive clients.
fn subs_stage(
    o: &Opts,
    params: Params,
    broker: Option<&Broker>,
    spread: Spread,
    base: &str,
    subs: usize,
    peak: &mut Peak,
) -> Result<SubStage, String> {
    let rid = run_id();
    let c = o.clients;
    let per = (subs / c) as u64;
    let route = Route::Spread {
        modulo: subs as u64,
        cols: c as u64,
    };
    let mut e = Engine::new(params, route, 1, c).map_err(io)?;
    let mut specs: Vec<(Role, String, Vec<String>)> = (0..c)
        .map(|i| (Role::Sub(i as u32), format!("mb{rid}s{i}"), Vec::new()))
        .collect();
    specs.push((Role::Pub(0), format!("mb{rid}p0"), Vec::new()));
    connect(&mut e, specs, o)?;
    e.hold(Duration::from_millis(300)).map_err(io)?;
    let s0 = broker.and_then(Broker::sample);
    let more = (0..c)
        .map(|i| {
            let fs = (0..per).map(|j| spread.topic(base, i as u64, j)).collect();
            (Role::Sub(i as u32), fs)
        })
        .collect();
    let t = Instant::now();
    let missing = e
        .subscribe_more(more, t + secs(o.connect_timeout))
        .map_err(io)?;
    let subscribe_s = t.elapsed().as_secs_f64();
    if missing > 0 {
        return Err(format!(
            "{missing} SUBACKs did not come within {} s (--connect-timeout){}",
            o.connect_timeout,
            e.c.last_error
                .as_ref()
                .map_or(String::new(), |m| format!("; last: {m}"))
        ));
    }
    e.hold(secs(o.settle)).map_err(io)?;
    let s1 = broker.and_then(Broker::sample);
    peak.sample(broker);
    let mut sp = spread;
    sp.modulo = subs as u64;
    e.add_publisher_spec(&PubSpec {
        topic: base,
        spread: Some(sp),
        stream: 0,
        size: o.size,
        limit: share(o.count, 1, 0),
        rate: o.rate,
        qos: o.qos,
        retain: false,
        background: false,
    });
    let mut tick = || {
        peak.sample(broker);
    };
    let (t0, pub_end, _) = e
        .run_traffic(secs(o.duration), secs(o.drain), secs(o.idle), &mut tick)
        .map_err(io)?;
    let s2 = broker.and_then(Broker::sample);
    peak.sample(broker);
    e.disconnect_all();
    let published = e.published[0];
    let unique: u64 = e.subs.iter().map(|s| s[0].unique).sum();
    let last = e.last_delivery.unwrap_or(pub_end);
    Ok(SubStage {
        subs,
        subscribe_s,
        rss_conn_kb: s0.map_or(0, |s| s.rss_kb),
        rss_subs_kb: s1.map_or(0, |s| s.rss_kb),
        published,
        delivered: e.delivered,
        window_s: last.saturating_duration_since(t0).as_secs_f64(),
        cpu_s: match (s1, s2) {
            (Some(a), Some(b)) => b.cpu_s - a.cpu_s,
            _ => 0.0,
        },
        lost: published.saturating_sub(unique),
        dup: e.subs.iter().map(|s| s[0].dup).sum(),
        ooo: e.subs.iter().map(|s| s[0].ooo).sum(),
        unexpected: e.c.unexpected,
        closed: e.c.closed,
    })
}

pub(crate) fn run_subs(o: &Opts, params: Params, broker: Option<&Broker>) -> Result<bool, String> {
    let rid = run_id();
    let base = format!("{}/{rid}/s", o.topic);
    let spread = Spread::new(o.clients as u64, o.subs as u64);
    let mut peak = Peak::default();
    peak.sample(broker);
    // The large stage first, on a broker that has held nothing yet, so that the memory it
    // gains is the subscriptions' own, not reused from earlier buffers. Each stage has its
    // own clients; the first ones are gone (with their subscriptions) before the second.
    let large = subs_stage(o, params.clone(), broker, spread, &base, o.subs, &mut peak)?;
    let small = subs_stage(o, params, broker, spread, &base, o.subs_small, &mut peak)?;

    let (vname, vnum) = version(o);
    let cpu_ratio = large.cpu_per_m() / small.cpu_per_m().max(1e-12);
    let rate_ratio = large.msgs_per_s() / small.msgs_per_s().max(1e-12);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "midge_bench  subs  MQTT {vname}  {} subscribers, subscriptions like {}; 1 publisher, \
         QoS {}, payload {} B, each message matching one subscription  broker={}",
        o.clients,
        spread.topic(&base, 0, 0),
        o.qos,
        o.size,
        o.label
    );
    for st in [&large, &small] {
        let _ = writeln!(
            out,
            "  {:>8} subs   subscribed in {:.2} s ({:.0}/s); RSS {} -> {}: {:.0} bytes per \
             subscription; published {}, delivered {} ({:.0} msg/s), lost {} dup {} ooo {} \
             misrouted {}; broker CPU {:.2} s, {:.3} s per million",
            st.subs,
            st.subscribe_s,
            st.subs as f64 / st.subscribe_s.max(1e-9),
            mb(st.rss_conn_kb),
            mb(st.rss_subs_kb),
            st.bytes_per_sub(),
            st.published,
            st.delivered,
            st.msgs_per_s(),
            st.lost,
            st.dup,
            st.ooo,
            st.unexpected,
            st.cpu_s,
            st.cpu_per_m()
        );
    }
    let _ = writeln!(
        out,
        "  flatness        {} / {} subscriptions: CPU per message x{cpu_ratio:.2}, throughput \
         x{rate_ratio:.2}",
        o.subs, o.subs_small
    );
    let closed = large.closed + small.closed;
    let mut result = format!(
        "RESULT scenario=subs broker={} mqtt={vnum} qos={} size={} clients={} subs={} \
         subs_small={} subscribe_s={:.3} subs_per_s={:.0} large_published={} \
         large_delivered={} large_msgs_per_s={:.0} small_published={} small_delivered={} \
         small_msgs_per_s={:.0} rate_ratio={rate_ratio:.3} lost={} dup={} ooo={} \
         unexpected={} closed={closed}",
        o.label,
        o.qos,
        o.size,
        o.clients,
        o.subs,
        o.subs_small,
        large.subscribe_s,
        large.subs as f64 / large.subscribe_s.max(1e-9),
        large.published,
        large.delivered,
        large.msgs_per_s(),
        small.published,
        small.delivered,
        small.msgs_per_s(),
        large.lost + small.lost,
        large.dup + small.dup,
        large.ooo + small.ooo,
        large.unexpected + small.unexpected,
    );
    if broker.is_some() {
        let _ = write!(
            result,
            " rss_before_kb={} rss_subs_kb={} bytes_per_sub={:.0} large_cpu_s={:.3} \
             large_cpu_s_per_M={:.4} small_cpu_s={:.3} small_cpu_s_per_M={:.4} \
             cpu_ratio={cpu_ratio:.3} rss_peak_kb={}",
            large.rss_conn_kb,
            large.rss_subs_kb,
            large.bytes_per_sub(),
            large.cpu_s,
            large.cpu_per_m(),
            small.cpu_s,
            small.cpu_per_m(),
            peak.peak_kb()
        );
    }
    print!("{out}");
    println!("{result}");
    let ok = large.dup + small.dup == 0
        && large.ooo + small.ooo == 0
        && large.unexpected + small.unexpected == 0
        && closed == 0;
    Ok(!o.check || ok)
}
