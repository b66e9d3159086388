//! A connection's pending output: a ring of segments, each either encoded bytes (fixed
//! headers, topics, packet identifiers, properties, acknowledgements, and small payloads copied
//! in) or a shared reference to a stored message's payload. A payload is stored once, in its
//! [`Message`](super::Message), however many connections are sending it: the kernel's copy
//! into each socket (a vectored write of the segments) is the only per-subscriber copy.
//!
//! An idle connection holds nothing (one null pointer); the ring is allocated while output is
//! pending and freed once it has all been written.

use std::collections::VecDeque;
use std::io::IoSlice;

use super::Msg;
use crate::mqtt::{self, QoS};

/// Payloads at least this long are referenced, not copied. Below it, a copy into the bytes
/// segment is cheaper than one more entry in the vectored write (and keeps many small
/// packets in one contiguous buffer).
pub(super) const SHARE_MIN: usize = 2048;

/// Most segments a ring holds before the queue stops moving into it (with [`Out::full`]'s byte
/// bound): up to about 60 payload references, each one a pointer, however long the payload.
const MAX_SEGS: usize = 128;

/// A bytes segment is not appended to past this size: a new one starts, so the front one
/// can be freed once written instead of being compacted.
const SEG_MAX: usize = 64 * 1024;

/// Most emptied bytes segments kept for reuse ([`Spare`]): a fan-out to this many
/// subscribers in one turn takes no fresh memory.
const SPARE_MAX: usize = 64;

/// How long emptied segments are kept after the last one was taken or given back.
pub(super) const SPARE_KEEP_MS: u64 = 1_000;

/// Emptied bytes segments of [`SEG_MAX`] to twice that (a segment is sealed once it reaches
/// [`SEG_MAX`], so it can have grown once past it), kept for the next connection with output:
/// a segment taken from here is filled without the reallocations (each a copy, and page faults
/// on memory the allocator had given back) of one grown from empty, which were a fifth of the
/// broker's time in a fan-out of 1 KiB messages. Held only under traffic: all are freed
/// [`SPARE_KEEP_MS`] after the last use, so an idle broker keeps none.
///
/// Emptied rings are kept the same way, with their segment lists' capacity: a fan-out of long
/// payloads puts head and payload segments into every subscriber's ring each turn, and a ring
/// built from empty grows its list twice or three times a batch.
#[derive(Default)]
pub(super) struct Spare {
    bufs: Vec<Vec<u8>>,
    #[allow(
        clippy::vec_box,
        reason = "a ring is handed to `Out` in its box, as it was kept: no allocation either way"
    )]
    rings: Vec<Box<Ring>>,
    last_used: u64,
}

impl Spare {
    fn ring(&mut self, now: u64) -> Box<Ring> {
        match self.rings.pop() {
            Some(r) => {
                self.last_used = now;
                r
            }
            None => Box::default(),
        }
    }

    /// Takes back an emptied ring (its bytes segment goes with the others).
    fn give_ring(&mut self, mut r: Box<Ring>, now: u64) {
        if r.tail.capacity() >= SEG_MAX {
            let tail = std::mem::take(&mut r.tail);
            self.give(tail, now);
        }
        // Only rings that held segments (long payloads) have anything worth keeping; a short
        // bytes segment (for packet heads) stays with its ring.
        if self.rings.len() < SPARE_MAX && (1..=MAX_SEGS).contains(&r.segs.capacity()) {
            r.tail.clear();
            r.segs.clear();
            r.pos = 0;
            r.sealed = 0;
            r.shared = 0;
            self.rings.push(r);
            self.last_used = now;
        }
    }

    fn take(&mut self, now: u64) -> Option<Vec<u8>> {
        let b = self.bufs.pop()?;
        self.last_used = now;
        Some(b)
    }

    fn give(&mut self, mut b: Vec<u8>, now: u64) {
        if (SEG_MAX..=2 * SEG_MAX).contains(&b.capacity()) && self.bufs.len() < SPARE_MAX {
            b.clear();
            self.bufs.push(b);
            self.last_used = now;
        }
    }

