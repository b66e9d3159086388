//! Just enough MQTT 3.1.1 / 5.0 for a load generator, encoded by hand so the hot path is a
//! template copy plus a few patched bytes, and decoded without allocating.

pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// Bytes at the start of every payload: stream (u32), sequence number (u64), send time in
/// nanoseconds since the generator started (u64), all little endian.
pub const STAMP_LEN: usize = 20;

pub fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A variable byte integer at the start of `b`: `Ok(Some((value, bytes used)))`, `Ok(None)`
/// when more bytes are needed.
pub fn get_varint(b: &[u8]) -> Result<Option<(usize, usize)>, &'static str> {
    let mut v = 0usize;
    for i in 0..4 {
        let Some(&x) = b.get(i) else {
            return Ok(None);
        };
        v |= ((x & 0x7f) as usize) << (7 * i);
        if x & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    Err("variable byte integer longer than 4 bytes")
}

fn put_bin(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(out: &mut Vec<u8>, byte1: u8, body: &[u8]) {
    out.push(byte1);
    put_varint(out, body.len());
    out.extend_from_slice(body);
}

/// CONNECT with clean session / clean start, no will, no credentials, no properties.
pub fn connect(out: &mut Vec<u8>, v5: bool, client_id: &str, keep_alive: u16) {
    let mut b = Vec::with_capacity(16 + client_id.len());
    put_bin(&mut b, b"MQTT");
    b.push(if v5 { 5 } else { 4 });
    b.push(0x02);
    b.extend_from_slice(&keep_alive.to_be_bytes());
    if v5 {
        b.push(0);
    }
    put_bin(&mut b, client_id.as_bytes());
    packet(out, 0x10, &b);
}

/// SUBSCRIBE to every filter in `filters`, all at `qos`.
pub fn subscribe(out: &mut Vec<u8>, v5: bool, pid: u16, filters: &[&str], qos: u8) {
    let len: usize = filters.iter().map(|f| f.len() + 3).sum();
    let mut b = Vec::with_capacity(3 + len);
    b.extend_from_slice(&pid.to_be_bytes());
    if v5 {
        b.push(0);
    }
    for f in filters {
        put_bin(&mut b, f.as_bytes());
        b.push(qos);
    }
    packet(out, 0x82, &b);
}

/// Decimal digits of `n` (at least 1).
pub fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Numbered topics `PREFIX/A/B` for many distinct topics from one template: message `seq`
/// goes to cell `k = seq % modulo`, with `A = k % cols` and `B = k / cols`, each zero-padded
/// to a fixed width so every packet has the same length and only digits are patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    pub modulo: u64,
    pub cols: u64,
    wa: usize,
    wb: usize,
}

impl Spread {
    /// `cols` columns; `max_cells` bounds every `modulo` this spread will be given.
    pub fn new(cols: u64, max_cells: u64) -> Spread {
        let cols = cols.max(1);
        let rows = max_cells.max(1).div_ceil(cols);
        Spread {
            modulo: max_cells.max(1),
            cols,
            wa: digits(cols - 1),
            wb: digits(rows - 1),
        }
    }

    /// The cell (A, B) of message `seq`.
    pub fn cell(&self, seq: u64) -> (u64, u64) {
        let k = seq % self.modulo.max(1);
        (k % self.cols, k / self.cols)
    }

    /// The topic of cell (a, b).
    pub fn topic(&self, prefix: &str, a: u64, b: u64) -> String {
        format!("{prefix}/{a:0wa$}/{b:0wb$}", wa = self.wa, wb = self.wb)
    }
}

fn put_digits(out: &mut [u8], mut v: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP, success, short form (both versions).
pub fn ack(out: &mut Vec<u8>, kind: u8, pid: u16) {
    let flags = if kind == PUBREL { 2 } else { 0 };
    let p = pid.to_be_bytes();
    out.extend_from_slice(&[(kind << 4) | flags, 2, p[0], p[1]]);
}

pub fn pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xc0, 0]);
}

