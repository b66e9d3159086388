//! mosquitto's password file, parsed from text and checked in constant time.
//!
//! ```text
//! # comment
//! john_doe:$7$101$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, 101 iterations)>
//! mary_smith:$6$<base64 salt>$<base64 SHA-512(password || salt)>
//! ```
//!
//! What mosquitto 2.0 does, and midge with it: the user name is the text before the first `:`, and
//! the hash the text after it up to the next `:`, both with surrounding white space trimmed;
//! `\r\n` line ends are fine; when a user appears on several valid lines the last one counts. `$7$`
//! takes any iteration count from 1 to 2147483647. Salts are 12 bytes (what `mosquitto_passwd` 2.0
//! writes) or 64 bytes (mosquitto 2.1); the hash is 64 bytes.
//!
//! Where midge is stricter, it says so with a [`Warning`] naming the line, and never quotes a
//! password or hash:
//! - a line that is neither blank, a comment (`#` as its first non-blank character) nor a valid
//!   `user:hash` entry is reported (mosquitto skips lines without `:` silently);
//! - a plain-text password (`user:password`) is refused with advice to run `midge_passwd -U`;
//! - if any line for a user cannot be used, that user cannot log in at all, even if another
//!   line for the same user is valid (mosquitto would silently fall back to the other line).
//!
//! Passwords are bytes: MQTT passwords are binary data. mosquitto hashes a client's password up to
//! its first NUL byte; midge hashes all of it, so a password with a NUL in it never matches a hash
//! made from a shorter one.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};

use super::base64;

/// Iterations `mosquitto_passwd` 2.0 uses for `$7$` hashes, and midge_passwd's default.
pub const DEFAULT_ITERATIONS: u32 = 101;
/// The largest iteration count mosquitto can read (it stores the count in a C `int`).
pub const MAX_ITERATIONS: u32 = i32::MAX as u32;
/// Salt length `mosquitto_passwd` 2.0 writes, and the only one mosquitto 2.0 reads.
pub const SALT_LEN: usize = 12;
/// Salt length mosquitto 2.1 writes. midge reads both.
pub const LONG_SALT_LEN: usize = 64;
/// Length of a SHA-512 digest, and of every hash in a password file.
pub const HASH_LEN: usize = 64;

/// The hash function of one password entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    /// `$6$`: SHA-512 of the password followed by the salt (mosquitto 1.6 and earlier).
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512 with this many iterations (mosquitto 2.0's default).
    Sha512Pbkdf2 { iterations: u32 },
}

/// Why the hash field of an entry cannot be used. The messages never quote the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// Empty field: `user:`.
    Missing,
    /// The field does not start with `$`: a plain-text password.
    PlainText,
    /// Starts with `$` but is not `$6$` or `$7$` (mosquitto 2.1's `$argon2id$`, crypt(3) `$5$`, ...).
    UnsupportedType,
    /// `$7$` without an iteration count, salt or hash, or an empty one.
    MissingField(&'static str),
    /// The `$7$` iteration count is not a whole number from 1 to [`MAX_ITERATIONS`].
    BadIterations,
    /// The salt is not base64.
    SaltBase64(base64::DecodeError),
    /// The salt decodes to this many bytes, neither 12 nor 64.
    SaltLength(usize),
    /// The hash is not base64.
    HashBase64(base64::DecodeError),
    /// The hash decodes to this many bytes, not 64.
    HashLength(usize),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Missing => f.write_str("the password hash is missing"),
            HashError::PlainText => f.write_str(
                "the password is in plain text, which midge refuses; \
                 hash the file's plain-text passwords with `midge_passwd -U FILE`",
            ),
            HashError::UnsupportedType => {
                f.write_str("unsupported password hash type (midge reads $6$ and $7$ hashes)")
            }
            HashError::MissingField(what) => write!(f, "the password hash has no {what}"),
            HashError::BadIterations => write!(
                f,
                "the $7$ iteration count is not a whole number from 1 to {MAX_ITERATIONS}"
            ),
            HashError::SaltBase64(e) => write!(f, "the salt is not valid base64: {e}"),
            HashError::SaltLength(n) => write!(
                f,
                "the salt is {n} bytes long; mosquitto's salts are {SALT_LEN} or {LONG_SALT_LEN}"
            ),
            HashError::HashBase64(e) => write!(f, "the hash is not valid base64: {e}"),
            HashError::HashLength(n) => {
                write!(f, "the hash is {n} bytes long instead of {HASH_LEN}")
            }
        }
    }
}

impl std::error::Error for HashError {}

/// A decoded `$6$` or `$7$` hash: type, salt and digest.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    kind: HashType,
    salt: Vec<u8>,
    hash: [u8; HASH_LEN],
}

impl fmt::Debug for PasswordHash {
    // Never print the salt or digest, even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("kind", &self.kind)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Parses the hash field of a password file entry (the text after `user:`, trimmed):
    /// `$7$ITERATIONS$SALT$HASH` or `$6$SALT$HASH`. Fields after the hash, separated by `$`,
    /// are ignored as mosquitto ignores them; [`PasswordHash::parse_strict`] refuses them.
    pub fn parse(field: &str) -> Result<PasswordHash, HashError> {
        Self::parse_fields(field).map(|(h, _)| h)
    }

