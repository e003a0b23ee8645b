//! Email addresses and their verification: `threepid_sessions`: the session ID →
//! [`ThreepidSessionRecord`]; `threepids`: `u` 0xFF user ID 0xFF address →
//! [`ThreepidRecord`] (a user's verified addresses) and `a` 0xFF address → user ID (who
//! owns an address), written together; `b` 0xFF user ID 0xFF medium 0xFF address 0xFF
//! identity server → [`BoundThreepid`] (where the homeserver bound a user's 3PID, to
//! unbind it there later); `email_digests`: user ID → [`DigestRecord`].

use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult};

/// Why a verification mail was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreepidPurpose {
    /// `/account/3pid/email/requestToken`: the address is to be added to an account.
    Add,
    /// `/account/password/email/requestToken`: the owner resets their password.
    PasswordReset,
}

/// One `requestToken` session: the token is kept only as its SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreepidSessionRecord {
    pub purpose: ThreepidPurpose,
    pub client_secret: String,
    /// The address, lower-cased.
    pub address: String,
    pub send_attempt: u64,
    /// Hex SHA-256 of the token mailed; `None` once used (single use).
    pub token_sha256: Option<String>,
    pub next_link: Option<String>,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// When the link was followed.
    pub validated_ms: Option<u64>,
}

/// A verified address of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreepidRecord {
    pub validated_at: u64,
    pub added_at: u64,
}

/// What the digest worker remembers of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    /// When the last digest was sent (ms).
    pub last_sent_ms: u64,
    /// The newest notification (event stream position) a digest covered.
    pub covered_to: u64,
}

fn user_key(user_id: &str, address: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user_id.len() + address.len() + 3);
    key.extend_from_slice(b"u\xff");
    key.extend_from_slice(user_id.as_bytes());
    key.push(0xff);
    key.extend_from_slice(address.as_bytes());
    key
}

/// A 3PID this server bound to a user at an identity server (`/account/3pid/bind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundThreepid {
    pub medium: String,
    pub address: String,
    pub id_server: String,
}

fn bound_key(user_id: &str, bound: Option<&BoundThreepid>) -> Vec<u8> {
    let mut key = b"b\xff".to_vec();
    key.extend_from_slice(user_id.as_bytes());
    key.push(0xff);
    if let Some(b) = bound {
        for part in [&b.medium, &b.address, &b.id_server] {
            key.extend_from_slice(part.as_bytes());
            key.push(0xff);
        }
    }
    key
}

fn owner_key(address: &str) -> Vec<u8> {
    let mut key = b"a\xff".to_vec();
    key.extend_from_slice(address.as_bytes());
    key
}

impl Store {
    pub fn threepid_session(&self, sid: &str) -> StoreResult<Option<ThreepidSessionRecord>> {
        self.get_json(Cf::ThreepidSessions, sid.as_bytes())
    }

    /// The user an address belongs to.
    pub fn threepid_owner(&self, address: &str) -> StoreResult<Option<String>> {
        self.get_json(Cf::Threepids, &owner_key(address))
    }

    /// A user's verified addresses, ordered.
    pub fn user_threepids(&self, user_id: &str) -> StoreResult<Vec<(String, ThreepidRecord)>> {
        let prefix = user_key(user_id, "");
        Ok(self
            .scan_prefix::<ThreepidRecord>(Cf::Threepids, &prefix)?
            .into_iter()
            .filter_map(|(key, record)| {
                Some((
                    String::from_utf8(key[prefix.len()..].to_vec()).ok()?,
                    record,
                ))
            })
            .collect())
    }

    /// Every user with a verified address.
    pub fn users_with_threepids(&self) -> StoreResult<Vec<String>> {
        let mut users: Vec<String> = self
            .scan_prefix::<ThreepidRecord>(Cf::Threepids, b"u\xff")?
            .into_iter()
            .filter_map(|(key, _)| {
                let rest = &key[2..];
                let end = rest.iter().position(|b| *b == 0xff)?;
                String::from_utf8(rest[..end].to_vec()).ok()
            })
            .collect();
        users.dedup();
        Ok(users)
    }

    /// Up to `limit` session IDs whose session expired before `now_ms`, for the sweep.
    pub fn expired_threepid_sessions(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<String>> {
        Ok(self
            .scan_prefix::<ThreepidSessionRecord>(Cf::ThreepidSessions, b"")?
            .into_iter()
            .filter(|(_, record)| record.expires_ms <= now_ms)
            .filter_map(|(key, _)| String::from_utf8(key).ok())
            .take(limit)
            .collect())
    }

    /// Where a user's 3PIDs were bound by this server.
    pub fn bound_threepids(&self, user_id: &str) -> StoreResult<Vec<BoundThreepid>> {
        Ok(self
            .scan_prefix::<BoundThreepid>(Cf::Threepids, &bound_key(user_id, None))?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }

    pub fn email_digest(&self, user_id: &str) -> StoreResult<Option<DigestRecord>> {
        self.get_json(Cf::EmailDigests, user_id.as_bytes())
    }
}

impl Batch<'_> {
    pub fn put_threepid_session(
        &mut self,
        sid: &str,
        record: &ThreepidSessionRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::ThreepidSessions, sid.as_bytes(), record)
    }

    pub fn delete_threepid_session(&mut self, sid: &str) {
        self.delete(Cf::ThreepidSessions, sid.as_bytes());
    }

    pub fn put_threepid(
        &mut self,
        user_id: &str,
        address: &str,
        record: &ThreepidRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::Threepids, &user_key(user_id, address), record)?;
        self.put_json(Cf::Threepids, &owner_key(address), &user_id)
    }

    pub fn delete_threepid(&mut self, user_id: &str, address: &str) {
        self.delete(Cf::Threepids, &user_key(user_id, address));
        self.delete(Cf::Threepids, &owner_key(address));
    }

    pub fn put_bound_threepid(&mut self, user_id: &str, bound: &BoundThreepid) -> StoreResult<()> {
        self.put_json(Cf::Threepids, &bound_key(user_id, Some(bound)), bound)
    }

    pub fn delete_bound_threepid(&mut self, user_id: &str, bound: &BoundThreepid) {
        self.delete(Cf::Threepids, &bound_key(user_id, Some(bound)));
    }

    pub fn put_email_digest(&mut self, user_id: &str, record: &DigestRecord) -> StoreResult<()> {
        self.put_json(Cf::EmailDigests, user_id.as_bytes(), record)
    }
}
