//! Fuzzes the sans-IO broker core with scripts of actions from several fake clients: no socket,
//! a fake clock. The input bytes are a script: the first three bytes pick a configuration
//! (queue, in-flight and size limits, retain, $SYS, expiry...), then each action is a byte
//! naming what happens next and the bytes it reads:
//!
//! - open a connection on one of three listeners (anonymous; password file + ACL + mount point
//!   + `max_connections 2`; `max_qos 1` + `use_username_as_clientid` + ACL);
//! - feed it raw bytes from the input, or a well-formed packet built from the input (CONNECT
//!   3.1/3.1.1/5.0 with wills and MQTT 5 properties, PUBLISH, the four acks, SUBSCRIBE,
//!   UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH), kept and handed back when partly consumed as the
//!   network layer does, held while the broker has paused the connection;
//! - write some or all of its output (which a fake client then decodes and checks);
//! - lose it (EOF or error), release it, shut the broker down, swap listener policies;
//! - advance the clock and tick;
//! - snapshot the broker, write it with `write_snapshot`, decode it, restore it into a fresh
//!   broker, compare, and maybe carry on with the restored broker (a restart).
//!
//! Invariants checked through the public API only:
//! - nothing panics (`output`, `received`, `tick`... on live, closed, released and unknown ids);
//! - `received` consumes at most what it was given, everything once the connection is closed,
//!   and leaves behind only an incomplete packet unless the connection is paused;
//! - `is_closed` is true after `lost`, `release` and `shutdown`; a released connection has no
//!   output; a closed connection whose output was written produces no more;
//! - after `tick(now)`, `next_deadline()` is later than `now` (no busy loop);
//! - everything the broker writes decodes as a sequence of server-to-client packets in the
//!   client's protocol version: CONNACK first and once, nothing after a refusal or a DISCONNECT,
//!   DISCONNECT only to MQTT 5 clients, topic aliases within the client's Topic Alias Maximum
//!   and known before use, PUBLISH within the client's Maximum Packet Size, no packet
//!   identifier reused while in flight, no more QoS 1/2 messages in flight than the client's
//!   Receive Maximum and `max_inflight_messages`, a SUBACK/UNSUBACK code per filter;
//! - the snapshot written by `write_snapshot` is byte for byte `format::encode(snapshot())`,
//!   decodes undamaged to the same snapshot, and restores into a fresh broker whose own
//!   snapshot is the same (up to the documented differences: store order, and a connected
//!   session's expiry, which starts counting at restore).
//!
//!     cargo +nightly fuzz run core_sequences -- -max_total_time=60
#![no_main]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use midge::auth::acl::Acl;
use midge::auth::password::PasswordFile;
use midge::broker::{Broker, Config, ConnId, ListenerPolicy, Millis};
use midge::mqtt::{
    self, Ack, Connect, Packet, Properties, Publish, QoS, Status, SubOptions, Version, Will,
};
use midge::persist::{format, Snapshot};

const UNLIMITED: usize = mqtt::MAX_REMAINING_LENGTH + 5;
/// Connection ids, with a gap so that the broker's table grows past unused slots.
const IDS: [ConnId; 4] = [0, 1, 2, 6];
/// An id the network layer never opened.
const STRAY: ConnId = 1000;
const MAX_ACTIONS: usize = 400;

/// `MIDGE_FUZZ_TRACE=1`: print each action and each packet a client receives (for reading a
/// crash input: `cargo +nightly fuzz run core_sequences CRASH_FILE`).
fn trace() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MIDGE_FUZZ_TRACE").is_some())
}

const TOPICS: &[&str] = &[
    "a",
    "a/b",
    "a/b/c",
    "a/secret",
    "b/x",
    "sensors/john_doe/t",
    "clients/c1/x",
    "$SYS/broker/x",
    "pub/1",
    "/",
    "m/a",
    "\u{e9}/\u{fc}",
];
const FILTERS: &[&str] = &[
    "#",
    "+",
    "a/#",
    "a/+",
    "a/b",
    "+/+/c",
    "$SYS/#",
    "$share/g/a/#",
    "$share/g/#",
    "$share/h/a/+",
    "$share//a",
    "b/#",
    "sensors/+/t",
    "clients/#",
    "/#",
    "+/#",
    "a/secret",
    "m/#",
];
const CLIENT_IDS: &[&str] = &["", "c1", "c2", "c3", "john_doe", "a/+", "$x", "mary_smith"];
const USERS: &[Option<&str>] = &[
    None,
    Some("john_doe"),
    Some("mary_smith"),
    Some("j\u{fc}rgen"),
    Some("nobody"),
    Some("a/#"),
];
const PASSWORDS: &[Option<&[u8]>] = &[
    None,
    Some(b"EXAMPLE_PASSWORD"),
    Some(b"EXAMPLE_PASSWORD_2"),
    Some(b"wrong"),
    Some("p\u{e4}ssw\u{f6}rd \u{2713}".as_bytes()),
];

