//! The snapshot format: round trips, every damaged or truncated file, and the CRC.

use super::*;
use std::time::{Duration, Instant};

fn msg(topic: &str, payload: &[u8], qos: u8) -> StoredMsg {
    StoredMsg {
        topic: topic.into(),
        payload: payload.to_vec(),
        qos,
        retain: false,
        props: Vec::new(),
        expiry_left: None,
        origin: None,
    }
}

fn session(client_id: &str) -> StoredSession {
    StoredSession {
        client_id: client_id.into(),
        username: None,
        listener: 0,
        expiry_interval: 300,
        expiry_left: None,
        subs: Vec::new(),
        out: Vec::new(),
        incoming_qos2: Vec::new(),
        pending_will: None,
        last_pid: 0,
    }
}

/// Every field of the data model used, every variant and option present and absent.
fn rich() -> Snapshot {
    let all_bytes: Vec<u8> = (0..=255).collect();
    // Payload Format Indicator 1, Content Type "text/plain", User Property ("unit", "C").
    let props = [
        &[0x01, 0x01, 0x03, 0x00, 0x0a][..],
        b"text/plain",
        &[0x26, 0x00, 0x04],
        b"unit",
        &[0x00, 0x01],
        b"C",
    ]
    .concat();
    let retained = vec![
        StoredMsg {
            topic: "home/kitchen/temp".into(),
            payload: b"21.5".to_vec(),
            qos: 1,
            retain: true,
            props: props.clone(),
            expiry_left: Some(3600),
            origin: Some(("sensor-1".into(), Some("bob".into()), 0)),
        },
        StoredMsg {
            topic: "é/ünïcode/✓".into(),
            payload: all_bytes.clone(),
            qos: 0,
            retain: true,
            props: Vec::new(),
            expiry_left: None,
            origin: Some(("anon".into(), None, 2)),
        },
        StoredMsg {
            topic: "a".into(),
            payload: Vec::new(),
            qos: 2,
            retain: false,
            // Message Expiry Interval 60.
            props: vec![0x02, 0, 0, 0, 60],
            expiry_left: Some(0),
            origin: None,
        },
    ];
    let mut comp = msg("a/y/b", b"three", 2);
    comp.props = props;
    comp.expiry_left = Some(u32::MAX);
    comp.origin = Some(("pub".into(), Some("carol".into()), u32::MAX));
    let client1 = StoredSession {
        client_id: "client-1".into(),
        username: Some("alice".into()),
        listener: 1,
        expiry_interval: u32::MAX,
        expiry_left: None,
        subs: vec![
            StoredSub {
                filter: "a/+/b".into(),
                // QoS 1, No Local, Retain As Published, Retain Handling 2.
                options: 0x2D,
                id: 7,
            },
            StoredSub {
                filter: "#".into(),
                options: 0,
                id: 0,
            },
            StoredSub {
                filter: "$share/g/x/ü".into(),
                options: 2,
                id: 268_435_455,
            },
        ],
        out: vec![
            StoredOut {
                state: OutState::AwaitAck,
                pid: 1,
                qos: 1,
                retain: false,
                sub_ids: vec![7],
                msg: msg("a/x/b", b"one", 1),
            },
            StoredOut {
                state: OutState::AwaitAck,
                pid: 2,
                qos: 2,
                retain: true,
                sub_ids: Vec::new(),
                msg: msg("a/x/b", b"two", 2),
            },
            StoredOut {
                state: OutState::AwaitComp,
                pid: 65535,
                qos: 2,
                retain: false,
                sub_ids: vec![7, 268_435_455],
                msg: comp,
            },
            StoredOut {
                state: OutState::Queued,
                pid: 0,
                qos: 1,
                retain: false,
                sub_ids: Vec::new(),
                msg: msg("x", b"four", 2),
            },
            StoredOut {
                state: OutState::Queued,
                pid: 0,
                qos: 0,
                retain: true,
                sub_ids: vec![1, 2, 3],
                msg: msg("x", &all_bytes, 0),
            },
        ],
        incoming_qos2: vec![5, 65535, 1],
        pending_will: Some((
            30,
            StoredMsg {
                topic: "clients/client-1/status".into(),
                payload: b"offline".to_vec(),
                qos: 1,
                retain: true,
                // Will Delay Interval 30.
                props: vec![0x18, 0, 0, 0, 30],
                expiry_left: Some(86_400),
                origin: Some(("client-1".into(), Some("alice".into()), 1)),
            },
        )),
        last_pid: 3,
    };
    let mut c2 = session("c2");
    c2.expiry_left = Some(120);
    Snapshot {
        retained,
        sessions: vec![client1, c2],
    }
}

/// Small enough to flip every byte of: three retained messages, two sessions.
fn small() -> Snapshot {
    let mut r2 = msg("b/2", b"xy", 1);
    r2.retain = true;
    r2.expiry_left = Some(9);
    let mut s1 = session("s1");
    s1.username = Some("u".into());
    s1.subs.push(StoredSub {
        filter: "b/#".into(),
        options: 1,
        id: 3,
    });
    s1.out.push(StoredOut {
        state: OutState::AwaitComp,
        pid: 9,
        qos: 2,
        retain: false,
        sub_ids: vec![3],
        msg: msg("b/1", b"z", 2),
    });
    s1.incoming_qos2.push(4);
    s1.pending_will = Some((5, msg("w", b"gone", 0)));
    s1.last_pid = 9;
    Snapshot {
        retained: vec![msg("b/1", b"abc", 0), r2, msg("b/3", b"", 2)],
        sessions: vec![s1, session("s2")],
    }
}

