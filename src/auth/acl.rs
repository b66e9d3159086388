//! mosquitto's ACL file, parsed from a `&str`.
//!
//! ```text
//! # lines before the first `user` apply to anonymous clients
//! topic read $SYS/#
//! user bob
//! topic home/#                  # readwrite is the default access
//! topic deny home/secret/#
//! pattern readwrite sensors/%u/#  # every client; %u user name, %c client id
//! ```
//!
//! A client may do something when a rule of its own (its user's section, or the anonymous
//! section when it has no user name) or a pattern grants it, and no matching `deny` rule forbids
//! it: deny wins. A topic starting with `$` is only matched by rules that start with `$`.

use crate::mqtt::topic;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive a message on a topic.
    Read,
    /// Publish to a topic.
    Write,
    /// Subscribe to a filter: a rule granting read must cover the whole filter.
    Subscribe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    grant: Grant,
    filter: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: Vec<(String, Vec<Rule>)>,
    patterns: Vec<Rule>,
}

/// A parse error with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl Acl {
    pub fn parse(text: &str) -> Result<Acl, Error> {
        let mut acl = Acl::default();
        let mut user: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let err = |msg: String| Error { line: i + 1, msg };
            let line = raw.trim_end_matches(['\r', '\n']).trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = match line.split_once([' ', '\t']) {
                Some((w, r)) => (w, r.trim_start()),
                None => (line, ""),
            };
            match word {
                "user" => {
                    let name = rest.trim_end();
                    if name.is_empty() {
                        return Err(err("user without a user name".into()));
                    }
                    user = Some(match acl.users.iter().position(|(u, _)| u == name) {
                        Some(i) => i,
                        None => {
                            acl.users.push((name.to_string(), Vec::new()));
                            acl.users.len() - 1
                        }
                    });
                }
                "topic" | "pattern" => {
                    let (grant, filter) = match rest.split_once([' ', '\t']) {
                        Some((a, f)) => match a {
                            "read" => (Grant::Read, f.trim_start()),
                            "write" => (Grant::Write, f.trim_start()),
                            "readwrite" => (Grant::ReadWrite, f.trim_start()),
                            "deny" => (Grant::Deny, f.trim_start()),
                            _ => {
                                return Err(err(format!(
                                    "invalid access '{a}' (read, write, readwrite or deny)"
                                )))
                            }
                        },
                        None => (Grant::ReadWrite, rest),
                    };
                    let filter = filter.trim_end();
                    if filter.is_empty() {
                        return Err(err(format!("{word} without a topic")));
                    }
                    if let Err(e) = topic::validate_filter(filter) {
                        return Err(err(format!("invalid topic filter '{filter}': {e}")));
                    }
                    let rule = Rule {
                        grant,
                        filter: filter.to_string(),
                    };
                    if word == "pattern" {
                        acl.patterns.push(rule);
                    } else {
                        match user {
                            Some(u) => acl.users[u].1.push(rule),
                            None => acl.anonymous.push(rule),
                        }
                    }
                }
                other => return Err(err(format!("unknown keyword '{other}'"))),
            }
        }
        Ok(acl)
    }

    /// Whether the client `client_id` (logged in as `username`, if any) may `access` `name` (a
    /// topic for Read/Write, a filter for Subscribe).
    pub fn check(
        &self,
        username: Option<&str>,
        client_id: &str,
        name: &str,
        access: Access,
    ) -> bool {
        let own: &[Rule] = match username {
            None => &self.anonymous,
            Some(u) => self
                .users
                .iter()
                .find(|(n, _)| n == u)
                .map(|(_, r)| r.as_slice())
                .unwrap_or(&[]),
        };
        let mut granted = false;
        for r in own {
            match applies(&r.filter, r.grant, name, access) {
                Some(true) => granted = true,
                Some(false) => return false,
                None => {}
            }
        }
        if !self.patterns.is_empty() {
            // A name with a wildcard or separator could escape its place in the hierarchy.
            let dangerous = |s: &str| s.contains(['+', '#', '/']);
            if dangerous(client_id) || username.is_some_and(dangerous) {
                return false;
            }
            for r in &self.patterns {
                if r.filter.contains("%u") && username.is_none() {
                    continue;
                }
                let f = substitute(&r.filter, client_id, username);
                match applies(&f, r.grant, name, access) {
                    Some(true) => granted = true,
                    Some(false) => return false,
                    None => {}
                }
            }
        }
        granted
    }
}

