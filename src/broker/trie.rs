//! A topic-level trie kept in an arena, so that walking, inserting and pruning are loops, never
//! recursion: a filter of 65,535 one-character levels cannot overflow the stack.
//!
//! A node costs 40 bytes plus its value: its level's name (up to 19 bytes in place, longer ones
//! in a side slab), its parent, and its children as a table of node ids (4 bytes a slot, nothing
//! when it has none) hashed by the children's names, which are stored only in the children.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use slab::Slab;

use super::table::Table;

pub const ROOT: usize = 0;

/// Longest level name kept in the node itself (it fills what alignment would leave unused).
const INLINE: usize = 19;
/// Children of a node looked up by comparing their names, not by hash, when it has no more.
const SCAN_MAX: usize = 4;
/// `Key::len` of a name kept in `Trie::long`; `Key::bytes[..4]` is its index there.
const LONG: u8 = u8::MAX;

/// A level's name: in place when it is short, else an index into `Trie::long`.
#[derive(Clone, Copy)]
struct Key {
    len: u8,
    bytes: [u8; INLINE],
}

pub struct Node<V> {
    children: Table,
    parent: u32,
    key: Key,
    pub val: V,
}

pub struct Trie<V> {
    nodes: Slab<Node<V>>,
    /// Level names longer than `INLINE` bytes.
    long: Slab<Box<[u8]>>,
    /// Randomly keyed (SipHash), so that clients cannot choose levels that all collide.
    hasher: RandomState,
    /// The hashes of the wildcard levels, looked up at every level of every match.
    hash_plus: u64,
    hash_hash: u64,
}

impl<V: Default> Default for Trie<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// The hash children are placed by.
fn hash(hasher: &RandomState, level: &[u8]) -> u64 {
    hasher.hash_one(level)
}

fn name<'a>(long: &'a Slab<Box<[u8]>>, key: &'a Key) -> &'a [u8] {
    if key.len == LONG {
        let b = &key.bytes;
        let i = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        long.get(i).map_or(&[], |k| &k[..])
    } else {
        &key.bytes[..key.len as usize]
    }
}

impl<V: Default> Trie<V> {
    pub fn new() -> Self {
        let mut nodes = Slab::new();
        nodes.insert(Node {
            children: Table::new(),
            parent: ROOT as u32,
            key: Key {
                len: 0,
                bytes: [0; INLINE],
            },
            val: V::default(),
        });
        let hasher = RandomState::new();
        Trie {
            nodes,
            long: Slab::new(),
            hash_plus: hash(&hasher, b"+"),
            hash_hash: hash(&hasher, b"#"),
            hasher,
        }
    }

    pub fn node(&self, id: usize) -> &Node<V> {
        &self.nodes[id]
    }

    pub fn val_mut(&mut self, id: usize) -> &mut V {
        &mut self.nodes[id].val
    }

    /// The name of node `id`'s level.
    pub fn key(&self, id: usize) -> &[u8] {
        name(&self.long, &self.nodes[id].key)
    }

    /// Node `id`'s children, in no particular order.
    pub fn children(&self, id: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes[id].children.iter().map(|c| c as usize)
    }

    fn hash(&self, level: &[u8]) -> u64 {
        match level {
            b"+" => self.hash_plus,
            b"#" => self.hash_hash,
            _ => hash(&self.hasher, level),
        }
    }

    pub fn child(&self, id: usize, level: &str) -> Option<usize> {
        let table = &self.nodes[id].children;
        if table.is_empty() {
            return None;
        }
        let level = level.as_bytes();
        let named = |c: u32| {
            self.nodes
                .get(c as usize)
                .is_some_and(|n| name(&self.long, &n.key) == level)
        };
        // Most nodes have a child or two: comparing their names costs less than hashing the
        // level (SipHash was a tenth of the broker's time routing small messages).
        if table.len() <= SCAN_MAX {
            return table.iter().find(|&c| named(c)).map(|c| c as usize);
        }
        table.get(self.hash(level), named).map(|c| c as usize)
    }

