//! The bridge section of mosquitto.conf: `connection NAME` starts a bridge and the options
//! after it configure that bridge (mosquitto's names, meanings and defaults; see
//! `broker::BridgeConfig`).

use super::values::{boolean, number, one, rest};
use super::Config;
use crate::broker::{BridgeConfig, BridgeTopic, Direction, StartType};
use crate::mqtt::{QoS, Version};

/// Bridge options mosquitto has and midge does not implement: refused by name.
const NOT_YET: &[&str] = &[
    "bridge_bind_address",
    "bridge_identity",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_reload_type",
    "bridge_receive_maximum",
    "bridge_session_expiry_interval",
    "bridge_tcp_keepalive",
    "bridge_tcp_user_timeout",
    "local_username",
    "local_password",
];

const OPTIONS: &[&str] = &[
    "address",
    "addresses",
    "round_robin",
    "topic",
    "bridge_protocol_version",
    "cleansession",
    "local_cleansession",
    "remote_clientid",
    "clientid",
    "local_clientid",
    "remote_username",
    "username",
    "remote_password",
    "password",
    "keepalive_interval",
    "restart_timeout",
    "start_type",
    "idle_timeout",
    "threshold",
    "notifications",
    "notification_topic",
    "notifications_local_only",
    "try_private",
    "bridge_attempt_unsubscribe",
    "bridge_outgoing_retain",
    "bridge_max_packet_size",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_keyfile",
    "bridge_insecure",
    "bridge_tls_version",
    "bridge_alpn",
];

/// Handles `option` if it is a bridge option: `None` if it is not one.
pub(super) fn option(cfg: &mut Config, option: &str, v: &[&str]) -> Option<Result<(), String>> {
    if option == "connection" {
        return Some(connection(cfg, v));
    }
    if NOT_YET.contains(&option) {
        return Some(Err(format!(
            "option '{option}' is not supported by midge yet"
        )));
    }
    if !OPTIONS.contains(&option) {
        return None;
    }
    let Some(b) = cfg.broker.bridges.last_mut() else {
        return Some(Err(format!("'{option}' must follow a 'connection' line")));
    };
    Some(set(b, option, v))
}

fn connection(cfg: &mut Config, v: &[&str]) -> Result<(), String> {
    let name = one(v)?;
    if cfg.broker.bridges.iter().any(|b| b.name == name) {
        return Err(format!("duplicate bridge name '{name}'"));
    }
    if name.contains(['/', '+', '#']) {
        return Err(format!("'{name}' may not contain '/', '+' or '#'"));
    }
    cfg.broker.bridges.push(BridgeConfig::new(name));
    Ok(())
}

/// `host`, `host:port`, `[v6]:port`; the port defaults to 1883.
fn address(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("'{s}' is not host or host:port");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']').ok_or_else(bad)?;
        match p {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => (s, None),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => 1883,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
    };
    Ok((host.to_string(), port))
}

/// A prefix or pattern: `""` means empty.
fn word(s: &str) -> &str {
    if s == "\"\"" {
        ""
    } else {
        s
    }
}

