//! Devices and their access and refresh tokens.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};

use super::now_ms;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{AccessTokenRecord, DeviceRecord, RefreshTokenRecord, Store, TokenHash};

/// Who a request is from, once its access token checked out.
#[derive(Debug, Clone)]
pub struct Authed {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    /// A guest account (`register?kind=guest`): only the endpoints the spec lists.
    pub is_guest: bool,
}

#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    pub device_id: OwnedDeviceId,
    /// `null` when unknown, never missing: as Synapse, since clients (matrix-nio)
    /// refuse a device without these keys.
    pub display_name: Option<String>,
    pub last_seen_ip: Option<String>,
    pub last_seen_ts: Option<u64>,
    /// For the admin APIs only; the client API's device lists have no user agent.
    #[serde(skip)]
    pub last_seen_user_agent: Option<String>,
}

pub struct Sessions {
    store: Store,
    /// Serialises read-modify-write changes to accounts and devices.
    pub(super) write_lock: tokio::sync::Mutex<()>,
    refreshable_lifetime_ms: u64,
    /// Last use of each device; kept in memory so that most requests cost no write.
    /// Written to the device record when the device is first seen after a start, when
    /// its address changes, at most [`LAST_SEEN_PERSIST_MS`] after the last write, and
    /// on shutdown; so a crash loses at most that much of it.
    last_seen: Mutex<HashMap<(OwnedUserId, OwnedDeviceId), LastSeen>>,
    /// Bumped whenever access tokens are revoked, so long-lived connections (sync
    /// sockets) recheck theirs at once instead of at their next ping.
    revocations: tokio::sync::watch::Sender<u64>,
}

/// How stale a device's stored last-seen time may get while it is in use.
pub const LAST_SEEN_PERSIST_MS: u64 = 60_000;

/// Where a request came from: its address and `User-Agent` header.
#[derive(Debug, Clone, Copy)]
pub struct SeenFrom<'a> {
    pub ip: &'a str,
    pub user_agent: Option<&'a str>,
}

#[derive(Debug, Clone)]
struct LastSeen {
    ts: u64,
    ip: String,
    user_agent: Option<String>,
    /// When this entry was last written to the device record.
    persisted_ts: u64,
}

/// Device IDs end up in keys and in every client's device list; keep them sane.
const MAX_DEVICE_ID_BYTES: usize = 255;

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn new_device_id() -> OwnedDeviceId {
    let id: String = super::random_string(10).to_uppercase();
    id.into()
}

impl Sessions {
    pub fn new(store: Store, config: &Config) -> Self {
        Self {
            store,
            write_lock: tokio::sync::Mutex::new(()),
            refreshable_lifetime_ms: config.login.refreshable_token_lifetime_secs * 1000,
            last_seen: Mutex::new(HashMap::new()),
            revocations: tokio::sync::watch::channel(0).0,
        }
    }

