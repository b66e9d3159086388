//! The control packets of MQTT 3.1, 3.1.1 and 5.0, and their decoding from bytes (encoding is
//! in `encode.rs`).

use super::primitives::{read_remaining_length, utf8, Reader};
use super::props::{Place, Properties, Props};
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
pub const AUTH: u8 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 will properties.
    pub props: Properties<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub version: Version,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: &'a str,
    pub will: Option<Will<'a>>,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    pub props: Properties<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5 with a topic alias.
    pub topic: &'a str,
    /// Present exactly when `qos` is 1 or 2.
    pub pid: Option<u16>,
    pub payload: &'a [u8],
    pub props: Props<'a>,
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: a packet identifier, and in MQTT 5 a reason code and
/// properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack<'a> {
    pub pid: u16,
    pub reason: u8,
    pub props: Props<'a>,
}

impl Ack<'_> {
    /// Success, no properties.
    pub fn new(pid: u16) -> Ack<'static> {
        Ack {
            pid,
            reason: 0,
            props: Props::default(),
        }
    }
}

/// Subscription options (MQTT 5 section 3.8.3.1; 3.1.1 uses only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages at subscribe; 1: only if the subscription is new; 2: never.
    pub retain_handling: u8,
}

impl From<QoS> for SubOptions {
    fn from(qos: QoS) -> SubOptions {
        SubOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

impl SubOptions {
    pub fn byte(&self) -> u8 {
        self.qos.as_u8()
            | (self.no_local as u8) << 2
            | (self.retain_as_published as u8) << 3
            | self.retain_handling << 4
    }
}

/// A decoded packet. It lives on the stack only while it is handled, so its size (the
/// CONNECT variant carries two property sets) costs nothing, while boxing would cost an
/// allocation per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Boxed: the largest packet by far (two property sets, the will), and the rarest; every
    /// other packet moves half the bytes for it.
    Connect(Box<Connect<'a>>),
    Connack {
        session_present: bool,
        code: u8,
        props: Props<'a>,
    },
    Publish(Publish<'a>),
    Puback(Ack<'a>),
    Pubrec(Ack<'a>),
    Pubrel(Ack<'a>),
    Pubcomp(Ack<'a>),
    Subscribe {
        pid: u16,
        filters: Vec<(&'a str, SubOptions)>,
        props: Props<'a>,
    },
    Suback {
        pid: u16,
        codes: Vec<u8>,
        props: Props<'a>,
    },
    Unsubscribe {
        pid: u16,
        filters: Vec<&'a str>,
        props: Props<'a>,
    },
    /// `codes` is empty in MQTT 3.1.1.
    Unsuback {
        pid: u16,
        codes: Vec<u8>,
        props: Props<'a>,
    },
    Pingreq,
    Pingresp,
    Disconnect {
        reason: u8,
        props: Props<'a>,
    },
    /// MQTT 5 only.
    Auth {
        reason: u8,
        props: Props<'a>,
    },
}

impl<'a> Packet<'a> {
    /// A CONNECT packet.
    pub fn connect(c: Connect<'a>) -> Packet<'a> {
        Packet::Connect(Box::new(c))
    }
}

impl Packet<'static> {
    pub fn puback(pid: u16) -> Self {
        Packet::Puback(Ack::new(pid))
    }
    pub fn pubrec(pid: u16) -> Self {
        Packet::Pubrec(Ack::new(pid))
    }
    pub fn pubrel(pid: u16) -> Self {
        Packet::Pubrel(Ack::new(pid))
    }
    pub fn pubcomp(pid: u16) -> Self {
        Packet::Pubcomp(Ack::new(pid))
    }
    pub fn unsuback(pid: u16) -> Self {
        Packet::Unsuback {
            pid,
            codes: Vec::new(),
            props: Props::default(),
        }
    }
    pub fn disconnect() -> Self {
        Packet::Disconnect {
            reason: 0,
            props: Props::default(),
        }
    }
    pub fn connack(session_present: bool, code: u8) -> Self {
        Packet::Connack {
            session_present,
            code,
            props: Props::default(),
        }
    }
    pub fn suback(pid: u16, codes: Vec<u8>) -> Self {
        Packet::Suback {
            pid,
            codes,
            props: Props::default(),
        }
    }
}

impl Packet<'_> {
    /// The packet's name as mosquitto writes it in its logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::Connack { .. } => "CONNACK",
            Packet::Auth { .. } => "AUTH",
            Packet::Publish(_) => "PUBLISH",
            Packet::Puback(_) => "PUBACK",
            Packet::Pubrec(_) => "PUBREC",
            Packet::Pubrel(_) => "PUBREL",
            Packet::Pubcomp(_) => "PUBCOMP",
            Packet::Subscribe { .. } => "SUBSCRIBE",
            Packet::Suback { .. } => "SUBACK",
            Packet::Unsubscribe { .. } => "UNSUBSCRIBE",
            Packet::Unsuback { .. } => "UNSUBACK",
            Packet::Pingreq => "PINGREQ",
            Packet::Pingresp => "PINGRESP",
            Packet::Disconnect { .. } => "DISCONNECT",
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
        // Judged in decode_connect: MQTT 3.1 (as mosquitto) ignores them.
        CONNECT => return Ok(()),
        CONNACK | PUBACK | PUBREC | PUBCOMP | SUBACK | UNSUBACK | PINGREQ | PINGRESP
        | DISCONNECT | AUTH => 0x00,
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

/// A packet body with bytes after its last field.
pub const TRAILING: Error = Error::Malformed("packet body longer than its fields");

/// The same complaint, as Malformed Packet.
fn malformed(e: Error) -> Error {
    match e {
        Error::Protocol(m) => Error::Malformed(m),
        e => e,
    }
}

/// A property SUBSCRIBE and UNSUBSCRIBE may not carry is a Malformed Packet, as mosquitto says.
fn not_allowed_malformed(e: Error) -> Error {
    if e == super::props::NOT_ALLOWED {
        malformed(e)
    } else {
        e
    }
}

fn end(r: &Reader<'_>) -> Result<(), Error> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(TRAILING)
    }
}

/// Decodes a packet body, every byte of which is present.
pub fn decode_body(byte1: u8, body: &[u8], version: Version) -> Result<Packet<'_>, Error> {
    let v5 = version == Version::V5;
    let mut r = Reader::new(body);
    let p = match byte1 >> 4 {
        CONNECT => return decode_connect(byte1, &mut r),
        CONNACK => {
            let flags = r.u8()?;
            let code = r.u8()?;
            if flags & 0xfe != 0 {
                return Err(Error::Malformed(
                    "[MQTT-3.2.2-1] CONNACK reserved flags set",
                ));
            }
            let props = if v5 {
                Props::decode(&mut r, Place::Connack)?
            } else {
                Props::default()
            };
            Packet::Connack {
                session_present: flags & 1 == 1,
                code,
                props,
            }
        }
        PUBLISH => {
            let qos = QoS::from_u8((byte1 >> 1) & 3)
                .ok_or(Error::Malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3"))?;
            let t = r.string()?;
            let id = if qos == QoS::AtMostOnce {
                None
            } else {
                Some(pid(&mut r)?)
            };
            let props = if v5 {
                Props::decode(&mut r, Place::Publish)?
            } else {
                Props::default()
            };
            if !(v5 && t.is_empty() && props.topic_alias.is_some()) {
                topic::validate_name(t)?;
            }
            topic::check_depth(t)?;
            Packet::Publish(Publish {
                dup: byte1 & 0x08 != 0,
                qos,
                retain: byte1 & 0x01 != 0,
                topic: t,
                pid: id,
                payload: r.rest(),
                props,
            })
        }
        PUBACK => Packet::Puback(ack(&mut r, v5, Place::Puback)?),
        PUBREC => Packet::Pubrec(ack(&mut r, v5, Place::Pubrec)?),
        PUBREL => Packet::Pubrel(ack(&mut r, v5, Place::Pubrel)?),
        PUBCOMP => Packet::Pubcomp(ack(&mut r, v5, Place::Pubcomp)?),
        // mosquitto answers every broken SUBSCRIBE and UNSUBSCRIBE, packet identifier 0 and no
        // filter included, with 0x81 (Malformed Packet); so does midge.
        SUBSCRIBE => {
            let id = pid(&mut r).map_err(malformed)?;
            let props = if v5 {
                Props::decode(&mut r, Place::Subscribe).map_err(not_allowed_malformed)?
            } else {
                Props::default()
            };
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                let opts = r.u8()?;
                let reserved = if v5 { 0xc0 } else { 0xfc };
                if opts & reserved != 0 {
                    return Err(Error::Malformed(
                        "[MQTT-3.8.3-4] [MQTT-3.8.3-5] SUBSCRIBE options reserved bits set",
                    ));
                }
                // 3.1.1 calls it malformed [MQTT-3.8.3-4], 5.0 a Protocol Error (3.8.3.1):
                // both close the connection, and 5.0 says which with DISCONNECT 0x82.
                let qos = QoS::from_u8(opts & 3).ok_or(Error::Malformed(
                    "[MQTT-3.8.3-4] SUBSCRIBE Maximum QoS 3 (a Protocol Error in 5.0, 3.8.3.1)",
                ))?;
                let retain_handling = (opts >> 4) & 3;
                if retain_handling == 3 {
                    return Err(Error::Malformed("SUBSCRIBE retain handling 3"));
                }
                topic::validate_filter(f)?;
                topic::check_depth(f)?;
                filters.push((
                    f,
                    SubOptions {
                        qos,
                        no_local: opts & 0x04 != 0,
                        retain_as_published: opts & 0x08 != 0,
                        retain_handling,
                    },
                ));
            }
            if filters.is_empty() {
                return Err(Error::Malformed(
                    "[MQTT-3.8.3-3] SUBSCRIBE with no topic filter",
                ));
            }
            Packet::Subscribe {
                pid: id,
                filters,
                props,
            }
        }
        SUBACK => {
            let id = pid(&mut r)?;
            let props = if v5 {
                Props::decode(&mut r, Place::Suback)?
            } else {
                Props::default()
            };
            Packet::Suback {
                pid: id,
                codes: r.rest().to_vec(),
                props,
            }
        }
        UNSUBSCRIBE => {
            let id = pid(&mut r).map_err(malformed)?;
            let props = if v5 {
                Props::decode(&mut r, Place::Unsubscribe).map_err(not_allowed_malformed)?
            } else {
                Props::default()
            };
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                topic::validate_filter(f)?;
                topic::check_depth(f)?;
                filters.push(f);
            }
            if filters.is_empty() {
                return Err(Error::Malformed(
                    "[MQTT-3.10.3-2] UNSUBSCRIBE with no topic filter",
                ));
            }
            Packet::Unsubscribe {
                pid: id,
                filters,
                props,
            }
        }
        UNSUBACK => {
            let id = pid(&mut r)?;
            let (props, codes) = if v5 {
                let p = Props::decode(&mut r, Place::Unsuback)?;
                (p, r.rest().to_vec())
            } else {
                (Props::default(), Vec::new())
            };
            Packet::Unsuback {
                pid: id,
                codes,
                props,
            }
        }
        PINGREQ => Packet::Pingreq,
        PINGRESP => Packet::Pingresp,
        DISCONNECT => {
            let (reason, props) = reason_props(&mut r, v5, Place::Disconnect)?;
            Packet::Disconnect { reason, props }
        }
        AUTH if v5 => {
            let (reason, props) = reason_props(&mut r, v5, Place::Auth)?;
            Packet::Auth { reason, props }
        }
        _ => {
            return Err(Error::Malformed(
                "[MQTT-2.2.1] reserved control packet type",
            ))
        }
    };
    end(&r)?;
    Ok(p)
}

/// An acknowledgement body: the packet identifier, then in MQTT 5 an optional reason code and
/// optional properties (absent when the remaining length stops before them).
fn ack<'a>(r: &mut Reader<'a>, v5: bool, place: Place) -> Result<Ack<'a>, Error> {
    let id = pid(r)?;
    // mosquitto judges a PUBREC's or PUBREL's reason code before its properties, a PUBACK's
    // or PUBCOMP's after them; an unknown code is a Protocol Error (sections 3.4.2.1 to 3.7.2.1).
    let early = matches!(place, Place::Pubrec | Place::Pubrel);
    if v5 && early && !r.is_empty() {
        let mut peek = r.clone();
        check_ack_reason(place, peek.u8()?)?;
    }
    let (reason, props) = reason_props(r, v5, place)?;
    check_ack_reason(place, reason)?;
    Ok(Ack {
        pid: id,
        reason,
        props,
    })
}

/// The reason codes each acknowledgement may carry (MQTT 5 sections 3.4.2.1 to 3.7.2.1).
fn check_ack_reason(place: Place, code: u8) -> Result<(), Error> {
    let ok = match place {
        Place::Puback | Place::Pubrec => matches!(
            code,
            0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
        ),
        Place::Pubrel | Place::Pubcomp => matches!(code, 0x00 | 0x92),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Protocol(
            "acknowledgement with an unknown reason code",
        ))
    }
}

/// MQTT 5's optional reason code and optional properties at the end of a packet.
fn reason_props<'a>(r: &mut Reader<'a>, v5: bool, place: Place) -> Result<(u8, Props<'a>), Error> {
    if !v5 || r.is_empty() {
        return Ok((0, Props::default()));
    }
    let reason = r.u8()?;
    let props = if r.is_empty() {
        Props::default()
    } else {
        Props::decode(r, place)?
    };
    Ok((reason, props))
}

fn decode_connect<'a>(byte1: u8, r: &mut Reader<'a>) -> Result<Packet<'a>, Error> {
    let name = r.binary()?;
    let level = r.u8()?;
    // Levels 0x83 and 0x84 are 3.1 and 3.1.1 from a mosquitto bridge (the top bit says so);
    // mosquitto accepts them as those versions, and midge treats them as plain clients.
    let version = match (name, level) {
        (b"MQTT", 4 | 0x84) => Version::V311,
        (b"MQTT", 5) => Version::V5,
        (b"MQIsdp", 3 | 0x83) => Version::V31,
        (b"MQTT", 0x85) => return Err(Error::Malformed("MQTT 5 bridge protocol level")),
        (b"MQTT", l) | (b"MQIsdp", l) => return Err(Error::UnsupportedVersion(l)),
        _ => {
            return Err(Error::Protocol(
                "[MQTT-3.1.2-1] CONNECT protocol name is not MQTT",
            ))
        }
    };
    if byte1 & 0x0f != 0 && version != Version::V31 {
        return Err(Error::Malformed(
            "[MQTT-2.2.2-1] [MQTT-2.2.2-2] invalid fixed header flags for the packet type",
        ));
    }
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(Error::Malformed("[MQTT-3.1.2-3] CONNECT reserved flag set"));
    }
    let keep_alive = r.u16()?;
    let props = if version == Version::V5 {
        Properties::decode(r, Place::Connect)?
    } else {
        Properties::default()
    };
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
        let wprops = if version == Version::V5 {
            Properties::decode(r, Place::Will)?
        } else {
            Properties::default()
        };
        let t = r.string()?;
        topic::validate_name(t)?;
        let payload = r.binary()?;
        Some(Will {
            topic: t,
            payload,
            qos: QoS::from_u8(will_qos).unwrap_or(QoS::AtMostOnce),
            retain: will_retain,
            props: wprops,
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
    // MQTT 5 allows a password without a user name.
    let password = if password_flag {
        let p = r.binary()?;
        if version == Version::V5 {
            Some(p)
        } else {
            username.map(|_| p)
        }
    } else {
        None
    };
    end(r)?;
    Ok(Packet::connect(Connect {
        version,
        clean_session: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        props,
    }))
}

/// Validates a string that will be written as an MQTT UTF-8 string (used for configuration
/// values that end up on the wire).
pub fn valid_string(s: &str) -> bool {
    s.len() <= u16::MAX as usize && utf8(s.as_bytes()).is_ok()
}
