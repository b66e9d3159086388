//! Codec tests: exact bytes, round trips, every truncated prefix, each invalid case by clause.

use super::*;
use crate::mqtt::props::Properties;

const MAX: usize = MAX_REMAINING_LENGTH + 5;

fn dec(b: &[u8]) -> Result<Status<Packet<'_>>, Error> {
    decode(b, Version::V311, MAX)
}

fn samples() -> Vec<Packet<'static>> {
    vec![
        Packet::connect(Connect {
            props: Properties::default(),
            version: Version::V311,
            clean_session: true,
            keep_alive: 60,
            client_id: "sensor1",
            will: None,
            username: None,
            password: None,
        }),
        Packet::connect(Connect {
            props: Properties::default(),
            version: Version::V31,
            clean_session: false,
            keep_alive: 0,
            client_id: "c",
            will: Some(Will {
                props: Properties::default(),
                topic: "dead/c",
                payload: b"gone",
                qos: QoS::ExactlyOnce,
                retain: true,
            }),
            username: Some("bob"),
            password: Some(b"secret"),
        }),
        Packet::Connack {
            props: Properties::default().into(),
            session_present: true,
            code: 0,
        },
        Packet::Publish(Publish {
            props: Properties::default().into(),
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "cstutoring/chatroom",
            pid: None,
            payload: b"Hello world",
        }),
        Packet::Publish(Publish {
            props: Properties::default().into(),
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b",
            pid: Some(65535),
            payload: &[0u8; 300],
        }),
        Packet::puback(1),
        Packet::pubrec(2),
        Packet::pubrel(3),
        Packet::pubcomp(4),
        Packet::Subscribe {
            props: Properties::default().into(),
            pid: 7,
            filters: vec![
                ("home/+/sitting_room", QoS::AtLeastOnce.into()),
                ("#", QoS::ExactlyOnce.into()),
            ],
        },
        Packet::Suback {
            props: Properties::default().into(),
            pid: 7,
            codes: vec![1, 2, 0x80],
        },
        Packet::Unsubscribe {
            props: Properties::default().into(),
            pid: 8,
            filters: vec!["a/#"],
        },
        Packet::unsuback(8),
        Packet::Pingreq,
        Packet::Pingresp,
        Packet::disconnect(),
    ]
}

#[test]
fn every_packet_round_trips() {
    for p in samples() {
        let mut out = Vec::new();
        p.encode(&mut out);
        let version = match &p {
            Packet::Connect(c) => c.version,
            _ => Version::V311,
        };
        assert_eq!(
            decode(&out, version, MAX).unwrap(),
            Status::Complete(p.clone(), out.len()),
            "{p:?}"
        );
    }
}

