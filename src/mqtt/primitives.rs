//! Data representations of MQTT section 1.5: integers, variable byte integers, UTF-8 strings,
//! binary data. The body reader works on a packet whose every byte is present (the fixed header's
//! remaining length says where it ends), so running out of bytes inside a body is a malformed
//! packet, never "need more".

use super::{Error, Status};

/// The largest remaining length four bytes can encode (268,435,455).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Reads a remaining length (variable byte integer) from the start of `buf`.
/// Returns the value and the number of bytes it took. At most four bytes may be used; a fifth
/// continuation byte is malformed.
pub fn read_remaining_length(buf: &[u8]) -> Result<Status<usize>, Error> {
    let mut value: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(Status::Partial);
        };
        value |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Status::Complete(value, i + 1));
        }
    }
    Err(Error::Malformed(
        "[MQTT-2.2.3] remaining length uses more than four bytes",
    ))
}

/// Appends `len` as a variable byte integer. `len` must not exceed `MAX_REMAINING_LENGTH`;
/// callers encode only packets they built, whose length they bound.
pub fn write_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH);
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

/// How many bytes a remaining length takes when encoded.
pub fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// A cursor over one packet body.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const SHORT: Error = Error::Malformed("packet body shorter than its fields");

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn u8(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(SHORT)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, Error> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(SHORT)?;
        let s = self.buf.get(self.pos..end).ok_or(SHORT)?;
        self.pos = end;
        Ok(s)
    }

    /// The rest of the body (a PUBLISH payload).
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Two-byte length followed by that many bytes.
    pub fn binary(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    /// A UTF-8 encoded string [MQTT-1.5.3].
    pub fn string(&mut self) -> Result<&'a str, Error> {
        let b = self.binary()?;
        utf8(b)
    }
}

/// Validates an MQTT UTF-8 string: well-formed UTF-8, which excludes the surrogates U+D800..U+DFFF
/// [MQTT-1.5.3-1], and no U+0000 [MQTT-1.5.3-2]. The control characters U+0001..U+001F and
/// U+007F..U+009F and the non-characters (U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF) are refused
/// too, as mosquitto 2.0 refuses them; the spec allows either [MQTT-1.5.3-2] (section 1.5.4).
pub fn utf8(b: &[u8]) -> Result<&str, Error> {
    let s = std::str::from_utf8(b).map_err(|_| {
        Error::Malformed("[MQTT-1.5.3-1] string is not well-formed UTF-8 (or holds a surrogate)")
    })?;
    if printable_ascii(b) {
        return Ok(s);
    }
    // Only bytes below 0x20 (U+0000 among them), 0x7f, and the lead bytes 0xc2
    // (U+0080..U+00BF), 0xef (U+E000..U+FFFF) and 0xf0..0xf4 (planes 1-16) can start a refused
    // character: one pass finds whether there is any, and most strings have none.
    let suspect = |c: &u8| *c < 0x20 || *c == 0x7f || *c == 0xc2 || *c == 0xef || *c >= 0xf0;
    // A fold, not `any`: it has no early exit, so it is vectorised.
    if b.iter().fold(false, |found, c| found | suspect(c)) {
        if memchr::memchr(0, b).is_some() {
            return Err(Error::Malformed("[MQTT-1.5.3-2] string contains U+0000"));
        }
        if s.chars().any(refused_char) {
            return Err(Error::Malformed(
                "string contains a control character or a non-character (refused as mosquitto does)",
            ));
        }
    }
    Ok(s)
}

/// Whether every byte is printable ASCII (0x20..=0x7e), the common case for topics and client
/// ids: eight bytes at a time (SWAR), about ten instructions per word where a byte-wise check of
/// a short string costs as many per byte.
fn printable_ascii(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A word of bytes all below 0x80 has a byte below 0x20 exactly when `(x - 0x20..) & !x`
    // has a high bit set, and a byte 0x7f exactly when `x ^ 0x7f..` has a zero byte.
    let bad = |x: u64| {
        let ctl = x.wrapping_sub(ONES * 0x20) & !x;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y;
        (x | ctl | del) & HIGH
    };
    let mut any = 0;
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        any |= bad(u64::from_le_bytes(a));
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut a = [b'a'; 8];
        for (d, s) in a.iter_mut().zip(tail) {
            *d = *s;
        }
        any |= bad(u64::from_le_bytes(a));
    }
    any == 0
}

