//! Fuzzes the password-file parser (`PasswordFile::parse_bytes`, and `parse` for UTF-8 text).
//! Whatever the bytes, parsing must not panic, and:
//!
//! - `parse` and `parse_bytes` agree on valid UTF-8 (same warnings, same users);
//! - warnings name real lines (1 to the number of lines) and never quote a hash field;
//! - a user the file admits has a hash that encodes and parses back to itself, and checking a
//!   password against it (when cheap: `$6$`, or `$7$` with at most 1,000 iterations; one user
//!   per input) does not panic; a user it refuses, or does not name, is never admitted.
//!
//!     cargo +nightly fuzz run password_parse -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge::auth::password::{split_line, HashType, Line, PasswordFile, PasswordHash};

/// A field that a message could only contain by quoting it.
fn secret_like(field: &str) -> bool {
    field.len() >= 12
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=$.".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let (file, warnings) = PasswordFile::parse_bytes(data);
    let body = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let lines = body.split(|&b| b == b'\n').count();
    for w in &warnings {
        assert!(w.line >= 1 && w.line <= lines, "warning on line {} of {lines}", w.line);
    }

    // The users and hash fields, as the file's lines split them.
    let mut users: Vec<&str> = Vec::new();
    let mut fields: Vec<&str> = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        match std::str::from_utf8(line) {
            Ok(line) => {
                if let Line::Entry { user, rest } = split_line(line) {
                    users.push(user);
                    let field = rest.split(':').next().unwrap_or("").trim();
                    fields.push(field);
                }
            }
            Err(_) => {
                // A line that is not UTF-8 still names its user (what precedes the first ':',
                // when that is UTF-8), and the warning may quote it: it is the user field,
                // whatever it looks like, not another line's hash.
                if let Some(colon) = line.iter().position(|&b| b == b':') {
                    if let Ok(user) = std::str::from_utf8(&line[..colon]) {
                        users.push(user);
                    }
                }
            }
        }
    }
    for field in fields {
        // Warnings quote user names escaped (`{:?}`): "\0" followed by a user's letters may
        // spell another line's field without quoting it.
        let in_a_user = users
            .iter()
            .any(|u| u.contains(field) || format!("{u:?}").contains(field));
        if secret_like(field) && !in_a_user {
            for w in &warnings {
                assert!(!w.msg.contains(field), "warning quotes a hash field: {w}");
            }
        }
    }

    let mut admitted = 0;
    // Hashing is the slow part: check one admitted and one refused user per input.
    let (mut checked_good, mut checked_bad) = (false, false);
    let mut seen = std::collections::HashSet::new();
    for &user in &users {
        if !seen.insert(user) {
            continue;
        }
        match file.hash(user) {
            Some(h) => {
                admitted += 1;
                assert!(file.contains(user));
                let again = PasswordHash::parse(&h.encode()).expect("an encoded hash parses");
                assert!(again == *h, "hash of {user:?} does not round-trip");
                let cheap = match h.kind() {
                    HashType::Sha512 => true,
                    HashType::Sha512Pbkdf2 { iterations } => iterations <= 1_000,
                };
                if cheap && !checked_good {
                    checked_good = true;
                    let _ = file.check(user, b"password");
                }
            }
            None => {
                assert!(!file.contains(user));
                // A refused user costs the decoy's 101 iterations.
                if !checked_bad {
                    checked_bad = true;
                    assert!(!file.check(user, b"password"));
                }
            }
        }
    }
    assert_eq!(file.len(), admitted, "users admitted that no line names");
    assert_eq!(file.is_empty(), admitted == 0);
    assert!(!file.contains("\u{0}no such user\u{0}"));

    if let Ok(text) = std::str::from_utf8(data) {
        let (file2, warnings2) = PasswordFile::parse(text);
        assert_eq!(warnings, warnings2, "parse and parse_bytes disagree");
        assert_eq!(file.len(), file2.len());
        for &user in &users {
            assert_eq!(file.hash(user), file2.hash(user));
        }
    }
});