pub fn disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xe0, 0]);
}

/// A PUBLISH encoded once; each message copies it and patches the packet identifier and the
/// payload's stamp.
pub struct Template {
    bytes: Vec<u8>,
    pid_off: Option<usize>,
    stamp_off: usize,
    /// The numbered topic and where its two numbers are.
    spread: Option<(Spread, usize, usize)>,
}

impl Template {
    /// `size` is the payload size, at least `STAMP_LEN`.
    #[cfg(test)]
    pub fn new(v5: bool, topic: &str, qos: u8, size: usize, stream: u32) -> Template {
        Template::build(v5, topic, None, qos, size, stream, false)
    }

    /// With `spread`, `topic` is the prefix of numbered topics (see [`Spread`]); with
    /// `retain`, the RETAIN flag is set.
    pub fn build(
        v5: bool,
        topic: &str,
        spread: Option<Spread>,
        qos: u8,
        size: usize,
        stream: u32,
        retain: bool,
    ) -> Template {
        let size = size.max(STAMP_LEN);
        let topic = match spread {
            Some(sp) => sp.topic(topic, 0, 0),
            None => topic.to_string(),
        };
        let mut body = Vec::with_capacity(8 + topic.len() + size);
        put_bin(&mut body, topic.as_bytes());
        let pid_rel = (qos > 0).then(|| {
            body.extend_from_slice(&[0, 0]);
            body.len() - 2
        });
        if v5 {
            body.push(0);
        }
        let stamp_rel = body.len();
        body.extend_from_slice(&stream.to_le_bytes());
        body.resize(stamp_rel + STAMP_LEN, 0);
        // A recognisable, compressible filler.
        body.extend((0..size - STAMP_LEN).map(|i| b'a' + (i % 26) as u8));
        let mut bytes = Vec::with_capacity(body.len() + 5);
        packet(&mut bytes, 0x30 | (qos << 1) | u8::from(retain), &body);
        let head = bytes.len() - body.len();
        let spread = spread.map(|sp| {
            // The topic starts after its 2-byte length and ends with "/A/B".
            let end = head + 2 + topic.len();
            (sp, end - sp.wb - 1 - sp.wa, end - sp.wb)
        });
        Template {
            pid_off: pid_rel.map(|r| head + r),
            stamp_off: head + stamp_rel,
            spread,
            bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn append(&self, out: &mut Vec<u8>, pid: u16, seq: u64, ts_ns: u64) {
        let at = out.len();
        out.extend_from_slice(&self.bytes);
        let m = &mut out[at..];
        if let Some(o) = self.pid_off {
            m[o..o + 2].copy_from_slice(&pid.to_be_bytes());
        }
        let s = self.stamp_off + 4;
        m[s..s + 8].copy_from_slice(&seq.to_le_bytes());
        m[s + 8..s + 16].copy_from_slice(&ts_ns.to_le_bytes());
        if let Some((sp, a_off, b_off)) = &self.spread {
            let (a, b) = sp.cell(seq);
            put_digits(&mut m[*a_off..*a_off + sp.wa], a);
            put_digits(&mut m[*b_off..*b_off + sp.wb], b);
        }
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Stamp {
    pub stream: u32,
    pub seq: u64,
    pub ts_ns: u64,
}

pub fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let s = payload.get(..STAMP_LEN)?;
    Some(Stamp {
        stream: u32::from_le_bytes(s[0..4].try_into().ok()?),
        seq: u64::from_le_bytes(s[4..12].try_into().ok()?),
        ts_ns: u64::from_le_bytes(s[12..20].try_into().ok()?),
    })
}

/// One whole packet at the start of `buf`: `Ok(Some((byte1, body start, total length)))`,
/// `Ok(None)` when more bytes are needed.
pub fn frame(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, &'static str> {
    let Some(&b1) = buf.first() else {
        return Ok(None);
    };
    match get_varint(&buf[1..])? {
        None => Ok(None),
        Some((rem, n)) => Ok(Some((b1, 1 + n, 1 + n + rem))),
    }
}

/// A packet the generator can receive.
#[derive(Debug, PartialEq, Eq)]
pub enum In<'a> {
    Connack {
        code: u8,
        receive_max: Option<u16>,
    },
    Suback {
        pid: u16,
        codes: &'a [u8],
    },
    Publish {
        qos: u8,
        dup: bool,
        retain: bool,
        pid: u16,
        topic: &'a [u8],
        payload: &'a [u8],
    },
    /// PUBACK, PUBREC, PUBREL, PUBCOMP; `reason` 0 when absent.
    Ack {
        kind: u8,
        pid: u16,
        reason: u8,
    },
    Pingresp,
    Disconnect {
        reason: u8,
    },
    Other(u8),
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, &'static str> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or("packet too short")
}

/// Walks MQTT 5 properties (`b` starts at the property length) and returns the bytes they
/// take plus the Receive Maximum, if any.
fn props(b: &[u8]) -> Result<(usize, Option<u16>), &'static str> {
    let (len, n) = get_varint(b)?.ok_or("truncated property length")?;
    let p = b.get(n..n + len).ok_or("truncated properties")?;
    let mut i = 0;
    let mut receive_max = None;
    while i < p.len() {
        let id = p[i];
        i += 1;
        let skip = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            0x13 | 0x22 | 0x23 => 2,
            0x21 => {
                receive_max = Some(u16_at(p, i)?);
                2
            }
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0b => get_varint(&p[i..])?.ok_or("truncated property")?.1,
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                2 + u16_at(p, i)? as usize
            }
            0x26 => {
                let k = 2 + u16_at(p, i)? as usize;
                k + 2 + u16_at(p, i + k)? as usize
            }
            _ => return Err("unknown property"),
        };
        i += skip;
    }
    if i != p.len() {
        return Err("property overruns its length");
    }
    Ok((n + len, receive_max))
}

