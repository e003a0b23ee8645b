//! Registration tokens: those in the configuration (`registration.tokens`, unlimited)
//! and those server admins make, with a number of uses and an expiry, as Synapse's
//! `/_synapse/admin/v1/registration_tokens` manages them. A use is counted in the same
//! write as the account it made, under the lock that serialises account creation, so a
//! token allowing one use makes one account.

use ruma::UserId;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::{Batch, RegistrationTokenRecord};

/// Synapse's token alphabet and limits.
const TOKEN_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
const MAX_TOKEN_LEN: usize = 64;
const DEFAULT_LENGTH: usize = 16;

/// A token as the admin API shows it (Synapse's JSON; `pending` is always 0: Hearth
/// counts a use when the account is made).
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationToken {
    pub token: String,
    pub uses_allowed: Option<u64>,
    pub pending: u64,
    pub completed: u64,
    pub expiry_time: Option<u64>,
}

impl RegistrationToken {
    fn new(token: String, record: RegistrationTokenRecord) -> Self {
        Self {
            token,
            uses_allowed: record.uses_allowed,
            pending: 0,
            completed: record.completed,
            expiry_time: record.expiry_time,
        }
    }
}

/// A new token: given, or generated with `length` characters.
#[derive(Debug, Default, Clone)]
pub struct NewRegistrationToken {
    pub token: Option<String>,
    pub length: Option<usize>,
    pub uses_allowed: Option<u64>,
    pub expiry_time: Option<u64>,
}

/// A change: each field present is set, `Some(None)` meaning no limit.
#[derive(Debug, Default, Clone)]
pub struct RegistrationTokenChange {
    pub uses_allowed: Option<Option<u64>>,
    pub expiry_time: Option<Option<u64>>,
}

fn check_expiry(expiry_time: Option<u64>) -> Result<()> {
    if expiry_time.is_some_and(|t| t <= now_ms()) {
        return Err(Error::invalid_param("expiry_time must be in the future"));
    }
    Ok(())
}

fn random_token(length: usize) -> String {
    use rand::Rng;
    let chars: Vec<char> = TOKEN_CHARS.chars().collect();
    let mut rng = rand::thread_rng();
    (0..length)
        .map(|_| chars[rng.gen_range(0..chars.len())])
        .collect()
}

impl Services {
    /// Whether `given` admits a registration now: a configured token, or a stored one
    /// not expired and with uses left.
    pub fn registration_token_valid(&self, given: &str) -> Result<bool> {
        if self
            .config
            .registration
            .tokens
            .iter()
            .any(|token| bool::from(token.as_bytes().ct_eq(given.as_bytes())))
        {
            return Ok(true);
        }
        Ok(self
            .store
            .registration_token(given)?
            .is_some_and(|record| record.valid_at(now_ms())))
    }

    /// Counts a use of the token in the batch that makes the account; refuses a token
    /// that has meanwhile expired, run out or been revoked. The caller holds the account
    /// creation lock.
    pub(crate) fn stage_registration_token_use(
        &self,
        batch: &mut Batch<'_>,
        given: &str,
    ) -> Result<()> {
        if self
            .config
            .registration
            .tokens
            .iter()
            .any(|token| bool::from(token.as_bytes().ct_eq(given.as_bytes())))
        {
            return Ok(());
        }
        match self.store.registration_token(given)? {
            Some(mut record) if record.valid_at(now_ms()) => {
                record.completed += 1;
                batch.put_registration_token(given, &record)?;
                Ok(())
            }
            _ => Err(Error::forbidden("Invalid registration token")),
        }
    }

    /// Every stored token; with `valid`, only the valid (or only the invalid) ones.
    pub fn admin_registration_tokens(&self, valid: Option<bool>) -> Result<Vec<RegistrationToken>> {
        let now = now_ms();
        Ok(self
            .store
            .registration_tokens()?
            .into_iter()
            .filter(|(_, record)| valid.is_none_or(|v| record.valid_at(now) == v))
            .map(|(token, record)| RegistrationToken::new(token, record))
            .collect())
    }

    pub fn admin_registration_token(&self, token: &str) -> Result<RegistrationToken> {
        let record = self
            .store
            .registration_token(token)?
            .ok_or_else(|| Error::not_found("No such registration token"))?;
        Ok(RegistrationToken::new(token.to_owned(), record))
    }

    pub async fn admin_create_registration_token(
        &self,
        admin: &UserId,
        new: NewRegistrationToken,
    ) -> Result<RegistrationToken> {
        check_expiry(new.expiry_time)?;
        let token = match (new.token, new.length) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_param(
                    "Give either token or length, not both",
                ));
            }
            (Some(token), None) => {
                if token.is_empty()
                    || token.len() > MAX_TOKEN_LEN
                    || !token.chars().all(|c| TOKEN_CHARS.contains(c))
                {
                    return Err(Error::invalid_param(format!(
                        "token must be 1 to {MAX_TOKEN_LEN} characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'"
                    )));
                }
                token
            }
            (None, length) => {
                let length = length.unwrap_or(DEFAULT_LENGTH);
                if length == 0 || length > MAX_TOKEN_LEN {
                    return Err(Error::invalid_param(format!(
                        "length must be between 1 and {MAX_TOKEN_LEN}"
                    )));
                }
                random_token(length)
            }
        };
        let record = RegistrationTokenRecord {
            uses_allowed: new.uses_allowed,
            completed: 0,
            expiry_time: new.expiry_time,
        };
        let _guard = self.sessions.write_lock.lock().await;
        if self.store.registration_token(&token)?.is_some() {
            return Err(Error::invalid_param("Token already in use"));
        }
        let mut batch = self.store.batch();
        batch.put_registration_token(&token, &record)?;
        self.stage_audit(
            &mut batch,
            admin,
            "registration_token.create",
            &token,
            Some(format!(
                "uses_allowed={:?}, expiry_time={:?}",
                record.uses_allowed, record.expiry_time
            )),
        )?;
        self.store.write(batch)?;
        Ok(RegistrationToken::new(token, record))
    }

    pub async fn admin_update_registration_token(
        &self,
        admin: &UserId,
        token: &str,
        change: RegistrationTokenChange,
    ) -> Result<RegistrationToken> {
        if let Some(expiry) = change.expiry_time {
            check_expiry(expiry)?;
        }
        let _guard = self.sessions.write_lock.lock().await;
        let mut record = self
            .store
            .registration_token(token)?
            .ok_or_else(|| Error::not_found("No such registration token"))?;
        if let Some(uses_allowed) = change.uses_allowed {
            record.uses_allowed = uses_allowed;
        }
        if let Some(expiry_time) = change.expiry_time {
            record.expiry_time = expiry_time;
        }
        let mut batch = self.store.batch();
        batch.put_registration_token(token, &record)?;
        self.stage_audit(
            &mut batch,
            admin,
            "registration_token.update",
            token,
            Some(format!(
                "uses_allowed={:?}, expiry_time={:?}",
                record.uses_allowed, record.expiry_time
            )),
        )?;
        self.store.write(batch)?;
        Ok(RegistrationToken::new(token.to_owned(), record))
    }

    pub async fn admin_delete_registration_token(&self, admin: &UserId, token: &str) -> Result<()> {
        let _guard = self.sessions.write_lock.lock().await;
        if self.store.registration_token(token)?.is_none() {
            return Err(Error::not_found("No such registration token"));
        }
        let mut batch = self.store.batch();
        batch.delete_registration_token(token);
        self.stage_audit(&mut batch, admin, "registration_token.delete", token, None)?;
        self.store.write(batch)?;
        Ok(())
    }
}
