//! Retained messages: one per topic, in a trie of topic names matched against a filter.

use super::trie::{Trie, ROOT};
use super::Msg;

#[derive(Default)]
pub struct Retained {
    trie: Trie<Option<Msg>>,
    count: usize,
    bytes: usize,
}

impl Retained {
    /// Stores `msg` as the retained message of its topic, replacing the previous one; an empty
    /// payload deletes it instead [MQTT-3.3.1-10] [MQTT-3.3.1-11].
    pub fn set(&mut self, msg: &Msg) {
        if msg.payload.is_empty() {
            self.remove(&msg.topic);
            return;
        }
        let n = self.trie.find_or_insert(&msg.topic);
        let slot = self.trie.val_mut(n);
        if let Some(old) = slot.replace(msg.clone()) {
            self.bytes -= old.payload.len();
        } else {
            self.count += 1;
        }
        self.bytes += msg.payload.len();
    }

    pub fn remove(&mut self, topic: &str) {
        let Some(n) = self.trie.find(topic) else {
            return;
        };
        if let Some(old) = self.trie.val_mut(n).take() {
            self.count -= 1;
            self.bytes -= old.payload.len();
        }
        self.trie.prune(n, |v| v.is_none());
    }

    pub fn get(&self, topic: &str) -> Option<&Msg> {
        self.trie
            .find(topic)
            .and_then(|n| self.trie.node(n).val.as_ref())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Calls `f` for every retained message, without recursion.
    pub fn for_each(&self, mut f: impl FnMut(&Msg)) {
        let mut stack = vec![ROOT];
        while let Some(n) = stack.pop() {
            if let Some(m) = &self.trie.node(n).val {
                f(m);
            }
            stack.extend(self.trie.children(n));
        }
    }

    /// Every retained message whose topic matches the valid `filter`, appended to `out`.
    pub fn matching(&self, filter: &str, out: &mut Vec<Msg>) {
        let levels: Vec<&str> = filter.split('/').collect();
        let t = &self.trie;
        let mut stack = vec![(ROOT, 0usize)];
        while let Some((node, i)) = stack.pop() {
            let Some(&level) = levels.get(i) else {
                out.extend(t.node(node).val.iter().cloned());
                continue;
            };
            match level {
                "#" => {
                    // This level and everything below it ("a/#" matches "a" too).
                    if node != ROOT {
                        out.extend(t.node(node).val.iter().cloned());
                    }
                    let mut sub: Vec<usize> = t
                        .children(node)
                        // [MQTT-4.7.2-1]
                        .filter(|&c| !(node == ROOT && t.key(c).starts_with(b"$")))
                        .collect();
                    while let Some(n) = sub.pop() {
                        out.extend(t.node(n).val.iter().cloned());
                        sub.extend(t.children(n));
                    }
                }
                "+" => {
                    for c in t.children(node) {
                        if !(node == ROOT && t.key(c).starts_with(b"$")) {
                            stack.push((c, i + 1));
                        }
                    }
                }
                _ => {
                    if let Some(c) = t.child(node, level) {
                        stack.push((c, i + 1));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Message;
    use crate::mqtt::{topic, QoS};
    use std::rc::Rc;

    fn msg(t: &str, p: &str) -> Msg {
        Rc::new(Message::new(t, p.as_bytes(), QoS::AtMostOnce, true))
    }

    #[test]
    fn set_replace_delete() {
        let mut r = Retained::default();
        r.set(&msg("home/lights/sitting_room", "ON"));
        r.set(&msg("home/lights/sitting_room", "OFF"));
        assert_eq!(r.len(), 1);
        assert_eq!(&*r.get("home/lights/sitting_room").unwrap().payload, b"OFF");
        assert_eq!(r.bytes(), 3);
        r.set(&msg("home/lights/sitting_room", ""));
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
        assert!(r.get("home/lights/sitting_room").is_none());
    }

    #[test]
    fn matching_agrees_with_the_reference_matcher() {
        let topics = [
            "a", "a/b", "a/c", "b/b", "a/b/c", "/a", "a/", "/", "$SYS/x", "$SYS", "a//b", "x/y/z",
        ];
        let filters = [
            "#", "+", "a", "a/b", "a/+", "a/#", "+/b", "+/+", "a/+/c", "/+", "+/", "$SYS/#",
            "$SYS/+", "a//b", "+/+/+", "/#", "$SYS",
        ];
        let mut r = Retained::default();
        for t in topics {
            r.set(&msg(t, t));
        }
        for f in filters {
            let mut out = Vec::new();
            r.matching(f, &mut out);
            let mut got: Vec<&str> = out.iter().map(|m| &*m.topic).collect();
            got.sort();
            let mut want: Vec<&str> = topics
                .iter()
                .copied()
                .filter(|t| topic::matches(f, t))
                .collect();
            want.sort();
            assert_eq!(got, want, "filter {f}");
        }
    }
}
