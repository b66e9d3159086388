//! `$SYS/broker/...`: mosquitto's statistics topics, with its names and value formats, so
//! that dashboards reading them work unchanged. Published retained every `sys_interval`
//! seconds, each topic only when its value changed.

use std::collections::HashMap;
use std::rc::Rc;

use super::{Broker, Message, Millis, State};
use crate::mqtt::QoS;

/// Exponentially decayed per-minute rates, as mosquitto computes its load figures.
#[derive(Default)]
struct Load {
    /// Per-minute averages over 1, 5 and 15 minutes.
    avg: [f64; 3],
    last_total: u64,
}

impl Load {
    fn update(&mut self, total: u64, elapsed_s: f64) {
        if elapsed_s <= 0.0 {
            return;
        }
        let per_min = (total.saturating_sub(self.last_total)) as f64 * 60.0 / elapsed_s;
        self.last_total = total;
        for (i, window) in [60.0, 300.0, 900.0].iter().enumerate() {
            let e = (-elapsed_s / window).exp();
            self.avg[i] = per_min + e * (self.avg[i] - per_min);
        }
    }
}

#[derive(Default)]
pub struct SysState {
    started: bool,
    next: Millis,
    last: Millis,
    /// The value last published per topic.
    published: HashMap<String, String>,
    loads: [Load; 8],
}

const LOADS: [&str; 8] = [
    "$SYS/broker/load/messages/received/",
    "$SYS/broker/load/messages/sent/",
    "$SYS/broker/load/publish/received/",
    "$SYS/broker/load/publish/sent/",
    "$SYS/broker/load/bytes/received/",
    "$SYS/broker/load/bytes/sent/",
    "$SYS/broker/load/connections/",
    "$SYS/broker/load/publish/dropped/",
];

impl Broker {
    /// When `$SYS` is next due.
    pub fn sys_due(&self) -> Option<Millis> {
        (self.cfg.sys_interval > 0).then_some(self.sys.next)
    }

    pub(super) fn sys_tick(&mut self, now: Millis) {
        let interval = self.cfg.sys_interval as Millis * 1000;
        if interval == 0 || now < self.sys.next {
            return;
        }
        if !self.sys.started {
            self.sys.started = true;
            self.sys.last = now;
        }
        self.sys.next = now + interval;
        let elapsed = (now - self.sys.last) as f64 / 1000.0;
        self.sys.last = now;
        let st = self.stats.clone();
        let connected = self
            .conns
            .iter()
            .flatten()
            .filter(|c| c.state == State::Connected)
            .count() as u64;
        let total = self.sessions.len() as u64;
        let disconnected = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn.is_none())
            .count() as u64;
        self.stats.max_connected = self.stats.max_connected.max(connected);
        let (store_count, store_bytes) = self.store_figures();
        let totals = [
            st.pkts_received,
            st.pkts_sent,
            st.msgs_received,
            st.msgs_sent,
            st.bytes_received,
            st.bytes_sent,
            st.connections_total,
            st.msgs_dropped,
        ];
        let mut values: Vec<(&'static str, String)> = vec![
            (
                "$SYS/broker/version",
                format!("midge version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("$SYS/broker/uptime", format!("{} seconds", now / 1000)),
            ("$SYS/broker/clients/total", total.to_string()),
            ("$SYS/broker/clients/connected", connected.to_string()),
            ("$SYS/broker/clients/active", connected.to_string()),
            ("$SYS/broker/clients/disconnected", disconnected.to_string()),
            ("$SYS/broker/clients/inactive", disconnected.to_string()),
            (
                "$SYS/broker/clients/maximum",
                self.stats.max_connected.to_string(),
            ),
            ("$SYS/broker/clients/expired", st.expired.to_string()),
            (
                "$SYS/broker/messages/received",
                st.pkts_received.to_string(),
            ),
            ("$SYS/broker/messages/sent", st.pkts_sent.to_string()),
            ("$SYS/broker/messages/stored", store_count.to_string()),
            (
                "$SYS/broker/publish/messages/received",
                st.msgs_received.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/sent",
                st.msgs_sent.to_string(),
            ),
            (
                "$SYS/broker/publish/messages/dropped",
                st.msgs_dropped.to_string(),
            ),
            (
                "$SYS/broker/publish/bytes/received",
                st.publish_bytes_received.to_string(),
            ),
            (
                "$SYS/broker/publish/bytes/sent",
                st.publish_bytes_sent.to_string(),
            ),
            ("$SYS/broker/bytes/received", st.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent", st.bytes_sent.to_string()),
            (
                "$SYS/broker/retained messages/count",
                self.retained.len().to_string(),
            ),
            (
                "$SYS/broker/subscriptions/count",
                self.subs.len().to_string(),
            ),
            ("$SYS/broker/store/messages/count", store_count.to_string()),
            ("$SYS/broker/store/messages/bytes", store_bytes.to_string()),
        ];
        if self.heap.0 > 0 {
            values.push(("$SYS/broker/heap/current", self.heap.0.to_string()));
            values.push(("$SYS/broker/heap/maximum", self.heap.1.to_string()));
        }
        for (i, total) in totals.iter().enumerate() {
            self.sys.loads[i].update(*total, elapsed);
        }
        const WINDOWS: [&str; 3] = ["1min", "5min", "15min"];
        let mut load_values = Vec::new();
        for (i, prefix) in LOADS.iter().enumerate() {
            for (w, name) in WINDOWS.iter().enumerate() {
                load_values.push((
                    format!("{prefix}{name}"),
                    format!("{:.2}", self.sys.loads[i].avg[w]),
                ));
            }
        }
        let all = values
            .into_iter()
            .map(|(t, v)| (t.to_string(), v))
            .chain(load_values);
        for (topic, value) in all {
            if self.sys.published.get(&topic) != Some(&value) {
                self.sys_publish(&topic, &value);
                self.sys.published.insert(topic, value);
            }
        }
    }

    /// Messages held: retained plus queued and in flight for sessions (each counted once per
    /// holder, as mosquitto's store counts references), and their payload bytes.
    fn store_figures(&self) -> (u64, u64) {
        let mut count = self.retained.len() as u64;
        let mut bytes = self.retained.bytes() as u64;
        for (_, s) in self.sessions.iter() {
            count += (s.flow.queue.len() + s.flow.inflight.len()) as u64;
            bytes += (s.flow.queued_bytes + s.flow.inflight_bytes) as u64;
        }
        (count, bytes)
    }

    fn sys_publish(&mut self, topic: &str, value: &str) {
        let msg = Rc::new(Message::new(topic, value.as_bytes(), QoS::AtMostOnce, true));
        self.publish(msg, None);
    }
}

/// Counters for logs and $SYS.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// PUBLISH packets received from clients and sent to them; messages dropped.
    pub msgs_received: u64,
    pub msgs_sent: u64,
    pub msgs_dropped: u64,
    pub connections_total: u64,
    /// All packets and bytes, both ways.
    pub pkts_received: u64,
    pub pkts_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub publish_bytes_received: u64,
    pub publish_bytes_sent: u64,
    /// Sessions removed because they expired.
    pub expired: u64,
    /// Most clients connected at once.
    pub max_connected: u64,
    /// Changes worth saving: retained messages set, subscriptions made or removed, messages
    /// queued for sessions.
    pub changes: u64,
}