/// (start, end, type) of every record of a clean encoding.
fn spans(b: &[u8]) -> Vec<(usize, usize, u8)> {
    let v = record_spans(b);
    assert_eq!(v.last().map(|x| (x.1, x.2)), Some((b.len(), TYPE_END)));
    v
}

/// The snapshot minus the records whose spans `lost` says.
fn without(
    s: &Snapshot,
    spans: &[(usize, usize, u8)],
    lost: impl Fn(usize, usize) -> bool,
) -> Snapshot {
    let (mut r, mut q) = (0, 0);
    let mut out = Snapshot::default();
    for &(start, end, kind) in spans {
        match kind {
            TYPE_RETAINED => {
                if !lost(start, end) {
                    out.retained.push(s.retained[r].clone());
                }
                r += 1;
            }
            TYPE_SESSION => {
                if !lost(start, end) {
                    out.sessions.push(s.sessions[q].clone());
                }
                q += 1;
            }
            _ => {}
        }
    }
    out
}

fn lost_lines(s: &Snapshot, got: &Snapshot) -> Vec<String> {
    let mut v = Vec::new();
    let (r, q) = (s.retained.len(), s.sessions.len());
    if got.retained.len() < r {
        v.push(format!(
            "lost {} of {r} retained messages",
            r - got.retained.len()
        ));
    }
    if got.sessions.len() < q {
        v.push(format!("lost {} of {q} sessions", q - got.sessions.len()));
    }
    v
}

fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_record(&mut v, kind, |b| {
        b.extend_from_slice(body);
        Ok(())
    })
    .unwrap();
    v
}

fn msg_body(m: &StoredMsg) -> Vec<u8> {
    let mut v = Vec::new();
    put_msg(&mut v, m).unwrap();
    v
}

fn session_body(s: &StoredSession) -> Vec<u8> {
    let mut v = Vec::new();
    put_session(&mut v, s).unwrap();
    v
}

fn end(r: u64, s: u64) -> Vec<u8> {
    record(TYPE_END, &[r.to_le_bytes(), s.to_le_bytes()].concat())
}

fn file(r: u64, s: u64, records: &[&[u8]]) -> Vec<u8> {
    let mut v = header(r, s).to_vec();
    for x in records {
        v.extend_from_slice(x);
    }
    v
}

fn clean(s: Snapshot) -> Decoded {
    Decoded {
        snapshot: s,
        problems: Vec::new(),
        damaged: false,
    }
}

fn damaged(s: Snapshot, problems: &[&str]) -> Decoded {
    Decoded {
        snapshot: s,
        problems: problems.iter().map(|p| p.to_string()).collect(),
        damaged: true,
    }
}

/// xorshift64*: deterministic, good enough to pick bytes and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// --- CRC ---------------------------------------------------------------------------------

/// The CRC-32 bit by bit, from its definition, to check the fast one against.
fn crc32_simple(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"a"), 0xE8B7_BE43);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414F_A339
    );
    assert_eq!(crc32_update(crc32(b"1234"), b"56789"), 0xCBF4_3926);
    // Slicing-by-8 agrees with the byte-at-a-time table at every length and alignment.
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(crc32_simple(b"123456789"), 0xCBF4_3926);
    for start in 0..9 {
        for end in start..data.len() {
            assert_eq!(crc32(&data[start..end]), crc32_simple(&data[start..end]));
        }
    }
}

// --- Layout ------------------------------------------------------------------------------

#[test]
fn empty_snapshot_is_a_header_and_an_end_record() {
    let b = encode(&Snapshot::default());
    let mut want = Vec::new();
    want.extend_from_slice(b"MIDGEDB\0");
    want.extend_from_slice(&[1, 0, 0, 0]); // version
    want.extend_from_slice(&[0, 0, 0, 0]); // flags
    want.extend_from_slice(&[0; 16]); // counts
    want.extend_from_slice(&0xED34_D957u32.to_le_bytes()); // zlib.crc32(want[..32])
    want.extend_from_slice(&[0xA5, b'M', b'R', 1, 3, 16, 0, 0, 0]);
    want.extend_from_slice(&[0; 16]);
    want.extend_from_slice(&0xDADC_EC4Du32.to_le_bytes()); // zlib.crc32(type, len, body)
    assert_eq!(b, want);
    assert_eq!(b.len(), HEADER_LEN + END_RECORD_LEN);
    assert_eq!(decode(&b), Ok(clean(Snapshot::default())));
}

#[test]
fn a_retained_message_is_laid_out_as_documented() {
    let m = StoredMsg {
        topic: "t/é".into(),
        payload: vec![0xFF, 0x00],
        qos: 2,
        retain: true,
        props: vec![0x01, 0x01],
        expiry_left: Some(0x0102_0304),
        origin: Some(("c".into(), Some("u".into()), 5)),
    };
    let b = encode(&Snapshot {
        retained: vec![m.clone()],
        sessions: Vec::new(),
    });
    let body: Vec<u8> = [
        &[0x0F, 2][..], // flags: retain, expiry, origin, origin user; QoS
        &[4, 0, 0, 0, b't', b'/', 0xC3, 0xA9], // topic
        &[2, 0, 0, 0, 0xFF, 0x00], // payload
        &[2, 0, 0, 0, 0x01, 0x01], // properties
        &[4, 3, 2, 1],  // expiry left
        &[1, 0, 0, 0, b'c'], // origin client id
        &[1, 0, 0, 0, b'u'], // origin user name
        &[5, 0, 0, 0],  // origin listener
    ]
    .concat();
    let mut frame = vec![0xA5, b'M', b'R', 1, TYPE_RETAINED];
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    let crc = crc32(&frame[4..]);
    frame.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(&b[..HEADER_LEN], &header(1, 0)[..]);
    assert_eq!(&b[16..24], &1u64.to_le_bytes());
    assert_eq!(&b[HEADER_LEN..HEADER_LEN + frame.len()], &frame[..]);
    assert_eq!(&b[HEADER_LEN + frame.len()..], &end(1, 0)[..]);
}

