//! Logging as mosquitto does it, driven by the `log_dest`, `log_type`, `log_timestamp` and
//! `log_timestamp_format` options of mosquitto.conf.
//!
//! The rest of midge logs through the [`log`] crate macros; [`init`] installs a [`log::Log`]
//! that filters and writes those records the way mosquitto would.
//!
//! # Destinations (`log_dest`)
//!
//! - `stdout`, `stderr`: the console. Each line is written whole with one write and flushed.
//! - `file PATH`: appended to; created if missing. A file that cannot be opened makes [`init`]
//!   return an error, so start-up fails with a clear message. As in mosquitto only one file is
//!   kept: the last `log_dest file` wins. Calling [`init`] again (on SIGHUP) closes and reopens
//!   it, which is what log rotation needs.
//! - `syslog`: RFC 3164-style datagrams (`<PRI>Mmm dd hh:mm:ss midge[PID]: message`) sent to
//!   the unix socket `/dev/log`, facility `daemon`. The timestamp in the datagram is UTC; local
//!   syslog daemons (journald, rsyslog's default) use their own receive time anyway. When
//!   `/dev/log` cannot be reached at [`init`], lines go to stderr instead, silently.
//! - `topic`: accepted and ignored for now (mosquitto publishes to `$SYS/broker/log/..`;
//!   midge does not yet).
//! - `none`: discards the destinations given before it (as in mosquitto; later ones add).
//!
//! Several destinations may be given; each is written once even if named twice. With no
//! `log_dest` at all the default is stderr, as for mosquitto run by hand. (Debian's packaged
//! mosquitto.conf sets `log_dest file /var/log/mosquitto/mosquitto.log`, so a packaged
//! configuration logs to that file instead.)
//!
//! # Types (`log_type`)
//!
//! mosquitto's types map onto `log` levels and targets:
//!
//! | `log_type`              | records                                                   |
//! |-------------------------|-----------------------------------------------------------|
//! | `error`                 | `Level::Error`                                            |
//! | `warning`               | `Level::Warn`                                             |
//! | `notice`, `information` | `Level::Info` (either one enables it)                     |
//! | `debug`                 | `Level::Debug`, and `Level::Trace` from midge's own code   |
//! | `subscribe`             | target `"subscribe"`, e.g. `info!(target: "subscribe", ..)` |
//! | `unsubscribe`           | target `"unsubscribe"`                                    |
//! | `websockets`            | target `"websockets"` (upgrades, HTTP requests)           |
//! | `all`                   | everything above                                          |
//! | `none`                  | discards the types given before it                        |
//!
//! The default is `error`, `warning`, `notice`, `information`. Records with the targets
//! `subscribe`, `unsubscribe` and `websockets` are governed by those types only, whatever their
//! level; log them at `info` (the global maximum level is set from the enabled types, and is at
//! least `Info` when any of them is enabled). `Trace` records from other crates (mio's event
//! registration chatter) are never written.
//!
//! `midge -v` means `log_type all`, overriding the configuration, as `mosquitto -v` does. So
//! does `RUST_LOG=debug` or `RUST_LOG=trace` in the environment (the whole value, ignoring case
//! and surrounding spaces; no other `RUST_LOG` syntax is understood): see [`verbose_from_env`].
//!
//! # Timestamps
//!
//! `log_timestamp true` (the default) prefixes each line with the unix time in seconds and
//! `": "`, as mosquitto does: `1795321836: New connection from ...`. `log_timestamp_format`
//! replaces the seconds with a strftime-formatted time; midge formats it in **UTC** (not local
//! time as mosquitto does), supporting `%Y %m %d %H %M %S %y %j %e %b %a %F %T %s %z %Z %%`
//! (`%z` is `+0000`, `%Z` is `UTC`); other `%X` sequences are written literally. Syslog
//! messages carry no prefix (syslog stamps them itself), as in mosquitto.
//!
//! `connection_messages` is not handled here: the broker decides whether to log those lines.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::config::{Config, LogDest};

/// Where syslog datagrams go unless [`LogOptions::syslog_socket`] says otherwise.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The syslog tag.
const IDENT: &str = "midge";