#[test]
fn every_truncated_prefix_is_partial() {
    for p in samples() {
        let mut out = Vec::new();
        p.encode(&mut out);
        for cut in 0..out.len() {
            assert_eq!(
                dec(&out[..cut]).unwrap(),
                Status::Partial,
                "{p:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn exact_bytes_of_common_packets() {
    let mut out = Vec::new();
    encode_connack(&mut out, false, connack::NOT_AUTHORIZED);
    assert_eq!(out, [0x20, 0x02, 0x00, 0x05]);
    out.clear();
    encode_publish(
        &mut out,
        false,
        QoS::AtLeastOnce,
        true,
        "a/b",
        Some(10),
        None,
        b"hi",
    );
    assert_eq!(
        out,
        [0x33, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i']
    );
    out.clear();
    encode_ack(&mut out, PUBREL, 0x0102);
    assert_eq!(out, [0x62, 0x02, 0x01, 0x02]);
    out.clear();
    encode_suback(&mut out, 1, None, &[0, 1, 0x80]);
    assert_eq!(out, [0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x80]);
}

#[test]
fn two_packets_in_one_buffer_decode_one_at_a_time() {
    let b = [0xc0, 0x00, 0xe0, 0x00];
    assert_eq!(dec(&b).unwrap(), Status::Complete(Packet::Pingreq, 2));
    assert_eq!(
        dec(&b[2..]).unwrap(),
        Status::Complete(Packet::disconnect(), 2)
    );
}

fn malformed(b: &[u8], clause: &str) {
    match dec(b) {
        Err(Error::Malformed(m)) | Err(Error::Protocol(m)) => {
            assert!(m.contains(clause), "{b:02x?}: got {m}, want {clause}")
        }
        other => panic!("{b:02x?}: got {other:?}, want an error citing {clause}"),
    }
}

#[test]
fn fixed_header_flags_are_checked() {
    // [MQTT-2.2.2-1] [MQTT-2.2.2-2]: each type's flags are fixed.
    // CONNECT with flags: judged after the protocol name, as mosquitto does (3.1 ignores them).
    let mut c = vec![0x11, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
    malformed(&c, "MQTT-2.2.2-2");
    c = vec![
        0x11, 0x0e, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60, 0, 0,
    ];
    assert!(matches!(
        dec(&c),
        Ok(Status::Complete(Packet::Connect(_), 16))
    ));
    malformed(&[0x60, 0x02, 0x00, 0x01], "MQTT-2.2.2-2"); // PUBREL without 0010
    malformed(&[0x80, 0x02, 0x00, 0x01], "MQTT-2.2.2-2"); // SUBSCRIBE without 0010
    malformed(&[0xa0, 0x02, 0x00, 0x01], "MQTT-2.2.2-2"); // UNSUBSCRIBE without 0010
    malformed(&[0x41, 0x02, 0x00, 0x01], "MQTT-2.2.2-2"); // PUBACK with flags
    malformed(&[0xc1, 0x00], "MQTT-2.2.2-2"); // PINGREQ with flags
    malformed(&[0xe2, 0x00], "MQTT-2.2.2-2"); // DISCONNECT with flags
                                              // Reserved types 0 and 15.
    malformed(&[0x00, 0x00], "MQTT-2.2.1");
    malformed(&[0xf0, 0x00], "MQTT-2.2.1");
    // [MQTT-3.3.1-4] QoS 3, [MQTT-3.3.1-2] DUP with QoS 0.
    malformed(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01], "MQTT-3.3.1-4");
    malformed(&[0x38, 0x03, 0x00, 0x01, b'a'], "MQTT-3.3.1-2");
}

#[test]
fn flags_are_rejected_before_the_body_arrives() {
    // A bad first byte is an error at once, not "need more".
    malformed(&[0x41], "MQTT-2.2.2");
    malformed(&[0x80], "MQTT-2.2.2");
}

#[test]
fn remaining_length_over_four_bytes_is_malformed() {
    malformed(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], "MQTT-2.2.3");
}

#[test]
fn oversized_packet_is_refused_from_its_header() {
    // 256 MB announced, two bytes sent: refused before any body byte is awaited.
    let b = [0x30, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(
        decode(&b, Version::V311, 1024),
        Err(Error::TooLarge {
            len: 268_435_460,
            max: 1024
        })
    );
    // Exactly at the limit is fine.
    assert_eq!(
        decode(&[0xc0, 0x00], Version::V311, 2).unwrap(),
        Status::Complete(Packet::Pingreq, 2)
    );
    assert!(decode(&[0xc0, 0x00], Version::V311, 1).is_err());
}

fn connect_bytes(name: &[u8], level: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&[0, 60]);
    body.extend_from_slice(payload);
    let mut out = vec![0x10];
    write_remaining_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[test]
fn connect_rules() {
    let id = [0x00, 0x01, b'c'];
    // [MQTT-3.1.2-3] reserved flag.
    malformed(&connect_bytes(b"MQTT", 4, 0x03, &id), "MQTT-3.1.2-3");
    // [MQTT-3.1.2-11/13/15] will QoS or retain without will flag.
    malformed(&connect_bytes(b"MQTT", 4, 0x08, &id), "MQTT-3.1.2-13");
    malformed(&connect_bytes(b"MQTT", 4, 0x20, &id), "MQTT-3.1.2-15");
    // [MQTT-3.1.2-14] will QoS 3.
    let mut will = id.to_vec();
    will.extend_from_slice(&[0, 1, b't', 0, 0]);
    malformed(
        &connect_bytes(b"MQTT", 4, 0x04 | 0x18, &will),
        "MQTT-3.1.2-14",
    );
    // Will topic with a wildcard [MQTT-3.3.2-2].
    let mut will = id.to_vec();
    will.extend_from_slice(&[0, 1, b'#', 0, 0]);
    malformed(&connect_bytes(b"MQTT", 4, 0x04, &will), "MQTT-3.3.2-2");
    // [MQTT-3.1.2-22] password without user name (3.1.1).
    let mut pw = id.to_vec();
    pw.extend_from_slice(&[0, 1, b'p']);
    malformed(&connect_bytes(b"MQTT", 4, 0x40, &pw), "MQTT-3.1.2-22");
    // [MQTT-3.1.2-1] unknown protocol name.
    malformed(&connect_bytes(b"MQTX", 4, 0x02, &id), "MQTT-3.1.2-1");
    // [MQTT-3.1.2-2] known name, unsupported level.
    assert_eq!(
        dec(&connect_bytes(b"MQTT", 7, 0x02, &id)),
        Err(Error::UnsupportedVersion(7))
    );
    assert_eq!(
        dec(&connect_bytes(b"MQIsdp", 4, 0x02, &id)),
        Err(Error::UnsupportedVersion(4))
    );
    // Trailing garbage after the last field.
    let mut extra = id.to_vec();
    extra.push(0);
    assert!(matches!(
        dec(&connect_bytes(b"MQTT", 4, 0x02, &extra)),
        Err(Error::Malformed(_))
    ));
    // Client id with U+0000 [MQTT-1.5.3-2].
    malformed(&connect_bytes(b"MQTT", 4, 0x02, &[0, 1, 0]), "MQTT-1.5.3-2");
    // Both versions accepted.
    let b = connect_bytes(b"MQIsdp", 3, 0x02, &id);
    let Status::Complete(Packet::Connect(c), _) = dec(&b).unwrap() else {
        panic!()
    };
    assert_eq!(c.version, Version::V31);
}

#[test]
fn publish_rules() {
    // [MQTT-3.3.2-2] wildcard in topic name.
    malformed(&[0x30, 0x04, 0x00, 0x02, b'a', b'+'], "MQTT-3.3.2-2");
    malformed(&[0x30, 0x03, 0x00, 0x01, b'#'], "MQTT-3.3.2-2");
    // [MQTT-2.3.1-1] QoS 1 with packet identifier 0.
    malformed(&[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00], "MQTT-2.3.1-1");
    // Topic with a surrogate [MQTT-1.5.3-1].
    malformed(&[0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80], "MQTT-1.5.3-1");
    // Topic length running past the packet.
    assert!(matches!(
        dec(&[0x30, 0x03, 0x00, 0x05, b'a']),
        Err(Error::Malformed(_))
    ));
    // Empty payload is fine.
    assert!(matches!(
        dec(&[0x30, 0x03, 0x00, 0x01, b'a']),
        Ok(Status::Complete(_, 5))
    ));
}

#[test]
fn subscribe_rules() {
    // [MQTT-3.8.3-3] no filters.
    malformed(&[0x82, 0x02, 0x00, 0x01], "MQTT-3.8.3-3");
    // [MQTT-3.10.3-2] no filters.
    malformed(&[0xa2, 0x02, 0x00, 0x01], "MQTT-3.10.3-2");
    // [MQTT-3.8.3-4] reserved bits / QoS 3.
    malformed(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x04],
        "MQTT-3.8.3-4",
    );
    malformed(
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        "MQTT-3.8.3-4",
    );
    // [MQTT-4.7.1-2] [MQTT-4.7.1-3]
    malformed(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'#', 0x00],
        "MQTT-4.7.1-2",
    );
    malformed(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x02, b'a', b'+', 0x00],
        "MQTT-4.7.1-3",
    );
    malformed(
        &[0xa2, 0x06, 0x00, 0x01, 0x00, 0x02, b'#', b'a'],
        "MQTT-4.7.1-2",
    );
    // [MQTT-2.3.1-1]
    malformed(
        &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, b'a', 0x00],
        "MQTT-2.3.1-1",
    );
    malformed(&[0x40, 0x02, 0x00, 0x00], "MQTT-2.3.1-1");
}

