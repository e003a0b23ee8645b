//! Live backups (`hearthctl backup`): a copy of the data directory that opens as one,
//! taken while the server runs. The store is checkpointed first; then everything beside
//! it (the signing key, media files) is hard-linked, or copied across filesystems. Media
//! files are written once under their hash and never changed, so a link is a copy, and
//! every file the checkpoint refers to was complete before its record was written. The
//! backup lands in `<data>/backups/backup-<unix ms>/`; the operator copies it off the
//! machine.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Store;

/// Directory under the data directory that holds backups.
pub const BACKUPS_DIR: &str = "backups";

/// Takes a backup of the store and the files of `data_dir`, returning its directory.
/// Blocking (flushes and links files): call it off the async runtime.
pub fn take_backup(store: &Store, data_dir: &Path, now_ms: u64) -> Result<PathBuf> {
    let backups = data_dir.join(BACKUPS_DIR);
    std::fs::create_dir_all(&backups)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", backups.display())))?;
    let dest = new_backup_dir(&backups, now_ms)?;
    // The store's directory name in the data directory, so the copy opens in place.
    store
        .checkpoint(&dest.join("db"))
        .map_err(|e| Error::internal(format!("checkpoint into {}: {e}", dest.display())))?;
    link_tree(data_dir, &dest, true)?;
    std::path::absolute(&dest).map_err(Error::internal)
}

/// Links (or copies) every file under `from` into `to`. At the top of the data directory
/// the store and the backups themselves are left out; media's unfinished uploads too.
fn link_tree(from: &Path, to: &Path, top: bool) -> Result<()> {
    let entries = std::fs::read_dir(from)
        .map_err(|e| Error::internal(format!("cannot list {}: {e}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(Error::internal)?;
        let name = entry.file_name();
        if top && (name == "db" || name == BACKUPS_DIR) || name == "tmp" {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(Error::internal)?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)
                .map_err(|e| Error::internal(format!("cannot create {}: {e}", target.display())))?;
            link_tree(&source, &target, false)?;
        } else if kind.is_file() && std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)
                .map_err(|e| Error::internal(format!("cannot copy {}: {e}", source.display())))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(Error::internal)?;
        }
    }
    Ok(())
}

/// A fresh directory `backup-<ms>` (or `backup-<ms>-<n>` when two backups share a
/// millisecond): creating it is what reserves the name.
fn new_backup_dir(backups: &Path, now_ms: u64) -> Result<PathBuf> {
    for n in 0..100 {
        let name = match n {
            0 => format!("backup-{now_ms}"),
            n => format!("backup-{now_ms}-{n}"),
        };
        let dir = backups.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot create {}: {e}",
                    dir.display()
                )));
            }
        }
    }
    Err(Error::internal("no free backup directory name"))
}
