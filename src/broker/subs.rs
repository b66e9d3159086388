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

impl SubEntry {
    /// The Subscription Identifiers a delivery through this subscription carries: its own, if
    /// it has one.
    pub fn sub_ids(&self) -> Box<[u32]> {
        if self.id != 0 {
            Box::new([self.id])
        } else {
            Box::default()
        }
    }
}

/// A `SubEntry` as stored: 16 bytes rather than 24 (session slab keys fit in 32 bits).
#[derive(Clone, Copy)]
struct Stored {
    sid: u32,
    opts: SubOptions,
    id: u32,
    share: u32,
}

impl Stored {
    fn entry(self) -> SubEntry {
        SubEntry {
            sid: self.sid as SessionId,
            opts: self.opts,
            id: self.id,
            share: self.share,
        }
    }
}

/// The subscriptions to one filter. Most filters have a single subscriber, kept in place
/// (the whole list is 24 bytes); more go to a vector.
#[derive(Default)]
enum List {
    #[default]
    Empty,
    One(Stored),
    Many(Vec<Stored>),
}

impl List {
    fn as_slice(&self) -> &[Stored] {
        match self {
            List::Empty => &[],
            List::One(e) => std::slice::from_ref(e),
            List::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Stored] {
        match self {
            List::Empty => &mut [],
            List::One(e) => std::slice::from_mut(e),
            List::Many(v) => v,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, List::Empty)
    }

    fn push(&mut self, e: Stored) {
        match self {
            List::Empty => *self = List::One(e),
            List::One(a) => *self = List::Many(vec![*a, e]),
            List::Many(v) => v.push(e),
        }
    }

    fn swap_remove(&mut self, i: usize) {
        match self {
            List::Empty => {}
            List::One(_) => *self = List::Empty,
            List::Many(v) => {
                v.swap_remove(i);
                match v.len() {
                    0 => *self = List::Empty,
                    1 => *self = List::One(v[0]),
                    n if n * 4 < v.capacity() => v.shrink_to(n * 2),
                    _ => {}
                }
            }
        }
    }
}

#[derive(Default)]
pub struct Subscriptions {
    trie: Trie<List>,
    count: usize,
}

impl Subscriptions {
    /// Adds or replaces `session`'s subscription to `filter` [MQTT-3.8.4-3]. Returns true when
    /// it replaced one.
    pub fn insert(&mut self, filter: &str, entry: SubEntry) -> bool {
        let e = Stored {
            // Session ids are slab keys, far below 2^32.
            sid: entry.sid as u32,
            opts: entry.opts,
            id: entry.id,
            share: entry.share,
        };
        let n = self.trie.find_or_insert(filter);
        let v = self.trie.val_mut(n);
        if let Some(old) = v
            .as_mut_slice()
            .iter_mut()
            .find(|o| o.sid == e.sid && o.share == e.share)
        {
            *old = e;
            true
        } else {
            v.push(e);
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
        let Some(i) = v
            .as_slice()
            .iter()
            .position(|e| e.sid as SessionId == session && e.share == share)
        else {
            return false;
        };
        v.swap_remove(i);
        self.count -= 1;
        self.trie.prune(n, |v| v.is_empty());
        true
    }

    /// The subscriptions to exactly `filter`.
    pub fn entries(&self, filter: &str) -> Vec<SubEntry> {
        match self.trie.find(filter) {
            Some(n) => self.entries_at(n).collect(),
            None => Vec::new(),
        }
    }

    fn entries_at(&self, n: usize) -> impl Iterator<Item = SubEntry> + '_ {
        self.trie.node(n).val.as_slice().iter().map(|e| e.entry())
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
                out.extend(self.entries_at(node));
                // "a/#" also matches "a" [MQTT-4.7.1-2].
                if let Some(h) = t.child(node, "#") {
                    out.extend(self.entries_at(h));
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
            let [exact, plus, hash] = if wild {
                t.children3(node, level)
            } else {
                [t.child(node, level), None, None]
            };
            if let Some(h) = hash {
                out.extend(self.entries_at(h));
            }
            if let Some(p) = plus {
                stack.push((p, next));
            }
            if let Some(c) = exact {
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
    fn one_or_many_subscribers_to_a_filter() {
        let mut s = Subscriptions::default();
        let sids = |s: &Subscriptions| {
            let mut v: Vec<SessionId> = s.entries("a/b").iter().map(|e| e.sid).collect();
            v.sort_unstable();
            v
        };
        for sid in 1..=5 {
            assert!(!s.insert("a/b", e(sid, QoS::AtMostOnce)));
        }
        assert!(s.insert("a/b", e(3, QoS::AtLeastOnce)));
        assert_eq!(sids(&s), vec![1, 2, 3, 4, 5]);
        assert!(s.entries("a/b").contains(&e(3, QoS::AtLeastOnce)));
        for (gone, left) in [
            (2, vec![1, 3, 4, 5]),
            (5, vec![1, 3, 4]),
            (1, vec![3, 4]),
            (4, vec![3]),
        ] {
            assert!(s.remove("a/b", gone, 0));
            assert!(!s.remove("a/b", gone, 0));
            assert_eq!(sids(&s), left);
            assert_eq!(m(&s, "a/b").len(), left.len());
        }
        assert!(!s.insert("a/b", e(6, QoS::ExactlyOnce)));
        assert_eq!(
            m(&s, "a/b"),
            vec![(3, QoS::AtLeastOnce), (6, QoS::ExactlyOnce)]
        );
        assert!(s.remove("a/b", 3, 0));
        assert!(s.remove("a/b", 6, 0));
        assert!(s.is_empty());
        assert_eq!(s.trie.len(), 1);
        assert!(s.entries("a/b").is_empty());
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
