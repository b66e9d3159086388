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

mod decode;
#[cfg(test)]
use decode::le_u32;
pub use decode::{decode, record_spans, Decoded, FormatError};

#[cfg(test)]
mod tests;
