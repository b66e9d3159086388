//! mosquitto.conf, parsed from a `&str`.
//!
//! Each line is `option value...`; `#` starts a comment line; blank lines are skipped. Options
//! are looked up in one table, [`OPTIONS`], which says where each belongs (global, listener, or
//! security, which follows `per_listener_settings`). An unknown option, a value that does not
//! parse, a misplaced option, or an option midge does not support yet is an error naming the
//! file and line, so start-up stops before any socket is opened. Reading files (`include_dir`)
//! happens through a caller-supplied function, so the parser itself does no IO.

mod bridge;

use std::fmt;

use crate::broker;
use crate::mqtt::QoS;

/// Which address family a listener uses (`socket_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Ipv4,
    Ipv6,
}

/// Authentication and authorisation settings: global, or per listener when
/// `per_listener_settings true`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// As written; the default depends on whether listeners are configured.
    pub allow_anonymous: Option<bool>,
    pub allow_zero_length_clientid: Option<bool>,
    pub auto_id_prefix: Option<String>,
    pub password_file: Option<String>,
    pub acl_file: Option<String>,
}

/// One `listener` block (or the default listener set by `port`/`bind_address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// 0 asks the system for a free port (the log says which).
    pub port: u16,
    /// Address or host name to bind; `None` binds every address, IPv4 and IPv6.
    pub bind: Option<String>,
    pub bind_interface: Option<String>,
    /// -1: no limit.
    pub max_connections: i64,
    pub socket_domain: Option<Domain>,
    pub mount_point: Option<String>,
    pub use_username_as_clientid: bool,
    pub max_qos: QoS,
    pub max_topic_alias: u16,
    /// `protocol websockets`: MQTT over WebSockets (wss with TLS settings).
    pub websockets: bool,
    /// Files served over HTTP on a WebSocket listener.
    pub http_dir: Option<String>,
    /// Used when `per_listener_settings` is true.
    pub security: Security,
    pub tls: Tls,
}

/// Where a client's user name comes from on a TLS listener with client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertUsername {
    /// The CONNECT packet's, checked against the password file as usual.
    #[default]
    Connect,
    /// `use_identity_as_username`: the certificate's first CN; no password needed.
    CommonName,
    /// `use_subject_as_username`: the whole subject, RFC 2253 form; no password needed.
    Subject,
}

/// A listener's TLS settings, with mosquitto's names and meanings. `certfile` and `keyfile`
/// together make the listener a TLS listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// Trusted CAs for client certificates: a PEM file, and/or a directory of PEM files.
    pub cafile: Option<String>,
    pub capath: Option<String>,
    /// The server's certificate (a chain is fine: leaf first) and its private key, PEM.
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    /// Revoked client certificates, PEM.
    pub crlfile: Option<String>,
    pub require_certificate: bool,
    pub username: CertUsername,
    /// `tls_version tlsv1.3`: TLS 1.3 only; otherwise 1.2 and 1.3.
    pub tls13_only: bool,
    /// `ciphers`: the TLS 1.2 suites allowed, by IANA name (all when `None`).
    pub ciphers: Option<Vec<String>>,
    /// `ciphers_tls1.3`: the TLS 1.3 suites allowed, by IANA name (all when `None`).
    pub ciphers_tls13: Option<Vec<String>>,
    /// Where each option was set ("file:line"), for errors found when its file is read.
    pub at: Vec<(&'static str, String)>,
}

impl Tls {
    /// Whether the listener speaks TLS (`certfile` and `keyfile` given).
    pub fn enabled(&self) -> bool {
        self.certfile.is_some() && self.keyfile.is_some()
    }

    /// "file:line: " of the last time `option` was set, or "" if it never was.
    pub fn at(&self, option: &str) -> String {
        self.at
            .iter()
            .rev()
            .find(|(o, _)| *o == option)
            .map(|(_, at)| format!("{at}: "))
            .unwrap_or_default()
    }
}

