//! MQTT over WebSockets (RFC 6455; MQTT 3.1.1 and 5.0 section 6), without IO.
//!
//! A WebSocket connection starts as HTTP/1.1: [`parse_request`] reads the request head (bounded
//! by `websockets_headers_size`) and says whether it is an upgrade (answered with
//! `101 Switching Protocols` and the subprotocol `mqtt` or `mqttv3.1`), a request for a file of
//! `http_dir` (see `http.rs`), or an error answered with a plain HTTP status.
//!
//! After the upgrade, [`Ws::receive`] decodes client frames straight from the bytes read: each
//! payload is unmasked as it is copied into the buffer the server shares between connections
//! for decoded bytes (one pass, the same memory traffic as unmasking in place), so the MQTT
//! codec gets one contiguous run of plain MQTT bytes and never learns about frames (an MQTT
//! packet may span frames, a frame may carry several packets). Only a frame header cut by a
//! read (at most 14 bytes, kept inline) and a control frame's payload (at most 125 bytes) are
//! kept between reads. Frame and message lengths are checked against the listener's packet
//! limit as soon as the header is read, before any payload is taken.
//!
//! Output goes the other way without a copy: [`Ws::send`] writes a small frame header followed
//! by a slice of the broker's own output in one vectored write, tracking partial writes; the
//! few bytes this layer makes itself (the HTTP response, pongs, a close frame) are queued and
//! only written between data frames.
//!
//! The state of an idle, upgraded connection is [`Ws`] itself: 56 bytes on 64-bit targets, no
//! buffers.
//!
//! This file holds [`Ws`] and the frame codec; the HTTP side (the request head, the upgrade
//! answer, HTTP errors, and `Ws`'s handshake phase) is in `ws/handshake.rs`.

use std::io::{self, IoSlice, Write};

mod handshake;

pub use handshake::{
    accept_key, error_response, http_response, parse_request, HttpError, Parsed, Request,
    DEFAULT_HEADERS_SIZE,
};

/// Control frames carry at most this much [RFC 6455 5.5].
pub const MAX_CONTROL: usize = 125;

/// While this much waits to be written, a ping gets no pong of its own: RFC 6455 5.5.3 lets
/// an endpoint answer only the most recent of the pings it has not answered yet.
const PENDING_PONG_LIMIT: usize = 1024;

/// The most broker output [`Ws::encode`] copies at once.
const ENCODE_MAX: usize = 256 * 1024;

/// Close status codes [RFC 6455 7.4.1].
pub mod status {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
}

/// A frame header for a server frame (never masked [RFC 6455 5.1]) with `len` payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    bytes: [u8; 10],
    start: u8,
    end: u8,
}

impl FrameHead {
    pub fn new(opcode: u8, len: u64) -> FrameHead {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let end = if len <= 125 {
            bytes[1] = len as u8;
            2
        } else if len <= 0xffff {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&len.to_be_bytes());
            10
        };
        FrameHead {
            bytes,
            start: 0,
            end,
        }
    }

    /// The bytes still to write.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[self.start as usize..self.end as usize]
    }

    fn len(&self) -> usize {
        self.end as usize
    }
}

/// A whole server frame (for control frames and the last words of a connection).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let head = FrameHead::new(opcode, payload.len() as u64);
    let mut v = Vec::with_capacity(head.len() + payload.len());
    v.extend_from_slice(head.as_slice());
    v.extend_from_slice(payload);
    v
}

/// A close frame with `code` and `reason` (cut to fit a control frame).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    p.extend_from_slice(&reason.as_bytes()[..cut]);
    frame(OP_CLOSE, &p)
}

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the HTTP request head.
    Handshake,
    /// Upgraded: MQTT in binary frames.
    Open,
    /// A close frame was queued: finish the frame being written, send it, then close.
    Closing,
    /// Answering an HTTP request (a file or an error), then closing.
    Http,
}

/// Why the connection is ending, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The client sent a close frame (status code, if any).
    Peer(Option<u16>),
    /// The client broke the protocol: the close frame sent says so.
    Protocol(u16, &'static str),
    /// The HTTP request was refused.
    Refused(HttpError),
}

