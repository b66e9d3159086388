//! The codes the broker puts in its replies, by name: MQTT 5 reason codes (section 2.4), the
//! CONNACK return codes of MQTT 3.1 / 3.1.1 (section 3.2.2.3) and the MQTT 3.1.1 SUBACK
//! failure code (section 3.9.3).

// ----- MQTT 5 reason codes ----------------------------------------------------------------------

pub const SUCCESS: u8 = 0x00;
pub const DISCONNECT_WITH_WILL: u8 = 0x04;
pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
/// The lowest code that reports a failure: every code from here up is an error (section 2.4).
pub const UNSPECIFIED_ERROR: u8 = 0x80;
pub const MALFORMED_PACKET: u8 = 0x81;
pub const PROTOCOL_ERROR: u8 = 0x82;
pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
pub const BAD_USER_NAME_OR_PASSWORD: u8 = 0x86;
pub const NOT_AUTHORIZED: u8 = 0x87;
pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
pub const SESSION_TAKEN_OVER: u8 = 0x8E;
pub const QUOTA_EXCEEDED: u8 = 0x97;
pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
pub const PACKET_TOO_LARGE: u8 = 0x95;
pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
pub const QOS_NOT_SUPPORTED: u8 = 0x9B;

/// Whether a reason code reports a failure (0x80 and above).
pub fn is_error(code: u8) -> bool {
    code >= UNSPECIFIED_ERROR
}

// ----- MQTT 3.1 / 3.1.1 -------------------------------------------------------------------------

/// CONNACK return codes of MQTT 3.1 / 3.1.1 (section 3.2.2.3).
pub mod connack {
    pub const ACCEPTED: u8 = 0;
    pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 1;
    pub const IDENTIFIER_REJECTED: u8 = 2;
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 4;
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// SUBACK return code for a refused subscription (MQTT 3.1.1 section 3.9.3).
pub const SUBACK_FAILURE: u8 = 0x80;
