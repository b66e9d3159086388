//! The WebSocket codec on exact bytes, including hostile input.

use super::handshake::refuse;
use super::*;

const LIMIT: u32 = 1000;

/// The request from RFC 6455 1.3, offering MQTT.
const REQUEST: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: mqtt\r\n\r\n";

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn client(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![b0];
    let n = payload.len();
    if n <= 125 {
        v.push(0x80 | n as u8);
    } else if n <= 0xffff {
        v.push(0x80 | 126);
        v.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        v.push(0x80 | 127);
        v.extend_from_slice(&(n as u64).to_be_bytes());
    }
    v.extend_from_slice(&MASK);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    v
}

fn open() -> Ws {
    let mut ws = Ws::new();
    let mut up = Vec::new();
    assert_eq!(
        ws.receive(REQUEST, &mut up, 1024, LIMIT),
        Action::Upgraded("mqtt")
    );
    assert!(up.is_empty());
    assert_eq!(ws.next(0), Next::Pending);
    assert_eq!(ws.pending(), RESPONSE);
    let n = ws.pending().len();
    ws.wrote_pending(n);
    ws
}

fn feed(ws: &mut Ws, bytes: &[u8]) -> (Vec<u8>, Action) {
    let mut up = Vec::new();
    let a = ws.receive(bytes, &mut up, 1024, LIMIT);
    (up, a)
}

fn protocol(code: u16, why: &'static str) -> Action {
    Action::Close(Why::Protocol(code, why))
}

