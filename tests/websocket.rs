//! WebSocket listeners (`protocol websockets`) on the real binary, over raw sockets: the
//! handshake bytes, exact frames both ways, per-listener rules, `http_dir`, and hostile input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// RFC 6455 1.3's answer to `KEY`.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request(protocol: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Protocol: {protocol}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn response_101(protocol: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

/// The ports midge opened, in the order of its listeners.
fn ports(m: &Midge, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + patience();
    loop {
        let ports: Vec<u16> = m
            .log_text()
            .lines()
            .filter_map(|l| l.split("Opening ipv4 listen socket on port ").nth(1))
            .filter_map(|p| p.trim_end_matches('.').parse().ok())
            .collect();
        if ports.len() >= n || Instant::now() > deadline {
            return ports;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A masked client frame [RFC 6455 5.1] (fixed mask, so the bytes are known).
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x0a, 0xb1, 0x5c, 0xe3];
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
    v.extend_from_slice(&mask);
    v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    v
}

fn binary(payload: &[u8]) -> Vec<u8> {
    frame(0x82, payload)
}

/// A raw WebSocket client.
struct Ws {
    s: TcpStream,
    /// MQTT bytes received in frames and not yet returned as packets.
    mqtt: Vec<u8>,
}

impl Ws {
    fn raw(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(patience())).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Connects and upgrades, checking the exact 101 answer.
    fn open(port: u16) -> Ws {
        let mut s = Ws::raw(port);
        s.write_all(upgrade_request("mqtt").as_bytes()).unwrap();
        let want = response_101("mqtt");
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).expect("101 answer");
        assert_eq!(String::from_utf8_lossy(&got), want);
        Ws {
            s,
            mqtt: Vec::new(),
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// One whole server frame: (first byte, payload). Server frames are never masked.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).ok()?;
        assert_eq!(
            h[1] & 0x80,
            0,
            "server frames are not masked [RFC 6455 5.1]"
        );
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.s.read_exact(&mut p).ok()?;
        Some((h[0], p))
    }

    /// The next MQTT packet from binary frames.
    fn recv(&mut self) -> Vec<u8> {
        loop {
            if let Some(n) = whole_packet(&self.mqtt) {
                return self.mqtt.drain(..n).collect();
            }
            let (b0, p) = self.frame().expect("a frame from midge");
            assert_eq!(b0, 0x82, "MQTT comes in final binary frames");
            self.mqtt.extend(p);
        }
    }

    /// The connection ends: a close frame with `code`, then end of file.
    fn expect_close(&mut self, code: u16) {
        let (b0, p) = self.frame().expect("a close frame");
        assert_eq!(b0, 0x88, "close frame, got payload {p:02x?}");
        assert_eq!(&p[..2], &code.to_be_bytes());
        self.expect_eof();
    }

    fn expect_eof(&mut self) {
        let mut b = [0u8; 16];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("expected the end, got {:02x?}", &b[..n]),
        }
    }
}

/// The length of the whole MQTT packet at the start of `b`, if it is all there.
fn whole_packet(b: &[u8]) -> Option<usize> {
    let mut len = 0usize;
    for i in 0..4 {
        let byte = *b.get(1 + i)?;
        len |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 2 + i + len;
            return (b.len() >= total).then_some(total);
        }
    }
    None
}

