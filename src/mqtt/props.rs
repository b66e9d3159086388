//! MQTT 5 properties (section 2.2.2): decoding with the spec's rules on which packet may carry
//! which property and how often, and encoding.

use super::primitives::{utf8, write_binary, write_remaining_length, write_u16, Reader};
use super::Error;

/// Property identifiers.
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where properties appear; each property is allowed in some of these (table 2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Connect,
    Connack,
    Publish,
    Will,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Disconnect,
    Auth,
}

/// The properties of one packet, borrowing from its bytes. Absent properties are `None`;
/// user properties keep their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties<'a> {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<&'a str>,
    pub response_topic: Option<&'a str>,
    pub correlation_data: Option<&'a [u8]>,
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<&'a str>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<&'a str>,
    pub authentication_data: Option<&'a [u8]>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<&'a str>,
    pub server_reference: Option<&'a str>,
    pub reason_string: Option<&'a str>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user: Vec<(&'a str, &'a str)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
    /// The property bytes as received (empty for properties built here).
    pub raw: Raw<'a>,
}

/// No properties: what an absent [`Props`] reads as.
static NONE: Properties<'static> = Properties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    content_type: None,
    response_topic: None,
    correlation_data: None,
    subscription_identifiers: Vec::new(),
    session_expiry_interval: None,
    assigned_client_identifier: None,
    server_keep_alive: None,
    authentication_method: None,
    authentication_data: None,
    request_problem_information: None,
    will_delay_interval: None,
    request_response_information: None,
    response_information: None,
    server_reference: None,
    reason_string: None,
    receive_maximum: None,
    topic_alias_maximum: None,
    topic_alias: None,
    maximum_qos: None,
    retain_available: None,
    user: Vec::new(),
    maximum_packet_size: None,
    wildcard_subscription_available: None,
    subscription_identifier_available: None,
    shared_subscription_available: None,
    raw: Raw(&[]),
};

/// A packet's properties as the packet holds them: one pointer, null when there are none (every
/// MQTT 3.1.1 packet and most MQTT 5 ones), so that a decoded [`Packet`](super::Packet) is a few
/// words to move instead of the 272 bytes of a [`Properties`]. Reads as a `Properties` (through
/// `Deref`; absent reads as empty); a write allocates it.
#[derive(Clone, Default)]
pub struct Props<'a>(Option<Box<Properties<'a>>>);

impl<'a> Props<'a> {
    /// Whether there are none.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// [`Properties::decode`], allocating only when the block is not empty.
    pub fn decode(r: &mut Reader<'a>, place: Place) -> Result<Props<'a>, Error> {
        let p = Properties::decode(r, place)?;
        Ok(if p.raw.0.is_empty() {
            Props(None)
        } else {
            Props(Some(Box::new(p)))
        })
    }
}

impl<'a> std::ops::Deref for Props<'a> {
    type Target = Properties<'a>;
    #[inline]
    fn deref(&self) -> &Properties<'a> {
        match &self.0 {
            Some(p) => p,
            None => &NONE,
        }
    }
}

impl std::ops::DerefMut for Props<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.get_or_insert_with(Box::default)
    }
}

impl<'a> From<Properties<'a>> for Props<'a> {
    fn from(p: Properties<'a>) -> Props<'a> {
        // Decoded properties are empty exactly when their bytes are; built ones are compared.
        if p.raw.0.is_empty() && p == NONE {
            Props(None)
        } else {
            Props(Some(Box::new(p)))
        }
    }
}

impl PartialEq for Props<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Props<'_> {}

impl std::fmt::Debug for Props<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// Property bytes as they arrived, kept so that a PUBLISH can be forwarded with its
/// properties in the publisher's order. Equal to any other: two property sets are compared by
/// their values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw<'a>(pub &'a [u8]);

impl PartialEq for Raw<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Raw<'_> {}