#[test]
fn fixed_size_packets_must_have_exact_length() {
    assert!(matches!(
        dec(&[0x40, 0x03, 0x00, 0x01, 0x00]),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(dec(&[0xc0, 0x01, 0x00]), Err(Error::Malformed(_))));
    assert!(matches!(dec(&[0xe0, 0x01, 0x00]), Err(Error::Malformed(_))));
    assert!(matches!(dec(&[0x40, 0x01, 0x00]), Err(Error::Malformed(_))));
}

/// A small deterministic generator, so the "never panics" check runs in every `cargo test`
/// (the fuzz targets go much further).
#[test]
fn arbitrary_bytes_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = Vec::new();
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        buf.clear();
        let mut y = x;
        for i in 0..len {
            y = y
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let b = (y >> 56) as u8;
            // Keep the first byte a known type often, and the length small, to reach the bodies.
            buf.push(match i {
                0 => (b & 0xf0) | ((b & 1) << 1),
                1 => b & 0x3f,
                _ => b,
            });
        }
        let _ = dec(&buf);
        let _ = decode(&buf, Version::V31, 64);
    }
}

// ----- MQTT 5 -------------------------------------------------------------------------------

fn dec5(b: &[u8]) -> Result<Status<Packet<'_>>, Error> {
    decode(b, Version::V5, MAX)
}

