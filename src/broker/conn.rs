//! A connection's state in the core: kept small, since an idle client costs this, its
//! session and its socket.

use std::collections::HashMap;

use super::out::Out;
use super::session::{Blank, Lazy};
use super::{Key, Millis, Msg};
use crate::mqtt::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    AwaitConnect,
    Connected,
    Closed,
}

/// What an MQTT 5 client told the broker about itself, and its topic aliases.
#[derive(Default)]
pub(super) struct V5Conn {
    /// The client's Receive Maximum: outgoing QoS 1/2 in flight at most.
    pub(super) receive_max: u16,
    /// The client's Maximum Packet Size (0: none).
    pub(super) max_packet: u32,
    /// Topic aliases the broker may use towards the client.
    pub(super) alias_max_out: u16,
    pub(super) aliases_out: HashMap<Box<str>, u16>,
    /// Aliases the client set up, by alias - 1.
    pub(super) aliases_in: Vec<Option<Box<str>>>,
    /// How many more QoS 1/2 messages the client may send now, counted as mosquitto 2.0.20
    /// counts its receive quota: a new QoS 2 message takes one until its PUBREL, and a message
    /// refused with Quota Exceeded (0x97) gives one back.
    pub(super) in_quota: u16,
}

/// A connection, kept small: an idle client costs this, its session and its socket. What only
/// some connections need for some of the time is in `extra`.
pub(super) struct Conn {
    /// Distinguishes this connection from earlier ones that used the same slot.
    pub(super) serial: u32,
    pub(super) session: Key,
    /// When the last complete packet arrived; before CONNECT, when the connection was opened
    /// (CONNECT is the first complete packet).
    pub(super) last_rx: Millis,
    /// Output not yet written (nothing allocated while there is none).
    pub(super) out: Out,
    /// Due time of this connection's one live entry in the timer heap (`Millis::MAX`: none).
    pub(super) timer_at: Millis,
    pub(super) v5: Option<Box<V5Conn>>,
    pub(super) extra: Lazy<ConnExtra>,
    /// Index into `Config::listeners`.
    pub(super) listener: u16,
    pub(super) keep_alive: u16,
    pub(super) state: State,
    pub(super) version: Version,
    pub(super) dirty: bool,
}

/// The parts of a connection that are usually absent: allocated while present.
#[derive(Default)]
pub(super) struct ConnExtra {
    /// The peer's address, until CONNECT has been logged.
    pub(super) peer: Option<Box<str>>,
    pub(super) will: Option<Msg>,
    /// MQTT 5 Will Delay Interval, seconds.
    pub(super) will_delay: u32,
    /// Paused (no more packets handled) until a full subscriber queue drains, or this time.
    pub(super) throttled_until: Option<Millis>,
    /// After a pause ran out: not paused again before this time (0: no such time).
    pub(super) no_throttle_until: Millis,
    /// The user name from the client's TLS certificate, until CONNECT takes it.
    pub(super) cert_name: Option<Box<str>>,
}

impl Blank for ConnExtra {
    const BLANK: &'static Self = &ConnExtra {
        peer: None,
        will: None,
        will_delay: 0,
        throttled_until: None,
        no_throttle_until: 0,
        cert_name: None,
    };
    fn is_blank(&self) -> bool {
        self.peer.is_none()
            && self.will.is_none()
            && self.throttled_until.is_none()
            && self.no_throttle_until == 0
            && self.cert_name.is_none()
    }
}

impl Conn {
    /// Frees `extra` once nothing in it matters any more.
    pub(super) fn trim(&mut self, now: Millis) {
        if let Some(e) = self.extra.get_mut() {
            if e.no_throttle_until <= now {
                e.no_throttle_until = 0;
            }
        }
        self.extra.trim();
    }
}
