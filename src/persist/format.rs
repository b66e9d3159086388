//! The snapshot file format: a [`Snapshot`] to bytes and back.
//!
//! Built for a Raspberry Pi that loses power: every record is checksummed and framed so that a
//! reader can find the next intact record after any damage. [`decode`] never panics, never
//! trusts a length, and returns every intact record together with a plain-words list of what
//! was lost.
//!
//! # Byte layout (format version 1)
//!
//! All integers are little-endian and fixed-width. `str` is a `u32` byte length followed by that
//! many bytes of UTF-8; `bytes` is a `u32` length followed by that many bytes. `CRC-32` is the
//! IEEE / zlib / PNG CRC (polynomial 0x04C11DB7 reflected, i.e. 0xEDB88320, initial value and
//! final XOR 0xFFFFFFFF; `crc32(b"123456789") == 0xCBF43926`).
//!
//! ## File
//!
//! | offset | size | field                                                                |
//! |-------:|-----:|----------------------------------------------------------------------|
//! | 0      | 8    | magic `4D 49 44 47 45 44 42 00` (`b"MIDGEDB\0"`)                     |
//! | 8      | 4    | format version, `u32` = 1                                            |
//! | 12     | 4    | flags, `u32`: written 0; readers ignore bits they do not know         |
//! | 16     | 8    | number of retained-message records that follow, `u64`                |
//! | 24     | 8    | number of session records that follow, `u64`                         |
//! | 32     | 4    | CRC-32 of bytes 0..32                                                |
//! | 36     | ...  | records, back to back: every retained message, every session, then one end record |
//!
//! A change that an older reader must not misread bumps the version (readers refuse a newer
//! version). A purely additive change may use a flag bit or an optional record type instead.
//!
//! ## Record
//!
//! | offset | size | field                                                                |
//! |-------:|-----:|----------------------------------------------------------------------|
//! | 0      | 4    | record marker `A5 4D 52 01` (`b"\xA5MR"` + the format version byte)  |
//! | 4      | 1    | type: 1 retained message, 2 session, 3 end; see below                |
//! | 5      | 4    | body length `n`, `u32`                                               |
//! | 9      | n    | body                                                                 |
//! | 9+n    | 4    | CRC-32 of bytes 4..9+n (type, length and body; not the marker)       |
//!
//! Types 0x80..=0xFF are optional: a reader that does not know one skips it silently. Any other
//! unknown type is a lost record. The marker lets a reader resynchronise: after a damaged
//! record it searches forward for the next marker whose record checks out.
//!
//! ## Bodies
//!
//! **Message** (`Msg`; a retained-message record's body is exactly one `Msg`):
//!
//! | size | field                                                                           |
//! |-----:|---------------------------------------------------------------------------------|
//! | 1    | flags: bit 0 retain, bit 1 expiry present, bit 2 origin present, bit 3 origin user name present (only with bit 2); bits 4-7 zero |
//! | 1    | QoS: 0, 1 or 2                                                                  |
//! | 4+   | topic, `str`                                                                    |
//! | 4+   | payload, `bytes`                                                                |
//! | 4+   | MQTT 5 properties, encoded as the broker stores them, `bytes`                   |
//! | 4    | seconds of expiry left, `u32` (only if flags bit 1)                             |
//! | 4+   | origin client id, `str` (only if flags bit 2)                                   |
//! | 4+   | origin user name, `str` (only if flags bit 3)                                   |
//! | 4    | origin listener, `u32` (only if flags bit 2)                                    |
//!
//! **Session** (type 2):
//!
//! | size | field                                                                           |
//! |-----:|---------------------------------------------------------------------------------|
//! | 4+   | client id, `str`                                                                |
//! | 1    | flags: bit 0 user name present, bit 1 expiry left present, bit 2 pending will present; bits 3-7 zero |
//! | 4+   | user name, `str` (only if flags bit 0)                                          |
//! | 4    | listener, `u32`                                                                 |
//! | 4    | session expiry interval, seconds, `u32` (`0xFFFFFFFF`: never)                   |
//! | 4    | seconds of expiry left, `u32` (only if flags bit 1)                             |
//! | 2    | last packet identifier used, `u16`                                              |
//! | 4    | subscription count, `u32`, then for each: filter `str`, options `u8` (QoS in bits 0-1 is 0..=2), subscription identifier `u32` (0: none) |
//! | 4    | outgoing message count, `u32`, then for each: state `u8` (0 queued, 1 awaiting PUBACK/PUBREC, 2 awaiting PUBCOMP), QoS `u8` (0..=2), flags `u8` (bit 0 retain; bits 1-7 zero), packet identifier `u16`, subscription identifier count `u32` and that many `u32`, `Msg` |
//! | 4    | incoming QoS 2 packet identifier count, `u32`, then that many `u16`             |
//! | 4+   | pending will (only if flags bit 2): seconds of delay left `u32`, then `Msg`     |
//!
//! **End** (type 3), body 16 bytes: retained-message record count `u64`, session record count
//! `u64` (the same numbers as the header, so a file cut at a record boundary is detected even
//! when its header is damaged).
//!
//! A body must be consumed exactly; trailing bytes, a reserved bit set, a QoS of 3, an unknown
//! state or invalid UTF-8 make that one record lost.
//!
//! # Decoding damaged files
//!
//! - `Err(`[`FormatError::NotASnapshot`]`)`: nothing identifies the bytes as a midge snapshot,
//!   no midge magic and not one intact record. An empty file, an all-zero file, random bytes,
//!   another program's file. The caller starts empty (and keeps the file aside).
//! - `Err(`[`FormatError::NewerVersion`]`)`: an intact midge header with a version above
//!   [`VERSION`]. Refused rather than misread; the caller must not overwrite the file.
//! - `Ok(`[`Decoded`]`)` with `damaged == true`: a midge file with something lost (a header cut
//!   short, a damaged header, damaged records, a missing end record, counts that do not add up).
//!   Every intact record is in `snapshot`, and `problems` says what was lost, in plain words.
//! - `Ok` with `damaged == false` and no problems: the file is exactly as written.
//!
//! A damaged header does not lose the records: they are read without it, and the counts come
//! from the end record. A version above 1 is [`FormatError::NewerVersion`] when the header's
//! checksum matches it as it stands. Otherwise it is taken as damage when the checksum matches
//! the header as version 1, or when an intact version 1 record follows the header at offset 36
//! (a newer writer marks its records with its own version byte, so its files never have one
//! there); failing both, it is [`FormatError::NewerVersion`] too: refuse rather than misread.
//!
//! Known limits. Resynchronising means searching for the record marker, so a damaged record
//! whose payload happens to contain a whole, valid midge record (a snapshot file published as
//! a message, say) yields that inner record. Decoding is linear in the file size for a clean
//! file, a truncated one, and one with damaged records in any number; only many damaged
//! length fields that each still point inside the file (a crafted file, in practice) make the
//! checksum work grow with the square of the size.