    /// As [`PasswordHash::parse`], but also says whether text followed the hash.
    fn parse_fields(field: &str) -> Result<(PasswordHash, bool), HashError> {
        if field.is_empty() {
            return Err(HashError::Missing);
        }
        if !field.starts_with('$') {
            return Err(HashError::PlainText);
        }
        let (pbkdf2, rest) = if let Some(rest) = field.strip_prefix("$7$") {
            (true, rest)
        } else if let Some(rest) = field.strip_prefix("$6$") {
            (false, rest)
        } else {
            return Err(HashError::UnsupportedType);
        };
        let mut parts = rest.split('$');
        let mut next = |what: &'static str| match parts.next() {
            Some(p) if !p.is_empty() => Ok(p),
            _ => Err(HashError::MissingField(what)),
        };
        let kind = if pbkdf2 {
            let iterations = parse_iterations(next("iteration count")?)?;
            HashType::Sha512Pbkdf2 { iterations }
        } else {
            HashType::Sha512
        };
        let salt_b64 = next("salt")?;
        let hash_b64 = next("hash")?;
        let trailing = parts.next().is_some();
        let salt = base64::decode(salt_b64).map_err(HashError::SaltBase64)?;
        if salt.len() != SALT_LEN && salt.len() != LONG_SALT_LEN {
            return Err(HashError::SaltLength(salt.len()));
        }
        let digest = base64::decode(hash_b64).map_err(HashError::HashBase64)?;
        let hash: [u8; HASH_LEN] = digest
            .as_slice()
            .try_into()
            .map_err(|_| HashError::HashLength(digest.len()))?;
        Ok((PasswordHash { kind, salt, hash }, trailing))
    }

    /// As [`PasswordHash::parse`], refusing anything after the hash.
    pub fn parse_strict(field: &str) -> Result<PasswordHash, HashError> {
        match Self::parse_fields(field)? {
            (h, false) => Ok(h),
            (_, true) => Err(HashError::MissingField("end after the hash")),
        }
    }

    /// Hashes `password` with `salt` (any length; mosquitto reads 12 or 64 bytes). An iteration
    /// count of 0 is taken as 1.
    pub fn create(password: &[u8], kind: HashType, salt: &[u8]) -> PasswordHash {
        let kind = match kind {
            HashType::Sha512Pbkdf2 { iterations } => HashType::Sha512Pbkdf2 {
                iterations: iterations.max(1),
            },
            k => k,
        };
        let hash = digest(kind, password, salt);
        PasswordHash {
            kind,
            salt: salt.to_vec(),
            hash,
        }
    }

    /// The hash type, with the iteration count for `$7$`.
    pub fn kind(&self) -> HashType {
        self.kind
    }

    /// The salt's length in bytes.
    pub fn salt_len(&self) -> usize {
        self.salt.len()
    }

    /// Whether `password` hashes to this hash. The comparison takes the same time wherever the
    /// digests differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        let computed = digest(self.kind, password, &self.salt);
        constant_time_eq(&computed, &self.hash)
    }

    /// The field as a password file stores it: `$7$101$SALT$HASH` or `$6$SALT$HASH`.
    pub fn encode(&self) -> String {
        let salt = base64::encode(&self.salt);
        let hash = base64::encode(&self.hash);
        match self.kind {
            HashType::Sha512 => format!("$6${salt}${hash}"),
            HashType::Sha512Pbkdf2 { iterations } => format!("$7${iterations}${salt}${hash}"),
        }
    }
}

/// Digits only (mosquitto's `atoi` also takes signs, blanks and trailing junk: such a count is a
/// damaged line, not something `mosquitto_passwd` writes), 1 to [`MAX_ITERATIONS`].
fn parse_iterations(s: &str) -> Result<u32, HashError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HashError::BadIterations);
    }
    match s.parse::<u32>() {
        Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => Ok(n),
        _ => Err(HashError::BadIterations),
    }
}

fn digest(kind: HashType, password: &[u8], salt: &[u8]) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    match kind {
        HashType::Sha512 => {
            let d = Sha512::new()
                .chain_update(password)
                .chain_update(salt)
                .finalize();
            out.copy_from_slice(&d);
        }
        HashType::Sha512Pbkdf2 { iterations } => {
            pbkdf2_hmac_sha512(password, salt, iterations, &mut out);
        }
    }
    out
}

/// PBKDF2 (RFC 8018 §5.2) with HMAC-SHA512 as the PRF, filling `out` (any length). An iteration
/// count of 0 is taken as 1.
pub fn pbkdf2_hmac_sha512(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    // HMAC takes keys of any length, so this cannot fail; if it somehow did, `out` would be
    // left as zeros, which no real hash equals.
    let Ok(prf) = Hmac::<Sha512>::new_from_slice(password) else {
        out.fill(0);
        return;
    };
    for (i, block) in out.chunks_mut(HASH_LEN).enumerate() {
        // T_i = U_1 ^ U_2 ^ ... ^ U_c, U_1 = PRF(P, S || INT(i)), U_j = PRF(P, U_{j-1}).
        // Blocks are numbered from 1; `out` would need 2^38 bytes to overflow the counter.
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let mut mac = prf.clone();
        mac.update(salt);
        mac.update(&index.to_be_bytes());
        let mut u = mac.finalize().into_bytes();
        let mut t = u;
        for _ in 1..iterations {
            let mut mac = prf.clone();
            mac.update(&u);
            u = mac.finalize().into_bytes();
            for (t, u) in t.iter_mut().zip(u.iter()) {
                *t ^= u;
            }
        }
        block.copy_from_slice(&t[..block.len()]);
    }
}