/// The TLS 1.2 suites midge's TLS library has: (OpenSSL name, IANA name). A `ciphers` name
/// outside this list is an error rather than silently weaker or stronger than asked.
pub const TLS12_SUITES: &[(&str, &str)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The TLS 1.3 suites: (OpenSSL name, IANA name as the TLS library spells it).
pub const TLS13_SUITES: &[(&str, &str)] = &[
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
];

/// `ciphers`: an OpenSSL cipher list (`:`, `,` or space separated) over the TLS 1.2 suites.
/// Names (OpenSSL or IANA) and the keywords DEFAULT, ALL, HIGH, ECDHE/EECDH/kECDHE, AESGCM,
/// AES128, AES256, CHACHA20, aRSA/RSA, aECDSA/ECDSA (joined with `+` to intersect) select;
/// `!X` or `-X` removes; `+X` and `@...` (ordering, security level) change nothing here, since
/// every suite offered is strong. A name that selects nothing midge has is an error.
fn tls12_ciphers(list: &str) -> Result<Vec<String>, String> {
    let all = || TLS12_SUITES.iter().map(|(o, _)| *o);
    let select = |word: &str| -> Option<Vec<&'static str>> {
        if let Some((o, _)) = TLS12_SUITES
            .iter()
            .find(|(o, i)| o.eq_ignore_ascii_case(word) || i.eq_ignore_ascii_case(word))
        {
            return Some(vec![o]);
        }
        let mut chosen: Vec<&'static str> = all().collect();
        for part in word.split('+') {
            let keep: fn(&str) -> bool = match part {
                "DEFAULT" | "ALL" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "TLSv1.2" => |_| true,
                "AESGCM" => |o| o.contains("GCM"),
                "AES128" => |o| o.contains("AES128"),
                "AES256" => |o| o.contains("AES256"),
                "AES" => |o| o.contains("AES"),
                "CHACHA20" => |o| o.contains("CHACHA20"),
                "aRSA" | "RSA" => |o| o.contains("-RSA-"),
                "aECDSA" | "ECDSA" => |o| o.contains("-ECDSA-"),
                _ => return None,
            };
            chosen.retain(|o| keep(o));
        }
        Some(chosen)
    };
    let mut out: Vec<&'static str> = Vec::new();
    for word in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        if word.starts_with('@') || word.starts_with('+') {
            continue;
        }
        if let Some(neg) = word.strip_prefix('!').or_else(|| word.strip_prefix('-')) {
            // Removing what midge never offers (aNULL, RC4, SSLv2...) is already true.
            if let Some(gone) = select(neg) {
                out.retain(|o| !gone.contains(o));
            }
            continue;
        }
        match select(word) {
            Some(v) => {
                for o in v {
                    if !out.contains(&o) {
                        out.push(o);
                    }
                }
            }
            None => {
                return Err(format!(
                    "cipher '{word}' is not available in midge's TLS library (rustls); the TLS 1.2 \
                     ciphers it has are {}",
                    all().collect::<Vec<_>>().join(":")
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(format!("'{list}' leaves no TLS 1.2 cipher"));
    }
    Ok(out
        .into_iter()
        .filter_map(|o| TLS12_SUITES.iter().find(|(n, _)| *n == o))
        .map(|(_, iana)| iana.to_string())
        .collect())
}

/// `ciphers_tls1.3`: a `:` separated list of TLS 1.3 suite names.
fn tls13_ciphers(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for word in list.split(':').filter(|w| !w.is_empty()) {
        match TLS13_SUITES
            .iter()
            .find(|(o, i)| o.eq_ignore_ascii_case(word) || i.eq_ignore_ascii_case(word))
        {
            Some((_, iana)) => out.push(iana.to_string()),
            None => {
                return Err(format!(
                    "ciphersuite '{word}' is not available in midge's TLS library (rustls); the \
                     TLS 1.3 ciphersuites it has are {}",
                    TLS13_SUITES
                        .iter()
                        .map(|(o, _)| *o)
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("expects at least one ciphersuite".into());
    }
    Ok(out)
}

impl Listener {
    pub fn new(port: u16, bind: Option<String>) -> Listener {
        Listener {
            port,
            bind,
            bind_interface: None,
            max_connections: -1,
            socket_domain: None,
            mount_point: None,
            use_username_as_clientid: false,
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            websockets: false,
            http_dir: None,
            security: Security::default(),
            tls: Tls::default(),
        }
    }
}

/// Where log lines go (`log_dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    Stdout,
    Stderr,
    File(String),
    Syslog,
    Topic,
    None,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listeners: Vec<Listener>,
    /// Set by the deprecated `port` and `bind_address`, and where listener options written
    /// before the first `listener` go.
    pub default_listener: Option<Listener>,
    pub per_listener_settings: bool,
    pub security: Security,
    /// The core's settings, options without a place of their own here (`clientid_prefixes`,
    /// `connection_messages`, `sys_interval`, `persistent_client_expiration`, limits) included.
    pub broker: broker::Config,
    pub log_dest: Vec<LogDest>,
    pub log_type: Vec<String>,
    pub log_timestamp: bool,
    pub log_timestamp_format: Option<String>,
    /// `log_facility N`: syslog facility local0..local7 (mosquitto's option).
    pub log_facility: Option<u8>,
    pub pid_file: Option<String>,
    pub user: Option<String>,
    pub persistence: bool,
    pub persistence_location: Option<String>,
    pub persistence_file: String,
    pub autosave_interval: u32,
    pub autosave_on_changes: bool,
    pub set_tcp_nodelay: bool,
    /// Bytes of HTTP request head a WebSocket client may send (0: mosquitto's 1024).
    pub websockets_headers_size: u16,
    /// libwebsockets log levels in mosquitto (a bit mask: 1 error, 2 warning, 4 notice, 8 info);
    /// midge logs WebSocket refusals and protocol errors under `log_type websockets` at those.
    pub websockets_log_level: u32,
    /// Things said about the configuration that do not stop start-up ("file:line: why").
    pub warnings: Vec<String>,
    /// Whether a security option has been seen (so `per_listener_settings` can no longer come).
    seen_security: bool,
    /// "file:line" of the option being parsed.
    at: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Vec::new(),
            default_listener: None,
            per_listener_settings: false,
            security: Security::default(),
            broker: broker::Config {
                sys_interval: 10,
                ..broker::Config::default()
            },
            log_dest: Vec::new(),
            log_type: Vec::new(),
            log_timestamp: true,
            log_timestamp_format: None,
            log_facility: None,
            pid_file: None,
            user: None,
            persistence: false,
            persistence_location: None,
            persistence_file: "midge.db".into(),
            autosave_interval: 1800,
            autosave_on_changes: false,
            // midge writes whole batches, so Nagle's algorithm only adds delay: on unless the
            // configuration says `set_tcp_nodelay false`.
            set_tcp_nodelay: true,
            websockets_headers_size: 0,
            websockets_log_level: 3,
            warnings: Vec::new(),
            seen_security: false,
            at: String::new(),
        }
    }
}

impl Config {
    /// No listener configured: mosquitto 2.0's "local only mode" (127.0.0.1 and ::1, anonymous
    /// clients allowed unless the configuration says otherwise).
    pub fn local_only(&self) -> bool {
        self.listeners.is_empty() && self.default_listener.is_none()
    }

    /// The listeners to open: the configured ones, with the default listener first if
    /// `port`/`bind_address` set one.
    pub fn all_listeners(&self) -> Vec<Listener> {
        let mut v: Vec<Listener> = self.default_listener.iter().cloned().collect();
        v.extend(self.listeners.iter().cloned());
        v
    }

    /// The security settings that apply to `listener`.
    pub fn security_for<'a>(&'a self, listener: Option<&'a Listener>) -> &'a Security {
        match listener {
            Some(l) if self.per_listener_settings => &l.security,
            _ => &self.security,
        }
    }

    /// The checks that need the whole configuration (every file read), as mosquitto's
    /// `config__check`: TLS settings that contradict each other are errors naming the line;
    /// ones that do nothing are warnings added to `warnings`.
    pub fn check(&mut self) -> Result<(), Error> {
        let mut warnings = Vec::new();
        for l in self.all_listeners() {
            let t = &l.tls;
            let located = |option: &str, msg: String| {
                let at = t.at(option);
                let (file, line) = match at.trim_end_matches(": ").rsplit_once(':') {
                    Some((f, n)) => (f.to_string(), n.parse().unwrap_or(0)),
                    None => ("config".to_string(), 0),
                };
                Error { file, line, msg }
            };
            let port = l.port;
            match (&t.certfile, &t.keyfile) {
                (Some(_), None) => {
                    return Err(located(
                        "certfile",
                        format!(
                            "listener {port}: certfile without keyfile; both must be given to \
                             enable TLS (as in mosquitto)"
                        ),
                    ))
                }
                (None, Some(_)) => {
                    return Err(located(
                        "keyfile",
                        format!(
                            "listener {port}: keyfile without certfile; both must be given to \
                             enable TLS (as in mosquitto)"
                        ),
                    ))
                }
                _ => {}
            }
            if !t.enabled() {
                if let Some((option, at)) = t.at.first() {
                    warnings.push(format!(
                        "{at}: {option} has no effect: listener {port} has no certfile and \
                         keyfile, so it is not a TLS listener and its traffic is not encrypted"
                    ));
                }
                continue;
            }
            if !cfg!(feature = "tls") {
                return Err(located(
                    "certfile",
                    "this midge was built without TLS support (cargo feature `tls`)".into(),
                ));
            }
            if t.require_certificate && t.cafile.is_none() && t.capath.is_none() {
                return Err(located(
                    "require_certificate",
                    format!(
                        "listener {port}: require_certificate needs cafile or capath, the CAs \
                         that client certificates must be signed by"
                    ),
                ));
            }
            if !t.require_certificate {
                if t.crlfile.is_some() {
                    warnings.push(format!(
                        "{}crlfile has no effect without require_certificate true",
                        t.at("crlfile")
                    ));
                }
                let which = match t.username {
                    CertUsername::Connect => None,
                    CertUsername::CommonName => Some("use_identity_as_username"),
                    CertUsername::Subject => Some("use_subject_as_username"),
                };
                if let Some(option) = which {
                    warnings.push(format!(
                        "{}{option} without require_certificate true: clients are not asked \
                         for a certificate, so every client on listener {port} is refused (as \
                         in mosquitto)",
                        t.at(option)
                    ));
                }
            }
            if t.tls13_only && t.ciphers.is_some() {
                warnings.push(format!(
                    "{}ciphers has no effect: tls_version tlsv1.3 allows no TLS 1.2 cipher",
                    t.at("ciphers")
                ));
            }
        }
        self.warnings.extend(warnings);
        Ok(())
    }

    /// Whether anonymous clients are allowed under `sec` (mosquitto 2.0: only in local only
    /// mode unless `allow_anonymous true`).
    pub fn allow_anonymous(&self, sec: &Security) -> bool {
        sec.allow_anonymous.unwrap_or(self.local_only())
    }
}

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub file: String,
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.msg)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.msg)
        }
    }
}