const PASSWD: &str = include_str!("../../tests/fixtures/mosquitto_passwd_sha512.txt");
const ACL1: &str = "topic read $SYS/#\n\
                    topic readwrite pub/#\n\
                    user john_doe\n\
                    topic readwrite a/#\n\
                    topic deny a/secret\n\
                    user mary_smith\n\
                    topic read a/#\n\
                    topic write b/#\n\
                    pattern readwrite sensors/%u/#\n\
                    pattern read clients/%c/#\n";
const ACL2: &str = "topic readwrite #\ntopic deny a/secret\npattern read clients/%c/#\n";

/// The input, read a byte at a time; past its end every read is zero.
struct Script<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Script<'a> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.u8() as usize % xs.len()]
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start.saturating_add(n);
        &self.data[start..end]
    }
    fn topic(&mut self) -> String {
        match self.u8() % 16 {
            0 => {
                let n = self.u8() as usize % 8;
                String::from_utf8_lossy(self.bytes(n)).into_owned()
            }
            // Deep topics: up to 1,021 levels.
            1 => "x/".repeat(1 + self.u8() as usize * 4),
            _ => self.pick(TOPICS).to_string(),
        }
    }
    fn filter(&mut self) -> String {
        match self.u8() % 16 {
            0 => {
                let n = self.u8() as usize % 8;
                String::from_utf8_lossy(self.bytes(n)).into_owned()
            }
            1 => format!("{}#", "+/".repeat(self.u8() as usize * 4)),
            _ => self.pick(FILTERS).to_string(),
        }
    }
    fn payload(&mut self) -> Vec<u8> {
        match self.u8() % 16 {
            0 => Vec::new(),
            // Over message_size_limit, max_packet_size, the clients' Maximum Packet Size and
            // the 64 KiB output high-water mark.
            1 => vec![0x55; 70_000],
            2 => vec![0xaa; 100],
            _ => {
                let n = self.u8() as usize % 24;
                self.bytes(n).to_vec()
            }
        }
    }
}

fn config(s: &mut Script<'_>) -> Config {
    let (a, b, c) = (s.u8(), s.u8(), s.u8());
    let passwords = Rc::new(PasswordFile::parse(PASSWD).0);
    let acl1 = Rc::new(Acl::parse(ACL1).expect("ACL1 parses"));
    let acl2 = Rc::new(Acl::parse(ACL2).expect("ACL2 parses"));
    let open = ListenerPolicy::default();
    let secured = ListenerPolicy {
        port: 8883,
        allow_anonymous: false,
        allow_zero_length_clientid: c & 0x01 == 0,
        mount_point: Some("m/".into()),
        max_connections: Some(2),
        passwords: Some(passwords),
        acl: Some(acl1),
        ..ListenerPolicy::default()
    };
    let limited = ListenerPolicy {
        port: 1884,
        max_qos: QoS::AtLeastOnce,
        max_topic_alias: if c & 0x02 == 0 { 0 } else { 65_535 },
        use_username_as_clientid: c & 0x04 != 0,
        auto_id_prefix: String::new(),
        acl: Some(acl2),
        ..ListenerPolicy::default()
    };
    let mut cfg = Config::default();
    cfg.listeners = vec![open, secured, limited];
    cfg.clientid_prefixes = (c & 0x08 != 0).then(|| "c".to_string());
    cfg.max_inflight_messages = [20, 2, 0, 1][(a & 3) as usize];
    cfg.max_inflight_bytes = if b & 0x04 != 0 { 40 } else { 0 };
    cfg.max_queued_messages = [1000, 3, 0, 1][((a >> 2) & 3) as usize];
    cfg.max_queued_bytes = if b & 0x02 != 0 { 40 } else { 0 };
    cfg.queue_qos0_messages = a & 0x40 != 0;
    cfg.message_size_limit = if a & 0x10 != 0 { 16 } else { 0 };
    cfg.max_packet_size = if a & 0x20 != 0 { 96 } else { 0 };
    cfg.retain_available = b & 0x01 == 0;
    cfg.upgrade_outgoing_qos = a & 0x80 != 0;
    cfg.check_retain_source = b & 0x80 == 0;
    cfg.max_keepalive = if b & 0x10 != 0 { 10 } else { 65_535 };
    cfg.connect_timeout_ms = 20_000;
    cfg.persistent_client_expiration = (b & 0x08 != 0).then_some(30);
    cfg.topic_alias_to_clients = b & 0x20 == 0;
    cfg.connection_messages = true;
    cfg.sys_interval = if b & 0x40 != 0 { 5 } else { 0 };
    cfg.id_seed = c as u64;
    cfg
}