/// What to do after [`Ws::receive`], besides handing the bytes in `up` to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Keep reading.
    More,
    /// The upgrade was accepted with this subprotocol.
    Upgraded(&'static str),
    /// Answer this file request with [`Ws::respond`]; the connection closes afterwards.
    File { target: String, head: bool },
    /// Write what is queued, then close.
    Close(Why),
}

/// What to write next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing (see [`Ws::finished`]).
    Idle,
    /// [`Ws::pending`], then report with [`Ws::wrote_pending`].
    Pending,
    /// `head`, then the first `payload` bytes of the broker's output, in one vectored write;
    /// report with [`Ws::wrote_frame`].
    Frame { head: FrameHead, payload: usize },
}

/// Bytes this layer writes itself: the HTTP response, pongs, a close frame; or, before the
/// upgrade, the incomplete request head.
#[derive(Debug, Default)]
struct Buf {
    bytes: Vec<u8>,
    pos: usize,
}

/// The WebSocket state of one connection.
#[derive(Debug)]
pub struct Ws {
    phase: Phase,
    /// A frame header cut by the end of a read.
    hdr: [u8; 14],
    hdr_len: u8,
    /// The opcode and mask of the frame being read, and the mask's phase.
    op: u8,
    mask: [u8; 4],
    mpos: u8,
    /// A data message is open (its next data frame must be a continuation).
    in_msg: bool,
    /// Payload bytes of the frame being read still to come.
    left: u32,
    /// Bytes of the data message so far.
    msg_len: u32,
    /// The data frame being written: header bytes written, payload bytes still to write.
    tx_head_sent: u8,
    tx_len: u32,
    tx_left: u32,
    /// Before the upgrade: the incomplete request head. After: bytes to write.
    buf: Option<Box<Buf>>,
    /// The payload of a control frame cut by the end of a read: a pointer, not a `Vec`, since
    /// there is hardly ever one.
    #[allow(clippy::box_collection)]
    ctrl: Option<Box<Vec<u8>>>,
}

impl Default for Ws {
    fn default() -> Self {
        Ws::new()
    }
}

/// XORs `data` with `mask`, starting at phase `pos` of the mask; eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4], pos: usize) {
    let m: [u8; 4] = std::array::from_fn(|i| mask[(pos + i) & 3]);
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