// --- Round trips -------------------------------------------------------------------------

#[test]
fn rich_snapshot_round_trips() {
    let s = rich();
    let b = encode(&s);
    assert_eq!(decode(&b), Ok(clean(s.clone())));
    let mut streamed = Vec::new();
    encode_into(&s, &mut streamed).unwrap();
    assert_eq!(streamed, b);
    // The file announces its counts in the header and in the end record.
    assert_eq!(&b[16..24], &3u64.to_le_bytes());
    assert_eq!(&b[24..32], &2u64.to_le_bytes());
    let sp = spans(&b);
    let kinds: Vec<u8> = sp.iter().map(|x| x.2).collect();
    assert_eq!(kinds, [1, 1, 1, 2, 2, 3]);
    assert_eq!(sp.last().unwrap().1 - sp.last().unwrap().0, END_RECORD_LEN);
}

#[test]
fn encode_into_reports_the_writers_error() {
    struct Fails(usize);
    impl Write for Fails {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let e = encode_into(&rich(), &mut Fails(100)).unwrap_err();
    assert_eq!(e.to_string(), "disk full");
}

// --- Truncation and single-byte damage ---------------------------------------------------

#[test]
fn every_truncation_recovers_exactly_the_records_before_the_cut() {
    for s in [small(), rich()] {
        let b = encode(&s);
        let sp = spans(&b);
        let total = s.retained.len() + s.sessions.len();
        assert_eq!(decode(&b[..0]), Err(FormatError::NotASnapshot));
        for cut in 1..HEADER_LEN {
            let p = format!("file truncated inside the header ({cut} of 36 bytes)");
            assert_eq!(decode(&b[..cut]), Ok(damaged(Snapshot::default(), &[&p])));
        }
        for cut in HEADER_LEN..b.len() {
            let whole: Vec<_> = sp.iter().filter(|x| x.1 <= cut).copied().collect();
            assert_eq!(record_spans(&b[..cut]), whole);
            let want = without(&s, &sp, |_, end| end > cut);
            let mut problems = Vec::new();
            if let Some(&(start, end, _)) = sp.iter().find(|x| x.0 < cut && cut < x.1) {
                let have = cut - start;
                problems.push(if have >= FRAME_HEAD {
                    format!(
                        "file truncated inside the record at offset {start} ({have} of its {} bytes present)",
                        end - start
                    )
                } else {
                    format!(
                        "file truncated inside the record at offset {start} ({have} bytes of it present)"
                    )
                });
            }
            let n = want.retained.len() + want.sessions.len();
            problems.push(format!("file truncated after {n} of {total} records"));
            problems.extend(lost_lines(&s, &want));
            let p: Vec<&str> = problems.iter().map(String::as_str).collect();
            assert_eq!(decode(&b[..cut]), Ok(damaged(want, &p)), "cut at {cut}");
        }
    }
}

#[test]
fn a_damaged_byte_in_a_record_loses_only_that_record() {
    let s = small();
    let b = encode(&s);
    let sp = spans(&b);
    let end_start = sp.last().unwrap().0;
    for pos in HEADER_LEN..b.len() {
        for mask in [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF, 0x5A] {
            let mut m = b.clone();
            m[pos] ^= mask;
            let d = decode(&m).unwrap();
            let &(start, end, _) = sp.iter().find(|x| x.0 <= pos && pos < x.1).unwrap();
            let ctx = format!("byte {pos} ^ {mask:#04x}");
            assert!(d.damaged, "{ctx}");
            assert_eq!(d.snapshot, without(&s, &sp, |st, _| st == start), "{ctx}");
            if start == end_start {
                // The end record itself: all data is there, the end is not.
                assert_eq!(d.problems.len(), 2, "{ctx}: {:?}", d.problems);
                assert!(
                    d.problems[1].contains(" 5 of 5 records"),
                    "{ctx}: {:?}",
                    d.problems
                );
            } else {
                assert!(
                    d.problems[0].starts_with(&format!("record at offset {start}: "))
                        && d.problems[0].ends_with(&format!(
                            "; skipped {} bytes up to the next intact record at offset {end}",
                            end - start
                        )),
                    "{ctx}: {:?}",
                    d.problems
                );
                assert_eq!(d.problems[1..], lost_lines(&s, &d.snapshot), "{ctx}");
            }
        }
    }
}

#[test]
fn a_damaged_header_loses_no_records() {
    let s = small();
    let b = encode(&s);
    for pos in 0..HEADER_LEN {
        for mask in [0x01, 0x80, 0xFF] {
            let mut m = b.clone();
            m[pos] ^= mask;
            let v = u32::from_le_bytes([m[8], m[9], m[10], m[11]]);
            let p = match pos {
                0..=7 => "header damaged (no midge magic); record counts unknown".to_string(),
                8..=11 => format!(
                    "header damaged: its version field reads {v}, its checksum says version 1"
                ),
                _ => "header damaged (checksum mismatch); record counts unknown".to_string(),
            };
            assert_eq!(
                decode(&m),
                Ok(damaged(s.clone(), &[&p])),
                "byte {pos} ^ {mask:#04x}"
            );
        }
    }
}

#[test]
fn huge_announced_counts_are_reported_not_added_up() {
    // An intact header may announce any count; the sum of two u64 counts must not overflow.
    let m = msg("a", b"x", 0);
    let r = record(TYPE_RETAINED, &msg_body(&m));
    let mut want = Snapshot::default();
    want.retained.push(m.clone());
    let max = u64::MAX;
    let sum = u128::from(max) * 2;
    assert_eq!(
        decode(&file(max, max, &[&r])),
        Ok(damaged(
            want.clone(),
            &[
                &format!("file truncated after 1 of {sum} records"),
                &format!("lost {} of {max} retained messages", max - 1),
                &format!("lost {max} of {max} sessions"),
            ]
        ))
    );
    let mut cut = file(max, max, &[&r]);
    cut.truncate(cut.len() - 1);
    assert_eq!(
        decode(&cut),
        Ok(damaged(
            Snapshot::default(),
            &[
                &format!(
                    "file truncated inside the record at offset {HEADER_LEN} ({} of its {} bytes present)",
                    r.len() - 1,
                    r.len()
                ),
                &format!("file truncated after 0 of {sum} records"),
                &format!("lost {max} of {max} retained messages"),
                &format!("lost {max} of {max} sessions"),
            ]
        ))
    );
}

#[test]
fn a_header_damaged_twice_is_still_read_when_a_version_1_record_follows() {
    let s = small();
    let mut b = encode(&s);
    b[8] = 7; // version 7
    b[20] ^= 1; // and a count byte
    assert_eq!(
        decode(&b),
        Ok(damaged(
            s,
            &["header damaged (version 7); record counts unknown"]
        ))
    );
}

#[test]
fn a_zeroed_tail_keeps_the_records_before_it() {
    // What some file systems leave after a power cut: the right length, the last blocks zero.
    let s = rich();
    let b = encode(&s);
    let sp = spans(&b);
    for zero_from in [sp[1].0 + 3, sp[3].0, sp[4].1 - 1] {
        let mut m = b.clone();
        m[zero_from..].fill(0);
        let d = decode(&m).unwrap();
        let want = without(&s, &sp, |_, end| end > zero_from);
        assert_eq!(d.snapshot, want);
        assert!(d.damaged);
        let n = want.retained.len() + want.sessions.len();
        assert_eq!(
            d.problems[1],
            format!("no intact end record; {n} of 5 records recovered")
        );
    }
}

// --- Not a snapshot, newer versions ------------------------------------------------------

#[test]
fn empty_zeroed_and_garbage_files_are_not_snapshots() {
    assert_eq!(decode(b""), Err(FormatError::NotASnapshot));
    for n in [1, 7, 8, 35, 36, 37, 100, 4096, 65_536] {
        assert_eq!(
            decode(&vec![0; n]),
            Err(FormatError::NotASnapshot),
            "{n} zeros"
        );
        assert_eq!(decode(&vec![0xFF; n]), Err(FormatError::NotASnapshot));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for n in 1..2000 {
        let g = rng.bytes(n);
        assert_eq!(
            decode(&g),
            Err(FormatError::NotASnapshot),
            "{n} random bytes"
        );
    }
    assert_eq!(decode(b"mosquitto db\n"), Err(FormatError::NotASnapshot));
    assert_eq!(
        FormatError::NotASnapshot.to_string(),
        "not a midge snapshot (no midge header and no intact record)"
    );
}

#[test]
fn midge_magic_followed_by_garbage_is_a_damaged_empty_snapshot() {
    let mut rng = Rng(7);
    let mut b = MAGIC.to_vec();
    b.extend(rng.bytes(500));
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(
        decode(&b),
        Ok(damaged(
            Snapshot::default(),
            &[
                "header damaged (checksum mismatch); record counts unknown",
                "record at offset 36: no record marker; nothing intact after it (472 bytes lost)",
                "no intact end record; 0 records recovered, how many were lost is unknown",
            ]
        ))
    );
    // The header alone: cut before the first record.
    assert_eq!(
        decode(&header(2, 1)),
        Ok(damaged(
            Snapshot::default(),
            &[
                "file truncated after 0 of 3 records",
                "lost 2 of 2 retained messages",
                "lost 1 of 1 sessions",
            ]
        ))
    );
}

#[test]
fn a_newer_version_is_refused() {
    let body = encode(&small());
    for v in [2, 3, 0x0100, u32::MAX] {
        let mut b = header_with_version(v, 0, 3, 2).to_vec();
        b.extend_from_slice(&body[HEADER_LEN..]);
        // A newer writer marks its records with its own version.
        for x in spans(&body) {
            b[x.0 + 3] = v as u8;
        }
        assert_eq!(decode(&b), Err(FormatError::NewerVersion(v)));
        // An intact header is believed, whatever follows it.
        let mut b1 = b.clone();
        b1[HEADER_LEN..].copy_from_slice(&body[HEADER_LEN..]);
        assert_eq!(decode(&b1), Err(FormatError::NewerVersion(v)));
        // Whatever a newer header looks like after its version field.
        assert_eq!(decode(&b[..12]), Err(FormatError::NewerVersion(v)));
        assert_eq!(decode(&b[..40]), Err(FormatError::NewerVersion(v)));
    }
    assert_eq!(
        FormatError::NewerVersion(2).to_string(),
        "snapshot format version 2 is newer than this midge reads (version 1)"
    );
}

#[test]
fn unknown_flags_are_ignored() {
    let s = small();
    let mut b = encode(&s);
    b[..HEADER_LEN].copy_from_slice(&header_with_version(1, 0xFFFF_FFFF, 3, 2));
    assert_eq!(decode(&b), Ok(clean(s)));
}

// --- Invalid fields in intact records ----------------------------------------------------

/// A file of: a good retained message, `bad` (counted as a retained message), a good
/// session, the end record; checks `bad` alone is lost, with problem `why`.
fn check_bad_retained(bad_body: &[u8], why: &str) {
    let good = msg("ok", b"1", 1);
    let s = session("s");
    let (a, bad, c) = (
        record(TYPE_RETAINED, &msg_body(&good)),
        record(TYPE_RETAINED, bad_body),
        record(TYPE_SESSION, &session_body(&s)),
    );
    let b = file(2, 1, &[&a, &bad, &c, &end(2, 1)]);
    let off = HEADER_LEN + a.len();
    let p = format!("record at offset {off} (retained message): {why}; skipped");
    let want = Snapshot {
        retained: vec![good],
        sessions: vec![s],
    };
    assert_eq!(
        decode(&b),
        Ok(damaged(want, &[&p, "lost 1 of 2 retained messages"]))
    );
}

#[test]
fn invalid_message_fields_lose_that_record_only() {
    let body = msg_body(&msg("ab", b"p", 1));
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = body.clone();
        f(&mut b);
        b
    };
    check_bad_retained(
        &edit(&|b| b[6..8].copy_from_slice(&[0xC3, 0x28])),
        "the topic is not valid UTF-8",
    );
    check_bad_retained(&edit(&|b| b[1] = 3), "invalid message QoS 3");
    check_bad_retained(
        &edit(&|b| b[0] |= 0x10),
        "reserved bits set in the message flags (0x10)",
    );
    check_bad_retained(
        &edit(&|b| b[0] = MSG_ORIGIN_USER),
        "message flags name an origin user name without an origin",
    );
    check_bad_retained(
        &edit(&|b| b.push(0)),
        "1 unexpected bytes after the message",
    );
    check_bad_retained(
        &edit(&|b| b[2..6].copy_from_slice(&1000u32.to_le_bytes())),
        "the topic's length (1000) runs past the end of the record",
    );
    check_bad_retained(
        &edit(&|b| b[2..6].copy_from_slice(&u32::MAX.to_le_bytes())),
        "the topic's length (4294967295) runs past the end of the record",
    );
    check_bad_retained(&edit(&|b| b.truncate(4)), "ends inside the topic");
    check_bad_retained(&[], "ends inside the message flags");
    // An origin whose user name is not UTF-8.
    let mut m = msg("t", b"", 0);
    m.origin = Some(("c".into(), Some("u".into()), 0));
    let mut b = msg_body(&m);
    let n = b.len();
    b[n - 5] = 0xFF;
    check_bad_retained(&b, "the origin user name is not valid UTF-8");
}

fn check_bad_session(bad_body: &[u8], why: &str) {
    let good = msg("ok", b"1", 1);
    let s = session("s");
    let (a, bad, c) = (
        record(TYPE_RETAINED, &msg_body(&good)),
        record(TYPE_SESSION, bad_body),
        record(TYPE_SESSION, &session_body(&s)),
    );
    let b = file(1, 2, &[&a, &bad, &c, &end(1, 2)]);
    let off = HEADER_LEN + a.len();
    let p = format!("record at offset {off} {why}; skipped");
    let want = Snapshot {
        retained: vec![good],
        sessions: vec![s],
    };
    assert_eq!(decode(&b), Ok(damaged(want, &[&p, "lost 1 of 2 sessions"])));
}

#[test]
fn invalid_session_fields_lose_that_session_only() {
    let mut s = session("cl");
    s.username = Some("us".into());
    s.subs.push(StoredSub {
        filter: "f".into(),
        options: 1,
        id: 0,
    });
    s.out.push(StoredOut {
        state: OutState::Queued,
        pid: 0,
        qos: 1,
        retain: false,
        sub_ids: Vec::new(),
        msg: msg("t", b"", 1),
    });
    let body = session_body(&s);
    // client id (4+2), flags (1), user name (4+2), listener, expiry (4+4), last pid (2),
    // subscription count (4) at 23, filter (4+1), options (1), id (4), message count (4) at
    // 37, state.
    let (flags, user, options, state) = (6, 11, 32, 41);
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = body.clone();
        f(&mut b);
        b
    };
    assert_eq!(body[options], 1);
    assert_eq!(body[state], 0);
    check_bad_session(
        &edit(&|b| b[4] = 0xFE),
        "(session): the client id is not valid UTF-8",
    );
    check_bad_session(
        &edit(&|b| b[user] = 0x80),
        "(session \"cl\"): the user name is not valid UTF-8",
    );
    check_bad_session(
        &edit(&|b| b[flags] = 0x08),
        "(session \"cl\"): reserved bits set in the session flags (0x08)",
    );
    check_bad_session(
        &edit(&|b| b[options] = 0x03),
        "(session \"cl\"): invalid QoS 3 in the options of subscription \"f\"",
    );
    check_bad_session(
        &edit(&|b| b[state] = 3),
        "(session \"cl\"): unknown delivery state 3",
    );
    check_bad_session(
        &edit(&|b| b[state + 1] = 7),
        "(session \"cl\"): invalid delivery QoS 7",
    );
    check_bad_session(
        &edit(&|b| b.extend_from_slice(&[1, 2])),
        "(session \"cl\"): 2 unexpected bytes after the session",
    );
    // Counts that the bytes cannot back: no 4-billion-element allocation, no long loop.
    for at in [23, 37] {
        let t = Instant::now();
        let b = edit(&|b| {
            b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            b.truncate(at + 4);
        });
        let what = if at == 23 { "filter" } else { "delivery state" };
        check_bad_session(&b, &format!("(session \"cl\"): ends inside the {what}"));
        assert!(t.elapsed() < Duration::from_millis(100));
    }
}