/// Where a QoS 1/2 message the client received stands, from the client's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// QoS 1, PUBACK not sent yet.
    Qos1,
    /// QoS 2, PUBREC not sent yet.
    Qos2,
    /// PUBREC sent, PUBCOMP not yet.
    RecSent,
}

/// The harness's view of one connection: what the network layer keeps, and a fake client that
/// decodes and checks what the broker sends.
#[derive(Default)]
struct Slot {
    open: bool,
    /// Bytes received and not yet consumed by the broker.
    inbuf: Vec<u8>,
    /// Whether anything was fed yet.
    fed: bool,
    /// The protocol version, known when the first bytes fed were a CONNECT built here.
    version: Option<Version>,
    /// Raw bytes were fed: the client model (acks, subscriptions) no longer knows what the
    /// broker saw, so only the decoding checks stay on.
    raw: bool,
    /// Output written to the client and not yet decoded.
    rx: Vec<u8>,
    connack: bool,
    /// A refusing CONNACK or a DISCONNECT was received: nothing may follow.
    ended: bool,
    /// The connection was closed and its output written out: no more output may appear.
    drained_closed: bool,
    receive_max: u16,
    max_packet: u32,
    alias_max: u16,
    aliases: HashMap<u16, String>,
    outstanding: BTreeMap<u16, Out>,
    /// SUBSCRIBE / UNSUBSCRIBE sent and not yet answered, in order: (packet id, filters).
    subs: VecDeque<(u16, usize)>,
    unsubs: VecDeque<(u16, usize)>,
}

/// A whole PUBLISH at the start of `rx` whose topic has more than 200 levels, returned with
/// the topic's separators replaced by `_`.
fn deep_publish(rx: &[u8]) -> Option<Vec<u8>> {
    if rx.first()? & 0xf0 != 0x30 {
        return None;
    }
    let (mut rem, mut i) = (0usize, 1);
    loop {
        let b = *rx.get(i)?;
        rem |= ((b & 0x7f) as usize) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let mut p = rx.get(..i + rem)?.to_vec();
    let len = u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]) as usize;
    let topic = p.get_mut(i + 2..i + 2 + len)?;
    if topic.iter().filter(|&&c| c == b'/').count() <= mqtt::topic::MAX_SEPARATORS {
        return None;
    }
    topic
        .iter_mut()
        .filter(|c| **c == b'/')
        .for_each(|c| *c = b'_');
    Some(p)
}

/// A whole PUBACK or PUBREC with reason code 0x95 at the start of `rx`, returned with 0x80 in
/// its place.
fn too_large_ack(rx: &[u8]) -> Option<Vec<u8>> {
    let (&byte1, &len) = (rx.first()?, rx.get(1)?);
    let len = len as usize;
    if !matches!(byte1, 0x40 | 0x50) || !(3..0x80).contains(&len) || rx.get(4) != Some(&0x95) {
        return None;
    }
    let mut ack = rx.get(..2 + len)?.to_vec();
    ack[4] = 0x80;
    Some(ack)
}

impl Slot {
    fn model(&self) -> bool {
        self.version.is_some() && !self.raw
    }

    /// Decodes what the client received and checks each packet.
    fn receive(&mut self, bytes: &[u8], max_inflight: usize, size_limited: bool) {
        let Some(version) = self.version else {
            return;
        };
        self.rx.extend_from_slice(bytes);
        let rx = std::mem::take(&mut self.rx);
        let mut pos = 0;
        loop {
            // mosquitto 2.0.20 answers an MQTT 5 PUBLISH over `message_size_limit` with PUBACK
            // or PUBREC 0x95 (Packet too large), a code MQTT 5 sections 3.4.2.1 and 3.5.2.1 do
            // not list for them, and midge does the same (tests/diff). The client here takes
            // exactly that packet, checked as the same acknowledgement with 0x80.
            if version == Version::V5 && size_limited {
                if let Some(ack) = too_large_ack(&rx[pos..]) {
                    match mqtt::decode(&ack, version, UNLIMITED) {
                        Ok(Status::Complete(p, n)) => {
                            self.check(&p, n, version, max_inflight);
                            pos += n;
                            continue;
                        }
                        other => panic!("PUBACK/PUBREC 0x95 does not decode as 0x80: {other:?}"),
                    }
                }
            }
            match mqtt::decode(&rx[pos..], version, UNLIMITED) {
                Ok(Status::Complete(p, n)) => {
                    if trace() {
                        match &p {
                            Packet::Publish(pb) => eprintln!(
                                "    client got PUBLISH q{} pid {:?} '{}' alias {:?} {} bytes",
                                pb.qos.as_u8(),
                                pb.pid,
                                pb.topic,
                                pb.props.topic_alias,
                                n
                            ),
                            Packet::Connack { code, .. } => {
                                eprintln!("    client got CONNACK {code:#x}")
                            }
                            Packet::Disconnect { reason, .. } => {
                                eprintln!("    client got DISCONNECT {reason:#x}")
                            }
                            Packet::Suback { pid, codes, .. } => {
                                eprintln!("    client got SUBACK {pid} {codes:x?}")
                            }
                            other => eprintln!("    client got {}", other.name()),
                        }
                    }
                    self.check(&p, n, version, max_inflight);
                    pos += n;
                }
                Ok(Status::Partial) => break,
                Err(e) => {
                    // A topic over 200 levels is refused from clients, as mosquitto 2.0.20
                    // does, but a mount point can take one there (and a will topic is not
                    // checked): mosquitto delivers those, and so does midge. Checked with its
                    // separators replaced.
                    if let Some(flat) = deep_publish(&rx[pos..]) {
                        if let Ok(Status::Complete(p, n)) = mqtt::decode(&flat, version, UNLIMITED)
                        {
                            self.check(&p, n, version, max_inflight);
                            pos += n;
                            continue;
                        }
                    }
                    panic!(
                        "the broker sent bytes a {version:?} client cannot decode: {e}\n{:02x?}",
                        &rx[pos..]
                    )
                }
            }
        }
        self.rx = rx[pos..].to_vec();
    }

