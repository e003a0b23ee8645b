//! A consistent copy of the open store, taken while it serves: a RocksDB checkpoint.

use std::path::Path;

use super::{Store, StoreResult};

impl Store {
    /// Writes a checkpoint of the store to `dest`, which must not exist yet (its parent
    /// must). Memtables are flushed first, so every write acknowledged before the call is
    /// in it; table files are hard-linked when `dest` is on the same filesystem, copied
    /// otherwise. The checkpoint opens as a store of its own. The sliding sync states
    /// kept in memory are written first, so every `pos` answered is in it.
    pub fn checkpoint(&self, dest: &Path) -> StoreResult<()> {
        self.flush_sliding_sync_states()?;
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.inner.db)?;
        checkpoint.create_checkpoint(dest)?;
        Ok(())
    }
}