#[test]
fn record_types_unknown_optional_and_misplaced() {
    let good = msg("ok", b"1", 1);
    let a = record(TYPE_RETAINED, &msg_body(&good));
    let only = Snapshot {
        retained: vec![good.clone()],
        sessions: Vec::new(),
    };
    // An optional record from a newer writer: skipped without calling the file damaged.
    let b = file(
        1,
        0,
        &[&record(0x80, b"stats"), &a, &record(0xFF, b""), &end(1, 0)],
    );
    assert_eq!(decode(&b), Ok(clean(only.clone())));
    // A required one: the file lost something.
    let b = file(1, 0, &[&a, &record(0x04, b"?"), &end(1, 0)]);
    let p = format!(
        "record at offset {}: unknown record type 0x04; skipped",
        HEADER_LEN + a.len()
    );
    assert_eq!(decode(&b), Ok(damaged(only.clone(), &[&p])));
    // Records after the end record, and a second end record.
    let b = file(1, 0, &[&end(1, 0), &a, &a, &end(1, 0)]);
    let at = |i: usize| HEADER_LEN + END_RECORD_LEN + i * a.len();
    let p1 = format!("record at offset {} comes after the end record", at(0));
    let p2 = format!("record at offset {} comes after the end record", at(1));
    let p3 = format!("record at offset {}: a second end record", at(2));
    let p4 = "recovered 2 retained messages and 0 sessions, more than the 1 and 0 announced";
    let mut two = only.clone();
    two.retained.push(good);
    assert_eq!(decode(&b), Ok(damaged(two, &[&p1, &p2, &p3, p4])));
    // An end record of the wrong size.
    let b = file(1, 0, &[&a, &record(TYPE_END, &[0; 15])]);
    let p = format!(
        "record at offset {} (end record): ends inside the session count; skipped",
        HEADER_LEN + a.len()
    );
    assert_eq!(
        decode(&b),
        Ok(damaged(
            only.clone(),
            &[&p, "no intact end record; 1 of 1 records recovered"]
        ))
    );
    // Header and end record disagree.
    let b = file(1, 0, &[&a, &end(1, 5)]);
    assert_eq!(
        decode(&b),
        Ok(damaged(
            only,
            &["the header announces 1 retained messages and 0 sessions, the end record 1 and 5"]
        ))
    );
}

