//! MQTT 3.1 / 3.1.1 control packets: decoding from and encoding to bytes.

use super::primitives::{
    read_remaining_length, remaining_length_len, utf8, write_binary, write_remaining_length,
    write_u16, Reader,
};
use super::topic;
use super::{Error, QoS, Status, Version};

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// CONNACK return codes of MQTT 3.1 / 3.1.1 (section 3.2.2.3).
pub mod connack {
    pub const ACCEPTED: u8 = 0;
    pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 1;
    pub const IDENTIFIER_REJECTED: u8 = 2;
    pub const SERVER_UNAVAILABLE: u8 = 3;
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 4;
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// SUBACK return code for a refused subscription.
pub const SUBACK_FAILURE: u8 = 0x80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: &'a str,
    /// Present exactly when `qos` is 1 or 2.
    pub pid: Option<u16>,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Connect(Connect<'a>),
    Connack {
        session_present: bool,
        code: u8,
    },
    Publish(Publish<'a>),
    Puback(u16),
    Pubrec(u16),
    Pubrel(u16),
    Pubcomp(u16),
    Subscribe {
        pid: u16,
        filters: Vec<(&'a str, QoS)>,
    },
    Suback {
        pid: u16,
        codes: Vec<u8>,
    },
    Unsubscribe {
        pid: u16,
        filters: Vec<&'a str>,
    },
    Unsuback(u16),
    Pingreq,
    Pingresp,
    Disconnect,
}

impl Packet<'_> {
    /// The packet's name as mosquitto writes it in its logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::Connack { .. } => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::Puback(_) => "PUBACK",
            Packet::Pubrec(_) => "PUBREC",
            Packet::Pubrel(_) => "PUBREL",
            Packet::Pubcomp(_) => "PUBCOMP",
            Packet::Subscribe { .. } => "SUBSCRIBE",
            Packet::Suback { .. } => "SUBACK",
            Packet::Unsubscribe { .. } => "UNSUBSCRIBE",
            Packet::Unsuback(_) => "UNSUBACK",
            Packet::Pingreq => "PINGREQ",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

/// A parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type in the high nibble, flags in the low nibble.
    pub byte1: u8,
    /// The remaining length.
    pub remaining: usize,
    /// Bytes the fixed header itself takes (2 to 5).
    pub header_len: usize,
}

impl FixedHeader {
    pub fn packet_type(&self) -> u8 {
        self.byte1 >> 4
    }
    pub fn total_len(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Parses a fixed header and checks the whole packet's size against `max` before the body has
/// arrived. Reserved flag bits are checked here [MQTT-2.2.2-1/2].
pub fn decode_fixed_header(buf: &[u8], max: usize) -> Result<Status<FixedHeader>, Error> {
    let Some(&byte1) = buf.first() else {
        return Ok(Status::Partial);
    };
    check_flags(byte1)?;
    let (remaining, n) = match read_remaining_length(&buf[1..])? {
        Status::Complete(v, n) => (v, n),
        Status::Partial => return Ok(Status::Partial),
    };
    let h = FixedHeader {
        byte1,
        remaining,
        header_len: 1 + n,
    };
    if h.total_len() > max {
        return Err(Error::TooLarge {
            len: h.total_len(),
            max,
        });
    }
    Ok(Status::Complete(h, h.header_len))
}

fn check_flags(byte1: u8) -> Result<(), Error> {
    let flags = byte1 & 0x0f;
    let expected = match byte1 >> 4 {
        PUBLISH => {
            // [MQTT-3.3.1-4]: QoS 3 is malformed. [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
            let qos = (flags >> 1) & 0x03;
            if qos == 3 {
                return Err(Error::Malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0x08 != 0 {
                return Err(Error::Malformed(
                    "[MQTT-3.3.1-2] PUBLISH with QoS 0 and DUP set",
                ));
            }
            return Ok(());
        }
        PUBREL | SUBSCRIBE | UNSUBSCRIBE => 0x02,
        CONNECT | CONNACK | PUBACK | PUBREC | PUBCOMP | SUBACK | UNSUBACK | PINGREQ | PINGRESP
        | DISCONNECT => 0x00,
        _ => {
            return Err(Error::Malformed(
                "[MQTT-2.2.1] reserved control packet type",
            ))
        }
    };
    if flags != expected {
        return Err(Error::Malformed(
            "[MQTT-2.2.2-1] [MQTT-2.2.2-2] invalid fixed header flags for the packet type",
        ));
    }
    Ok(())
}

/// Decodes one packet from the start of `buf`. `max` bounds the whole packet's size in bytes;
/// `version` is the connection's protocol (before CONNECT, any).
pub fn decode(buf: &[u8], version: Version, max: usize) -> Result<Status<Packet<'_>>, Error> {
    let h = match decode_fixed_header(buf, max)? {
        Status::Complete(h, _) => h,
        Status::Partial => return Ok(Status::Partial),
    };
    let Some(body) = buf.get(h.header_len..h.total_len()) else {
        return Ok(Status::Partial);
    };
    let p = decode_body(h.byte1, body, version)?;
    Ok(Status::Complete(p, h.total_len()))
}

fn pid(r: &mut Reader<'_>) -> Result<u16, Error> {
    let id = r.u16()?;
    if id == 0 {
        return Err(Error::Protocol("[MQTT-2.3.1-1] packet identifier is zero"));
    }
    Ok(id)
}

fn end(r: &Reader<'_>) -> Result<(), Error> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(Error::Malformed("packet body longer than its fields"))
    }
}

/// Decodes a packet body, every byte of which is present.
pub fn decode_body(byte1: u8, body: &[u8], version: Version) -> Result<Packet<'_>, Error> {
    let _ = version;
    let mut r = Reader::new(body);
    let p = match byte1 >> 4 {
        CONNECT => return decode_connect(&mut r),
        CONNACK => {
            let flags = r.u8()?;
            let code = r.u8()?;
            if flags & 0xfe != 0 {
                return Err(Error::Malformed(
                    "[MQTT-3.2.2-1] CONNACK reserved flags set",
                ));
            }
            Packet::Connack {
                session_present: flags & 1 == 1,
                code,
            }
        }
        PUBLISH => {
            let qos = QoS::from_u8((byte1 >> 1) & 3)
                .ok_or(Error::Malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3"))?;
            let t = r.string()?;
            topic::validate_name(t)?;
            let id = if qos == QoS::AtMostOnce {
                None
            } else {
                Some(pid(&mut r)?)
            };
            Packet::Publish(Publish {
                dup: byte1 & 0x08 != 0,
                qos,
                retain: byte1 & 0x01 != 0,
                topic: t,
                pid: id,
                payload: r.rest(),
            })
        }
        PUBACK => Packet::Puback(pid(&mut r)?),
        PUBREC => Packet::Pubrec(pid(&mut r)?),
        PUBREL => Packet::Pubrel(pid(&mut r)?),
        PUBCOMP => Packet::Pubcomp(pid(&mut r)?),
        SUBSCRIBE => {
            let id = pid(&mut r)?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                let opts = r.u8()?;
                if opts & 0xfc != 0 {
                    return Err(Error::Malformed(
                        "[MQTT-3.8.3-4] SUBSCRIBE requested QoS reserved bits set",
                    ));
                }
                let qos = QoS::from_u8(opts)
                    .ok_or(Error::Malformed("[MQTT-3.8.3-4] SUBSCRIBE requested QoS 3"))?;
                topic::validate_filter(f)?;
                filters.push((f, qos));
            }
            if filters.is_empty() {
                return Err(Error::Protocol(
                    "[MQTT-3.8.3-3] SUBSCRIBE with no topic filter",
                ));
            }
            Packet::Subscribe { pid: id, filters }
        }
        SUBACK => {
            let id = pid(&mut r)?;
            let codes = r.rest().to_vec();
            Packet::Suback { pid: id, codes }
        }
        UNSUBSCRIBE => {
            let id = pid(&mut r)?;
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                topic::validate_filter(f)?;
                filters.push(f);
            }
            if filters.is_empty() {
                return Err(Error::Protocol(
                    "[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter",
                ));
            }
            Packet::Unsubscribe { pid: id, filters }
        }
        UNSUBACK => Packet::Unsuback(pid(&mut r)?),
        PINGREQ => Packet::Pingreq,
        PINGRESP => Packet::Pingresp,
        DISCONNECT => Packet::Disconnect,
        _ => {
            return Err(Error::Malformed(
                "[MQTT-2.2.1] reserved control packet type",
            ))
        }
    };
    end(&r)?;
    Ok(p)
}

fn decode_connect<'a>(r: &mut Reader<'a>) -> Result<Packet<'a>, Error> {
    let name = r.binary()?;
    let level = r.u8()?;
    let version = match (name, level) {
        (b"MQTT", 4) => Version::V311,
        (b"MQIsdp", 3) => Version::V31,
        (b"MQTT", l) | (b"MQIsdp", l) => return Err(Error::UnsupportedVersion(l)),
        _ => {
            return Err(Error::Protocol(
                "[MQTT-3.1.2-1] CONNECT protocol name is not MQTT",
            ))
        }
    };
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(Error::Malformed("[MQTT-3.1.2-3] CONNECT reserved flag set"));
    }
    let keep_alive = r.u16()?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(Error::Malformed(
            "[MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] will QoS/retain set without the will flag",
        ));
    }
    if will_qos == 3 {
        return Err(Error::Malformed("[MQTT-3.1.2-14] will QoS 3"));
    }
    if version == Version::V311 && password_flag && !username_flag {
        return Err(Error::Malformed(
            "[MQTT-3.1.2-22] password flag set without the user name flag",
        ));
    }
    let client_id = r.string()?;
    let will = if will_flag {
        let t = r.string()?;
        topic::validate_name(t)?;
        let payload = r.binary()?;
        Some(Will {
            topic: t,
            payload,
            qos: QoS::from_u8(will_qos).unwrap_or(QoS::AtMostOnce),
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    // MQTT 3.1 clients may set the password flag alone; the password is then read and ignored.
    let password = if password_flag {
        let p = r.binary()?;
        username.map(|_| p)
    } else {
        None
    };
    end(r)?;
    Ok(Packet::Connect(Connect {
        version,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    }))
}

fn header(out: &mut Vec<u8>, byte1: u8, remaining: usize) {
    out.reserve(1 + remaining_length_len(remaining) + remaining);
    out.push(byte1);
    write_remaining_length(out, remaining);
}

/// Appends a PUBLISH. The caller passes a topic of at most 65,535 bytes and a packet identifier
/// exactly when `qos` is 1 or 2.
pub fn encode_publish(
    out: &mut Vec<u8>,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    pid: Option<u16>,
    payload: &[u8],
) {
    let byte1 = (PUBLISH << 4) | ((dup as u8) << 3) | (qos.as_u8() << 1) | retain as u8;
    let remaining = 2 + topic.len() + if pid.is_some() { 2 } else { 0 } + payload.len();
    header(out, byte1, remaining);
    write_binary(out, topic.as_bytes());
    if let Some(id) = pid {
        write_u16(out, id);
    }
    out.extend_from_slice(payload);
}

/// Appends PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK.
pub fn encode_ack(out: &mut Vec<u8>, kind: u8, pid: u16) {
    let flags = if kind == PUBREL { 0x02 } else { 0 };
    out.extend_from_slice(&[(kind << 4) | flags, 2]);
    write_u16(out, pid);
}

pub fn encode_connack(out: &mut Vec<u8>, session_present: bool, code: u8) {
    out.extend_from_slice(&[CONNACK << 4, 2, session_present as u8, code]);
}

pub fn encode_suback(out: &mut Vec<u8>, pid: u16, codes: &[u8]) {
    header(out, SUBACK << 4, 2 + codes.len());
    write_u16(out, pid);
    out.extend_from_slice(codes);
}

impl Packet<'_> {
    /// Appends the packet's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Connect(c) => encode_connect(out, c),
            Packet::Connack {
                session_present,
                code,
            } => encode_connack(out, *session_present, *code),
            Packet::Publish(p) => {
                encode_publish(out, p.dup, p.qos, p.retain, p.topic, p.pid, p.payload)
            }
            Packet::Puback(id) => encode_ack(out, PUBACK, *id),
            Packet::Pubrec(id) => encode_ack(out, PUBREC, *id),
            Packet::Pubrel(id) => encode_ack(out, PUBREL, *id),
            Packet::Pubcomp(id) => encode_ack(out, PUBCOMP, *id),
            Packet::Unsuback(id) => encode_ack(out, UNSUBACK, *id),
            Packet::Subscribe { pid, filters } => {
                let len = 2 + filters.iter().map(|(f, _)| 3 + f.len()).sum::<usize>();
                header(out, (SUBSCRIBE << 4) | 2, len);
                write_u16(out, *pid);
                for (f, q) in filters {
                    write_binary(out, f.as_bytes());
                    out.push(q.as_u8());
                }
            }
            Packet::Suback { pid, codes } => encode_suback(out, *pid, codes),
            Packet::Unsubscribe { pid, filters } => {
                let len = 2 + filters.iter().map(|f| 2 + f.len()).sum::<usize>();
                header(out, (UNSUBSCRIBE << 4) | 2, len);
                write_u16(out, *pid);
                for f in filters {
                    write_binary(out, f.as_bytes());
                }
            }
            Packet::Pingreq => out.extend_from_slice(&[PINGREQ << 4, 0]),
            Packet::Pingresp => out.extend_from_slice(&[PINGRESP << 4, 0]),
            Packet::Disconnect => out.extend_from_slice(&[DISCONNECT << 4, 0]),
        }
    }
}

