//! Bytes that can never become a valid packet: the connection is closed with the CONNACK or
//! DISCONNECT (and reason code) that mosquitto 2.0 sends for the same bytes, if any.

use log::info;

use super::{connack, reason, Broker, Close, ConnId, Fault, Millis, State};
use crate::mqtt;

impl Broker {
    /// Bytes from `id` that can never become a valid packet: the connection is closed, with
    /// the CONNACK or DISCONNECT that mosquitto 2.0 sends for the same bytes, if any.
    pub(super) fn decode_error(&mut self, id: ConnId, e: mqtt::Error, bytes: &[u8], now: Millis) {
        let connected = self.live(id).is_some_and(|c| c.state == State::Connected);
        if !connected {
            if let mqtt::Error::UnsupportedVersion(level) = e {
                info!(
                    "Client <unknown> disconnected: unsupported protocol version {level} [MQTT-3.1.2-2]."
                );
                if let Some(out) = self.out(id) {
                    mqtt::encode_connack(out, false, connack::UNACCEPTABLE_PROTOCOL_VERSION);
                }
                return self.close(id, Close::Refused, now);
            }
            // A broken CONNECT (3.1, 3.1.1 or 5.0) is closed without a CONNACK, as mosquitto
            // does.
            info!("Client <unknown> disconnected due to malformed packet: {e}.");
            return self.close(id, Close::Dropped, now);
        }
        match reason_for(bytes, &e) {
            Some(code) => self.fail(id, Fault::Protocol(code, e.to_string().into()), now),
            None => {
                info!(
                    "Client {} disconnected due to malformed packet: {e}.",
                    self.client_name(id)
                );
                self.close(id, Close::Dropped, now);
            }
        }
    }
}

/// The MQTT 5 reason code mosquitto 2.0 sends to a connected client whose bytes can never
/// become a valid packet, or `None` where it closes without a DISCONNECT. Like mosquitto, the
/// packet type and the fixed-header flags are judged before the body: a packet only a server
/// sends (CONNACK, SUBACK, UNSUBACK, PINGRESP), AUTH (midge offers no authentication method)
/// and the reserved type 0 are a Protocol Error (0x82) whatever their body; wrong flags on
/// SUBACK and UNSUBACK, and on the packets a client sends, are a Malformed Packet (0x81).
fn reason_for(bytes: &[u8], e: &mqtt::Error) -> Option<u8> {
    if let mqtt::Error::TooLarge { .. } = e {
        return Some(reason::PACKET_TOO_LARGE);
    }
    let b1 = bytes.first().copied().unwrap_or(0);
    let (kind, flags) = (b1 >> 4, b1 & 0x0f);
    // A remaining length longer than four bytes [MQTT-1.5.5-1].
    if bytes.len() >= 5 && bytes[1..5].iter().all(|b| b & 0x80 != 0) {
        return None;
    }
    let by_error = match e {
        mqtt::Error::Malformed(_) => reason::MALFORMED_PACKET,
        _ => reason::PROTOCOL_ERROR,
    };
    match kind {
        0 | mqtt::CONNACK | mqtt::AUTH => Some(reason::PROTOCOL_ERROR),
        mqtt::CONNECT => None,
        mqtt::PINGRESP if flags != 0 => Some(reason::PROTOCOL_ERROR),
        // Wrong flags; otherwise a body, which mosquitto does not answer.
        mqtt::PINGREQ if flags != 0 => Some(reason::MALFORMED_PACKET),
        mqtt::PINGREQ | mqtt::PINGRESP => None,
        mqtt::SUBACK | mqtt::UNSUBACK if flags != 0 => Some(reason::MALFORMED_PACKET),
        mqtt::SUBACK | mqtt::UNSUBACK => Some(reason::PROTOCOL_ERROR),
        mqtt::DISCONNECT if *e == mqtt::TRAILING => Some(reason::PROTOCOL_ERROR),
        _ => Some(by_error),
    }
}
