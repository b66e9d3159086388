//! Tests of the bench's own logic: accounting, percentiles, encoding (checked against midge's
//! codec), option checks. No timing and no broker.

use super::*;
use crate::proto::{In, Spread, Template};
use crate::stats::{Histogram, RecvStream, Seen};
use midge::mqtt::{self as m, Packet, Properties, QoS, Status, Version};

#[test]
fn histogram_is_exact_for_small_values_and_within_two_percent_above() {
    let mut h = Histogram::default();
    assert_eq!(h.quantile(0.5), 0, "empty");
    for v in 1..=100 {
        h.record(v);
    }
    assert_eq!(h.quantile(0.5), 50);
    assert_eq!(h.quantile(0.99), 99);
    assert_eq!(h.quantile(1.0), 100);
    assert_eq!(h.mean(), 50);

    let mut h = Histogram::default();
    for v in 1..=1_000_000u64 {
        h.record(v * 1000); // 1 us .. 1 s
    }
    for (q, want) in [
        (0.5, 500_000_000f64),
        (0.99, 990_000_000.0),
        (0.999, 999_000_000.0),
    ] {
        let got = h.quantile(q) as f64;
        assert!(
            (got - want).abs() / want < 0.02,
            "q{q}: got {got}, want {want}"
        );
    }
    assert_eq!(h.max(), 1_000_000_000);
    assert_eq!(h.count(), 1_000_000);
}

#[test]
fn histogram_quantile_is_clamped_to_what_was_recorded() {
    let mut h = Histogram::default();
    h.record(123_456_789);
    assert_eq!(h.quantile(0.5), 123_456_789);
    assert_eq!(h.quantile(0.999), 123_456_789);
    // A skewed distribution: 990 fast, 10 slow. p99 is fast, p99.9 slow.
    let mut h = Histogram::default();
    for _ in 0..990 {
        h.record(10_000);
    }
    for _ in 0..10 {
        h.record(5_000_000);
    }
    let p99 = h.quantile(0.99);
    let p999 = h.quantile(0.999);
    assert!((9_800..=10_200).contains(&p99), "{p99}");
    assert!((4_900_000..=5_000_000).contains(&p999), "{p999}");
}

#[test]
fn stream_counts_loss_duplicates_and_reordering() {
    let mut s = RecvStream::default();
    let got: Vec<Seen> = [0, 1, 2, 4, 3, 3, 5, 200, 7]
        .iter()
        .map(|&q| s.record(q))
        .collect();
    use Seen::*;
    assert_eq!(
        got,
        [InOrder, InOrder, InOrder, InOrder, OutOfOrder, Duplicate, InOrder, InOrder, OutOfOrder]
    );
    assert_eq!((s.unique, s.dup, s.ooo), (8, 1, 2));
    // Published 0..=200: 201 messages, 8 distinct arrived.
    assert_eq!(s.lost(201), 193);
    // A gap alone (QoS 0 loss) is loss, not reordering.
    let mut s = RecvStream::default();
    for q in [0, 1, 5, 6] {
        s.record(q);
    }
    assert_eq!((s.lost(7), s.dup, s.ooo), (3, 0, 0));
}

fn params(addr: SocketAddr, qos: u8, backlog: u64) -> Params {
    Params {
        addr,
        v5: false,
        qos,
        nodelay: true,
        keep_alive: 60,
        max_packet: 1 << 20,
        window: 20,
        backlog,
        ws: false,
        sub_addr: None,
        tls: None,
    }
}