    fn check(&mut self, p: &Packet<'_>, n: usize, version: Version, max_inflight: usize) {
        let v5 = version == Version::V5;
        assert!(!self.ended, "{} after a refusal or DISCONNECT", p.name());
        if !self.connack {
            assert!(
                matches!(p, Packet::Connack { .. }),
                "first packet to a client is {}, not CONNACK",
                p.name()
            );
        }
        match p {
            Packet::Connack { code, .. } => {
                assert!(!self.connack, "second CONNACK");
                self.connack = true;
                if *code != 0 {
                    self.ended = true;
                }
            }
            Packet::Publish(pb) => {
                if self.max_packet > 0 {
                    assert!(
                        n <= self.max_packet as usize,
                        "PUBLISH of {n} bytes over the client's Maximum Packet Size {}",
                        self.max_packet
                    );
                }
                if v5 {
                    if let Some(a) = pb.props.topic_alias {
                        assert!(
                            a >= 1 && a <= self.alias_max,
                            "topic alias {a} outside the client's 1..={}",
                            self.alias_max
                        );
                        if pb.topic.is_empty() {
                            assert!(self.aliases.contains_key(&a), "unknown topic alias {a}");
                        } else {
                            self.aliases.insert(a, pb.topic.to_string());
                        }
                    }
                }
                if let (Some(pid), true) = (pb.pid, self.model()) {
                    let state = if pb.qos == QoS::AtLeastOnce {
                        Out::Qos1
                    } else {
                        Out::Qos2
                    };
                    let prev = self.outstanding.insert(pid, state);
                    assert!(
                        prev.is_none(),
                        "packet identifier {pid} reused while in flight ({prev:?})"
                    );
                    if v5 {
                        assert!(
                            self.outstanding.len() <= self.receive_max as usize,
                            "{} in flight over the client's Receive Maximum {}",
                            self.outstanding.len(),
                            self.receive_max
                        );
                    }
                    if max_inflight > 0 {
                        assert!(
                            self.outstanding.len() <= max_inflight,
                            "{} in flight over max_inflight_messages {max_inflight}",
                            self.outstanding.len()
                        );
                    }
                }
            }
            Packet::Suback { pid, codes, .. } => {
                if self.model() {
                    let (want_pid, want) = self.subs.pop_front().expect("SUBACK unasked for");
                    assert_eq!(*pid, want_pid, "SUBACK out of order");
                    assert_eq!(codes.len(), want, "SUBACK codes for {want} filters");
                }
            }
            Packet::Unsuback { pid, codes, .. } => {
                if self.model() {
                    let (want_pid, want) = self.unsubs.pop_front().expect("UNSUBACK unasked for");
                    assert_eq!(*pid, want_pid, "UNSUBACK out of order");
                    if v5 {
                        assert_eq!(codes.len(), want, "UNSUBACK codes for {want} filters");
                    }
                }
            }
            Packet::Disconnect { .. } => {
                assert!(v5, "DISCONNECT sent to an MQTT {version:?} client");
                self.ended = true;
            }
            Packet::Puback(_)
            | Packet::Pubrec(_)
            | Packet::Pubrel(_)
            | Packet::Pubcomp(_)
            | Packet::Pingresp => {}
            Packet::Connect(_)
            | Packet::Subscribe { .. }
            | Packet::Unsubscribe { .. }
            | Packet::Pingreq
            | Packet::Auth { .. } => panic!("the broker sent {}", p.name()),
        }
    }