fn allowed(prop: u8, place: Place) -> bool {
    use Place::*;
    match prop {
        id::PAYLOAD_FORMAT_INDICATOR
        | id::MESSAGE_EXPIRY_INTERVAL
        | id::CONTENT_TYPE
        | id::RESPONSE_TOPIC
        | id::CORRELATION_DATA => matches!(place, Publish | Will),
        id::SUBSCRIPTION_IDENTIFIER => matches!(place, Publish | Subscribe),
        id::SESSION_EXPIRY_INTERVAL => matches!(place, Connect | Connack | Disconnect),
        id::ASSIGNED_CLIENT_IDENTIFIER
        | id::SERVER_KEEP_ALIVE
        | id::RESPONSE_INFORMATION
        | id::MAXIMUM_QOS
        | id::RETAIN_AVAILABLE
        | id::WILDCARD_SUBSCRIPTION_AVAILABLE
        | id::SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | id::SHARED_SUBSCRIPTION_AVAILABLE => place == Connack,
        id::AUTHENTICATION_METHOD | id::AUTHENTICATION_DATA => {
            matches!(place, Connect | Connack | Auth)
        }
        id::REQUEST_PROBLEM_INFORMATION | id::REQUEST_RESPONSE_INFORMATION => place == Connect,
        id::WILL_DELAY_INTERVAL => place == Will,
        id::SERVER_REFERENCE => matches!(place, Connack | Disconnect),
        id::REASON_STRING => !matches!(place, Connect | Publish | Will | Subscribe | Unsubscribe),
        id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS_MAXIMUM | id::MAXIMUM_PACKET_SIZE => {
            matches!(place, Connect | Connack)
        }
        id::TOPIC_ALIAS => place == Publish,
        id::USER_PROPERTY => true,
        _ => false,
    }
}

/// A known property on a packet that may not carry it.
pub const NOT_ALLOWED: Error =
    Error::Protocol("[MQTT-2.2.2-1] property not allowed on this packet");

/// Whether `pid` is a property identifier of MQTT 5 (table 2-4).
fn known(pid: u8) -> bool {
    use id::*;
    matches!(
        pid,
        PAYLOAD_FORMAT_INDICATOR
            | MESSAGE_EXPIRY_INTERVAL
            | CONTENT_TYPE
            | RESPONSE_TOPIC
            | CORRELATION_DATA
            | SUBSCRIPTION_IDENTIFIER
            | SESSION_EXPIRY_INTERVAL
            | ASSIGNED_CLIENT_IDENTIFIER
            | SERVER_KEEP_ALIVE
            | AUTHENTICATION_METHOD
            | AUTHENTICATION_DATA
            | REQUEST_PROBLEM_INFORMATION
            | WILL_DELAY_INTERVAL
            | REQUEST_RESPONSE_INFORMATION
            | RESPONSE_INFORMATION
            | SERVER_REFERENCE
            | REASON_STRING
            | RECEIVE_MAXIMUM
            | TOPIC_ALIAS_MAXIMUM
            | TOPIC_ALIAS
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | USER_PROPERTY
            | MAXIMUM_PACKET_SIZE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE
    )
}

fn dup() -> Error {
    Error::Protocol("[MQTT-2.2.2-2] a property appears more than once")
}

fn set<T>(slot: &mut Option<T>, v: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(dup());
    }
    *slot = Some(v);
    Ok(())
}

/// A variable byte integer from the reader (at most four bytes).
pub fn read_varint(r: &mut Reader<'_>) -> Result<u32, Error> {
    let mut v: u32 = 0;
    for i in 0..4 {
        let b = r.u8()?;
        v |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::Malformed(
        "[MQTT-1.5.5-1] variable byte integer uses more than four bytes",
    ))
}