impl std::error::Error for Error {}

/// Where an option applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    /// Applies to the listener being configured (the default listener before any `listener`).
    Listener,
    /// Global, or the current listener's when `per_listener_settings true`.
    Security,
}

type Setter = fn(&mut Config, &[&str]) -> Result<(), String>;

/// The current listener: the last `listener`, or the default listener before any.
fn cur(c: &mut Config) -> &mut Listener {
    if c.listeners.is_empty() {
        c.default_listener
            .get_or_insert_with(|| Listener::new(1883, None))
    } else {
        let i = c.listeners.len() - 1;
        &mut c.listeners[i]
    }
}

fn sec(c: &mut Config) -> &mut Security {
    if c.per_listener_settings {
        &mut cur(c).security
    } else {
        &mut c.security
    }
}

/// Every option midge reads, with mosquitto 2.0's meaning.
const OPTIONS: &[(&str, Scope, Setter)] = &[
    ("listener", Scope::Global, |c, v| {
        let (port, bind) = match v {
            [p] => (p, None),
            [p, addr] => (p, Some(addr.to_string())),
            _ => return Err("expects a port and an optional bind address".into()),
        };
        c.listeners.push(Listener::new(number(port)?, bind));
        Ok(())
    }),
    // Deprecated: they configure the default listener.
    ("port", Scope::Global, |c, v| {
        let p = number(one(v)?)?;
        c.default_listener
            .get_or_insert_with(|| Listener::new(1883, None))
            .port = p;
        Ok(())
    }),
    ("bind_address", Scope::Global, |c, v| {
        let a = one(v)?.to_string();
        c.default_listener
            .get_or_insert_with(|| Listener::new(1883, None))
            .bind = Some(a);
        Ok(())
    }),
    ("bind_interface", Scope::Listener, |c, v| {
        cur(c).bind_interface = Some(one(v)?.to_string());
        Ok(())
    }),
    ("max_connections", Scope::Listener, |c, v| {
        let n: i64 = number(one(v)?)?;
        cur(c).max_connections = if n < 0 { -1 } else { n };
        Ok(())
    }),
    ("socket_domain", Scope::Listener, |c, v| {
        cur(c).socket_domain = Some(match one(v)? {
            "ipv4" => Domain::Ipv4,
            "ipv6" => Domain::Ipv6,
            other => return Err(format!("'{other}' is not ipv4 or ipv6")),
        });
        Ok(())
    }),
    ("mount_point", Scope::Listener, |c, v| {
        let m = one(v)?;
        if crate::mqtt::topic::validate_name(m).is_err() {
            return Err(format!("'{m}' is not a valid topic prefix"));
        }
        cur(c).mount_point = Some(m.to_string());
        Ok(())
    }),
    ("use_username_as_clientid", Scope::Listener, |c, v| {
        cur(c).use_username_as_clientid = boolean(one(v)?)?;
        Ok(())
    }),
    ("max_qos", Scope::Listener, |c, v| {
        let n: u8 = number(one(v)?)?;
        cur(c).max_qos = QoS::from_u8(n).ok_or("must be 0, 1 or 2")?;
        Ok(())
    }),
    ("max_topic_alias", Scope::Listener, |c, v| {
        cur(c).max_topic_alias = number(one(v)?)?;
        Ok(())
    }),
    ("protocol", Scope::Listener, |c, v| {
        cur(c).websockets = match one(v)? {
            "mqtt" => false,
            "websockets" => true,
            other => return Err(format!("'{other}' is not mqtt or websockets")),
        };
        Ok(())
    }),
    ("http_dir", Scope::Listener, |c, v| {
        cur(c).http_dir = Some(rest(v)?);
        Ok(())
    }),
    ("websockets_headers_size", Scope::Global, |c, v| {
        c.websockets_headers_size =
            number(one(v)?).map_err(|_| "must be between 0 and 65535 inclusive".to_string())?;
        Ok(())
    }),
    ("websockets_log_level", Scope::Global, |c, v| {
        c.websockets_log_level = number(one(v)?)?;
        Ok(())
    }),
    ("cafile", Scope::Listener, |c, v| tls_path(c, "cafile", v)),
    ("capath", Scope::Listener, |c, v| tls_path(c, "capath", v)),
    ("certfile", Scope::Listener, |c, v| {
        tls_path(c, "certfile", v)
    }),
    ("keyfile", Scope::Listener, |c, v| tls_path(c, "keyfile", v)),
    ("crlfile", Scope::Listener, |c, v| tls_path(c, "crlfile", v)),
    ("require_certificate", Scope::Listener, |c, v| {
        let b = boolean(one(v)?)?;
        tls_at(c, "require_certificate").require_certificate = b;
        Ok(())
    }),
    // As in mosquitto, use_identity_as_username wins when both are set.
    ("use_identity_as_username", Scope::Listener, |c, v| {
        let b = boolean(one(v)?)?;
        let t = tls_at(c, "use_identity_as_username");
        if b {
            t.username = CertUsername::CommonName;
        } else if t.username == CertUsername::CommonName {
            t.username = CertUsername::Connect;
        }
        Ok(())
    }),
    ("use_subject_as_username", Scope::Listener, |c, v| {
        let b = boolean(one(v)?)?;
        let t = tls_at(c, "use_subject_as_username");
        match (b, t.username) {
            (true, CertUsername::Connect) => t.username = CertUsername::Subject,
            (false, CertUsername::Subject) => t.username = CertUsername::Connect,
            _ => {}
        }
        Ok(())
    }),
    ("tls_version", Scope::Listener, |c, v| {
        let at = c.at.clone();
        let only13 = match one(v)? {
            "tlsv1.3" => true,
            "tlsv1.2" => false,
            "tlsv1.1" => {
                c.warnings.push(format!(
                    "{at}: tls_version tlsv1.1: midge's TLS library has no TLS 1.1; the minimum \
                     is TLS 1.2"
                ));
                false
            }
            other => {
                return Err(format!(
                    "unsupported tls_version '{other}' (tlsv1.3, tlsv1.2 or tlsv1.1)"
                ))
            }
        };
        tls_at(c, "tls_version").tls13_only = only13;
        Ok(())
    }),
    ("ciphers", Scope::Listener, |c, v| {
        let list = tls12_ciphers(&v.join(" "))?;
        tls_at(c, "ciphers").ciphers = Some(list);
        Ok(())
    }),
    ("ciphers_tls1.3", Scope::Listener, |c, v| {
        let list = tls13_ciphers(one(v)?)?;
        tls_at(c, "ciphers_tls1.3").ciphers_tls13 = Some(list);
        Ok(())
    }),
    ("tls_keyform", Scope::Listener, |_, v| match one(v)? {
        "pem" => Ok(()),
        "engine" => Err(
            "OpenSSL engines are not supported: midge's TLS library (rustls) \
             reads the key from keyfile (PEM)"
                .into(),
        ),
        other => Err(format!("'{other}' is not pem or engine")),
    }),
    ("tls_engine", Scope::Listener, |_, _| {
        Err(
            "OpenSSL engines are not supported: midge's TLS library (rustls) reads the key \
             from keyfile (PEM)"
                .into(),
        )
    }),
    ("tls_engine_kpass_sha1", Scope::Listener, |_, _| {
        Err(
            "OpenSSL engines are not supported: midge's TLS library (rustls) reads the key \
             from keyfile (PEM)"
                .into(),
        )
    }),
    ("psk_hint", Scope::Listener, |_, _| {
        Err(
            "pre-shared-key TLS is not supported: midge's TLS library (rustls) has no PSK \
             cipher suites; use certificates (certfile, keyfile)"
                .into(),
        )
    }),
    ("psk_file", Scope::Security, |_, _| {
        Err(
            "pre-shared-key TLS is not supported: midge's TLS library (rustls) has no PSK \
             cipher suites; use certificates (certfile, keyfile)"
                .into(),
        )
    }),
    ("dhparamfile", Scope::Listener, |c, v| {
        rest(v)?;
        let at = c.at.clone();
        c.warnings.push(format!(
            "{at}: dhparamfile ignored: midge's TLS uses elliptic-curve (ECDHE) key exchange, \
             which needs no DH parameters"
        ));
        Ok(())
    }),
    ("per_listener_settings", Scope::Global, |c, v| {
        if c.seen_security {
            return Err("must come before any security option (as in mosquitto)".into());
        }
        c.per_listener_settings = boolean(one(v)?)?;
        Ok(())
    }),
    ("allow_anonymous", Scope::Security, |c, v| {
        sec(c).allow_anonymous = Some(boolean(one(v)?)?);
        Ok(())
    }),
    ("allow_zero_length_clientid", Scope::Security, |c, v| {
        sec(c).allow_zero_length_clientid = Some(boolean(one(v)?)?);
        Ok(())
    }),
    ("auto_id_prefix", Scope::Security, |c, v| {
        let p = one(v)?;
        if p.len() > 50 {
            return Err("must be at most 50 characters".into());
        }
        sec(c).auto_id_prefix = Some(p.to_string());
        Ok(())
    }),
    ("password_file", Scope::Security, |c, v| {
        sec(c).password_file = Some(rest(v)?);
        Ok(())
    }),
    ("acl_file", Scope::Security, |c, v| {
        sec(c).acl_file = Some(rest(v)?);
        Ok(())
    }),
    ("clientid_prefixes", Scope::Global, |c, v| {
        c.broker.clientid_prefixes = Some(one(v)?.to_string());
        Ok(())
    }),
    // midge's own: seconds a new connection has to complete its CONNECT (mosquitto closes a
    // silent connection after 90 s, 1.5 x its initial 60 s keepalive). 0 is refused: a client
    // that never sends CONNECT must not hold a connection slot for ever.
    ("connect_timeout", Scope::Global, |c, v| {
        let n: u64 = number(one(v)?)?;
        if n == 0 || n > 3600 {
            return Err("must be between 1 and 3600 seconds".into());
        }
        c.broker.connect_timeout_ms = n * 1000;
        Ok(())
    }),
    ("max_keepalive", Scope::Global, |c, v| {
        c.broker.max_keepalive = number(one(v)?)?;
        Ok(())
    }),
    ("max_packet_size", Scope::Global, |c, v| {
        let n: usize = number(one(v)?)?;
        if n != 0 && n < 20 {
            return Err("must be 0 or at least 20 (as in mosquitto)".into());
        }
        c.broker.max_packet_size = n.min(crate::mqtt::MAX_REMAINING_LENGTH + 5);
        Ok(())
    }),
    ("message_size_limit", Scope::Global, |c, v| {
        let n: usize = number(one(v)?)?;
        if n > crate::mqtt::MAX_REMAINING_LENGTH {
            return Err(format!(
                "must be at most {}",
                crate::mqtt::MAX_REMAINING_LENGTH
            ));
        }
        c.broker.message_size_limit = n;
        Ok(())
    }),
    ("max_inflight_messages", Scope::Global, |c, v| {
        let n: u16 = number(one(v)?)?;
        c.broker.max_inflight_messages = n as usize;
        Ok(())
    }),
    ("max_inflight_bytes", Scope::Global, |c, v| {
        c.broker.max_inflight_bytes = number(one(v)?)?;
        Ok(())
    }),
    ("max_queued_messages", Scope::Global, |c, v| {
        c.broker.max_queued_messages = number(one(v)?)?;
        Ok(())
    }),
    ("max_queued_bytes", Scope::Global, |c, v| {
        c.broker.max_queued_bytes = number(one(v)?)?;
        Ok(())
    }),
    ("queue_qos0_messages", Scope::Global, |c, v| {
        c.broker.queue_qos0_messages = boolean(one(v)?)?;
        Ok(())
    }),
    ("retain_available", Scope::Global, |c, v| {
        c.broker.retain_available = boolean(one(v)?)?;
        Ok(())
    }),
    ("upgrade_outgoing_qos", Scope::Global, |c, v| {
        c.broker.upgrade_outgoing_qos = boolean(one(v)?)?;
        Ok(())
    }),
    // midge only: SUBSCRIBE refused by the ACL (mosquitto grants it, checking each delivery).
    ("acl_refuse_subscribe", Scope::Global, |c, v| {
        c.broker.acl_refuse_subscribe = boolean(one(v)?)?;
        Ok(())
    }),
    ("check_retain_source", Scope::Global, |c, v| {
        c.broker.check_retain_source = boolean(one(v)?)?;
        Ok(())
    }),
    ("set_tcp_nodelay", Scope::Global, |c, v| {
        c.set_tcp_nodelay = boolean(one(v)?)?;
        Ok(())
    }),
    ("connection_messages", Scope::Global, |c, v| {
        c.broker.connection_messages = boolean(one(v)?)?;
        Ok(())
    }),
    ("log_dest", Scope::Global, |c, v| {
        let d = match v {
            ["stdout"] => LogDest::Stdout,
            ["stderr"] => LogDest::Stderr,
            ["syslog"] => LogDest::Syslog,
            ["topic"] => LogDest::Topic,
            ["none"] => LogDest::None,
            ["file", ..] if v.len() > 1 => LogDest::File(v[1..].join(" ")),
            ["file"] => return Err("file needs a path".into()),
            ["dlt"] => return Err("'dlt' is not supported yet".into()),
            _ => {
                return Err(format!(
                    "'{}' is not stdout, stderr, file PATH, syslog, topic or none",
                    v.join(" ")
                ))
            }
        };
        c.log_dest.push(d);
        Ok(())
    }),
    ("log_type", Scope::Global, |c, v| {
        let t = one(v)?;
        const TYPES: &[&str] = &[
            "debug",
            "error",
            "warning",
            "notice",
            "information",
            "subscribe",
            "unsubscribe",
            "websockets",
            "none",
            "all",
        ];
        if !TYPES.contains(&t) {
            return Err(format!("unknown log type '{t}'"));
        }
        c.log_type.push(t.to_string());
        Ok(())
    }),
    ("log_timestamp", Scope::Global, |c, v| {
        c.log_timestamp = boolean(one(v)?)?;
        Ok(())
    }),
    ("log_facility", Scope::Global, |c, v| {
        let n: u8 = number(one(v)?)?;
        if n > 7 {
            return Err("must be 0 to 7 (syslog facility local0 to local7)".into());
        }
        c.log_facility = Some(n);
        Ok(())
    }),
    // Accepted and ignored with mosquitto 2.0's warning.
    ("retry_interval", Scope::Global, |c, v| {
        one(v)?;
        let at = c.at.clone();
        c.warnings.push(format!(
            "{at}: The retry_interval option is no longer available."
        ));
        Ok(())
    }),
    ("log_timestamp_format", Scope::Global, |c, v| {
        c.log_timestamp_format = Some(rest(v)?);
        Ok(())
    }),
    ("pid_file", Scope::Global, |c, v| {
        c.pid_file = Some(rest(v)?);
        Ok(())
    }),
    ("user", Scope::Global, |c, v| {
        c.user = Some(one(v)?.to_string());
        Ok(())
    }),
    ("sys_interval", Scope::Global, |c, v| {
        c.broker.sys_interval = number(one(v)?)?;
        Ok(())
    }),
    ("persistence", Scope::Global, |c, v| {
        c.persistence = boolean(one(v)?)?;
        Ok(())
    }),
    ("persistence_location", Scope::Global, |c, v| {
        c.persistence_location = Some(rest(v)?);
        Ok(())
    }),
    ("persistence_file", Scope::Global, |c, v| {
        c.persistence_file = rest(v)?;
        Ok(())
    }),
    ("autosave_interval", Scope::Global, |c, v| {
        c.autosave_interval = number(one(v)?)?;
        Ok(())
    }),
    ("autosave_on_changes", Scope::Global, |c, v| {
        c.autosave_on_changes = boolean(one(v)?)?;
        Ok(())
    }),
    ("persistent_client_expiration", Scope::Global, |c, v| {
        let secs = duration(one(v)?)?;
        c.broker.persistent_client_expiration = Some(secs.min(u32::MAX as u64 - 1) as u32);
        Ok(())
    }),
];

