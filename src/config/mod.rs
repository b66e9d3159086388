//! mosquitto.conf, parsed from a `&str`.
//!
//! Each line is `option value...`; `#` starts a comment line; blank lines are skipped. Options
//! are looked up in one table, `options::OPTIONS`, which says where each belongs (global, listener, or
//! security, which follows `per_listener_settings`). An unknown option, a value that does not
//! parse, a misplaced option, or an option midge does not support yet is an error naming the
//! file and line, so start-up stops before any socket is opened. Reading files (`include_dir`)
//! happens through a caller-supplied function, so the parser itself does no IO.
//!
//! One concern per file: this one holds [`Config`], its errors and [`parse`], the loop over
//! lines; `options.rs` the options table (every option's scope and setter); `listener.rs` the
//! listener and security settings; `tls.rs` a listener's TLS settings, the cipher lists and the
//! checks that need the whole configuration; `values.rs` the value parsers; `bridge.rs` the
//! bridge section.

mod bridge;
mod listener;
mod options;
mod tls;
mod values;

use std::fmt;

use crate::broker;

pub use listener::{Domain, Listener, Security};
pub use tls::{CertUsername, Tls, TLS12_SUITES, TLS13_SUITES};

use options::{Scope, NOT_YET, OPTIONS};
use values::rest;

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
    use super::tls::tls12_ciphers;
    use super::values::duration;
    use super::*;
    use crate::mqtt::QoS;

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