    /// Mirrors an acknowledgement the client sends into its model, as the broker handles it.
    /// Returns whether the model knew the message it acknowledges.
    fn acked(&mut self, kind: u8, pid: u16, reason: u8) -> bool {
        match (kind, self.outstanding.get(&pid)) {
            (mqtt::PUBACK, Some(Out::Qos1)) => {
                self.outstanding.remove(&pid);
            }
            (mqtt::PUBREC, Some(Out::Qos2)) => {
                if reason < 0x80 {
                    self.outstanding.insert(pid, Out::RecSent);
                } else {
                    self.outstanding.remove(&pid);
                }
            }
            (mqtt::PUBCOMP, Some(Out::RecSent)) => {
                self.outstanding.remove(&pid);
            }
            _ => return false,
        }
        true
    }
}

struct Harness {
    broker: Broker,
    cfg: Config,
    now: Millis,
    slots: Vec<Slot>,
}

impl Harness {
    fn feed(&mut self, i: usize, bytes: &[u8]) {
        let id = IDS[i];
        let slot = &mut self.slots[i];
        slot.fed = true;
        slot.inbuf.extend_from_slice(bytes);
        if self.broker.is_paused(id) {
            // The network layer stops reading a paused connection: the bytes wait.
            if trace() {
                eprintln!("  held: {id} is paused");
            }
            return;
        }
        self.consume(i);
    }

    fn consume(&mut self, i: usize) {
        let id = IDS[i];
        let slot = &mut self.slots[i];
        let n = self.broker.received(id, &slot.inbuf, self.now);
        assert!(
            n <= slot.inbuf.len(),
            "consumed {n} of {}",
            slot.inbuf.len()
        );
        if self.broker.is_closed(id) {
            assert_eq!(n, slot.inbuf.len(), "a closed connection leaves bytes");
        } else if !self.broker.is_paused(id) {
            // What is left is an incomplete packet.
            let rest = &slot.inbuf[n..];
            match mqtt::decode_fixed_header(rest, UNLIMITED) {
                Ok(Status::Partial) => {}
                Ok(Status::Complete(h, _)) => assert!(
                    h.total_len() > rest.len(),
                    "a complete packet of {} bytes left unconsumed",
                    h.total_len()
                ),
                Err(e) => panic!("undecodable bytes left unconsumed: {e}"),
            }
        }
        slot.inbuf.drain(..n);
    }

    fn write(&mut self, i: usize, how: u8, amount: u8) {
        let id = IDS[i];
        let out = self.broker.output(id);
        let n = match how % 4 {
            0 => out.len(),
            1 => out.len().min(1),
            2 => out.len() / 2,
            _ => out.len().min(amount as usize),
        };
        let chunk = out[..n].to_vec();
        self.broker.written(id, n, self.now);
        let max_inflight = self.cfg.max_inflight_messages;
        let size_limited = self.cfg.message_size_limit > 0;
        self.slots[i].receive(&chunk, max_inflight, size_limited);
    }

    /// What the network layer does after every batch, and the checks that hold at any time.
    fn settle(&mut self) {
        let mut resumed = Vec::new();
        for _ in 0..8 {
            self.broker.take_resumed(&mut resumed);
            if resumed.is_empty() {
                break;
            }
            for &id in &resumed {
                if trace() {
                    eprintln!("  resumed {id}");
                }
                let Some(i) = IDS.iter().position(|&x| x == id) else {
                    panic!("resumed unknown connection {id}");
                };
                if self.slots[i].open && !self.broker.is_paused(id) {
                    self.consume(i);
                }
            }
        }
        let mut dirty = Vec::new();
        self.broker.take_dirty(&mut dirty);
        for id in &dirty {
            assert!(IDS.contains(id), "dirty unknown connection {id}");
        }
        let mut open = 0;
        for (i, &id) in IDS.iter().enumerate() {
            let out_len = self.broker.output(id).len();
            let closed = self.broker.is_closed(id);
            let slot = &mut self.slots[i];
            if !slot.open {
                assert!(closed, "released connection {id} not closed");
                assert_eq!(out_len, 0, "released connection {id} has output");
                continue;
            }
            open += 1;
            if closed {
                if slot.drained_closed {
                    assert_eq!(out_len, 0, "output after close on {id}");
                } else if out_len == 0 {
                    slot.drained_closed = true;
                }
            }
        }
        assert!(self.broker.connection_count() <= open);
        assert!(self.broker.output(STRAY).is_empty());
        assert!(self.broker.is_closed(STRAY));
    }

