//! Fuzzes the MQTT packet decoder (`midge::mqtt::decode`) as MQTT 3.1, 3.1.1 and 5.0, with
//! several packet size limits. Whatever the bytes, `decode` must not panic, and:
//!
//! - a `Complete(packet, n)` answer has `n <= max` and `n <= input length`;
//! - every strict prefix of that packet is `Partial` (never an error: the bytes so far are a
//!   valid prefix), and a limit of `n - 1` is refused with `TooLarge` before the body is read;
//! - the packet re-encoded with `Packet::encode_version` in the same version decodes again to
//!   an equal packet, and re-encoding that gives the same bytes (the encoder is a fixed point
//!   after one round). The first encoding may differ from the input bytes: the input may use
//!   non-minimal variable byte integers, MQTT 5 properties in any order, or (MQTT 3.1) a
//!   password flag without a user name, which the decoder drops. The packets compare equal.
//!
//!     cargo +nightly fuzz run packet_decode -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge::mqtt::{decode, Error, Status, Version, MAX_REMAINING_LENGTH};

/// The largest packet a four-byte remaining length allows, with its fixed header.
const UNLIMITED: usize = MAX_REMAINING_LENGTH + 5;

fn check(data: &[u8], version: Version, max: usize) {
    let (packet, n) = match decode(data, version, max) {
        Ok(Status::Complete(p, n)) => (p, n),
        Ok(Status::Partial) => return,
        Err(Error::TooLarge { len, max: m }) => {
            assert_eq!(m, max);
            assert!(len > max, "TooLarge for {len} bytes under a limit of {max}");
            return;
        }
        Err(_) => return,
    };
    assert!(n <= data.len(), "consumed {n} of {} bytes", data.len());
    assert!(n <= max, "a packet of {n} bytes passed a limit of {max}");
    assert!(n >= 2, "a packet shorter than a fixed header");

    // Strict prefixes need more bytes; checking a few keeps this cheap for large packets.
    for k in [0, 1, n / 2, n - 1] {
        if k < n {
            assert_eq!(
                decode(&data[..k], version, max),
                Ok(Status::Partial),
                "prefix of {k} of {n} bytes"
            );
        }
    }
    // Exactly the packet's size passes; one byte less is refused from the fixed header alone.
    assert!(matches!(decode(&data[..n], version, n), Ok(Status::Complete(_, m)) if m == n));
    assert!(matches!(
        decode(&data[..n], version, n - 1),
        Err(Error::TooLarge { .. })
    ));

    // Round trip.
    let mut once = Vec::new();
    packet.encode_version(version, &mut once);
    let again = match decode(&once, version, UNLIMITED) {
        Ok(Status::Complete(p, m)) => {
            assert_eq!(m, once.len(), "re-encoded packet not consumed whole");
            p
        }
        other => panic!(
            "re-encoded {} does not decode: {other:?}\npacket: {packet:?}\nbytes: {once:02x?}",
            packet.name()
        ),
    };
    assert_eq!(again, packet, "round trip changed the packet");
    let mut twice = Vec::new();
    again.encode_version(version, &mut twice);
    assert_eq!(twice, once, "encoding is not stable");
    // The minimal encoding is never longer than what was decoded.
    assert!(once.len() <= n, "re-encoded {} bytes from {n}", once.len());
}

fuzz_target!(|data: &[u8]| {
    for version in [Version::V31, Version::V311, Version::V5] {
        check(data, version, UNLIMITED);
    }
    // Limits a broker uses: a small max_packet_size, the CONNECT limit, and one taken from the
    // input so that the boundary itself is explored.
    let from_input = data.first().map_or(2, |&b| 2 + b as usize);
    for max in [16, midge::broker::MAX_CONNECT_LEN, from_input] {
        check(data, Version::V311, max);
        check(data, Version::V5, max);
    }
});
