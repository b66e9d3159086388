//! What /proc says about a process: CPU time and resident memory.

use std::fs;

#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// VmRSS, kB.
    pub rss_kb: u64,
    /// VmHWM (peak RSS since the process started), kB.
    pub hwm_kb: u64,
}

/// Clock ticks per second for /proc/PID/stat (USER_HZ: 100 on every Linux architecture in
/// practice; asked of `getconf` to be sure).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime in ticks, from the text of /proc/PID/stat.
pub fn parse_stat(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); utime and stime are fields 14 and 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `Key:   123 kB` line of /proc/PID/status.
pub fn status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn sample(pid: &str, tck: f64) -> Option<Sample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Sample {
        cpu_s: parse_stat(&stat)? as f64 / tck,
        rss_kb: status_kb(&status, "VmRSS")?,
        hwm_kb: status_kb(&status, "VmHWM").unwrap_or(0),
    })
}

/// The soft limit on open files of this process.
pub fn nofile_limit() -> Option<u64> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let v = line["Max open files".len()..].split_whitespace().next()?;
    if v == "unlimited" {
        Some(u64::MAX)
    } else {
        v.parse().ok()
    }
}