/// U+0001..U+001F, U+007F..U+009F, U+FDD0..U+FDEF and the last two code points of each plane.
fn refused_char(c: char) -> bool {
    let c = c as u32;
    c < 0x20 || (0x7f..=0x9f).contains(&c) || (0xfdd0..=0xfdef).contains(&c) || c & 0xfffe == 0xfffe
}

pub fn write_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a two-byte length and the bytes. Callers pass at most 65,535 bytes (strings that came
/// from a decoded packet, or validated configuration).
pub fn write_binary(out: &mut Vec<u8>, b: &[u8]) {
    debug_assert!(b.len() <= u16::MAX as usize);
    write_u16(out, b.len() as u16);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_agrees_with_a_bytewise_check() {
        let simple = |b: &[u8]| b.iter().all(|c| (0x20..0x7f).contains(c));
        // Every byte value at every position of strings of 1 to 17 bytes, among printable ones.
        for len in 1..=17 {
            for pos in 0..len {
                for v in 0..=255u8 {
                    let mut b = vec![b'm'; len];
                    b[pos] = v;
                    assert_eq!(printable_ascii(&b), simple(&b), "{b:?}");
                }
            }
        }
        assert!(printable_ascii(b""));
        assert!(printable_ascii(b" ~/+#sensors/livingroom/temperature"));
        // Neighbouring bytes that a borrow could carry into.
        for (a, b) in [
            (0x20u8, 0x1f),
            (0x1f, 0x20),
            (0x7f, 0x7e),
            (0x80, 0x00),
            (0x00, 0x80),
        ] {
            let s = [b'x', a, b, b'x', b'x', b'x', b'x', b'x', b'x'];
            assert_eq!(printable_ascii(&s), simple(&s), "{s:?}");
        }
    }

    #[test]
    fn remaining_length_boundaries_round_trip() {
        for &(v, enc) in &[
            (0usize, &[0x00u8][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            write_remaining_length(&mut out, v);
            assert_eq!(out, enc, "encoding {v}");
            assert_eq!(remaining_length_len(v), enc.len());
            assert_eq!(
                read_remaining_length(enc).unwrap(),
                Status::Complete(v, enc.len())
            );
            for cut in 0..enc.len() {
                assert_eq!(read_remaining_length(&enc[..cut]).unwrap(), Status::Partial);
            }
        }
    }

    #[test]
    fn remaining_length_of_five_bytes_is_malformed() {
        // [MQTT-2.2.3]: at most four bytes.
        assert!(matches!(
            read_remaining_length(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn strings_reject_nul_and_surrogates() {
        // [MQTT-1.5.3-2]
        assert!(matches!(utf8(b"a\0b"), Err(Error::Malformed(m)) if m.contains("MQTT-1.5.3-2")));
        // [MQTT-1.5.3-1]: U+D800 encoded as CESU-style 0xED 0xA0 0x80 is ill-formed UTF-8.
        assert!(
            matches!(utf8(&[0xed, 0xa0, 0x80]), Err(Error::Malformed(m)) if m.contains("MQTT-1.5.3-1"))
        );
        assert!(matches!(utf8(&[0xff]), Err(Error::Malformed(_))));
        assert_eq!(utf8("häus/€".as_bytes()).unwrap(), "häus/€");
    }

    #[test]
    fn reader_never_reads_past_the_body() {
        let mut r = Reader::new(&[0x00, 0x05, b'a']);
        assert!(r.string().is_err());
        let mut r = Reader::new(&[0x01]);
        assert!(r.u16().is_err());
    }
}