fn full_props() -> Properties<'static> {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        content_type: Some("text/plain"),
        response_topic: Some("reply/here"),
        correlation_data: Some(b"\x00\x01"),
        subscription_identifiers: vec![7, 268_435_455],
        topic_alias: Some(3),
        user: vec![("b", "2"), ("a", "1"), ("b", "3")],
        ..Properties::default()
    }
}

fn samples_v5() -> Vec<Packet<'static>> {
    vec![
        Packet::connect(Connect {
            version: Version::V5,
            clean_session: false,
            keep_alive: 30,
            client_id: "",
            will: Some(Will {
                topic: "w",
                payload: b"bye",
                qos: QoS::AtLeastOnce,
                retain: false,
                props: Properties {
                    will_delay_interval: Some(5),
                    content_type: Some("t"),
                    ..Properties::default()
                },
            }),
            username: None,
            password: Some(b"pw-without-user"),
            props: Properties {
                session_expiry_interval: Some(u32::MAX),
                receive_maximum: Some(10),
                maximum_packet_size: Some(1024),
                topic_alias_maximum: Some(4),
                request_problem_information: Some(0),
                request_response_information: Some(1),
                user: vec![("k", "v")],
                ..Properties::default()
            },
        }),
        Packet::Connack {
            session_present: false,
            code: 0,
            props: Properties {
                assigned_client_identifier: Some("auto-1"),
                server_keep_alive: Some(60),
                topic_alias_maximum: Some(10),
                receive_maximum: Some(20),
                maximum_qos: Some(1),
                retain_available: Some(0),
                shared_subscription_available: Some(0),
                wildcard_subscription_available: Some(1),
                subscription_identifier_available: Some(1),
                maximum_packet_size: Some(99),
                reason_string: Some("fine"),
                ..Properties::default()
            }
            .into(),
        },
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b",
            pid: Some(5),
            payload: b"x",
            props: full_props().into(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "",
            pid: None,
            payload: b"aliased",
            props: Properties {
                topic_alias: Some(1),
                ..Properties::default()
            }
            .into(),
        }),
        Packet::Puback(Ack::new(1)),
        Packet::Puback(Ack {
            pid: 2,
            reason: 0x10,
            props: Properties::default().into(),
        }),
        Packet::Pubrec(Ack {
            pid: 3,
            reason: 0x87,
            props: Properties {
                reason_string: Some("no"),
                user: vec![("x", "y")],
                ..Properties::default()
            }
            .into(),
        }),
        Packet::Pubrel(Ack::new(4)),
        Packet::Pubcomp(Ack::new(5)),
        Packet::Subscribe {
            pid: 9,
            filters: vec![(
                "a/#",
                SubOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
            )],
            props: Properties {
                subscription_identifiers: vec![42],
                ..Properties::default()
            }
            .into(),
        },
        Packet::Suback {
            pid: 9,
            codes: vec![2, 0x9e],
            props: Properties::default().into(),
        },
        Packet::Unsubscribe {
            pid: 10,
            filters: vec!["a/#", "b"],
            props: Properties::default().into(),
        },
        Packet::Unsuback {
            pid: 10,
            codes: vec![0, 0x11],
            props: Properties::default().into(),
        },
        Packet::Disconnect {
            reason: 0,
            props: Properties::default().into(),
        },
        Packet::Disconnect {
            reason: 0x04,
            props: Properties {
                session_expiry_interval: Some(0),
                ..Properties::default()
            }
            .into(),
        },
        Packet::Auth {
            reason: 0x18,
            props: Properties {
                authentication_method: Some("SCRAM"),
                authentication_data: Some(b"d"),
                ..Properties::default()
            }
            .into(),
        },
    ]
}