#[test]
fn integrity_sums_only_the_streams_a_subscriber_should_get() {
    let p = Params {
        addr: "127.0.0.1:1".parse().unwrap(),
        v5: false,
        qos: 1,
        nodelay: true,
        keep_alive: 60,
        max_packet: 1 << 20,
        window: 20,
        backlog: 0,
        ws: false,
        sub_addr: None,
        tls: None,
    };
    let mut e = Engine::new(p, Route::Pairs, 2, 2).unwrap();
    e.published = vec![3, 3];
    for q in [0, 2, 1] {
        e.subs[0][0].record(q); // reordered once
    }
    for q in [0, 0] {
        e.subs[1][1].record(q); // one dup, two lost
    }
    e.subs[0][1].record(0); // a stream subscriber 0 should not get: not counted here
    let (t, lines) = integrity(&e, Route::Pairs);
    assert_eq!(
        t,
        Integrity {
            lost: 2,
            dup: 1,
            ooo: 1,
            streams: 2,
            streams_lossy: 2
        }
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(e.expected(), 6);
}

#[test]
fn backlog_follows_the_slowest_subscriber() {
    let p = Params {
        addr: "127.0.0.1:1".parse().unwrap(),
        v5: false,
        qos: 0,
        nodelay: true,
        keep_alive: 60,
        max_packet: 1 << 20,
        window: 20,
        backlog: 10,
        ws: false,
        sub_addr: None,
        tls: None,
    };
    let mut e = Engine::new(p, Route::All, 1, 3).unwrap();
    assert_eq!(e.backlog_limit(0), 10, "nothing received yet");
    e.subs[0][0].record(5);
    e.subs[1][0].record(3);
    assert_eq!(e.backlog_limit(0), 10, "subscriber 2 has nothing");
    e.subs[2][0].record(7);
    // Slowest has reached sequence 3 (so 4 counted), loss does not hold publishers back.
    assert_eq!(e.backlog_limit(0), 14);
}

#[test]
fn shares_add_up_to_the_count() {
    for (count, n) in [(10, 3), (1, 4), (1_000_001, 100), (7, 7)] {
        let sum: u64 = (0..n).map(|i| share(count, n, i)).sum();
        assert_eq!(sum, count);
    }
    assert_eq!(share(0, 4, 2), u64::MAX);
}

fn decode_with_midge(buf: &[u8], v: Version) -> Packet<'_> {
    match m::decode(buf, v, 1 << 20).unwrap() {
        Status::Complete(p, n) => {
            assert_eq!(n, buf.len());
            p
        }
        Status::Partial => panic!("partial"),
    }
}

#[test]
fn publish_template_is_valid_mqtt_and_round_trips() {
    for v5 in [false, true] {
        let v = if v5 { Version::V5 } else { Version::V311 };
        for qos in 0..=2u8 {
            let t = Template::new(v5, "midge_bench/abc/7", qos, 64, 7);
            let mut buf = Vec::new();
            t.append(&mut buf, 513, 42, 1_234_567_890);
            assert_eq!(buf.len(), t.len());
            let Packet::Publish(p) = decode_with_midge(&buf, v) else {
                panic!("not a PUBLISH")
            };
            assert_eq!(p.qos.as_u8(), qos);
            assert_eq!(p.topic, "midge_bench/abc/7");
            assert_eq!(p.pid, (qos > 0).then_some(513));
            assert_eq!(p.payload.len(), 64);
            let (b1, body, total) = proto::frame(&buf).unwrap().unwrap();
            assert_eq!(total, buf.len());
            let In::Publish {
                qos: q,
                pid,
                payload,
                ..
            } = proto::parse(b1, &buf[body..], v5).unwrap()
            else {
                panic!("not a PUBLISH")
            };
            assert_eq!((q, pid), (qos, if qos > 0 { 513 } else { 0 }));
            let s = proto::read_stamp(payload).unwrap();
            assert_eq!((s.stream, s.seq, s.ts_ns), (7, 42, 1_234_567_890));
        }
    }
}

#[test]
fn spread_topics_are_fixed_width_and_cover_every_cell_once() {
    let sp = Spread::new(100, 100_000);
    assert_eq!(sp.topic("p", 7, 42), "p/07/042");
    assert_eq!(sp.topic("p", 99, 999), "p/99/999");
    assert_eq!(sp.cell(0), (0, 0));
    assert_eq!(sp.cell(101), (1, 1));
    assert_eq!(sp.cell(100_000 + 5), (5, 0), "cycles over modulo cells");
    let mut seen = std::collections::HashSet::new();
    for k in 0..100_000 {
        assert!(seen.insert(sp.cell(k)));
    }
    // One column: a single number, still two levels.
    let sp = Spread::new(1, 10);
    assert_eq!(sp.topic("p", 0, 9), "p/0/9");
    assert_eq!(proto::digits(0), 1);
    assert_eq!(proto::digits(9), 1);
    assert_eq!(proto::digits(10), 2);
    assert_eq!(proto::digits(999_999), 6);
}

