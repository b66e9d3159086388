//! The installed logger, end to end through the `log` macros. The logger is process-global, so
//! everything is one test, in order.

use std::path::PathBuf;

use log::{debug, error, info, trace, warn};
use midge::config::LogDest;
use midge::logging::{self, LogOptions};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p =
            std::env::temp_dir().join(format!("midge-logging-it-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn installed_logger_follows_options_and_reloads() {
    let dir = TempDir::new();
    let first = dir.0.join("first.log");
    let second = dir.0.join("second.log");
    let file = |p: &PathBuf| LogDest::File(p.to_str().unwrap().to_string());

    // Defaults but into a file, with an ISO timestamp.
    let opts = LogOptions {
        dests: vec![file(&first)],
        timestamp_format: Some("%Y-%m-%dT%H:%M:%S".into()),
        ..LogOptions::default()
    };
    logging::init(&opts).unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Info);
    info!("Opening ipv4 listen socket on port 1883.");
    debug!("hidden: debug is not a default type");
    info!(target: "subscribe", "hidden: subscribe is not a default type");
    warn!("a warning");
    log::logger().flush();
    let text = read(&first);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(": Opening ipv4 listen socket on port 1883."));
    assert!(lines[1].ends_with(": a warning"));
    for l in &lines {
        // "YYYY-MM-DDTHH:MM:SS: "
        let b = l.as_bytes();
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19]),
            (b'-', b'-', b'T', b':', b':', b':')
        );
    }

    // Reload: a new file, only errors and subscriptions, unix-seconds stamps.
    let opts = LogOptions {
        dests: vec![file(&second)],
        types: vec!["error".into(), "subscribe".into()],
        ..LogOptions::default()
    };
    logging::init(&opts).unwrap();
    info!("hidden: information is off");
    info!(target: "subscribe", "client-1 0 a/b");
    error!("an error");
    let text = read(&second);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(": client-1 0 a/b"));
    let secs: u64 = lines[1]
        .strip_suffix(": an error")
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs > 1_600_000_000);
    assert_eq!(
        read(&first).lines().count(),
        2,
        "the old file is left alone"
    );

    // A failed reload changes nothing.
    let bad = LogOptions {
        dests: vec![LogDest::File(
            dir.0.join("missing-dir/x.log").to_str().unwrap().into(),
        )],
        ..LogOptions::default()
    };
    let e = logging::init(&bad).unwrap_err();
    assert!(e.contains("Unable to open log file"), "{e}");
    error!("still here");
    assert!(read(&second).ends_with(": still here\n"));

    // -v: everything, no timestamp.
    let opts = LogOptions {
        dests: vec![file(&second)],
        types: vec!["none".into()],
        verbose: true,
        timestamp: false,
        ..LogOptions::default()
    };
    logging::init(&opts).unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Trace);
    trace!(target: "midge::broker", "a trace line");
    trace!("hidden: trace from outside midge (this test crate) is dropped");
    debug!(target: "unsubscribe", "client-1 a/b");
    assert!(read(&second).ends_with("\na trace line\nclient-1 a/b\n"));

    // log_type none: nothing at all.
    let opts = LogOptions {
        dests: vec![file(&second)],
        types: vec!["none".into()],
        ..LogOptions::default()
    };
    logging::init(&opts).unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Off);
    let before = read(&second);
    error!("hidden");
    assert_eq!(read(&second), before);
}