fn encode_connect(out: &mut Vec<u8>, c: &Connect<'_>) {
    let name: &[u8] = match c.version {
        Version::V31 => b"MQIsdp",
        Version::V311 => b"MQTT",
    };
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    let mut len = 2 + name.len() + 1 + 1 + 2 + 2 + c.client_id.len();
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos.as_u8() << 3) | if w.retain { 0x20 } else { 0 };
        len += 4 + w.topic.len() + w.payload.len();
    }
    if let Some(u) = c.username {
        flags |= 0x80;
        len += 2 + u.len();
    }
    if let Some(p) = c.password {
        flags |= 0x40;
        len += 2 + p.len();
    }
    header(out, CONNECT << 4, len);
    write_binary(out, name);
    out.push(c.version.level());
    out.push(flags);
    write_u16(out, c.keep_alive);
    write_binary(out, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        write_binary(out, w.topic.as_bytes());
        write_binary(out, w.payload);
    }
    if let Some(u) = c.username {
        write_binary(out, u.as_bytes());
    }
    if let Some(p) = c.password {
        write_binary(out, p);
    }
}

/// Validates a string that will be written as an MQTT UTF-8 string (used for configuration
/// values that end up on the wire).
pub fn valid_string(s: &str) -> bool {
    s.len() <= u16::MAX as usize && utf8(s.as_bytes()).is_ok()
}