#[test]
fn spread_template_patches_the_topic_and_sets_retain() {
    let mut sp = Spread::new(1000, 100_000);
    for v5 in [false, true] {
        let v = if v5 { Version::V5 } else { Version::V311 };
        let t = Template::build(v5, "r/abc", Some(sp), 1, 64, 3, true);
        for seq in [0u64, 1, 999, 1000, 12_345, 99_999, 100_000] {
            let mut buf = Vec::new();
            t.append(&mut buf, 9, seq, 77);
            assert_eq!(buf.len(), t.len());
            let Packet::Publish(p) = decode_with_midge(&buf, v) else {
                panic!("not a PUBLISH")
            };
            let (a, b) = sp.cell(seq);
            assert_eq!(p.topic, sp.topic("r/abc", a, b));
            assert!(p.retain);
            assert_eq!(p.pid, Some(9));
            let (b1, body, _) = proto::frame(&buf).unwrap().unwrap();
            let In::Publish {
                retain, payload, ..
            } = proto::parse(b1, &buf[body..], v5).unwrap()
            else {
                panic!()
            };
            assert!(retain);
            assert_eq!(proto::read_stamp(payload).unwrap().seq, seq);
        }
    }
    // A smaller modulo keeps the widths, so the same topics as the filters of the big one.
    sp.modulo = 10;
    let t = Template::build(false, "r", Some(sp), 0, 20, 0, false);
    let mut buf = Vec::new();
    t.append(&mut buf, 0, 13, 0);
    let Packet::Publish(p) = decode_with_midge(&buf, Version::V311) else {
        panic!()
    };
    assert_eq!(p.topic, "r/003/00");
    assert!(!p.retain);
}

#[test]
fn spread_route_expects_one_subscriber_per_message() {
    let mut e = Engine::new(
        params("127.0.0.1:1".parse().unwrap(), 0, 100),
        Route::Spread {
            modulo: 1000,
            cols: 100,
        },
        1,
        100,
    )
    .unwrap();
    for seq in [0u64, 1, 99, 100, 999, 1000, 123_456] {
        let want = ((seq % 1000) % 100) as usize;
        for sub in 0..100 {
            assert_eq!(e.expects(sub, 0, seq), sub == want, "seq {seq} sub {sub}");
        }
    }
    e.published = vec![500];
    assert_eq!(
        e.expected(),
        500,
        "each message once, not once per subscriber"
    );
    // The backlog follows the furthest subscriber: the others only get some messages.
    e.subs[3][0].record(103);
    e.subs[4][0].record(4);
    assert_eq!(e.backlog_limit(0), 104 + 100);
}

#[test]
fn pairs_expect_only_the_streams_that_have_a_subscriber() {
    let mut e = Engine::new(
        params("127.0.0.1:1".parse().unwrap(), 1, 0),
        Route::Pairs,
        5,
        1,
    )
    .unwrap();
    e.published = vec![10, 1000, 1000, 7, 7];
    assert_eq!(
        e.expected(),
        10,
        "streams 1..5 (floods) go to no subscriber"
    );
}

#[test]
fn histograms_merge() {
    let mut a = Histogram::default();
    let mut b = Histogram::default();
    for v in 1..=50 {
        a.record(v);
    }
    for v in 51..=100 {
        b.record(v * 1000);
    }
    a.merge(&b);
    assert_eq!(a.count(), 100);
    assert_eq!(a.quantile(0.5), 50);
    assert_eq!(a.max(), 100_000);
    let q = a.quantile(0.99) as f64;
    assert!((q - 99_000.0).abs() / 99_000.0 < 0.02, "{q}");
    a.merge(&Histogram::default());
    assert_eq!(a.count(), 100);
}

#[test]
fn abuse_bound_follows_the_queue_limits() {
    use crate::scenarios::abuse_bound_kb;
    // 1000 queued + 20 in flight, 64 B payloads on a 30-byte topic; 7 connections.
    let kb = abuse_bound_kb(1000, 0, 20, 64, 30, 7).unwrap();
    let want = (1020 * (64 + 30 + 512) + 65_536 + 7 * 262_144 + 2_097_152) / 1024 + 1;
    assert_eq!(kb, want);
    assert!((4000..5000).contains(&kb), "{kb}");
    // A byte limit tighter than the count limit lowers the bound; no limit, no bound.
    let by_bytes = abuse_bound_kb(1000, 6400, 20, 64, 30, 7).unwrap();
    assert!(by_bytes < kb);
    assert_eq!(by_bytes, abuse_bound_kb(101, 0, 20, 64, 30, 7).unwrap());
    assert_eq!(abuse_bound_kb(0, 6400, 20, 64, 30, 7), Some(by_bytes));
    assert_eq!(abuse_bound_kb(0, 0, 20, 64, 30, 7), None);
    // More queue, more bound.
    assert!(abuse_bound_kb(10_000, 0, 20, 64, 30, 7).unwrap() > kb);
}