/// Compares without an early exit, so the time taken does not say where two digests differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Something in a password file that the caller should log: `line` is 1-based, `msg` never
/// contains a password or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// One line of a password file, split as mosquitto splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// Empty or white space only.
    Blank,
    /// The first non-blank character is `#`.
    Comment,
    /// `user:rest`: `user` is trimmed, `rest` is everything after the first `:`, untrimmed.
    Entry { user: &'a str, rest: &'a str },
    /// Text without a `:`.
    NoColon,
}

/// C's `isspace` in the "C" locale, which mosquitto trims with.
pub fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Classifies one line (without its `\n`; a trailing `\r` is trimmed like other white space).
pub fn split_line(line: &str) -> Line<'_> {
    let t = line.trim_matches(is_blank);
    if t.is_empty() {
        return Line::Blank;
    }
    if t.starts_with('#') {
        return Line::Comment;
    }
    match line.split_once(':') {
        Some((user, rest)) => Line::Entry {
            user: user.trim_matches(is_blank),
            rest,
        },
        None => Line::NoColon,
    }
}

/// The hash field of an entry's `rest`: up to the next `:`, trimmed, and whether text followed.
fn hash_field(rest: &str) -> (&str, bool) {
    match rest.split_once(':') {
        Some((field, after)) => (field.trim_matches(is_blank), !after.is_empty()),
        None => (rest.trim_matches(is_blank), false),
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Valid {
        hash: PasswordHash,
        line: usize,
    },
    /// A line for this user could not be used: the user cannot log in.
    Refused {
        line: usize,
    },
}

/// The users of a password file and their hashes.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, Entry>,
}

/// What [`PasswordFile::check`] hashes for a user it does not know, so that an unknown user
/// costs about as much time as a known one with mosquitto's default iteration count.
fn decoy() -> PasswordHash {
    PasswordHash {
        kind: HashType::Sha512Pbkdf2 {
            iterations: DEFAULT_ITERATIONS,
        },
        salt: vec![0x5a; SALT_LEN],
        hash: [0; HASH_LEN],
    }
}

impl PasswordFile {
    /// Parses a password file. Never fails: lines that cannot be used are reported in the
    /// warnings (with their line numbers) and their users cannot log in.
    pub fn parse(text: &str) -> (PasswordFile, Vec<Warning>) {
        let mut p = Parser::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.split('\n').enumerate() {
            p.line(i + 1, line);
        }
        p.finish()
    }

