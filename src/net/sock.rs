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

/// Keeps `tail`, decoded bytes the broker has not consumed, for next time.
pub(super) fn keep(extra: &mut Kept, tail: &[u8]) {
    match extra {
        Some(e) => e.kept.extend_from_slice(tail),
        None => {
            *extra = Some(Box::new(Extra {
                kept: tail.to_vec(),
                layers: Vec::new(),
            }))
        }
    }
}

/// Hands the broker the bytes kept for `key` and keeps what it did not consume (an incomplete
/// packet, or everything after a pause); the buffer is freed once empty, and the whole `Extra`
/// when the connection has no layers either.
pub(super) fn feed_kept(broker: &mut Broker, key: usize, extra: &mut Kept, now: Millis) {
    let Some(e) = extra else {
        return;
    };
    let used = broker.received(key, &e.kept, now);
    if used >= e.kept.len() {
        if e.layers.is_empty() {
            *extra = None;
        } else {
            e.kept = Vec::new();
        }
    } else {
        e.kept.drain(..used);
    }
}
