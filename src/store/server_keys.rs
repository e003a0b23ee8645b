//! Other servers' signing keys: `server name` → [`ServerKeysRecord`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Cf, Store, StoreResult};

/// What this server knows of another server's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerKeysRecord {
    /// Key ID → the key and until when it verifies signatures.
    pub keys: BTreeMap<String, StoredKey>,
    /// The latest key answer as the server signed it (with a notary's signature too when
    /// it came through one), handed on when this server acts as a notary.
    pub response: Value,
    /// Earlier answers, newest first, each still the latest to list some key (in
    /// `verify_keys` or `old_verify_keys`): a notary asked for that key hands it on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub older: Vec<Value>,
    /// That answer's `valid_until_ts`, as published.
    pub valid_until_ts: u64,
    /// When that answer was fetched.
    pub fetched_ts: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// Unpadded base64 public key.
    pub key: String,
    /// Signatures made before this time verify with the key: the answer's
    /// `valid_until_ts` (at most 7 days after it was fetched) for a current key, its
    /// `expired_ts` for an old one.
    pub valid_until_ts: u64,
    /// Set for keys listed in `old_verify_keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_ts: Option<u64>,
}

impl Store {
    pub fn server_keys(&self, server_name: &str) -> StoreResult<Option<ServerKeysRecord>> {
        self.get_json(Cf::ServerKeys, server_name.as_bytes())
    }

    pub fn put_server_keys(&self, server_name: &str, record: &ServerKeysRecord) -> StoreResult<()> {
        let mut batch = self.batch();
        batch.put_json(Cf::ServerKeys, server_name.as_bytes(), record)?;
        self.write(batch)
    }
}