use std::fmt;
use std::io::{self, Write};

use super::{OutState, Snapshot, StoredMsg, StoredOut, StoredSession, StoredSub};

/// The first eight bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"MIDGEDB\0";
/// The format version this code writes and the newest it reads.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 36;
/// The four bytes that start every record (the last one is the format version).
pub const RECORD_MARKER: [u8; 4] = [0xA5, b'M', b'R', VERSION as u8];
/// Bytes a record adds around its body: marker, type, length, CRC.
pub const RECORD_OVERHEAD: usize = 13;
/// Bytes of the end record.
pub const END_RECORD_LEN: usize = RECORD_OVERHEAD + 16;
/// Bytes a [`StoredMsg`] without expiry and origin adds to its topic, payload and properties.
pub const MSG_OVERHEAD: usize = 14;

/// Record type of a retained message.
pub const TYPE_RETAINED: u8 = 1;
/// Record type of a session.
pub const TYPE_SESSION: u8 = 2;
/// Record type of the end record.
pub const TYPE_END: u8 = 3;

/// Frame head: marker, type, length.
const FRAME_HEAD: usize = 9;
/// The encoder hands the writer this much at a time (plus at most one record).
const CHUNK: usize = 32 * 1024;
/// At most this many problems are listed; the rest are counted.
const MAX_PROBLEMS: usize = 64;

const MSG_RETAIN: u8 = 0x01;
const MSG_EXPIRY: u8 = 0x02;
const MSG_ORIGIN: u8 = 0x04;
const MSG_ORIGIN_USER: u8 = 0x08;
const SES_USERNAME: u8 = 0x01;
const SES_EXPIRY_LEFT: u8 = 0x02;
const SES_WILL: u8 = 0x04;
const OUT_RETAIN: u8 = 0x01;

