//! MQTT over WebSockets for the generator's connections (`--ws`): the upgrade request, client
//! frames around what the engine queued, and server frames stripped in place.
//!
//! Client frames are masked with the all-zero key (allowed by RFC 6455; the broker unmasks
//! every byte whatever the key), so framing costs the generator a header, not a pass over the
//! payload.

/// The upgrade request, offering `mqtt`.
pub fn request(out: &mut Vec<u8>, host: &str) {
    out.extend_from_slice(
        format!(
            "GET /mqtt HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// Puts `wbuf[from..]` (MQTT bytes queued since the last call) into one masked binary frame.
pub fn frame_tail(wbuf: &mut Vec<u8>, from: usize) {
    let n = wbuf.len() - from;
    if n == 0 {
        return;
    }
    let mut h = Vec::with_capacity(14);
    h.push(0x82);
    if n <= 125 {
        h.push(0x80 | n as u8);
    } else if n <= 0xffff {
        h.push(0x80 | 126);
        h.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&(n as u64).to_be_bytes());
    }
    h.extend_from_slice(&[0; 4]);
    wbuf.splice(from..from, h);
}

/// The read side of one connection.
#[derive(Debug, Default)]
pub struct Rx {
    /// Bytes of the response head's closing CRLF CRLF seen so far; 4 once upgraded.
    head: u8,
    hdr: [u8; 10],
    hdr_len: u8,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// The current frame is not a binary data frame (a pong, a close): dropped.
    skip: bool,
    /// The broker sent a close frame or refused the upgrade.
    pub closed: bool,
}

impl Rx {
    /// Turns the bytes just read, `buf`, into MQTT bytes at its start; returns how many.
    pub fn decode(&mut self, buf: &mut [u8]) -> usize {
        let mut r = 0;
        let mut w = 0;
        while r < buf.len() {
            if self.head < 4 {
                let want = b"\r\n\r\n"[self.head as usize];
                self.head = if buf[r] == want {
                    self.head + 1
                } else if buf[r] == b'\r' {
                    1
                } else {
                    0
                };
                r += 1;
                continue;
            }
            if self.left == 0 {
                self.hdr[self.hdr_len as usize] = buf[r];
                self.hdr_len += 1;
                r += 1;
                if self.hdr_len < 2 {
                    continue;
                }
                let need = match self.hdr[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                };
                if (self.hdr_len as usize) < need {
                    continue;
                }
                let h = self.hdr;
                self.left = match h[1] & 0x7f {
                    126 => u16::from_be_bytes([h[2], h[3]]) as u64,
                    127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                    n => n as u64,
                };
                let op = h[0] & 0x0f;
                self.skip = op != 0x2 && op != 0x0;
                if op == 0x8 {
                    self.closed = true;
                }
                self.hdr_len = 0;
                continue;
            }
            let take = (self.left as usize).min(buf.len() - r);
            if !self.skip {
                buf.copy_within(r..r + take, w);
                w += take;
            }
            r += take;
            self.left -= take as u64;
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_stripped_whatever_the_cuts() {
        let mut bytes = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        bytes.extend_from_slice(&[0x82, 4, 0x20, 2, 0, 0]);
        bytes.extend_from_slice(&[0x8a, 1, b'p']);
        let mut big = vec![0x82, 126, 0x01, 0x00];
        big.extend((0..256).map(|i| i as u8));
        bytes.extend_from_slice(&big);
        let mut want = vec![0x20, 2, 0, 0];
        want.extend((0..256).map(|i| i as u8));
        for cut in 0..bytes.len() {
            let mut rx = Rx::default();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                let mut p = part.to_vec();
                let n = rx.decode(&mut p);
                got.extend_from_slice(&p[..n]);
            }
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    #[test]
    fn the_tail_is_framed_with_a_zero_mask() {
        let mut w = b"GET".to_vec();
        w.extend_from_slice(&[0xc0, 0]);
        frame_tail(&mut w, 3);
        assert_eq!(w, b"GET\x82\x82\0\0\0\0\xc0\x00");
    }
}
