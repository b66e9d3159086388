//! [`ShortStr`]: a string that keeps up to 22 bytes in place and longer ones on the heap. A
//! session's client id is one: most client ids (`mqttjs_1a2b3c4d`, `mosq-…`, `ESP8266-…`,
//! `zigbee2mqtt_…`) fit, and an idle client then costs no allocation for it (a `Box<str>` of
//! up to 24 bytes takes a 32-byte heap chunk besides its 16-byte pointer).

use std::fmt;
use std::ops::Deref;

/// Bytes kept in place: the enum is then 24 bytes, the size of a `String`.
const INLINE: usize = 22;

#[derive(Clone)]
pub enum ShortStr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl ShortStr {
    pub fn as_str(&self) -> &str {
        match self {
            ShortStr::Inline { len, bytes } => {
                // Always valid: the bytes are a whole `&str` copied in `From<&str>`, and
                // `len` is where it ended.
                let b = bytes.get(..*len as usize).unwrap_or_default();
                std::str::from_utf8(b).unwrap_or_default()
            }
            ShortStr::Heap(s) => s,
        }
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> ShortStr {
        let mut bytes = [0; INLINE];
        match bytes.get_mut(..s.len()) {
            Some(dst) => {
                dst.copy_from_slice(s.as_bytes());
                ShortStr::Inline {
                    len: s.len() as u8,
                    bytes,
                }
            }
            None => ShortStr::Heap(s.into()),
        }
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> ShortStr {
        if s.len() <= INLINE {
            ShortStr::from(s.as_str())
        } else {
            ShortStr::Heap(s.into_boxed_str())
        }
    }
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_stay_in_place_and_long_ones_go_to_the_heap() {
        assert_eq!(std::mem::size_of::<ShortStr>(), 24);
        for s in [
            "",
            "a",
            "mqttjs_1a2b3c4d",
            "é漢字🙂 mixed",
            "exactly-22-bytes-long!",
            "twenty-three bytes long",
            "auto-5E8A0F7C-1F2B-4C3D-9E8F-0A1B2C3D4E5F",
        ] {
            for v in [ShortStr::from(s), ShortStr::from(s.to_string())] {
                assert_eq!(v.as_str(), s);
                assert_eq!(&*v, s);
                assert_eq!(v.to_string(), s);
                assert_eq!(format!("{v:?}"), format!("{s:?}"));
                assert_eq!(
                    matches!(v, ShortStr::Inline { .. }),
                    s.len() <= INLINE,
                    "{s}"
                );
            }
        }
    }
}
