//! Replacing a file so that a crash or power cut at any moment leaves either the old file or
//! the new one whole: the new contents go to a temporary file in the same directory, which is
//! fsynced and renamed over the old one; then the directory is fsynced so the rename itself
//! is durable. Used for the persistence file (`store.rs`) and by `midge_passwd`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A temporary file that becomes `path` on [`NewFile::commit`], and is removed if dropped
/// before that (or if the commit fails).
pub struct NewFile {
    file: File,
    tmp: PathBuf,
    committed: bool,
}

impl NewFile {
    /// Opens the temporary file `tmp` (in the directory of the file it will replace) with
    /// `options`, which say whether it is created afresh and with which mode.
    pub fn create(tmp: PathBuf, options: &OpenOptions) -> io::Result<NewFile> {
        let file = options.open(&tmp)?;
        Ok(NewFile {
            file,
            tmp,
            committed: false,
        })
    }

    /// The temporary file, to write the new contents into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes the new contents to disk and renames the temporary file over `path`. The
    /// rename is durable once [`sync_dir`] has run on `path`.
    pub fn commit(mut self, path: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// The directory `path` is in ("." for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Fsyncs the directory of `path`, making a rename into it durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(dir_of(path))?.sync_all()
}