fn u32_(r: &mut Reader<'_>) -> Result<u32, Error> {
    let s = r.take(4)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<u8, Error> {
    let b = r.u8()?;
    if b > 1 {
        return Err(Error::Protocol(what));
    }
    Ok(b)
}

impl<'a> Properties<'a> {
    /// Reads a property length and the properties it covers, checking each against `place`.
    pub fn decode(r: &mut Reader<'a>, place: Place) -> Result<Properties<'a>, Error> {
        let len = read_varint(r)? as usize;
        let bytes = r.take(len)?;
        let mut r = Reader::new(bytes);
        let mut p = Properties {
            raw: Raw(bytes),
            ..Properties::default()
        };
        while !r.is_empty() {
            let pid = read_varint(&mut r)?;
            let pid = u8::try_from(pid).map_err(|_| Error::Malformed("unknown property"))?;
            // A known property on the wrong packet is a Protocol Error, as mosquitto answers.
            if !allowed(pid, place) && known(pid) {
                return Err(NOT_ALLOWED);
            }
            if !allowed(pid, place) {
                return Err(Error::Malformed("unknown property"));
            }
            match pid {
                id::PAYLOAD_FORMAT_INDICATOR => set(
                    &mut p.payload_format_indicator,
                    flag(&mut r, "payload format indicator is not 0 or 1")?,
                )?,
                id::MESSAGE_EXPIRY_INTERVAL => set(&mut p.message_expiry_interval, u32_(&mut r)?)?,
                id::CONTENT_TYPE => set(&mut p.content_type, r.string()?)?,
                id::RESPONSE_TOPIC => {
                    let t = r.string()?;
                    // [MQTT-3.3.2-14]: a topic name, so no wildcards.
                    super::topic::validate_name(t).map_err(|_| {
                        Error::Protocol("[MQTT-3.3.2-14] response topic contains a wildcard")
                    })?;
                    set(&mut p.response_topic, t)?
                }
                id::CORRELATION_DATA => set(&mut p.correlation_data, r.binary()?)?,
                id::SUBSCRIPTION_IDENTIFIER => {
                    let v = read_varint(&mut r)?;
                    if v == 0 {
                        return Err(Error::Malformed(
                            "[MQTT-3.8.2-1] subscription identifier is zero",
                        ));
                    }
                    if place == Place::Subscribe && !p.subscription_identifiers.is_empty() {
                        return Err(dup());
                    }
                    p.subscription_identifiers.push(v);
                }
                id::SESSION_EXPIRY_INTERVAL => set(&mut p.session_expiry_interval, u32_(&mut r)?)?,
                id::ASSIGNED_CLIENT_IDENTIFIER => {
                    set(&mut p.assigned_client_identifier, r.string()?)?
                }
                id::SERVER_KEEP_ALIVE => set(&mut p.server_keep_alive, r.u16()?)?,
                id::AUTHENTICATION_METHOD => set(&mut p.authentication_method, r.string()?)?,
                id::AUTHENTICATION_DATA => set(&mut p.authentication_data, r.binary()?)?,
                id::REQUEST_PROBLEM_INFORMATION => set(
                    &mut p.request_problem_information,
                    flag(&mut r, "request problem information is not 0 or 1")?,
                )?,
                id::WILL_DELAY_INTERVAL => set(&mut p.will_delay_interval, u32_(&mut r)?)?,
                id::REQUEST_RESPONSE_INFORMATION => set(
                    &mut p.request_response_information,
                    flag(&mut r, "request response information is not 0 or 1")?,
                )?,
                id::RESPONSE_INFORMATION => set(&mut p.response_information, r.string()?)?,
                id::SERVER_REFERENCE => set(&mut p.server_reference, r.string()?)?,
                id::REASON_STRING => set(&mut p.reason_string, r.string()?)?,
                id::RECEIVE_MAXIMUM => {
                    let v = r.u16()?;
                    if v == 0 {
                        return Err(Error::Protocol("receive maximum is zero (3.1.2.11.3)"));
                    }
                    set(&mut p.receive_maximum, v)?
                }
                id::TOPIC_ALIAS_MAXIMUM => set(&mut p.topic_alias_maximum, r.u16()?)?,
                id::TOPIC_ALIAS => set(&mut p.topic_alias, r.u16()?)?,
                id::MAXIMUM_QOS => set(
                    &mut p.maximum_qos,
                    flag(&mut r, "maximum QoS is not 0 or 1")?,
                )?,
                id::RETAIN_AVAILABLE => set(
                    &mut p.retain_available,
                    flag(&mut r, "retain available is not 0 or 1")?,
                )?,
                id::USER_PROPERTY => {
                    let k = r.string()?;
                    let v = r.string()?;
                    p.user.push((k, v));
                }
                id::MAXIMUM_PACKET_SIZE => {
                    let v = u32_(&mut r)?;
                    if v == 0 {
                        return Err(Error::Protocol("maximum packet size is zero"));
                    }
                    set(&mut p.maximum_packet_size, v)?
                }
                id::WILDCARD_SUBSCRIPTION_AVAILABLE => set(
                    &mut p.wildcard_subscription_available,
                    flag(&mut r, "wildcard subscription available is not 0 or 1")?,
                )?,
                id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => set(
                    &mut p.subscription_identifier_available,
                    flag(&mut r, "subscription identifier available is not 0 or 1")?,
                )?,
                id::SHARED_SUBSCRIPTION_AVAILABLE => set(
                    &mut p.shared_subscription_available,
                    flag(&mut r, "shared subscription available is not 0 or 1")?,
                )?,
                _ => return Err(Error::Malformed("unknown property")),
            }
        }
        if let Some(ct) = p.content_type {
            utf8(ct.as_bytes())?;
        }
        Ok(p)
    }

    /// Appends the property length and the properties.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        write_remaining_length(out, body.len());
        out.extend_from_slice(&body);
    }

    /// Appends the properties without their length.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        let byte = |out: &mut Vec<u8>, id: u8, v: Option<u8>| {
            if let Some(v) = v {
                out.extend_from_slice(&[id, v]);
            }
        };
        let two = |out: &mut Vec<u8>, id: u8, v: Option<u16>| {
            if let Some(v) = v {
                out.push(id);
                write_u16(out, v);
            }
        };
        let four = |out: &mut Vec<u8>, id: u8, v: Option<u32>| {
            if let Some(v) = v {
                out.push(id);
                out.extend_from_slice(&v.to_be_bytes());
            }
        };
        let bin = |out: &mut Vec<u8>, id: u8, v: Option<&[u8]>| {
            if let Some(v) = v {
                out.push(id);
                write_binary(out, v);
            }
        };
        byte(
            out,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        four(
            out,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        bin(out, id::CONTENT_TYPE, self.content_type.map(str::as_bytes));
        bin(
            out,
            id::RESPONSE_TOPIC,
            self.response_topic.map(str::as_bytes),
        );
        bin(out, id::CORRELATION_DATA, self.correlation_data);
        for &s in &self.subscription_identifiers {
            out.push(id::SUBSCRIPTION_IDENTIFIER);
            write_remaining_length(out, s as usize);
        }
        four(
            out,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        bin(
            out,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.map(str::as_bytes),
        );
        two(out, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        bin(
            out,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.map(str::as_bytes),
        );
        bin(out, id::AUTHENTICATION_DATA, self.authentication_data);
        byte(
            out,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        four(out, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        byte(
            out,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        bin(
            out,
            id::RESPONSE_INFORMATION,
            self.response_information.map(str::as_bytes),
        );
        bin(
            out,
            id::SERVER_REFERENCE,
            self.server_reference.map(str::as_bytes),
        );
        bin(
            out,
            id::REASON_STRING,
            self.reason_string.map(str::as_bytes),
        );
        two(out, id::RECEIVE_MAXIMUM, self.receive_maximum);
        two(out, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        two(out, id::TOPIC_ALIAS, self.topic_alias);
        byte(out, id::MAXIMUM_QOS, self.maximum_qos);
        byte(out, id::RETAIN_AVAILABLE, self.retain_available);
        for (k, v) in &self.user {
            out.push(id::USER_PROPERTY);
            write_binary(out, k.as_bytes());
            write_binary(out, v.as_bytes());
        }
        four(out, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        byte(
            out,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        byte(
            out,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifier_available,
        );
        byte(
            out,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }

    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// The PUBLISH properties a broker forwards unchanged, in order (payload format, content
    /// type, response topic, correlation data, user properties), encoded without a length:
    /// stored once with the message.
    pub fn forwardable(&self) -> Vec<u8> {
        if let Some(out) = forwardable_raw(self.raw.0) {
            return out;
        }
        let p = Properties {
            payload_format_indicator: self.payload_format_indicator,
            content_type: self.content_type,
            response_topic: self.response_topic,
            correlation_data: self.correlation_data,
            user: self.user.clone(),
            ..Properties::default()
        };
        let mut out = Vec::new();
        p.encode_body(&mut out);
        out
    }
}

/// The properties of `raw` a broker forwards, as they were received: all but Message Expiry
/// Interval (forwarded with the time left), Subscription Identifiers, Topic Alias and Will Delay
/// Interval, as mosquitto forwards them. None for an empty or unreadable block.
fn forwardable_raw(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() {
        return None;
    }
    let mut r = Reader::new(raw);
    let mut out = Vec::with_capacity(raw.len());
    while !r.is_empty() {
        let start = raw.len().saturating_sub(r.remaining());
        let pid = u8::try_from(read_varint(&mut r).ok()?).ok()?;
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR
            | id::REQUEST_PROBLEM_INFORMATION
            | id::REQUEST_RESPONSE_INFORMATION
            | id::MAXIMUM_QOS
            | id::RETAIN_AVAILABLE
            | id::WILDCARD_SUBSCRIPTION_AVAILABLE
            | id::SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | id::SHARED_SUBSCRIPTION_AVAILABLE => {
                r.take(1).ok()?;
            }
            id::SERVER_KEEP_ALIVE
            | id::RECEIVE_MAXIMUM
            | id::TOPIC_ALIAS_MAXIMUM
            | id::TOPIC_ALIAS => {
                r.take(2).ok()?;
            }
            id::MESSAGE_EXPIRY_INTERVAL
            | id::SESSION_EXPIRY_INTERVAL
            | id::WILL_DELAY_INTERVAL
            | id::MAXIMUM_PACKET_SIZE => {
                r.take(4).ok()?;
            }
            id::SUBSCRIPTION_IDENTIFIER => {
                read_varint(&mut r).ok()?;
            }
            id::USER_PROPERTY => {
                r.binary().ok()?;
                r.binary().ok()?;
            }
            _ => {
                r.binary().ok()?;
            }
        }
        let end = raw.len().saturating_sub(r.remaining());
        if !matches!(
            pid,
            id::MESSAGE_EXPIRY_INTERVAL
                | id::SUBSCRIPTION_IDENTIFIER
                | id::TOPIC_ALIAS
                | id::WILL_DELAY_INTERVAL
        ) {
            out.extend_from_slice(raw.get(start..end)?);
        }
    }
    Some(out)
}
