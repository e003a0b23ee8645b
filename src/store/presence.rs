//! Presence: `user_id` → the user's last set presence. Idle transitions are computed
//! from `last_active_ts`, so only changes a client makes (or the server's idle timer
//! publishes) are written.

use serde::{Deserialize, Serialize};

use super::{Cf, Store, StoreResult, keys};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// `online`, `unavailable` or `offline`.
    pub presence: String,
    #[serde(default)]
    pub status_msg: Option<String>,
    pub last_active_ts: u64,
    /// Position on the presence stream of the last change.
    pub position: u64,
}

impl Store {
    pub fn all_presence(&self) -> StoreResult<Vec<(String, PresenceRecord)>> {
        Ok(self
            .scan_prefix::<PresenceRecord>(Cf::Presence, b"")?
            .into_iter()
            .map(|(key, record)| (String::from_utf8_lossy(&key).into_owned(), record))
            .collect())
    }

    pub fn put_presence(&self, user_id: &str, record: &PresenceRecord) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::Presence, &keys::user(user_id), record)?;
        self.write(batch)
    }
}
