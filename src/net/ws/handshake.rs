//! The HTTP/1.1 side of a WebSocket connection: the request head ([`parse_request`]), the
//! `101 Switching Protocols` answer with `Sec-WebSocket-Accept` [RFC 6455 4.2.2], HTTP error
//! answers, and [`Ws`]'s handshake phase, which keeps a request head cut by a read.

use sha1::{Digest, Sha1};

use super::{Action, Buf, Phase, Why, Ws};
use crate::auth::base64;

/// RFC 6455 1.3: appended to `Sec-WebSocket-Key` before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// mosquitto's `websockets_headers_size` when unset or 0 (libwebsockets' default).
pub const DEFAULT_HEADERS_SIZE: usize = 1024;

/// Header fields read from a request; more is refused (431).
const MAX_HEADERS: usize = 32;

/// The subprotocols spoken, in the order a server prefers them [MQTT-6.0.0-4].
const PROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// An HTTP error answer: status and a one-line explanation sent as the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: &'static str,
}

pub(super) const fn refuse(status: u16, message: &'static str) -> HttpError {
    HttpError { status, message }
}

/// What an HTTP request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A valid WebSocket upgrade: `response` is the `101 Switching Protocols` answer.
    Upgrade {
        response: Vec<u8>,
        protocol: &'static str,
    },
    /// `GET` (or `HEAD` when `head`) of `target`, as sent (still percent-encoded).
    File { target: String, head: bool },
}

/// The outcome of [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet (and still within the size limit).
    NeedMore,
    /// The head is `len` bytes long; what follows it is frame data.
    Done {
        len: usize,
        request: Request,
    },
    Refused(HttpError),
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` [RFC 6455 4.2.2].
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::encode(&h.finalize())
}

/// Whether the comma-separated header `value` lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses the request head at the start of `buf`, which may hold at most `max_size` bytes of
/// it. Never panics; a head that is not complete within `max_size` bytes is refused (431).
pub fn parse_request(buf: &[u8], max_size: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_size => return Parsed::NeedMore,
        Ok(httparse::Status::Partial) => {
            return Parsed::Refused(refuse(431, "request header fields too large"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refused(refuse(431, "too many request header fields"))
        }
        Err(_) => return Parsed::Refused(refuse(400, "malformed HTTP request")),
    };
    if len > max_size {
        return Parsed::Refused(refuse(431, "request header fields too large"));
    }
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let header = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let upgrade = header("upgrade").any(|v| has_token(v, "websocket"));
    if !upgrade {
        return match method {
            "GET" | "HEAD" => Parsed::Done {
                len,
                request: Request::File {
                    target: target.to_string(),
                    head: method == "HEAD",
                },
            },
            _ => Parsed::Refused(refuse(405, "only GET and HEAD are served here")),
        };
    }
    // RFC 6455 4.2.1: the opening handshake's requirements, in its order.
    if method != "GET" || req.version != Some(1) {
        return Parsed::Refused(refuse(400, "a WebSocket upgrade is a GET over HTTP/1.1"));
    }
    if header("host").next().is_none() {
        return Parsed::Refused(refuse(400, "missing Host header"));
    }
    if !header("connection").any(|v| has_token(v, "upgrade")) {
        return Parsed::Refused(refuse(400, "Connection header does not say Upgrade"));
    }
    let mut keys = header("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => std::str::from_utf8(k).unwrap_or("").trim(),
        _ => "",
    };
    if !matches!(base64::decode(key), Ok(k) if k.len() == 16) {
        return Parsed::Refused(refuse(400, "bad Sec-WebSocket-Key"));
    }
    if !header("sec-websocket-version").any(|v| v.trim_ascii() == b"13") {
        // The answer names the version spoken [RFC 6455 4.4].
        return Parsed::Refused(refuse(426, "WebSocket version 13 is required"));
    }
    // The first subprotocol the client offers that MQTT defines [MQTT-6.0.0-3] [MQTT-6.0.0-4].
    let protocol = header("sec-websocket-protocol")
        .flat_map(|v| v.split(|&b| b == b','))
        .find_map(|t| {
            PROTOCOLS
                .into_iter()
                .find(|p| t.trim_ascii() == p.as_bytes())
        });
    let Some(protocol) = protocol else {
        return Parsed::Refused(refuse(
            400,
            "Sec-WebSocket-Protocol must offer mqtt or mqttv3.1",
        ));
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
        accept_key(key)
    );
    Parsed::Done {
        len,
        request: Request::Upgrade {
            response: response.into_bytes(),
            protocol,
        },
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// A complete HTTP/1.1 response that closes the connection; `extra` are header lines, each
/// ending in CRLF.
pub fn http_response(
    status: u16,
    content_type: &str,
    extra: &str,
    body: &[u8],
    head: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

/// The answer to a refused request.
pub fn error_response(e: HttpError, head: bool) -> Vec<u8> {
    let extra = match e.status {
        405 => "Allow: GET, HEAD\r\n",
        426 => "Sec-WebSocket-Version: 13\r\n",
        _ => "",
    };
    let body = format!("{} {}: {}\n", e.status, reason_phrase(e.status), e.message);
    http_response(
        e.status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        head,
    )
}

impl Ws {
    pub(super) fn handshake(
        &mut self,
        input: &[u8],
        up: &mut Vec<u8>,
        max_headers: usize,
        max_message: u32,
    ) -> Action {
        let max_headers = max_headers.max(64);
        let (parsed, old) = match self.buf.as_mut() {
            Some(kept) => {
                let old = kept.bytes.len();
                // One byte past the limit is enough to tell a head that is too long.
                let take = input.len().min((max_headers + 1).saturating_sub(old));
                kept.bytes.extend_from_slice(&input[..take]);
                (parse_request(&kept.bytes, max_headers), old)
            }
            None => (parse_request(input, max_headers), 0),
        };
        match parsed {
            Parsed::NeedMore => {
                if self.buf.is_none() {
                    self.buf = Some(Box::new(Buf {
                        bytes: input.to_vec(),
                        pos: 0,
                    }));
                }
                Action::More
            }
            Parsed::Refused(e) => {
                self.phase = Phase::Http;
                self.buf = Some(Box::new(Buf {
                    bytes: error_response(e, false),
                    pos: 0,
                }));
                Action::Close(Why::Refused(e))
            }
            Parsed::Done { len, request } => match request {
                Request::File { target, head } => {
                    self.phase = Phase::Http;
                    self.buf = None;
                    Action::File { target, head }
                }
                Request::Upgrade { response, protocol } => {
                    self.phase = Phase::Open;
                    self.buf = Some(Box::new(Buf {
                        bytes: response,
                        pos: 0,
                    }));
                    let rest = len.saturating_sub(old).min(input.len());
                    match self.frames(input, rest, up, max_message) {
                        Action::More => Action::Upgraded(protocol),
                        other => other,
                    }
                }
            },
        }
    }

    /// Queues the answer to a file request; the connection closes once it is written.
    pub fn respond(&mut self, response: Vec<u8>) {
        self.phase = Phase::Http;
        self.buf = Some(Box::new(Buf {
            bytes: response,
            pos: 0,
        }));
    }
}
