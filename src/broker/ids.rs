//! Sessions by client id: an open-addressing table of slab keys, 4 bytes a slot, that compares
//! against the sessions' own client ids, so that no client id is stored twice. A `HashMap` from
//! a copy of every client id to its session cost about 70 bytes a session; this costs 5 to 11.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use slab::Slab;

use super::session::Session;
use super::table::Table;
use super::SessionId;

pub struct IdIndex {
    /// Slab keys of sessions, probed from the client id's hash.
    table: Table,
    /// Randomly keyed (SipHash), so that clients cannot choose ids that all collide.
    hasher: RandomState,
}

impl IdIndex {
    pub fn new() -> IdIndex {
        IdIndex {
            table: Table::new(),
            hasher: RandomState::new(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    fn hash(hasher: &RandomState, id: &str) -> u64 {
        hasher.hash_one(id)
    }

    /// The hash of indexed session `k`'s client id.
    fn hash_of<'a>(
        hasher: &'a RandomState,
        sessions: &'a Slab<Session>,
    ) -> impl Fn(u32) -> u64 + 'a {
        move |k| {
            sessions
                .get(k as usize)
                .map_or(0, |s| Self::hash(hasher, &s.client_id))
        }
    }

    /// The session whose client id is `id`.
    pub fn get(&self, id: &str, sessions: &Slab<Session>) -> Option<SessionId> {
        if self.table.is_empty() {
            return None;
        }
        self.table
            .get(Self::hash(&self.hasher, id), |k| {
                sessions
                    .get(k as usize)
                    .is_some_and(|s| *s.client_id == *id)
            })
            .map(|k| k as usize)
    }

    /// Adds session `sid`, which is in `sessions` and whose client id is not in the index yet.
    pub fn insert(&mut self, sid: SessionId, sessions: &Slab<Session>) {
        let Some(s) = sessions.get(sid) else {
            return;
        };
        let Ok(k) = u32::try_from(sid) else {
            return;
        };
        let hash = Self::hash(&self.hasher, &s.client_id);
        self.table
            .insert(k, hash, Self::hash_of(&self.hasher, sessions));
    }

    /// Removes session `sid`, whose client id is `id` (it may already be gone from `sessions`;
    /// every other indexed session must still be there).
    pub fn remove(&mut self, id: &str, sid: SessionId, sessions: &Slab<Session>) {
        let Ok(k) = u32::try_from(sid) else {
            return;
        };
        let hash = Self::hash(&self.hasher, id);
        self.table
            .remove(k, hash, Self::hash_of(&self.hasher, sessions));
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
                let sid = sessions.insert(Session::new(id.as_str()));
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
