//! Persistence with the real binary: what survives a restart, a kill -9, and a damaged file.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn stop(mut m: Midge) {
    signal(m.pid(), "-TERM");
    let deadline = Instant::now() + patience();
    while m.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.exit_code(), Some(0), "{}", m.log_text());
}

fn conf(dir: &Path, extra: &str) -> String {
    format!(
        "listener 0 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n{extra}",
        dir.display()
    )
}

fn start(dir: &TempDir, extra: &str) -> Midge {
    let path = dir.write("midge.conf", &conf(&dir.0, extra));
    // Each broker gets its own copy of the directory handle: spawn takes one to clean up,
    // so hand it a fresh empty one and keep the data directory alive here.
    Midge::spawn(TempDir::new(), &["-c", path.to_str().unwrap()])
}

/// Sets up state worth keeping: a retained message and a persistent session with two QoS 1
/// messages queued while it is away.
fn populate(m: &Midge) {
    let mut s = m.client();
    s.handshake("durable", false, 0, false);
    s.send(&subscribe(1, &[("q/#", 1)]));
    s.expect(&suback(1, &[1]));
    s.send(&DISCONNECT);
    s.expect_closed();
    let mut p = m.client();
    p.handshake("pub", true, 0, false);
    p.send(&publish("home/state", b"on", 1, true, 1));
    p.expect(&ack(0x40, 1));
    for i in 2..=3u16 {
        p.send(&publish("q/x", format!("m{i}").as_bytes(), 1, false, i));
        p.expect(&ack(0x40, i));
    }
}

fn check_restored(m: &Midge) {
    let mut s = m.client();
    s.handshake("durable", false, 0, true);
    for i in 2..=3u16 {
        s.expect(&publish("q/x", format!("m{i}").as_bytes(), 1, false, i - 1));
        s.send(&ack(0x40, i - 1));
    }
    let mut r = m.client();
    r.handshake("reader", true, 0, false);
    r.send(&subscribe(1, &[("home/#", 0)]));
    r.expect(&suback(1, &[0]));
    r.expect(&publish("home/state", b"on", 0, true, 0));
}

#[test]
fn state_survives_a_clean_restart() {
    let dir = TempDir::new();
    let m = start(&dir, "");
    populate(&m);
    stop(m);
    assert!(dir.path("midge.db").exists());
    let m = start(&dir, "");
    m.wait_log("Restored 1 retained messages and 1 sessions")
        .unwrap();
    check_restored(&m);
}

#[test]
fn sigusr1_saves_and_survives_kill_9() {
    let dir = TempDir::new();
    let m = start(&dir, "autosave_interval 0\n");
    populate(&m);
    signal(m.pid(), "-USR1");
    m.wait_log("Saved 1 retained messages and 1 sessions")
        .unwrap();
    // A crash: no chance to save again.
    signal(m.pid(), "-KILL");
    drop(m);
    assert!(!dir.path("midge.db.new").exists());
    let m = start(&dir, "");
    check_restored(&m);
}

#[test]
fn autosave_on_changes_writes_after_enough_changes() {
    let dir = TempDir::new();
    let m = start(&dir, "autosave_interval 3\nautosave_on_changes true\n");
    // subscription + retained + 2 queued = 4 changes; the broker's own $SYS rounds (every
    // 10 s by default, and a slow machine may see one here) are none.
    populate(&m);
    let saved = m
        .wait_log("Saved ")
        .unwrap_or_else(|| panic!("not saved after 3 changes; log:\n{}", m.log_text()));
    // The first save came at the third change, not before: it holds the retained message and
    // the session.
    assert!(
        saved.contains("Saved 1 retained messages and 1 sessions"),
        "{}",
        m.log_text()
    );
    signal(m.pid(), "-KILL");
    drop(m);
    let m = start(&dir, "");
    m.wait_log("Restored 1 retained messages and 1 sessions")
        .unwrap_or_else(|| panic!("not restored; log:\n{}", m.log_text()));
}