// ---------------------------------------------------------------------------------------------
// CRC-32

/// CRC-32 (IEEE) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Continues a CRC-32: `crc32_update(crc32(a), b) == crc32(a ++ b)`.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn too_long(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("snapshot {what} longer than 4 GiB"),
    )
}

fn put_len(buf: &mut Vec<u8>, n: usize, what: &str) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| too_long(what))?;
    buf.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8], what: &str) -> io::Result<()> {
    put_len(buf, b.len(), what)?;
    buf.extend_from_slice(b);
    Ok(())
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_msg(buf: &mut Vec<u8>, m: &StoredMsg) -> io::Result<()> {
    debug_assert!(m.qos <= 2, "QoS {} in a stored message", m.qos);
    let mut flags = 0;
    if m.retain {
        flags |= MSG_RETAIN;
    }
    if m.expiry_left.is_some() {
        flags |= MSG_EXPIRY;
    }
    if let Some((_, user, _)) = &m.origin {
        flags |= MSG_ORIGIN;
        if user.is_some() {
            flags |= MSG_ORIGIN_USER;
        }
    }
    buf.push(flags);
    buf.push(m.qos);
    put_bytes(buf, m.topic.as_bytes(), "topic")?;
    put_bytes(buf, &m.payload, "payload")?;
    put_bytes(buf, &m.props, "properties")?;
    if let Some(e) = m.expiry_left {
        put_u32(buf, e);
    }
    if let Some((client, user, listener)) = &m.origin {
        put_bytes(buf, client.as_bytes(), "client id")?;
        if let Some(u) = user {
            put_bytes(buf, u.as_bytes(), "user name")?;
        }
        put_u32(buf, *listener);
    }
    Ok(())
}

fn put_session(buf: &mut Vec<u8>, s: &StoredSession) -> io::Result<()> {
    put_bytes(buf, s.client_id.as_bytes(), "client id")?;
    let mut flags = 0;
    if s.username.is_some() {
        flags |= SES_USERNAME;
    }
    if s.expiry_left.is_some() {
        flags |= SES_EXPIRY_LEFT;
    }
    if s.pending_will.is_some() {
        flags |= SES_WILL;
    }
    buf.push(flags);
    if let Some(u) = &s.username {
        put_bytes(buf, u.as_bytes(), "user name")?;
    }
    put_u32(buf, s.listener);
    put_u32(buf, s.expiry_interval);
    if let Some(e) = s.expiry_left {
        put_u32(buf, e);
    }
    buf.extend_from_slice(&s.last_pid.to_le_bytes());
    put_len(buf, s.subs.len(), "subscription list")?;
    for sub in &s.subs {
        put_bytes(buf, sub.filter.as_bytes(), "filter")?;
        buf.push(sub.options);
        put_u32(buf, sub.id);
    }
    put_len(buf, s.out.len(), "message queue")?;
    for o in &s.out {
        debug_assert!(o.qos <= 2, "QoS {} in a stored delivery", o.qos);
        buf.push(o.state as u8);
        buf.push(o.qos);
        buf.push(if o.retain { OUT_RETAIN } else { 0 });
        buf.extend_from_slice(&o.pid.to_le_bytes());
        put_len(buf, o.sub_ids.len(), "subscription identifier list")?;
        for id in &o.sub_ids {
            put_u32(buf, *id);
        }
        put_msg(buf, &o.msg)?;
    }
    put_len(buf, s.incoming_qos2.len(), "incoming QoS 2 list")?;
    for pid in &s.incoming_qos2 {
        buf.extend_from_slice(&pid.to_le_bytes());
    }
    if let Some((delay, will)) = &s.pending_will {
        put_u32(buf, *delay);
        put_msg(buf, will)?;
    }
    Ok(())
}

/// Appends one record whose body `body` writes.
fn put_record(
    buf: &mut Vec<u8>,
    kind: u8,
    body: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&RECORD_MARKER);
    buf.push(kind);
    buf.extend_from_slice(&[0; 4]);
    body(buf)?;
    let len = buf.len() - start - FRAME_HEAD;
    let len = u32::try_from(len).map_err(|_| too_long("record"))?;
    buf[start + 5..start + FRAME_HEAD].copy_from_slice(&len.to_le_bytes());
    let crc = crc32(&buf[start + 4..]);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn header(retained: u64, sessions: u64) -> [u8; HEADER_LEN] {
    header_with_version(VERSION, 0, retained, sessions)
}

fn header_with_version(version: u32, flags: u32, retained: u64, sessions: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&retained.to_le_bytes());
    h[24..32].copy_from_slice(&sessions.to_le_bytes());
    let crc = crc32(&h[..32]);
    h[32..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Encodes a snapshot into a new buffer.
///
/// # Panics
/// If one string, payload or record is 4 GiB or longer, which the broker's limits rule out
/// ([`encode_into`] returns an error instead).
#[allow(
    clippy::panic,
    reason = "documented above; the broker saves with encode_into"
)]
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = encode_into(s, &mut out) {
        panic!("cannot encode snapshot: {e}");
    }
    out
}

