//! Fuzzes the configuration parser (`midge::config::parse`), then builds a broker from what it
//! accepted. The input is the main file; text after a NUL byte is served as the files of an
//! `include_dir` (one file per further NUL-separated part; a directory named `fail` is an IO
//! error). Whatever the text, parsing must not panic and errors must name a line of the file
//! they are in. An accepted configuration turns into listener policies as `main.rs` does (no
//! files loaded), and a broker built from it takes a CONNECT, SUBSCRIBE, PUBLISH, PINGREQ and a
//! tick without panicking, whatever the limits say.
//!
//!     cargo +nightly fuzz run config_parse -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use midge::broker::{Broker, ListenerPolicy};
use midge::config::{self, Config};
use midge::mqtt::{Connect, Packet, Properties, Publish, QoS, SubOptions, Version};

fn policies(cfg: &Config) -> Vec<ListenerPolicy> {
    let listeners = cfg.all_listeners();
    let local = config::Listener::new(1883, None);
    let list: Vec<&config::Listener> = if listeners.is_empty() {
        vec![&local]
    } else {
        listeners.iter().collect()
    };
    list.into_iter()
        .map(|l| {
            let sec = cfg.security_for(Some(l));
            ListenerPolicy {
                port: l.port,
                allow_anonymous: cfg.allow_anonymous(sec),
                allow_zero_length_clientid: sec.allow_zero_length_clientid.unwrap_or(true),
                auto_id_prefix: sec.auto_id_prefix.clone().unwrap_or_else(|| "auto-".into()),
                use_username_as_clientid: l.use_username_as_clientid,
                max_qos: l.max_qos,
                max_topic_alias: l.max_topic_alias,
                mount_point: l.mount_point.clone(),
                max_connections: usize::try_from(l.max_connections).ok(),
                passwords: None,
                acl: None,
                cert_username: l.tls.enabled() && l.tls.username != config::CertUsername::Connect,
            }
        })
        .collect()
}

fn session(b: &mut Broker, listener: usize) {
    let mut bytes = Vec::new();
    Packet::connect(Connect {
        version: Version::V5,
        clean_session: false,
        keep_alive: 30,
        client_id: "c1",
        will: None,
        username: Some("u"),
        password: None,
        props: Properties {
            session_expiry_interval: Some(60),
            ..Properties::default()
        },
    })
    .encode_version(Version::V5, &mut bytes);
    Packet::Subscribe {
        pid: 1,
        filters: vec![("a/#", SubOptions::from(QoS::ExactlyOnce))],
        props: Properties::default().into(),
    }
    .encode_version(Version::V5, &mut bytes);
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: true,
            topic: "a/b",
            pid: (qos != QoS::AtMostOnce).then_some(7),
            payload: b"0123456789abcdef0123456789",
            props: Properties::default().into(),
        })
        .encode_version(Version::V5, &mut bytes);
    }
    Packet::Pingreq.encode_version(Version::V5, &mut bytes);
    let id = listener;
    b.open(id, "127.0.0.1:40000", listener, 1);
    let n = b.received(id, &bytes, 2);
    assert!(n <= bytes.len());
    let out = b.output(id).len();
    b.written(id, out, 3);
    b.tick(60_000);
    b.tick(10_000_000);
    let _ = b.snapshot();
    b.release(id);
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let main = String::from_utf8_lossy(parts.next().unwrap_or(&[]));
    let included: Vec<(String, String)> = parts
        .take(4)
        .enumerate()
        .map(|(i, p)| (format!("{i}.conf"), String::from_utf8_lossy(p).into_owned()))
        .collect();
    let mut read_dir = |dir: &str| -> Result<Vec<(String, String)>, String> {
        if dir == "fail" {
            Err("Permission denied".into())
        } else {
            Ok(included.clone())
        }
    };
    let mut cfg = Config::default();
    match config::parse(&main, "main.conf", &mut cfg, Some(&mut read_dir)) {
        Ok(()) => {}
        Err(e) => {
            let lines = if e.file == "main.conf" {
                main.lines().count()
            } else {
                included
                    .iter()
                    .find(|(n, _)| *n == e.file)
                    .map_or(0, |(_, t)| t.lines().count())
            };
            assert!(
                e.line >= 1 && e.line <= lines,
                "error on line {} of {lines} in {}: {e}",
                e.line,
                e.file
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    }
    let _ = cfg.local_only();
    let mut bcfg = cfg.broker.clone();
    bcfg.listeners = policies(&cfg);
    let n = bcfg.listeners.len();
    let mut b = Broker::new(bcfg);
    for listener in 0..n.min(3) {
        session(&mut b, listener);
    }
});