#[test]
fn every_v5_packet_round_trips_and_every_prefix_is_partial() {
    for p in samples_v5() {
        let mut out = Vec::new();
        p.encode_version(Version::V5, &mut out);
        assert_eq!(
            dec5(&out).unwrap(),
            Status::Complete(p.clone(), out.len()),
            "{p:?}"
        );
        for cut in 0..out.len() {
            assert_eq!(
                dec5(&out[..cut]).unwrap(),
                Status::Partial,
                "{p:?} cut {cut}"
            );
        }
    }
}

#[test]
fn v5_short_forms() {
    // PUBACK with only the packet identifier means success; DISCONNECT with no body too.
    let Status::Complete(Packet::Puback(a), 4) = dec5(&[0x40, 0x02, 0x00, 0x01]).unwrap() else {
        panic!()
    };
    assert_eq!((a.pid, a.reason), (1, 0));
    let Status::Complete(Packet::Puback(a), 5) = dec5(&[0x40, 0x03, 0x00, 0x01, 0x10]).unwrap()
    else {
        panic!()
    };
    assert_eq!(a.reason, 0x10);
    assert!(matches!(
        dec5(&[0xe0, 0x00]).unwrap(),
        Status::Complete(Packet::Disconnect { reason: 0, .. }, 2)
    ));
    assert!(matches!(
        dec5(&[0xe0, 0x01, 0x8e]).unwrap(),
        Status::Complete(Packet::Disconnect { reason: 0x8e, .. }, 3)
    ));
    let mut out = Vec::new();
    encode_ack_v5(&mut out, PUBACK, 7, 0, &Properties::default());
    assert_eq!(out, [0x40, 0x02, 0x00, 0x07]);
    out.clear();
    encode_ack_v5(&mut out, PUBREC, 7, 0x10, &Properties::default());
    assert_eq!(out, [0x50, 0x03, 0x00, 0x07, 0x10]);
    out.clear();
    encode_reason(&mut out, DISCONNECT, 0x8d, &Properties::default());
    assert_eq!(out, [0xe0, 0x01, 0x8d]);
}

fn v5_publish(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x01, b't'];
    write_remaining_length(&mut body, props.len());
    body.extend_from_slice(props);
    body.extend_from_slice(b"payload");
    let mut out = vec![0x30];
    write_remaining_length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[test]
fn v5_property_rules() {
    // [MQTT-2.2.2-2]: at most once (except user properties and PUBLISH subscription ids).
    malformed5(
        &v5_publish(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]),
        "MQTT-2.2.2-2",
    );
    // A property not allowed on PUBLISH (Session Expiry Interval).
    malformed5(&v5_publish(&[0x11, 0, 0, 0, 1]), "MQTT-2.2.2-1");
    // An unknown property identifier.
    assert!(matches!(
        dec5(&v5_publish(&[0x7f, 0])),
        Err(Error::Malformed(_))
    ));
    // A property length running past the packet.
    assert!(matches!(
        dec5(&v5_publish(&[0x02, 0, 0])),
        Err(Error::Malformed(_))
    ));
    // Payload format indicator must be 0 or 1.
    assert!(dec5(&v5_publish(&[0x01, 2])).is_err());
    // Subscription identifier 0 is malformed (mosquitto answers 0x81).
    assert!(matches!(
        dec5(&v5_publish(&[0x0b, 0])),
        Err(Error::Malformed(_))
    ));
    // User properties may repeat, and keep their order.
    let b = v5_publish(&[0x26, 0, 1, b'k', 0, 1, b'1', 0x26, 0, 1, b'k', 0, 1, b'2']);
    let Status::Complete(Packet::Publish(p), _) = dec5(&b).unwrap() else {
        panic!()
    };
    assert_eq!(p.props.user, vec![("k", "1"), ("k", "2")]);
    // An empty topic needs a topic alias.
    let mut out = vec![0x30, 0x04, 0x00, 0x00, 0x00, b'x'];
    malformed5(&out, "MQTT-4.7.3-1");
    out = vec![0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, b'x'];
    out[1] = 7;
    assert!(matches!(
        dec5(&out).unwrap(),
        Status::Complete(Packet::Publish(_), 9)
    ));
    // Response topic with a wildcard [MQTT-3.3.2-14].
    malformed5(
        &v5_publish(&[0x08, 0, 3, b'a', b'/', b'#']),
        "MQTT-3.3.2-14",
    );
}