/// An HTTP exchange: sends `request` and reads until the server closes.
fn http(port: u16, request: &[u8]) -> String {
    let mut s = Ws::raw(port);
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn status_line(resp: &str) -> &str {
    resp.lines().next().unwrap_or("")
}

/// A TCP listener then a WebSocket listener, with `extra` after the latter.
fn start(extra: &str) -> (Midge, u16, u16) {
    let m = Midge::start_conf(&format!(
        "listener 0 127.0.0.1\nlistener 0 127.0.0.1\nprotocol websockets\nallow_anonymous true\n{extra}"
    ));
    let p = ports(&m, 2);
    assert_eq!(p.len(), 2, "two listeners: {}", m.log_text());
    (m, p[0], p[1])
}

#[test]
fn upgrade_then_mqtt_both_ways_with_tcp_clients() {
    let (m, tcp, ws) = start("");
    let mut w = Ws::open(ws);
    w.send(&binary(&connect("web", true, 60)));
    // The CONNACK in one binary frame, exact bytes.
    let (b0, p) = w.frame().unwrap();
    assert_eq!((b0, p.as_slice()), (0x82, &CONNACK_OK[..]));
    m.wait_log("New client connected from 127.0.0.1").unwrap();
    w.send(&binary(&subscribe(1, &[("to/web", 1)])));
    assert_eq!(w.recv(), suback(1, &[1]));

    let mut c = Client::connect(tcp);
    c.handshake("tcp", true, 60, false);
    c.send(&subscribe(1, &[("to/tcp", 0)]));
    c.expect(&suback(1, &[0]));
    // TCP -> WebSocket, QoS 1.
    c.send(&publish("to/web", b"hello browser", 1, false, 7));
    c.expect(&ack(0x40, 7));
    let got = w.recv();
    assert_eq!(got, publish("to/web", b"hello browser", 1, false, 1));
    w.send(&binary(&ack(0x40, 1)));
    // WebSocket -> TCP.
    w.send(&binary(&publish("to/tcp", b"hello socket", 0, false, 0)));
    c.expect(&publish("to/tcp", b"hello socket", 0, false, 0));
    // A clean end: DISCONNECT then close, answered with the same code.
    w.send(&binary(&DISCONNECT));
    m.wait_log("Client web disconnected.").unwrap();
}

#[test]
fn packets_span_frames_and_frames_carry_several_packets() {
    let (_m, _tcp, ws) = start("");
    let mut w = Ws::open(ws);
    // CONNECT cut in three: a fragmented message [RFC 6455 5.4] and then a separate message.
    let c = connect("split", true, 60);
    let mut bytes = frame(0x02, &c[..3]);
    bytes.extend(frame(0x00, &c[3..9]));
    bytes.extend(frame(0x89, b"between")); // a ping inside the fragmented message
    bytes.extend(frame(0x80, &c[9..12]));
    bytes.extend(binary(&c[12..]));
    // Sent a byte at a time.
    for b in &bytes {
        w.send(&[*b]);
    }
    assert_eq!(w.frame().unwrap(), (0x8a, b"between".to_vec()));
    assert_eq!(w.recv(), CONNACK_OK);
    // Three PINGREQs in one frame: three PINGRESPs.
    w.send(&binary(&[0xc0, 0, 0xc0, 0, 0xc0, 0]));
    for _ in 0..3 {
        assert_eq!(w.recv(), PINGRESP);
    }
    // A payload large enough for 16-bit lengths, both ways.
    w.send(&binary(&subscribe(1, &[("big", 0)])));
    assert_eq!(w.recv(), suback(1, &[0]));
    let body = vec![b'x'; 70_000];
    let p = publish("big", &body, 0, false, 0);
    w.send(&binary(&p));
    assert_eq!(w.recv(), p);
}

#[test]
fn ping_close_and_the_will_of_a_closed_websocket() {
    let (m, tcp, ws) = start("");
    let mut c = Client::connect(tcp);
    c.handshake("watcher", true, 60, false);
    c.send(&subscribe(1, &[("wills/#", 0)]));
    c.expect(&suback(1, &[0]));
    let mut w = Ws::open(ws);
    w.send(&binary(&connect_will(
        "dying",
        60,
        "wills/dying",
        b"gone",
        0,
        false,
    )));
    assert_eq!(w.recv(), CONNACK_OK);
    // A ping is answered with a pong carrying the same bytes [RFC 6455 5.5.3].
    w.send(&frame(0x89, b"are you there"));
    assert_eq!(w.frame().unwrap(), (0x8a, b"are you there".to_vec()));
    // A close without DISCONNECT: answered with the same code, and the will goes out.
    w.send(&frame(0x88, b"\x03\xe9going away"));
    w.expect_close(1001);
    c.expect(&publish("wills/dying", b"gone", 0, false, 0));
    m.wait_log("Client dying closed its connection.").unwrap();
}

#[test]
fn the_subprotocol_mqttv3_1_and_mqtt_3_1() {
    let (_m, _tcp, ws) = start("");
    let mut s = Ws::raw(ws);
    s.write_all(upgrade_request("mqttv3.1").as_bytes()).unwrap();
    let want = response_101("mqttv3.1");
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
    let mut w = Ws {
        s,
        mqtt: Vec::new(),
    };
    w.send(&binary(&connect_raw(b"MQIsdp", 3, 2, 60, &[b"old"])));
    assert_eq!(w.recv(), CONNACK_OK);
}

#[test]
fn hostile_frames_close_with_the_right_code() {
    let (m, _tcp, ws) = start("max_packet_size 100\n");
    // Unmasked client frame [RFC 6455 5.1]: 1002.
    let mut w = Ws::open(ws);
    w.send(&[0x82, 0x02, 0xc0, 0x00]);
    let (b0, p) = w.frame().unwrap();
    assert_eq!(b0, 0x88);
    assert_eq!(p, b"\x03\xeaclient frames must be masked");
    w.expect_eof();
    m.wait_log("WebSocket protocol error (1002): client frames must be masked")
        .unwrap();
    // A frame over the packet limit is refused from its header [RFC 6455 7.4.1]: 1009.
    let mut w = Ws::open(ws);
    w.send(&[0x82, 0x80 | 101, 1, 2, 3, 4]); // 101 bytes announced, none sent
    w.expect_close(1009);
    // 64-bit length with the top bit set: 1002.
    let mut w = Ws::open(ws);
    w.send(&[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    w.expect_close(1002);
    // A close reason that is not UTF-8 [RFC 6455 8.1]: 1007.
    let mut w = Ws::open(ws);
    w.send(&frame(0x88, b"\x03\xe8\xc3\x28"));
    w.expect_close(1007);
    // Text frames do not carry MQTT [MQTT-6.0.0-1]: 1003.
    let mut w = Ws::open(ws);
    w.send(&frame(0x81, b"\x10\x00"));
    w.expect_close(1003);
    // A control frame over 125 bytes [RFC 6455 5.5]: 1002.
    let mut w = Ws::open(ws);
    w.send(&frame(0x89, &[0u8; 126]));
    w.expect_close(1002);
    // The broker is still serving.
    let mut w = Ws::open(ws);
    w.send(&binary(&connect("after", true, 60)));
    assert_eq!(w.recv(), CONNACK_OK);
}

#[test]
fn requests_that_are_not_upgrades_get_http_errors() {
    let (m, _tcp, ws) = start("");
    let r = http(
        ws,
        b"POST /mqtt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_line(&r), "HTTP/1.1 405 Method Not Allowed");
    assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
    let r = http(ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_line(&r), "HTTP/1.1 404 Not Found", "no http_dir");
    let r = http(ws, upgrade_request("chat").as_bytes());
    assert_eq!(
        r,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 68\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n\
         400 Bad Request: Sec-WebSocket-Protocol must offer mqtt or mqttv3.1\n"
    );
    let r = http(
        ws,
        upgrade_request("mqtt")
            .replace("Version: 13", "Version: 8")
            .as_bytes(),
    );
    assert_eq!(status_line(&r), "HTTP/1.1 426 Upgrade Required");
    assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{r}");
    // MQTT sent to a WebSocket port.
    let r = http(ws, &connect("lost", true, 60));
    assert_eq!(status_line(&r), "HTTP/1.1 400 Bad Request");
    m.wait_log("HTTP request refused with 400").unwrap();
}

#[test]
fn header_floods_are_bounded_in_size_and_time() {
    let (_m, _tcp, ws) = start("websockets_headers_size 2048\nconnect_timeout 1\n");
    // Size: more than websockets_headers_size bytes of head is refused with 431.
    let mut flood = b"GET /mqtt HTTP/1.1\r\n".to_vec();
    for i in 0..30 {
        flood.extend_from_slice(format!("X-Flood-{i}: {}\r\n", "f".repeat(100)).as_bytes());
    }
    let r = http(ws, &flood);
    assert_eq!(
        status_line(&r),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Time: a head trickling in is closed by connect_timeout.
    let start = Instant::now();
    let mut s = Ws::raw(ws);
    s.write_all(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut closed = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(b"X: y\r\n").is_err() {
            closed = true;
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let eof = matches!(s.read(&mut b), Ok(0));
        s.set_nonblocking(false).unwrap();
        if eof {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling head is closed");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[test]
fn http_dir_serves_files_and_nothing_outside() {
    let dir = TempDir::new();
    let www = dir.path("www");
    std::fs::create_dir_all(www.join("js")).unwrap();
    std::fs::write(www.join("index.html"), "<h1>midge</h1>\n").unwrap();
    std::fs::write(www.join("js/app.js"), "console.log(1);\n").unwrap();
    std::fs::write(dir.path("secret.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(dir.path("secret.txt"), www.join("leak.txt")).unwrap();
    let (_m, _tcp, ws) = start(&format!("http_dir {}\n", www.display()));
    let r = http(ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        r,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 15\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n<h1>midge</h1>\n"
    );
    let r = http(ws, b"GET /js/app.js?v=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\n"));
    assert!(r.ends_with("\r\n\r\nconsole.log(1);\n"));
    let r = http(ws, b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("Content-Length: 15\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"), "{r}");
    for (target, status) in [
        ("/../secret.txt", "403 Forbidden"),
        ("/js/../../secret.txt", "403 Forbidden"),
        ("/%2e%2e/secret.txt", "403 Forbidden"),
        ("/%2E%2E%2Fsecret.txt", "403 Forbidden"),
        ("/leak.txt", "403 Forbidden"),
        ("//etc/passwd", "404 Not Found"),
        ("/js/", "403 Forbidden"),
        ("/missing.html", "404 Not Found"),
        ("http://x/index.html", "400 Bad Request"),
    ] {
        let r = http(
            ws,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_line(&r), format!("HTTP/1.1 {status}"), "{target}");
        assert!(
            !r.contains("secret") && !r.contains("root:"),
            "{target}: {r}"
        );
    }
}

#[test]
fn listener_rules_apply_to_websocket_clients() {
    // max_connections, mount_point and authentication of the WebSocket listener itself.
    let dir = TempDir::new();
    let m = Midge::start_conf(&format!(
        "per_listener_settings true\nlistener 0 127.0.0.1\nallow_anonymous true\n\
         listener 0 127.0.0.1\nprotocol websockets\nmax_connections 1\nmount_point web/\n\
         allow_anonymous true\nlistener 0 127.0.0.1\nprotocol websockets\nallow_anonymous false\n\
         # {}\n",
        dir.0.display()
    ));
    let p = ports(&m, 3);
    let (tcp, ws, closed) = (p[0], p[1], p[2]);
    let mut c = Client::connect(tcp);
    c.handshake("tcp", true, 60, false);
    c.send(&subscribe(1, &[("#", 0)]));
    c.expect(&suback(1, &[0]));
    let mut w = Ws::open(ws);
    w.send(&binary(&connect("w1", true, 60)));
    assert_eq!(w.recv(), CONNACK_OK);
    // The mount point prefixes what a WebSocket client publishes.
    w.send(&binary(&publish("t", b"x", 0, false, 0)));
    c.expect(&publish("web/t", b"x", 0, false, 0));
    // A second connection is over max_connections: closed before any answer.
    let mut s = Ws::raw(ws);
    let _ = s.write_all(upgrade_request("mqtt").as_bytes());
    let mut b = [0u8; 64];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)), "refused");
    // allow_anonymous false: CONNACK 5 in a frame, then the close.
    let mut w2 = Ws::open(closed);
    w2.send(&binary(&connect("anon", true, 60)));
    assert_eq!(w2.recv(), [0x20, 0x02, 0x00, 0x05]);
    w2.expect_close(1000);
}

#[test]
fn a_mosquitto_websockets_config_loads_unchanged() {
    let www = TempDir::new();
    let m = Midge::start_conf(&format!(
        "# mosquitto.conf\nlistener 0 127.0.0.1\nprotocol mqtt\n\nlistener 0 127.0.0.1\n\
         protocol websockets\nhttp_dir {}\nwebsockets_log_level 255\n\
         websockets_headers_size 4096\nallow_anonymous true\nlog_type websockets\nlog_type all\n",
        www.0.display()
    ));
    let p = ports(&m, 2);
    let mut w = Ws::open(p[1]);
    w.send(&binary(&connect("conf", true, 60)));
    assert_eq!(w.recv(), CONNACK_OK);
    m.wait_log("WebSocket upgrade, subprotocol mqtt.").unwrap();
}

#[test]
fn the_listeners_acl_applies_to_websocket_clients() {
    // The WebSocket listener's ACL lets anonymous clients use ok/# only; the TCP listener has
    // none. A WebSocket client's publish elsewhere is dropped, and it reads only ok/#.
    let dir = TempDir::new();
    let acl = dir.write("acl", "topic readwrite ok/#\n");
    let m = Midge::start_conf(&format!(
        "per_listener_settings true\nlistener 0 127.0.0.1\nallow_anonymous true\n\
         listener 0 127.0.0.1\nprotocol websockets\nallow_anonymous true\nacl_file {}\n",
        acl.display()
    ));
    let p = ports(&m, 2);
    let mut c = Client::connect(p[0]);
    c.handshake("tcp", true, 60, false);
    c.send(&subscribe(1, &[("#", 0)]));
    c.expect(&suback(1, &[0]));
    let mut w = Ws::open(p[1]);
    w.send(&binary(&connect("acl", true, 60)));
    assert_eq!(w.recv(), CONNACK_OK);
    w.send(&binary(&subscribe(1, &[("#", 0)])));
    assert_eq!(w.recv(), suback(1, &[0]));
    w.send(&binary(&publish("no/x", b"denied", 0, false, 0)));
    w.send(&binary(&publish("ok/x", b"allowed", 0, false, 0)));
    // Only the allowed one reaches the TCP subscriber, and the WebSocket one itself.
    c.expect(&publish("ok/x", b"allowed", 0, false, 0));
    assert_eq!(w.recv(), publish("ok/x", b"allowed", 0, false, 0));
    // A TCP publish outside ok/# does not reach the WebSocket client: the next thing it gets
    // is the one inside.
    c.send(&publish("no/y", b"hidden", 0, false, 0));
    c.expect(&publish("no/y", b"hidden", 0, false, 0));
    c.send(&publish("ok/y", b"shown", 0, false, 0));
    assert_eq!(w.recv(), publish("ok/y", b"shown", 0, false, 0));
}