    fn packet(&mut self, i: usize, s: &mut Script<'_>) {
        let first = !self.slots[i].fed;
        let version = self.slots[i].version.unwrap_or(Version::V311);
        let v5 = version == Version::V5;
        let mut bytes = Vec::new();
        match s.u8() % 12 {
            0 => {
                let version = s.pick(&[Version::V311, Version::V5, Version::V31, Version::V5]);
                let v5 = version == Version::V5;
                let mut props = Properties::default();
                if v5 {
                    props.session_expiry_interval =
                        s.pick(&[None, Some(0), Some(5), Some(u32::MAX), Some(100)]);
                    props.receive_maximum = s.pick(&[None, Some(1), Some(2), Some(100)]);
                    props.topic_alias_maximum = s.pick(&[None, Some(0), Some(2)]);
                    props.maximum_packet_size = s.pick(&[None, Some(24), Some(64), Some(100_000)]);
                    props.request_problem_information = s.pick(&[None, Some(0), Some(1)]);
                    if s.u8() % 16 == 0 {
                        props.authentication_method = Some("SCRAM-SHA-1");
                    }
                }
                let will_topic = s.topic();
                let mut will_payload = s.payload();
                // A will payload is a two-byte-length field.
                will_payload.truncate(u16::MAX as usize);
                let will = (s.u8() % 3 == 0).then(|| {
                    let mut wp = Properties::default();
                    if v5 {
                        wp.will_delay_interval = s.pick(&[None, Some(0), Some(2), Some(1000)]);
                        wp.message_expiry_interval = s.pick(&[None, Some(1), Some(100)]);
                        wp.content_type = s.pick(&[None, Some("text/plain")]);
                    }
                    Will {
                        topic: &will_topic,
                        payload: &will_payload,
                        qos: s.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]),
                        retain: s.bool(),
                        props: wp,
                    }
                });
                let c = Connect {
                    version,
                    clean_session: s.bool(),
                    keep_alive: s.pick(&[0u16, 1, 5, 60, 65_535]),
                    client_id: s.pick(CLIENT_IDS),
                    will,
                    username: s.pick(USERS),
                    password: s.pick(PASSWORDS),
                    props,
                };
                Packet::connect(c.clone()).encode_version(version, &mut bytes);
                if first {
                    let slot = &mut self.slots[i];
                    slot.version = Some(version);
                    slot.receive_max = c.props.receive_maximum.unwrap_or(u16::MAX);
                    slot.max_packet = c.props.maximum_packet_size.unwrap_or(0);
                    slot.alias_max = c.props.topic_alias_maximum.unwrap_or(0);
                }
            }
            1..=3 => {
                let qos = s.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]);
                let t = s.topic();
                let payload = s.payload();
                let mut props = Properties::default();
                let mut topic: &str = &t;
                if v5 {
                    props.topic_alias = s.pick(&[None, None, None, Some(1), Some(2), Some(11)]);
                    if props.topic_alias.is_some() && s.bool() {
                        topic = "";
                    }
                    props.message_expiry_interval = s.pick(&[None, Some(0), Some(1), Some(3600)]);
                    if s.u8() % 4 == 0 {
                        props.payload_format_indicator = Some(1);
                        props.content_type = Some("text/plain");
                        props.response_topic = Some("r/t");
                        props.correlation_data = Some(b"corr");
                        props.user = vec![("k", "v"), ("k", "w")];
                    }
                }
                let pid = match qos {
                    QoS::AtMostOnce => None,
                    _ => Some(s.pick(&[1, 2, 3, 0xffff])),
                };
                let p = Publish {
                    // DUP on QoS 0 is malformed: rarely.
                    dup: s.u8() % 32 == 0,
                    qos,
                    retain: s.u8() % 4 == 0,
                    topic,
                    pid,
                    payload: &payload,
                    props: props.into(),
                };
                Packet::Publish(p).encode_version(version, &mut bytes);
            }
            4 | 5 => {
                // Acknowledge something the client received, in order.
                let slot = &mut self.slots[i];
                let pick = s.u8() as usize;
                let reason = if v5 {
                    s.pick(&[0, 0, 0, 0x10, 0x80])
                } else {
                    0
                };
                let Some((&pid, &state)) = slot
                    .outstanding
                    .iter()
                    .nth(pick % slot.outstanding.len().max(1))
                else {
                    return;
                };
                let kind = match state {
                    Out::Qos1 => mqtt::PUBACK,
                    Out::Qos2 => mqtt::PUBREC,
                    Out::RecSent => mqtt::PUBCOMP,
                };
                ack(kind, pid, reason, version, &mut bytes);
                slot.acked(kind, pid, reason);
            }
            6 => {
                // Any acknowledgement, for any packet identifier.
                let kind = s.pick(&[mqtt::PUBACK, mqtt::PUBREC, mqtt::PUBREL, mqtt::PUBCOMP]);
                let pid = s.pick(&[1, 2, 3, 0]);
                let pid = if pid == 0 { s.u16() } else { pid };
                let reason = if v5 {
                    s.pick(&[0, 0x10, 0x80, 0x92])
                } else {
                    0
                };
                ack(kind, pid, reason, version, &mut bytes);
                let unseen = !self.broker.output(IDS[i]).is_empty() || !self.slots[i].rx.is_empty();
                if !self.slots[i].acked(kind, pid, reason) && unseen {
                    // A blind acknowledgement may complete a message the broker sent and the
                    // client has not read yet: from here on the model cannot follow the
                    // broker's in-flight window (the broker's view is the right one).
                    self.slots[i].raw = true;
                }
            }
            7 => {
                let pid = s.pick(&[1, 2, 3, 0]);
                let pid = if pid == 0 { s.u16() } else { pid };
                let n = 1 + s.u8() as usize % 3;
                let fs: Vec<String> = (0..n).map(|_| s.filter()).collect();
                let mut filters = Vec::new();
                for f in &fs {
                    let opts = SubOptions {
                        qos: s.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]),
                        no_local: v5 && s.u8() % 4 == 0,
                        retain_as_published: v5 && s.u8() % 4 == 0,
                        retain_handling: if v5 { s.pick(&[0, 0, 1, 2]) } else { 0 },
                    };
                    filters.push((f.as_str(), opts));
                }
                let mut props = Properties::default();
                if v5 {
                    let id = s.pick(&[0, 0, 1, 7, 268_435_455]);
                    if id != 0 {
                        props.subscription_identifiers.push(id);
                    }
                }
                Packet::Subscribe {
                    pid,
                    filters,
                    props: props.into(),
                }
                .encode_version(version, &mut bytes);
                self.slots[i].subs.push_back((pid, n));
            }
            8 => {
                let pid = s.pick(&[1, 2, 3, 0]);
                let pid = if pid == 0 { s.u16() } else { pid };
                let n = 1 + s.u8() as usize % 3;
                let fs: Vec<String> = (0..n).map(|_| s.filter()).collect();
                Packet::Unsubscribe {
                    pid,
                    filters: fs.iter().map(String::as_str).collect(),
                    props: Properties::default().into(),
                }
                .encode_version(version, &mut bytes);
                self.slots[i].unsubs.push_back((pid, n));
            }
            9 => Packet::Pingreq.encode_version(version, &mut bytes),
            10 => {
                let mut props = Properties::default();
                if v5 {
                    props.session_expiry_interval = s.pick(&[None, Some(0), Some(10)]);
                }
                let reason = if v5 { s.pick(&[0, 0, 4, 0x80]) } else { 0 };
                Packet::Disconnect {
                    reason,
                    props: props.into(),
                }
                .encode_version(version, &mut bytes);
            }
            _ => Packet::Auth {
                reason: s.pick(&[0, 0x18, 0x19]),
                props: Properties::default().into(),
            }
            .encode_version(Version::V5, &mut bytes),
        }
        if trace() {
            eprintln!("  feed {:02x?}", bytes);
        }
        self.feed(i, &bytes);
    }

    fn snapshot_round_trip(&mut self, restart: bool) {
        let snap = self.broker.snapshot();
        let mut bytes = Vec::new();
        let (nr, ns) = self
            .broker
            .write_snapshot(&mut bytes)
            .expect("writing to a Vec cannot fail");
        assert_eq!(nr as usize, snap.retained.len());
        assert_eq!(ns as usize, snap.sessions.len());
        assert!(
            bytes == format::encode(&snap),
            "write_snapshot differs from encode(snapshot())"
        );
        let d = format::decode(&bytes).expect("a written snapshot decodes");
        assert!(
            !d.damaged,
            "a written snapshot is damaged: {:?}",
            d.problems
        );
        assert_eq!(d.snapshot, snap);
        let mut fresh = Broker::new(self.cfg.clone());
        let (r, n) = fresh.restore(d.snapshot, self.now);
        assert_eq!(r, snap.retained.len(), "retained messages restored");
        assert_eq!(n, snap.sessions.len(), "sessions restored");
        assert_eq!(normalize(fresh.snapshot()), normalize(restored_view(snap)));
        if restart {
            self.broker = fresh;
            for slot in &mut self.slots {
                *slot = Slot::default();
            }
        }
    }
}

