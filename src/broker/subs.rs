//! Subscriptions: a trie of topic filters, matched against a topic name level by level.

use super::trie::{Trie, ROOT};
use super::SessionId;
#[cfg(test)]
use crate::mqtt::QoS;
use crate::mqtt::SubOptions;

/// One session's subscription to one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubEntry {
    pub sid: SessionId,
    pub opts: SubOptions,
    /// MQTT 5 subscription identifier; 0 when none.
    pub id: u32,
    /// The shared subscription group (`$share/GROUP/filter`) it belongs to; 0 when none.
    pub share: u32,
}

#[derive(Default)]
pub struct Subscriptions {
    trie: Trie<Vec<SubEntry>>,
    count: usize,
}

impl Subscriptions {
    /// Adds or replaces `session`'s subscription to `filter` [MQTT-3.8.4-3]. Returns true when
    /// it replaced one.
    pub fn insert(&mut self, filter: &str, entry: SubEntry) -> bool {
        let n = self.trie.find_or_insert(filter);
        let v = self.trie.val_mut(n);
        if let Some(e) = v
            .iter_mut()
            .find(|e| e.sid == entry.sid && e.share == entry.share)
        {
            *e = entry;
            true
        } else {
            v.push(entry);
            self.count += 1;
            false
        }
    }

    /// Removes `session`'s subscription to `filter` (in shared group `share`, or 0); true when
    /// there was one.
    pub fn remove(&mut self, filter: &str, session: SessionId, share: u32) -> bool {
        let Some(n) = self.trie.find(filter) else {
            return false;
        };
        let v = self.trie.val_mut(n);
        let Some(i) = v.iter().position(|e| e.sid == session && e.share == share) else {
            return false;
        };
        v.swap_remove(i);
        self.count -= 1;
        self.trie.prune(n, |v| v.is_empty());
        true
    }

    /// The subscriptions to exactly `filter`.
    pub fn entries(&self, filter: &str) -> &[SubEntry] {
        match self.trie.find(filter) {
            Some(n) => &self.trie.node(n).val,
            None => &[],
        }
    }

    /// Number of (filter, session) subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fills `out` with every subscription whose filter matches `topic`, sorted by session so
    /// that a session's overlapping subscriptions are adjacent (the caller delivers one copy).
    /// `stack` is scratch space reused between calls.
    pub fn matches(&self, topic: &str, out: &mut Vec<SubEntry>, stack: &mut Vec<(usize, usize)>) {
        out.clear();
        stack.clear();
        // Level boundaries are found on the fly: (node, byte offset of the next level, or
        // usize::MAX once every level is consumed).
        let dollar = topic.starts_with('$');
        stack.push((ROOT, 0));
        while let Some((node, pos)) = stack.pop() {
            let t = &self.trie;
            if pos == usize::MAX {
                out.extend_from_slice(&t.node(node).val);
                // "a/#" also matches "a" [MQTT-4.7.1-2].
                if let Some(h) = t.child(node, "#") {
                    out.extend_from_slice(&t.node(h).val);
                }
                continue;
            }
            let rest = &topic[pos..];
            let (level, next) = match memchr::memchr(b'/', rest.as_bytes()) {
                Some(i) => (&rest[..i], pos + i + 1),
                None => (rest, usize::MAX),
            };
            // [MQTT-4.7.2-1]: wildcards at the first level do not match '$' topics.
            let wild = !(dollar && node == ROOT);
            if wild {
                if let Some(h) = t.child(node, "#") {
                    out.extend_from_slice(&t.node(h).val);
                }
                if let Some(p) = t.child(node, "+") {
                    stack.push((p, next));
                }
            }
            if let Some(c) = t.child(node, level) {
                stack.push((c, next));
            }
        }
        if out.len() > 1 {
            out.sort_unstable_by(|a, b| a.sid.cmp(&b.sid).then(b.opts.qos.cmp(&a.opts.qos)));
        }
    }
}

/// Reduces sorted matches to one (session, highest QoS) per session.
#[cfg(test)]
fn collapse(v: &[SubEntry]) -> Vec<(SessionId, QoS)> {
    let mut out: Vec<(SessionId, QoS)> = Vec::new();
    for e in v {
        match out.last_mut() {
            Some(l) if l.0 == e.sid => l.1 = l.1.max(e.opts.qos),
            _ => out.push((e.sid, e.opts.qos)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::topic;

    fn m(s: &Subscriptions, t: &str) -> Vec<(SessionId, QoS)> {
        let mut out = Vec::new();
        s.matches(t, &mut out, &mut Vec::new());
        collapse(&out)
    }

    fn e(sid: SessionId, qos: QoS) -> SubEntry {
        SubEntry {
            sid,
            opts: qos.into(),
            id: 0,
            share: 0,
        }
    }

    #[test]
    fn agrees_with_the_reference_matcher() {
        let filters = [
            "#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "a/+/c", "/+", "+/", "$SYS/#",
            "$SYS/+", "a//b", "+/+/+", "/#",
        ];
        let topics = [
            "a", "a/b", "a/c", "b/b", "a/b/c", "/a", "a/", "/", "$SYS/x", "$SYS", "a//b", "x/y/z",
        ];
        let mut s = Subscriptions::default();
        for (i, f) in filters.iter().enumerate() {
            s.insert(f, e(i, QoS::AtMostOnce));
        }
        for t in topics {
            let got: Vec<usize> = m(&s, t).into_iter().map(|e| e.0).collect();
            let want: Vec<usize> = (0..filters.len())
                .filter(|&i| topic::matches(filters[i], t))
                .collect();
            assert_eq!(got, want, "topic {t}");
        }
    }

    #[test]
    fn overlapping_subscriptions_give_one_entry_at_highest_qos() {
        let mut s = Subscriptions::default();
        s.insert("a/#", e(1, QoS::AtMostOnce));
        s.insert("a/b", e(1, QoS::ExactlyOnce));
        s.insert("+/b", e(1, QoS::AtLeastOnce));
        s.insert("a/b", e(2, QoS::AtLeastOnce));
        assert_eq!(
            m(&s, "a/b"),
            vec![(1, QoS::ExactlyOnce), (2, QoS::AtLeastOnce)]
        );
    }

    #[test]
    fn resubscribe_replaces_and_unsubscribe_prunes() {
        // [MQTT-3.8.4-3]
        let mut s = Subscriptions::default();
        assert!(!s.insert("a/b", e(1, QoS::AtMostOnce)));
        assert!(s.insert("a/b", e(1, QoS::ExactlyOnce)));
        assert_eq!(s.len(), 1);
        assert_eq!(m(&s, "a/b"), vec![(1, QoS::ExactlyOnce)]);
        assert!(s.remove("a/b", 1, 0));
        assert!(!s.remove("a/b", 1, 0));
        assert!(s.is_empty());
        assert_eq!(s.trie.len(), 1);
        assert!(m(&s, "a/b").is_empty());
    }

    #[test]
    fn thousands_of_levels_are_fine() {
        let mut s = Subscriptions::default();
        let deep = "x/".repeat(5000) + "#";
        s.insert(&deep, e(7, QoS::AtMostOnce));
        let t = "x/".repeat(6000) + "y";
        assert_eq!(m(&s, &t), vec![(7, QoS::AtMostOnce)]);
        assert!(s.remove(&deep, 7, 0));
    }
}
