//! Accounts, devices and their tokens.

use std::sync::Arc;

use ruma::{OwnedDeviceId, OwnedUserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Batch, Cf, Store, StoreResult, keys};

/// SHA-256 of a token: tokens are stored only as hashes, so a copy of the data
/// directory does not hand out working sessions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(#[serde(with = "hex_bytes")] [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string; `None` once deactivated or for accounts that only log in by JWT.
    pub password_hash: Option<String>,
    pub created_ts: u64,
    #[serde(default)]
    pub deactivated: bool,
    /// Server administrator, recognised by admin tooling.
    #[serde(default)]
    pub admin: bool,
    /// Locked by an admin: every request answers `M_USER_LOCKED` until unlocked.
    #[serde(default)]
    pub locked: bool,
    /// Suspended by an admin: the user reads but cannot join, invite, send or change
    /// their profile (`M_USER_SUSPENDED`).
    #[serde(default)]
    pub suspended: bool,
    /// Shadow-banned by an admin: their messages, state changes, invites, typing and
    /// public receipts are answered as if accepted but reach nobody.
    #[serde(default)]
    pub shadow_banned: bool,
    /// Deactivated with erasure: the profile was removed and the user's messages are
    /// marked for erasure, as Synapse does.
    #[serde(default)]
    pub erased: bool,
    /// A guest account (`register?kind=guest`), until upgraded to a full one.
    #[serde(default)]
    pub guest: bool,
    /// Set by an admin: this user's own request rates in place of `[limits]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimit_override: Option<RateLimitOverride>,
}

/// An admin's rate for one user, in Synapse's `override_ratelimit` terms: `messages_per_second`
/// requests a second after a burst of `burst_count`, for each limited family; a rate of 0
/// means the user is not limited at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitOverride {
    pub messages_per_second: u32,
    pub burst_count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub device_id: OwnedDeviceId,
    pub display_name: Option<String>,
    pub created_ts: u64,
    pub last_seen_ts: Option<u64>,
    pub last_seen_ip: Option<String>,
    /// The `User-Agent` of the device's last request (admin whois, as Synapse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_user_agent: Option<String>,
    /// The device's one live access token.
    pub access_token: TokenHash,
    pub refresh_token: Option<TokenHash>,
    /// A refresh token that was exchanged but stays valid until the new tokens are used,
    /// so a client that lost the refresh response can repeat it.
    #[serde(default)]
    pub retiring_refresh_token: Option<TokenHash>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub expires_at_ms: Option<u64>,
    /// Set on tokens issued by a refresh: their first use retires the refresh token
    /// that was exchanged for them.
    #[serde(default)]
    pub retires_refresh_token: Option<TokenHash>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

impl Store {
    /// The account record, from memory when recently read: every request checks it.
    pub fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        let key = keys::user(user_id);
        self.inner
            .records
            .users
            .get_or_load(&key, || self.get_json(Cf::Users, &key))
    }

    pub fn device(&self, user_id: &str, device_id: &str) -> StoreResult<Option<DeviceRecord>> {
        self.get_json(Cf::Devices, &keys::device(user_id, device_id))
    }

    pub fn devices(&self, user_id: &str) -> StoreResult<Vec<DeviceRecord>> {
        Ok(Arc::unwrap_or_clone(self.devices_shared(user_id)?))
    }

    /// Every device of the user, from memory when read since their last change.
    pub fn devices_shared(&self, user_id: &str) -> StoreResult<Arc<Vec<DeviceRecord>>> {
        let start = keys::devices_of(user_id);
        self.inner.records.devices.get_or_read(&start, || {
            Ok(Arc::new(
                self.scan_prefix(Cf::Devices, &start)?
                    .into_iter()
                    .map(|(_, device)| device)
                    .collect(),
            ))
        })
    }

    /// The record of an access token, from memory when recently used.
    pub fn access_token(&self, hash: &TokenHash) -> StoreResult<Option<AccessTokenRecord>> {
        self.inner
            .access_tokens
            .get_or_load(hash, || self.get_json(Cf::AccessTokens, hash.as_bytes()))
    }

    pub fn refresh_token(&self, hash: &TokenHash) -> StoreResult<Option<RefreshTokenRecord>> {
        self.get_json(Cf::RefreshTokens, hash.as_bytes())
    }
}

impl Batch<'_> {
    pub fn put_user(&mut self, user_id: &str, user: &UserRecord) -> StoreResult<()> {
        self.put_json(Cf::Users, &keys::user(user_id), user)
    }

    pub fn put_device(&mut self, user_id: &str, device: &DeviceRecord) -> StoreResult<()> {
        self.put_json(
            Cf::Devices,
            &keys::device(user_id, device.device_id.as_str()),
            device,
        )
    }

    /// Removes a device together with every token that belongs to it.
    pub fn delete_device(&mut self, user_id: &str, device: &DeviceRecord) {
        self.delete(
            Cf::Devices,
            &keys::device(user_id, device.device_id.as_str()),
        );
        self.delete_access_token(&device.access_token);
        for refresh in [device.refresh_token, device.retiring_refresh_token]
            .into_iter()
            .flatten()
        {
            self.delete(Cf::RefreshTokens, refresh.as_bytes());
        }
        self.delete_sliding_sync_connections(user_id, device.device_id.as_str());
    }

    pub fn put_access_token(
        &mut self,
        hash: &TokenHash,
        token: &AccessTokenRecord,
    ) -> StoreResult<()> {
        self.notes.access_tokens.push(*hash);
        self.put_json(Cf::AccessTokens, hash.as_bytes(), token)
    }

    pub fn delete_access_token(&mut self, hash: &TokenHash) {
        self.notes.access_tokens.push(*hash);
        self.delete(Cf::AccessTokens, hash.as_bytes());
    }

    pub fn put_refresh_token(
        &mut self,
        hash: &TokenHash,
        token: &RefreshTokenRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::RefreshTokens, hash.as_bytes(), token)
    }

    pub fn delete_refresh_token(&mut self, hash: &TokenHash) {
        self.delete(Cf::RefreshTokens, hash.as_bytes());
    }
}