/// syslog facility `daemon` (3), shifted into place.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Everything [`init`] needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `log_dest`, in order. Empty: stderr.
    pub dests: Vec<LogDest>,
    /// `log_type`, in order. Empty: error, warning, notice, information.
    pub types: Vec<String>,
    /// `-v` (or `RUST_LOG=debug`): every type, whatever `types` says.
    pub verbose: bool,
    /// `log_timestamp`.
    pub timestamp: bool,
    /// `log_timestamp_format`: strftime format, formatted in UTC.
    pub timestamp_format: Option<String>,
    /// The syslog socket; [`SYSLOG_SOCKET`] but for tests.
    pub syslog_socket: PathBuf,
    /// `log_facility N`: syslog facility local0..local7 instead of daemon.
    pub facility: Option<u8>,
}

impl Default for LogOptions {
    /// mosquitto's defaults: stderr, error/warning/notice/information, unix-seconds stamps.
    fn default() -> Self {
        LogOptions {
            dests: Vec::new(),
            types: Vec::new(),
            verbose: false,
            timestamp: true,
            timestamp_format: None,
            syslog_socket: PathBuf::from(SYSLOG_SOCKET),
            facility: None,
        }
    }
}

impl LogOptions {
    /// The logging options of a parsed configuration; `verbose` from `-v` (and
    /// [`verbose_from_env`]).
    pub fn from_config(cfg: &Config, verbose: bool) -> LogOptions {
        LogOptions {
            dests: cfg.log_dest.clone(),
            types: cfg.log_type.clone(),
            verbose,
            timestamp: cfg.log_timestamp,
            timestamp_format: cfg.log_timestamp_format.clone(),
            syslog_socket: PathBuf::from(SYSLOG_SOCKET),
            facility: cfg.log_facility,
        }
    }
}

/// Whether a `RUST_LOG` value asks for everything: exactly `debug` or `trace` (ignoring case
/// and surrounding white space).
pub fn rust_log_wants_all(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        v.eq_ignore_ascii_case("debug") || v.eq_ignore_ascii_case("trace")
    })
}

/// [`rust_log_wants_all`] of this process's `RUST_LOG`.
pub fn verbose_from_env() -> bool {
    rust_log_wants_all(std::env::var("RUST_LOG").ok().as_deref())
}

/// Installs midge's logger with these options, or, if it is installed already, replaces its
/// options (reopening the log file). On error nothing changes: the previous options (if any)
/// stay in force, so the caller can still log the error.
pub fn init(opts: &LogOptions) -> Result<(), String> {
    let state = State::new(opts)?;
    let max = state.types.max_level();
    *LOGGER.state.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(state));
    if !INSTALLED.load(Ordering::SeqCst) {
        log::set_logger(&LOGGER).map_err(|_| "another logger is already installed".to_string())?;
        INSTALLED.store(true, Ordering::SeqCst);
    }
    log::set_max_level(max);
    Ok(())
}

static LOGGER: Logger = Logger {
    state: RwLock::new(None),
};
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Logger {
    state: RwLock<Option<Arc<State>>>,
}

impl Logger {
    fn current(&self) -> Option<Arc<State>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.current()
            .is_some_and(|s| s.types.enabled(metadata.level(), metadata.target()))
    }

    fn log(&self, record: &Record) {
        if let Some(s) = self.current() {
            s.log(record.level(), record.target(), record.args(), unix_now());
        }
    }

    fn flush(&self) {
        if let Some(s) = self.current() {
            for sink in &s.sinks {
                sink.flush();
            }
        }
    }
}

fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The set of enabled mosquitto log types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Types(u16);

impl Types {
    const ERROR: u16 = 1 << 0;
    const WARNING: u16 = 1 << 1;
    const NOTICE: u16 = 1 << 2;
    const INFORMATION: u16 = 1 << 3;
    const DEBUG: u16 = 1 << 4;
    const SUBSCRIBE: u16 = 1 << 5;
    const UNSUBSCRIBE: u16 = 1 << 6;
    const WEBSOCKETS: u16 = 1 << 7;
    const ALL: u16 = (1 << 8) - 1;
    const DEFAULT: u16 = Self::ERROR | Self::WARNING | Self::NOTICE | Self::INFORMATION;