/// Encodes a snapshot into `out`, a record at a time: the extra memory is a buffer of about
/// 32 KiB plus the largest record, however big the snapshot. Errors are `out`'s, or
/// `InvalidInput` for a string, payload or record of 4 GiB or more.
pub fn encode_into(s: &Snapshot, out: &mut impl Write) -> io::Result<()> {
    let mut e = Encoder::new(out, s.retained.len() as u64, s.sessions.len() as u64);
    for m in &s.retained {
        e.retained(m)?;
    }
    for ses in &s.sessions {
        e.session(ses)?;
    }
    e.finish()
}

/// Writes a snapshot record by record, for a caller that produces the records one at a time
/// (the broker, which then never holds a second copy of its state). The counts given to
/// [`Encoder::new`] go into the header and must match the records written: every retained
/// message first, then every session.
pub struct Encoder<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    retained: u64,
    sessions: u64,
}

impl<'w, W: Write> Encoder<'w, W> {
    pub fn new(out: &'w mut W, retained: u64, sessions: u64) -> Self {
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        buf.extend_from_slice(&header(retained, sessions));
        Encoder {
            out,
            buf,
            retained,
            sessions,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn retained(&mut self, m: &StoredMsg) -> io::Result<()> {
        put_record(&mut self.buf, TYPE_RETAINED, |b| put_msg(b, m))?;
        self.spill()
    }

    pub fn session(&mut self, s: &StoredSession) -> io::Result<()> {
        put_record(&mut self.buf, TYPE_SESSION, |b| put_session(b, s))?;
        self.spill()
    }

    /// The end record, and everything still buffered.
    pub fn finish(mut self) -> io::Result<()> {
        let (retained, sessions) = (self.retained, self.sessions);
        put_record(&mut self.buf, TYPE_END, |b| {
            b.extend_from_slice(&retained.to_le_bytes());
            b.extend_from_slice(&sessions.to_le_bytes());
            Ok(())
        })?;
        self.out.write_all(&self.buf)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// What [`decode`] recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Every intact record, in file order.
    pub snapshot: Snapshot,
    /// What was lost or looked wrong, in plain words, at most 64 lines plus a count of the rest
    /// (each line is fit for a log, without a trailing period).
    pub problems: Vec<String>,
    /// Something was lost or looked wrong: keep the file aside. Never true without problems.
    pub damaged: bool,
}

/// Why [`decode`] returned no snapshot at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// No midge magic and not one intact record: empty, zeroed, random, or another program's.
    NotASnapshot,
    /// An intact header of a newer format version: refused rather than misread.
    NewerVersion(u32),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NotASnapshot => {
                f.write_str("not a midge snapshot (no midge header and no intact record)")
            }
            FormatError::NewerVersion(v) => write!(
                f,
                "snapshot format version {v} is newer than this midge reads (version {VERSION})"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// A record frame at some offset.
enum Frame<'a> {
    /// Marker, length and checksum all good.
    Intact {
        kind: u8,
        body: &'a [u8],
        end: usize,
    },
    /// A record marker (or the start of one) whose record runs past the end of the bytes.
    Incomplete { have: usize, need: Option<usize> },
    /// Not a record there.
    NoMarker,
    /// A whole frame whose checksum does not match.
    BadChecksum,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let lo = le_u32(b, at)?;
    let hi = le_u32(b, at.checked_add(4)?)?;
    Some(u64::from(lo) | u64::from(hi) << 32)
}

fn frame_at(b: &[u8], pos: usize) -> Frame<'_> {
    let rest = b.get(pos..).unwrap_or(&[]);
    let m = rest.len().min(RECORD_MARKER.len());
    if rest[..m] != RECORD_MARKER[..m] || rest.is_empty() {
        return Frame::NoMarker;
    }
    let (Some(&kind), Some(len)) = (rest.get(4), le_u32(rest, 5)) else {
        return Frame::Incomplete {
            have: rest.len(),
            need: None,
        };
    };
    // On a 32-bit Pi `usize` is 32 bits: a huge length must not wrap around.
    let need = usize::try_from(len)
        .ok()
        .and_then(|n| n.checked_add(FRAME_HEAD + 4));
    let Some(need) = need.filter(|&n| n <= rest.len()) else {
        return Frame::Incomplete {
            have: rest.len(),
            need,
        };
    };
    let body_end = need - 4;
    let stored = le_u32(rest, body_end);
    if stored != Some(crc32(&rest[4..body_end])) {
        return Frame::BadChecksum;
    }
    Frame::Intact {
        kind,
        body: &rest[FRAME_HEAD..body_end],
        end: pos + need,
    }
}

/// The offset of the next intact record at or after `from`.
fn next_intact(b: &[u8], from: usize) -> Option<usize> {
    let hay = b.get(from..)?;
    memchr::memmem::find_iter(hay, &RECORD_MARKER)
        .map(|i| from + i)
        .find(|&q| matches!(frame_at(b, q), Frame::Intact { .. }))
}

/// A cursor over a record body; every read checks the bytes left first.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.b.len() {
            return Err(format!("ends inside the {what}"));
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let lo = self.u32(what)?;
        let hi = self.u32(what)?;
        Ok(u64::from(lo) | u64::from(hi) << 32)
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.b.len() => self.take(n, what),
            _ => Err(format!(
                "the {what}'s length ({n}) runs past the end of the record"
            )),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let b = self.bytes(what)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(format!("the {what} is not valid UTF-8")),
        }
    }

    /// A `u32` element count, and a capacity for it that the bytes left can back.
    fn count(&mut self, what: &str, min_elem: usize) -> Result<(u32, usize), String> {
        let n = self.u32(what)?;
        let cap = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.b.len() / min_elem);
        Ok((n, cap))
    }

    fn flags(&mut self, what: &str, known: u8) -> Result<u8, String> {
        let f = self.u8(what)?;
        if f & !known != 0 {
            return Err(format!("reserved bits set in the {what} ({f:#04x})"));
        }
        Ok(f)
    }

    fn qos(&mut self, what: &str) -> Result<u8, String> {
        let q = self.u8(what)?;
        if q > 2 {
            return Err(format!("invalid {what} {q}"));
        }
        Ok(q)
    }

    fn finish(&self, what: &str) -> Result<(), String> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} unexpected bytes after the {what}",
                self.b.len()
            ))
        }
    }
}

