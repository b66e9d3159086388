//! Topic names and topic filters (MQTT section 4.7).

use super::Error;

/// A topic name in a PUBLISH (or a will): at least one character [MQTT-4.7.3-1] and no wildcard
/// characters [MQTT-3.3.2-2].
pub fn validate_name(topic: &str) -> Result<(), Error> {
    if topic.is_empty() {
        return Err(Error::Malformed("[MQTT-4.7.3-1] topic name is empty"));
    }
    if memchr::memchr2(b'+', b'#', topic.as_bytes()).is_some() {
        return Err(Error::Malformed(
            "[MQTT-3.3.2-2] topic name contains a wildcard character",
        ));
    }
    Ok(())
}

/// A topic filter in SUBSCRIBE/UNSUBSCRIBE: at least one character [MQTT-4.7.3-1]; `#` only as
/// the whole last level [MQTT-4.7.1-2]; `+` only as a whole level [MQTT-4.7.1-3].
pub fn validate_filter(filter: &str) -> Result<(), Error> {
    if filter.is_empty() {
        return Err(Error::Malformed("[MQTT-4.7.3-1] topic filter is empty"));
    }
    let b = filter.as_bytes();
    if memchr::memchr2(b'+', b'#', b).is_none() {
        return Ok(());
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(Error::Malformed(
                "[MQTT-4.7.1-2] '#' must be the whole last level of a topic filter",
            ));
        }
        if level.contains('+') && level != "+" {
            return Err(Error::Malformed(
                "[MQTT-4.7.1-3] '+' must occupy a whole level of a topic filter",
            ));
        }
    }
    Ok(())
}

/// The most `/` separators a topic name or filter in PUBLISH, SUBSCRIBE or UNSUBSCRIBE may
/// hold (so at most 201 levels): as in mosquitto 2.0, which closes the connection of a client
/// that sends more (a will topic is not checked, as mosquitto does not).
pub const MAX_SEPARATORS: usize = 200;

/// At most [`MAX_SEPARATORS`] separators.
pub fn check_depth(topic: &str) -> Result<(), Error> {
    let b = topic.as_bytes();
    if b.len() > MAX_SEPARATORS && memchr::memchr_iter(b'/', b).nth(MAX_SEPARATORS).is_some() {
        return Err(Error::Malformed(
            "topic has more than 200 levels (refused as mosquitto does)",
        ));
    }
    Ok(())
}

/// Whether a valid `filter` matches a valid topic `name`.
/// A filter starting with a wildcard does not match a topic starting with `$` [MQTT-4.7.2-1].
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_wildcards_and_empty() {
        assert!(validate_name("a/b").is_ok());
        assert!(validate_name("/").is_ok());
        assert!(
            matches!(validate_name("a/+"), Err(Error::Malformed(m)) if m.contains("MQTT-3.3.2-2"))
        );
        assert!(
            matches!(validate_name("#"), Err(Error::Malformed(m)) if m.contains("MQTT-3.3.2-2"))
        );
        assert!(
            matches!(validate_name(""), Err(Error::Malformed(m)) if m.contains("MQTT-4.7.3-1"))
        );
    }

    #[test]
    fn filters_allow_wildcards_only_as_whole_levels() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "a/+/b",
            "/+",
            "+/",
            "sport/tennis/#",
            "//",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["a#", "a/#/b", "#/a", "a/b#"] {
            assert!(
                matches!(validate_filter(bad), Err(Error::Malformed(m)) if m.contains("MQTT-4.7.1-2")),
                "{bad}"
            );
        }
        for bad in ["a+", "a/+b", "+a/b"] {
            assert!(
                matches!(validate_filter(bad), Err(Error::Malformed(m)) if m.contains("MQTT-4.7.1-3")),
                "{bad}"
            );
        }
        assert!(validate_filter("").is_err());
    }

    #[test]
    fn matching_follows_section_4_7() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "anything/at/all", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            // [MQTT-4.7.2-1]
            ("#", "$SYS/broker/uptime", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/broker/uptime", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ];
        for (f, n, want) in cases {
            assert_eq!(matches(f, n), want, "{f} vs {n}");
        }
    }
}
