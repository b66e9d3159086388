//! The persistence file on disk: loading with recovery, and saving so that a crash or power
//! cut at any moment leaves either the old or the new snapshot whole.
//!
//! Saving writes `FILE.new`, flushes and fsyncs it, renames it over `FILE`, then fsyncs the
//! directory so the rename itself is durable (`atomic.rs`). Loading a damaged file recovers every intact
//! record, keeps the damaged file beside the new one as `FILE.damaged-SECONDS`, and says what
//! was lost; it never stops the broker from starting. A file from a newer format version is
//! refused (and left untouched) rather than misread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use log::{error, info, warn};

use super::atomic::{sync_dir, NewFile};
use super::format::{self, FormatError};
use super::Snapshot;

pub struct Store {
    path: PathBuf,
}

/// What loading found.
pub enum Loaded {
    /// No file yet.
    Nothing,
    /// A snapshot (possibly partial: the problems were logged and the file set aside).
    Snapshot(Snapshot),
}

impl Store {
    /// `persistence_location` (a directory, mosquitto's trailing slash optional) and
    /// `persistence_file`.
    pub fn new(location: Option<&str>, file: &str) -> Store {
        let path = match location {
            Some(dir) if !dir.is_empty() => Path::new(dir).join(file),
            _ => PathBuf::from(file),
        };
        Store { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the snapshot. `Err` only for a file of a newer format version (or one that
    /// exists but cannot be read at all), which the caller must not overwrite.
    pub fn load(&self) -> Result<Loaded, String> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Nothing),
            Err(e) => {
                return Err(format!(
                    "Unable to read persistence file {}: {e}.",
                    self.path.display()
                ))
            }
        };
        match format::decode(&bytes) {
            Ok(d) => {
                if d.damaged {
                    let kept = self.set_aside();
                    error!(
                        "Persistence file {} is damaged; every intact record was recovered, the damaged file is kept as {}.",
                        self.path.display(),
                        kept
                    );
                    for p in &d.problems {
                        error!("Persistence: {p}");
                    }
                }
                Ok(Loaded::Snapshot(d.snapshot))
            }
            Err(FormatError::NewerVersion(v)) => Err(format!(
                "Persistence file {} was written by a newer midge (format version {v}); refusing to read or overwrite it. Upgrade midge or move the file away.",
                self.path.display()
            )),
            Err(e) => {
                let kept = self.set_aside();
                error!(
                    "Persistence file {} is unreadable ({e}); starting empty, the file is kept as {}.",
                    self.path.display(),
                    kept
                );
                Ok(Loaded::Snapshot(Snapshot::default()))
            }
        }
    }

    /// Moves the current file out of the way, to `FILE.damaged-SECONDS` (or, when that name
    /// is taken, `FILE.damaged-SECONDS.N`): a file kept earlier is never overwritten. Returns
    /// the new name (or why not).
    fn set_aside(&self) -> String {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut last = None;
        for n in 0..1000u32 {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".damaged-{secs}"));
            if n > 0 {
                name.push(format!(".{n}"));
            }
            let to = PathBuf::from(name);
            // A hard link fails if the name exists, so nothing is replaced; the file is then
            // unlinked from its old name.
            match fs::hard_link(&self.path, &to) {
                Ok(()) => {
                    if let Err(e) = fs::remove_file(&self.path) {
                        warn!("Could not move the damaged file aside: {e}.");
                    }
                    return to.display().to_string();
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        let why = last.map_or_else(|| "too many kept files".to_string(), |e| e.to_string());
        warn!("Could not keep the damaged file aside: {why}.");
        format!("(not kept: {why})")
    }

    /// Writes a snapshot atomically: `write` produces it into the new file. Returns the bytes
    /// written and what `write` returned.
    pub fn save<T>(
        &self,
        write: impl FnOnce(&mut BufWriter<&mut File>) -> io::Result<T>,
    ) -> io::Result<(u64, T)> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".new");
        let mut new = NewFile::create(
            PathBuf::from(tmp),
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        let mut w = BufWriter::with_capacity(64 * 1024, new.file());
        let t = write(&mut w)?;
        w.flush()?;
        drop(w);
        let len = new.file().metadata()?.len();
        new.commit(&self.path)?;
        sync_dir(&self.path)?;
        Ok((len, t))
    }
}

/// When to save.
pub struct Autosave {
    /// Seconds between saves, or (with `on_changes`) changes between saves; 0: only on exit
    /// and SIGUSR1.
    pub interval: u32,
    pub on_changes: bool,
}

/// Saves the broker's state and logs how it went; never fails the caller.
pub fn save_logged(store: &Store, broker: &crate::broker::Broker) {
    let start = std::time::Instant::now();
    match store.save(|w| broker.write_snapshot(w)) {
        Ok((bytes, (retained, sessions))) => info!(
            "Saved {retained} retained messages and {sessions} sessions to {} ({bytes} bytes, {} ms).",
            store.path().display(),
            start.elapsed().as_millis()
        ),
        Err(e) => error!(
            "Error saving persistence file {}: {e}.",
            store.path().display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_kept_in_the_same_second_never_overwrite_each_other() {
        let dir = std::env::temp_dir().join(format!("midge-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let store = Store::new(dir.to_str(), "midge.db");
        for garbage in [
            &b"not a snapshot 1"[..],
            b"not a snapshot 2",
            b"not a snapshot 3",
        ] {
            fs::write(store.path(), garbage).unwrap();
            assert!(matches!(store.load(), Ok(Loaded::Snapshot(_))));
            assert!(!store.path().exists());
        }
        let mut kept: Vec<Vec<u8>> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".damaged-"))
            .map(|p| fs::read(p).unwrap())
            .collect();
        kept.sort();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            kept,
            vec![
                b"not a snapshot 1".to_vec(),
                b"not a snapshot 2".to_vec(),
                b"not a snapshot 3".to_vec()
            ]
        );
    }
}