    /// `log_type` lines in order (`none` clears, `all` sets everything, others add; unknown
    /// names are ignored, the config parser has rejected them); `verbose` overrides.
    fn parse(list: &[String], verbose: bool) -> Types {
        if verbose {
            return Types(Self::ALL);
        }
        if list.is_empty() {
            return Types(Self::DEFAULT);
        }
        let mut bits = 0;
        for t in list {
            match t.as_str() {
                "none" => bits = 0,
                "all" => bits = Self::ALL,
                "error" => bits |= Self::ERROR,
                "warning" => bits |= Self::WARNING,
                "notice" => bits |= Self::NOTICE,
                "information" => bits |= Self::INFORMATION,
                "debug" => bits |= Self::DEBUG,
                "subscribe" => bits |= Self::SUBSCRIBE,
                "unsubscribe" => bits |= Self::UNSUBSCRIBE,
                "websockets" => bits |= Self::WEBSOCKETS,
                _ => {}
            }
        }
        Types(bits)
    }

    fn has(self, bits: u16) -> bool {
        self.0 & bits != 0
    }

    fn enabled(self, level: Level, target: &str) -> bool {
        match target {
            "subscribe" => return self.has(Self::SUBSCRIBE),
            "unsubscribe" => return self.has(Self::UNSUBSCRIBE),
            "websockets" => return self.has(Self::WEBSOCKETS),
            _ => {}
        }
        match level {
            Level::Error => self.has(Self::ERROR),
            Level::Warn => self.has(Self::WARNING),
            Level::Info => self.has(Self::NOTICE | Self::INFORMATION),
            Level::Debug => self.has(Self::DEBUG),
            Level::Trace => self.has(Self::DEBUG) && is_midge_target(target),
        }
    }

    /// The most verbose level any enabled type lets through.
    fn max_level(self) -> LevelFilter {
        if self.has(Self::DEBUG) {
            LevelFilter::Trace
        } else if self.has(
            Self::NOTICE
                | Self::INFORMATION
                | Self::SUBSCRIBE
                | Self::UNSUBSCRIBE
                | Self::WEBSOCKETS,
        ) {
            LevelFilter::Info
        } else if self.has(Self::WARNING) {
            LevelFilter::Warn
        } else if self.has(Self::ERROR) {
            LevelFilter::Error
        } else {
            LevelFilter::Off
        }
    }
}

fn is_midge_target(target: &str) -> bool {
    target == "midge" || target.starts_with("midge::") || target.starts_with("midge_")
}

/// syslog severity: mosquitto logs subscribe/unsubscribe as notice.
fn syslog_severity(level: Level, target: &str) -> u8 {
    if target == "subscribe" || target == "unsubscribe" {
        return 5;
    }
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// The line prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stamp {
    None,
    Unix,
    Format(String),
}

impl Stamp {
    fn push(&self, out: &mut String, now: i64) {
        match self {
            Stamp::None => {}
            Stamp::Unix => {
                let _ = write!(out, "{now}: ");
            }
            Stamp::Format(f) => {
                strftime_into(out, f, now);
                out.push_str(": ");
            }
        }
    }
}

/// Which destination a sink is, to drop duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Stdout,
    Stderr,
    File(PathBuf),
    Syslog,
}

enum Out {
    Stream(Box<dyn Write + Send>),
    Syslog(Syslog),
}

struct Sink {
    kind: Kind,
    out: Mutex<Out>,
}

impl Sink {
    fn stream(kind: Kind, w: Box<dyn Write + Send>) -> Sink {
        Sink {
            kind,
            out: Mutex::new(Out::Stream(w)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) {
        if let Out::Stream(w) = &mut *self.lock() {
            let _ = w.flush();
        }
    }
}

struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
}

impl Syslog {
    fn connect(path: &Path) -> std::io::Result<UnixDatagram> {
        let s = UnixDatagram::unbound()?;
        s.connect(path)?;
        Ok(s)
    }

