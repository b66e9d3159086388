//! Sessions by client id: an open-addressing table of slab keys, 4 bytes a slot, that compares
//! against the sessions' own client ids, so that no client id is stored twice. A `HashMap` from
//! a copy of every client id to its session cost about 70 bytes a session; this costs 5 to 11.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use slab::Slab;

use super::session::Session;
use super::SessionId;

const EMPTY: u32 = u32::MAX;

pub struct IdIndex {
    /// Slab keys of sessions, `EMPTY` where free; linear probing from the client id's hash.
    slots: Vec<u32>,
    len: usize,
    /// Randomly keyed (SipHash), so that clients cannot choose ids that all collide.
    hasher: RandomState,
}

impl IdIndex {
    pub fn new() -> IdIndex {
        IdIndex {
            slots: Vec::new(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    fn home(&self, id: &str) -> usize {
        // `slots.len()` is a power of two whenever this is called.
        (self.hasher.hash_one(id) as usize) & (self.slots.len() - 1)
    }

    /// The session whose client id is `id`.
    pub fn get(&self, id: &str, sessions: &Slab<Session>) -> Option<SessionId> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                k => {
                    if sessions
                        .get(k as usize)
                        .is_some_and(|s| *s.client_id == *id)
                    {
                        return Some(k as usize);
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds session `sid`, which is in `sessions` and whose client id is not in the index yet.
    pub fn insert(&mut self, sid: SessionId, sessions: &Slab<Session>) {
        let Some(s) = sessions.get(sid) else {
            return;
        };
        // Grow at a load of 3/4.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(sessions);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(&s.client_id);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = sid as u32;
        self.len += 1;
    }

    fn grow(&mut self, sessions: &Slab<Session>) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![EMPTY; (old.len() * 2).max(16)];
        let mask = self.slots.len() - 1;
        for k in old.into_iter().filter(|&k| k != EMPTY) {
            let Some(s) = sessions.get(k as usize) else {
                self.len -= 1;
                continue;
            };
            let mut i = self.home(&s.client_id);
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = k;
        }
    }

    /// Removes session `sid`, whose client id is `id` (it may already be gone from `sessions`;
    /// every other indexed session must still be there).
    pub fn remove(&mut self, id: &str, sid: SessionId, sessions: &Slab<Session>) {
        if self.len == 0 {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match self.slots[i] {
                EMPTY => return,
                k if k as usize == sid => break,
                _ => i = (i + 1) & mask,
            }
        }
        // Backward-shift deletion: move later members of the probe run into the hole when
        // their home is not between the hole and where they are.
        self.slots[i] = EMPTY;
        self.len -= 1;
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while self.slots[j] != EMPTY {
            let k = self.slots[j];
            let home = match sessions.get(k as usize) {
                Some(s) => self.home(&s.client_id),
                None => j,
            };
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = k;
                self.slots[j] = EMPTY;
                hole = j;
            }
            j = (j + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts, looks up and removes many ids in a scrambled order, checking the index against
    /// the slab after every step.
    #[test]
    fn index_matches_the_sessions() {
        let mut sessions = Slab::new();
        let mut idx = IdIndex::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<(String, SessionId)> = Vec::new();
        for round in 0..20_000 {
            if live.is_empty() || next() % 3 != 0 {
                let id = format!("c{}", next() % 5000);
                if idx.get(&id, &sessions).is_some() {
                    continue;
                }
                let sid = sessions.insert(Session::new(id.as_str().into()));
                idx.insert(sid, &sessions);
                live.push((id, sid));
            } else {
                let (id, sid) = live.swap_remove((next() as usize) % live.len());
                sessions.remove(sid);
                idx.remove(&id, sid, &sessions);
                assert_eq!(idx.get(&id, &sessions), None);
            }
            if round % 1000 == 0 {
                for (id, sid) in &live {
                    assert_eq!(idx.get(id, &sessions), Some(*sid), "{id}");
                }
            }
            assert_eq!(idx.len(), live.len());
        }
        for (id, sid) in &live {
            assert_eq!(idx.get(id, &sessions), Some(*sid));
        }
        assert_eq!(idx.get("absent", &sessions), None);
    }
}
