//! Registration with a shared secret, compatible with Synapse's admin API so that
//! `hearthctl` and Synapse's `register_new_matrix_user` both work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use ruma::OwnedUserId;
use sha1::Sha1;

use super::Services;
use super::sessions::IssuedTokens;
use super::users::NewAccount;
use crate::error::{Error, Result};

const NONCE_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Nonces {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Nonces {
    pub fn issue(&self) -> String {
        let nonce = super::random_string(32);
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued.retain(|_, at| at.elapsed() < NONCE_LIFETIME);
        issued.insert(nonce.clone(), Instant::now());
        nonce
    }

    /// Each nonce is good for one attempt.
    fn take(&self, nonce: &str) -> bool {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .remove(nonce)
            .is_some_and(|at| at.elapsed() < NONCE_LIFETIME)
    }
}

pub struct SharedSecretRequest {
    pub nonce: String,
    pub username: String,
    pub password: String,
    pub admin: bool,
    pub mac: String,
}

/// HMAC-SHA1 over `nonce NUL username NUL password NUL admin|notadmin`, hex-encoded.
pub fn mac(secret: &str, nonce: &str, username: &str, password: &str, admin: bool) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for (i, part) in [
        nonce,
        username,
        password,
        if admin { "admin" } else { "notadmin" },
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            mac.update(b"\0");
        }
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

impl Services {
    pub fn shared_secret_enabled(&self) -> Result<&str> {
        self.config
            .registration
            .shared_secret
            .as_deref()
            .ok_or_else(|| Error::forbidden("Shared-secret registration is not enabled"))
    }

    pub async fn register_with_shared_secret(
        &self,
        request: SharedSecretRequest,
    ) -> Result<(OwnedUserId, IssuedTokens)> {
        let secret = self.shared_secret_enabled()?;
        if !self.nonces.take(&request.nonce) {
            return Err(Error::invalid_param("Unknown or expired nonce"));
        }
        let expected = mac(
            secret,
            &request.nonce,
            &request.username,
            &request.password,
            request.admin,
        );
        let given = request.mac.to_lowercase();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.as_bytes(),
        )) {
            return Err(Error::forbidden("HMAC incorrect"));
        }
        let (user_id, tokens) = self
            .create_account(NewAccount {
                localpart: Some(request.username),
                password: Some(request.password),
                device_id: None,
                device_display_name: None,
                inhibit_login: false,
                refreshable: false,
                admin: request.admin,
                registration_token: None,
                guest: false,
            })
            .await?;
        let tokens = tokens.ok_or_else(|| Error::internal("login was not inhibited"))?;
        Ok((user_id, tokens))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mac_matches_synapse_construction() {
        // Computed independently with Python's hmac module:
        // hmac.new(b"secret", b"abc\x00alice\x00pw\x00notadmin", hashlib.sha1).hexdigest()
        assert_eq!(
            super::mac("secret", "abc", "alice", "pw", false),
            "42e32623fe124933c326f9d2d67ff7c617915a10"
        );
    }
}
