//! The options table: every option midge reads, where it applies and how its value is set.

use super::tls::{tls12_ciphers, tls13_ciphers};
use super::values::{boolean, duration, number, one, rest};
use super::{CertUsername, Config, Domain, Listener, LogDest, Security, Tls};
use crate::mqtt::QoS;

/// Where an option applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
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
pub(super) const OPTIONS: &[(&str, Scope, Setter)] = &[
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
pub(super) const NOT_YET: &[&str] = &[
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
