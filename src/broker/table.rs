//! A set of `u32` ids in an open-addressing table: linear probing, 4 bytes a slot, at most 3/4
//! full, power-of-two sizes from 4 slots, backward-shift deletion (no tombstones).
//!
//! The table holds ids only. The caller hashes its key and says which id holds it (`eq`), and
//! gives the hash of any stored id (`hash_of`) for moves on growth and deletion, so a key lives
//! in one place (a trie node, a session) and is never copied into the index. An empty table
//! allocates nothing, and a table is 16 bytes in its owner: the count of ids is kept after the
//! slots, in the same allocation.

const EMPTY: u32 = u32::MAX;
const MIN_SLOTS: usize = 4;

#[derive(Default)]
pub struct Table {
    /// Empty, or a power of two of slots (ids, `EMPTY` where free) followed by the number of
    /// ids.
    slots: Box<[u32]>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn len(&self) -> usize {
        self.slots.last().map_or(0, |&n| n as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots (a power of two, or 0).
    fn cap(&self) -> usize {
        self.slots.len().saturating_sub(1)
    }

    fn set_len(&mut self, len: usize) {
        if let Some(n) = self.slots.last_mut() {
            *n = len as u32;
        }
    }

    /// The first id in `hash`'s probe run for which `eq` is true.
    pub fn get(&self, hash: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.slot_of(hash, eq).map(|i| self.slots[i])
    }

    /// The slot of the first id in `hash`'s probe run for which `eq` is true.
    fn slot_of(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let mask = self.cap() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return None,
                k if eq(k) => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `id` (below `u32::MAX`, not in the table yet), whose hash is `hash`.
    pub fn insert(&mut self, id: u32, hash: u64, hash_of: impl FnMut(u32) -> u64) {
        debug_assert!(id != EMPTY);
        if id == EMPTY {
            return;
        }
        let len = self.len() + 1;
        // Grow at a load of 3/4.
        if len * 4 > self.cap() * 3 {
            self.resize((self.cap() * 2).max(MIN_SLOTS), hash_of);
        }
        self.place(id, hash);
        self.set_len(len);
    }

    /// Removes `id`, whose hash is `hash`; false when it was not there. `hash_of` is only
    /// asked about the ids that remain.
    pub fn remove(&mut self, id: u32, hash: u64, mut hash_of: impl FnMut(u32) -> u64) -> bool {
        let Some(i) = self.slot_of(hash, |k| k == id) else {
            return false;
        };
        let mask = self.cap() - 1;
        let len = self.len() - 1;
        if len == 0 {
            self.slots = Box::default();
            return true;
        }
        self.set_len(len);
        // Backward-shift deletion: move later members of the probe run into the hole when
        // their home is not between the hole and where they are.
        self.slots[i] = EMPTY;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.slots[j] != EMPTY {
            let k = self.slots[j];
            let home = hash_of(k) as usize & mask;
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = k;
                self.slots[j] = EMPTY;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        // Shrink below a load of 1/8, to a load of at most 1/2 (so that growing again takes
        // as many inserts as there are slots left).
        if self.cap() > MIN_SLOTS && len * 8 < self.cap() {
            self.resize((len * 2).next_power_of_two().max(MIN_SLOTS), hash_of);
        }
        true
    }

    /// The ids, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots[..self.cap()]
            .iter()
            .copied()
            .filter(|&k| k != EMPTY)
    }

    fn place(&mut self, id: u32, hash: u64) {
        let mask = self.cap() - 1;
        let mut i = hash as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = id;
    }

    /// Moves the ids to `slots` slots (a power of two that holds them at a load of 3/4).
    fn resize(&mut self, slots: usize, mut hash_of: impl FnMut(u32) -> u64) {
        let len = self.len();
        let mut new = vec![EMPTY; slots + 1].into_boxed_slice();
        new[slots] = len as u32;
        let old = std::mem::replace(&mut self.slots, new);
        for k in old[..old.len().saturating_sub(1)]
            .iter()
            .copied()
            .filter(|&k| k != EMPTY)
        {
            self.place(k, hash_of(k));
        }
    }

    /// Slots allocated.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.cap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Ids stand for keys `keys[id]`; the table is checked against a `HashSet` of keys.
    #[test]
    fn agrees_with_a_hash_set() {
        let h = RandomState::new();
        let keys: Vec<u64> = (0..3000u64).map(|k| k * 7919).collect();
        let hash = |id: u32| h.hash_one(keys[id as usize]);
        let find = |t: &Table, key: u64| t.get(h.hash_one(key), |id| keys[id as usize] == key);
        let mut t = Table::new();
        let mut model: HashSet<u32> = HashSet::new();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for round in 0..200_000 {
            let id = (rng.next() % keys.len() as u64) as u32;
            // Inserts outnumber removals for a while, then removals win, so the table grows,
            // shrinks and empties.
            let insert = rng.next() % 100 < if round < 100_000 { 60 } else { 35 };
            if insert {
                if model.insert(id) {
                    assert_eq!(find(&t, keys[id as usize]), None);
                    t.insert(id, hash(id), hash);
                }
            } else {
                let had = model.remove(&id);
                assert_eq!(t.remove(id, hash(id), hash), had);
            }
            assert_eq!(find(&t, keys[id as usize]).is_some(), model.contains(&id));
            assert_eq!(t.len(), model.len());
            assert!(t.len() * 4 <= t.capacity() * 3);
            if round % 5000 == 0 {
                for k in 0..keys.len() as u32 {
                    let want = model.contains(&k).then_some(k);
                    assert_eq!(find(&t, keys[k as usize]), want);
                }
                let mut got: Vec<u32> = t.iter().collect();
                got.sort_unstable();
                let mut want: Vec<u32> = model.iter().copied().collect();
                want.sort_unstable();
                assert_eq!(got, want);
            }
        }
        for id in model.drain() {
            assert!(t.remove(id, hash(id), hash));
        }
        assert!(t.is_empty());
        assert_eq!(t.capacity(), 0);
        assert_eq!(find(&t, 0), None);
    }

    /// Every id hashing to the same slot: one long probe run, and deleting from its middle
    /// keeps the rest reachable.
    #[test]
    fn removal_keeps_the_others_findable() {
        let same = |_: u32| 5u64;
        let mut t = Table::new();
        for id in 0..40 {
            t.insert(id, 5, same);
        }
        for id in (0..40).step_by(3) {
            assert!(t.remove(id, 5, same));
            assert!(!t.remove(id, 5, same));
        }
        for id in 0..40 {
            assert_eq!(t.get(5, |k| k == id).is_some(), id % 3 != 0, "{id}");
        }
        // Neighbouring homes: removing one run's member must not strand the other's.
        let home = |id: u32| u64::from(id % 2);
        let mut t = Table::new();
        for id in 0..6 {
            t.insert(id, home(id), home);
        }
        assert!(t.remove(0, 0, home));
        for id in 1..6 {
            assert_eq!(t.get(home(id), |k| k == id), Some(id));
        }
    }

    /// 100,000 ids in one table: insert, look up and remove stay cheap (a quadratic table
    /// would take minutes here), and the table shrinks as it empties.
    #[test]
    fn wide() {
        let h = RandomState::new();
        let n = 100_000u32;
        let hash = |id: u32| h.hash_one(id);
        let mut t = Table::new();
        for id in 0..n {
            t.insert(id, hash(id), hash);
        }
        assert_eq!(t.len(), n as usize);
        assert_eq!(t.capacity(), 262_144);
        for id in 0..n {
            assert_eq!(t.get(hash(id), |k| k == id), Some(id));
        }
        assert_eq!(t.get(hash(n), |k| k == n), None);
        for id in 0..n - 10 {
            assert!(t.remove(id, hash(id), hash));
        }
        assert_eq!(t.len(), 10);
        assert_eq!(t.capacity(), 64);
        for id in n - 10..n {
            assert_eq!(t.get(hash(id), |k| k == id), Some(id));
        }
    }
}
