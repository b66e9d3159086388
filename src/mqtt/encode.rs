//! Encoding control packets into bytes: the broker's replies (`encode_*`, written straight into
//! a connection's output) and [`Packet::encode`] for every packet (clients, tests, tools).

use super::packet::*;
use super::primitives::{remaining_length_len, write_binary, write_remaining_length, write_u16};
use super::props::Properties;
use super::{QoS, Version};

fn header(out: &mut Vec<u8>, byte1: u8, remaining: usize) {
    out.reserve(1 + remaining_length_len(remaining) + remaining);
    out.push(byte1);
    write_remaining_length(out, remaining);
}

/// Appends a PUBLISH. The caller passes a topic of at most 65,535 bytes and a packet identifier
/// exactly when `qos` is 1 or 2. `props` is `Some(encoded property bytes, without their
/// length)` for an MQTT 5 receiver, `None` for 3.1/3.1.1.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn encode_publish(
    out: &mut Vec<u8>,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    pid: Option<u16>,
    props: Option<&[u8]>,
    payload: &[u8],
) {
    let remaining = publish_remaining(topic, pid, props, payload.len());
    out.reserve(1 + remaining_length_len(remaining) + remaining);
    publish_head(out, dup, qos, retain, topic, pid, props, remaining);
    out.extend_from_slice(payload);
}

/// Appends a PUBLISH up to its payload (fixed header, topic, packet identifier, properties),
/// for a payload of `payload_len` bytes that the caller sends after it.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_head(
    out: &mut Vec<u8>,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    pid: Option<u16>,
    props: Option<&[u8]>,
    payload_len: usize,
) {
    let remaining = publish_remaining(topic, pid, props, payload_len);
    // Room for the head only: the payload is sent from elsewhere.
    out.reserve(1 + remaining_length_len(remaining) + remaining - payload_len);
    publish_head(out, dup, qos, retain, topic, pid, props, remaining);
}

