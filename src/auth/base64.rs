//! Standard base64 (RFC 4648 §4: `A-Z a-z 0-9 + /`, `=` padding), as mosquitto writes salts and
//! hashes in password files, by the `base64` crate.
//!
//! The decoder is strict: the length must be a multiple of 4, padding may only close the last
//! quantum, and the unused bits before the padding must be zero (so every accepted string is the
//! one the encoder would write). It never panics, and its errors never quote the input: the input
//! is a password hash.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

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
    STANDARD.encode(data)
}

/// Decodes padded standard base64.
pub fn decode(s: &str) -> Result<Vec<u8>, DecodeError> {
    if s.len() % 4 != 0 {
        return Err(DecodeError::Length(s.len()));
    }
    STANDARD.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidByte(_, b'=') | base64::DecodeError::InvalidPadding => {
            DecodeError::Padding
        }
        base64::DecodeError::InvalidByte(at, _) => DecodeError::Byte(at),
        base64::DecodeError::InvalidLastSymbol(..) => DecodeError::TrailingBits,
        base64::DecodeError::InvalidLength(_) => DecodeError::Length(s.len()),
    })
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
