//! A connection's slot in the server's slab: its socket, flags, and the [`Extra`] it holds only
//! while it has something (a kept tail, layers); parking and resuming an idle connection's
//! layers, and handing kept bytes to the broker.

use mio::net::TcpStream;

use super::{Layer, Stack};
use crate::broker::{Broker, Millis};

/// What a connection has beyond its socket, allocated only while it has something: an
/// incomplete packet to keep, or layers.
pub(super) struct Extra {
    /// Decoded bytes the broker has not consumed yet: an incomplete packet, or everything after
    /// a pause. Empty (unallocated) most of the time.
    pub(super) kept: Vec<u8>,
    /// The transport, bottom first; empty for plain TCP.
    pub(super) layers: Vec<Box<dyn Layer>>,
}

/// 8 bytes in every connection's slot instead of a `Vec`'s 24 (and more for the layers):
/// one more allocation only while a packet is incomplete or the connection has layers.
pub(super) type Kept = Option<Box<Extra>>;

pub(super) struct Sock {
    pub(super) stream: TcpStream,
    /// The incomplete packet left over from earlier reads, and the transport's layers (none,
    /// unallocated, for an idle plain connection).
    pub(super) extra: Kept,
    pub(super) writable: bool,
    /// The broker has closed it; the slot is released after the current batch.
    pub(super) closing: bool,
    /// In `Server::ready`: read again next turn. Each connection is there at most once, so
    /// a turn reads at most `READS_PER_TURN` chunks from it however long it floods.
    pub(super) queued: bool,
    /// 1 + the index of the stack whose `resume` gives this connection its layers back when
    /// it has dropped them while idle (then `extra` is `None`); 0: it never drops them.
    pub(super) stack: u8,
}

/// Drops the layers of a connection whose layers are all idle and that keeps no bytes: an idle
/// WebSocket connection then costs what a plain one does.
pub(super) fn park(sock: &mut Sock) {
    if sock.stack == 0 {
        return;
    }
    if sock
        .extra
        .as_ref()
        .is_some_and(|e| e.kept.is_empty() && e.layers.iter().all(|l| l.idle()))
    {
        sock.extra = None;
    }
}

/// Gives a connection that dropped its layers fresh ones from its stack's `resume`.
pub(super) fn unpark(sock: &mut Sock, stacks: &[Stack]) {
    if sock.stack == 0 || sock.extra.is_some() {
        return;
    }
    if let Some(resume) = (sock.stack as usize)
        .checked_sub(1)
        .and_then(|i| stacks.get(i))
        .and_then(|s| s.resume.as_ref())
    {
        sock.extra = Some(Box::new(Extra {
            kept: Vec::new(),
            layers: resume(),
        }));
    }
}

/// Room reserved at once for an incomplete packet whose length its fixed header gives, when at
/// least a quarter of it is at hand: enough for long payloads to arrive without the buffer
/// growing (and copying itself) on the way, while a client cannot make the broker reserve more
/// than four times what it sent, nor more than this (a header announcing 256 MB alone
/// reserves nothing beyond its own bytes).
const RESERVE_MAX: usize = 1 << 20;

/// Keeps `tail`, decoded bytes the broker has not consumed, for next time.
pub(super) fn keep(extra: &mut Kept, tail: &[u8]) {
    let e = extra.get_or_insert_with(|| {
        Box::new(Extra {
            kept: Vec::new(),
            layers: Vec::new(),
        })
    });
    if e.kept.is_empty() {
        let whole = lacking(tail).map_or(0, |n| n.saturating_add(tail.len()));
        let room = if tail.len() >= whole / 4 {
            whole.min(RESERVE_MAX)
        } else {
            0
        };
        e.kept.reserve_exact(room.max(tail.len()));
    }
    e.kept.extend_from_slice(tail);
}

/// Hands the broker `data`, newly read and decoded bytes of `key`, after what was kept for it,
/// and keeps what it did not consume. When an incomplete packet was kept, only the bytes that
/// complete it are appended to it; the rest goes to the broker from where it was read, so a
/// stream of long packets is copied once into `kept` per straddling packet, not once per read.
pub(super) fn feed(broker: &mut Broker, key: usize, extra: &mut Kept, data: &[u8], now: Millis) {
    let mut rest = data;
    if let Some(e) = extra.as_mut().filter(|e| !e.kept.is_empty()) {
        let take = lacking(&e.kept).map_or(rest.len(), |n| n.min(rest.len()));
        let (head, tail) = rest.split_at(take);
        e.kept.extend_from_slice(head);
        rest = tail;
        let used = broker.received(key, &e.kept, now);
        if used < e.kept.len() {
            // Still incomplete, or paused: the rest waits behind it.
            e.kept.drain(..used);
            e.kept.extend_from_slice(rest);
            return;
        }
        // Emptied; its memory is kept for an incomplete packet at the end of `rest`.
        e.kept.clear();
    }
    if !rest.is_empty() {
        let used = broker.received(key, rest, now);
        if let Some(tail) = rest.get(used..).filter(|t| !t.is_empty()) {
            return keep(extra, tail);
        }
    }
    release_if_empty(extra);
}

