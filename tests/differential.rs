//! Differential tests: midge answers as mosquitto 2.0.20 does.
//!
//! `scripts/diff-record` played every scenario of `tests/diff/scenarios/` against mosquitto
//! 2.0.20 and wrote its answers (packet by packet, and whether the connection was closed) to
//! `tests/diff/transcripts/`. This test plays the same bytes against midge and compares. It
//! needs no mosquitto: the transcripts are in the repository.
//!
//! Scenarios that share a config share one midge process and run side by side (their client
//! ids and topics are unique to each scenario). A scenario listed in `tests/diff/known.txt` is a
//! known difference: counted and printed, never passed silently; a listed one that agrees (only
//! reported under emulation, where timing-dependent differences may not show), and any other
//! mismatch, fails the test.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long "read until closed" waits; `scripts/diff-record` uses the same bound. Under
/// emulation (`XCHECK_EXEC_WRAPPER`) the broker may need longer to answer.
fn bound() -> Duration {
    if std::env::var_os("XCHECK_EXEC_WRAPPER").is_some() {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(500)
    }
}

const PARALLEL: usize = 32;

#[derive(Debug)]
enum Step {
    Send(usize, Vec<u8>),
    Sync(usize, String),
    Wait(usize, String),
    Recv(usize, usize, String),
    Close(usize),
    Sleep(u64),
}

#[derive(Debug)]
struct Scenario {
    name: String,
    config: String,
    steps: Vec<Step>,
}

fn diff_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diff")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load() -> Vec<Scenario> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(diff_dir().join("transcripts"))
        .expect("tests/diff/transcripts")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut out: Vec<Scenario> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("{}:{}", f.display(), n + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, expect) = match line.split_once(" = ") {
                Some((h, e)) => (h, e.to_string()),
                None => (line, String::new()),
            };
            let w: Vec<&str> = head.split(' ').collect();
            if w[0] == "scenario" {
                out.push(Scenario {
                    name: w[1].to_string(),
                    config: String::new(),
                    steps: Vec::new(),
                });
                continue;
            }
            let sc = out
                .last_mut()
                .unwrap_or_else(|| panic!("{}: no scenario", at()));
            let num = |i: usize| -> usize { w[i].parse().unwrap_or_else(|_| panic!("{}", at())) };
            match w[0] {
                "config" => sc.config = w[1].to_string(),
                "note" => {}
                "send" => sc.steps.push(Step::Send(num(1), unhex(w[2]))),
                "sync" => sc.steps.push(Step::Sync(num(1), expect)),
                "wait" => sc.steps.push(Step::Wait(num(1), expect)),
                "recv" => sc.steps.push(Step::Recv(num(1), num(2), expect)),
                "close" => sc.steps.push(Step::Close(num(1))),
                "sleep" => sc.steps.push(Step::Sleep(num(1) as u64)),
                _ => panic!("{}: unknown step {line}", at()),
            }
        }
    }
    out
}

/// `PATTERN reason`: a scenario name, or a prefix ending in `*`.
fn known() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(diff_dir().join("known.txt")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, r) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (p.to_string(), r.trim().to_string())
        })
        .collect()
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Assigned client ids are random: both sides compare them as auto-0000...-000000000000.
fn masked(p: &[u8]) -> Vec<u8> {
    let mut out = p.to_vec();
    let shape = b"auto-HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH";
    let mut i = 0;
    while i + shape.len() <= out.len() {
        let fits = shape.iter().zip(&out[i..]).all(|(s, b)| match s {
            b'H' => b.is_ascii_digit() || (b'A'..=b'F').contains(b),
            _ => s == b,
        });
        if fits {
            for (s, b) in shape.iter().zip(&mut out[i..]) {
                if *s == b'H' {
                    *b = b'0';
                }
            }
            i += shape.len();
        } else {
            i += 1;
        }
    }
    out
}

struct Conn {
    s: Option<TcpStream>,
    buf: Vec<u8>,
    closed: bool,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to midge");
        s.set_nodelay(true).unwrap();
        Conn {
            s: Some(s),
            buf: Vec::new(),
            closed: false,
        }
    }

    fn send(&mut self, b: &[u8]) {
        if let (false, Some(s)) = (self.closed, self.s.as_mut()) {
            let _ = s.write_all(b);
        }
    }

    fn packet(&mut self) -> Option<Vec<u8>> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (mut n, mut mul, mut i) = (0usize, 1usize, 1usize);
        loop {
            if i >= b.len() {
                return None;
            }
            n += (b[i] & 0x7f) as usize * mul;
            mul *= 128;
            i += 1;
            if b[i - 1] & 0x80 == 0 || i > 4 {
                break;
            }
        }
        if b.len() < i + n {
            return None;
        }
        Some(self.buf.drain(..i + n).collect())
    }

    /// Packets until `until` holds, the connection closes, or the deadline.
    fn read(&mut self, until: &dyn Fn(&[Vec<u8>]) -> bool, deadline: Instant) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        loop {
            if let Some(p) = self.packet() {
                got.push(p);
                if until(&got) {
                    return got;
                }
                continue;
            }
            if self.closed {
                return got;
            }
            let now = Instant::now();
            if now >= deadline {
                return got;
            }
            let s = self.s.as_mut().unwrap();
            s.set_read_timeout(Some(deadline - now)).unwrap();
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    fn result(&self, got: &[Vec<u8>]) -> String {
        let mut words: Vec<String> = got.iter().map(|p| hex(&masked(p))).collect();
        if self.closed && !self.buf.is_empty() {
            words.push(format!("partial:{}", hex(&self.buf)));
        }
        words.push(if self.closed { "closed" } else { "open" }.into());
        words.join(" ")
    }
}