/// `%c` and `%u` replaced where they form a whole level.
fn substitute(filter: &str, client_id: &str, username: Option<&str>) -> String {
    filter
        .split('/')
        .map(|level| match level {
            "%c" => client_id,
            "%u" => username.unwrap_or(level),
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a rule says something about `name`: `Some(true)` grants, `Some(false)` denies, `None`
/// does not apply.
fn applies(filter: &str, grant: Grant, name: &str, access: Access) -> Option<bool> {
    if name.starts_with('$') && !filter.starts_with('$') {
        return None;
    }
    let hit = match access {
        Access::Read | Access::Write => topic::matches(filter, name),
        // The subscription's filter, read as a topic, must fall under the rule's filter:
        // a rule for "a/#" covers a subscription to "a/+", one for "a/b" does not cover "a/#".
        Access::Subscribe => covers(filter, name),
    };
    if !hit {
        return None;
    }
    Some(match (grant, access) {
        (Grant::Deny, _) => false,
        (Grant::ReadWrite, _) => true,
        (Grant::Read, Access::Read | Access::Subscribe) => true,
        (Grant::Write, Access::Write) => true,
        _ => return None,
    })
}

/// Whether every topic matched by `sub` is matched by `filter`.
fn covers(filter: &str, sub: &str) -> bool {
    let mut f = filter.split('/');
    let mut s = sub.split('/');
    loop {
        match (f.next(), s.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#
topic $SYS/broker/uptime

user john_doe
topic home/#
topic deny home/secret/#
topic read   readonly/#
topic write cmd/+

user roger
topic write roger/out
pattern read sensors/%u/#
pattern write clients/%c
";

    fn acl() -> Acl {
        Acl::parse(FILE).unwrap()
    }

    #[test]
    fn anonymous_section_is_before_the_first_user() {
        let a = acl();
        assert!(a.check(None, "x", "public/news", Access::Read));
        assert!(!a.check(None, "x", "public/news", Access::Write));
        assert!(a.check(None, "x", "$SYS/broker/uptime", Access::Write));
        assert!(!a.check(None, "x", "home/a", Access::Read));
        // The anonymous rules do not apply to named users.
        assert!(!a.check(Some("roger"), "x", "public/news", Access::Read));
    }

    #[test]
    fn user_rules_and_access_kinds() {
        let a = acl();
        let j = Some("john_doe");
        assert!(a.check(j, "c", "home/lights/kitchen", Access::Read));
        assert!(a.check(j, "c", "home/lights/kitchen", Access::Write));
        assert!(a.check(j, "c", "readonly/x", Access::Read));
        assert!(!a.check(j, "c", "readonly/x", Access::Write));
        assert!(a.check(j, "c", "cmd/reboot", Access::Write));
        assert!(!a.check(j, "c", "cmd/reboot", Access::Read));
        assert!(!a.check(j, "c", "elsewhere", Access::Read));
        // Unknown users have no rules of their own.
        assert!(!a.check(Some("mallory"), "c", "home/x", Access::Read));
    }

    #[test]
    fn deny_wins() {
        let a = acl();
        let j = Some("john_doe");
        assert!(!a.check(j, "c", "home/secret/key", Access::Read));
        assert!(!a.check(j, "c", "home/secret/key", Access::Write));
        assert!(!a.check(j, "c", "home/secret", Access::Read));
    }

    #[test]
    fn patterns_substitute_user_and_client() {
        let a = acl();
        assert!(a.check(Some("roger"), "c1", "sensors/roger/temp", Access::Read));
        assert!(!a.check(Some("roger"), "c1", "sensors/john/temp", Access::Read));
        assert!(a.check(Some("roger"), "c1", "clients/c1", Access::Write));
        assert!(a.check(None, "c1", "clients/c1", Access::Write));
        // %u patterns never apply to anonymous clients.
        assert!(!a.check(None, "c1", "sensors/%u/temp", Access::Read));
        // A client id or user name with + # / gets nothing from patterns (nor at all).
        assert!(!a.check(Some("roger"), "c/1", "clients/c/1", Access::Write));
        assert!(!a.check(Some("ro+ger"), "c1", "sensors/ro+ger/x", Access::Read));
    }

    #[test]
    fn dollar_topics_need_dollar_rules() {
        let a = Acl::parse("user u\ntopic #\n").unwrap();
        assert!(a.check(Some("u"), "c", "a/b", Access::Read));
        assert!(!a.check(Some("u"), "c", "$SYS/broker/uptime", Access::Read));
    }

    #[test]
    fn subscriptions_must_fall_under_a_read_rule() {
        let a = acl();
        let j = Some("john_doe");
        assert!(a.check(j, "c", "home/#", Access::Subscribe));
        assert!(a.check(j, "c", "home/+/kitchen", Access::Subscribe));
        assert!(a.check(j, "c", "readonly/+", Access::Subscribe));
        assert!(!a.check(j, "c", "#", Access::Subscribe));
        assert!(!a.check(j, "c", "cmd/+", Access::Subscribe));
        assert!(!a.check(j, "c", "home/secret/#", Access::Subscribe));
        assert!(covers("a/+", "a/+"));
        assert!(!covers("a/+", "a/#"));
        assert!(!covers("a/b", "a/+"));
    }

    #[test]
    fn invalid_lines_are_errors_with_line_numbers() {
        for (text, line) in [
            ("topic\n", 1),
            ("user\n", 1),
            ("# c\ntopic rw a\n", 2),
            ("topic read a/#/b\n", 1),
            ("\n\nfoo bar\n", 3),
        ] {
            let e = Acl::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
        // As in mosquitto, a lone word after topic/pattern is the topic, with readwrite access.
        let a = Acl::parse("pattern read\n").unwrap();
        assert!(a.check(None, "c", "read", Access::Write));
        // A topic with spaces is one topic, as in mosquitto.
        let a = Acl::parse("user u\ntopic read my topic\n").unwrap();
        assert!(a.check(Some("u"), "c", "my topic", Access::Read));
    }
}
