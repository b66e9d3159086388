//! midge: a small, fast MQTT broker.
//!
//! The layers, from the bytes up:
//! - [`mqtt`]: the codec. Decodes a byte slice into a packet that borrows from it, or says it
//!   needs more bytes, or says why the bytes are invalid; encodes packets into a `Vec<u8>`.
//! - [`broker`]: the sans-IO core. Connections, sessions, subscriptions, retained messages,
//!   QoS flows, keepalive and wills. Takes bytes and `now`, returns bytes and the next deadline.
//! - [`config`]: mosquitto.conf, parsed from a `&str`.
//! - [`net`]: the only part that touches sockets and the clock: one thread, one `mio::Poll`.
//! - [`auth`]: password and ACL files, parsed from bytes; [`persist`]: the snapshot format
//!   (parsed from bytes) and the file it is kept in; [`logging`]: mosquitto's log options.
#![forbid(unsafe_code)]

pub mod auth;
pub mod broker;
pub mod config;
pub mod logging;
pub mod mqtt;
pub mod net;
pub mod persist;
pub use persist::store;