/// A step whose answer differed: (step number, what mosquitto answered, what midge did).
type Mismatch = (usize, String, String);

fn play(port: u16, sc: &Scenario) -> Option<Mismatch> {
    let mut conns: BTreeMap<usize, Conn> = BTreeMap::new();
    let mut first = None;
    for (i, st) in sc.steps.iter().enumerate() {
        let mut check = |c: &mut Conn, got: Vec<Vec<u8>>, want: &str| {
            let r = c.result(&got);
            if r != want && first.is_none() {
                first = Some((i + 1, want.to_string(), r));
            }
        };
        match st {
            Step::Send(c, b) => conns.entry(*c).or_insert_with(|| Conn::open(port)).send(b),
            Step::Sync(c, want) => {
                let conn = conns.entry(*c).or_insert_with(|| Conn::open(port));
                conn.send(&PINGREQ);
                let got = conn.read(
                    &|g| g.last().is_some_and(|p| p[..] == PINGRESP),
                    Instant::now() + bound(),
                );
                check(conn, got, want);
            }
            Step::Wait(c, want) => {
                let conn = conns.entry(*c).or_insert_with(|| Conn::open(port));
                let got = conn.read(&|_| false, Instant::now() + bound());
                check(conn, got, want);
            }
            Step::Recv(c, n, want) => {
                let conn = conns.entry(*c).or_insert_with(|| Conn::open(port));
                let got = conn.read(&|g| g.len() >= *n, Instant::now() + bound());
                check(conn, got, want);
            }
            Step::Close(c) => {
                let conn = conns.entry(*c).or_insert_with(|| Conn::open(port));
                conn.s = None;
                conn.closed = true;
            }
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
        if first.is_some() {
            break;
        }
    }
    first
}

fn config_text(name: &str) -> String {
    let dir = diff_dir().join("configs");
    let body = std::fs::read_to_string(dir.join(format!("{name}.conf")))
        .unwrap_or_else(|e| panic!("config {name}: {e}"))
        .replace("@DIR@", dir.to_str().unwrap());
    format!("listener 0 127.0.0.1\n{body}")
}

#[test]
fn midge_answers_as_mosquitto_2_0_20() {
    let scenarios = load();
    assert!(scenarios.len() >= 1000, "{} scenarios", scenarios.len());
    let mut by_config: BTreeMap<&str, Vec<&Scenario>> = BTreeMap::new();
    for sc in &scenarios {
        by_config.entry(&sc.config).or_default().push(sc);
    }
    let results: Mutex<BTreeMap<String, Option<Mismatch>>> = Mutex::new(BTreeMap::new());
    let known = known();
    for (config, scs) in &by_config {
        let midge = Midge::start_conf(&config_text(config));
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL.min(scs.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(sc) = scs.get(i) else { break };
                    let r = play(midge.port, sc);
                    results.lock().unwrap().insert(sc.name.clone(), r);
                });
            }
        });
        // A scenario that differed unexpectedly is played once more, alone, so that a machine
        // too busy to answer within the bound while 32 scenarios ran does not fail the test;
        // a real difference differs again.
        for sc in scs {
            let listed = known.iter().any(|(p, _)| matches(p, &sc.name));
            let differed = results.lock().unwrap()[&sc.name].is_some();
            if differed && !listed {
                let r = play(midge.port, sc);
                results.lock().unwrap().insert(sc.name.clone(), r);
            }
        }
    }
    let results = results.into_inner().unwrap();
    let mut agree = 0;
    let mut known_hits: Vec<(String, String)> = Vec::new();
    let mut unexpected = Vec::new();
    let mut used = vec![false; known.len()];
    for (name, r) in &results {
        let k = known.iter().position(|(p, _)| matches(p, name));
        if let Some(k) = k {
            used[k] = true;
        }
        match (r, k) {
            (None, None) => agree += 1,
            (None, Some(_)) => agree += 1,
            (Some(_), Some(k)) => known_hits.push((name.clone(), known[k].1.clone())),
            (Some((step, want, got)), None) => unexpected.push(format!(
                "{name}: step {step}\n    mosquitto: {want}\n    midge:     {got}"
            )),
        }
    }
    // A stale entry fails natively. Under emulation it is only reported: the flow-control
    // differences need the subscriber's queue to fill faster than an emulated broker drains
    // it, so there midge may agree with mosquitto's transcript by being slow.
    let emulated = std::env::var_os("XCHECK_EXEC_WRAPPER").is_some();
    let mut stale = Vec::new();
    for (k, u) in known.iter().zip(&used) {
        if !*u || !known_hits.iter().any(|(n, _)| matches(&k.0, n)) {
            let msg = format!(
                "known.txt entry {} matches no differing scenario (it agrees now): remove it",
                k.0
            );
            if emulated {
                stale.push(msg);
            } else {
                unexpected.push(msg);
            }
        }
    }
    // Written to the stderr handle rather than with eprintln!, so that a passing run shows it.
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in &known_hits {
        *by_reason.entry(r).or_default() += 1;
    }
    let mut report = format!(
        "differential: {} scenarios, {agree} agree with mosquitto 2.0.20, {} known differences, {} unexpected\n",
        results.len(),
        known_hits.len(),
        unexpected.len()
    );
    for (r, n) in &by_reason {
        report.push_str(&format!("  known difference x{n}: {r}\n"));
    }
    for m in &stale {
        report.push_str(&format!("  under emulation, {m}\n"));
    }
    if std::env::var_os("MIDGE_DIFF_LIST").is_some() {
        for (n, r) in &known_hits {
            report.push_str(&format!("  {n}: {r}\n"));
        }
    }
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(
        unexpected.is_empty(),
        "{} scenarios differ from mosquitto 2.0.20:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}