#[test]
fn accept_key_is_rfc_6455s_example() {
    // [RFC 6455 1.3]
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn the_upgrade_answers_101_with_the_accept_key_and_mqtt() {
    let ws = open();
    assert!(ws.is_open());
    assert!(ws.buf.is_none());
}

#[test]
fn mqttv3_1_is_accepted_and_the_first_offered_mqtt_protocol_wins() {
    let req = String::from_utf8(REQUEST.to_vec()).unwrap();
    let r = req.replace("Protocol: mqtt", "Protocol: chat, mqttv3.1, mqtt");
    match parse_request(r.as_bytes(), 1024) {
        Parsed::Done {
            request: Request::Upgrade { protocol, response },
            ..
        } => {
            assert_eq!(protocol, "mqttv3.1");
            assert!(response.ends_with(b"Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_upgrades_get_clear_http_errors() {
    let req = String::from_utf8(REQUEST.to_vec()).unwrap();
    let cases: &[(&str, &str, u16)] = &[
        ("Protocol: mqtt", "Protocol: chat", 400),
        ("Sec-WebSocket-Protocol: mqtt\r\n", "", 400),
        ("Version: 13", "Version: 8", 426),
        ("dGhlIHNhbXBsZSBub25jZQ==", "short", 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZSE=", 400),
        ("Connection: Upgrade", "Connection: keep-alive", 400),
        ("Host: server.example.com\r\n", "", 400),
        ("HTTP/1.1", "HTTP/1.0", 400),
        ("GET", "POST", 400),
    ];
    for (from, to, status) in cases {
        let r = req.replacen(from, to, 1);
        match parse_request(r.as_bytes(), 1024) {
            Parsed::Refused(e) => assert_eq!(e.status, *status, "{from} -> {to}"),
            other => panic!("{from} -> {to}: {other:?}"),
        }
    }
    let e = refuse(426, "WebSocket version 13 is required");
    assert_eq!(
        error_response(e, false),
        b"HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 55\r\nX-Content-Type-Options: nosniff\r\nSec-WebSocket-Version: 13\r\n\
Connection: close\r\n\r\n426 Upgrade Required: WebSocket version 13 is required\n"
    );
}

#[test]
fn plain_requests_are_file_requests_or_refused() {
    assert_eq!(
        parse_request(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", 1024),
        Parsed::Done {
            len: 37,
            request: Request::File {
                target: "/index.html".into(),
                head: false
            }
        }
    );
    assert_eq!(
        parse_request(b"HEAD / HTTP/1.0\r\n\r\n", 1024),
        Parsed::Done {
            len: 19,
            request: Request::File {
                target: "/".into(),
                head: true
            }
        }
    );
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "CONNECT"] {
        let r = format!("{m} / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            parse_request(r.as_bytes(), 1024),
            Parsed::Refused(refuse(405, "only GET and HEAD are served here"))
        );
    }
    assert_eq!(
        parse_request(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1024),
        Parsed::Refused(refuse(400, "malformed HTTP request"))
    );
    // MQTT on a WebSocket port.
    assert_eq!(
        parse_request(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 1024),
        Parsed::Refused(refuse(400, "malformed HTTP request"))
    );
}

#[test]
fn request_heads_are_bounded_in_size() {
    // Every prefix of a valid head is incomplete, never an error.
    for i in 0..REQUEST.len() {
        assert_eq!(parse_request(&REQUEST[..i], 1024), Parsed::NeedMore, "{i}");
    }
    // A head over the limit is refused, complete or not.
    assert!(matches!(parse_request(REQUEST, 100), Parsed::Refused(e) if e.status == 431));
    let flood =
        b"GET / HTTP/1.1\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert!(matches!(parse_request(flood, 64), Parsed::Refused(e) if e.status == 431));
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..40 {
        many.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(parse_request(&many, 4096), Parsed::Refused(e) if e.status == 431));

    // Fed byte by byte, the connection keeps at most the limit and then answers 431.
    let mut ws = Ws::new();
    let mut endless = Vec::new();
    for _ in 0..30 {
        endless.extend_from_slice(format!("X-Flood: {}\r\n", "7".repeat(90)).as_bytes());
    }
    let mut action = Action::More;
    for (i, b) in b"GET / HTTP/1.1\r\n".iter().chain(&endless).enumerate() {
        action = ws.receive(&[*b], &mut Vec::new(), 1024, LIMIT);
        if action != Action::More {
            assert_eq!(
                i + 1,
                1024,
                "refused once 1024 bytes came without the end of the head"
            );
            break;
        }
    }
    assert_eq!(
        action,
        Action::Close(Why::Refused(refuse(431, "request header fields too large")))
    );
    assert!(ws
        .pending()
        .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

#[test]
fn a_head_split_over_reads_and_frames_right_behind_it() {
    let mut ws = Ws::new();
    let (a, b) = REQUEST.split_at(50);
    assert_eq!(feed(&mut ws, a), (vec![], Action::More));
    let mut rest = b.to_vec();
    rest.extend(client(0x82, b"\xc0\x00"));
    assert_eq!(
        feed(&mut ws, &rest),
        (b"\xc0\x00".to_vec(), Action::Upgraded("mqtt"))
    );
    assert_eq!(ws.pending(), RESPONSE);
}

#[test]
fn binary_frames_unmask_into_one_byte_stream() {
    let mut ws = open();
    // Two frames in one read, the second carrying two packets: one contiguous stream.
    let mut bytes = client(0x82, b"\x30\x05\x00\x01a");
    bytes.extend(client(0x82, b"bc\xc0\x00\xe0\x00"));
    assert_eq!(
        feed(&mut ws, &bytes),
        (
            b"\x30\x05\x00\x01abc\xc0\x00\xe0\x00".to_vec(),
            Action::More
        )
    );
    // A fragmented message, with a ping between its fragments [RFC 6455 5.4].
    let mut bytes = client(0x02, b"\x30\x03");
    bytes.extend(client(0x89, b"hi"));
    bytes.extend(client(0x00, b"\x00\x01"));
    bytes.extend(client(0x80, b"x"));
    assert_eq!(
        feed(&mut ws, &bytes),
        (b"\x30\x03\x00\x01x".to_vec(), Action::More)
    );
    assert_eq!(ws.next(0), Next::Pending);
    assert_eq!(ws.pending(), b"\x8a\x02hi");
}

#[test]
fn every_split_of_the_input_gives_the_same_stream() {
    let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    let mut bytes = client(0x02, &payload[..7]);
    bytes.extend(client(0x89, b"ping"));
    bytes.extend(client(0x80, &payload[7..]));
    bytes.extend(client(0x82, b""));
    bytes.extend(client(0x82, b"end"));
    let mut want = payload.clone();
    want.extend_from_slice(b"end");
    for cut in 0..bytes.len() {
        for cut2 in [
            cut,
            (cut + 3).min(bytes.len()),
            (cut + 130).min(bytes.len()),
        ] {
            let mut ws = open();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..cut2], &bytes[cut2..]] {
                let (m, a) = feed(&mut ws, part);
                assert_eq!(a, Action::More);
                got.extend(m);
            }
            assert_eq!(got, want, "cut at {cut}, {cut2}");
            assert_eq!(ws.pending(), b"\x8a\x04ping");
        }
    }
}

#[test]
fn sixteen_and_sixty_four_bit_lengths() {
    let mut ws = open();
    let p = vec![7u8; 200];
    assert_eq!(feed(&mut ws, &client(0x82, &p)), (p, Action::More));
    // A 64-bit length for a short frame is not minimal [RFC 6455 5.2].
    let mut ws = open();
    let bytes = [0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4];
    assert_eq!(
        feed(&mut ws, &bytes).1,
        protocol(status::PROTOCOL_ERROR, "length not minimally encoded")
    );
    let mut ws = open();
    let bytes = [0x82, 0xfe, 0, 5, 1, 2, 3, 4];
    assert_eq!(
        feed(&mut ws, &bytes).1,
        protocol(status::PROTOCOL_ERROR, "length not minimally encoded")
    );
    let mut ws = open();
    let bytes = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        feed(&mut ws, &bytes).1,
        protocol(status::PROTOCOL_ERROR, "frame length over 2^63")
    );
}

#[test]
fn unmasked_client_frames_close_with_1002() {
    // [RFC 6455 5.1]: a server closes the connection on an unmasked client frame.
    let mut ws = open();
    let (m, a) = feed(&mut ws, b"\x82\x02\xc0\x00");
    assert_eq!(m, b"");
    assert_eq!(a, protocol(1002, "client frames must be masked"));
    assert_eq!(ws.next(0), Next::Pending);
    assert_eq!(
        ws.pending(),
        b"\x88\x1e\x03\xeaclient frames must be masked"
    );
    let n = ws.pending().len();
    ws.wrote_pending(n);
    assert!(ws.finished());
    // Nothing more is read after a close.
    assert_eq!(
        feed(&mut ws, &client(0x82, b"\xc0\x00")),
        (vec![], Action::More)
    );
}

#[test]
fn oversized_frames_and_messages_are_refused_before_their_payload() {
    // [RFC 6455 7.4.1] 1009: the header alone decides.
    let mut ws = open();
    let head = [0x82, 0xfe, 0x03, 0xe9, 1, 2, 3, 4]; // 1001 bytes announced, none sent
    assert_eq!(
        feed(&mut ws, &head),
        (
            vec![],
            protocol(1009, "message larger than the packet size limit")
        )
    );
    let mut ws = open();
    let head = [
        0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
    ];
    assert_eq!(
        feed(&mut ws, &head).1,
        protocol(1009, "message larger than the packet size limit")
    );
    // Fragments add up.
    let mut ws = open();
    let mut bytes = client(0x02, &[0u8; 600]);
    bytes.extend_from_slice(&client(0x80, &[0u8; 401])[..8]);
    let (m, a) = feed(&mut ws, &bytes);
    assert_eq!(m.len(), 600);
    assert_eq!(
        a,
        protocol(1009, "message larger than the packet size limit")
    );
    // Exactly at the limit is fine.
    let mut ws = open();
    assert_eq!(feed(&mut ws, &client(0x82, &[1u8; 1000])).0.len(), 1000);
}

#[test]
fn control_frame_rules() {
    // [RFC 6455 5.5]: at most 125 bytes, never fragmented.
    let mut ws = open();
    assert_eq!(
        feed(&mut ws, &client(0x89, &[0u8; 126])).1,
        protocol(1002, "control frame over 125 bytes")
    );
    let mut ws = open();
    assert_eq!(
        feed(&mut ws, &client(0x09, b"")).1,
        protocol(1002, "fragmented control frame")
    );
    let mut ws = open();
    assert_eq!(
        feed(&mut ws, &client(0x8a, b"unsolicited")),
        (vec![], Action::More)
    );
    assert_eq!(ws.next(0), Next::Idle);
    // A ping of the full 125 bytes is answered with the same payload.
    let mut ws = open();
    let p = [9u8; 125];
    assert_eq!(feed(&mut ws, &client(0x89, &p)).1, Action::More);
    assert_eq!(ws.pending(), frame(0x0a, &p));
}

#[test]
fn text_reserved_and_out_of_order_frames() {
    let cases: &[(&[u8], u16, &str)] = &[
        // [MQTT-6.0.0-1]: MQTT travels in binary frames.
        (&[0x81], 1003, "text frames are not MQTT"),
        (&[0x83], 1002, "reserved opcode"),
        (&[0x8b], 1002, "reserved opcode"),
        (&[0xc2], 1002, "reserved bits set"),
        (&[0x80], 1002, "continuation frame outside a message"),
        (&[0x02, 0x82], 1002, "new message before the last one ended"),
    ];
    for (b0s, code, why) in cases {
        let mut ws = open();
        let mut bytes = Vec::new();
        for b0 in *b0s {
            bytes.extend(client(*b0, b"\x00"));
        }
        assert_eq!(feed(&mut ws, &bytes).1, protocol(*code, why), "{b0s:?}");
        assert!(ws.pending().starts_with(&[0x88]));
    }
}

#[test]
fn close_frames_are_answered_and_checked() {
    let mut ws = open();
    let mut bytes = client(0x82, b"\xe0\x00");
    bytes.extend(client(0x88, b"\x03\xe8bye"));
    assert_eq!(
        feed(&mut ws, &bytes),
        (b"\xe0\x00".to_vec(), Action::Close(Why::Peer(Some(1000))))
    );
    assert_eq!(ws.pending(), b"\x88\x02\x03\xe8");
    let mut ws = open();
    assert_eq!(
        feed(&mut ws, &client(0x88, b"")).1,
        Action::Close(Why::Peer(None))
    );
    assert_eq!(ws.pending(), b"\x88\x00");
    // [RFC 6455 8.1]: a close reason must be UTF-8; 1007 otherwise.
    let mut ws = open();
    assert_eq!(
        feed(&mut ws, &client(0x88, b"\x03\xe8\xff\xfe")).1,
        protocol(1007, "close reason is not UTF-8")
    );
    assert_eq!(ws.pending(), b"\x88\x1b\x03\xefclose reason is not UTF-8");
    for bad in [&b"\x03"[..], b"\x03\xed", b"\x00\x00", b"\x07\xd0"] {
        let mut ws = open();
        assert_eq!(feed(&mut ws, &client(0x88, bad)).1.clone(), {
            if bad.len() == 1 {
                protocol(1002, "bad close frame")
            } else {
                protocol(1002, "bad close code")
            }
        });
    }
}

#[test]
fn output_is_framed_around_the_brokers_bytes() {
    let mut ws = open();
    assert_eq!(ws.next(0), Next::Idle);
    let out = [0x20u8, 2, 0, 0];
    match ws.next(out.len()) {
        Next::Frame { head, payload } => {
            assert_eq!(head.as_slice(), b"\x82\x04");
            assert_eq!(payload, 4);
        }
        other => panic!("{other:?}"),
    }
    // One header byte and one payload byte are written, then the rest.
    assert_eq!(ws.wrote_frame(1), 0);
    assert_eq!(ws.wrote_frame(2), 1);
    match ws.next(3) {
        Next::Frame { head, payload } => {
            assert_eq!(head.as_slice(), b"");
            assert_eq!(payload, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ws.wrote_frame(3), 3);
    assert_eq!(ws.next(0), Next::Idle);
    // Sizes needing 16- and 64-bit lengths.
    match ws.next(300) {
        Next::Frame { head, .. } => assert_eq!(head.as_slice(), b"\x82\x7e\x01\x2c"),
        other => panic!("{other:?}"),
    }
    assert_eq!(ws.wrote_frame(304), 300);
    match ws.next(70_000) {
        Next::Frame { head, .. } => {
            assert_eq!(head.as_slice(), b"\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn control_frames_wait_for_the_data_frame_being_written() {
    let mut ws = open();
    assert!(matches!(ws.next(10), Next::Frame { payload: 10, .. }));
    assert_eq!(ws.wrote_frame(5), 3);
    feed(&mut ws, &client(0x89, b"p"));
    // The rest of the data frame goes first, then the pong.
    assert!(matches!(ws.next(7), Next::Frame { payload: 7, .. }));
    assert_eq!(ws.wrote_frame(7), 7);
    assert_eq!(ws.next(0), Next::Pending);
    assert_eq!(ws.pending(), b"\x8a\x01p");
}

#[test]
fn ping_floods_get_bounded_answers() {
    let mut ws = open();
    let mut bytes = Vec::new();
    for _ in 0..2000 {
        bytes.extend(client(0x89, b"0123456789"));
    }
    assert_eq!(feed(&mut ws, &bytes).1, Action::More);
    assert!(ws.pending().len() < PENDING_PONG_LIMIT + 12);
}

/// A writer that takes at most `cap` bytes a call, recording the calls.
struct Trickle {
    got: Vec<u8>,
    cap: usize,
    calls: usize,
}

impl Write for Trickle {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.cap == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.calls += 1;
        let n = b.len().min(self.cap);
        self.got.extend_from_slice(&b[..n]);
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.cap == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.calls += 1;
        let mut n = 0;
        for b in bufs {
            let k = b.len().min(self.cap - n);
            self.got.extend_from_slice(&b[..k]);
            n += k;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn send_writes_header_and_output_in_one_vectored_write() {
    let mut ws = open();
    let mut t = Trickle {
        got: Vec::new(),
        cap: 1 << 20,
        calls: 0,
    };
    assert_eq!(ws.send(b"\x20\x02\x00\x00", &mut t).unwrap(), 4);
    assert_eq!(
        (t.got.as_slice(), t.calls),
        (&b"\x82\x04\x20\x02\x00\x00"[..], 1)
    );
    // A socket taking three bytes at a time: the frame is resumed where it stopped.
    let mut t = Trickle {
        got: Vec::new(),
        cap: 3,
        calls: 0,
    };
    let out = b"\x30\x05\x00\x01tab";
    let mut sent = 0;
    while sent < out.len() {
        sent += ws.send(&out[sent..], &mut t).unwrap();
    }
    assert_eq!(t.got, b"\x82\x07\x30\x05\x00\x01tab");
    // A full socket takes nothing and loses nothing.
    let mut full = Trickle {
        got: Vec::new(),
        cap: 0,
        calls: 0,
    };
    assert_eq!(
        ws.send(b"xy", &mut full).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    let mut t = Trickle {
        got: Vec::new(),
        cap: 100,
        calls: 0,
    };
    assert_eq!(ws.send(b"xy", &mut t).unwrap(), 2);
    assert_eq!(t.got, b"\x82\x02xy");
}

#[test]
fn closing_finishes_the_frame_then_sends_1000() {
    let mut ws = open();
    let mut t = Trickle {
        got: Vec::new(),
        cap: 3,
        calls: 0,
    };
    // One of four payload bytes written when the broker closes the connection.
    assert_eq!(ws.send(b"\x20\x02\x00\x05", &mut t).unwrap(), 1);
    assert_eq!(ws.encode(b"\x02\x00\x05\xe0\x00"), 5);
    ws.close();
    assert!(!ws.finished());
    let mut t = Trickle {
        got: Vec::new(),
        cap: 100,
        calls: 0,
    };
    ws.drain(&mut t).unwrap();
    assert_eq!(t.got, b"\x02\x00\x05\x82\x02\xe0\x00\x88\x02\x03\xe8");
    assert!(ws.finished());
    // Before the upgrade there is nothing to say.
    let mut ws = Ws::new();
    assert_eq!(ws.encode(b"x"), 0);
    ws.close();
    assert!(!ws.has_pending());
}

#[test]
fn a_pong_waits_for_the_end_of_the_frame_being_written() {
    let mut ws = open();
    let mut t = Trickle {
        got: Vec::new(),
        cap: 4,
        calls: 0,
    };
    assert_eq!(ws.send(b"\x20\x02\x00\x00", &mut t).unwrap(), 2);
    feed(&mut ws, &client(0x89, b"p"));
    assert!(!ws.has_pending());
    let mut t = Trickle {
        got: Vec::new(),
        cap: 100,
        calls: 0,
    };
    ws.drain(&mut t).unwrap();
    assert_eq!(t.got, b"");
    assert_eq!(ws.send(b"\x00\x00", &mut t).unwrap(), 2);
    ws.drain(&mut t).unwrap();
    assert_eq!(t.got, b"\x00\x00\x8a\x01p");
}

#[test]
fn idle_means_replaceable_by_a_fresh_open_state() {
    let mut ws = open();
    assert!(ws.idle());
    // A header cut by a read, a fragmented message, a frame being written: not idle.
    feed(&mut ws, &client(0x82, b"ab")[..3]);
    assert!(!ws.idle());
    let mut ws = open();
    feed(&mut ws, &client(0x02, b"ab"));
    assert!(!ws.idle());
    feed(&mut ws, &client(0x80, b"c"));
    assert!(ws.idle());
    let mut t = Trickle {
        got: Vec::new(),
        cap: 3,
        calls: 0,
    };
    ws.send(b"\xd0\x00\xd0\x00", &mut t).unwrap();
    assert!(!ws.idle());
    // A fresh open state decodes as the old one would.
    let mut fresh = Ws::open();
    assert!(fresh.idle());
    assert_eq!(
        feed(&mut fresh, &client(0x82, b"\xc0\x00")),
        (b"\xc0\x00".to_vec(), Action::More)
    );
    assert!(!Ws::new().idle(), "not before the upgrade");
}

#[test]
fn idle_state_is_small() {
    assert!(
        std::mem::size_of::<Ws>() <= 56,
        "{}",
        std::mem::size_of::<Ws>()
    );
}

#[test]
fn hostile_bytes_never_panic() {
    // A small deterministic fuzz: random bytes after a valid handshake, in random cuts.
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let mut ws = open();
        let len = (rnd() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if rnd() % 2 == 0 && !bytes.is_empty() {
            bytes[0] = [0x82, 0x02, 0x80, 0x89, 0x88][(rnd() % 5) as usize];
        }
        if bytes.len() > 1 {
            bytes[1] |= 0x80;
        }
        let cut = if bytes.is_empty() {
            0
        } else {
            (rnd() as usize) % bytes.len()
        };
        let (a, b) = bytes.split_at(cut);
        let mut up = Vec::new();
        for part in [a, b] {
            ws.receive(part, &mut up, 1024, LIMIT);
        }
        assert!(up.len() <= bytes.len());
        let _ = ws.next(5);
    }
    for _ in 0..2000 {
        let mut ws = Ws::new();
        let len = (rnd() % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        let mut up = Vec::new();
        ws.receive(&bytes, &mut up, 100, LIMIT);
        assert!(up.len() <= bytes.len());
    }
}
