//! Registration tokens made by server admins: `registration_tokens`: the token (UTF-8)
//! → [`RegistrationTokenRecord`]. Tokens from the configuration are not stored.

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult};

/// One token, with Synapse's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationTokenRecord {
    /// How many registrations it may complete; `None` for no limit.
    pub uses_allowed: Option<u64>,
    /// Registrations completed with it.
    pub completed: u64,
    /// When it stops being valid (ms since the epoch); `None` for never.
    pub expiry_time: Option<u64>,
}

impl RegistrationTokenRecord {
    /// Whether it still admits a registration at `now` (ms).
    pub fn valid_at(&self, now: u64) -> bool {
        self.expiry_time.is_none_or(|expiry| now < expiry)
            && self
                .uses_allowed
                .is_none_or(|allowed| self.completed < allowed)
    }
}

impl Store {
    pub fn registration_token(&self, token: &str) -> StoreResult<Option<RegistrationTokenRecord>> {
        self.get_json(Cf::RegistrationTokens, token.as_bytes())
    }

    /// Every stored token, ordered by token.
    pub fn registration_tokens(&self) -> StoreResult<Vec<(String, RegistrationTokenRecord)>> {
        Ok(self
            .scan_prefix::<RegistrationTokenRecord>(Cf::RegistrationTokens, b"")?
            .into_iter()
            .filter_map(|(key, record)| Some((String::from_utf8(key).ok()?, record)))
            .collect())
    }
}

impl Batch<'_> {
    pub fn put_registration_token(
        &mut self,
        token: &str,
        record: &RegistrationTokenRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::RegistrationTokens, token.as_bytes(), record)
    }

    pub fn delete_registration_token(&mut self, token: &str) {
        self.delete(Cf::RegistrationTokens, token.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_valid_until_it_expires_or_runs_out() {
        let mut token = RegistrationTokenRecord {
            uses_allowed: Some(2),
            completed: 1,
            expiry_time: Some(1000),
        };
        assert!(token.valid_at(999));
        assert!(!token.valid_at(1000));
        token.completed = 2;
        assert!(!token.valid_at(0));
        token.uses_allowed = None;
        token.expiry_time = None;
        assert!(token.valid_at(u64::MAX));
        token.uses_allowed = Some(0);
        assert!(!token.valid_at(0));
    }
}