    /// As [`PasswordFile::parse`] for a file that may not be UTF-8: a line that is not valid
    /// UTF-8 is reported, and if its user name is readable that user cannot log in.
    pub fn parse_bytes(bytes: &[u8]) -> (PasswordFile, Vec<Warning>) {
        let mut p = Parser::default();
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            match std::str::from_utf8(line) {
                Ok(s) => p.line(i + 1, s),
                Err(_) => p.not_utf8(i + 1, line),
            }
        }
        p.finish()
    }

    /// Whether `user` may log in with `password`. False for a user the file does not name, for
    /// one with a line that could not be used, and for an empty password even when the file
    /// holds the hash of one (mosquitto 2.0 refuses empty passwords too). The caller must refuse
    /// a client that sent a user name without a password itself (as mosquitto does).
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(Entry::Valid { hash, .. }) if !password.is_empty() => hash.verify(password),
            _ => {
                // Spend the time anyway; the result is thrown away.
                std::hint::black_box(decoy().verify(password));
                false
            }
        }
    }

    /// Whether the file has a usable entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        matches!(self.users.get(user), Some(Entry::Valid { .. }))
    }

    /// The hash `user` logs in with, if the file has a usable entry for it.
    pub fn hash(&self, user: &str) -> Option<&PasswordHash> {
        match self.users.get(user) {
            Some(Entry::Valid { hash, .. }) => Some(hash),
            _ => None,
        }
    }

    /// The number of users who can log in.
    pub fn len(&self) -> usize {
        self.users
            .values()
            .filter(|e| matches!(e, Entry::Valid { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
struct Parser {
    users: HashMap<String, Entry>,
    warnings: Vec<Warning>,
}

impl Parser {
    fn warn(&mut self, line: usize, msg: String) {
        self.warnings.push(Warning { line, msg });
    }

    fn line(&mut self, n: usize, line: &str) {
        let (user, rest) = match split_line(line) {
            Line::Blank | Line::Comment => return,
            Line::NoColon => {
                self.warn(
                    n,
                    "not a `user:hash` line (no ':'); ignored, no user can log in with it".into(),
                );
                return;
            }
            Line::Entry { user, rest } => (user, rest),
        };
        if user.is_empty() {
            self.warn(n, "no user name before the ':'; ignored".into());
            return;
        }
        let (field, junk_after_colon) = hash_field(rest);
        match PasswordHash::parse_fields(field) {
            Ok((hash, junk_after_dollar)) => {
                if junk_after_colon || junk_after_dollar {
                    self.warn(
                        n,
                        format!("user {user:?}: text after the password hash is ignored"),
                    );
                }
                self.valid(n, user, hash);
            }
            Err(e) => {
                self.warn(n, format!("user {user:?} cannot log in: {e}"));
                self.refuse(n, user);
            }
        }
    }

    fn not_utf8(&mut self, n: usize, line: &[u8]) {
        if line.iter().find(|&&b| !is_blank(char::from(b))) == Some(&b'#') {
            return;
        }
        let user = line
            .iter()
            .position(|&b| b == b':')
            .and_then(|colon| std::str::from_utf8(&line[..colon]).ok())
            .map(|u| u.trim_matches(is_blank))
            .filter(|u| !u.is_empty() && !u.starts_with('#'));
        match user {
            Some(user) => {
                self.warn(
                    n,
                    format!("user {user:?} cannot log in: the line is not valid UTF-8"),
                );
                self.refuse(n, user);
            }
            None => self.warn(n, "the line is not valid UTF-8; ignored".into()),
        }
    }

    fn valid(&mut self, n: usize, user: &str, hash: PasswordHash) {
        match self.users.get(user) {
            Some(Entry::Refused { line: before }) => {
                let before = *before;
                self.warn(
                    n,
                    format!(
                        "user {user:?} cannot log in: line {before} for the same user cannot be used"
                    ),
                );
                return;
            }
            Some(Entry::Valid { line: before, .. }) => {
                let before = *before;
                self.warn(
                    n,
                    format!(
                        "user {user:?} is also on line {before}; this later line is the one used"
                    ),
                );
            }
            None => {}
        }
        self.users
            .insert(user.to_owned(), Entry::Valid { hash, line: n });
    }

    fn refuse(&mut self, n: usize, user: &str) {
        if let Some(Entry::Valid { line: before, .. }) = self.users.get(user) {
            let before = *before;
            self.warn(
                n,
                format!("user {user:?} cannot log in, not even with line {before}"),
            );
        }
        if !matches!(self.users.get(user), Some(Entry::Refused { .. })) {
            self.users
                .insert(user.to_owned(), Entry::Refused { line: n });
        }
    }

    fn finish(self) -> (PasswordFile, Vec<Warning>) {
        (PasswordFile { users: self.users }, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn pbkdf2_hex(p: &[u8], s: &[u8], c: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha512(p, s, c, &mut out);
        hex(&out)
    }

    // PBKDF2-HMAC-SHA512 with RFC 6070's inputs; the 64-byte results published at
    // https://stackoverflow.com/q/15593184 (and reproduced with Python's hashlib.pbkdf2_hmac).
    #[test]
    fn pbkdf2_sha512_rfc6070_inputs_1_iteration() {
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 1, 64),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
             c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
        );
    }

    #[test]
    fn pbkdf2_sha512_rfc6070_inputs_2_iterations() {
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 2, 64),
            "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53c\
             f76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e"
        );
    }

    #[test]
    fn pbkdf2_sha512_rfc6070_inputs_4096_iterations() {
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 4096, 64),
            "d197b1b33db0143e018b12f3d1d1479e6cdebdcc97c5c0f87f6902e072f457b5\
             143f30602641b3d55cd335988cb36b84376060ecd532e039b742a239434af2d5"
        );
        assert_eq!(
            pbkdf2_hex(
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                64
            ),
            "8c0511f4c6e597c6ac6315d8f0362e225f3c501495ba23b868c005174dc4ee71\
             115b59f9e60cd9532fa33e0f75aefe30225c583a186cd82bd4daea9724a3d3b8"
        );
    }

    #[test]
    fn pbkdf2_sha512_nul_bytes_and_short_output() {
        // RFC 6070 test 6's inputs (hashlib.pbkdf2_hmac('sha512', ..., 4096, 16)).
        assert_eq!(
            pbkdf2_hex(b"pass\0word", b"sa\0lt", 4096, 16),
            "9d9e9c4cd21fe4be24d5b8244c759665"
        );
        // A prefix of the 1-iteration result.
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 1, 20),
            "867f70cf1ade02cff3752599a3a53dc4af34c7a6"
        );
    }

    #[test]
    fn pbkdf2_sha512_second_block() {
        // dkLen 100 needs two blocks (hashlib.pbkdf2_hmac('sha512', b'password', b'salt', 2, 100)).
        assert_eq!(
            pbkdf2_hex(b"password", b"salt", 2, 100),
            "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53c\
             f76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e\
             473e311ad827b68945f4e2dddb204c78e40e2495141e411cd272d020640d673c\
             d34aa29f"
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    // Made by Debian's mosquitto_passwd 2.0.11; see tests/fixtures/README.md.
    const DEBIAN_PBKDF2: &str = include_str!("../../tests/fixtures/mosquitto_passwd_pbkdf2.txt");
    const DEBIAN_SHA512: &str = include_str!("../../tests/fixtures/mosquitto_passwd_sha512.txt");

    #[test]
    fn debian_mosquitto_passwd_pbkdf2_file_is_accepted() {
        let (f, w) = PasswordFile::parse(DEBIAN_PBKDF2);
        assert_eq!(w, vec![]);
        assert_eq!(f.len(), 4);
        assert!(f.check("john_doe", b"EXAMPLE_PASSWORD"));
        assert!(f.check("mary_smith", b"EXAMPLE_PASSWORD_2"));
        assert!(f.check("sensor-1000", b"iterations: 1000, colon and spaces"));
        assert!(f.check("j\u{fc}rgen", "p\u{e4}ssw\u{f6}rd \u{2713}".as_bytes()));
        assert_eq!(
            f.hash("sensor-1000").unwrap().kind(),
            HashType::Sha512Pbkdf2 { iterations: 1000 }
        );
        assert_eq!(
            f.hash("j\u{fc}rgen").unwrap().kind(),
            HashType::Sha512Pbkdf2 { iterations: 1 }
        );
        assert_eq!(
            f.hash("john_doe").unwrap().kind(),
            HashType::Sha512Pbkdf2 {
                iterations: DEFAULT_ITERATIONS
            }
        );
        assert_eq!(f.hash("john_doe").unwrap().salt_len(), SALT_LEN);
    }

    #[test]
    fn debian_mosquitto_passwd_pbkdf2_file_refuses_wrong_passwords() {
        let (f, _) = PasswordFile::parse(DEBIAN_PBKDF2);
        assert!(!f.check("john_doe", b"EXAMPLE_PASSWORD_2"));
        assert!(!f.check("john_doe", b"example_password"));
        assert!(!f.check("john_doe", b"EXAMPLE_PASSWORD "));
        assert!(!f.check("john_doe", b""));
        assert!(!f.check("mary_smith", b"EXAMPLE_PASSWORD"));
        assert!(!f.check("sensor-1000", b"iterations"));
        // User names are exact.
        assert!(!f.check("John_doe", b"EXAMPLE_PASSWORD"));
        assert!(!f.check("nobody", b"EXAMPLE_PASSWORD"));
        // A NUL ends the password for mosquitto; for midge it is part of it.
        assert!(!f.check("john_doe", b"EXAMPLE_PASSWORD\0junk"));
    }

    #[test]
    fn debian_mosquitto_passwd_sha512_file_is_accepted() {
        let (f, w) = PasswordFile::parse(DEBIAN_SHA512);
        assert_eq!(w, vec![]);
        assert_eq!(f.len(), 3);
        assert!(f.check("john_doe", b"EXAMPLE_PASSWORD"));
        assert!(f.check("mary_smith", b"EXAMPLE_PASSWORD_2"));
        assert!(f.check("j\u{fc}rgen", "p\u{e4}ssw\u{f6}rd \u{2713}".as_bytes()));
        assert_eq!(f.hash("john_doe").unwrap().kind(), HashType::Sha512);
        assert!(!f.check("john_doe", b"EXAMPLE_PASSWORD_2"));
        assert!(!f.check("mary_smith", b"EXAMPLE_PASSWORD"));
        assert!(!f.check("j\u{fc}rgen", b"passwort"));
    }

    // Lines made with Python's hashlib and base64 (independent of this code): salt bytes 0..12
    // or 0..64, password "pw" (and "first"/"second" for the duplicate).
    const PY_SALT12_PBKDF2: &str = "$7$101$AAECAwQFBgcICQoL$l8zqSPOVOsX6BzXddvHVSUz51tfFGYiwZgYMerEYSK2kmFD86m93us2E5cM8HAComZhsUAqG/9HmFNzmBd+GRQ==";
    const PY_SALT64_PBKDF2: &str = "$7$101$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$bjfmK+rHVjYIU8g+zpNOWQFyrJyLFolfGFZPWhA6mO/EpkV26D+0zAxQxU5vWtiKEaqE9OQTQPIIqGj/o9gJ5A==";
    const PY_SALT64_SHA512: &str = "$6$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$EyvvrCxZdE93qPq6vRD/XEMqaf3E82N5TGF+SSQIquzx+Z9UFIzyim7HxC6PpgyoVyGs9/HB+9DfTo1geoJ+HA==";
    const PY_DUP_FIRST: &str = "$7$101$AAECAwQFBgcICQoL$/+tj63FO/8ZdXfMAPttl0hKH9Id7VP1Z8LA3kq7aePOt8hL+iWDpZaVIAulZTLeTvM95jMkFgIMoqs9fojmNPQ==";
    const PY_DUP_SECOND: &str = "$7$101$AAECAwQFBgcICQoL$cD9oxum5RGdtV4S2NeUMzDmKc6Re+38lBgqVOSKSD9VzqJ+FeDcRof/kpdicrZSEXFzxFtLbhrGC18/CY6RdWA==";

    fn parse(text: &str) -> (PasswordFile, Vec<Warning>) {
        PasswordFile::parse(text)
    }

    fn warning(line: usize, msg: &str) -> Warning {
        Warning {
            line,
            msg: msg.into(),
        }
    }

    #[test]
    fn salts_of_64_bytes_as_mosquitto_2_1_writes_are_accepted() {
        let text = format!("a:{PY_SALT64_PBKDF2}\nb:{PY_SALT64_SHA512}\n");
        let (f, w) = parse(&text);
        assert_eq!(w, vec![]);
        assert!(f.check("a", b"pw"));
        assert!(f.check("b", b"pw"));
        assert_eq!(f.hash("a").unwrap().salt_len(), LONG_SALT_LEN);
        assert!(!f.check("a", b"pW"));
        assert!(!f.check("b", b"pW"));
    }

    #[test]
    fn comments_blank_lines_crlf_and_blanks_around_fields() {
        let text = format!(
            "# a comment\n\n   \n\t# indented comment\r\n  a : {PY_SALT12_PBKDF2} \r\nb:{PY_SALT12_PBKDF2}"
        );
        let (f, w) = parse(&text);
        assert_eq!(w, vec![]);
        assert!(f.check("a", b"pw"));
        assert!(f.check("b", b"pw"));
        assert!(!f.contains(" a "));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn empty_file_has_no_users() {
        for text in ["", "\n", "# only a comment\n"] {
            let (f, w) = parse(text);
            assert!(f.is_empty());
            assert_eq!(w, vec![]);
            assert!(!f.check("", b""));
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let (f, w) = parse(&format!("\u{feff}a:{PY_SALT12_PBKDF2}\n"));
        assert_eq!(w, vec![]);
        assert!(f.check("a", b"pw"));
        let (f, w) =
            PasswordFile::parse_bytes(format!("\u{feff}a:{PY_SALT12_PBKDF2}\n").as_bytes());
        assert_eq!(w, vec![]);
        assert!(f.check("a", b"pw"));
    }

    #[test]
    fn plain_text_password_is_refused_with_advice() {
        let (f, w) = parse("# users\njohn_doe:EXAMPLE_PASSWORD\n");
        assert!(!f.check("john_doe", b"EXAMPLE_PASSWORD"));
        assert!(!f.contains("john_doe"));
        assert_eq!(
            w,
            vec![warning(
                2,
                "user \"john_doe\" cannot log in: the password is in plain text, which midge \
                 refuses; hash the file's plain-text passwords with `midge_passwd -U FILE`"
            )]
        );
    }

    #[test]
    fn hash_without_leading_dollar_is_plain_text() {
        // mosquitto 2.0 accepts "7$101$..." (its strtok skips the missing '$'); 2.1 does not.
        let (f, w) = parse(&format!("a:{}\n", &PY_SALT12_PBKDF2[1..]));
        assert!(!f.check("a", b"pw"));
        assert_eq!(w.len(), 1);
        assert!(w[0].msg.contains("plain text"), "{}", w[0].msg);
    }

    #[test]
    fn line_without_colon_is_reported_and_ignored() {
        let (f, w) = parse("john_doe EXAMPLE_PASSWORD\n");
        assert!(f.is_empty());
        assert_eq!(
            w,
            vec![warning(
                1,
                "not a `user:hash` line (no ':'); ignored, no user can log in with it"
            )]
        );
    }

    #[test]
    fn empty_user_name_is_reported() {
        let (f, w) = parse(&format!("\n :{PY_SALT12_PBKDF2}\n"));
        assert!(f.is_empty());
        assert!(!f.check("", b"pw"));
        assert_eq!(w, vec![warning(2, "no user name before the ':'; ignored")]);
    }

    #[test]
    fn missing_hash_is_reported() {
        for line in ["a:", "a:   ", "a::"] {
            let (f, w) = parse(line);
            assert!(!f.check("a", b""), "{line:?}");
            assert_eq!(
                w,
                vec![warning(
                    1,
                    "user \"a\" cannot log in: the password hash is missing"
                )],
                "{line:?}"
            );
        }
    }

    #[test]
    fn unsupported_hash_types_are_reported_without_quoting_them() {
        for field in [
            "$argon2id$v=19$m=47104,t=1,p=1$c2FsdA$aGFzaA",
            "$5$rounds=5000$salt$hash",
            "$1$salt$hash",
            "$",
            "$$7$101$AAECAwQFBgcICQoL$AA==",
            "$ecret$password",
        ] {
            let (f, w) = parse(&format!("a:{field}\n"));
            assert!(!f.contains("a"));
            assert_eq!(
                w,
                vec![warning(
                    1,
                    "user \"a\" cannot log in: unsupported password hash type \
                     (midge reads $6$ and $7$ hashes)"
                )],
                "{field}"
            );
        }
    }

    fn one_error(field: &str) -> String {
        let (f, w) = parse(&format!("u:{field}\n"));
        assert!(!f.contains("u"), "{field}");
        assert_eq!(w.len(), 1, "{field}: {w:?}");
        assert_eq!(w[0].line, 1);
        let prefix = "user \"u\" cannot log in: ";
        assert!(w[0].msg.starts_with(prefix), "{}", w[0].msg);
        w[0].msg[prefix.len()..].to_owned()
    }

    #[test]
    fn missing_fields_are_reported() {
        assert_eq!(one_error("$7$"), "the password hash has no iteration count");
        assert_eq!(one_error("$7$101"), "the password hash has no salt");
        assert_eq!(one_error("$7$101$"), "the password hash has no salt");
        assert_eq!(
            one_error("$7$101$AAECAwQFBgcICQoL"),
            "the password hash has no hash"
        );
        assert_eq!(
            one_error("$7$101$AAECAwQFBgcICQoL$"),
            "the password hash has no hash"
        );
        assert_eq!(
            one_error("$7$$AAECAwQFBgcICQoL$AA=="),
            "the password hash has no iteration count"
        );
        assert_eq!(one_error("$6$"), "the password hash has no salt");
        assert_eq!(
            one_error("$6$AAECAwQFBgcICQoL"),
            "the password hash has no hash"
        );
    }

    #[test]
    fn bad_iteration_counts_are_reported() {
        let hash = &PY_SALT12_PBKDF2["$7$101".len()..];
        for it in [
            "0",
            "-1",
            "+101",
            " 101",
            "101x",
            "1e3",
            "2147483648",
            "99999999999999999999",
        ] {
            assert_eq!(
                one_error(&format!("$7${it}{hash}")),
                "the $7$ iteration count is not a whole number from 1 to 2147483647",
                "{it}"
            );
        }
    }

    #[test]
    fn any_iteration_count_from_1_to_i32_max_parses() {
        assert_eq!(parse_iterations("1"), Ok(1));
        assert_eq!(parse_iterations("0101"), Ok(101));
        assert_eq!(parse_iterations("2147483647"), Ok(MAX_ITERATIONS));
        let h = PasswordHash::create(b"x", HashType::Sha512Pbkdf2 { iterations: 3 }, &[1; 12]);
        let (f, w) = parse(&format!("x:{}\n", h.encode()));
        assert_eq!(w, vec![]);
        assert!(f.check("x", b"x"));
        assert_eq!(
            f.hash("x").unwrap().kind(),
            HashType::Sha512Pbkdf2 { iterations: 3 }
        );
    }

    #[test]
    fn bad_salts_are_reported() {
        let hash = &PY_SALT12_PBKDF2[PY_SALT12_PBKDF2.rfind('$').unwrap()..];
        assert_eq!(
            one_error(&format!("$7$101$AAAAAAAAAAAAAA=={hash}")),
            "the salt is 10 bytes long; mosquitto's salts are 12 or 64"
        );
        assert_eq!(
            one_error(&format!("$7$101$AAAAAAAAAAAAAAAAAAAA{hash}")),
            "the salt is 15 bytes long; mosquitto's salts are 12 or 64"
        );
        assert_eq!(
            one_error(&format!("$6$AAAAAAAAAAAAAAAAAAAA{hash}")),
            "the salt is 15 bytes long; mosquitto's salts are 12 or 64"
        );
        assert_eq!(
            one_error(&format!("$7$101$AAECAwQFBgcICQo{hash}")),
            "the salt is not valid base64: base64 length 15 is not a multiple of 4"
        );
        assert_eq!(
            one_error(&format!("$7$101$AAECAwQF*gcICQoL{hash}")),
            "the salt is not valid base64: not a base64 character at offset 8"
        );
    }

    #[test]
    fn bad_hashes_are_reported() {
        let salt = "$7$101$AAECAwQFBgcICQoL$";
        let good = &PY_SALT12_PBKDF2[salt.len()..];
        assert_eq!(
            one_error(&format!("{salt}{}", &good[..86])),
            "the hash is not valid base64: base64 length 86 is not a multiple of 4"
        );
        assert_eq!(
            one_error(&format!("{salt}{}", &good[..84])),
            "the hash is 63 bytes long instead of 64"
        );
        assert_eq!(
            one_error(&format!("{salt}{good}AAAA")),
            "the hash is not valid base64: misplaced base64 padding"
        );
        assert_eq!(
            one_error(&format!("{salt}{}AAAA", &good[..84])),
            "the hash is 66 bytes long instead of 64"
        );
        assert_eq!(
            one_error(&format!("{salt}{}", good.replace('+', "-"))),
            "the hash is not valid base64: not a base64 character at offset 82"
        );
    }

    #[test]
    fn warnings_never_contain_passwords_or_hashes() {
        let text = format!(
            "john_doe:EXAMPLE_PASSWORD\nmary:$7$101$AAECAwQFBgcICQoL$c2VjcmV0\nEXAMPLE_PASSWORD_2\n\
             x:$7$1$AAECAwQF*gcICQoL$c2VjcmV0\ny:{}\nz:$ecret$pass\n",
            &PY_SALT12_PBKDF2[..PY_SALT12_PBKDF2.len() - 4]
        );
        let (_, w) = parse(&text);
        assert_eq!(w.len(), 6, "{w:?}");
        for w in &w {
            for secret in ["EXAMPLE", "c2VjcmV0", "AAECAwQ", "l8zqSPOV", "ecret"] {
                assert!(!w.msg.contains(secret), "{secret} in {w}");
            }
        }
        assert_eq!(
            w.iter().map(|w| w.line).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn damaged_lines_are_reported_with_their_numbers_and_others_still_work() {
        let text = format!(
            "# header\na:{PY_SALT12_PBKDF2}\nb:{}\n\nc:{PY_SALT12_PBKDF2}\n",
            &PY_SALT12_PBKDF2[..40]
        );
        let (f, w) = parse(&text);
        assert!(f.check("a", b"pw"));
        assert!(!f.check("b", b"pw"));
        assert!(f.check("c", b"pw"));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 3);
        assert!(
            w[0].msg.starts_with("user \"b\" cannot log in: "),
            "{}",
            w[0]
        );
        assert_eq!(w[0].to_string(), format!("line 3: {}", w[0].msg));
    }

    #[test]
    fn the_last_valid_line_for_a_user_counts_as_in_mosquitto() {
        let text = format!("dup:{PY_DUP_FIRST}\ndup:{PY_DUP_SECOND}\n");
        let (f, w) = parse(&text);
        assert!(f.check("dup", b"second"));
        assert!(!f.check("dup", b"first"));
        assert_eq!(
            w,
            vec![warning(
                2,
                "user \"dup\" is also on line 1; this later line is the one used"
            )]
        );
    }

    #[test]
    fn a_damaged_line_for_a_user_locks_the_user_out_whatever_the_order() {
        let damaged = "$7$101$AAECAwQFBgcICQoL$AAAA";
        let (f, w) = parse(&format!("dup:{PY_DUP_FIRST}\ndup:{damaged}\n"));
        assert!(!f.check("dup", b"first"));
        assert!(!f.contains("dup"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[1],
            warning(2, "user \"dup\" cannot log in, not even with line 1")
        );

        let (f, w) = parse(&format!("dup:{damaged}\ndup:{PY_DUP_FIRST}\n"));
        assert!(!f.check("dup", b"first"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[1],
            warning(
                2,
                "user \"dup\" cannot log in: line 1 for the same user cannot be used"
            )
        );
    }

    #[test]
    fn text_after_the_hash_is_ignored_with_a_warning_as_mosquitto_ignores_it() {
        for junk in [":junk", "$junk", "$", " :x:y"] {
            let (f, w) = parse(&format!("a:{PY_SALT12_PBKDF2}{junk}\n"));
            assert!(f.check("a", b"pw"), "{junk}");
            assert_eq!(
                w,
                vec![warning(
                    1,
                    "user \"a\": text after the password hash is ignored"
                )],
                "{junk}"
            );
        }
        let (f, w) = parse(&format!("a:{PY_SALT12_PBKDF2}:\n"));
        assert!(f.check("a", b"pw"));
        assert_eq!(w, vec![]);
        assert_eq!(
            PasswordHash::parse_strict(&format!("{PY_SALT12_PBKDF2}$junk")),
            Err(HashError::MissingField("end after the hash"))
        );
        assert!(PasswordHash::parse(&format!("{PY_SALT12_PBKDF2}$junk")).is_ok());
    }

    #[test]
    fn user_names_are_escaped_in_warnings() {
        let (_, w) = parse("evil\x1b[2J\u{7}:plain\n");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].msg
                .starts_with("user \"evil\\u{1b}[2J\\u{7}\" cannot log in"),
            "{}",
            w[0].msg
        );
    }

    #[test]
    fn user_names_may_contain_spaces_and_unicode() {
        let h = PasswordHash::create(b"pw", HashType::Sha512Pbkdf2 { iterations: 1 }, &[7; 12]);
        let (f, w) = parse(&format!("J\u{fc}rgen M\u{fc}ller:{}\n", h.encode()));
        assert_eq!(w, vec![]);
        assert!(f.check("J\u{fc}rgen M\u{fc}ller", b"pw"));
    }

    #[test]
    fn non_utf8_lines_lock_out_their_user_and_spare_the_rest() {
        let mut bytes = format!("a:{PY_SALT12_PBKDF2}\n").into_bytes();
        bytes.extend_from_slice(b"b:$7$\xff\n\xfe\xfd\n# \xff comment\nc\xff:x\n");
        bytes.extend_from_slice(format!("d:{PY_SALT12_PBKDF2}").as_bytes());
        let (f, w) = PasswordFile::parse_bytes(&bytes);
        assert!(f.check("a", b"pw"));
        assert!(!f.contains("b"));
        assert!(f.check("d", b"pw"));
        assert_eq!(
            w,
            vec![
                warning(2, "user \"b\" cannot log in: the line is not valid UTF-8"),
                warning(3, "the line is not valid UTF-8; ignored"),
                warning(5, "the line is not valid UTF-8; ignored"),
            ]
        );
    }

    #[test]
    fn create_encode_parse_verify_round_trip() {
        for kind in [
            HashType::Sha512,
            HashType::Sha512Pbkdf2 { iterations: 1 },
            HashType::Sha512Pbkdf2 { iterations: 101 },
        ] {
            for salt in [&[9u8; SALT_LEN][..], &[3u8; LONG_SALT_LEN][..]] {
                let h = PasswordHash::create(b"s3cret", kind, salt);
                let field = h.encode();
                let back = PasswordHash::parse_strict(&field).unwrap();
                assert_eq!(back, h);
                assert!(back.verify(b"s3cret"));
                assert!(!back.verify(b"s3cret "));
                assert!(!back.verify(b""));
            }
        }
        let h = PasswordHash::create(b"", HashType::Sha512Pbkdf2 { iterations: 0 }, &[0; 12]);
        assert_eq!(h.kind(), HashType::Sha512Pbkdf2 { iterations: 1 });
        assert!(h.encode().starts_with("$7$1$AAAAAAAAAAAAAAAA$"));
        assert!(h.verify(b""));
    }

    #[test]
    fn sha512_hash_is_password_then_salt() {
        // sha512(b"pw" + bytes(range(64))) in Python, base64 in PY_SALT64_SHA512.
        let h = PasswordHash::parse(PY_SALT64_SHA512).unwrap();
        let salt: Vec<u8> = (0..64).collect();
        assert_eq!(h, PasswordHash::create(b"pw", HashType::Sha512, &salt));
    }

    #[test]
    fn debug_output_hides_salt_and_hash() {
        let h = PasswordHash::parse(PY_SALT12_PBKDF2).unwrap();
        let d = format!("{h:?}");
        assert_eq!(
            d,
            "PasswordHash { kind: Sha512Pbkdf2 { iterations: 101 }, salt_len: 12, .. }"
        );
        let (f, _) = parse(&format!("a:{PY_SALT12_PBKDF2}\n"));
        let d = format!("{f:?}");
        assert!(!d.contains("AAECAwQ") && !d.contains("151"), "{d}");
    }

    #[test]
    fn parser_never_panics_on_junk() {
        let pieces = [
            "", ":", "$", "$7$", "$6$", "1", "AAAA", "==", "#", " ", "\r", "\u{e9}", "a", "\0",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let text = format!("{a}{b}{c}{d}\n{a}:{b}{c}{d}");
                        let _ = parse(&text);
                        let _ = PasswordFile::parse_bytes(text.as_bytes());
                    }
                }
            }
        }
    }
}