#[test]
fn damaged_files_never_stop_the_broker() {
    // Build a good file first.
    let dir = TempDir::new();
    let m = start(&dir, "");
    populate(&m);
    stop(m);
    let good = std::fs::read(dir.path("midge.db")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zeroed", vec![0u8; good.len()]),
        ("empty", Vec::new()),
        ("truncated", good[..good.len() * 2 / 3].to_vec()),
        (
            "garbage",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("flipped", {
            let mut b = good.clone();
            let i = b.len() - 40;
            b[i] ^= 0xff;
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(dir.path("midge.db"), &bytes).unwrap();
        let m = start(&dir, "");
        m.wait_log("Persistence file")
            .unwrap_or_else(|| panic!("{what}: damage not reported; log:\n{}", m.log_text()));
        // It serves clients.
        let mut c = m.client();
        c.handshake("c", true, 0, false);
        // The damaged file is kept aside.
        let kept = std::fs::read_dir(&dir.0)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".damaged-"));
        assert!(kept, "{what}: damaged file not kept");
        stop(m);
        for e in std::fs::read_dir(&dir.0).unwrap().flatten() {
            if e.file_name().to_string_lossy().contains(".damaged-") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    // A truncated file still gives back the records before the cut: the retained message
    // comes first in the file.
    std::fs::write(dir.path("midge.db"), &good[..good.len() - 30]).unwrap();
    let m = start(&dir, "");
    m.wait_log("Restored 1 retained messages").unwrap();
}

#[test]
fn a_file_from_a_newer_version_is_refused_and_left_alone() {
    let dir = TempDir::new();
    let m = start(&dir, "");
    populate(&m);
    stop(m);
    let mut b = std::fs::read(dir.path("midge.db")).unwrap();
    // What a newer midge would write: version 99 in the header (with a matching checksum)
    // and in every record marker.
    b[8] = 99;
    let crc = midge::persist::format::crc32(&b[..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    let marker = midge::persist::format::RECORD_MARKER;
    let mut i = 36;
    while i + 4 <= b.len() {
        if b[i..i + 4] == marker {
            b[i + 3] = 99;
            i += 4;
        } else {
            i += 1;
        }
    }
    std::fs::write(dir.path("midge.db"), &b).unwrap();
    let path = dir.write("midge.conf", &conf(&dir.0, ""));
    let (code, err) = Midge::run_to_exit(&["-c", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("newer midge"), "{err}");
    assert_eq!(
        std::fs::read(dir.path("midge.db")).unwrap(),
        b,
        "file was touched"
    );
}

#[test]
fn kill_9_at_random_moments_loses_nothing_saved() {
    let dir = TempDir::new();
    let extra = "max_queued_messages 0\nautosave_interval 1\n";
    // The subscriber's persistent session exists from the start and stays away until the end.
    let m = start(&dir, extra);
    let mut s = m.client();
    s.handshake("keeper", false, 0, false);
    s.send(&subscribe(1, &[("c/#", 1)]));
    s.expect(&suback(1, &[1]));
    s.send(&DISCONNECT);
    s.expect_closed();
    stop(m);

    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut saved: Vec<u32> = Vec::new();
    let mut published: u32 = 0;
    for round in 0..6 {
        let m = start(&dir, extra);
        let mut p = m.client();
        p.handshake(&format!("p{round}"), true, 0, false);
        // A batch that is acknowledged and then saved on SIGUSR1.
        for _ in 0..20 {
            published += 1;
            let pid = (published % 60000 + 1) as u16;
            p.send(&publish("c/x", &published.to_be_bytes(), 1, false, pid));
            p.expect(&ack(0x40, pid));
        }
        // Every save from now on holds the whole batch (the broker handled it already).
        let saves_before = m.log_text().matches("Saved ").count();
        signal(m.pid(), "-USR1");
        let deadline = Instant::now() + patience();
        while m.log_text().matches("Saved ").count() <= saves_before {
            assert!(Instant::now() < deadline, "no save after SIGUSR1");
            std::thread::sleep(Duration::from_millis(5));
        }
        saved.extend(published - 19..=published);
        // More that may or may not be saved, then the plug is pulled at a random moment.
        let more = next(30);
        for _ in 0..more {
            published += 1;
            let pid = (published % 60000 + 1) as u16;
            p.send(&publish("c/x", &published.to_be_bytes(), 1, false, pid));
        }
        std::thread::sleep(Duration::from_millis(next(40)));
        signal(m.pid(), "-KILL");
        drop(m);
    }
    // Everything saved comes back once; nothing comes back that was never published.
    let m = start(&dir, extra);
    let mut s = m.client();
    s.handshake("keeper", false, 0, true);
    let mut got = Vec::new();
    s.s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    while let Some(pkt) = s.try_recv() {
        let n = u32::from_be_bytes(pkt[pkt.len() - 4..].try_into().unwrap());
        // Fixed header (2 bytes), topic "c/x" (2 + 3), then the packet identifier.
        let pid = u16::from_be_bytes([pkt[7], pkt[8]]);
        s.send(&ack(0x40, pid));
        got.push(n);
    }
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "a message was delivered twice");
    for n in &saved {
        assert!(got.contains(n), "saved message {n} lost; got {got:?}");
    }
    assert!(got.iter().all(|n| *n >= 1 && *n <= published));
}

#[test]
fn a_qos2_flow_cut_between_pubrec_and_pubcomp_completes_once_after_restart() {
    let dir = TempDir::new();
    let m = start(&dir, "");
    let mut s = m.client();
    s.handshake("q2", false, 0, false);
    s.send(&subscribe(1, &[("t", 2)]));
    s.expect(&suback(1, &[2]));
    let mut p = m.client();
    p.handshake("p", false, 0, false);
    // Outgoing: delivered to q2, PUBREC received, PUBREL sent; PUBCOMP never comes.
    p.send(&publish("t", b"out", 2, false, 1));
    p.expect(&ack(0x50, 1));
    // Incoming: the publisher's PUBREL never comes either.
    s.expect(&publish("t", b"out", 2, false, 1));
    s.send(&ack(0x50, 1));
    s.expect(&ack(0x62, 1));
    stop(m);
    let m = start(&dir, "");
    // The subscriber gets the PUBREL again, not the message.
    let mut s = m.client();
    s.handshake("q2", false, 0, true);
    s.expect(&ack(0x62, 1));
    s.send(&ack(0x70, 1));
    // The publisher resends its PUBLISH (DUP) before PUBREL: it is not delivered again.
    let mut p = m.client();
    p.handshake("p", false, 0, true);
    let mut dup = publish("t", b"out", 2, false, 1);
    dup[0] |= 0x08;
    p.send(&dup);
    p.expect(&ack(0x50, 1));
    p.send(&ack(0x62, 1));
    p.expect(&ack(0x70, 1));
    s.send(&PINGREQ);
    s.expect(&PINGRESP);
}
