//! OpenID tokens (`/user/{userId}/openid/request_token`), which a third party (a widget,
//! an integration manager) exchanges through `/_matrix/federation/v1/openid/userinfo`
//! for the user's ID.
//!
//! - `openid_tokens`: SHA-256 of the token → [`OpenidTokenRecord`]. An expired token is
//!   deleted when it is next presented, and the sweep on each new token removes up to a
//!   few expired ones.

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult, TokenHash};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenidTokenRecord {
    pub user_id: String,
    pub expires_ms: u64,
}

impl Store {
    pub fn openid_token(&self, hash: &TokenHash) -> StoreResult<Option<OpenidTokenRecord>> {
        self.get_json(Cf::OpenidTokens, hash.as_bytes())
    }

    /// Up to `limit` tokens that expired before `now_ms`, for the sweep.
    pub fn expired_openid_tokens(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Vec<u8>>> {
        let mut expired = Vec::new();
        for (key, record) in self.scan_prefix::<OpenidTokenRecord>(Cf::OpenidTokens, &[])? {
            if record.expires_ms <= now_ms {
                expired.push(key);
                if expired.len() == limit {
                    break;
                }
            }
        }
        Ok(expired)
    }
}

impl Batch<'_> {
    pub fn put_openid_token(
        &mut self,
        hash: &TokenHash,
        record: &OpenidTokenRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::OpenidTokens, hash.as_bytes(), record)
    }

    pub fn delete_openid_token(&mut self, key: &[u8]) {
        self.delete(Cf::OpenidTokens, key);
    }
}