fn malformed5(b: &[u8], clause: &str) {
    match dec5(b) {
        Err(Error::Malformed(m)) | Err(Error::Protocol(m)) => {
            assert!(m.contains(clause), "{b:02x?}: got {m}, want {clause}")
        }
        other => panic!("{b:02x?}: got {other:?}, want an error citing {clause}"),
    }
}

#[test]
fn v5_subscribe_options_rules() {
    // Reserved bits 6-7 [MQTT-3.8.3-5].
    malformed5(
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x40],
        "MQTT-3.8.3-5",
    );
    // Retain handling 3: malformed, as mosquitto answers (0x81).
    assert!(matches!(
        dec5(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x30]),
        Err(Error::Malformed(_))
    ));
    // Options round trip.
    let Status::Complete(Packet::Subscribe { filters, .. }, _) =
        dec5(&[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x2e]).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        filters[0].1,
        SubOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2
        }
    );
}

#[test]
fn auth_exists_only_in_v5() {
    assert!(matches!(dec(&[0xf0, 0x00]), Err(Error::Malformed(_))));
    assert!(matches!(
        dec5(&[0xf0, 0x00]).unwrap(),
        Status::Complete(Packet::Auth { reason: 0, .. }, 2)
    ));
}

#[test]
fn v5_connect_accepts_level_5_and_password_alone() {
    let p = &samples_v5()[0];
    let mut out = Vec::new();
    p.encode_version(Version::V5, &mut out);
    // Decoding does not depend on the connection's version before CONNECT.
    assert!(
        matches!(dec(&out).unwrap(), Status::Complete(Packet::Connect(c), _) if c.version == Version::V5 && c.password == Some(b"pw-without-user"))
    );
}

#[test]
fn arbitrary_v5_bytes_never_panic() {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 48) as usize;
        let mut y = x;
        let buf: Vec<u8> = (0..len)
            .map(|i| {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let b = (y >> 56) as u8;
                match i {
                    0 => (b & 0xf0) | ((b & 1) << 1),
                    1 => b & 0x3f,
                    3 | 5 => b & 0x3f,
                    _ => b,
                }
            })
            .collect();
        let _ = dec5(&buf);
    }
}