fn read_msg(r: &mut Reader<'_>) -> Result<StoredMsg, String> {
    let flags = r.flags(
        "message flags",
        MSG_RETAIN | MSG_EXPIRY | MSG_ORIGIN | MSG_ORIGIN_USER,
    )?;
    if flags & MSG_ORIGIN_USER != 0 && flags & MSG_ORIGIN == 0 {
        return Err("message flags name an origin user name without an origin".into());
    }
    let qos = r.qos("message QoS")?;
    let topic = r.string("topic")?;
    let payload = r.bytes("payload")?.to_vec();
    let props = r.bytes("properties")?.to_vec();
    let expiry_left = if flags & MSG_EXPIRY != 0 {
        Some(r.u32("message expiry")?)
    } else {
        None
    };
    let origin = if flags & MSG_ORIGIN != 0 {
        let client = r.string("origin client id")?;
        let user = if flags & MSG_ORIGIN_USER != 0 {
            Some(r.string("origin user name")?)
        } else {
            None
        };
        Some((client, user, r.u32("origin listener")?))
    } else {
        None
    };
    Ok(StoredMsg {
        topic,
        payload,
        qos,
        retain: flags & MSG_RETAIN != 0,
        props,
        expiry_left,
        origin,
    })
}

/// Reads a session body; on failure says which session if its client id was readable.
fn read_session(r: &mut Reader<'_>) -> Result<StoredSession, (Option<String>, String)> {
    let client_id = r.string("client id").map_err(|e| (None, e))?;
    read_session_rest(r, client_id.clone()).map_err(|e| (Some(client_id), e))
}

