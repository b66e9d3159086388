//! mosquitto.conf, parsed from a `&str`.
//!
//! Each line is `option value...`, `#` starts a comment line, blank lines are skipped. Options
//! are looked up in one table; an option that is not in it, a value that does not parse, or an
//! option midge does not support yet is an error that names the file and line, and start-up
//! stops before any socket is opened.

use std::fmt;

use crate::broker;

/// One `listener` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// 0 asks the system for a free port (the log says which).
    pub port: u16,
    /// Address or host name to bind; `None` binds every address, IPv4 and IPv6.
    pub bind: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub listeners: Vec<Listener>,
    /// `allow_anonymous` as written; its default depends on whether listeners are configured.
    pub allow_anonymous: Option<bool>,
    pub broker: broker::Config,
}

impl Config {
    /// No listener configured: mosquitto 2.0's "local only mode" (127.0.0.1 and ::1, anonymous
    /// clients allowed).
    pub fn local_only(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The broker settings with the defaults that depend on the whole file resolved.
    pub fn broker_config(&self) -> broker::Config {
        let mut b = self.broker.clone();
        // mosquitto 2.0: anonymous access defaults to on only in local only mode.
        b.allow_anonymous = self.allow_anonymous.unwrap_or(self.local_only());
        b
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
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

impl std::error::Error for Error {}

type Setter = fn(&mut Config, &[&str]) -> Result<(), String>;

/// The options midge understands, with mosquitto 2.0's meaning.
const OPTIONS: &[(&str, Setter)] = &[
    ("listener", |c, v| {
        let (port, bind) = match v {
            [p] => (p, None),
            [p, addr] => (p, Some(addr.to_string())),
            _ => return Err("expects a port and an optional bind address".into()),
        };
        c.listeners.push(Listener {
            port: number(port)?,
            bind,
        });
        Ok(())
    }),
    ("allow_anonymous", |c, v| {
        c.allow_anonymous = Some(boolean(one(v)?)?);
        Ok(())
    }),
    ("max_keepalive", |c, v| {
        c.broker.max_keepalive = number(one(v)?)?;
        Ok(())
    }),
    ("max_inflight_messages", |c, v| {
        let n: u16 = number(one(v)?)?;
        c.broker.max_inflight_messages = n as usize;
        Ok(())
    }),
    ("max_queued_messages", |c, v| {
        c.broker.max_queued_messages = number(one(v)?)?;
        Ok(())
    }),
    ("message_size_limit", |c, v| {
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
];

fn one<'a>(v: &[&'a str]) -> Result<&'a str, String> {
    match v {
        [x] => Ok(x),
        [] => Err("expects a value".into()),
        _ => Err("expects a single value".into()),
    }
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

/// Parses `text`, the contents of `file`, into `cfg`.
pub fn parse(text: &str, file: &str, cfg: &mut Config) -> Result<(), Error> {
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
        match OPTIONS.iter().find(|(name, _)| *name == option) {
            Some((_, set)) => set(cfg, &values).map_err(|m| err(format!("{option}: {m}")))?,
            None => return Err(err(format!("unknown or unsupported option '{option}'"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, Error> {
        let mut c = Config::default();
        parse(text, "test.conf", &mut c).map(|_| c)
    }

    #[test]
    fn the_seed_setup_parses() {
        let c = p("# comment\n\nlistener 1883\nallow_anonymous true\n").unwrap();
        assert_eq!(
            c.listeners,
            vec![Listener {
                port: 1883,
                bind: None
            }]
        );
        assert!(c.broker_config().allow_anonymous);
    }

    #[test]
    fn defaults_follow_mosquitto_2() {
        let c = p("").unwrap();
        assert!(c.local_only());
        assert!(c.broker_config().allow_anonymous);
        let c = p("listener 1883 0.0.0.0\n").unwrap();
        assert!(!c.local_only());
        assert!(!c.broker_config().allow_anonymous);
        assert_eq!(c.listeners[0].bind.as_deref(), Some("0.0.0.0"));
        let b = c.broker_config();
        assert_eq!(b.max_inflight_messages, 20);
        assert_eq!(b.max_queued_messages, 1000);
    }

    #[test]
    fn limits_parse() {
        let c = p("max_inflight_messages 5\nmax_queued_messages 0\nmessage_size_limit 1024\nmax_keepalive 60\r\n").unwrap();
        assert_eq!(c.broker.max_inflight_messages, 5);
        assert_eq!(c.broker.max_queued_messages, 0);
        assert_eq!(c.broker.message_size_limit, 1024);
        assert_eq!(c.broker.max_keepalive, 60);
    }

    #[test]
    fn errors_name_file_line_and_option() {
        let e = p("listener 1883\n\nbridge_cafile x\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            e.to_string(),
            "test.conf:3: unknown or unsupported option 'bridge_cafile'"
        );
        let e = p("allow_anonymous yes\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.conf:1: allow_anonymous: 'yes' is not true or false"
        );
        assert_eq!(p("listener\n").unwrap_err().line, 1);
        assert_eq!(p("listener 70000\n").unwrap_err().line, 1);
        assert_eq!(p("max_queued_messages -1\n").unwrap_err().line, 1);
        assert_eq!(p("allow_anonymous\n").unwrap_err().line, 1);
        assert_eq!(p("allow_anonymous true false\n").unwrap_err().line, 1);
    }
}
