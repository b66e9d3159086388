//! Shared by the integration tests: starts the real `midge` binary on 127.0.0.1 with an
//! ephemeral port and a temporary config, and a small raw-packet MQTT client.
//!
//! When `XCHECK_EXEC_WRAPPER` is set (e.g. `qemu-arm -cpu arm1176`), its words are put in front of
//! the broker's command, so the same tests run an ARM build under emulation.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// How long to wait for things that should happen "at once"; generous for emulated ARM runs.
pub fn patience() -> Duration {
    if std::env::var_os("XCHECK_EXEC_WRAPPER").is_some() {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("midge-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The command that runs the midge binary, honouring `XCHECK_EXEC_WRAPPER`.
pub fn midge_command() -> Command {
    wrapped(env!("CARGO_BIN_EXE_midge"))
}

/// A command running one of the project's binaries, behind `XCHECK_EXEC_WRAPPER` if set.
pub fn wrapped(bin: &str) -> Command {
    match std::env::var("XCHECK_EXEC_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let mut words = w.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words).arg(bin);
            c
        }
        _ => Command::new(bin),
    }
}

type Log = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running broker. Killed on drop.
pub struct Midge {
    child: Child,
    pub port: u16,
    log: Log,
    pub dir: TempDir,
}

impl Midge {
    /// Starts midge with `listener 0 127.0.0.1` followed by `extra` config lines.
    pub fn start(extra: &str) -> Midge {
        Self::start_conf(&format!("listener 0 127.0.0.1\n{extra}"))
    }

    /// Starts midge with exactly this config file.
    pub fn start_conf(conf: &str) -> Midge {
        let dir = TempDir::new();
        let path = dir.write("midge.conf", conf);
        Self::spawn(dir, &["-c", path.to_str().unwrap()])
    }

    /// Starts midge with these arguments and waits until it listens.
    pub fn spawn(dir: TempDir, args: &[&str]) -> Midge {
        let mut child = midge_command()
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start midge");
        let log: Log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("MIDGE_TEST_ECHO").is_some() {
                    eprintln!("midge| {line}");
                }
                let (m, cv) = &*l2;
                m.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut m = Midge {
            child,
            port: 0,
            log,
            dir,
        };
        let line = m
            .wait_log("Opening ipv4 listen socket on port ")
            .unwrap_or_else(|| panic!("midge did not start; log:\n{}", m.log_text()));
        m.port = line
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('.')
            .parse()
            .unwrap();
        m.wait_log("running").expect("midge running");
        m
    }

    /// Runs midge with `args` to completion (for start-up failures): exit code and log. A
    /// broker still running after `patience()` is killed and reported as `None`.
    pub fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
        let mut child = midge_command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run midge");
        let mut stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + patience();
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (code, reader.join().unwrap_or_default())
    }

    pub fn log_text(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + patience();
        let (m, cv) = &*self.log;
        let mut lines = m.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits for a log line containing `needle` (the log is read from the broker's stderr by
    /// a thread, so a line written just now may not be here yet); fails with the log if none
    /// comes within `patience()`.
    pub fn expect_log(&self, needle: &str) -> String {
        self.wait_log(needle)
            .unwrap_or_else(|| panic!("broker never logged {needle:?}; log:\n{}", self.log_text()))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit code, once the process has ended.
    pub fn exit_code(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().and_then(|s| s.code())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Midge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw MQTT client: writes the bytes it is given, reads whole packets.
pub struct Client {
    pub s: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to midge");
        s.set_read_timeout(Some(patience())).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s }
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("write to midge");
    }

    /// Reads one whole packet, fixed header included. Panics on timeout or close.
    pub fn recv(&mut self) -> Vec<u8> {
        self.try_recv().expect("a packet from midge")
    }

    /// One whole packet, or None if the connection closed (or timed out).
    pub fn try_recv(&mut self) -> Option<Vec<u8>> {
        let mut p = vec![0u8; 1];
        self.s.read_exact(&mut p).ok()?;
        let mut len = 0usize;
        for i in 0..4 {
            let mut b = [0u8];
            self.s.read_exact(&mut b).ok()?;
            p.push(b[0]);
            len |= ((b[0] & 0x7f) as usize) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let start = p.len();
        p.resize(start + len, 0);
        self.s.read_exact(&mut p[start..]).ok()?;
        Some(p)
    }

    pub fn expect(&mut self, want: &[u8]) {
        let got = self.recv();
        assert_eq!(got, want, "packet from midge");
    }

    /// The broker closes the connection (read returns end of file or reset) within patience.
    pub fn expect_closed(&mut self) {
        let start = Instant::now();
        let mut b = [0u8; 64];
        match self.s.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("expected close, got bytes {:02x?}", &b[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("connection still open after {:?}", start.elapsed())
            }
            Err(_) => {}
        }
    }

    /// Nothing arrives for `ms` milliseconds.
    pub fn expect_silence(&mut self, ms: u64) {
        self.s
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let mut b = [0u8; 64];
        match self.s.read(&mut b) {
            Ok(0) => panic!("connection closed, expected it to stay open and quiet"),
            Ok(n) => panic!("expected silence, got {:02x?}", &b[..n]),
            Err(_) => {}
        }
        self.s.set_read_timeout(Some(patience())).unwrap();
    }

    pub fn close(self) {
        let _ = self.s.shutdown(Shutdown::Both);
    }

    /// CONNECT (3.1.1) and expect CONNACK accepted with the given session-present flag.
    pub fn handshake(&mut self, id: &str, clean: bool, keepalive: u16, sp: bool) {
        self.send(&connect(id, clean, keepalive));
        self.expect(&[0x20, 0x02, sp as u8, 0x00]);
    }
}

/// Encodes a remaining length.
pub fn rl(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    rl(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

pub fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// CONNECT: protocol name, level, flags, keepalive, then the payload fields as given.
pub fn connect_raw(name: &[u8], level: u8, flags: u8, keepalive: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    string(name, &mut b);
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&keepalive.to_be_bytes());
    for f in fields {
        string(f, &mut b);
    }
    packet(0x10, &b)
}

pub fn connect(id: &str, clean: bool, keepalive: u16) -> Vec<u8> {
    connect_raw(
        b"MQTT",
        4,
        if clean { 0x02 } else { 0 },
        keepalive,
        &[id.as_bytes()],
    )
}

/// CONNECT with a will.
pub fn connect_will(
    id: &str,
    keepalive: u16,
    topic: &str,
    msg: &[u8],
    qos: u8,
    retain: bool,
) -> Vec<u8> {
    let flags = 0x02 | 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
    connect_raw(
        b"MQTT",
        4,
        flags,
        keepalive,
        &[id.as_bytes(), topic.as_bytes(), msg],
    )
}

pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, pid: u16) -> Vec<u8> {
    let mut b = Vec::new();
    string(topic.as_bytes(), &mut b);
    if qos > 0 {
        b.extend_from_slice(&pid.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | retain as u8, &b)
}

pub fn subscribe(pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    for (f, q) in filters {
        string(f.as_bytes(), &mut b);
        b.push(*q);
    }
    packet(0x82, &b)
}

pub fn unsubscribe(pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    for f in filters {
        string(f.as_bytes(), &mut b);
    }
    packet(0xa2, &b)
}

pub fn suback(pid: u16, codes: &[u8]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(codes);
    packet(0x90, &b)
}

/// PUBACK, PUBREC, PUBREL (0x62), PUBCOMP, UNSUBACK by first byte.
pub fn ack(byte1: u8, pid: u16) -> Vec<u8> {
    let p = pid.to_be_bytes();
    vec![byte1, 0x02, p[0], p[1]]
}

pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const PINGRESP: [u8; 2] = [0xd0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];
pub const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

/// Whether a program is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