    /// Sends one datagram; if the syslog daemon went away (restarted), reconnects once. Lines
    /// that still cannot be sent are dropped.
    fn send(&mut self, msg: &[u8]) {
        if let Some(s) = &self.sock {
            if s.send(msg).is_ok() {
                return;
            }
        }
        self.sock = Self::connect(&self.path).ok();
        if let Some(s) = &self.sock {
            let _ = s.send(msg);
        }
    }
}

/// One configuration of the logger.
struct State {
    types: Types,
    stamp: Stamp,
    sinks: Vec<Sink>,
    /// The syslog facility, shifted into place.
    facility: u8,
}

impl State {
    fn new(opts: &LogOptions) -> Result<State, String> {
        let stamp = match (&opts.timestamp_format, opts.timestamp) {
            (_, false) => Stamp::None,
            (None, true) => Stamp::Unix,
            (Some(f), true) => Stamp::Format(f.clone()),
        };
        // The console and syslog destinations in force, in order; the file apart.
        let mut kinds: Vec<&LogDest> = Vec::new();
        let mut file: Option<&str> = None;
        if opts.dests.is_empty() {
            kinds.push(&LogDest::Stderr);
        }
        for d in &opts.dests {
            match d {
                LogDest::Stdout | LogDest::Stderr | LogDest::Syslog => kinds.push(d),
                LogDest::File(p) => file = Some(p),
                LogDest::Topic => {}
                LogDest::None => {
                    kinds.clear();
                    file = None;
                }
            }
        }
        let mut sinks: Vec<Sink> = Vec::new();
        for kind in kinds {
            match kind {
                LogDest::Stdout => push_unique(&mut sinks, Kind::Stdout, || {
                    Out::Stream(Box::new(std::io::stdout()))
                }),
                LogDest::Syslog => match Syslog::connect(&opts.syslog_socket) {
                    Ok(sock) => push_unique(&mut sinks, Kind::Syslog, || {
                        Out::Syslog(Syslog {
                            path: opts.syslog_socket.clone(),
                            sock: Some(sock),
                        })
                    }),
                    Err(_) => push_unique(&mut sinks, Kind::Stderr, || {
                        Out::Stream(Box::new(std::io::stderr()))
                    }),
                },
                // Stderr.
                _ => push_unique(&mut sinks, Kind::Stderr, || {
                    Out::Stream(Box::new(std::io::stderr()))
                }),
            }
        }
        if let Some(path) = file {
            let f = open_log_file(path)?;
            sinks.push(Sink::stream(Kind::File(PathBuf::from(path)), Box::new(f)));
        }
        Ok(State {
            types: Types::parse(&opts.types, opts.verbose),
            stamp,
            sinks,
            // LOG_LOCAL0 is facility 16.
            facility: opts
                .facility
                .map_or(FACILITY_DAEMON, |n| (16 + n.min(7)) << 3),
        })
    }

    /// Filters and writes one record, stamped with `now` (unix seconds).
    fn log(&self, level: Level, target: &str, args: &std::fmt::Arguments, now: i64) {
        if self.sinks.is_empty() || !self.types.enabled(level, target) {
            return;
        }
        // Formatted before any lock is taken (an argument's Display might log).
        let mut line: Option<String> = None;
        let mut datagram: Option<String> = None;
        for sink in &self.sinks {
            if sink.kind == Kind::Syslog {
                let d = datagram.get_or_insert_with(|| {
                    syslog_datagram(
                        self.facility | syslog_severity(level, target),
                        now,
                        std::process::id(),
                        args,
                    )
                });
                if let Out::Syslog(s) = &mut *sink.lock() {
                    s.send(d.as_bytes());
                }
            } else {
                let l = line.get_or_insert_with(|| {
                    let mut l = String::new();
                    self.stamp.push(&mut l, now);
                    let _ = write!(l, "{args}");
                    l.push('\n');
                    l
                });
                if let Out::Stream(w) = &mut *sink.lock() {
                    let _ = w.write_all(l.as_bytes());
                    let _ = w.flush();
                }
            }
        }
    }
}

/// Adds a sink unless one of that kind is there already.
fn push_unique(sinks: &mut Vec<Sink>, kind: Kind, make: impl FnOnce() -> Out) {
    if !sinks.iter().any(|s| s.kind == kind) {
        sinks.push(Sink {
            kind,
            out: Mutex::new(make()),
        });
    }
}

fn open_log_file(path: &str) -> Result<File, String> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("Unable to open log file {path} for writing: {e}."))
}

/// `<PRI>Mmm dd hh:mm:ss midge[PID]: message`, time in UTC; `pri` is facility and severity.
fn syslog_datagram(pri: u8, now: i64, pid: u32, msg: &std::fmt::Arguments) -> String {
    let mut d = format!("<{pri}>");
    strftime_into(&mut d, "%b %e %H:%M:%S", now);
    let _ = write!(d, " {IDENT}[{pid}]: {msg}");
    d
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31): Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// A broken-down UTC time.
struct Tm {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    /// 0 = Sunday.
    wday: u32,
    /// 1-based day of the year.
    yday: u32,
}