fn read_session_rest(r: &mut Reader<'_>, client_id: String) -> Result<StoredSession, String> {
    let flags = r.flags("session flags", SES_USERNAME | SES_EXPIRY_LEFT | SES_WILL)?;
    let username = if flags & SES_USERNAME != 0 {
        Some(r.string("user name")?)
    } else {
        None
    };
    let listener = r.u32("listener")?;
    let expiry_interval = r.u32("session expiry interval")?;
    let expiry_left = if flags & SES_EXPIRY_LEFT != 0 {
        Some(r.u32("session expiry")?)
    } else {
        None
    };
    let last_pid = r.u16("last packet identifier")?;

    let (n, cap) = r.count("subscription count", 9)?;
    let mut subs = Vec::with_capacity(cap);
    for _ in 0..n {
        let filter = r.string("filter")?;
        let options = r.u8("subscription options")?;
        if options & 3 == 3 {
            return Err(format!(
                "invalid QoS 3 in the options of subscription {filter:?}"
            ));
        }
        let id = r.u32("subscription identifier")?;
        subs.push(StoredSub {
            filter,
            options,
            id,
        });
    }

    let (n, cap) = r.count("message count", 9 + MSG_OVERHEAD)?;
    let mut out = Vec::with_capacity(cap);
    for _ in 0..n {
        let state = match r.u8("delivery state")? {
            0 => OutState::Queued,
            1 => OutState::AwaitAck,
            2 => OutState::AwaitComp,
            s => return Err(format!("unknown delivery state {s}")),
        };
        let qos = r.qos("delivery QoS")?;
        let oflags = r.flags("delivery flags", OUT_RETAIN)?;
        let pid = r.u16("packet identifier")?;
        let (k, cap) = r.count("subscription identifier count", 4)?;
        let mut sub_ids = Vec::with_capacity(cap);
        for _ in 0..k {
            sub_ids.push(r.u32("subscription identifier")?);
        }
        let msg = read_msg(r)?;
        out.push(StoredOut {
            state,
            pid,
            qos,
            retain: oflags & OUT_RETAIN != 0,
            sub_ids,
            msg,
        });
    }

    let (n, cap) = r.count("incoming QoS 2 count", 2)?;
    let mut incoming_qos2 = Vec::with_capacity(cap);
    for _ in 0..n {
        incoming_qos2.push(r.u16("incoming QoS 2 packet identifier")?);
    }

    let pending_will = if flags & SES_WILL != 0 {
        let delay = r.u32("will delay")?;
        Some((delay, read_msg(r)?))
    } else {
        None
    };
    r.finish("session")?;
    Ok(StoredSession {
        client_id,
        username,
        listener,
        expiry_interval,
        expiry_left,
        subs,
        out,
        incoming_qos2,
        pending_will,
        last_pid,
    })
}

/// The decoder's running state.
struct State {
    snapshot: Snapshot,
    problems: Vec<String>,
    unlisted: usize,
    damaged: bool,
    /// Record counts from an intact header.
    header_counts: Option<(u64, u64)>,
    /// Record counts from the (first) intact end record.
    end_counts: Option<(u64, u64)>,
    /// The file ends inside a record, or right after one (or the header).
    truncated: bool,
}

