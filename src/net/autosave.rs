//! Persistence from the loop: the snapshot file, saved per `autosave_interval` /
//! `autosave_on_changes`, on SIGUSR1 and when stopping.

use super::Server;
use crate::broker::Millis;

/// The persistence file and when to write it.
pub(super) struct Persist {
    store: crate::store::Store,
    autosave: crate::store::Autosave,
    last_at: Millis,
    last_changes: u64,
}

impl Server {
    /// Saves to `store` per `autosave`, on SIGUSR1 and when stopping.
    pub fn persist(&mut self, store: crate::store::Store, autosave: crate::store::Autosave) {
        self.persist = Some(Persist {
            store,
            autosave,
            last_at: 0,
            last_changes: self.broker.changes(),
        });
    }

    /// Writes the snapshot now.
    pub(super) fn save(&mut self) {
        let now = self.now();
        if let Some(p) = self.persist.as_mut() {
            crate::store::save_logged(&p.store, &self.broker);
            p.last_at = now;
            p.last_changes = self.broker.changes();
        }
    }

    /// When the next autosave is due (time-based autosave with unsaved changes).
    pub(super) fn save_due(&self) -> Option<Millis> {
        let p = self.persist.as_ref()?;
        if p.autosave.interval == 0 || p.autosave.on_changes {
            return None;
        }
        if self.broker.changes() == p.last_changes {
            return None;
        }
        Some(p.last_at + p.autosave.interval as Millis * 1000)
    }

    pub(super) fn maybe_save(&mut self, now: Millis) {
        let Some(p) = self.persist.as_ref() else {
            return;
        };
        let changed = self.broker.changes() - p.last_changes;
        let due = match (p.autosave.interval, p.autosave.on_changes) {
            (0, _) => false,
            (n, true) => changed >= n as u64,
            (_, false) => self.save_due().is_some_and(|t| t <= now),
        };
        if due {
            self.save();
        }
    }
}