/// mosquitto options midge knows but does not implement yet: refused by name.
const NOT_YET: &[&str] = &[
    "plugin",
    "plugin_opt",
    "auth_plugin",
    "auth_opt",
    "auth_plugin_deny_special_chars",
    "allow_duplicate_messages",
    "memory_limit",
    "include_dir_nested",
];

/// The current listener's TLS settings, noting where `option` was set.
fn tls_at<'a>(c: &'a mut Config, option: &'static str) -> &'a mut Tls {
    let at = c.at.clone();
    let t = &mut cur(c).tls;
    t.at.push((option, at));
    t
}

fn tls_path(c: &mut Config, option: &'static str, v: &[&str]) -> Result<(), String> {
    let path = Some(rest(v)?);
    let t = tls_at(c, option);
    match option {
        "cafile" => t.cafile = path,
        "capath" => t.capath = path,
        "certfile" => t.certfile = path,
        "keyfile" => t.keyfile = path,
        _ => t.crlfile = path,
    }
    Ok(())
}

fn one<'a>(v: &[&'a str]) -> Result<&'a str, String> {
    match v {
        [x] => Ok(x),
        [] => Err("expects a value".into()),
        _ => Err("expects a single value".into()),
    }
}

/// A value that may contain spaces (paths, formats).
fn rest(v: &[&str]) -> Result<String, String> {
    if v.is_empty() {
        return Err("expects a value".into());
    }
    Ok(v.join(" "))
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a valid number here"))
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("'{s}' is not true or false")),
    }
}

