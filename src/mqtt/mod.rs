//! The MQTT codec: bytes in, packets out, and back. No IO, no clocks.
//!
//! Decoding borrows from the input buffer (`Packet<'a>` holds `&'a str` / `&'a [u8]` into it) and
//! answers one of three things, kept distinct as the design asks:
//! - `Ok(Status::Complete(packet, len))`: a whole packet, `len` bytes long;
//! - `Ok(Status::Partial)`: every byte so far is a valid prefix, more are needed;
//! - `Err(Error)`: the bytes can never become a valid packet; the connection must be closed.
//!
//! The remaining length is checked against the caller's limit as soon as the fixed header is
//! complete, before a single byte of the body is waited for, so a peer can never make the caller
//! buffer more than it allows.

mod encode;
mod packet;
mod primitives;
pub mod props;
pub mod reason;
pub mod topic;

pub use encode::*;
pub use packet::*;
pub use primitives::{read_remaining_length, write_remaining_length, MAX_REMAINING_LENGTH};
pub use props::{Properties, Props};
pub use reason::{connack, SUBACK_FAILURE};

use std::fmt;

/// Protocol versions midge speaks, by their CONNECT protocol level byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V31 = 3,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V311 = 4,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5 = 5,
}

impl Version {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The number mosquitto prints in its "New client connected ... (p2, ...)" line: its own
    /// protocol number (1 for 3.1, 2 for 3.1.1, 5 for 5.0), not the protocol level.
    pub fn log_number(self) -> u8 {
        match self {
            Version::V31 => 1,
            Version::V311 => 2,
            Version::V5 => 5,
        }
    }
}

/// Quality of service levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The outcome of decoding a prefix of a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// A complete item, and how many bytes it took.
    Complete(T, usize),
    /// A valid prefix: more bytes are needed.
    Partial,
}

/// Why bytes were refused. Each message starts with the spec clause it enforces, where the spec
/// has one, so logs and tests can name the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes break the encoding rules (MQTT 5 reason code 0x81).
    Malformed(&'static str),
    /// Well formed, but not allowed at this point (MQTT 5 reason code 0x82).
    Protocol(&'static str),
    /// The remaining length is over the limit the caller set (MQTT 5 reason code 0x95).
    TooLarge { len: usize, max: usize },
    /// A CONNECT naming a known protocol with a level midge does not speak: answer CONNACK 0x01
    /// then close [MQTT-3.1.2-2].
    UnsupportedVersion(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(m) => write!(f, "malformed packet: {m}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::TooLarge { len, max } => {
                write!(f, "packet of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::UnsupportedVersion(l) => {
                write!(f, "[MQTT-3.1.2-2] unsupported protocol level {l}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