/// Frees the kept buffer once it is empty, and the whole `Extra` when there are no layers
/// either.
fn release_if_empty(extra: &mut Kept) {
    if let Some(e) = extra.as_mut().filter(|e| e.kept.is_empty()) {
        if e.layers.is_empty() {
            *extra = None;
        } else {
            e.kept = Vec::new();
        }
    }
}

/// Whether what is kept is the start of a long packet (1 KiB or more in all), so that the next
/// read may be a long one (`LONG_READ`).
pub(super) fn mid_long_packet(extra: &Kept) -> bool {
    extra.as_ref().is_some_and(|e| {
        lacking(&e.kept).is_some_and(|n| n.saturating_add(e.kept.len()) >= LONG_PACKET)
    })
}

/// A packet at least this long counts as long for [`mid_long_packet`].
const LONG_PACKET: usize = 1024;

/// How many more bytes the first packet in `kept` needs to be whole (0 when it is), or `None`
/// when its fixed header is incomplete or invalid (the broker judges that once it has more).
fn lacking(kept: &[u8]) -> Option<usize> {
    match crate::mqtt::decode_fixed_header(kept, usize::MAX) {
        Ok(crate::mqtt::Status::Complete(h, _)) => Some(h.total_len().saturating_sub(kept.len())),
        _ => None,
    }
}

/// Hands the broker the bytes kept for `key` and keeps what it did not consume (an incomplete
/// packet, or everything after a pause); the buffer is freed once empty, and the whole `Extra`
/// when the connection has no layers either.
pub(super) fn feed_kept(broker: &mut Broker, key: usize, extra: &mut Kept, now: Millis) {
    let Some(e) = extra else {
        return;
    };
    let used = broker.received(key, &e.kept, now).min(e.kept.len());
    e.kept.drain(..used);
    release_if_empty(extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Config;

    fn publish(payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        crate::mqtt::encode_publish(
            &mut p,
            false,
            crate::mqtt::QoS::AtMostOnce,
            false,
            "t",
            None,
            None,
            payload,
        );
        p
    }

    fn drain(b: &mut Broker, id: usize) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let out = b.output(id).to_vec();
            if out.is_empty() {
                return all;
            }
            b.written(id, out.len(), 0);
            all.extend_from_slice(&out);
        }
    }

    /// A packet that straddles reads is completed from the next read with just the bytes it
    /// lacks; the packets after it are handled in place, and only the incomplete one at the end
    /// is kept (in a buffer of its own size, not the whole read's).
    #[test]
    fn a_kept_packet_takes_only_the_bytes_it_lacks() {
        let mut b = Broker::new(Config::default());
        let mut extra: Kept = None;
        let (publisher, subscriber) = (1, 2);
        b.open(subscriber, "127.0.0.1:50001", 0, 0);
        let sub = [
            &b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01s"[..],
            b"\x82\x06\x00\x01\x00\x01t\x00",
        ]
        .concat();
        assert_eq!(b.received(subscriber, &sub, 0), sub.len());
        assert_eq!(
            drain(&mut b, subscriber),
            b"\x20\x02\x00\x00\x90\x03\x00\x01\x00"
        );
        b.open(publisher, "127.0.0.1:50000", 0, 0);
        feed(
            &mut b,
            publisher,
            &mut extra,
            b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01p",
            0,
        );
        assert!(extra.is_none());
        assert_eq!(drain(&mut b, publisher), b"\x20\x02\x00\x00");

        let (p1, p2, p3) = (publish(&[1; 300]), publish(&[2; 40]), publish(&[3; 5000]));
        // A fixed header cut in two is kept whole before its length is known.
        feed(&mut b, publisher, &mut extra, &p1[..1], 0);
        assert_eq!(extra.as_ref().map(|e| &e.kept[..]), Some(&p1[..1]));
        assert!(!mid_long_packet(&extra));
        feed(&mut b, publisher, &mut extra, &p1[1..100], 0);
        assert_eq!(extra.as_ref().map(|e| &e.kept[..]), Some(&p1[..100]));
        // 303 bytes in all: short, the next read is an ordinary one.
        assert!(!mid_long_packet(&extra));
        let read = [&p1[100..], &p2[..], &p3[..2000]].concat();
        feed(&mut b, publisher, &mut extra, &read, 0);
        let kept = &extra.as_ref().expect("the start of p3 is kept").kept;
        assert_eq!(&kept[..], &p3[..2000]);
        // Room for p3 (more than a quarter of it is here) and no more: not the whole read
        // appended to p1's buffer.
        assert_eq!(kept.capacity(), p3.len());
        // 5,006 bytes in all: long, the next read may be a long one.
        assert!(mid_long_packet(&extra));
        assert_eq!(drain(&mut b, subscriber), [&p1[..], &p2[..]].concat());
        // A header announcing far more than has come reserves no more than what came.
        let mut other: Kept = None;
        let huge = [0x30, 0xff, 0xff, 0xff, 0x7f, 0, 1, b't'];
        keep(&mut other, &huge);
        assert_eq!(other.as_ref().map(|e| e.kept.capacity()), Some(huge.len()));
        // The rest of p3 arrives with nothing after it: p3 is delivered and nothing is kept.
        feed(&mut b, publisher, &mut extra, &p3[2000..], 0);
        assert!(extra.is_none());
        assert_eq!(drain(&mut b, subscriber), p3);
    }
}