#[test]
fn problems_are_capped() {
    let bad = record(TYPE_RETAINED, &[0x80]);
    let recs: Vec<&[u8]> = std::iter::repeat_n(&bad[..], 100).collect();
    let mut b = file(100, 0, &recs);
    b.extend_from_slice(&end(100, 0));
    let d = decode(&b).unwrap();
    assert!(d.damaged && d.snapshot == Snapshot::default());
    assert_eq!(d.problems.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        d.problems[0],
        "record at offset 36 (retained message): reserved bits set in the message flags (0x80); skipped"
    );
    assert_eq!(d.problems[MAX_PROBLEMS], "37 more problems not listed");
}

// --- Fuzzing -----------------------------------------------------------------------------

/// The fuzz loop's starting point: every kind of field, as few bytes as that takes.
fn tiny() -> Snapshot {
    let mut s = session("s");
    s.username = Some("u".into());
    s.expiry_left = Some(1);
    s.subs.push(StoredSub {
        filter: "#".into(),
        options: 1,
        id: 2,
    });
    s.out.push(StoredOut {
        state: OutState::AwaitAck,
        pid: 1,
        qos: 1,
        retain: true,
        sub_ids: vec![2],
        msg: msg("t", b"", 1),
    });
    s.incoming_qos2.push(3);
    let mut will = msg("w", b"", 0);
    will.origin = Some(("s".into(), None, 0));
    s.pending_will = Some((4, will));
    let mut r = msg("r", b"1", 2);
    r.expiry_left = Some(5);
    r.props = vec![1, 1];
    Snapshot {
        retained: vec![r],
        sessions: vec![s],
    }
}