impl State {
    fn problem(&mut self, p: String) {
        self.damaged = true;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        } else {
            self.unlisted += 1;
        }
    }

    fn record(&mut self, pos: usize, kind: u8, body: &[u8]) {
        if self.end_counts.is_some() && kind != TYPE_END && kind < 0x80 {
            self.problem(format!("record at offset {pos} comes after the end record"));
        }
        let mut r = Reader { b: body };
        match kind {
            TYPE_RETAINED => match read_msg(&mut r).and_then(|m| r.finish("message").map(|()| m)) {
                Ok(m) => self.snapshot.retained.push(m),
                Err(e) => self.problem(format!(
                    "record at offset {pos} (retained message): {e}; skipped"
                )),
            },
            TYPE_SESSION => match read_session(&mut r) {
                Ok(s) => self.snapshot.sessions.push(s),
                Err((Some(id), e)) => self.problem(format!(
                    "record at offset {pos} (session {id:?}): {e}; skipped"
                )),
                Err((None, e)) => {
                    self.problem(format!("record at offset {pos} (session): {e}; skipped"))
                }
            },
            TYPE_END => {
                let counts = (|| {
                    let retained = r.u64("retained message count")?;
                    let sessions = r.u64("session count")?;
                    r.finish("end record")?;
                    Ok::<_, String>((retained, sessions))
                })();
                match counts {
                    Ok(c) if self.end_counts.is_none() => self.end_counts = Some(c),
                    Ok(_) => self.problem(format!("record at offset {pos}: a second end record")),
                    Err(e) => {
                        self.problem(format!("record at offset {pos} (end record): {e}; skipped"))
                    }
                }
            }
            0x80..=0xFF => {} // optional, from a newer writer: skipped silently
            k => self.problem(format!(
                "record at offset {pos}: unknown record type {k:#04x}; skipped"
            )),
        }
    }

    /// Reads the records from `pos` to the end, resynchronising after damage.
    fn records(&mut self, b: &[u8], mut pos: usize) {
        // The bytes end right after an intact record other than an end record (or right after
        // the header): the file was cut at a record boundary.
        let mut clean_end = true;
        while pos < b.len() {
            let (why, incomplete) = match frame_at(b, pos) {
                Frame::Intact { kind, body, end } => {
                    self.record(pos, kind, body);
                    pos = end;
                    clean_end = kind != TYPE_END;
                    continue;
                }
                Frame::NoMarker => ("no record marker".to_string(), None),
                Frame::BadChecksum => ("checksum mismatch".to_string(), None),
                Frame::Incomplete { have, need } => (
                    match need {
                        Some(n) => format!("its length ({n} bytes) runs past the end of the file"),
                        None => "its length runs past the end of the file".to_string(),
                    },
                    Some((have, need)),
                ),
            };
            match next_intact(b, pos + 1) {
                Some(next) => {
                    self.problem(format!(
                        "record at offset {pos}: {why}; skipped {} bytes up to the next intact record at offset {next}",
                        next - pos
                    ));
                    pos = next;
                }
                None => {
                    clean_end = false;
                    let lost = b.len() - pos;
                    match incomplete {
                        Some((have, Some(need))) => {
                            self.truncated = true;
                            self.problem(format!(
                                "file truncated inside the record at offset {pos} ({have} of its {need} bytes present)"
                            ));
                        }
                        Some((have, None)) => {
                            self.truncated = true;
                            self.problem(format!(
                                "file truncated inside the record at offset {pos} ({have} bytes of it present)"
                            ));
                        }
                        None => self.problem(format!(
                            "record at offset {pos}: {why}; nothing intact after it ({lost} bytes lost)"
                        )),
                    }
                    pos = b.len();
                }
            }
        }
        self.truncated |= clean_end;
    }

    /// Compares what was recovered with what the header and end record announce.
    fn reconcile(&mut self) {
        let got = (
            self.snapshot.retained.len() as u64,
            self.snapshot.sessions.len() as u64,
        );
        if let (Some(h), Some(e)) = (self.header_counts, self.end_counts) {
            if h != e {
                self.problem(format!(
                    "the header announces {} retained messages and {} sessions, the end record {} and {}",
                    h.0, h.1, e.0, e.1
                ));
            }
        }
        let expected = self.header_counts.or(self.end_counts);
        if self.end_counts.is_none() {
            let read = got.0 + got.1;
            let p = match (expected, self.truncated) {
                (Some(x), true) => format!("file truncated after {read} of {} records", x.0 + x.1),
                (None, true) => {
                    format!("file truncated after {read} records (how many followed is unknown)")
                }
                (Some(x), false) => format!(
                    "no intact end record; {read} of {} records recovered",
                    x.0 + x.1
                ),
                (None, false) => format!(
                    "no intact end record; {read} records recovered, how many were lost is unknown"
                ),
            };
            self.problem(p);
        }
        if let Some((r, s)) = expected {
            if got.0 < r {
                self.problem(format!("lost {} of {r} retained messages", r - got.0));
            }
            if got.1 < s {
                self.problem(format!("lost {} of {s} sessions", s - got.1));
            }
            if got.0 > r || got.1 > s {
                self.problem(format!(
                    "recovered {} retained messages and {} sessions, more than the {r} and {s} announced",
                    got.0, got.1
                ));
            }
        }
    }

    fn finish(mut self) -> Decoded {
        if self.unlisted > 0 {
            self.problems
                .push(format!("{} more problems not listed", self.unlisted));
        }
        Decoded {
            snapshot: self.snapshot,
            problems: self.problems,
            damaged: self.damaged,
        }
    }
}