    /// When the kept segments are to be freed, if any are kept.
    pub(super) fn deadline(&self) -> Option<u64> {
        (!self.bufs.is_empty() || !self.rings.is_empty())
            .then(|| self.last_used.saturating_add(SPARE_KEEP_MS))
    }

    /// Frees the kept segments once unused for [`SPARE_KEEP_MS`].
    pub(super) fn expire(&mut self, now: u64) {
        if self.deadline().is_some_and(|t| t <= now) {
            self.bufs = Vec::new();
            self.rings = Vec::new();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.bufs.len()
    }
}

/// A packet head up to this long, followed by a shared payload, is kept in its segment itself.
const HEAD_INLINE: usize = 38;

enum Seg {
    Bytes(Vec<u8>),
    Payload(Msg),
    /// The head of a PUBLISH whose payload follows by reference: kept in place, so that a ring
    /// of long messages allocates no buffer per head.
    Head(u8, [u8; HEAD_INLINE]),
}

impl Seg {
    fn as_slice(&self) -> &[u8] {
        match self {
            Seg::Bytes(b) => b,
            Seg::Payload(m) => &m.payload,
            Seg::Head(n, b) => b.get(..*n as usize).unwrap_or_default(),
        }
    }
}

/// The segments in order: `segs`, then `tail`, the bytes being appended to. Small packets only
/// ever touch `tail` (`segs` stays unallocated).
#[derive(Default)]
struct Ring {
    segs: VecDeque<Seg>,
    tail: Vec<u8>,
    /// Bytes of the first segment (of `segs`, or `tail` when `segs` is empty) already written.
    pos: usize,
    /// Total length of `segs`.
    sealed: usize,
    /// Total length of the payload segments in `segs`.
    shared: usize,
}

impl Ring {
    /// Ends `tail` before a shared payload: a short tail (the payload's head alone) is copied
    /// into a segment of its own and `tail` keeps its memory; a longer one is sealed.
    fn seal_head(&mut self) {
        let n = self.tail.len();
        if n == 0 || n > HEAD_INLINE {
            return self.seal();
        }
        let mut head = [0u8; HEAD_INLINE];
        for (d, s) in head.iter_mut().zip(&self.tail) {
            *d = *s;
        }
        self.sealed += n;
        self.segs.push_back(Seg::Head(n as u8, head));
        self.tail.clear();
    }

    /// Ends `tail`: later bytes go after what comes next.
    fn seal(&mut self) {
        if !self.tail.is_empty() {
            self.sealed += self.tail.len();
            self.segs
                .push_back(Seg::Bytes(std::mem::take(&mut self.tail)));
        }
    }
}

/// The output of one connection (see the module docs).
#[derive(Default)]
pub(super) struct Out(Option<Box<Ring>>);

impl Out {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Bytes waiting to be written.
    #[inline(always)]
    pub(super) fn pending(&self) -> usize {
        match &self.0 {
            None => 0,
            // `pos` is within the first segment, so never more than what is held.
            Some(r) => (r.sealed + r.tail.len()).saturating_sub(r.pos),
        }
    }

    /// Whether the ring holds enough that no more queued messages should move into it: `high`
    /// bytes of its own (encoded heads and copied payloads), or [`MAX_SEGS`] segments. Shared
    /// payloads count only as segments: they cost a reference here, the message is stored anyway.
    #[inline(always)]
    pub(super) fn full(&self, high: usize) -> bool {
        match &self.0 {
            None => false,
            Some(r) => {
                r.segs.len() >= MAX_SEGS
                    || (r.sealed + r.tail.len()).saturating_sub(r.pos + r.shared) >= high
            }
        }
    }

    /// The bytes segment at the end of the ring, to encode a packet into.
    #[inline(always)]
    pub(super) fn bytes(&mut self) -> &mut Vec<u8> {
        let r = self.0.get_or_insert_with(Box::default);
        if r.tail.len() >= SEG_MAX {
            r.seal();
        }
        &mut r.tail
    }

