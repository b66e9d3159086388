//! `midge_bench --relay PORT`: a reference point, not a broker. It parses only fixed headers,
//! answers CONNECT, SUBSCRIBE and PINGREQ, and copies every PUBLISH it receives, byte for byte,
//! into the output buffer of every connection that has subscribed (whatever the filter: the
//! fan-out runs it serves use one topic). One thread, mio, one copy per subscriber and a plain
//! `write`: what a broker that does nothing but move bytes reaches on this machine, for
//! comparing a broker's per-byte costs. QoS 0 only; it listens on 127.0.0.1 and stops on
//! SIGTERM or SIGINT (the default action).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// A subscriber whose unwritten output passes this is dropped from (its messages are lost:
/// QoS 0), as a broker's bounded queue would.
const OUT_LIMIT: usize = 8 << 20;
/// Publishers are not read while a subscriber has this much unwritten (backpressure, so the
/// buffers stay small, as a broker's output high-water mark keeps them).
const HIGH_WATER: usize = 256 << 10;
const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    subscribed: bool,
    writable: bool,
}

/// A complete packet at the start of `buf`: (first byte, header length, total length).
fn packet(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + len;
            return (buf.len() >= total).then_some((buf[0], 2 + i, total));
        }
    }
    None
}

pub fn serve(port: u16) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut listener = TcpListener::bind(addr).map_err(|e| format!("relay: {addr}: {e}"))?;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let mut conns = slab::Slab::<Conn>::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut dirty: Vec<usize> = Vec::new();
    let mut paused: Vec<usize> = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.to_string());
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(false);
                    let entry = conns.vacant_entry();
                    let key = entry.key();
                    if poll
                        .registry()
                        .register(&mut stream, Token(key), Interest::READABLE)
                        .is_ok()
                    {
                        entry.insert(Conn {
                            stream,
                            input: Vec::new(),
                            out: Vec::new(),
                            out_pos: 0,
                            subscribed: false,
                            writable: false,
                        });
                    }
                }
                continue;
            }
            let key = ev.token().0;
            if ev.is_readable() && (full(&conns) || read(key, &mut conns, &mut buf, &mut dirty)) {
                paused.push(key);
            }
            dirty.push(key);
        }
        loop {
            dirty.sort_unstable();
            dirty.dedup();
            for key in dirty.drain(..) {
                flush(key, &mut conns, &poll);
            }
            if paused.is_empty() || full(&conns) {
                break;
            }
            paused.sort_unstable();
            paused.dedup();
            for key in std::mem::take(&mut paused) {
                if read(key, &mut conns, &mut buf, &mut dirty) {
                    paused.push(key);
                }
            }
        }
    }
}

/// Whether some subscriber has more unwritten output than `HIGH_WATER`.
fn full(conns: &slab::Slab<Conn>) -> bool {
    conns
        .iter()
        .any(|(_, c)| c.out.len() - c.out_pos > HIGH_WATER)
}

/// Reads `key` until it would block (false) or a subscriber is full (true: read it again
/// later).
fn read(key: usize, conns: &mut slab::Slab<Conn>, buf: &mut [u8], dirty: &mut Vec<usize>) -> bool {
    loop {
        let Some(c) = conns.get_mut(key) else {
            return false;
        };
        let n = match c.stream.read(buf) {
            Ok(0) => {
                conns.remove(key);
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                conns.remove(key);
                return false;
            }
        };
        c.input.extend_from_slice(&buf[..n]);
        let input = std::mem::take(&mut c.input);
        let mut pos = 0;
        while let Some((b0, head, total)) = packet(&input[pos..]) {
            let p = &input[pos..pos + total];
            let body = &p[head..];
            match b0 >> 4 {
                1 => conns[key].out.extend_from_slice(&[0x20, 2, 0, 0]),
                8 if body.len() >= 2 => {
                    // SUBACK: QoS 0 granted for each filter.
                    let mut codes = Vec::new();
                    let mut i = 2;
                    while i + 2 <= body.len() {
                        let l = usize::from(body[i]) << 8 | usize::from(body[i + 1]);
                        i += 2 + l + 1;
                        codes.push(0u8);
                    }
                    let c = &mut conns[key];
                    c.out
                        .extend_from_slice(&[0x90, 2 + codes.len() as u8, body[0], body[1]]);
                    c.out.extend_from_slice(&codes);
                    c.subscribed = true;
                }
                3 => {
                    for (k, s) in conns.iter_mut() {
                        if s.subscribed && s.out.len() - s.out_pos + p.len() <= OUT_LIMIT {
                            s.out.extend_from_slice(p);
                            dirty.push(k);
                        }
                    }
                }
                12 => conns[key].out.extend_from_slice(&[0xd0, 0]),
                14 => {
                    conns.remove(key);
                    return false;
                }
                _ => {}
            }
            pos += total;
        }
        conns[key].input = input[pos..].to_vec();
        dirty.push(key);
        if full(conns) {
            // More may be waiting: read again once the subscribers have drained.
            return true;
        }
    }
}

fn flush(key: usize, conns: &mut slab::Slab<Conn>, poll: &Poll) {
    let Some(c) = conns.get_mut(key) else {
        return;
    };
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                conns.remove(key);
                return;
            }
        }
    }
    if c.out_pos == c.out.len() {
        c.out.clear();
        c.out_pos = 0;
    } else if c.out_pos >= c.out.len() / 2 {
        // Compacted when at least half is written: each byte moves at most once on average.
        c.out.drain(..c.out_pos);
        c.out_pos = 0;
    }
    let want = c.out_pos < c.out.len();
    if want != c.writable {
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if poll
            .registry()
            .reregister(&mut c.stream, Token(key), interest)
            .is_ok()
        {
            c.writable = want;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::packet;

    #[test]
    fn fixed_headers_are_framed_and_short_input_waits() {
        assert_eq!(packet(&[0x20, 2, 0, 0, 0xd0]), Some((0x20, 2, 4)));
        assert_eq!(packet(&[0x20, 2, 0]), None);
        assert_eq!(packet(&[0x30]), None);
        // 200 = 0xc8 0x01: a two-byte remaining length.
        let mut p = vec![0x30, 0xc8, 0x01];
        p.resize(3 + 200, 7);
        assert_eq!(packet(&p), Some((0x30, 3, 203)));
        assert_eq!(packet(&p[..202]), None);
        // A remaining length of more than four bytes is never complete.
        assert_eq!(packet(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), None);
    }
}