fn ack(kind: u8, pid: u16, reason: u8, version: Version, out: &mut Vec<u8>) {
    let a = Ack {
        pid,
        reason,
        props: Properties::default().into(),
    };
    let p = match kind {
        mqtt::PUBACK => Packet::Puback(a),
        mqtt::PUBREC => Packet::Pubrec(a),
        mqtt::PUBREL => Packet::Pubrel(a),
        _ => Packet::Pubcomp(a),
    };
    p.encode_version(version, out);
}

/// Store order is not part of a snapshot's meaning.
fn normalize(mut s: Snapshot) -> Snapshot {
    s.retained.sort_by(|a, b| a.topic.cmp(&b.topic));
    s.sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    s
}

/// A snapshot as a restored broker sees it: every session is away, so a session that was
/// connected when saved starts counting down its whole expiry interval at restore.
fn restored_view(mut s: Snapshot) -> Snapshot {
    for ses in &mut s.sessions {
        if ses.expiry_left.is_none() && ses.expiry_interval != u32::MAX {
            ses.expiry_left = Some(ses.expiry_interval);
        }
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script { data, pos: 0 };
    let cfg = config(&mut s);
    let mut h = Harness {
        broker: Broker::new(cfg.clone()),
        cfg,
        now: 0,
        slots: (0..IDS.len()).map(|_| Slot::default()).collect(),
    };
    let mut actions = 0;
    while !s.done() && actions < MAX_ACTIONS {
        actions += 1;
        let op = s.u8();
        let i = (op >> 4) as usize % IDS.len();
        let id = IDS[i];
        if trace() {
            eprintln!("t={} action {} on conn {id}", h.now, op % 16);
        }
        match op % 16 {
            0 => {
                let listener = s.u8() as usize % 4; // 3 is out of range: clamped by the broker
                if !h.slots[i].open {
                    h.slots[i] = Slot {
                        open: true,
                        ..Slot::default()
                    };
                    h.broker
                        .open(id, &format!("10.0.0.{i}:5000{i}"), listener, h.now);
                }
            }
            1 => {
                let n = s.u8() as usize % 48;
                let bytes = s.bytes(n);
                if h.slots[i].open {
                    h.slots[i].raw = true;
                    h.feed(i, bytes);
                }
            }
            2..=5 => {
                if h.slots[i].open {
                    h.packet(i, &mut s);
                } else {
                    s.u8();
                }
            }
            6 | 7 => {
                let (how, amount) = (s.u8(), s.u8());
                if h.slots[i].open {
                    h.write(i, how, amount);
                }
            }
            8 => {
                let error = s.bool();
                if h.slots[i].open {
                    h.broker.lost(id, error, h.now);
                    assert!(h.broker.is_closed(id), "open after lost");
                }
            }
            9 => {
                if h.slots[i].open {
                    h.broker.release(id);
                    assert!(h.broker.is_closed(id), "open after release");
                    assert!(h.broker.output(id).is_empty(), "output after release");
                    h.slots[i] = Slot::default();
                }
            }
            10 | 11 => {
                let step = s.pick(&[
                    1, 999, 1_000, 1_500, 5_000, 15_000, 20_000, 31_000, 100_000, 3_600_000,
                ]);
                h.now += step;
                if s.bool() || h.broker.next_deadline().is_some_and(|d| d <= h.now) {
                    h.broker.tick(h.now);
                    if let Some(d) = h.broker.next_deadline() {
                        assert!(d > h.now, "deadline {d} not after now {} after tick", h.now);
                    }
                }
            }
            12 => {
                let restart = s.u8() % 4 == 0;
                h.snapshot_round_trip(restart);
            }
            13 => match s.u8() % 8 {
                0 => {
                    h.broker.shutdown(h.now);
                    for (j, &id) in IDS.iter().enumerate() {
                        if h.slots[j].open {
                            assert!(h.broker.is_closed(id), "open after shutdown");
                        }
                    }
                }
                1 => {
                    // A reload that swaps the two secured listeners' rules.
                    let mut p = h.cfg.listeners.clone();
                    p.swap(1, 2);
                    h.broker.set_policies(p.clone());
                    h.cfg.listeners = p;
                }
                _ => {
                    // Calls the network layer never makes for an id it never opened.
                    let n = s.u8() as usize % 16;
                    let bytes = s.bytes(n);
                    assert_eq!(h.broker.received(STRAY, bytes, h.now), bytes.len());
                    h.broker.written(STRAY, 0, h.now);
                    h.broker.lost(STRAY, true, h.now);
                    h.broker.release(STRAY);
                }
            },
            _ => {
                // Both writes and feeds in one go: the client acknowledges all it got.
                if h.slots[i].open {
                    h.write(i, 0, 0);
                    let version = h.slots[i].version.unwrap_or(Version::V311);
                    let pending: Vec<(u16, Out)> = h.slots[i]
                        .outstanding
                        .iter()
                        .map(|(&p, &o)| (p, o))
                        .collect();
                    let mut bytes = Vec::new();
                    for (pid, state) in pending {
                        let kind = match state {
                            Out::Qos1 => mqtt::PUBACK,
                            Out::Qos2 => mqtt::PUBREC,
                            Out::RecSent => mqtt::PUBCOMP,
                        };
                        ack(kind, pid, 0, version, &mut bytes);
                        h.slots[i].acked(kind, pid, 0);
                    }
                    if !bytes.is_empty() {
                        h.feed(i, &bytes);
                    }
                }
            }
        }
        h.settle();
    }
    // Finally the network layer writes everything and closes every connection.
    for i in 0..IDS.len() {
        if h.slots[i].open {
            h.write(i, 0, 0);
            h.broker.release(IDS[i]);
            h.slots[i] = Slot::default();
        }
    }
    h.settle();
    h.snapshot_round_trip(false);
});