#[test]
fn parses_what_midge_encodes() {
    // A PUBLISH with properties, as an MQTT 5 broker may forward it.
    let props = Properties {
        message_expiry_interval: Some(60),
        content_type: Some("x"),
        user: vec![("k", "v")],
        ..Properties::default()
    };
    let mut body = Vec::new();
    props.encode_body(&mut body);
    let mut payload = vec![0u8; 20];
    payload[0] = 3;
    payload[4] = 9;
    let mut buf = Vec::new();
    m::encode_publish(
        &mut buf,
        false,
        QoS::ExactlyOnce,
        false,
        "a/b",
        Some(77),
        Some(&body),
        &payload,
    );
    let (b1, start, _) = proto::frame(&buf).unwrap().unwrap();
    let In::Publish {
        qos,
        pid,
        topic,
        payload: got,
        ..
    } = proto::parse(b1, &buf[start..], true).unwrap()
    else {
        panic!()
    };
    assert_eq!((qos, pid, topic, got), (2, 77, &b"a/b"[..], &payload[..]));
    let st = proto::read_stamp(got).unwrap();
    assert_eq!((st.stream, st.seq), (3, 9));

    // CONNACK v5 with a Receive Maximum among other properties.
    let props = Properties {
        receive_maximum: Some(5),
        topic_alias_maximum: Some(10),
        assigned_client_identifier: Some("auto-1"),
        ..Properties::default()
    };
    let mut buf = Vec::new();
    m::encode_connack_v5(&mut buf, false, 0, &props);
    let (b1, start, _) = proto::frame(&buf).unwrap().unwrap();
    assert_eq!(
        proto::parse(b1, &buf[start..], true).unwrap(),
        In::Connack {
            code: 0,
            receive_max: Some(5)
        }
    );
    // SUBACK, acks in both forms.
    let mut buf = Vec::new();
    m::encode_suback(&mut buf, 1, Some(&Properties::default()), &[1]);
    let (b1, start, _) = proto::frame(&buf).unwrap().unwrap();
    assert_eq!(
        proto::parse(b1, &buf[start..], true).unwrap(),
        In::Suback {
            pid: 1,
            codes: &[1]
        }
    );
    let mut buf = Vec::new();
    m::encode_ack_v5(&mut buf, m::PUBREC, 9, 0x10, &Properties::default());
    let (b1, start, _) = proto::frame(&buf).unwrap().unwrap();
    assert_eq!(
        proto::parse(b1, &buf[start..], true).unwrap(),
        In::Ack {
            kind: proto::PUBREC,
            pid: 9,
            reason: 0x10
        }
    );
}

