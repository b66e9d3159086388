//! Standard base64 (RFC 4648 §4: `A-Z a-z 0-9 + /`, `=` padding), as mosquitto writes salts and
//! hashes in password files.
//!
//! The decoder is strict: the length must be a multiple of 4, padding may only close the last
//! quantum, and the unused bits before the padding must be zero (so every accepted string is the
//! one this encoder would write). It never panics, and its errors never quote the input: the input
//! is a password hash.

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a string is not valid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The length is not a multiple of 4.
    Length(usize),
    /// A byte that is not in the alphabet, at this offset.
    Byte(usize),
    /// `=` somewhere other than the last one or two places.
    Padding,
    /// The bits that the padding discards are not zero (not the canonical encoding).
    TrailingBits,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length(n) => {
                write!(f, "base64 length {n} is not a multiple of 4")
            }
            DecodeError::Byte(at) => write!(f, "not a base64 character at offset {at}"),
            DecodeError::Padding => f.write_str("misplaced base64 padding"),
            DecodeError::TrailingBits => {
                f.write_str("non-canonical base64 (stray bits before '=')")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `data` with padding.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, s) in sextets.iter().enumerate() {
            // A chunk of k bytes yields k + 1 characters, then padding.
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*s as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes padded standard base64.
pub fn decode(s: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return Err(DecodeError::Length(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quanta = bytes.len() / 4;
    for (q, quad) in bytes.chunks_exact(4).enumerate() {
        let last = q + 1 == quanta;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(DecodeError::Padding);
        }
        let mut n = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            match value(c) {
                Some(v) => n |= v << (18 - 6 * i),
                // A '=' here is padding followed by data ("A=BC").
                None if c == b'=' => return Err(DecodeError::Padding),
                None => return Err(DecodeError::Byte(q * 4 + i)),
            }
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if decoded[keep..].iter().any(|&b| b != 0) {
            return Err(DecodeError::TrailingBits);
        }
        out.extend_from_slice(&decoded[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 §10.
    const VECTORS: &[(&str, &str)] = &[
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc4648_vectors_encode() {
        for (plain, coded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), *coded, "{plain:?}");
        }
    }

    #[test]
    fn rfc4648_vectors_decode() {
        for (plain, coded) in VECTORS {
            assert_eq!(decode(coded).unwrap(), plain.as_bytes(), "{coded:?}");
        }
    }

    #[test]
    fn uses_the_standard_alphabet_not_url_safe() {
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("-_8="), Err(DecodeError::Byte(0)));
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let s = encode(&data[..len]);
            assert_eq!(s.len() % 4, 0);
            assert_eq!(decode(&s).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn salt_and_hash_sizes_as_in_password_files() {
        // 12-byte salts are 16 characters without padding; 64-byte hashes are 88 with "==".
        assert_eq!(encode(&[0u8; 12]), "AAAAAAAAAAAAAAAA");
        let h = encode(&[0u8; 64]);
        assert_eq!(h.len(), 88);
        assert!(h.ends_with("A=="));
    }

    #[test]
    fn rejects_length_not_multiple_of_4() {
        assert_eq!(decode("Zg"), Err(DecodeError::Length(2)));
        assert_eq!(decode("Zm9vY"), Err(DecodeError::Length(5)));
        assert_eq!(decode("Zg=="), Ok(b"f".to_vec()));
    }

    #[test]
    fn rejects_bytes_outside_the_alphabet() {
        assert_eq!(decode("Zm9v Zm9v"), Err(DecodeError::Length(9)));
        assert_eq!(decode("Zm9 "), Err(DecodeError::Byte(3)));
        assert_eq!(decode("Zm9vZ$9v"), Err(DecodeError::Byte(5)));
        assert_eq!(decode("Zm\u{e9}v"), Err(DecodeError::Length(5)));
        assert_eq!(decode("Z\u{e9}v"), Err(DecodeError::Byte(1)));
        assert_eq!(decode("Zm9\n"), Err(DecodeError::Byte(3)));
    }

    #[test]
    fn rejects_misplaced_padding() {
        assert_eq!(decode("Zg==Zm9v"), Err(DecodeError::Padding));
        assert_eq!(decode("Z==="), Err(DecodeError::Padding));
        assert_eq!(decode("===="), Err(DecodeError::Padding));
        assert_eq!(decode("Z=g="), Err(DecodeError::Padding));
        assert_eq!(decode("=Zm9"), Err(DecodeError::Padding));
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        assert_eq!(decode("Zh=="), Err(DecodeError::TrailingBits));
        assert_eq!(decode("Zm9="), Err(DecodeError::TrailingBits));
        assert_eq!(decode("Zm8="), Ok(b"fo".to_vec()));
    }

    #[test]
    fn errors_never_quote_the_input() {
        for bad in ["secret!!", "secr", "sec=ret=", "Zh=="] {
            if let Err(e) = decode(bad) {
                let msg = e.to_string();
                assert!(!msg.contains("sec") && !msg.contains("Zh"), "{msg}");
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_short_inputs() {
        let alphabet = b"Zg=+/\x00\xff9 ";
        let mut buf = Vec::new();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        buf.clear();
                        buf.extend_from_slice(&[*a, *b, *c, *d]);
                        let s = String::from_utf8_lossy(&buf);
                        let _ = decode(&s);
                    }
                }
            }
        }
    }
}
