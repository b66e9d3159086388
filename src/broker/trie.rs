//! A topic-level trie kept in an arena, so that walking, inserting and pruning are loops, never
//! recursion: a filter of 65,535 one-character levels cannot overflow the stack.

use std::collections::HashMap;

use slab::Slab;

pub const ROOT: usize = 0;

pub struct Node<V> {
    parent: usize,
    key: Box<str>,
    children: HashMap<Box<str>, usize>,
    pub val: V,
}

impl<V> Node<V> {
    pub fn children(&self) -> impl Iterator<Item = (&str, usize)> {
        self.children.iter().map(|(k, &v)| (&**k, v))
    }
}

pub struct Trie<V> {
    nodes: Slab<Node<V>>,
}

impl<V: Default> Default for Trie<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Default> Trie<V> {
    pub fn new() -> Self {
        let mut nodes = Slab::new();
        nodes.insert(Node {
            parent: ROOT,
            key: "".into(),
            children: HashMap::new(),
            val: V::default(),
        });
        Trie { nodes }
    }

    pub fn node(&self, id: usize) -> &Node<V> {
        &self.nodes[id]
    }

    pub fn val_mut(&mut self, id: usize) -> &mut V {
        &mut self.nodes[id].val
    }

    pub fn child(&self, id: usize, key: &str) -> Option<usize> {
        self.nodes[id].children.get(key).copied()
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
                None => {
                    let c = self.nodes.insert(Node {
                        parent: n,
                        key: level.into(),
                        children: HashMap::new(),
                        val: V::default(),
                    });
                    self.nodes[n].children.insert(level.into(), c);
                    c
                }
            };
        }
        n
    }

    /// Removes `id` and its ancestors while they hold no children and an empty value.
    pub fn prune(&mut self, mut id: usize, is_empty: impl Fn(&V) -> bool) {
        while id != ROOT {
            let node = &self.nodes[id];
            if !node.children.is_empty() || !is_empty(&node.val) {
                return;
            }
            let node = self.nodes.remove(id);
            self.nodes[node.parent].children.remove(&node.key);
            id = node.parent;
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
    fn very_deep_paths_do_not_recurse() {
        let mut t: Trie<u32> = Trie::new();
        let deep = "/".repeat(65_534);
        let n = t.find_or_insert(&deep);
        assert_eq!(t.len(), 65_536);
        t.prune(n, |v| *v == 0);
        assert_eq!(t.len(), 1);
    }
}