/// Table 2-4 of the MQTT 5 spec, written out independently of the decoder: for every property
/// identifier, the packets (and will properties) it may appear in. Each (property, place) pair
/// is decoded: accepted exactly where the table allows it [MQTT-2.2.2-1].
#[test]
fn every_property_on_every_packet() {
    use crate::mqtt::primitives::Reader;
    use crate::mqtt::props::{Place, Place::*};
    let all = [
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
    ];
    let acks = [Puback, Pubrec, Pubrel, Pubcomp, Suback, Unsuback];
    // (identifier, a valid encoded value, where allowed)
    let table: Vec<(u8, Vec<u8>, Vec<Place>)> = vec![
        (0x01, vec![1], vec![Publish, Will]),
        (0x02, vec![0, 0, 0, 9], vec![Publish, Will]),
        (0x03, vec![0, 1, b't'], vec![Publish, Will]),
        (0x08, vec![0, 1, b'r'], vec![Publish, Will]),
        (0x09, vec![0, 1, 7], vec![Publish, Will]),
        (0x0B, vec![5], vec![Publish, Subscribe]),
        (0x11, vec![0, 0, 0, 9], vec![Connect, Connack, Disconnect]),
        (0x12, vec![0, 1, b'c'], vec![Connack]),
        (0x13, vec![0, 9], vec![Connack]),
        (0x15, vec![0, 1, b'm'], vec![Connect, Connack, Auth]),
        (0x16, vec![0, 1, 1], vec![Connect, Connack, Auth]),
        (0x17, vec![1], vec![Connect]),
        (0x18, vec![0, 0, 0, 9], vec![Will]),
        (0x19, vec![1], vec![Connect]),
        (0x1A, vec![0, 1, b'i'], vec![Connack]),
        (0x1C, vec![0, 1, b's'], vec![Connack, Disconnect]),
        (
            0x1F,
            vec![0, 1, b'r'],
            [vec![Connack, Disconnect, Auth], acks.to_vec()].concat(),
        ),
        (0x21, vec![0, 9], vec![Connect, Connack]),
        (0x22, vec![0, 9], vec![Connect, Connack]),
        (0x23, vec![0, 9], vec![Publish]),
        (0x24, vec![1], vec![Connack]),
        (0x25, vec![1], vec![Connack]),
        (0x26, vec![0, 1, b'k', 0, 1, b'v'], all.to_vec()),
        (0x27, vec![0, 0, 0, 9], vec![Connect, Connack]),
        (0x28, vec![1], vec![Connack]),
        (0x29, vec![1], vec![Connack]),
        (0x2A, vec![1], vec![Connack]),
    ];
    for (id, value, allowed) in &table {
        for place in all {
            let mut bytes = vec![(1 + value.len()) as u8, *id];
            bytes.extend_from_slice(value);
            let mut r = Reader::new(&bytes);
            let ok = Properties::decode(&mut r, place).is_ok();
            assert_eq!(
                ok,
                allowed.contains(&place),
                "property {id:#04x} on {place:?}"
            );
            if ok {
                // And it round-trips through the encoder.
                let mut r = Reader::new(&bytes);
                let p = Properties::decode(&mut r, place).unwrap();
                let mut out = Vec::new();
                p.encode(&mut out);
                assert_eq!(out, bytes, "property {id:#04x}");
            }
        }
    }
    // Every identifier in the spec is in the table; anything else is malformed.
    for id in 0u8..=0x7f {
        if table.iter().all(|(t, _, _)| *t != id) {
            let bytes = [2, id, 0];
            assert!(
                Properties::decode(&mut Reader::new(&bytes), Publish).is_err(),
                "unknown property {id:#04x} accepted"
            );
        }
    }
}

#[test]
fn forwarded_properties_keep_the_publishers_order() {
    // User property, content type, user property, payload format, topic alias, message expiry,
    // subscription identifier: forwarded in that order without the last three, as mosquitto
    // forwards them.
    let props = [
        0x26, 0, 1, b'z', 0, 1, b'1', 0x03, 0, 1, b'c', 0x26, 0, 1, b'a', 0, 1, b'2', 0x01, 1,
        0x23, 0, 1, 0x02, 0, 0, 0, 9, 0x0b, 5,
    ];
    let bytes = v5_publish(&props);
    let Status::Complete(Packet::Publish(p), _) = dec5(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(p.props.forwardable(), props[..20].to_vec());
    // Properties built here (no bytes received) are encoded in the codec's order.
    let built = Properties {
        content_type: Some("c"),
        payload_format_indicator: Some(1),
        ..Properties::default()
    };
    assert_eq!(built.forwardable(), vec![0x01, 1, 0x03, 0, 1, b'c']);
}

#[test]
fn a_decoded_packet_is_a_few_words_to_move() {
    // Properties (272 bytes on 64-bit targets) stay behind a pointer, null when absent: every
    // decoded packet moves through the broker's dispatch by value.
    let words = std::mem::size_of::<usize>();
    assert!(
        std::mem::size_of::<Packet>() <= 8 * words,
        "{}",
        std::mem::size_of::<Packet>()
    );
    assert_eq!(std::mem::size_of::<Props>(), words);
    let p = Props::default();
    assert!(p.is_none());
    assert_eq!(*p, Properties::default());
    // Empty properties are stored as none; any value makes them present.
    assert!(Props::from(Properties::default()).is_none());
    let mut q = Props::default();
    q.topic_alias = Some(3);
    assert!(!q.is_none());
    assert_eq!(q.topic_alias, Some(3));
    assert_ne!(q, p);
}