    /// Appends `msg`'s payload by reference.
    pub(super) fn share(&mut self, msg: &Msg) {
        if msg.payload.is_empty() {
            return;
        }
        let r = self.0.get_or_insert_with(Box::default);
        r.seal_head();
        r.sealed += msg.payload.len();
        r.shared += msg.payload.len();
        r.segs.push_back(Seg::Payload(msg.clone()));
    }

    /// Appends a PUBLISH of `msg`: its head encoded, its payload copied when short and
    /// referenced when long (see [`SHARE_MIN`]). Bytes go into a spare segment when the one
    /// being appended to is small and one is kept.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn publish(
        &mut self,
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: &str,
        pid: Option<u16>,
        props: Option<&[u8]>,
        msg: &Msg,
        spare: &mut Spare,
        now: u64,
    ) {
        let r = self.0.get_or_insert_with(|| spare.ring(now));
        if r.tail.capacity() < SEG_MAX {
            if let Some(buf) = spare.take(now) {
                r.seal();
                r.tail = buf;
            }
        }
        let payload = &msg.payload;
        if payload.len() < SHARE_MIN {
            mqtt::encode_publish(self.bytes(), dup, qos, retain, topic, pid, props, payload);
        } else {
            let head = self.bytes();
            mqtt::encode_publish_head(head, dup, qos, retain, topic, pid, props, payload.len());
            self.share(msg);
        }
    }

    /// The unwritten part of the first segment (empty when nothing is pending).
    pub(super) fn front(&self) -> &[u8] {
        match &self.0 {
            Some(r) => match r.segs.front() {
                Some(s) => s.as_slice().get(r.pos..).unwrap_or_default(),
                None => r.tail.get(r.pos..).unwrap_or_default(),
            },
            None => &[],
        }
    }

    /// Fills `bufs` with the unwritten segments, in order; returns how many it filled.
    pub(super) fn slices<'a>(&'a self, bufs: &mut [IoSlice<'a>]) -> usize {
        let Some(r) = &self.0 else {
            return 0;
        };
        let mut n = 0;
        let mut skip = r.pos;
        let all = r.segs.iter().map(Seg::as_slice);
        for b in all.chain(std::iter::once(&r.tail[..])) {
            let Some(slot) = bufs.get_mut(n) else {
                break;
            };
            let b = b.get(skip..).unwrap_or_default();
            skip = 0;
            if !b.is_empty() {
                *slot = IoSlice::new(b);
                n += 1;
            }
        }
        n
    }

