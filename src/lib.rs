//! midge: a small, fast MQTT broker.
#![forbid(unsafe_code)]

pub mod mqtt;
