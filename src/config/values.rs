//! Parsers for option values: one word, the rest of the line, numbers, booleans, durations.

pub(super) fn one<'a>(v: &[&'a str]) -> Result<&'a str, String> {
    match v {
        [x] => Ok(x),
        [] => Err("expects a value".into()),
        _ => Err("expects a single value".into()),
    }
}

/// A value that may contain spaces (paths, formats).
pub(super) fn rest(v: &[&str]) -> Result<String, String> {
    if v.is_empty() {
        return Err("expects a value".into());
    }
    Ok(v.join(" "))
}

pub(super) fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not a valid number here"))
}

pub(super) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("'{s}' is not true or false")),
    }
}

/// `persistent_client_expiration`: an integer and one of h d w m y.
pub(super) fn duration(s: &str) -> Result<u64, String> {
    let bad = || format!("'{s}' is not a duration like 2h, 14d, 1w, 2m or 1y");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let secs = match unit {
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).ok_or_else(bad)
}
