//! A bridge's settings (mosquitto.conf's `connection` section, parsed in `config/bridge.rs`)
//! and the CONNECT packet they make.

use crate::mqtt::{self, topic, Packet, Properties, QoS, Version};

/// Which way a bridge topic carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
    Both,
}

/// One `topic` line of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTopic {
    pub direction: Direction,
    pub qos: QoS,
    pub local_prefix: String,
    pub remote_prefix: String,
    /// Local prefix + pattern, and remote prefix + pattern: the filters on each side.
    pub local: String,
    pub remote: String,
}

impl BridgeTopic {
    /// `pattern` empty means mosquitto's `""`: the prefixes are the whole topics, and both
    /// must then be given. A prefix is a topic name (no wildcards); prefix + pattern must be a
    /// valid filter.
    pub fn new(
        pattern: &str,
        direction: Direction,
        qos: QoS,
        local_prefix: &str,
        remote_prefix: &str,
    ) -> Result<BridgeTopic, String> {
        if pattern.is_empty() && (local_prefix.is_empty() || remote_prefix.is_empty()) {
            return Err("an empty (\"\") pattern needs both a local and a remote prefix".into());
        }
        for (what, p) in [("local", local_prefix), ("remote", remote_prefix)] {
            if !p.is_empty() && topic::validate_name(p).is_err() {
                return Err(format!("invalid {what} prefix '{p}'"));
            }
        }
        let local = format!("{local_prefix}{pattern}");
        let remote = format!("{remote_prefix}{pattern}");
        for f in [&local, &remote] {
            if topic::validate_filter(f).is_err() {
                return Err(format!("invalid prefix and pattern combination '{f}'"));
            }
        }
        Ok(BridgeTopic {
            direction,
            qos,
            local_prefix: local_prefix.into(),
            remote_prefix: remote_prefix.into(),
            local,
            remote,
        })
    }

    pub(super) fn outgoing(&self) -> bool {
        self.direction != Direction::In
    }

    pub(super) fn incoming(&self) -> bool {
        self.direction != Direction::Out
    }
}

/// How a bridge starts (`start_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartType {
    Automatic,
    /// Connects once `threshold` messages are queued; disconnects after `idle_timeout`.
    Lazy,
    /// Connects at start-up and never again.
    Once,
}

/// A bridge's settings, mosquitto's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub name: String,
    /// `address`: (host, port), tried in turn.
    pub addresses: Vec<(String, u16)>,
    pub round_robin: bool,
    pub topics: Vec<BridgeTopic>,
    pub version: Version,
    pub clean_session: bool,
    /// Defaults to `clean_session`.
    pub local_clean_session: Option<bool>,
    /// Defaults to `HOSTNAME.NAME` (filled in at start-up, which knows the host name).
    pub remote_clientid: Option<String>,
    /// Defaults to `local.` + the remote client id.
    pub local_clientid: Option<String>,
    pub remote_username: Option<String>,
    pub remote_password: Option<String>,
    pub keepalive: u16,
    /// Seconds: constant (`cap` None) or decorrelated jitter from `base` up to `cap`.
    pub restart_base: u32,
    pub restart_cap: Option<u32>,
    pub start_type: StartType,
    pub idle_timeout: u32,
    pub threshold: usize,
    pub notifications: bool,
    pub notification_topic: Option<String>,
    pub notifications_local_only: bool,
    pub try_private: bool,
    pub attempt_unsubscribe: bool,
    pub outgoing_retain: bool,
    /// Largest packet sent to the remote (with an MQTT 5 remote's own Maximum Packet Size);
    /// a larger message is not sent (0: no limit of ours).
    pub max_packet_size: u32,
    pub tls: BridgeTls,
}

/// TLS towards the remote (`bridge_cafile` and the rest); used by the network layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeTls {
    pub cafile: Option<String>,
    pub capath: Option<String>,
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
    pub insecure: bool,
    pub version: Option<String>,
    pub alpn: Option<String>,
}

impl BridgeTls {
    pub fn enabled(&self) -> bool {
        self.cafile.is_some() || self.capath.is_some()
    }
}

impl BridgeConfig {
    pub fn new(name: &str) -> BridgeConfig {
        BridgeConfig {
            name: name.into(),
            addresses: Vec::new(),
            round_robin: false,
            topics: Vec::new(),
            version: Version::V311,
            clean_session: false,
            local_clean_session: None,
            remote_clientid: None,
            local_clientid: None,
            remote_username: None,
            remote_password: None,
            keepalive: 60,
            restart_base: 5,
            restart_cap: Some(30),
            start_type: StartType::Automatic,
            idle_timeout: 60,
            threshold: 10,
            notifications: true,
            notification_topic: None,
            notifications_local_only: false,
            try_private: true,
            attempt_unsubscribe: true,
            outgoing_retain: true,
            max_packet_size: 0,
            tls: BridgeTls::default(),
        }
    }

    pub fn remote_id(&self) -> String {
        self.remote_clientid
            .clone()
            .unwrap_or_else(|| format!("localhost.{}", self.name))
    }

    pub fn local_id(&self) -> String {
        self.local_clientid
            .clone()
            .unwrap_or_else(|| format!("local.{}", self.remote_id()))
    }

    /// mosquitto's `$SYS/broker/connection/REMOTE_CLIENTID/state` unless set.
    pub fn state_topic(&self) -> String {
        self.notification_topic
            .clone()
            .unwrap_or_else(|| format!("$SYS/broker/connection/{}/state", self.remote_id()))
    }
}

/// The bridge's CONNECT: its will is the `0` notification on the remote; `private` sets the
/// top bit of the protocol level (mosquitto's bridge mode).
pub(super) fn encode_connect(
    cfg: &BridgeConfig,
    private: bool,
    receive_max: u16,
    out: &mut Vec<u8>,
) {
    let remote_id = cfg.remote_id();
    let state = cfg.state_topic();
    let v5 = cfg.version == Version::V5;
    let mut props = Properties::default();
    if v5 {
        if !cfg.clean_session {
            props.session_expiry_interval = Some(u32::MAX);
        }
        props.receive_maximum = Some(receive_max);
    }
    let will = (cfg.notifications && !cfg.notifications_local_only).then(|| mqtt::Will {
        topic: &state,
        payload: b"0",
        qos: QoS::AtLeastOnce,
        retain: true,
        props: Properties::default(),
    });
    let c = mqtt::Connect {
        version: cfg.version,
        clean_session: cfg.clean_session,
        keep_alive: cfg.keepalive,
        client_id: &remote_id,
        will,
        username: cfg.remote_username.as_deref(),
        password: cfg
            .remote_password
            .as_deref()
            .filter(|_| cfg.remote_username.is_some())
            .map(str::as_bytes),
        props,
    };
    let start = out.len();
    Packet::connect(c).encode(out);
    if private {
        // The protocol level follows the fixed header and the protocol name.
        let mut i = start + 1;
        while out[i] & 0x80 != 0 {
            i += 1;
        }
        let name_len = if cfg.version == Version::V31 { 6 } else { 4 };
        out[i + 1 + 2 + name_len] |= 0x80;
    }
}