fn set(b: &mut BridgeConfig, option: &str, v: &[&str]) -> Result<(), String> {
    match option {
        "address" | "addresses" => {
            if v.is_empty() {
                return Err("expects one or more host[:port]".into());
            }
            for a in v {
                b.addresses.push(address(a)?);
            }
        }
        "round_robin" => b.round_robin = boolean(one(v)?)?,
        "topic" => {
            if v.is_empty() || v.len() > 5 {
                return Err(
                    "expects PATTERN [in|out|both [QOS [LOCAL_PREFIX [REMOTE_PREFIX]]]]".into(),
                );
            }
            let direction = match v.get(1).copied() {
                None | Some("out") => Direction::Out,
                Some("in") => Direction::In,
                Some("both") => Direction::Both,
                Some(d) => return Err(format!("'{d}' is not in, out or both")),
            };
            let qos = match v.get(2) {
                None => QoS::AtMostOnce,
                Some(q) => q
                    .parse::<u8>()
                    .ok()
                    .and_then(QoS::from_u8)
                    .ok_or_else(|| format!("'{q}' is not a QoS (0, 1 or 2)"))?,
            };
            let lp = v.get(3).map_or("", |s| word(s));
            let rp = v.get(4).map_or("", |s| word(s));
            let t = BridgeTopic::new(word(v[0]), direction, qos, lp, rp)?;
            if !b.topics.contains(&t) {
                b.topics.push(t);
            }
        }
        "bridge_protocol_version" => {
            b.version = match one(v)? {
                "mqttv31" => Version::V31,
                "mqttv311" => Version::V311,
                "mqttv50" => Version::V5,
                o => return Err(format!("'{o}' is not mqttv31, mqttv311 or mqttv50")),
            }
        }
        "cleansession" => b.clean_session = boolean(one(v)?)?,
        "local_cleansession" => b.local_clean_session = Some(boolean(one(v)?)?),
        "remote_clientid" | "clientid" => b.remote_clientid = Some(one(v)?.into()),
        "local_clientid" => b.local_clientid = Some(one(v)?.into()),
        "remote_username" | "username" => b.remote_username = Some(one(v)?.into()),
        "remote_password" | "password" => b.remote_password = Some(one(v)?.into()),
        "keepalive_interval" => {
            b.keepalive = number(one(v)?)?;
            if b.keepalive > 0 && b.keepalive < 5 {
                return Err("must be 0 or at least 5 seconds".into());
            }
        }
        "restart_timeout" => match v {
            [n] => {
                b.restart_base = number(n)?;
                b.restart_cap = None;
            }
            [base, cap] => {
                b.restart_base = number(base)?;
                let cap: u32 = number(cap)?;
                if cap < b.restart_base {
                    return Err("the cap is below the base".into());
                }
                b.restart_cap = Some(cap);
            }
            _ => return Err("expects SECONDS or BASE CAP".into()),
        },
        "start_type" => {
            b.start_type = match one(v)? {
                "automatic" => StartType::Automatic,
                "lazy" => StartType::Lazy,
                "once" => StartType::Once,
                o => return Err(format!("'{o}' is not automatic, lazy or once")),
            }
        }
        "idle_timeout" => b.idle_timeout = number(one(v)?)?,
        "threshold" => {
            b.threshold = number(one(v)?)?;
            if b.threshold == 0 {
                return Err("must be at least 1".into());
            }
        }
        "notifications" => b.notifications = boolean(one(v)?)?,
        "notification_topic" => b.notification_topic = Some(one(v)?.into()),
        "notifications_local_only" => b.notifications_local_only = boolean(one(v)?)?,
        "try_private" => b.try_private = boolean(one(v)?)?,
        "bridge_attempt_unsubscribe" => b.attempt_unsubscribe = boolean(one(v)?)?,
        "bridge_outgoing_retain" => b.outgoing_retain = boolean(one(v)?)?,
        "bridge_max_packet_size" => b.max_packet_size = number(one(v)?)?,
        "bridge_cafile" => b.tls.cafile = Some(rest(v)?),
        "bridge_capath" => b.tls.capath = Some(rest(v)?),
        "bridge_certfile" => b.tls.certfile = Some(rest(v)?),
        "bridge_keyfile" => b.tls.keyfile = Some(rest(v)?),
        "bridge_insecure" => b.tls.insecure = boolean(one(v)?)?,
        "bridge_tls_version" => {
            let t = one(v)?;
            if !["tlsv1.3", "tlsv1.2"].contains(&t) {
                return Err(format!(
                    "'{t}' is not tlsv1.3 or tlsv1.2 (older versions are not offered)"
                ));
            }
            b.tls.version = Some(t.into());
        }
        "bridge_alpn" => b.tls.alpn = Some(one(v)?.into()),
        _ => return Err(format!("unknown bridge option '{option}'")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Config};

    fn p(text: &str) -> Result<Config, crate::config::Error> {
        let mut c = Config::default();
        parse(text, "test.conf", &mut c, None).map(|_| c)
    }

    #[test]
    fn a_bridge_section_parses_with_mosquittos_defaults() {
        let c = p("connection up\naddress 10.0.0.1:1884 backup.example\n\
                   topic sensors/# out 1 local/ site/\ntopic \"\" both 2 a/b c/d\n\
                   topic cmd/# in\nrestart_timeout 2 10\nbridge_protocol_version mqttv50\n")
        .unwrap();
        let b = &c.broker.bridges[0];
        assert_eq!(b.name, "up");
        assert_eq!(
            b.addresses,
            vec![
                ("10.0.0.1".to_string(), 1884),
                ("backup.example".to_string(), 1883)
            ]
        );
        assert_eq!(b.topics.len(), 3);
        assert_eq!(b.topics[0].local, "local/sensors/#");
        assert_eq!(b.topics[0].remote, "site/sensors/#");
        assert_eq!(b.topics[1].local, "a/b");
        assert_eq!(b.topics[2].qos, crate::mqtt::QoS::AtMostOnce);
        assert_eq!((b.restart_base, b.restart_cap), (2, Some(10)));
        assert_eq!(b.version, crate::mqtt::Version::V5);
        assert!(!b.clean_session && b.notifications && b.try_private && b.outgoing_retain);
        assert_eq!(b.keepalive, 60);
        assert_eq!(b.remote_id(), "localhost.up");
        assert_eq!(b.local_id(), "local.localhost.up");
        assert_eq!(b.state_topic(), "$SYS/broker/connection/localhost.up/state");
    }

    #[test]
    fn bridge_errors_name_the_line() {
        let e = p("topic a/# out\n").unwrap_err().to_string();
        assert!(e.contains(":1:") && e.contains("connection"), "{e}");
        let e = p("connection x\naddress h\ntopic \"\" out 0 a/\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":3:") && e.contains("prefix"), "{e}");
        let e = p("connection x\nbridge_identity me\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":2:") && e.contains("not supported"), "{e}");
        let e = p("connection x\ntopic a sideways\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sideways"), "{e}");
        assert!(p("connection x\naddress h:0\n").is_err());
        assert!(p("connection x\nconnection x\n").is_err());
    }
}