#[test]
fn control_packets_are_valid_mqtt() {
    for (v5, v) in [(false, Version::V311), (true, Version::V5)] {
        let mut buf = Vec::new();
        proto::connect(&mut buf, v5, "mbabc123p0", 60);
        let Packet::Connect(c) = decode_with_midge(&buf, v) else {
            panic!()
        };
        assert_eq!(
            (c.version, c.client_id, c.keep_alive),
            (v, "mbabc123p0", 60)
        );
        assert!(c.clean_session);
        let mut buf = Vec::new();
        proto::subscribe(&mut buf, v5, 1, &["midge_bench/x/+"], 2);
        let Packet::Subscribe { pid, filters, .. } = decode_with_midge(&buf, v) else {
            panic!()
        };
        assert_eq!(
            (pid, filters[0].0, filters[0].1.qos),
            (1, "midge_bench/x/+", QoS::ExactlyOnce)
        );
        // Many filters in one SUBSCRIBE.
        let fs: Vec<String> = (0..100).map(|i| format!("s/{i:02}/x")).collect();
        let refs: Vec<&str> = fs.iter().map(String::as_str).collect();
        let mut buf = Vec::new();
        proto::subscribe(&mut buf, v5, 65_535, &refs, 1);
        let Packet::Subscribe { pid, filters, .. } = decode_with_midge(&buf, v) else {
            panic!()
        };
        assert_eq!(pid, 65_535);
        let got: Vec<&str> = filters.iter().map(|f| f.0).collect();
        assert_eq!(got, refs);
        assert!(filters.iter().all(|f| f.1.qos == QoS::AtLeastOnce));
        for kind in [proto::PUBACK, proto::PUBREC, proto::PUBREL, proto::PUBCOMP] {
            let mut buf = Vec::new();
            proto::ack(&mut buf, kind, 300);
            let p = decode_with_midge(&buf, v);
            assert!(
                matches!(p, Packet::Puback(ref a) | Packet::Pubrec(ref a)
                    | Packet::Pubrel(ref a) | Packet::Pubcomp(ref a) if a.pid == 300),
                "{p:?}"
            );
        }
        let mut buf = Vec::new();
        proto::pingreq(&mut buf);
        proto::disconnect(&mut buf);
        assert_eq!(buf, [0xc0, 0, 0xe0, 0]);
    }
}

