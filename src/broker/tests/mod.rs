//! The core without sockets: a fake clock, packets in, exact bytes out. One file per concern:
//! MQTT 3.1.1 sessions and flows (`v311.rs`), listener policies and limits (`policy.rs`),
//! MQTT 5 (`v5.rs`), shared subscriptions (`shared.rs`), snapshots (`snapshot.rs`) and the
//! output ring (`output.rs`); the helpers they share are here.

mod output;
mod policy;
mod shared;
mod snapshot;
mod v311;
mod v5;

use std::rc::Rc;

use super::*;
use crate::auth::acl::Acl;
use crate::mqtt::{Ack, Connect, Properties, Publish, QoS, SubOptions, Will};

struct H {
    b: Broker,
    now: Millis,
}

fn enc(ps: &[Packet<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        p.encode(&mut out);
    }
    out
}

fn connect(id: &str, clean: bool, ka: u16) -> Connect<'_> {
    Connect {
        props: Properties::default(),
        version: Version::V311,
        clean_session: clean,
        keep_alive: ka,
        client_id: id,
        will: None,
        username: None,
        password: None,
    }
}

fn publish<'a>(topic: &'a str, payload: &'a [u8], qos: QoS, pid: Option<u16>) -> Packet<'a> {
    Packet::Publish(Publish {
        props: Properties::default().into(),
        dup: false,
        qos,
        retain: false,
        topic,
        pid,
        payload,
    })
}

fn connack(sp: bool, code: u8) -> Packet<'static> {
    Packet::Connack {
        props: Properties::default().into(),
        session_present: sp,
        code,
    }
}

impl H {
    fn new() -> H {
        H::with(Config::default())
    }
    fn with(cfg: Config) -> H {
        H {
            b: Broker::new(cfg),
            now: 1_000,
        }
    }
    fn open(&mut self, id: ConnId) {
        self.b.open(id, "127.0.0.1:50000", 0, self.now);
    }
    fn send(&mut self, id: ConnId, p: Packet<'_>) {
        let bytes = enc(&[p]);
        assert_eq!(self.b.received(id, &bytes, self.now), bytes.len());
    }
    /// Everything written to `id` since the last call (the socket takes it all).
    fn take(&mut self, id: ConnId) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let out = self.b.output(id).to_vec();
            if out.is_empty() {
                return all;
            }
            self.b.written(id, out.len(), self.now);
            all.extend_from_slice(&out);
        }
    }
    fn client(&mut self, id: ConnId, c: Connect<'_>) -> Vec<u8> {
        self.open(id);
        self.send(id, Packet::connect(c));
        self.take(id)
    }
    fn subscriber(&mut self, id: ConnId, client: &str, filter: &str, qos: QoS) {
        assert_eq!(
            self.client(id, connect(client, true, 0)),
            enc(&[connack(false, 0)])
        );
        self.send(
            id,
            Packet::Subscribe {
                props: Properties::default().into(),
                pid: 1,
                filters: vec![(filter, qos.into())],
            },
        );
        assert_eq!(
            self.take(id),
            enc(&[Packet::Suback {
                props: Properties::default().into(),
                pid: 1,
                codes: vec![qos.as_u8()]
            }])
        );
    }
    fn advance(&mut self, ms: Millis) {
        self.now += ms;
        self.b.tick(self.now);
    }
    /// Moves the clock from deadline to deadline ([`Broker::next_deadline`]), running what is
    /// due at each, until `done` holds. Returns how far the clock moved: the time at which the
    /// awaited thing happened, exactly.
    fn advance_until(&mut self, done: impl Fn(&mut H) -> bool) -> Millis {
        let start = self.now;
        for _ in 0..1_000 {
            if done(self) {
                return self.now - start;
            }
            let due = self.b.next_deadline().expect("a deadline is armed");
            self.advance(due.saturating_sub(self.now));
        }
        panic!("still waiting after 1,000 deadlines");
    }
}

fn with_policy(f: impl FnOnce(&mut ListenerPolicy), g: impl FnOnce(&mut Config)) -> H {
    let mut cfg = Config::default();
    f(&mut cfg.listeners[0]);
    g(&mut cfg);
    H::with(cfg)
}

fn acl(text: &str) -> Option<Rc<Acl>> {
    Some(Rc::new(Acl::parse(text).unwrap()))
}

fn login<'a>(id: &'a str, user: Option<&'a str>) -> Connect<'a> {
    let mut c = connect(id, true, 0);
    c.username = user;
    c
}

fn will_client(delay: u32, expiry: u32) -> Connect<'static> {
    let mut c = connect5(
        "dev",
        true,
        Properties {
            session_expiry_interval: Some(expiry),
            ..Properties::default()
        },
    );
    c.will = Some(Will {
        props: Properties {
            will_delay_interval: Some(delay),
            ..Properties::default()
        },
        topic: "status/dev",
        payload: b"gone",
        qos: QoS::AtMostOnce,
        retain: false,
    });
    c
}

fn subscribe_pkt(filter: &str) -> Packet<'_> {
    Packet::Subscribe {
        props: Properties::default().into(),
        pid: 1,
        filters: vec![(filter, QoS::AtMostOnce.into())],
    }
}

// ----- MQTT 5 -------------------------------------------------------------------------------

fn enc5(ps: &[Packet<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in ps {
        p.encode_version(Version::V5, &mut out);
    }
    out
}

/// Every packet in `bytes`, decoded as MQTT 5.
fn packets5(bytes: &[u8]) -> Vec<Packet<'_>> {
    packets(bytes, Version::V5)
}

fn packets(bytes: &[u8], version: Version) -> Vec<Packet<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match mqtt::decode(&bytes[pos..], version, usize::MAX).unwrap() {
            Status::Complete(p, n) => {
                out.push(p);
                pos += n;
            }
            Status::Partial => panic!("partial packet in output"),
        }
    }
    out
}

fn connect5<'a>(id: &'a str, clean: bool, props: Properties<'a>) -> Connect<'a> {
    Connect {
        props,
        version: Version::V5,
        clean_session: clean,
        keep_alive: 0,
        client_id: id,
        will: None,
        username: None,
        password: None,
    }
}

impl H {
    fn send5(&mut self, id: ConnId, p: Packet<'_>) {
        let bytes = enc5(&[p]);
        assert_eq!(self.b.received(id, &bytes, self.now), bytes.len());
    }
    fn client5(&mut self, id: ConnId, c: Connect<'_>) -> Vec<u8> {
        self.open(id);
        self.send5(id, Packet::connect(c));
        self.take(id)
    }
    fn sub5(&mut self, id: ConnId, filter: &str, opts: SubOptions, sub_id: Option<u32>) {
        self.send5(
            id,
            Packet::Subscribe {
                pid: 1,
                filters: vec![(filter, opts)],
                props: Properties {
                    subscription_identifiers: sub_id.into_iter().collect(),
                    ..Properties::default()
                }
                .into(),
            },
        );
    }
}

fn pub5<'a>(
    topic: &'a str,
    payload: &'a [u8],
    qos: QoS,
    pid: Option<u16>,
    props: Properties<'a>,
) -> Packet<'a> {
    Packet::Publish(Publish {
        props: props.into(),
        dup: false,
        qos,
        retain: false,
        topic,
        pid,
        payload,
    })
}