/// Where each record of `bytes` starts and ends, and its type: the intact records that follow
/// the header back to back, up to the first that is not. For tests that cut or damage a file
/// at record boundaries.
pub fn record_spans(bytes: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut v = Vec::new();
    let mut pos = HEADER_LEN;
    while let Frame::Intact { kind, end, .. } = frame_at(bytes, pos) {
        v.push((pos, end, kind));
        pos = end;
    }
    v
}

/// Decodes a snapshot file, recovering every intact record (see the module documentation for
/// what each outcome means). Never panics, never allocates more than the bytes can back.
pub fn decode(bytes: &[u8]) -> Result<Decoded, FormatError> {
    let mut st = State {
        snapshot: Snapshot::default(),
        problems: Vec::new(),
        unlisted: 0,
        damaged: false,
        header_counts: None,
        end_counts: None,
        truncated: false,
    };
    if bytes.is_empty() {
        return Err(FormatError::NotASnapshot);
    }
    let m = bytes.len().min(MAGIC.len());
    let magic_ok = bytes[..m] == MAGIC[..m];
    let version = le_u32(bytes, 8);
    if magic_ok && bytes.len() >= 12 && version != Some(VERSION) {
        let v = version.unwrap_or(0);
        // A header that checks out as it stands says what it is.
        let intact = bytes.len() >= HEADER_LEN && le_u32(bytes, 32) == Some(crc32(&bytes[..32]));
        // A damaged version field of a version 1 header: the checksum says so.
        let as_v1 = bytes.get(..HEADER_LEN).and_then(|h| {
            let mut fixed = [0u8; 32];
            fixed.copy_from_slice(&h[..32]);
            fixed[8..12].copy_from_slice(&VERSION.to_le_bytes());
            (le_u32(h, 32) == Some(crc32(&fixed))).then_some(fixed)
        });
        if intact && v > VERSION {
            return Err(FormatError::NewerVersion(v));
        } else if let Some(h) = as_v1 {
            st.problem(format!(
                "header damaged: its version field reads {v}, its checksum says version {VERSION}"
            ));
            st.header_counts = le_u64(&h, 16).zip(le_u64(&h, 24));
        } else if v > VERSION && !matches!(frame_at(bytes, HEADER_LEN), Frame::Intact { .. }) {
            // A header of another layout (a newer one), or damaged beyond telling.
            return Err(FormatError::NewerVersion(v));
        } else {
            // Version 0, or a damaged header followed by an intact version 1 record (a newer
            // writer's records carry its own version in their marker).
            st.problem(format!(
                "header damaged (version {v}); record counts unknown"
            ));
        }
    } else if magic_ok && bytes.len() < HEADER_LEN {
        st.problem(format!(
            "file truncated inside the header ({} of {HEADER_LEN} bytes)",
            bytes.len()
        ));
        return Ok(st.finish());
    } else if magic_ok {
        if le_u32(bytes, 32) == Some(crc32(&bytes[..32])) {
            st.header_counts = le_u64(bytes, 16).zip(le_u64(bytes, 24));
        } else {
            st.problem("header damaged (checksum mismatch); record counts unknown".into());
        }
    }
    if !magic_ok {
        // Read without a header; it is only ours if an intact record turns up.
        if next_intact(bytes, HEADER_LEN).is_none() {
            return Err(FormatError::NotASnapshot);
        }
        st.problem("header damaged (no midge magic); record counts unknown".into());
    }
    st.records(bytes, HEADER_LEN.min(bytes.len()));
    st.reconcile();
    Ok(st.finish())
}

#[cfg(test)]
mod tests;