/// Outcomes of a run of the fuzz loop.
#[derive(Default, Debug)]
struct FuzzCounts {
    ok: u32,
    intact: u32,
    not_ours: u32,
    newer: u32,
}

/// `iterations` mutations of `b` (the encoding of `base`), 1 to 3 each, decoded and checked.
fn fuzz(seed: u64, iterations: u32, base: &Snapshot, b: &[u8], other: &Snapshot) -> FuzzCounts {
    let ob = encode(other);
    let known = |d: &Decoded| {
        d.snapshot
            .retained
            .iter()
            .all(|m| base.retained.contains(m) || other.retained.contains(m))
            && d.snapshot
                .sessions
                .iter()
                .all(|s| base.sessions.contains(s) || other.sessions.contains(s))
    };
    let mut rng = Rng(seed);
    let mut n = FuzzCounts::default();
    let (ok, intact, not_ours, newer) = (&mut n.ok, &mut n.intact, &mut n.not_ours, &mut n.newer);
    let mut m = Vec::new();
    for i in 0..iterations {
        m.clear();
        m.extend_from_slice(b);
        for _ in 0..1 + rng.below(3) {
            let len = m.len();
            let at = rng.below(len + 1);
            match rng.below(8) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let p = rng.below(len);
                        if let Some(x) = m.get_mut(p) {
                            *x ^= 1 + rng.below(255) as u8;
                        }
                    }
                }
                1 => {
                    let n = rng.below(64).min(len - at);
                    m[at..at + n].fill(0);
                }
                2 => m.truncate(at),
                3 => {
                    let n = 1 + rng.below(16);
                    let junk = rng.bytes(n);
                    m.splice(at..at, junk);
                }
                4 => {
                    let n = rng.below(32).min(len - at);
                    m.drain(at..at + n);
                }
                5 => {
                    let n = rng.below(64).min(len - at);
                    let copy = m[at..at + n].to_vec();
                    let to = rng.below(len + 1);
                    m.splice(to..to, copy);
                }
                6 => {
                    let v = match rng.below(4) {
                        0 => 0,
                        1 => u32::MAX,
                        2 => rng.below(64) as u32,
                        _ => rng.next() as u32,
                    };
                    if at + 4 <= len {
                        m[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
                _ => {
                    let from = rng.below(ob.len());
                    let n = rng.below(128).min(ob.len() - from);
                    m.splice(at..at, ob[from..from + n].iter().copied());
                }
            }
        }
        match decode(&m) {
            Ok(d) => {
                *ok += 1;
                assert_eq!(
                    d.damaged,
                    !d.problems.is_empty(),
                    "seed {seed:#x}, iteration {i}"
                );
                assert!(
                    known(&d),
                    "seed {seed:#x}, iteration {i}: invented a record"
                );
                if !d.damaged {
                    *intact += 1;
                    assert_eq!(&d.snapshot, base, "seed {seed:#x}, iteration {i}");
                }
                if i % 64 == 0 {
                    let again = decode(&encode(&d.snapshot));
                    assert_eq!(
                        again,
                        Ok(clean(d.snapshot)),
                        "seed {seed:#x}, iteration {i}"
                    );
                }
            }
            Err(FormatError::NotASnapshot) => *not_ours += 1,
            // A version field damaged along with the rest of the header and the first
            // record: refused, as a newer file would be.
            Err(FormatError::NewerVersion(v)) => {
                assert!(
                    m.starts_with(MAGIC) && le_u32(&m, 8) == Some(v),
                    "seed {seed:#x}, iteration {i}"
                );
                *newer += 1;
            }
        }
    }
    n
}