#[test]
fn varints_round_trip_and_long_ones_are_refused() {
    for n in [
        0,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        268_435_455,
    ] {
        let mut b = Vec::new();
        proto::put_varint(&mut b, n);
        assert_eq!(proto::get_varint(&b).unwrap(), Some((n, b.len())));
        assert_eq!(proto::get_varint(&b[..b.len() - 1]).unwrap(), None);
    }
    assert!(proto::get_varint(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
}

#[test]
fn proc_parsing() {
    let stat = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100";
    assert_eq!(sys::parse_stat(stat), Some(300));
    let status = "Name:\tmidge\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
    assert_eq!(sys::status_kb(status, "VmRSS"), Some(1024));
    assert_eq!(sys::status_kb(status, "VmHWM"), Some(2048));
    assert_eq!(sys::status_kb(status, "VmSwap"), None);
    // This process can read itself.
    let s = sys::sample("self", sys::clk_tck()).unwrap();
    assert!(s.rss_kb > 0);
}

#[test]
fn only_loopback_unless_allowed() {
    assert!(resolve("127.0.0.1", 1883, false).is_ok());
    assert!(resolve("::1", 1883, false).is_ok());
    assert!(resolve("192.0.2.1", 1883, false).is_err());
    assert!(resolve("192.0.2.1", 1883, true).is_ok());
}

#[test]
fn options_have_sane_defaults_and_limits() {
    let a = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
    let o = parse_opts(&a("-s latency")).unwrap().unwrap();
    assert_eq!((o.qos, o.rate, o.pairs), (1, 1000.0, 1));
    let o = parse_opts(&a("-s fanin -V 5 -q 2 -d 2 -n 1000"))
        .unwrap()
        .unwrap();
    assert!(o.v5);
    assert_eq!((o.qos, o.publishers, o.count), (2, 4, 1000));
    assert!(parse_opts(&a("-q 3")).is_err());
    assert!(parse_opts(&a("--size 10")).is_err());
    assert!(parse_opts(&a("-s nope")).is_err());
    assert!(parse_opts(&a("-d 0")).is_err());
    assert!(parse_opts(&a("--topic a/#")).is_err());
    assert!(parse_opts(&a("-h")).unwrap().is_none());
    // The scenarios that measure how a broker holds up.
    let o = parse_opts(&a("-s abuse")).unwrap().unwrap();
    assert_eq!(o.scenario, Scenario::Abuse);
    assert_eq!(
        (o.qos, o.rate, o.publishers, o.duration),
        (1, 500.0, 2, 30.0)
    );
    assert_eq!(
        (o.qos0_count, o.qos1_count, o.max_queued),
        (1_000_000, 100_000, 1000)
    );
    assert!(
        parse_opts(&a("-s abuse -q 0")).is_err(),
        "the probe needs QoS 1"
    );
    assert!(parse_opts(&a("-s abuse --qos0-count 0 --qos1-count 0")).is_err());
    assert!(
        parse_opts(&a("-s abuse --max-queued 0")).is_err(),
        "no bound"
    );
    assert!(parse_opts(&a("-s abuse --max-queued 0 --max-queued-bytes 100000")).is_ok());
    let o = parse_opts(&a("-s retained")).unwrap().unwrap();
    assert_eq!((o.qos, o.count, o.backlog), (1, 100_000, 0));
    assert!(parse_opts(&a("-s retained -n 0")).is_err());
    let o = parse_opts(&a("-s subs")).unwrap().unwrap();
    assert_eq!(
        (o.clients, o.subs, o.subs_small, o.qos, o.backlog),
        (100, 100_000, 1000, 0, 10_000)
    );
    assert!(
        parse_opts(&a("-s subs --subs 1050")).is_err(),
        "not a multiple of 100"
    );
    assert!(parse_opts(&a("-s subs --subs-small 2000 --subs 1000")).is_err());
    assert!(parse_opts(&a("-s subs -c 10 --subs 100 --subs-small 10")).is_ok());
}

/// A fake broker for one subscriber and one publisher that drops sequence 3, sends 5 twice
/// and swaps 7 and 8: the engine must count exactly that.
fn misbehaving_broker() -> (SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let packets = |s: &mut std::net::TcpStream, buf: &mut Vec<u8>| -> Vec<Vec<u8>> {
            let mut tmp = [0u8; 4096];
            let n = s.read(&mut tmp).unwrap();
            buf.extend_from_slice(&tmp[..n]);
            let mut out = Vec::new();
            while let Ok(Some((_, _, total))) = proto::frame(buf) {
                if total > buf.len() {
                    break;
                }
                out.push(buf.drain(..total).collect());
            }
            out
        };
        let (mut sub, _) = l.accept().unwrap();
        let mut sbuf = Vec::new();
        let mut got = Vec::new();
        while got.len() < 2 {
            for p in packets(&mut sub, &mut sbuf) {
                match p[0] >> 4 {
                    1 => sub.write_all(&[0x20, 2, 0, 0]).unwrap(),
                    8 => sub.write_all(&[0x90, 3, p[2], p[3], 0]).unwrap(),
                    _ => {}
                }
                got.push(p);
            }
        }
        let (mut publ, _) = l.accept().unwrap();
        let mut pbuf = Vec::new();
        let mut held = None;
        loop {
            let ps = packets(&mut publ, &mut pbuf);
            if ps.is_empty() && pbuf.is_empty() {
                return; // closed
            }
            for p in ps {
                match p[0] >> 4 {
                    1 => publ.write_all(&[0x20, 2, 0, 0]).unwrap(),
                    3 => {
                        let (b1, body, _) = proto::frame(&p).unwrap().unwrap();
                        let In::Publish { payload, .. } =
                            proto::parse(b1, &p[body..], false).unwrap()
                        else {
                            panic!()
                        };
                        match proto::read_stamp(payload).unwrap().seq {
                            3 => {}
                            5 => {
                                sub.write_all(&p).unwrap();
                                sub.write_all(&p).unwrap();
                            }
                            7 => held = Some(p),
                            8 => {
                                sub.write_all(&p).unwrap();
                                sub.write_all(&held.take().unwrap()).unwrap();
                            }
                            _ => sub.write_all(&p).unwrap(),
                        }
                    }
                    14 => return,
                    _ => {}
                }
            }
        }
    });
    (addr, h)
}

#[test]
fn engine_counts_what_a_broker_loses_duplicates_and_reorders() {
    assert_eq!(engine_counts_with_payloads_of(32), 0);
}

/// Long payloads are handled from their first bytes and the rest discarded unread: the counts
/// are the same, and the bytes after each payload's first kilobyte or so were never copied out.
#[test]
fn long_payloads_are_counted_alike_and_mostly_discarded_unread() {
    let size = 300_000;
    let skipped = engine_counts_with_payloads_of(size);
    // 20 received (3 dropped, 5 twice); at most what came after each one's first read.
    assert!(skipped > 0);
    assert!(skipped < 20 * size as u64, "{skipped}");
}