/// `persistent_client_expiration`: an integer and one of h d w m y.
fn duration(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a duration like 2h, 14d, 1w, 2m or 1y");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).ok_or_else(bad)
}

/// Reads the files of an `include_dir`: the caller's IO, given the directory, returns the
/// names and contents of the files ending in `.conf`, or an error message.
pub type ReadDir<'a> = &'a mut dyn FnMut(&str) -> Result<Vec<(String, String)>, String>;

/// Parses `text`, the contents of `file`, into `cfg`. `read_dir` serves `include_dir`, which
/// only the main file may use.
pub fn parse(
    text: &str,
    file: &str,
    cfg: &mut Config,
    read_dir: Option<ReadDir<'_>>,
) -> Result<(), Error> {
    let mut read_dir = read_dir;
    for (i, raw) in text.lines().enumerate() {
        let err = |msg: String| Error {
            file: file.to_string(),
            line: i + 1,
            msg,
        };
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let Some(option) = words.next() else {
            continue;
        };
        let values: Vec<&str> = words.collect();
        if option == "include_dir" {
            let Some(rd) = read_dir.as_mut() else {
                return Err(err(
                    "include_dir is only allowed in the main configuration file".into(),
                ));
            };
            let dir = rest(&values).map_err(|m| err(format!("include_dir: {m}")))?;
            let mut files = rd(&dir).map_err(|m| err(format!("include_dir {dir}: {m}")))?;
            // mosquitto's order: alphabetical, upper case before lower case of the same letter.
            files.sort_by(|a, b| {
                let key = |s: &str| -> Vec<(char, bool)> {
                    s.chars()
                        .map(|c| (c.to_ascii_lowercase(), c.is_ascii_lowercase()))
                        .collect()
                };
                key(&a.0).cmp(&key(&b.0))
            });
            for (name, content) in files {
                parse(&content, &name, cfg, None)?;
            }
            continue;
        }
        if let Some(r) = bridge::option(cfg, option, &values) {
            r.map_err(|m| err(format!("{option}: {m}")))?;
            continue;
        }
        // The other names mosquitto 2.0 accepts for the same options.
        let canonical = match option {
            "maximum_qos" => "max_qos",
            "retained_persistence" => "persistence",
            o => o,
        };
        match OPTIONS.iter().find(|(name, _, _)| *name == canonical) {
            Some((_, scope, set)) => {
                cfg.at = format!("{file}:{}", i + 1);
                if *scope == Scope::Security {
                    cfg.seen_security = true;
                }
                set(cfg, &values).map_err(|m| err(format!("{option}: {m}")))?
            }
            None if NOT_YET.contains(&option) => {
                return Err(err(format!(
                    "option '{option}' is not supported by midge yet"
                )))
            }
            None => return Err(err(format!("unknown option '{option}'"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, Error> {
        let mut c = Config::default();
        parse(text, "test.conf", &mut c, None).map(|_| c)
    }

    #[test]
    fn mosquitto_option_aliases_mean_the_same() {
        // mosquitto 2.0's src/conf.c accepts these names too (checked against 2.0.20).
        let a = p("listener 1883\nmaximum_qos 1\nretained_persistence true\n").unwrap();
        let b = p("listener 1883\nmax_qos 1\npersistence true\n").unwrap();
        assert_eq!(a.listeners[0].max_qos, QoS::AtLeastOnce);
        assert_eq!(a.listeners[0].max_qos, b.listeners[0].max_qos);
        assert!(a.persistence && b.persistence);
        // retry_interval is accepted and ignored, with mosquitto's warning.
        let c = p("retry_interval 20\n").unwrap();
        assert_eq!(
            c.warnings,
            vec!["test.conf:1: The retry_interval option is no longer available."]
        );
        assert_eq!(p("log_facility 3\n").unwrap().log_facility, Some(3));
        assert!(p("log_facility 8\n").is_err());
    }

    #[test]
    fn the_seed_setup_parses() {
        let c = p("# comment\n\nlistener 1883\nallow_anonymous true\n").unwrap();
        assert_eq!(c.listeners, vec![Listener::new(1883, None)]);
        assert!(c.allow_anonymous(&c.security));
    }

    #[test]
    fn defaults_follow_mosquitto_2() {
        let c = p("").unwrap();
        assert!(c.local_only());
        assert!(c.allow_anonymous(&c.security));
        let c = p("listener 1883 0.0.0.0\n").unwrap();
        assert!(!c.local_only());
        assert!(!c.allow_anonymous(&c.security));
        assert_eq!(c.listeners[0].bind.as_deref(), Some("0.0.0.0"));
        assert_eq!(c.broker.max_inflight_messages, 20);
        assert_eq!(c.broker.max_queued_messages, 1000);
        // The deprecated port option also leaves local only mode.
        let c = p("port 1884\n").unwrap();
        assert!(!c.local_only());
        assert_eq!(c.all_listeners()[0].port, 1884);
    }

    #[test]
    fn every_supported_option_parses() {
        let text = "\
per_listener_settings false
allow_anonymous false
allow_zero_length_clientid false
auto_id_prefix dev-
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
clientid_prefixes C1-
max_keepalive 60
connect_timeout 5
max_packet_size 1000
message_size_limit 1024
max_inflight_messages 5
max_inflight_bytes 100000
max_queued_messages 0
max_queued_bytes 2000000
queue_qos0_messages true
retain_available false
upgrade_outgoing_qos true
check_retain_source false
set_tcp_nodelay true
connection_messages false
log_dest file /var/log/mosquitto/mosquitto.log
log_dest stdout
log_type error
log_type all
log_timestamp false
log_timestamp_format %Y-%m-%dT%H:%M:%S
pid_file /run/mosquitto/mosquitto.pid
user mosquitto
sys_interval 0
persistence true
persistence_location /var/lib/mosquitto/
persistence_file mosquitto.db
autosave_interval 60
autosave_on_changes true
persistent_client_expiration 14d
listener 1883 127.0.0.1
bind_interface eth0
max_connections 10
socket_domain ipv4
mount_point site1/
use_username_as_clientid true
max_qos 1
max_topic_alias 0
";
        let c = p(text).unwrap();
        assert!(!c.per_listener_settings);
        assert_eq!(
            c.security,
            Security {
                allow_anonymous: Some(false),
                allow_zero_length_clientid: Some(false),
                auto_id_prefix: Some("dev-".into()),
                password_file: Some("/etc/mosquitto/passwd".into()),
                acl_file: Some("/etc/mosquitto/acl".into()),
            }
        );
        assert_eq!(c.broker.clientid_prefixes.as_deref(), Some("C1-"));
        let b = &c.broker;
        assert_eq!(
            (b.max_keepalive, b.max_packet_size, b.message_size_limit),
            (60, 1000, 1024)
        );
        assert_eq!(b.connect_timeout_ms, 5_000);
        assert_eq!(
            (b.max_inflight_messages, b.max_inflight_bytes),
            (5, 100_000)
        );
        assert_eq!((b.max_queued_messages, b.max_queued_bytes), (0, 2_000_000));
        assert!(b.queue_qos0_messages && !b.retain_available && b.upgrade_outgoing_qos);
        assert!(!b.check_retain_source);
        assert!(c.set_tcp_nodelay && !c.broker.connection_messages);
        assert_eq!(
            c.log_dest,
            vec![
                LogDest::File("/var/log/mosquitto/mosquitto.log".into()),
                LogDest::Stdout
            ]
        );
        assert_eq!(c.log_type, vec!["error", "all"]);
        assert!(!c.log_timestamp);
        assert_eq!(c.log_timestamp_format.as_deref(), Some("%Y-%m-%dT%H:%M:%S"));
        assert_eq!(c.pid_file.as_deref(), Some("/run/mosquitto/mosquitto.pid"));
        assert_eq!(c.user.as_deref(), Some("mosquitto"));
        assert_eq!(c.broker.sys_interval, 0);
        assert!(c.persistence && c.autosave_on_changes);
        assert_eq!(
            c.persistence_location.as_deref(),
            Some("/var/lib/mosquitto/")
        );
        assert_eq!(c.persistence_file, "mosquitto.db");
        assert_eq!(c.autosave_interval, 60);
        assert_eq!(c.broker.persistent_client_expiration, Some(14 * 86_400));
        let l = &c.listeners[0];
        assert_eq!(l.bind.as_deref(), Some("127.0.0.1"));
        assert_eq!(l.bind_interface.as_deref(), Some("eth0"));
        assert_eq!(l.max_connections, 10);
        assert_eq!(l.socket_domain, Some(Domain::Ipv4));
        assert_eq!(l.mount_point.as_deref(), Some("site1/"));
        assert!(l.use_username_as_clientid);
        assert_eq!(l.max_qos, QoS::AtLeastOnce);
        assert_eq!(l.max_topic_alias, 0);
    }

    #[test]
    fn debian_default_config_parses() {
        // /etc/mosquitto/mosquitto.conf as Debian ships it (include_dir served by the test).
        let text = "\
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
";
        let mut c = Config::default();
        let mut rd = |dir: &str| -> Result<Vec<(String, String)>, String> {
            assert_eq!(dir, "/etc/mosquitto/conf.d");
            Ok(vec![
                ("b.conf".into(), "allow_anonymous true\n".into()),
                ("A.conf".into(), "listener 1883\n".into()),
                ("a.conf".into(), "max_queued_messages 7\n".into()),
            ])
        };
        parse(text, "mosquitto.conf", &mut c, Some(&mut rd)).unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.security.allow_anonymous, Some(true));
        assert_eq!(c.broker.max_queued_messages, 7);
    }

    #[test]
    fn include_dir_order_is_mosquittos() {
        // Upper case before lower case of the same letter; a later file wins.
        let mut c = Config::default();
        let mut rd = |_: &str| -> Result<Vec<(String, String)>, String> {
            Ok(vec![
                ("b.conf".into(), "max_queued_messages 3\n".into()),
                ("B.conf".into(), "max_queued_messages 2\n".into()),
                ("a.conf".into(), "max_queued_messages 1\n".into()),
            ])
        };
        parse("include_dir d\n", "m.conf", &mut c, Some(&mut rd)).unwrap();
        assert_eq!(c.broker.max_queued_messages, 3);
        let e = parse("include_dir d\n", "m.conf", &mut Config::default(), None).unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn per_listener_settings_puts_security_on_each_listener() {
        let c = p("per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\npassword_file /p\n").unwrap();
        assert_eq!(c.listeners[0].security.allow_anonymous, Some(true));
        assert_eq!(c.listeners[1].security.allow_anonymous, None);
        assert_eq!(c.listeners[1].security.password_file.as_deref(), Some("/p"));
        assert_eq!(c.security, Security::default());
        let sec1 = c.security_for(Some(&c.listeners[1]));
        assert!(!c.allow_anonymous(sec1));
        // Without it, security options are global wherever they are written.
        let c = p("listener 1883\nallow_anonymous true\nlistener 1884\n").unwrap();
        assert_eq!(c.security.allow_anonymous, Some(true));
        let e = p("allow_anonymous true\nper_listener_settings true\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("must come before"), "{}", e.msg);
    }

    fn checked(text: &str) -> Result<Config, Error> {
        let mut c = p(text)?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn tls_options_have_mosquittos_meaning() {
        let c = checked(
            "listener 8883\ncertfile /s.crt\nkeyfile /s.key\ncafile /ca.crt\n\
             require_certificate true\nuse_identity_as_username true\nuse_subject_as_username true\n\
             crlfile /ca.crl\ntls_version tlsv1.2\nlistener 1883\n",
        )
        .unwrap();
        let t = &c.listeners[0].tls;
        assert!(t.enabled());
        assert!(t.require_certificate);
        // use_identity_as_username wins over use_subject_as_username.
        assert_eq!(t.username, CertUsername::CommonName);
        assert_eq!(t.crlfile.as_deref(), Some("/ca.crl"));
        assert!(!t.tls13_only);
        assert!(!c.listeners[1].tls.enabled());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = checked("listener 8883\ncertfile /s\nkeyfile /k\ntls_version tlsv1.3\n").unwrap();
        assert!(c.listeners[0].tls.tls13_only);
    }

    #[test]
    fn tls_mistakes_are_errors_naming_the_line() {
        let e = checked("listener 8883\ncertfile /s.crt\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:2: listener 8883: certfile without keyfile; both must be given to enable \
             TLS (as in mosquitto)"
        );
        let e = checked("listener 8883\nkeyfile /s.key\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = checked("listener 8883\ncertfile /s\nkeyfile /k\nrequire_certificate true\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:4: listener 8883: require_certificate needs cafile or capath, the CAs \
             that client certificates must be signed by"
        );
        let e = p("listener 8883\ntls_version sslv3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:2: tls_version: unsupported tls_version 'sslv3' (tlsv1.3, tlsv1.2 or \
             tlsv1.1)"
        );
        let e = p("listener 8883\n\npsk_hint hint\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("pre-shared-key TLS is not supported"), "{e}");
        let e = p("listener 8883\ntls_engine tpm\n").unwrap_err();
        assert!(e.msg.contains("OpenSSL engines are not supported"), "{e}");
        assert_eq!(
            p("listener 8883\ntls_keyform pem\n")
                .unwrap()
                .warnings
                .len(),
            0
        );
    }

    #[test]
    fn tls_options_that_do_nothing_are_warned_about() {
        // No certfile/keyfile: not a TLS listener, whatever else it says.
        let c = checked("listener 8883\ncafile /ca.crt\nrequire_certificate true\n").unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "test.conf:2: cafile has no effect: listener 8883 has no certfile and keyfile, \
                 so it is not a TLS listener and its traffic is not encrypted"
            ]
        );
        let c = checked(
            "listener 8883\ncertfile /s\nkeyfile /k\ndhparamfile /dh.pem\n\
             use_identity_as_username true\ncrlfile /c.crl\n",
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with("test.conf:4: dhparamfile ignored"));
        assert!(c.warnings[1].starts_with("test.conf:6: crlfile has no effect"));
        assert!(c.warnings[2].starts_with("test.conf:5: use_identity_as_username without"));
        let c = p("listener 8883\ntls_version tlsv1.1\n").unwrap();
        assert!(c.warnings[0].starts_with("test.conf:2: tls_version tlsv1.1"));
    }

    #[test]
    fn cipher_names_map_to_the_suites_midge_has() {
        let c = p(
            "listener 8883\nciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305\n\
                   ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256\n",
        )
        .unwrap();
        let t = &c.listeners[0].tls;
        assert_eq!(
            t.ciphers.as_deref().unwrap(),
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        assert_eq!(
            t.ciphers_tls13.as_deref().unwrap(),
            ["TLS13_CHACHA20_POLY1305_SHA256"]
        );
        // mosquitto's own default list, and keywords with exclusions.
        let all = tls12_ciphers("DEFAULT:!aNULL:!eNULL:!LOW:!EXPORT:!SSLv2:@STRENGTH").unwrap();
        assert_eq!(all.len(), TLS12_SUITES.len());
        let gcm = tls12_ciphers("ECDHE+AESGCM:!aRSA").unwrap();
        assert_eq!(
            gcm,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        // A suite OpenSSL has and rustls lacks: an error naming the line and what exists.
        let e = p("listener 8883\nciphers AES256-SHA:ECDHE-RSA-AES128-GCM-SHA256\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.msg.starts_with(
                "ciphers: cipher 'AES256-SHA' is not available in midge's TLS library"
            ),
            "{e}"
        );
        assert!(e.msg.contains("ECDHE-ECDSA-AES256-GCM-SHA384"));
        let e = p("listener 8883\nciphers_tls1.3 TLS_AES_128_CCM_SHA256\n").unwrap_err();
        assert!(
            e.msg.contains("'TLS_AES_128_CCM_SHA256' is not available"),
            "{e}"
        );
        assert!(p("listener 8883\nciphers !ALL\n").is_err());
    }

    #[test]
    fn websockets_listeners_read_as_in_mosquitto() {
        let c = p(
            "listener 1883\nprotocol mqtt\nlistener 9001\nprotocol websockets\n\
                   http_dir /var/www/mqtt page\nwebsockets_headers_size 4096\n\
                   websockets_log_level 255\n",
        )
        .unwrap();
        assert!(!c.listeners[0].websockets);
        assert!(c.listeners[1].websockets);
        assert_eq!(
            c.listeners[1].http_dir.as_deref(),
            Some("/var/www/mqtt page")
        );
        assert_eq!(
            (c.websockets_headers_size, c.websockets_log_level),
            (4096, 255)
        );
        for bad in [
            "protocol ws\n",
            "websockets_headers_size 65536\n",
            "websockets_headers_size -1\n",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_file_line_and_option() {
        let e = p("listener 1883\n\nfoo_bar x\n").unwrap_err();
        assert_eq!(e.to_string(), "test.conf:3: unknown option 'foo_bar'");
        let e = p("listener 8883\nplugin /usr/lib/x.so\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:2: option 'plugin' is not supported by midge yet"
        );
        let e = p("allow_anonymous yes\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:1: allow_anonymous: 'yes' is not true or false"
        );
        for bad in [
            "listener\n",
            "listener 70000\n",
            "listener 1 2 3\n",
            "max_queued_messages -1\n",
            "allow_anonymous\n",
            "allow_anonymous true false\n",
            "max_qos 3\n",
            "socket_domain ipx\n",
            "log_dest carrier-pigeon\n",
            "log_type chatter\n",
            "persistent_client_expiration 14x\n",
            "persistent_client_expiration d\n",
            "max_packet_size 10\n",
            "mount_point a/#\n",
            "message_size_limit 268435456\n",
            "log_dest file\n",
            "connect_timeout 0\n",
            "connect_timeout 3601\n",
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.line, 1, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration("2h"), Ok(7200));
        assert_eq!(duration("1w"), Ok(604_800));
        assert_eq!(duration("2m"), Ok(5_184_000));
        assert_eq!(duration("1y"), Ok(31_536_000));
        assert!(duration("").is_err());
        assert!(duration("h").is_err());
        assert!(duration("99999999999999999y").is_err());
    }
}
