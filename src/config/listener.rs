//! A listener's settings (`listener` blocks and the default listener) and the authentication
//! and authorisation settings, global or per listener.

use super::Tls;
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
