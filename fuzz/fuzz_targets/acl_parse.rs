//! Fuzzes the ACL parser (`Acl::parse`) and the checks it answers. Whatever the text, parsing
//! must not panic; a parsed ACL answers `check` for any user, client id and topic or filter
//! (including invalid ones and names with wildcards) without panicking.
//! Two properties of the rules are checked: a topic starting with `$` is never granted by an
//! ACL whose rules and patterns none start with `$`, and an empty ACL grants nothing.
//!
//!     cargo +nightly fuzz run acl_parse -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge::auth::acl::{Access, Acl};

const USERS: &[Option<&str>] = &[None, Some("john_doe"), Some("bob"), Some("a/+"), Some("")];
const CLIENTS: &[&str] = &["c1", "bob", "x/#", ""];
const NAMES: &[&str] = &[
    "a", "a/b", "a/b/c", "home/secret/x", "$SYS/broker/uptime", "sensors/bob/t",
    "clients/c1", "#", "+", "a/+", "a/#", "+/+", "/", "", "$share/g/a",
];

fuzz_target!(|data: &[u8]| {
    // The text after the first NUL, if any, supplies extra names to check.
    let (file, extra) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(file);
    let acl = match Acl::parse(&text) {
        Ok(acl) => acl,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count().max(1), "error {e}");
            return;
        }
    };
    assert_eq!(Acl::parse(&text).ok().as_ref(), Some(&acl), "parse is not deterministic");

    let extra = String::from_utf8_lossy(extra);
    let mut names: Vec<&str> = NAMES.to_vec();
    names.extend(extra.split('\n').take(8));
    let mut users: Vec<Option<&str>> = USERS.to_vec();
    users.extend(extra.split('\n').take(2).map(Some));
    let dollar_rules = text.contains('$');
    let empty = acl == Acl::default();
    let mut clients: Vec<&str> = CLIENTS.to_vec();
    clients.extend(extra.split('\n').take(2));
    for (k, &n) in names.iter().enumerate() {
        for (j, &u) in users.iter().enumerate() {
            let c = clients[(k + j) % clients.len()];
            for access in [Access::Read, Access::Write, Access::Subscribe] {
                let granted = acl.check(u, c, n, access);
                // `$` topics need a rule starting with `$`; a pattern can get one from the
                // client id or user name it substitutes.
                if granted && n.starts_with('$') && !c.contains('$') && !u.is_some_and(|u| u.contains('$')) {
                    assert!(dollar_rules, "{n} granted by rules without '$'");
                }
                if empty {
                    assert!(!granted, "an empty ACL granted {n}");
                }
            }
        }
    }
});