#[inline]
fn publish_remaining(topic: &str, pid: Option<u16>, props: Option<&[u8]>, payload: usize) -> usize {
    let props_len = props.map_or(0, |p| remaining_length_len(p.len()) + p.len());
    2 + topic.len() + if pid.is_some() { 2 } else { 0 } + props_len + payload
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn publish_head(
    out: &mut Vec<u8>,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    pid: Option<u16>,
    props: Option<&[u8]>,
    remaining: usize,
) {
    let byte1 = (PUBLISH << 4) | ((dup as u8) << 3) | (qos.as_u8() << 1) | retain as u8;
    out.push(byte1);
    write_remaining_length(out, remaining);
    write_binary(out, topic.as_bytes());
    if let Some(id) = pid {
        write_u16(out, id);
    }
    if let Some(p) = props {
        write_remaining_length(out, p.len());
        out.extend_from_slice(p);
    }
}

/// The encoded size of a PUBLISH, for checking a client's Maximum Packet Size.
pub fn publish_len(topic: &str, pid: bool, props: Option<&[u8]>, payload: usize) -> usize {
    let props_len = props.map_or(0, |p| remaining_length_len(p.len()) + p.len());
    let remaining = 2 + topic.len() + if pid { 2 } else { 0 } + props_len + payload;
    1 + remaining_length_len(remaining) + remaining
}

/// Appends PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1, or MQTT 5's short form: success and no
/// properties).
pub fn encode_ack(out: &mut Vec<u8>, kind: u8, pid: u16) {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    out.extend_from_slice(&[(kind << 4) | flags, 2]);
    write_u16(out, pid);
}

/// Appends an MQTT 5 acknowledgement with a reason code and properties, in the shortest form
/// the spec allows.
pub fn encode_ack_v5(out: &mut Vec<u8>, kind: u8, pid: u16, reason: u8, props: &Properties<'_>) {
    if props.is_empty() {
        if reason == 0 {
            return encode_ack(out, kind, pid);
        }
        let flags = if kind == PUBREL { 0x02 } else { 0 };
        out.extend_from_slice(&[(kind << 4) | flags, 3]);
        write_u16(out, pid);
        out.push(reason);
        return;
    }
    let mut body = Vec::new();
    write_u16(&mut body, pid);
    body.push(reason);
    props.encode(&mut body);
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    header(out, (kind << 4) | flags, body.len());
    out.extend_from_slice(&body);
}

pub fn encode_connack(out: &mut Vec<u8>, session_present: bool, code: u8) {
    out.extend_from_slice(&[CONNACK << 4, 2, session_present as u8, code]);
}

pub fn encode_connack_v5(
    out: &mut Vec<u8>,
    session_present: bool,
    code: u8,
    props: &Properties<'_>,
) {
    let mut body = vec![session_present as u8, code];
    connack_properties(props, &mut body);
    header(out, CONNACK << 4, body.len());
    out.extend_from_slice(&body);
}

/// CONNACK properties in mosquitto 2.0's order (the spec leaves the order free; clients and
/// tests written against mosquitto compare bytes): Server Keep Alive, Topic Alias Maximum,
/// Assigned Client Identifier, Authentication Method and Data, Retain Available, Maximum Packet
/// Size, Receive Maximum, Maximum QoS, then any others.
fn connack_properties(props: &Properties<'_>, out: &mut Vec<u8>) {
    use super::props::id;
    let mut rest = props.clone();
    let mut body = Vec::new();
    let mut two = |id: u8, v: Option<u16>| {
        if let Some(v) = v {
            body.push(id);
            write_u16(&mut body, v);
        }
    };
    two(id::SERVER_KEEP_ALIVE, rest.server_keep_alive.take());
    two(id::TOPIC_ALIAS_MAXIMUM, rest.topic_alias_maximum.take());
    let first = Properties {
        assigned_client_identifier: rest.assigned_client_identifier.take(),
        authentication_method: rest.authentication_method.take(),
        authentication_data: rest.authentication_data.take(),
        retain_available: rest.retain_available.take(),
        ..Properties::default()
    };
    first.encode_body(&mut body);
    if let Some(m) = rest.maximum_packet_size.take() {
        body.push(id::MAXIMUM_PACKET_SIZE);
        body.extend_from_slice(&m.to_be_bytes());
    }
    let last = Properties {
        receive_maximum: rest.receive_maximum.take(),
        maximum_qos: rest.maximum_qos.take(),
        ..Properties::default()
    };
    last.encode_body(&mut body);
    rest.encode_body(&mut body);
    write_remaining_length(out, body.len());
    out.extend_from_slice(&body);
}

/// SUBACK; `props` only for MQTT 5.
pub fn encode_suback(out: &mut Vec<u8>, pid: u16, props: Option<&Properties<'_>>, codes: &[u8]) {
    let mut body = Vec::with_capacity(3 + codes.len());
    write_u16(&mut body, pid);
    if let Some(p) = props {
        p.encode(&mut body);
    }
    body.extend_from_slice(codes);
    header(out, SUBACK << 4, body.len());
    out.extend_from_slice(&body);
}

/// UNSUBACK; `props` and `codes` only for MQTT 5.
pub fn encode_unsuback(out: &mut Vec<u8>, pid: u16, props: Option<&Properties<'_>>, codes: &[u8]) {
    match props {
        None => encode_ack(out, UNSUBACK, pid),
        Some(p) => {
            let mut body = Vec::new();
            write_u16(&mut body, pid);
            p.encode(&mut body);
            body.extend_from_slice(codes);
            header(out, UNSUBACK << 4, body.len());
            out.extend_from_slice(&body);
        }
    }
}

/// MQTT 5 DISCONNECT (or AUTH with `kind`), shortest form.
pub fn encode_reason(out: &mut Vec<u8>, kind: u8, reason: u8, props: &Properties<'_>) {
    if props.is_empty() {
        if reason == 0 {
            out.extend_from_slice(&[kind << 4, 0]);
        } else {
            out.extend_from_slice(&[kind << 4, 1, reason]);
        }
        return;
    }
    let mut body = vec![reason];
    props.encode(&mut body);
    header(out, kind << 4, body.len());
    out.extend_from_slice(&body);
}

impl Packet<'_> {
    /// Appends the packet's bytes as MQTT 3.1.1 (CONNECT uses its own version).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_version(Version::V311, out)
    }

    /// Appends the packet's bytes in the format of `version`.
    pub fn encode_version(&self, version: Version, out: &mut Vec<u8>) {
        let v5 = version == Version::V5;
        let ack = |out: &mut Vec<u8>, kind: u8, a: &Ack<'_>| {
            if v5 {
                encode_ack_v5(out, kind, a.pid, a.reason, &a.props)
            } else {
                encode_ack(out, kind, a.pid)
            }
        };
        match self {
            Packet::Connect(c) => encode_connect(out, c),
            Packet::Connack {
                session_present,
                code,
                props,
            } => {
                if v5 {
                    encode_connack_v5(out, *session_present, *code, props)
                } else {
                    encode_connack(out, *session_present, *code)
                }
            }
            Packet::Publish(p) => {
                let mut body = Vec::new();
                if v5 {
                    p.props.encode_body(&mut body);
                }
                encode_publish(
                    out,
                    p.dup,
                    p.qos,
                    p.retain,
                    p.topic,
                    p.pid,
                    v5.then_some(&body[..]),
                    p.payload,
                )
            }
            Packet::Puback(a) => ack(out, PUBACK, a),
            Packet::Pubrec(a) => ack(out, PUBREC, a),
            Packet::Pubrel(a) => ack(out, PUBREL, a),
            Packet::Pubcomp(a) => ack(out, PUBCOMP, a),
            Packet::Unsuback { pid, codes, props } => {
                encode_unsuback(out, *pid, v5.then_some(props), codes)
            }
            Packet::Subscribe {
                pid,
                filters,
                props,
            } => {
                let mut body = Vec::new();
                write_u16(&mut body, *pid);
                if v5 {
                    props.encode(&mut body);
                }
                for (f, o) in filters {
                    write_binary(&mut body, f.as_bytes());
                    body.push(if v5 { o.byte() } else { o.qos.as_u8() });
                }
                header(out, (SUBSCRIBE << 4) | 2, body.len());
                out.extend_from_slice(&body);
            }
            Packet::Suback { pid, codes, props } => {
                encode_suback(out, *pid, v5.then_some(props), codes)
            }
            Packet::Unsubscribe {
                pid,
                filters,
                props,
            } => {
                let mut body = Vec::new();
                write_u16(&mut body, *pid);
                if v5 {
                    props.encode(&mut body);
                }
                for f in filters {
                    write_binary(&mut body, f.as_bytes());
                }
                header(out, (UNSUBSCRIBE << 4) | 2, body.len());
                out.extend_from_slice(&body);
            }
            Packet::Pingreq => out.extend_from_slice(&[PINGREQ << 4, 0]),
            Packet::Pingresp => out.extend_from_slice(&[PINGRESP << 4, 0]),
            Packet::Disconnect { reason, props } => {
                if v5 {
                    encode_reason(out, DISCONNECT, *reason, props)
                } else {
                    out.extend_from_slice(&[DISCONNECT << 4, 0])
                }
            }
            Packet::Auth { reason, props } => encode_reason(out, AUTH, *reason, props),
        }
    }
}

fn encode_connect(out: &mut Vec<u8>, c: &Connect<'_>) {
    let name: &[u8] = match c.version {
        Version::V31 => b"MQIsdp",
        Version::V311 | Version::V5 => b"MQTT",
    };
    let v5 = c.version == Version::V5;
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    let mut body = Vec::new();
    write_binary(&mut body, name);
    body.push(c.version.level());
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos.as_u8() << 3) | if w.retain { 0x20 } else { 0 };
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    write_u16(&mut body, c.keep_alive);
    if v5 {
        c.props.encode(&mut body);
    }
    write_binary(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            w.props.encode(&mut body);
        }
        write_binary(&mut body, w.topic.as_bytes());
        write_binary(&mut body, w.payload);
    }
    if let Some(u) = c.username {
        write_binary(&mut body, u.as_bytes());
    }
    if let Some(p) = c.password {
        write_binary(&mut body, p);
    }
    header(out, CONNECT << 4, body.len());
    out.extend_from_slice(&body);
}