    /// The children of `id` named `level`, `+` and `#`, as three `child` calls would find
    /// them, with one look at each child of a node that has few.
    pub fn children3(&self, id: usize, level: &str) -> [Option<usize>; 3] {
        let Some(node) = self.nodes.get(id) else {
            return [None; 3];
        };
        let table = &node.children;
        if table.is_empty() {
            return [None; 3];
        }
        if table.len() > SCAN_MAX {
            return [
                self.child(id, level),
                self.child(id, "+"),
                self.child(id, "#"),
            ];
        }
        let mut found = [None; 3];
        for c in table.iter() {
            let Some(n) = self.nodes.get(c as usize) else {
                continue;
            };
            let name = name(&self.long, &n.key);
            for (slot, want) in found.iter_mut().zip([level.as_bytes(), b"+", b"#"]) {
                if name == want {
                    *slot = Some(c as usize);
                }
            }
        }
        found
    }

    /// The node for `path` (split on '/'), if it exists.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut n = ROOT;
        for level in path.split('/') {
            n = self.child(n, level)?;
        }
        Some(n)
    }

    /// The node for `path`, created with its ancestors as needed.
    pub fn find_or_insert(&mut self, path: &str) -> usize {
        let mut n = ROOT;
        for level in path.split('/') {
            n = match self.child(n, level) {
                Some(c) => c,
                None => self.add_child(n, level.as_bytes()),
            };
        }
        n
    }

    fn add_child(&mut self, parent: usize, level: &[u8]) -> usize {
        let mut key = Key {
            len: level.len() as u8,
            bytes: [0; INLINE],
        };
        if level.len() <= INLINE {
            key.bytes[..level.len()].copy_from_slice(level);
        } else {
            let i = self.long.insert(level.into()) as u32;
            key.len = LONG;
            key.bytes[..4].copy_from_slice(&i.to_le_bytes());
        }
        let c = self.nodes.insert(Node {
            children: Table::new(),
            parent: parent as u32,
            key,
            val: V::default(),
        });
        let h = self.hash(level);
        // The parent's table is taken out while it may rehash its other children's names.
        let mut table = std::mem::take(&mut self.nodes[parent].children);
        table.insert(c as u32, h, |k| {
            hash(&self.hasher, name(&self.long, &self.nodes[k as usize].key))
        });
        self.nodes[parent].children = table;
        c
    }

    /// Removes `id` and its ancestors while they hold no children and an empty value.
    pub fn prune(&mut self, mut id: usize, is_empty: impl Fn(&V) -> bool) {
        while id != ROOT {
            let node = &self.nodes[id];
            if !node.children.is_empty() || !is_empty(&node.val) {
                return;
            }
            let node = self.nodes.remove(id);
            let parent = node.parent as usize;
            let h = hash(&self.hasher, name(&self.long, &node.key));
            if node.key.len == LONG {
                let b = &node.key.bytes;
                self.long
                    .try_remove(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            }
            let mut table = std::mem::take(&mut self.nodes[parent].children);
            table.remove(id as u32, h, |k| {
                hash(&self.hasher, name(&self.long, &self.nodes[k as usize].key))
            });
            self.nodes[parent].children = table;
            id = parent;
        }
    }

    /// Number of nodes, the root included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_prune() {
        let mut t: Trie<u32> = Trie::new();
        let a = t.find_or_insert("a/b/c");
        *t.val_mut(a) = 1;
        assert_eq!(t.find("a/b/c"), Some(a));
        assert_eq!(t.find("a/b/d"), None);
        assert_eq!(t.len(), 4);
        *t.val_mut(a) = 0;
        t.prune(a, |v| *v == 0);
        assert_eq!(t.len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn children3_finds_what_three_child_lookups_find() {
        let mut t: Trie<u32> = Trie::new();
        // Nodes with 1, 3 and SCAN_MAX children are scanned, with 5 and 12 looked up by hash.
        let sets: [&[&str]; 5] = [
            &["x"],
            &["+", "x", "#"],
            &["a", "+", "b", "#"],
            &["a", "b", "+", "x", "#"],
            &[
                "1",
                "2",
                "3",
                "4",
                "5",
                "6",
                "7",
                "8",
                "9",
                "+",
                "#",
                "a-much-longer-level-name",
            ],
        ];
        for (i, set) in sets.iter().enumerate() {
            for k in *set {
                t.find_or_insert(&format!("n{i}/{k}"));
            }
            let n = t.find(&format!("n{i}")).unwrap();
            for level in [
                "x",
                "a",
                "b",
                "y",
                "5",
                "a-much-longer-level-name",
                "+",
                "#",
                "",
            ] {
                let three = [t.child(n, level), t.child(n, "+"), t.child(n, "#")];
                assert_eq!(t.children3(n, level), three, "n{i} {level}");
            }
        }
        let leaf = t.find("n0/x").unwrap();
        assert_eq!(t.children3(leaf, "x"), [None; 3]);
    }

    #[test]
    fn short_long_and_wildcard_names() {
        let mut t: Trie<u32> = Trie::new();
        let names: Vec<String> = (0..40)
            .map(|n| "x".repeat(n))
            .chain(["+", "#", "$SYS", "é", "0123456789abcdefgé"].map(String::from))
            .collect();
        let ids: Vec<usize> = names
            .iter()
            .map(|k| t.find_or_insert(&format!("a/{k}/b")))
            .collect();
        for (k, &id) in names.iter().zip(&ids) {
            *t.val_mut(id) = 1;
            assert_eq!(t.find(&format!("a/{k}/b")), Some(id), "{k}");
            let level = t.node(id).parent as usize;
            assert_eq!(t.key(level), k.as_bytes());
            assert_eq!(t.child(level, "b"), Some(id));
        }
        let a = t.find("a").unwrap();
        assert_eq!(t.children(a).count(), names.len());
        assert!(!t.long.is_empty());
        for &id in &ids {
            *t.val_mut(id) = 0;
            t.prune(id, |v| *v == 0);
        }
        assert!(t.is_empty());
        assert!(t.long.is_empty());
    }

    /// 100,000 children under one node: a quadratic table would take minutes here.
    #[test]
    fn wide_levels_stay_cheap() {
        let mut t: Trie<u32> = Trie::new();
        let n = 100_000;
        for i in 0..n {
            let id = t.find_or_insert(&format!("w/{i}"));
            *t.val_mut(id) = 1;
        }
        let w = t.find("w").unwrap();
        assert_eq!(t.children(w).count(), n);
        for i in (0..n).step_by(2) {
            let id = t.find(&format!("w/{i}")).unwrap();
            *t.val_mut(id) = 0;
            t.prune(id, |v| *v == 0);
        }
        for i in 0..n {
            assert_eq!(t.find(&format!("w/{i}")).is_some(), i % 2 == 1, "{i}");
        }
        for i in (1..n).step_by(2) {
            let id = t.find(&format!("w/{i}")).unwrap();
            *t.val_mut(id) = 0;
            t.prune(id, |v| *v == 0);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn nodes_are_small() {
        // Children (a boxed slice: two words), parent 4, name 20; then the value. 40 and 48
        // bytes on 64-bit targets, 32 and 36 on the Pi Zero's 32-bit ARM.
        let word = std::mem::size_of::<usize>();
        assert_eq!(std::mem::size_of::<Node<()>>(), 2 * word + 24);
        assert_eq!(
            std::mem::size_of::<Node<Option<std::rc::Rc<u8>>>>(),
            2 * word + 24 + word
        );
    }

    #[test]
    fn very_deep_paths_do_not_recurse() {
        let mut t: Trie<u32> = Trie::new();
        let deep = "/".repeat(65_534);
        let n = t.find_or_insert(&deep);
        assert_eq!(t.len(), 65_536);
        t.prune(n, |v| *v == 0);
        assert_eq!(t.len(), 1);
    }
}