/// Valid close status codes a peer may send [RFC 6455 7.4].
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Ws {
    pub fn new() -> Ws {
        Ws {
            phase: Phase::Handshake,
            hdr: [0; 14],
            hdr_len: 0,
            op: 0,
            mask: [0; 4],
            mpos: 0,
            in_msg: false,
            left: 0,
            msg_len: 0,
            tx_head_sent: 0,
            tx_len: 0,
            tx_left: 0,
            buf: None,
            ctrl: None,
        }
    }

    /// The state of an upgraded connection between frames, as [`Ws::idle`] requires.
    pub fn open() -> Ws {
        Ws {
            phase: Phase::Open,
            ..Ws::new()
        }
    }

    /// Nothing but "upgraded": between frames both ways, nothing queued, no partial header or
    /// control frame. Such a state can be dropped and replaced by [`Ws::open`] later.
    pub fn idle(&self) -> bool {
        self.phase == Phase::Open
            && self.hdr_len == 0
            && self.left == 0
            && !self.in_msg
            && self.tx_len == 0
            && self.buf.is_none()
            && self.ctrl.is_none()
    }

    /// Upgraded and not closing: MQTT may flow.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Handles `input`, bytes just read from the client, appending the plain MQTT bytes its
    /// frames carry to `up` (unmasked as they are copied: one pass over the payload, like TLS
    /// decryption). `max_headers` bounds the request head, `max_message` every frame and data
    /// message (the listener's packet limit), checked before any payload is taken.
    pub fn receive(
        &mut self,
        input: &[u8],
        up: &mut Vec<u8>,
        max_headers: usize,
        max_message: u32,
    ) -> Action {
        match self.phase {
            Phase::Handshake => self.handshake(input, up, max_headers, max_message),
            Phase::Open => self.frames(input, 0, up, max_message),
            // Closing: what comes after a close frame is ignored [RFC 6455 5.5.1].
            Phase::Closing | Phase::Http => Action::More,
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        let b = self.buf.get_or_insert_with(Default::default);
        if b.pos == b.bytes.len() {
            b.bytes.clear();
            b.pos = 0;
        }
        b.bytes.extend_from_slice(bytes);
    }

    fn pending_len(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.bytes.len() - b.pos)
    }

    /// Ends the connection for a protocol error: queue a close frame saying why.
    fn fail(&mut self, code: u16, why: &'static str) -> Action {
        self.queue(&close_frame(code, why));
        self.phase = Phase::Closing;
        self.ctrl = None;
        Action::Close(Why::Protocol(code, why))
    }

    /// Decodes the frames in `input[r..]`, appending data payloads to `up`.
    fn frames(&mut self, input: &[u8], mut r: usize, up: &mut Vec<u8>, max_message: u32) -> Action {
        let n = input.len();
        while r < n {
            if self.left == 0 {
                match self.header(input, &mut r, max_message) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err((code, why)) => return self.fail(code, why),
                }
                if self.left == 0 && self.op >= OP_CLOSE {
                    if let Some(done) = self.control() {
                        return done;
                    }
                }
                continue;
            }
            let take = (self.left as usize).min(n - r);
            let sink: &mut Vec<u8> = if self.op >= OP_CLOSE {
                self.ctrl
                    .get_or_insert_with(|| Box::new(Vec::with_capacity(MAX_CONTROL)))
            } else {
                up
            };
            let at = sink.len();
            sink.extend_from_slice(&input[r..r + take]);
            unmask(&mut sink[at..], self.mask, self.mpos as usize);
            r += take;
            self.left -= take as u32;
            self.mpos = ((self.mpos as usize + take) & 3) as u8;
            if self.left == 0 && self.op >= OP_CLOSE {
                if let Some(done) = self.control() {
                    return done;
                }
            }
        }
        Action::More
    }

    /// Reads (the rest of) a frame header from `buf[*r..]`: `Ok(true)` once it is complete,
    /// `Ok(false)` when `buf` ended first.
    fn header(
        &mut self,
        buf: &[u8],
        r: &mut usize,
        max_message: u32,
    ) -> Result<bool, (u16, &'static str)> {
        loop {
            let have = self.hdr_len as usize;
            let need = if have < 2 {
                2
            } else {
                let ext = match self.hdr[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                2 + ext + 4
            };
            if have == need {
                break;
            }
            if *r == buf.len() {
                return Ok(false);
            }
            let k = (need - have).min(buf.len() - *r);
            self.hdr[have..have + k].copy_from_slice(&buf[*r..*r + k]);
            self.hdr_len += k as u8;
            *r += k;
            if have < 2 && self.hdr_len >= 2 {
                self.check_start()?;
            }
        }
        let h = self.hdr;
        let len7 = h[1] & 0x7f;
        let (len, at) = match len7 {
            126 => {
                let l = u16::from_be_bytes([h[2], h[3]]) as u64;
                if l < 126 {
                    return Err((status::PROTOCOL_ERROR, "length not minimally encoded"));
                }
                (l, 4)
            }
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&h[2..10]);
                let l = u64::from_be_bytes(b);
                if l >> 63 != 0 {
                    return Err((status::PROTOCOL_ERROR, "frame length over 2^63"));
                }
                if l <= 0xffff {
                    return Err((status::PROTOCOL_ERROR, "length not minimally encoded"));
                }
                (l, 10)
            }
            l => (l as u64, 2),
        };
        self.mask.copy_from_slice(&h[at..at + 4]);
        self.hdr_len = 0;
        self.mpos = 0;
        let op = h[0] & 0x0f;
        let fin = h[0] & 0x80 != 0;
        if op < OP_CLOSE {
            // Bounded before any payload is read: the frame alone, then the whole message.
            let total = if op == OP_CONT {
                self.msg_len as u64 + len
            } else {
                len
            };
            if total > max_message as u64 {
                return Err((status::TOO_BIG, "message larger than the packet size limit"));
            }
            self.msg_len = total as u32;
            self.in_msg = !fin;
        }
        self.op = op;
        self.left = len as u32;
        Ok(true)
    }

    /// Checks the first two bytes of a frame header.
    fn check_start(&self) -> Result<(), (u16, &'static str)> {
        let (b0, b1) = (self.hdr[0], self.hdr[1]);
        if b0 & 0x70 != 0 {
            // No extension was negotiated [RFC 6455 5.2].
            return Err((status::PROTOCOL_ERROR, "reserved bits set"));
        }
        if b1 & 0x80 == 0 {
            return Err((status::PROTOCOL_ERROR, "client frames must be masked"));
        }
        let fin = b0 & 0x80 != 0;
        match b0 & 0x0f {
            OP_CONT if !self.in_msg => Err((
                status::PROTOCOL_ERROR,
                "continuation frame outside a message",
            )),
            OP_BINARY if self.in_msg => Err((
                status::PROTOCOL_ERROR,
                "new message before the last one ended",
            )),
            // MQTT is carried in binary frames only [MQTT-6.0.0-1].
            OP_TEXT => Err((status::UNSUPPORTED_DATA, "text frames are not MQTT")),
            OP_CONT | OP_BINARY => Ok(()),
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin {
                    Err((status::PROTOCOL_ERROR, "fragmented control frame"))
                } else if b1 & 0x7f > MAX_CONTROL as u8 {
                    Err((status::PROTOCOL_ERROR, "control frame over 125 bytes"))
                } else {
                    Ok(())
                }
            }
            _ => Err((status::PROTOCOL_ERROR, "reserved opcode")),
        }
    }

    /// A control frame is complete: answer it. `Some` when the connection ends.
    fn control(&mut self) -> Option<Action> {
        let payload = self.ctrl.take().map(|b| *b).unwrap_or_default();
        match self.op {
            OP_PING => {
                if self.pending_len() < PENDING_PONG_LIMIT {
                    self.queue(&frame(OP_PONG, &payload));
                }
                None
            }
            OP_PONG => None,
            _ => {
                // Close [RFC 6455 5.5.1]: answered with the same code, then the connection ends.
                let code = match payload.len() {
                    0 => None,
                    1 => return Some(self.fail(status::PROTOCOL_ERROR, "bad close frame")),
                    _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                };
                if let Some(c) = code {
                    if !valid_close_code(c) {
                        return Some(self.fail(status::PROTOCOL_ERROR, "bad close code"));
                    }
                    if std::str::from_utf8(&payload[2..]).is_err() {
                        // [RFC 6455 8.1]
                        return Some(self.fail(status::INVALID_DATA, "close reason is not UTF-8"));
                    }
                }
                let reply = match code {
                    Some(c) => close_frame(c, ""),
                    None => frame(OP_CLOSE, &[]),
                };
                self.queue(&reply);
                self.phase = Phase::Closing;
                Some(Action::Close(Why::Peer(code)))
            }
        }
    }

    /// What to write next, given `out`, the length of the broker's pending output.
    pub fn next(&mut self, out: usize) -> Next {
        if self.tx_len > 0 {
            let mut head = FrameHead::new(OP_BINARY, self.tx_len as u64);
            head.start = self.tx_head_sent;
            return Next::Frame {
                head,
                payload: (self.tx_left as usize).min(out),
            };
        }
        if self.phase != Phase::Handshake && self.pending_len() > 0 {
            return Next::Pending;
        }
        if self.phase == Phase::Open && out > 0 {
            let len = out.min(u32::MAX as usize);
            let head = FrameHead::new(OP_BINARY, len as u64);
            self.tx_len = len as u32;
            self.tx_left = len as u32;
            self.tx_head_sent = 0;
            return Next::Frame { head, payload: len };
        }
        Next::Idle
    }

    /// `n` bytes of a [`Next::Frame`] were written: returns how many were broker output.
    pub fn wrote_frame(&mut self, n: usize) -> usize {
        let head_len = FrameHead::new(OP_BINARY, self.tx_len as u64).len() as u8;
        let h = n.min(head_len.saturating_sub(self.tx_head_sent) as usize);
        self.tx_head_sent += h as u8;
        let p = (n - h).min(self.tx_left as usize);
        self.tx_left -= p as u32;
        if self.tx_left == 0 && self.tx_head_sent >= head_len {
            self.tx_len = 0;
        }
        p
    }

    /// The bytes of [`Next::Pending`].
    pub fn pending(&self) -> &[u8] {
        match &self.buf {
            Some(b) if self.phase != Phase::Handshake => &b.bytes[b.pos..],
            _ => &[],
        }
    }

    /// `n` bytes of [`Ws::pending`] were written; the buffer is freed once empty.
    pub fn wrote_pending(&mut self, n: usize) {
        if let Some(b) = self.buf.as_mut() {
            b.pos = (b.pos + n).min(b.bytes.len());
            if b.pos == b.bytes.len() {
                self.buf = None;
            }
        }
    }

    /// Everything queued has been written and the connection is to close (an HTTP answer, or
    /// a close frame).
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Closing | Phase::Http)
            && self.tx_len == 0
            && self.pending_len() == 0
    }

    /// Queued bytes that may be written now: only between data frames.
    pub fn has_pending(&self) -> bool {
        self.phase != Phase::Handshake && self.tx_len == 0 && self.pending_len() > 0
    }

    /// Writes queued bytes (HTTP answer, pongs, close) into `down`, between data frames.
    pub fn drain(&mut self, down: &mut dyn Write) -> io::Result<()> {
        while self.has_pending() {
            let n = down.write(self.pending())?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.wrote_pending(n);
        }
        Ok(())
    }

    /// Writes broker output `data` into `down` as a binary frame without copying it: the frame
    /// header and `data` itself in one vectored write, resumed where a partial write left
    /// off. Returns how many bytes of `data` went out (0: nothing can go now).
    pub fn send(&mut self, data: &[u8], down: &mut dyn Write) -> io::Result<usize> {
        loop {
            let Next::Frame { head, payload } = self.next(data.len()) else {
                return Ok(0);
            };
            let h = head.as_slice();
            let n = if h.is_empty() {
                down.write(&data[..payload])?
            } else {
                down.write_vectored(&[IoSlice::new(h), IoSlice::new(&data[..payload])])?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let p = self.wrote_frame(n);
            if p > 0 {
                return Ok(p);
            }
        }
    }

    /// Takes broker output into the queue (a copy): the rest of the frame being written, then
    /// `data` in a new frame. For the last output of a connection being closed.
    pub fn encode(&mut self, data: &[u8]) -> usize {
        let mut v = Vec::new();
        let mut taken = 0;
        if self.tx_len > 0 {
            let mut head = FrameHead::new(OP_BINARY, self.tx_len as u64);
            head.start = self.tx_head_sent;
            v.extend_from_slice(head.as_slice());
            taken = (self.tx_left as usize).min(data.len());
            v.extend_from_slice(&data[..taken]);
            self.tx_len = 0;
            self.tx_left = 0;
        }
        if self.phase == Phase::Open && taken < data.len() {
            let end = data.len().min(taken + ENCODE_MAX);
            v.extend_from_slice(&frame(OP_BINARY, &data[taken..end]));
            taken = end;
        }
        if !v.is_empty() {
            // Ahead of what waited for the end of the frame.
            v.extend_from_slice(self.pending());
            self.buf = Some(Box::new(Buf { bytes: v, pos: 0 }));
        }
        taken
    }

    /// Queues a close frame (1000) if the connection is open.
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            self.queue(&close_frame(status::NORMAL, ""));
            self.phase = Phase::Closing;
        }
    }
}

#[cfg(test)]
mod tests;
