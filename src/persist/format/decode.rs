//! Decoding a snapshot file: every intact record, and a plain-words list of what was lost.

use super::*;

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

pub(super) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
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
                (Some(x), true) => format!(
                    "file truncated after {read} of {} records",
                    u128::from(x.0) + u128::from(x.1)
                ),
                (None, true) => {
                    format!("file truncated after {read} records (how many followed is unknown)")
                }
                (Some(x), false) => format!(
                    "no intact end record; {read} of {} records recovered",
                    // Counts come from the file: a damaged header may announce anything.
                    u128::from(x.0) + u128::from(x.1)
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