/// Runs the misbehaving broker's exchange with payloads of `size` bytes, checks the counts,
/// and returns how many payload bytes the engine discarded unread.
fn engine_counts_with_payloads_of(size: usize) -> u64 {
    let (addr, broker) = misbehaving_broker();
    let p = Params {
        addr,
        v5: false,
        qos: 0,
        nodelay: true,
        keep_alive: 60,
        max_packet: 1 << 20,
        window: 20,
        backlog: 0,
        ws: false,
        sub_addr: None,
        tls: None,
    };
    let mut e = Engine::new(p, Route::Pairs, 1, 1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    e.connect_all(
        vec![(Role::Sub(0), "s".into(), vec!["t/0".into()])],
        1,
        deadline,
    )
    .unwrap();
    e.connect_all(vec![(Role::Pub(0), "p".into(), Vec::new())], 1, deadline)
        .unwrap();
    assert_eq!(e.ready(), 2);
    e.add_publisher("t/0", 0, size, 20, 0.0);
    e.run_traffic(
        Duration::from_secs(5),
        Duration::from_secs(5),
        Duration::from_millis(300),
        &mut || {},
    )
    .unwrap();
    e.disconnect_all();
    broker.join().unwrap();
    let (t, _) = integrity(&e, Route::Pairs);
    assert_eq!(e.published, [20]);
    assert_eq!((t.lost, t.dup, t.ooo), (1, 1, 1));
    assert_eq!(e.delivered, 19);
    assert_eq!(e.hist.count(), 19);
    assert_eq!(e.c.received, 20);
    assert_eq!(e.c.corrupt, 0);
    e.c.skipped
}

/// A fake broker that answers CONNECT and every SUBSCRIBE (one code per filter, decoded with
/// midge's own decoder) for one client, and reports how many filters it was given.
fn subscribing_broker() -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = Vec::new();
        let mut tmp = [0u8; 65_536];
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut tmp).unwrap_or(0);
            if n == 0 {
                return got;
            }
            buf.extend_from_slice(&tmp[..n]);
            while let Ok(Some((_, _, total))) = proto::frame(&buf) {
                if total > buf.len() {
                    break;
                }
                let p: Vec<u8> = buf.drain(..total).collect();
                match decode_with_midge(&p, Version::V311) {
                    Packet::Connect(_) => s.write_all(&[0x20, 2, 0, 0]).unwrap(),
                    Packet::Subscribe { pid, filters, .. } => {
                        let mut out = vec![0x90];
                        proto::put_varint(&mut out, 2 + filters.len());
                        out.extend_from_slice(&pid.to_be_bytes());
                        out.extend(filters.iter().map(|_| 0u8));
                        s.write_all(&out).unwrap();
                        got.extend(filters.iter().map(|f| f.0.to_string()));
                    }
                    Packet::Disconnect { .. } => return got,
                    _ => {}
                }
            }
        }
    });
    (addr, h)
}

#[test]
fn engine_subscribes_to_many_filters_in_batches_and_later_more() {
    let (addr, broker) = subscribing_broker();
    let mut e = Engine::new(params(addr, 0, 0), Route::All, 1, 1).unwrap();
    let first: Vec<String> = (0..250).map(|i| format!("a/{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    e.connect_all(vec![(Role::Sub(0), "s".into(), first.clone())], 1, deadline)
        .unwrap();
    assert_eq!(e.ready(), 1, "ready only once all 3 SUBACKs came");
    let more: Vec<String> = (0..150).map(|i| format!("b/{i}")).collect();
    let missing = e
        .subscribe_more(vec![(Role::Sub(0), more.clone())], deadline)
        .unwrap();
    assert_eq!(missing, 0);
    assert_eq!((e.c.protocol_errors, e.c.suback_failed), (0, 0));
    e.disconnect_all();
    let got = broker.join().unwrap();
    assert_eq!(got, [first, more].concat());
}

/// `--floor`: whole passes over every connection, each a batch per connection, all of it read.
#[test]
fn floor_writes_whole_batches_to_every_connection() {
    let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let line = crate::floor::run(&a("1000 3 2 1")).unwrap();
    let field = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{k} in {line}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        (field("size"), field("subscribers"), field("batch")),
        (1000.0, 3.0, 2.0)
    );
    let d = field("deliveries");
    assert!(d > 0.0 && d % 6.0 == 0.0, "{line}");
    assert!(field("wall_s") >= 1.0, "{line}");
    assert!(crate::floor::run(&a("0")).is_err());
    assert!(crate::floor::run(&a("x")).is_err());
}