impl Tm {
    fn utc(t: i64) -> Tm {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap_day = u32::from(month > 2 && is_leap(year));
        Tm {
            year,
            month,
            day,
            hour: secs / 3600,
            min: secs / 60 % 60,
            sec: secs % 60,
            wday: (days + 4).rem_euclid(7) as u32,
            yday: BEFORE[month as usize - 1] + leap_day + day,
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// Formats unix time `t` in UTC with a strftime subset: `%Y %m %d %H %M %S %y %j %e %b %a %F
/// %T %s %z %Z %%`. Other `%X` sequences (and a lone trailing `%`) are written as they are.
pub fn strftime(fmt: &str, t: i64) -> String {
    let mut out = String::with_capacity(fmt.len() + 16);
    strftime_into(&mut out, fmt, t);
    out
}

fn strftime_into(out: &mut String, fmt: &str, t: i64) {
    let tm = Tm::utc(t);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let _ = match spec {
            'Y' => write!(out, "{}", tm.year),
            'm' => write!(out, "{:02}", tm.month),
            'd' => write!(out, "{:02}", tm.day),
            'e' => write!(out, "{:2}", tm.day),
            'H' => write!(out, "{:02}", tm.hour),
            'M' => write!(out, "{:02}", tm.min),
            'S' => write!(out, "{:02}", tm.sec),
            'y' => write!(out, "{:02}", tm.year.rem_euclid(100)),
            'j' => write!(out, "{:03}", tm.yday),
            'b' => write!(out, "{}", MONTHS[tm.month as usize - 1]),
            'a' => write!(out, "{}", WEEKDAYS[tm.wday as usize]),
            'F' => write!(out, "{}-{:02}-{:02}", tm.year, tm.month, tm.day),
            'T' => write!(out, "{:02}:{:02}:{:02}", tm.hour, tm.min, tm.sec),
            's' => write!(out, "{t}"),
            'z' => write!(out, "+0000"),
            'Z' => write!(out, "UTC"),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!(
                "midge-logging-{}-{n}-{}",
                std::process::id(),
                unix_now()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A writer whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn captured(types: &[&str], stamp: Stamp) -> (State, Shared) {
        let buf = Shared::default();
        let state = State {
            types: Types::parse(&strings(types), false),
            stamp,
            sinks: vec![Sink::stream(Kind::Stdout, Box::new(buf.clone()))],
            facility: FACILITY_DAEMON,
        };
        (state, buf)
    }

    #[test]
    fn strftime_known_instants() {
        // Each checked against `date -u -d @T +FORMAT`.
        let iso = "%Y-%m-%dT%H:%M:%S";
        let rest = "%y %j %e %b %a %F %T %s %z %Z %%";
        let cases: &[(i64, &str, &str)] = &[
            (
                0,
                "1970-01-01T00:00:00",
                "70 001  1 Jan Thu 1970-01-01 00:00:00 0 +0000 UTC %",
            ),
            (
                951_782_400,
                "2000-02-29T00:00:00",
                "00 060 29 Feb Tue 2000-02-29 00:00:00 951782400 +0000 UTC %",
            ),
            (
                1_795_321_836,
                "2026-11-22T04:30:36",
                "26 326 22 Nov Sun 2026-11-22 04:30:36 1795321836 +0000 UTC %",
            ),
            (
                -1,
                "1969-12-31T23:59:59",
                "69 365 31 Dec Wed 1969-12-31 23:59:59 -1 +0000 UTC %",
            ),
            (
                4_107_542_400,
                "2100-03-01T00:00:00",
                "00 060  1 Mar Mon 2100-03-01 00:00:00 4107542400 +0000 UTC %",
            ),
        ];
        for &(t, want_iso, want_rest) in cases {
            assert_eq!(strftime(iso, t), want_iso, "t = {t}");
            assert_eq!(strftime(rest, t), want_rest, "t = {t}");
        }
    }

    #[test]
    fn strftime_passes_unknown_sequences_through() {
        assert_eq!(strftime("%Q|%k|x%", 0), "%Q|%k|x%");
        assert_eq!(strftime("no specs", 0), "no specs");
        assert_eq!(strftime("%%Y", 0), "%Y");
        assert_eq!(strftime("%", 0), "%");
        assert_eq!(strftime("é%Hé", 3600), "é01é");
    }

    #[test]
    fn civil_from_days_round_trips_every_day_for_centuries() {
        // Walk day by day from 1900-01-01 to 2200-12-31, checking against a naive calendar.
        let month_len = |y: i64, m: u32| match m {
            2 if is_leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let (mut y, mut m, mut d) = (1900i64, 1u32, 1u32);
        let start = -25_567; // 1900-01-01
        let mut checked = 0;
        for days in start..start + 301 * 366 {
            if y > 2200 {
                break;
            }
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            checked += 1;
            d += 1;
            if d > month_len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert!(checked > 100_000);
    }

    #[test]
    fn type_filtering_table() {
        use Level::*;
        // (log_type lines, verbose, level, target, written?)
        let table: &[(&[&str], bool, Level, &str, bool)] = &[
            // Defaults: error, warning, notice, information.
            (&[], false, Error, "midge::net", true),
            (&[], false, Warn, "midge::net", true),
            (&[], false, Info, "midge::broker", true),
            (&[], false, Debug, "midge::broker", false),
            (&[], false, Trace, "midge::broker", false),
            (&[], false, Info, "subscribe", false),
            (&[], false, Info, "unsubscribe", false),
            // -v / RUST_LOG=debug: everything, whatever the config says.
            (&["none"], true, Debug, "midge::broker", true),
            (&["none"], true, Trace, "midge", true),
            (&["error"], true, Info, "subscribe", true),
            (&[], true, Info, "unsubscribe", true),
            // Only what is asked for.
            (&["error"], false, Error, "midge", true),
            (&["error"], false, Warn, "midge", false),
            (&["warning"], false, Warn, "midge", true),
            (&["warning"], false, Error, "midge", false),
            (&["notice"], false, Info, "midge", true),
            (&["information"], false, Info, "midge", true),
            (&["information"], false, Debug, "midge", false),
            (&["debug"], false, Debug, "midge::mqtt", true),
            (&["debug"], false, Trace, "midge::mqtt", true),
            (&["debug"], false, Debug, "mio::poll", true),
            (&["debug"], false, Trace, "mio::poll", false),
            (&["debug"], false, Info, "midge", false),
            (&["debug"], false, Info, "subscribe", false),
            (&["subscribe"], false, Info, "subscribe", true),
            (&["subscribe"], false, Info, "unsubscribe", false),
            (&["subscribe"], false, Info, "midge", false),
            (&["unsubscribe"], false, Info, "unsubscribe", true),
            (&["unsubscribe"], false, Info, "subscribe", false),
            (&["websockets"], false, Info, "websockets", true),
            (&["information"], false, Info, "websockets", false),
            // all / none, in order.
            (&["all"], false, Trace, "midge", true),
            (&["all"], false, Info, "subscribe", true),
            (&["none"], false, Error, "midge", false),
            (&["all", "none"], false, Error, "midge", false),
            (&["all", "none", "warning"], false, Warn, "midge", true),
            (&["all", "none", "warning"], false, Error, "midge", false),
            (&["none", "all"], false, Debug, "midge", true),
        ];
        for &(types, verbose, level, target, want) in table {
            let t = Types::parse(&strings(types), verbose);
            assert_eq!(
                t.enabled(level, target),
                want,
                "log_type {types:?} verbose {verbose}: {level} {target}"
            );
            if want {
                assert!(
                    level <= t.max_level(),
                    "max level {} hides {level} for {types:?}",
                    t.max_level()
                );
            }
        }
    }

    #[test]
    fn max_level_follows_types() {
        let max = |t: &[&str]| Types::parse(&strings(t), false).max_level();
        assert_eq!(max(&[]), LevelFilter::Info);
        assert_eq!(max(&["none"]), LevelFilter::Off);
        assert_eq!(max(&["error"]), LevelFilter::Error);
        assert_eq!(max(&["error", "warning"]), LevelFilter::Warn);
        assert_eq!(max(&["subscribe"]), LevelFilter::Info);
        assert_eq!(max(&["debug"]), LevelFilter::Trace);
        assert_eq!(Types::parse(&[], true).max_level(), LevelFilter::Trace);
    }

    #[test]
    fn rust_log_debug_or_trace_means_all() {
        for v in ["debug", "trace", "DEBUG", " trace\n"] {
            assert!(rust_log_wants_all(Some(v)), "{v:?}");
        }
        for v in ["info", "midge=debug", "debug,mio=off", "", "warn"] {
            assert!(!rust_log_wants_all(Some(v)), "{v:?}");
        }
        assert!(!rust_log_wants_all(None));
    }

    #[test]
    fn timestamps_prefix_lines() {
        let (s, buf) = captured(&[], Stamp::Unix);
        s.log(
            Level::Info,
            "midge",
            &format_args!("New connection from 127.0.0.1:5000 on port 1883."),
            1_795_321_836,
        );
        assert_eq!(
            buf.text(),
            "1795321836: New connection from 127.0.0.1:5000 on port 1883.\n"
        );

        let (s, buf) = captured(&[], Stamp::None);
        s.log(Level::Warn, "midge", &format_args!("plain"), 5);
        assert_eq!(buf.text(), "plain\n");

        let (s, buf) = captured(&[], Stamp::Format("%Y-%m-%dT%H:%M:%S".into()));
        s.log(Level::Error, "midge", &format_args!("x {}", 1), 951_782_400);
        assert_eq!(buf.text(), "2000-02-29T00:00:00: x 1\n");
    }

    #[test]
    fn filtered_records_are_not_written() {
        let (s, buf) = captured(&["error"], Stamp::None);
        s.log(Level::Info, "midge", &format_args!("hidden"), 0);
        s.log(Level::Info, "subscribe", &format_args!("hidden too"), 0);
        s.log(Level::Error, "midge", &format_args!("shown"), 0);
        assert_eq!(buf.text(), "shown\n");
    }

    #[test]
    fn stamp_from_options() {
        let stamp = |timestamp, fmt: Option<&str>| {
            let o = LogOptions {
                dests: vec![LogDest::None],
                timestamp,
                timestamp_format: fmt.map(str::to_string),
                ..LogOptions::default()
            };
            State::new(&o).unwrap().stamp
        };
        assert_eq!(stamp(true, None), Stamp::Unix);
        assert_eq!(stamp(false, None), Stamp::None);
        assert_eq!(stamp(false, Some("%F")), Stamp::None);
        assert_eq!(stamp(true, Some("%F")), Stamp::Format("%F".into()));
    }

    fn kinds(o: &LogOptions) -> Vec<Kind> {
        State::new(o)
            .unwrap()
            .sinks
            .iter()
            .map(|s| s.kind.clone())
            .collect()
    }

    #[test]
    fn destinations() {
        let dir = TempDir::new();
        let file = dir.0.join("a.log");
        let other = dir.0.join("b.log");
        let f = |p: &Path| LogDest::File(p.to_str().unwrap().to_string());
        let with = |dests: Vec<LogDest>| LogOptions {
            dests,
            syslog_socket: dir.0.join("no-such-socket"),
            ..LogOptions::default()
        };
        use LogDest as D;
        assert_eq!(kinds(&with(vec![])), vec![Kind::Stderr]);
        assert_eq!(kinds(&with(vec![D::None])), vec![]);
        assert_eq!(kinds(&with(vec![D::Topic])), vec![]);
        assert_eq!(
            kinds(&with(vec![D::Stdout, D::Stderr, D::Stdout, D::Topic])),
            vec![Kind::Stdout, Kind::Stderr]
        );
        assert_eq!(
            kinds(&with(vec![D::Stdout, D::None, D::Stderr])),
            vec![Kind::Stderr]
        );
        // Only one file: the last.
        assert_eq!(
            kinds(&with(vec![f(&file), D::Stdout, f(&other)])),
            vec![Kind::Stdout, Kind::File(other.clone())]
        );
        // No syslog socket: stderr instead, once.
        assert_eq!(kinds(&with(vec![D::Syslog])), vec![Kind::Stderr]);
        assert_eq!(kinds(&with(vec![D::Stderr, D::Syslog])), vec![Kind::Stderr]);
    }

    #[test]
    fn file_destination_appends_whole_lines() {
        let dir = TempDir::new();
        let path = dir.0.join("midge.log");
        std::fs::write(&path, "old line\n").unwrap();
        let o = LogOptions {
            dests: vec![LogDest::File(path.to_str().unwrap().to_string())],
            ..LogOptions::default()
        };
        let s = State::new(&o).unwrap();
        s.log(Level::Info, "midge", &format_args!("first"), 10);
        s.log(Level::Debug, "midge", &format_args!("not logged"), 11);
        s.log(Level::Error, "midge", &format_args!("second {}", 2), 12);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "old line\n10: first\n12: second 2\n"
        );

        // Created when missing.
        let fresh = dir.0.join("fresh.log");
        let o = LogOptions {
            dests: vec![LogDest::File(fresh.to_str().unwrap().to_string())],
            timestamp: false,
            ..LogOptions::default()
        };
        State::new(&o)
            .unwrap()
            .log(Level::Warn, "midge", &format_args!("hello"), 0);
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "hello\n");
    }

    #[test]
    fn unopenable_file_is_an_error() {
        let dir = TempDir::new();
        let bad = dir.0.join("no-such-dir").join("midge.log");
        let o = LogOptions {
            dests: vec![LogDest::File(bad.to_str().unwrap().to_string())],
            ..LogOptions::default()
        };
        let e = State::new(&o).err().expect("opening must fail");
        assert!(
            e.starts_with(&format!("Unable to open log file {}", bad.display())),
            "{e}"
        );
        // A directory cannot be appended to either.
        let o = LogOptions {
            dests: vec![LogDest::File(dir.0.to_str().unwrap().to_string())],
            ..LogOptions::default()
        };
        assert!(State::new(&o).is_err());
    }

    #[test]
    fn log_facility_selects_local0_to_local7() {
        let facility = |f| {
            State::new(&LogOptions {
                facility: f,
                ..LogOptions::default()
            })
            .unwrap()
            .facility
        };
        assert_eq!(facility(None), 3 << 3); // daemon
        assert_eq!(facility(Some(0)), 16 << 3); // local0
        assert_eq!(facility(Some(7)), 23 << 3); // local7
    }

    #[test]
    fn syslog_datagram_format() {
        let d = syslog_datagram(
            FACILITY_DAEMON | syslog_severity(Level::Info, "midge"),
            1_795_321_836,
            42,
            &format_args!("New client connected."),
        );
        assert_eq!(d, "<30>Nov 22 04:30:36 midge[42]: New client connected.");
        let d = syslog_datagram(
            FACILITY_DAEMON | syslog_severity(Level::Error, "midge"),
            0,
            7,
            &format_args!("x"),
        );
        assert_eq!(d, "<27>Jan  1 00:00:00 midge[7]: x");
        assert_eq!(syslog_severity(Level::Warn, "midge"), 4);
        assert_eq!(syslog_severity(Level::Info, "subscribe"), 5);
        assert_eq!(syslog_severity(Level::Info, "unsubscribe"), 5);
        assert_eq!(syslog_severity(Level::Debug, "midge"), 7);
        assert_eq!(syslog_severity(Level::Trace, "midge"), 7);
    }

    #[test]
    fn syslog_destination_sends_datagrams() {
        let dir = TempDir::new();
        let sock_path = dir.0.join("log.sock");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let o = LogOptions {
            dests: vec![LogDest::Syslog],
            types: strings(&["all"]),
            syslog_socket: sock_path.clone(),
            ..LogOptions::default()
        };
        let s = State::new(&o).unwrap();
        assert_eq!(
            s.sinks.iter().map(|s| s.kind.clone()).collect::<Vec<_>>(),
            vec![Kind::Syslog]
        );
        s.log(Level::Warn, "midge", &format_args!("careful"), 0);
        s.log(
            Level::Info,
            "subscribe",
            &format_args!("client 1 a/b"),
            86_400 * 40 + 3_661,
        );
        let pid = std::process::id();
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<28>Jan  1 00:00:00 midge[{pid}]: careful")
        );
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<29>Feb 10 01:01:01 midge[{pid}]: client 1 a/b")
        );

        // The daemon restarts (new socket at the same path): midge reconnects.
        drop(server);
        std::fs::remove_file(&sock_path).unwrap();
        let server = UnixDatagram::bind(&sock_path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.log(Level::Error, "midge", &format_args!("again"), 0);
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!("<27>Jan  1 00:00:00 midge[{pid}]: again")
        );
    }

    #[test]
    fn options_from_config() {
        let mut cfg = Config::default();
        cfg.log_dest = vec![LogDest::Stdout, LogDest::File("/tmp/x.log".into())];
        cfg.log_type = strings(&["error", "subscribe"]);
        cfg.log_timestamp = false;
        cfg.log_timestamp_format = Some("%F".into());
        let o = LogOptions::from_config(&cfg, true);
        assert_eq!(
            o,
            LogOptions {
                dests: cfg.log_dest.clone(),
                types: cfg.log_type.clone(),
                verbose: true,
                timestamp: false,
                timestamp_format: Some("%F".into()),
                syslog_socket: PathBuf::from("/dev/log"),
                facility: None,
            }
        );
        let d = LogOptions::from_config(&Config::default(), false);
        assert_eq!(d, LogOptions::default());
    }
}