pub fn parse(byte1: u8, body: &[u8], v5: bool) -> Result<In<'_>, &'static str> {
    let kind = byte1 >> 4;
    Ok(match kind {
        CONNACK => {
            let code = *body.get(1).ok_or("short CONNACK")?;
            let receive_max = if v5 && body.len() > 2 {
                props(&body[2..])?.1
            } else {
                None
            };
            In::Connack { code, receive_max }
        }
        SUBACK => {
            let pid = u16_at(body, 0)?;
            let start = if v5 { 2 + props(&body[2..])?.0 } else { 2 };
            In::Suback {
                pid,
                codes: body.get(start..).ok_or("short SUBACK")?,
            }
        }
        PUBLISH => {
            let qos = (byte1 >> 1) & 3;
            let tlen = u16_at(body, 0)? as usize;
            let topic = body.get(2..2 + tlen).ok_or("short PUBLISH")?;
            let mut i = 2 + tlen;
            let mut pid = 0;
            if qos > 0 {
                pid = u16_at(body, i)?;
                i += 2;
            }
            if v5 {
                i += props(body.get(i..).ok_or("short PUBLISH")?)?.0;
            }
            In::Publish {
                qos,
                dup: byte1 & 0x08 != 0,
                retain: byte1 & 0x01 != 0,
                pid,
                topic,
                payload: body.get(i..).ok_or("short PUBLISH")?,
            }
        }
        PUBACK | PUBREC | PUBREL | PUBCOMP => In::Ack {
            kind,
            pid: u16_at(body, 0)?,
            reason: body.get(2).copied().unwrap_or(0),
        },
        PINGRESP => In::Pingresp,
        DISCONNECT => In::Disconnect {
            reason: body.first().copied().unwrap_or(0),
        },
        k => In::Other(k),
    })
}