    /// Changes whenever some access token stops being valid.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    pub(crate) fn announce_revocation(&self) {
        self.revocations.send_modify(|n| *n += 1);
    }

    fn last_seen_map(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(OwnedUserId, OwnedDeviceId), LastSeen>> {
        self.last_seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks an access token. Expired tokens answer with `soft_logout`, so the client
    /// knows to refresh or log in again without dropping its local data. With `seen`,
    /// the request's address and user agent are the device's last use.
    pub async fn authenticate(&self, token: &str, seen: Option<SeenFrom<'_>>) -> Result<Authed> {
        let hash = TokenHash::of(token);
        let Some(record) = self.store.access_token(&hash)? else {
            return Err(Error::new(
                ErrorKind::UnknownToken { soft_logout: false },
                "Unknown access token",
            ));
        };
        let now = now_ms();
        if record.expires_at_ms.is_some_and(|at| at <= now) {
            return Err(Error::new(
                ErrorKind::UnknownToken { soft_logout: true },
                "Access token has expired",
            ));
        }
        if let Some(retiring) = record.retires_refresh_token {
            self.retire_refresh_token(&hash, &record, retiring).await?;
        }
        if let Some(SeenFrom { ip, user_agent }) = seen {
            let key = (record.user_id.clone(), record.device_id.clone());
            let persist = {
                let mut seen = self.last_seen_map();
                let entry = seen.entry(key).or_insert_with(|| LastSeen {
                    ts: now,
                    ip: String::new(),
                    user_agent: None,
                    persisted_ts: 0,
                });
                let persist = entry.ip != ip
                    || entry.user_agent.as_deref() != user_agent
                    || now.saturating_sub(entry.persisted_ts) >= LAST_SEEN_PERSIST_MS;
                entry.ts = now;
                entry.ip = ip.to_owned();
                entry.user_agent = user_agent.map(str::to_owned);
                persist
            };
            if persist {
                let seen = LastSeen {
                    ts: now,
                    ip: ip.to_owned(),
                    user_agent: user_agent.map(str::to_owned),
                    persisted_ts: now,
                };
                self.persist_device_last_seen(&record.user_id, &record.device_id, seen)
                    .await?;
            }
        }
        let is_guest = self
            .store
            .user(record.user_id.as_str())?
            .is_some_and(|u| u.guest);
        Ok(Authed {
            user_id: record.user_id,
            device_id: record.device_id,
            is_guest,
        })
    }

    async fn retire_refresh_token(
        &self,
        access: &TokenHash,
        record: &AccessTokenRecord,
        retiring: TokenHash,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut batch = self.store.batch();
        let cleared = AccessTokenRecord {
            retires_refresh_token: None,
            ..record.clone()
        };
        batch.put_access_token(access, &cleared)?;
        if let Some(mut device) = self
            .store
            .device(record.user_id.as_str(), record.device_id.as_str())?
            && device.retiring_refresh_token == Some(retiring)
        {
            device.retiring_refresh_token = None;
            batch.delete_refresh_token(&retiring);
            batch.put_device(record.user_id.as_str(), &device)?;
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// Creates a device (or takes over an existing one of the same ID, revoking its
    /// tokens, as the spec asks for a login that names a known device) and issues tokens.
    pub async fn open_session(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        refreshable: bool,
    ) -> Result<IssuedTokens> {
        if device_id
            .as_ref()
            .is_some_and(|id| id.as_str().is_empty() || id.as_str().len() > MAX_DEVICE_ID_BYTES)
        {
            return Err(Error::invalid_param(format!(
                "device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes"
            )));
        }
        let _guard = self.write_lock.lock().await;
        let device_id = device_id.unwrap_or_else(new_device_id);
        let existing = self.store.device(user_id.as_str(), device_id.as_str())?;
        // Logging in again as an existing device replaces its tokens.
        let replaced = existing.is_some();
        let mut batch = self.store.batch();
        let now = now_ms();
        let mut device = match existing {
            Some(old) => {
                batch.delete_device(user_id.as_str(), &old);
                DeviceRecord {
                    display_name: display_name.or(old.display_name.clone()),
                    ..old
                }
            }
            None => DeviceRecord {
                device_id: device_id.clone(),
                display_name,
                created_ts: now,
                last_seen_ts: None,
                last_seen_ip: None,
                last_seen_user_agent: None,
                access_token: TokenHash::of(""),
                refresh_token: None,
                retiring_refresh_token: None,
            },
        };
        device.retiring_refresh_token = None;
        let issued = self.issue(&mut batch, user_id, &mut device, refreshable, None)?;
        batch.put_device(user_id.as_str(), &device)?;
        self.store.write(batch)?;
        if replaced {
            self.announce_revocation();
        }
        Ok(issued)
    }

    /// Creates a device that has no tokens (a dehydrated device: nobody logs in as it),
    /// writing `also` in the same batch. A device of that ID must not exist.
    pub async fn create_tokenless_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        display_name: Option<String>,
        also: impl FnOnce(&mut crate::store::Batch<'_>) -> crate::store::StoreResult<()>,
    ) -> Result<()> {
        if device_id.as_str().is_empty() || device_id.as_str().len() > MAX_DEVICE_ID_BYTES {
            return Err(Error::invalid_param(format!(
                "device_id must be 1 to {MAX_DEVICE_ID_BYTES} bytes"
            )));
        }
        let _guard = self.write_lock.lock().await;
        if self
            .store
            .device(user_id.as_str(), device_id.as_str())?
            .is_some()
        {
            return Err(Error::invalid_param(format!(
                "device {device_id} already exists"
            )));
        }
        let mut batch = self.store.batch();
        batch.put_device(
            user_id.as_str(),
            &DeviceRecord {
                device_id: device_id.to_owned(),
                display_name,
                created_ts: now_ms(),
                last_seen_ts: None,
                last_seen_ip: None,
                last_seen_user_agent: None,
                // The hash of no token any client holds.
                access_token: TokenHash::of(""),
                refresh_token: None,
                retiring_refresh_token: None,
            },
        )?;
        also(&mut batch)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Puts fresh tokens on `device` and into `batch`.
    fn issue(
        &self,
        batch: &mut crate::store::Batch<'_>,
        user_id: &UserId,
        device: &mut DeviceRecord,
        refreshable: bool,
        retires: Option<TokenHash>,
    ) -> Result<IssuedTokens> {
        let access_token = new_token("hat_");
        let access_hash = TokenHash::of(&access_token);
        let (refresh_token, expires_in_ms) = if refreshable {
            (Some(new_token("hrt_")), Some(self.refreshable_lifetime_ms))
        } else {
            (None, None)
        };
        batch.put_access_token(
            &access_hash,
            &AccessTokenRecord {
                user_id: user_id.to_owned(),
                device_id: device.device_id.clone(),
                expires_at_ms: expires_in_ms.map(|ms| now_ms() + ms),
                retires_refresh_token: retires,
            },
        )?;
        device.access_token = access_hash;
        device.refresh_token = None;
        if let Some(refresh) = &refresh_token {
            let hash = TokenHash::of(refresh);
            batch.put_refresh_token(
                &hash,
                &RefreshTokenRecord {
                    user_id: user_id.to_owned(),
                    device_id: device.device_id.clone(),
                },
            )?;
            device.refresh_token = Some(hash);
        }
        Ok(IssuedTokens {
            device_id: device.device_id.clone(),
            access_token,
            refresh_token,
            expires_in_ms,
        })
    }

    /// Exchanges a refresh token for new tokens. The old refresh token stays usable until
    /// the new tokens are used, so a client that lost this response can ask again.
    pub async fn refresh(&self, refresh_token: &str) -> Result<IssuedTokens> {
        let unknown = || {
            Error::new(
                ErrorKind::UnknownToken { soft_logout: false },
                "Unknown refresh token",
            )
        };
        let _guard = self.write_lock.lock().await;
        let hash = TokenHash::of(refresh_token);
        let record = self.store.refresh_token(&hash)?.ok_or_else(unknown)?;
        let mut device = self
            .store
            .device(record.user_id.as_str(), record.device_id.as_str())?
            .ok_or_else(unknown)?;
        let mut batch = self.store.batch();
        if device.refresh_token == Some(hash) {
            // The normal case: retire any older one, and the current access token.
            if let Some(older) = device.retiring_refresh_token.take() {
                batch.delete_refresh_token(&older);
            }
            device.retiring_refresh_token = Some(hash);
        } else if device.retiring_refresh_token == Some(hash) {
            // A repeat: the tokens issued last time were never used; replace them.
            if let Some(unused) = device.refresh_token {
                batch.delete_refresh_token(&unused);
            }
        } else {
            batch.delete_refresh_token(&hash);
            self.store.write(batch)?;
            return Err(unknown());
        }
        batch.delete_access_token(&device.access_token);
        let issued = self.issue(&mut batch, &record.user_id, &mut device, true, Some(hash))?;
        batch.put_device(record.user_id.as_str(), &device)?;
        self.store.write(batch)?;
        self.announce_revocation();
        Ok(issued)
    }

    /// Deletes devices with all their tokens and the pushers they set, in one batch;
    /// returns the deleted pushers' `(app_id, pushkey)`. Devices that do not exist are
    /// skipped, as the spec asks for `delete_devices`.
    pub async fn delete_devices(
        &self,
        user_id: &UserId,
        device_ids: &[OwnedDeviceId],
    ) -> Result<Vec<(String, String)>> {
        let _guard = self.write_lock.lock().await;
        let mut batch = self.store.batch();
        for device_id in device_ids {
            if let Some(device) = self.store.device(user_id.as_str(), device_id.as_str())? {
                batch.delete_device(user_id.as_str(), &device);
                batch.delete_device_e2ee(user_id.as_str(), device_id.as_str())?;
            }
        }
        let mut pushers = Vec::new();
        for pusher in self.store.pushers(user_id.as_str())? {
            let of_deleted = pusher
                .device_id
                .as_deref()
                .is_some_and(|d| device_ids.iter().any(|id| id.as_str() == d));
            if of_deleted {
                batch.delete_pusher(user_id.as_str(), &pusher.app_id, &pusher.pushkey);
                pushers.push((pusher.app_id, pusher.pushkey));
            }
        }
        self.store.write(batch)?;
        self.announce_revocation();
        let mut seen = self.last_seen_map();
        for device_id in device_ids {
            seen.remove(&(user_id.to_owned(), device_id.clone()));
        }
        Ok(pushers)
    }

    fn info(&self, user_id: &UserId, device: DeviceRecord) -> DeviceInfo {
        let recent = self
            .last_seen_map()
            .get(&(user_id.to_owned(), device.device_id.clone()))
            .cloned();
        let (last_seen_ts, last_seen_ip, last_seen_user_agent) = match recent {
            Some(LastSeen {
                ts, ip, user_agent, ..
            }) => (Some(ts), Some(ip), user_agent),
            None => (
                device.last_seen_ts,
                device.last_seen_ip,
                device.last_seen_user_agent,
            ),
        };
        DeviceInfo {
            device_id: device.device_id,
            display_name: device.display_name,
            last_seen_ip,
            last_seen_ts,
            last_seen_user_agent,
        }
    }

    pub fn devices(&self, user_id: &UserId) -> Result<Vec<DeviceInfo>> {
        Ok(self
            .store
            .devices(user_id.as_str())?
            .into_iter()
            .map(|d| self.info(user_id, d))
            .collect())
    }

    pub fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<DeviceInfo> {
        self.store
            .device(user_id.as_str(), device_id.as_str())?
            .map(|d| self.info(user_id, d))
            .ok_or_else(|| Error::not_found("No such device"))
    }

    pub async fn rename_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        display_name: Option<String>,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let mut device = self
            .store
            .device(user_id.as_str(), device_id.as_str())?
            .ok_or_else(|| Error::not_found("No such device"))?;
        device.display_name = display_name;
        let mut batch = self.store.batch();
        batch.put_device(user_id.as_str(), &device)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Writes one device's last use to its record (not waiting for the disk: a
    /// last-seen time lost to a power cut is no loss), under the lock that device
    /// changes and deletions take, so that a deleted device is not written back.
    async fn persist_device_last_seen(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        seen: LastSeen,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let Some(mut device) = self.store.device(user_id.as_str(), device_id.as_str())? else {
            return Ok(());
        };
        let ts = seen.ts;
        if device.last_seen_ts.is_some_and(|stored| stored >= ts)
            && device.last_seen_ip.as_deref() == Some(seen.ip.as_str())
            && device.last_seen_user_agent == seen.user_agent
        {
            return Ok(());
        }
        device.last_seen_ts = Some(ts);
        device.last_seen_ip = Some(seen.ip);
        device.last_seen_user_agent = seen.user_agent;
        let mut batch = self.store.batch();
        batch.put_device(user_id.as_str(), &device)?;
        self.store.write_unsynced(batch)?;
        if let Some(entry) = self
            .last_seen_map()
            .get_mut(&(user_id.to_owned(), device_id.to_owned()))
        {
            entry.persisted_ts = entry.persisted_ts.max(ts);
        }
        Ok(())
    }

    /// Writes the in-memory last-seen times to the device records.
    pub fn persist_last_seen(&self) -> Result<()> {
        let seen: Vec<_> = self.last_seen_map().drain().collect();
        let mut batch = self.store.batch();
        for (
            (user_id, device_id),
            LastSeen {
                ts, ip, user_agent, ..
            },
        ) in seen
        {
            if let Some(mut device) = self.store.device(user_id.as_str(), device_id.as_str())? {
                device.last_seen_ts = Some(ts);
                device.last_seen_ip = Some(ip);
                device.last_seen_user_agent = user_agent;
                batch.put_device(user_id.as_str(), &device)?;
            }
        }
        self.store.write(batch)?;
        Ok(())
    }
}