    /// `n` bytes were written: drops the segments they finish (and the ring once empty),
    /// keeping emptied bytes segments in `spare`.
    pub(super) fn advance(&mut self, mut n: usize, spare: &mut Spare, now: u64) {
        let Some(r) = &mut self.0 else {
            return;
        };
        while let Some(front) = r.segs.front() {
            let len = front.as_slice().len();
            let left = len.saturating_sub(r.pos);
            if n < left {
                r.pos += n;
                return;
            }
            n -= left;
            r.pos = 0;
            r.sealed = r.sealed.saturating_sub(len);
            match r.segs.pop_front() {
                Some(Seg::Payload(_)) => r.shared = r.shared.saturating_sub(len),
                Some(Seg::Bytes(b)) => spare.give(b, now),
                Some(Seg::Head(..)) | None => {}
            }
        }
        r.pos = r.pos.saturating_add(n).min(r.tail.len());
        if r.pos == r.tail.len() {
            // Idle connections hold no output.
            if let Some(r) = self.0.take() {
                spare.give_ring(r, now);
            }
        } else if r.pos >= SEG_MAX {
            // Compacted once a good part of it has been written, so a slow reader's buffer
            // does not grow without end.
            r.tail.drain(..r.pos);
            r.pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::broker::Message;

    fn all(o: &Out) -> Vec<u8> {
        let mut bufs = [IoSlice::new(&[]); 8];
        let n = o.slices(&mut bufs);
        bufs[..n].iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn segments_are_written_in_order_across_partial_writes() {
        let msg = Rc::new(Message::new("t", &[9; 3000], QoS::AtMostOnce, false));
        let mut o = Out::default();
        let mut spare = Spare::default();
        assert!(o.is_empty());
        o.bytes().extend_from_slice(b"head");
        o.share(&msg);
        o.bytes().extend_from_slice(b"tail");
        o.share(&msg);
        assert_eq!(o.pending(), 4 + 3000 + 4 + 3000);
        let mut want = b"head".to_vec();
        want.extend_from_slice(&[9; 3000]);
        want.extend_from_slice(b"tail");
        want.extend_from_slice(&[9; 3000]);
        assert_eq!(all(&o), want);
        // The payload is referenced, not copied: the ring holds two more references.
        assert_eq!(Rc::strong_count(&msg), 3);
        let mut got = Vec::new();
        for step in [1, 3, 2999, 1, 2, 5] {
            got.extend_from_slice(&all(&o)[..step]);
            o.advance(step, &mut spare, 0);
            assert_eq!(o.pending(), want.len() - got.len());
        }
        got.extend_from_slice(o.front());
        let n = o.front().len();
        o.advance(n, &mut spare, 0);
        got.extend_from_slice(&all(&o));
        let n = o.pending();
        o.advance(n, &mut spare, 0);
        assert_eq!(got, want);
        assert!(o.is_empty());
        assert_eq!(Rc::strong_count(&msg), 1);
    }

    #[test]
    fn full_counts_own_bytes_and_segments_not_shared_payloads() {
        let msg = Rc::new(Message::new("t", &[1; 100_000], QoS::AtMostOnce, false));
        let mut o = Out::default();
        let mut spare = Spare::default();
        assert!(!o.full(1000));
        // Long payloads by reference: only their segments count.
        for _ in 0..10 {
            o.bytes().extend_from_slice(&[0; 10]);
            o.share(&msg);
        }
        assert_eq!(o.pending(), 10 * 100_010);
        assert!(!o.full(1000));
        o.bytes().extend_from_slice(&[0; 1000]);
        assert!(o.full(1000));
        let n = o.pending();
        o.advance(n, &mut spare, 0);
        assert!(o.is_empty() && !o.full(1000));
        for _ in 0..MAX_SEGS / 2 {
            o.bytes().push(0);
            o.share(&msg);
        }
        assert!(o.full(usize::MAX));
    }

    #[test]
    fn written_segments_are_kept_for_the_next_output_and_freed_when_unused() {
        let mut spare = Spare::default();
        let small = Rc::new(Message::new("t", &[7; 1000], QoS::AtMostOnce, false));
        // A QoS 0 PUBLISH of 1,006 bytes.
        let publish = |o: &mut Out, spare: &mut Spare, now| {
            o.publish(
                false,
                QoS::AtMostOnce,
                false,
                "t",
                None,
                None,
                &small,
                spare,
                now,
            )
        };
        let mut a = Out::default();
        // 70 packets: a full segment, sealed, and a second one begun.
        for _ in 0..70 {
            publish(&mut a, &mut spare, 0);
        }
        assert_eq!(a.pending(), 70 * 1006);
        let n = a.pending();
        a.advance(n, &mut spare, 10);
        assert!(a.is_empty());
        // The full segment is kept; the short second one is not.
        assert_eq!(spare.len(), 1);
        assert_eq!(spare.deadline(), Some(10 + SPARE_KEEP_MS));
        // The next connection with output fills it without growing a segment of its own.
        let mut b = Out::default();
        publish(&mut b, &mut spare, 20);
        assert_eq!(spare.len(), 0);
        assert!(b.0.as_ref().unwrap().tail.capacity() >= SEG_MAX);
        assert_eq!(all(&b)[..5], [0x30, 0xeb, 0x07, 0x00, 0x01]);
        let n = b.pending();
        b.advance(n, &mut spare, 30);
        assert_eq!(spare.len(), 1);
        // Unused for SPARE_KEEP_MS: freed.
        spare.expire(30 + SPARE_KEEP_MS - 1);
        assert_eq!(spare.len(), 1);
        spare.expire(30 + SPARE_KEEP_MS);
        assert_eq!((spare.len(), spare.deadline()), (0, None));
    }

    #[test]
    fn a_slow_readers_bytes_are_compacted_or_split_not_grown_forever() {
        let mut o = Out::default();
        let mut spare = Spare::default();
        for _ in 0..10 {
            o.bytes().extend_from_slice(&[1; 30_000]);
            o.advance(29_000, &mut spare, 0);
        }
        assert_eq!(o.pending(), 10_000);
        let r = o.0.as_ref().unwrap();
        let held: usize = r.segs.iter().map(|s| s.as_slice().len()).sum::<usize>() + r.tail.len();
        assert!(held <= 2 * SEG_MAX + 30_000, "{held}");
    }

    #[test]
    fn heads_of_shared_payloads_take_no_buffer_and_rings_are_reused() {
        let big = Rc::new(Message::new("t", &[5; SHARE_MIN], QoS::AtMostOnce, false));
        let mut spare = Spare::default();
        let mut o = Out::default();
        for pid in [1, 2, 3] {
            o.publish(
                false,
                QoS::AtLeastOnce,
                false,
                "a/b",
                Some(pid),
                None,
                &big,
                &mut spare,
                0,
            );
        }
        // 0x32, remaining length 2 + 3 + 2 + 2048 (two bytes), topic, packet id: 9-byte heads.
        let mut want = Vec::new();
        for pid in [1u8, 2, 3] {
            want.extend_from_slice(&[0x32, 0x87, 0x10, 0, 3, b'a', b'/', b'b', 0, pid]);
            want.extend_from_slice(&[5; SHARE_MIN]);
        }
        assert_eq!(all(&o), want);
        let r = o.0.as_ref().unwrap();
        let kinds: Vec<&str> = r
            .segs
            .iter()
            .map(|s| match s {
                Seg::Head(..) => "head",
                Seg::Payload(_) => "payload",
                Seg::Bytes(_) => "bytes",
            })
            .collect();
        assert_eq!(
            kinds,
            ["head", "payload", "head", "payload", "head", "payload"]
        );
        assert!(r.tail.is_empty());
        let cap = r.segs.capacity();
        // Written in uneven steps, the bytes come out the same.
        let mut got = Vec::new();
        while o.pending() > 0 {
            let step = o.front().len().min(7);
            got.extend_from_slice(&o.front()[..step]);
            o.advance(step, &mut spare, 10);
        }
        assert_eq!(got, want);
        assert!(o.is_empty());
        assert_eq!(Rc::strong_count(&big), 1);
        // The emptied ring is kept with its segment list, and the next publish takes it.
        assert_eq!(spare.rings.len(), 1);
        let mut p = Out::default();
        p.publish(
            false,
            QoS::AtMostOnce,
            false,
            "a/b",
            None,
            None,
            &big,
            &mut spare,
            20,
        );
        assert!(spare.rings.is_empty());
        assert_eq!(p.0.as_ref().unwrap().segs.capacity(), cap);
        let n = p.pending();
        p.advance(n, &mut spare, 30);
        assert_eq!(spare.rings.len(), 1);
        spare.expire(30 + SPARE_KEEP_MS);
        assert!(spare.rings.is_empty());
        // A ring of short packets holds no segments and is not kept.
        let small = Rc::new(Message::new("t", b"x", QoS::AtMostOnce, false));
        let mut q = Out::default();
        q.publish(
            false,
            QoS::AtMostOnce,
            false,
            "a",
            None,
            None,
            &small,
            &mut spare,
            40,
        );
        let n = q.pending();
        q.advance(n, &mut spare, 40);
        assert!(spare.rings.is_empty());
        assert_eq!(spare.deadline(), None);
    }
}
