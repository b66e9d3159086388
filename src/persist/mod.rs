//! The on-disk snapshot: what survives a restart, as plain data.
//!
//! The broker turns its state into a [`Snapshot`] (`Broker::snapshot`) and back
//! (`Broker::restore`); [`format`](mod@format) turns a snapshot into bytes and bytes back into as much of a
//! snapshot as is intact, without IO; [`store`] reads and writes the file (write a new file,
//! fsync, rename over the old one, fsync the directory: [`atomic`]).

pub mod atomic;
pub mod format;
pub mod store;

/// A stored application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMsg {
    pub topic: String,
    pub payload: Vec<u8>,
    /// 0, 1 or 2: the QoS it was published with.
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 forwarded properties, encoded (see `broker::Message::props`).
    pub props: Vec<u8>,
    /// Seconds of message expiry left when the snapshot was taken; `None`: never expires.
    pub expiry_left: Option<u32>,
    /// For retained messages under an ACL: the publisher (client id, user name, listener).
    pub origin: Option<(String, Option<String>, u32)>,
}

/// One subscription of a stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSub {
    pub filter: String,
    /// The MQTT 5 subscription options byte (QoS in bits 0-1, No Local bit 2, Retain As
    /// Published bit 3, Retain Handling bits 4-5); for 3.1.1 just the QoS.
    pub options: u8,
    /// Subscription identifier; 0: none.
    pub id: u32,
}

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// Queued, not sent yet.
    Queued = 0,
    /// Sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    AwaitAck = 1,
    /// PUBREC received, PUBREL sent, waiting for PUBCOMP.
    AwaitComp = 2,
}

/// A message in a session's queue or in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOut {
    pub state: OutState,
    /// Packet identifier (0 while queued).
    pub pid: u16,
    /// The QoS it is delivered at.
    pub qos: u8,
    pub retain: bool,
    pub sub_ids: Vec<u32>,
    pub msg: StoredMsg,
}

/// A persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: String,
    pub username: Option<String>,
    pub listener: u32,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// Seconds left before it expires, if it was counting down when saved.
    pub expiry_left: Option<u32>,
    pub subs: Vec<StoredSub>,
    /// In flight first (in the order sent), then queued (in order).
    pub out: Vec<StoredOut>,
    /// Packet identifiers of incoming QoS 2 messages received, not yet released by PUBREL.
    pub incoming_qos2: Vec<u16>,
    /// A will waiting for its delay: seconds left, and the message.
    pub pending_will: Option<(u32, StoredMsg)>,
    /// The last packet identifier used towards the client.
    pub last_pid: u16,
}

/// Everything that survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub retained: Vec<StoredMsg>,
    pub sessions: Vec<StoredSession>,
}