#[test]
fn mutated_files_never_panic_and_never_invent_records() {
    // MIDGE_FUZZ_ITERATIONS=10000000 cargo test --release --lib persist::format -- mutated
    let per_thread = std::env::var("MIDGE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000u32);
    let (base, other) = (tiny(), rich());
    let b = encode(&base);
    let t = Instant::now();
    let (base, b, other) = (&base, &b, &other);
    let runs: Vec<FuzzCounts> = std::thread::scope(|sc| {
        let threads: Vec<_> = [0xDEAD_BEEF_CAFE_F00D, 0x0123_4567_89AB_CDEF]
            .map(|seed| sc.spawn(move || fuzz(seed, per_thread, base, b, other)))
            .into_iter()
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for n in &runs {
        // The mutations reach every outcome.
        assert!(
            n.ok > per_thread / 2 && n.intact > 0 && n.not_ours > 0 && n.newer > 0,
            "{n:?}"
        );
    }
    eprintln!(
        "{} mutated files of {} bytes in {:?}: {runs:?}",
        2 * per_thread,
        b.len(),
        t.elapsed()
    );
}

// --- Scale -------------------------------------------------------------------------------

fn many(n: usize) -> Snapshot {
    let retained = (0..n)
        .map(|i| {
            let mut m = msg(
                &format!("site/{}/sensor/{i}", i % 100),
                &vec![i as u8; i % 64],
                (i % 3) as u8,
            );
            m.retain = true;
            if i % 10 == 0 {
                m.props = vec![0x01, 0x01];
            }
            m
        })
        .collect();
    Snapshot {
        retained,
        sessions: Vec::new(),
    }
}

/// Counts bytes and remembers the biggest single write.
#[derive(Default)]
struct Counter {
    total: usize,
    biggest: usize,
}

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.total += b.len();
        self.biggest = self.biggest.max(b.len());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn best_of_3(f: impl Fn()) -> Duration {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn encoding_100k_retained_messages_is_linear_and_streams() {
    let s = many(100_000);
    let sizes: usize = s
        .retained
        .iter()
        .map(|m| m.topic.len() + m.payload.len() + m.props.len())
        .sum();
    let want =
        HEADER_LEN + END_RECORD_LEN + s.retained.len() * (RECORD_OVERHEAD + MSG_OVERHEAD) + sizes;
    let mut c = Counter::default();
    let t = Instant::now();
    encode_into(&s, &mut c).unwrap();
    let enc_100k = t
        .elapsed()
        .min(best_of_3(|| encode_into(&s, &mut io::sink()).unwrap()));
    assert_eq!(c.total, want);
    // Streamed: never more than a chunk and a record in one write, not a second copy.
    assert!(c.biggest < CHUNK + 128, "{}", c.biggest);

    let b = encode(&s);
    assert_eq!(b.len(), want);
    let t = Instant::now();
    let d = decode(&b);
    // The best of three, as for 10k below: one run on a busy machine may be descheduled.
    let dec_100k = t.elapsed().min(best_of_3(|| assert!(decode(&b).is_ok())));
    assert_eq!(d, Ok(clean(s)));

    // Ten times the messages, about ten times the time (quadratic would be a hundred).
    let small = many(10_000);
    let small_b = encode(&small);
    let enc_10k = best_of_3(|| encode_into(&small, &mut io::sink()).unwrap());
    let dec_10k = best_of_3(|| assert!(decode(&small_b).is_ok()));
    eprintln!(
        "100k retained: {} bytes; encode {enc_100k:?} (10k: {enc_10k:?}), decode {dec_100k:?} (10k: {dec_10k:?})",
        b.len()
    );
    let slack = Duration::from_millis(20);
    assert!(enc_100k < enc_10k * 40 + slack);
    assert!(dec_100k < dec_10k * 40 + slack);
}

#[test]
fn damage_in_a_large_file_costs_linear_time() {
    // Every other record damaged: 10,000 resynchronisations, each scanning only to the next
    // intact record.
    let s = many(20_000);
    let mut b = encode(&s);
    let sp = spans(&b);
    let hit: std::collections::HashSet<usize> = sp.iter().step_by(2).map(|x| x.0).collect();
    for &start in &hit {
        b[start + 5] ^= 0x40;
    }
    let t = Instant::now();
    let d = decode(&b).unwrap();
    assert_eq!(d.snapshot, without(&s, &sp, |st, _| hit.contains(&st)));
    assert_eq!(d.problems.len(), MAX_PROBLEMS + 1);
    let (start, end, _) = sp[2 * (MAX_PROBLEMS - 1)];
    assert_eq!(
        d.problems[MAX_PROBLEMS - 1],
        format!(
            "record at offset {start}: checksum mismatch; skipped {} bytes up to the next intact record at offset {end}",
            end - start
        )
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

// --- Golden files ------------------------------------------------------------------------

/// The fixtures in tests/fixtures/persist: name, bytes, and what decoding them gives.
fn fixtures() -> Vec<(&'static str, Vec<u8>, Result<Decoded, FormatError>)> {
    let s = rich();
    let b = encode(&s);
    let sp = spans(&b);
    let mut v = Vec::new();
    v.push(("v1_rich.bin", b.clone(), Ok(clean(s.clone()))));

    let cut = sp[3].0 + 40; // inside the first session
    let p = format!(
        "file truncated inside the record at offset {} (40 of its {} bytes present)",
        sp[3].0,
        sp[3].1 - sp[3].0
    );
    v.push((
        "v1_truncated.bin",
        b[..cut].to_vec(),
        Ok(damaged(
            without(&s, &sp, |_, end| end > cut),
            &[
                &p,
                "file truncated after 3 of 5 records",
                "lost 2 of 2 sessions",
            ],
        )),
    ));

    let mut m = b.clone();
    m[sp[1].0 + 30] ^= 0x20; // in the second retained message's payload
    let p = format!(
        "record at offset {}: checksum mismatch; skipped {} bytes up to the next intact record at offset {}",
        sp[1].0,
        sp[1].1 - sp[1].0,
        sp[1].1
    );
    v.push((
        "v1_bad_checksum.bin",
        m,
        Ok(damaged(
            without(&s, &sp, |st, _| st == sp[1].0),
            &[&p, "lost 1 of 3 retained messages"],
        )),
    ));

    let mut m = b.clone();
    let from = sp[4].0 + 10; // zeros from inside the last session to the end
    m[from..].fill(0);
    let p = format!(
        "record at offset {}: checksum mismatch; nothing intact after it ({} bytes lost)",
        sp[4].0,
        b.len() - sp[4].0
    );
    v.push((
        "v1_zero_tail.bin",
        m,
        Ok(damaged(
            without(&s, &sp, |_, end| end > from),
            &[
                &p,
                "no intact end record; 4 of 5 records recovered",
                "lost 1 of 2 sessions",
            ],
        )),
    ));

    v.push((
        "zeroed.bin",
        vec![0; b.len()],
        Err(FormatError::NotASnapshot),
    ));
    v.push(("empty.bin", Vec::new(), Err(FormatError::NotASnapshot)));
    v.push((
        "garbage.bin",
        Rng(42).bytes(512),
        Err(FormatError::NotASnapshot),
    ));

    let mut m = header_with_version(2, 0, 3, 2).to_vec();
    m.extend_from_slice(&b[HEADER_LEN..]);
    for x in &sp {
        m[x.0 + 3] = 2;
    }
    v.push(("v2_newer.bin", m, Err(FormatError::NewerVersion(2))));
    v
}

#[test]
fn golden_files() {
    // MIDGE_BLESS=1 cargo test --lib persist::format::tests::golden_files   (rewrites them)
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/persist");
    let bless = std::env::var_os("MIDGE_BLESS").is_some();
    for (name, bytes, outcome) in fixtures() {
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (MIDGE_BLESS=1 writes it)", path.display()));
        assert!(
            on_disk == bytes,
            "{name}: the format changed (bump VERSION?)"
        );
        assert_eq!(decode(&on_disk), outcome, "{name}");
    }
}
