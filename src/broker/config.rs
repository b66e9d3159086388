//! The core's settings: mosquitto.conf's, filled in by the config module, and per listener.

use std::rc::Rc;

use super::Millis;
use crate::auth::acl::Acl;
use crate::auth::password::PasswordFile;
use crate::mqtt::QoS;

/// What a listener lets its clients do: authentication and limits that mosquitto.conf sets
/// per listener (or globally, copied to each).
#[derive(Debug, Clone)]
pub struct ListenerPolicy {
    pub port: u16,
    pub allow_anonymous: bool,
    pub allow_zero_length_clientid: bool,
    pub auto_id_prefix: String,
    pub use_username_as_clientid: bool,
    /// Highest QoS granted to subscriptions and accepted on PUBLISH.
    pub max_qos: QoS,
    /// Topic aliases an MQTT 5 client may set up (0: none).
    pub max_topic_alias: u16,
    /// Prefixed to every topic of this listener's clients, and stripped on the way out.
    pub mount_point: Option<String>,
    /// Connections this listener accepts at once; `None`: no limit.
    pub max_connections: Option<usize>,
    pub passwords: Option<Rc<PasswordFile>>,
    pub acl: Option<Rc<Acl>>,
    /// `use_identity_as_username` / `use_subject_as_username` on a TLS listener: the name
    /// the network layer read from the client's certificate ([`Broker::tls_identity`]) is the
    /// user name, and no password is needed; a client without one is refused.
    ///
    /// [`Broker::tls_identity`]: super::Broker::tls_identity
    pub cert_username: bool,
}

impl Default for ListenerPolicy {
    fn default() -> Self {
        ListenerPolicy {
            port: 1883,
            allow_anonymous: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            use_username_as_clientid: false,
            max_qos: QoS::ExactlyOnce,
            max_topic_alias: 10,
            mount_point: None,
            max_connections: None,
            passwords: None,
            acl: None,
            cert_username: false,
        }
    }
}

/// The broker's settings (mosquitto.conf's, filled by the config module).
#[derive(Debug, Clone)]
pub struct Config {
    /// One per listener, by the index the network layer passes to [`Broker::open`](super::Broker::open).
    pub listeners: Vec<ListenerPolicy>,
    /// Only client ids starting with this are accepted.
    pub clientid_prefixes: Option<String>,
    /// Unacknowledged outgoing QoS 1/2 messages per client; 0 means no limit (65,535 at most,
    /// the number of packet identifiers).
    pub max_inflight_messages: usize,
    /// Payload bytes of unacknowledged outgoing messages per client; 0 means no limit. One
    /// message is always allowed.
    pub max_inflight_bytes: usize,
    /// Messages queued per client beyond those in flight; 0 means no limit.
    pub max_queued_messages: usize,
    /// Payload bytes queued per client; 0 means no limit.
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages for persistent clients that are away.
    pub queue_qos0_messages: bool,
    /// Largest PUBLISH payload accepted; 0 means no limit. A larger one is dropped.
    pub message_size_limit: usize,
    /// Largest packet accepted from a client, all of it; 0 means no limit. A larger one closes
    /// the connection.
    pub max_packet_size: usize,
    /// When false, a PUBLISH with RETAIN set is a protocol error.
    pub retain_available: bool,
    /// Deliver at the subscription's QoS even when the message's is lower.
    pub upgrade_outgoing_qos: bool,
    /// Check SUBSCRIBE against the ACL and refuse filters the client may not read (SUBACK
    /// 0x80 / 0x87). Off by default: mosquitto grants every SUBSCRIBE and checks read access
    /// on each message delivered (midge always does that too).
    pub acl_refuse_subscribe: bool,
    /// Check that the publisher of a retained message may still write its topic before
    /// delivering it to a new subscriber.
    pub check_retain_source: bool,
    /// A 3.1/3.1.1 client asking for more (or for none) is refused, an MQTT 5 client is told
    /// this keepalive; 65535 means no limit.
    pub max_keepalive: u16,
    /// How long a connection may take to send its CONNECT.
    pub connect_timeout_ms: Millis,
    /// Seconds a persistent session of an MQTT 3.1/3.1.1 client outlives its connection
    /// (`persistent_client_expiration`); `None`: forever.
    pub persistent_client_expiration: Option<u32>,
    /// Send topic aliases to MQTT 5 clients that accept them.
    pub topic_alias_to_clients: bool,
    /// Log connections and disconnections.
    pub connection_messages: bool,
    /// Seconds between `$SYS` updates; 0: none.
    pub sys_interval: u32,
    /// Seed for assigned client identifiers.
    pub id_seed: u64,
    /// Bridges to remote brokers (`connection` sections).
    pub bridges: Vec<super::BridgeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerPolicy::default()],
            clientid_prefixes: None,
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            message_size_limit: 0,
            max_packet_size: 0,
            retain_available: true,
            upgrade_outgoing_qos: false,
            acl_refuse_subscribe: false,
            check_retain_source: true,
            max_keepalive: 65_535,
            connect_timeout_ms: 20_000,
            persistent_client_expiration: None,
            topic_alias_to_clients: true,
            connection_messages: true,
            sys_interval: 0,
            id_seed: 0x5eed,
            bridges: Vec::new(),
        }
    }
}
