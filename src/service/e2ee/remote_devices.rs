//! Other servers' users' device lists (spec server-server API, "Device Management"),
//! kept for the local users who share a room with them: updated by the
//! `m.device_list_update` EDUs whose `prev_id` continues what is kept, fetched whole
//! again with `GET /_matrix/federation/v1/user/devices/{userId}` (a resync) when an
//! update was missed or nothing is kept, and answered to `/keys/query` from what is
//! kept, so that a query needs no other server and a server that is down changes nothing.
//!
//! Updates of one user are applied in the order they arrived, by one worker at a time,
//! and resyncs of the user wait for it (a lock per user). Every change of a kept list
//! is written whole with its entry on the device-list stream, in one batch, so that
//! local users' syncs see it and a crash leaves either both or neither.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lock;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::federation::edus::{self, DeviceListUpdate, SigningKeyUpdate};
use crate::store::{RemoteDeviceList, RemoteDeviceRecord};

/// More devices than this in one answer is taken for a broken or hostile server (the
/// bound Synapse uses too): nothing of it is kept.
const MAX_REMOTE_DEVICES: usize = 1000;
/// Resyncs under way at once, across all users.
const MAX_CONCURRENT_RESYNCS: usize = 10;
/// How long one resync may take.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Updates of one user waiting to be applied; past this, they are dropped for a resync.
const MAX_PENDING_UPDATES: usize = 1000;

/// An update waiting to be applied.
enum Update {
    Devices(DeviceListUpdate),
    SigningKeys(SigningKeyUpdate),
    /// Updates were dropped: only a resync brings the list up to date.
    Missed,
}

/// The in-memory side: updates waiting per user, a lock per user, and the bound on
/// resyncs at once.
pub struct RemoteLists {
    /// A user is here while a worker applies their updates.
    pending: Mutex<HashMap<OwnedUserId, VecDeque<Update>>>,
    locks: Mutex<HashMap<OwnedUserId, Arc<tokio::sync::Mutex<()>>>>,
    resyncs: tokio::sync::Semaphore,
}

impl Default for RemoteLists {
    fn default() -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            resyncs: tokio::sync::Semaphore::new(MAX_CONCURRENT_RESYNCS),
        }
    }
}

impl RemoteLists {
    /// The user's lock; locks nobody holds are dropped now and then.
    fn user_lock(&self, user_id: &UserId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.locks);
        if locks.len() >= 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(user_id.to_owned()).or_default().clone()
    }
}

/// The body of a `/user/devices` answer (the fields this server reads).
#[derive(Deserialize)]
struct DevicesAnswer {
    user_id: OwnedUserId,
    stream_id: u64,
    #[serde(default)]
    devices: Vec<AnsweredDevice>,
    #[serde(default)]
    master_key: Option<Value>,
    #[serde(default)]
    self_signing_key: Option<Value>,
}

#[derive(Deserialize)]
struct AnsweredDevice {
    device_id: String,
    #[serde(default)]
    keys: Option<Value>,
    #[serde(default)]
    device_display_name: Option<String>,
}

/// A `/user/devices` answer for `user_id` as the list to keep.
fn parse_answer(user_id: &UserId, answer: Value) -> std::result::Result<RemoteDeviceList, String> {
    let answer: DevicesAnswer =
        serde_json::from_value(answer).map_err(|e| format!("not a device list: {e}"))?;
    if answer.user_id != user_id {
        return Err(format!("an answer for {}", answer.user_id));
    }
    if answer.devices.len() > MAX_REMOTE_DEVICES {
        return Err(format!("{} devices", answer.devices.len()));
    }
    let mut list = RemoteDeviceList {
        stream_id: answer.stream_id,
        ..RemoteDeviceList::default()
    };
    for device in answer.devices {
        list.devices.insert(
            device.device_id,
            RemoteDeviceRecord {
                keys: device.keys.filter(Value::is_object),
                display_name: device.device_display_name,
            },
        );
    }
    list.master_key = answer
        .master_key
        .filter(|k| super::cross_signing::check_key(k, user_id, "master"));
    list.self_signing_key = answer
        .self_signing_key
        .filter(|k| super::cross_signing::check_key(k, user_id, "self_signing"));
    Ok(list)
}

/// A path segment with everything but the unreserved characters percent-encoded.
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A kept device as `/keys/query` answers it: its keys, with its name in `unsigned`
/// (always there, as for local devices); `None` for a device without keys.
fn queried_device(device: &RemoteDeviceRecord) -> Option<Value> {
    let mut keys = device.keys.clone()?;
    let object = keys.as_object_mut()?;
    if object.is_empty() {
        return None;
    }
    let unsigned = object.entry("unsigned").or_insert_with(|| json!({}));
    if let (Some(name), Some(unsigned)) = (&device.display_name, unsigned.as_object_mut()) {
        unsigned.insert("device_display_name".into(), json!(name));
    }
    Some(keys)
}

impl Services {
    /// An `m.device_list_update` EDU from `origin` about one of its users: queued for
    /// the user's worker if a local user shares a room with them.
    pub fn device_list_update_edu(
        self: &Arc<Self>,
        origin: &ruma::ServerName,
        content: &Value,
    ) -> Result<()> {
        let update = edus::device_list_update(origin, content)?;
        let user_id = update.user_id.clone();
        self.queue_remote_update(user_id, Update::Devices(update))
    }

    /// An `m.signing_key_update` EDU: the remote user's master or self-signing key changed.
    pub fn signing_key_update_edu(
        self: &Arc<Self>,
        origin: &ruma::ServerName,
        content: &Value,
    ) -> Result<()> {
        let update = edus::signing_key_update(origin, content)?;
        let user_id = update.user_id.clone();
        self.queue_remote_update(user_id, Update::SigningKeys(update))
    }

    fn queue_remote_update(self: &Arc<Self>, user_id: OwnedUserId, update: Update) -> Result<()> {
        if !self.shares_room_with_local_user(&user_id)? {
            // Nobody here follows the user any more: what is kept would go stale unseen.
            return self.forget_remote_devices(&user_id);
        }
        let start = {
            let mut pending = lock(&self.e2ee.remote.pending);
            match pending.get_mut(&user_id) {
                Some(queue) => {
                    if queue.len() >= MAX_PENDING_UPDATES {
                        queue.clear();
                        queue.push_back(Update::Missed);
                    }
                    queue.push_back(update);
                    false
                }
                None => {
                    pending.insert(user_id.clone(), VecDeque::from([update]));
                    true
                }
            }
        };
        if start {
            let services = self.clone();
            tokio::spawn(async move { services.apply_remote_updates(user_id).await });
        }
        Ok(())
    }

    /// The worker of one user: applies their updates in order until none is left.
    async fn apply_remote_updates(self: Arc<Self>, user_id: OwnedUserId) {
        loop {
            let updates: Vec<Update> = {
                let mut pending = lock(&self.e2ee.remote.pending);
                let Some(queue) = pending.get_mut(&user_id) else {
                    return;
                };
                if queue.is_empty() {
                    pending.remove(&user_id);
                    return;
                }
                queue.drain(..).collect()
            };
            let user_lock = self.e2ee.remote.user_lock(&user_id);
            let _guard = user_lock.lock().await;
            for update in updates {
                let outcome = match update {
                    Update::Devices(update) => self.apply_device_update(update).await,
                    Update::SigningKeys(update) => self.apply_signing_key_update(update),
                    Update::Missed => self.resync_remote_devices(&user_id).await,
                };
                if let Err(e) = outcome {
                    tracing::info!(%user_id, error = %e.message, "remote device-list update not applied");
                }
            }
        }
    }

    /// One `m.device_list_update`, under the user's lock: applied when it continues the
    /// kept list (every `prev_id` at or before the kept `stream_id`), ignored when the
    /// list already has it, and otherwise the list is fetched whole.
    async fn apply_device_update(&self, update: DeviceListUpdate) -> Result<()> {
        let user_id = update.user_id.clone();
        let Some(mut list) = self
            .store
            .remote_device_list(user_id.as_str())?
            .filter(|l| !l.stale)
        else {
            return self.resync_remote_devices(&user_id).await;
        };
        if update.stream_id <= list.stream_id {
            return Ok(());
        }
        // An update naming none before it could follow anything (Synapse resyncs too).
        if update.prev_id.is_empty() || update.prev_id.iter().any(|p| *p > list.stream_id) {
            return self.resync_remote_devices(&user_id).await;
        }
        let deleted = update.deleted.unwrap_or(false);
        if deleted {
            list.devices.remove(&update.device_id);
        } else {
            if list.devices.len() >= MAX_REMOTE_DEVICES
                && !list.devices.contains_key(&update.device_id)
            {
                return Err(Error::invalid_param(format!(
                    "{user_id} would have more than {MAX_REMOTE_DEVICES} devices"
                )));
            }
            list.devices.insert(
                update.device_id.clone(),
                RemoteDeviceRecord {
                    keys: update.keys,
                    display_name: update.device_display_name,
                },
            );
        }
        list.stream_id = update.stream_id;
        self.keep_remote_list(&user_id, &list, Some(&update.device_id), deleted)
    }

    /// One `m.signing_key_update`, under the user's lock: the keys replace the kept ones
    /// (a key that is not a valid cross-signing key of the user is ignored). Without a
    /// kept list, local users are only told that the user changed, and their query
    /// fetches the list.
    fn apply_signing_key_update(&self, update: SigningKeyUpdate) -> Result<()> {
        let user_id = update.user_id;
        let master = update
            .master_key
            .filter(|k| super::cross_signing::check_key(k, &user_id, "master"));
        let self_signing = update
            .self_signing_key
            .filter(|k| super::cross_signing::check_key(k, &user_id, "self_signing"));
        if master.is_none() && self_signing.is_none() {
            return Ok(());
        }
        match self.store.remote_device_list(user_id.as_str())? {
            Some(mut list) => {
                if master.is_some() {
                    list.master_key = master;
                }
                if self_signing.is_some() {
                    list.self_signing_key = self_signing;
                }
                self.keep_remote_list(&user_id, &list, None, false)
            }
            None => {
                self.record_device_list_change(&user_id, None, false, false, |_, _, _| Ok(()))?;
                self.wake_local_audience(&user_id)
            }
        }
    }

    /// Fetches the user's whole list from their server, under the user's lock, and keeps
    /// it (local users are told when it differs from what was kept). On failure a kept
    /// list is marked stale, still answered, and fetched again at the next chance.
    async fn resync_remote_devices(&self, user_id: &UserId) -> Result<()> {
        let server = user_id.server_name();
        let path = format!(
            "/_matrix/federation/v1/user/devices/{}",
            path_segment(user_id.as_str())
        );
        let answer = {
            let _permit = self.e2ee.remote.resyncs.acquire().await;
            tokio::time::timeout(
                RESYNC_TIMEOUT,
                self.federation.send_json(server, Method::GET, &path, None),
            )
            .await
        };
        let fetched = match answer {
            Ok(Ok(value)) => parse_answer(user_id, value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        };
        let old = self.store.remote_device_list(user_id.as_str())?;
        match fetched {
            Ok(list) => {
                if old.as_ref() != Some(&list) {
                    self.keep_remote_list(user_id, &list, None, false)?;
                }
                Ok(())
            }
            Err(detail) => {
                if let Some(mut old) = old.filter(|l| !l.stale) {
                    old.stale = true;
                    let mut batch = self.store.batch();
                    batch.put_remote_device_list(user_id.as_str(), &old)?;
                    self.store.write(batch)?;
                }
                Err(Error::new(
                    crate::error::ErrorKind::BadGateway,
                    format!("cannot fetch the devices of {user_id}: {detail}"),
                ))
            }
        }
    }

    /// Writes the kept list with its entry on the device-list stream, and wakes the
    /// local users who share a room with the user.
    fn keep_remote_list(
        &self,
        user_id: &UserId,
        list: &RemoteDeviceList,
        device_id: Option<&str>,
        deleted: bool,
    ) -> Result<()> {
        self.record_device_list_change(user_id, device_id, deleted, false, |batch, _, _| {
            batch.put_remote_device_list(user_id.as_str(), list)
        })?;
        self.wake_local_audience(user_id)
    }

    fn wake_local_audience(&self, user_id: &UserId) -> Result<()> {
        let audience = self.co_members(user_id)?;
        self.notifier.wake(
            audience
                .iter()
                .filter(|u| u.server_name() == self.server_name())
                .map(|u| u.as_ref()),
        );
        Ok(())
    }

    /// Drops what is kept of a user no local user shares a room with any more.
    pub(super) fn forget_remote_devices(&self, user_id: &UserId) -> Result<()> {
        if self.store.remote_device_list(user_id.as_str())?.is_some() {
            let mut batch = self.store.batch();
            batch.delete_remote_device_list(user_id.as_str());
            self.store.write(batch)?;
        }
        Ok(())
    }

    /// The kept list of a remote user a local user shares a room with, fetched first if
    /// nothing is kept or it is stale (within `timeout`; the fetch goes on after it and
    /// keeps what it gets). A stale list is answered when the fetch fails: a server
    /// that is down changes nothing. `None` when nothing is known.
    pub(super) async fn remote_devices_for_query(
        self: &Arc<Self>,
        user_id: &UserId,
        timeout: Duration,
    ) -> Result<Option<RemoteDeviceList>> {
        if let Some(list) = self.store.remote_device_list(user_id.as_str())?
            && !list.stale
        {
            return Ok(Some(list));
        }
        let services = self.clone();
        let user = user_id.to_owned();
        let resync = tokio::spawn(async move {
            let user_lock = services.e2ee.remote.user_lock(&user);
            let _guard = user_lock.lock().await;
            // Another query or an update may have brought the list while this waited.
            match services.store.remote_device_list(user.as_str()) {
                Ok(Some(list)) if !list.stale => Ok(()),
                _ => services.resync_remote_devices(&user).await,
            }
        });
        match tokio::time::timeout(timeout, resync).await {
            Ok(Ok(Err(e))) => {
                tracing::info!(%user_id, error = %e.message, "device-list resync failed")
            }
            Ok(_) => {}
            Err(_) => {
                tracing::info!(%user_id, "device-list resync still running at the query's timeout")
            }
        }
        Ok(self.store.remote_device_list(user_id.as_str())?)
    }
}

/// A kept list into a `/keys/query` answer: the devices asked for (all if none is
/// named) that have keys, and the user's master and self-signing keys.
pub(super) fn add_remote_keys(
    response: &mut Map<String, Value>,
    user_id: &UserId,
    devices: &[ruma::OwnedDeviceId],
    list: &RemoteDeviceList,
) {
    let mut keys = Map::new();
    for (device_id, device) in &list.devices {
        if !devices.is_empty() && !devices.iter().any(|d| d.as_str() == device_id) {
            continue;
        }
        if let Some(value) = queried_device(device) {
            keys.insert(device_id.clone(), value);
        }
    }
    if let Some(map) = response
        .get_mut("device_keys")
        .and_then(Value::as_object_mut)
    {
        map.insert(user_id.to_string(), Value::Object(keys));
    }
    for (field, key) in [
        ("master_keys", &list.master_key),
        ("self_signing_keys", &list.self_signing_key),
    ] {
        if let Some(key) = key
            && let Some(map) = response.get_mut(field).and_then(Value::as_object_mut)
        {
            map.insert(user_id.to_string(), key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_and_devices_without_keys_are_not_queried() {
        let user: OwnedUserId = "@a:remote.test".try_into().unwrap();
        let list = parse_answer(
            &user,
            json!({
                "user_id": "@a:remote.test",
                "stream_id": 7,
                "devices": [
                    {"device_id": "K", "keys": {"device_keys": {}}, "device_display_name": "phone"},
                    {"device_id": "N"},
                    {"device_id": "S", "keys": "not an object"},
                ],
                "master_key": {"user_id": "@other:remote.test", "usage": ["master"], "keys": {"ed25519:x": "x"}},
            }),
        )
        .unwrap();
        assert_eq!(list.stream_id, 7);
        assert_eq!(list.devices.len(), 3);
        assert!(list.master_key.is_none(), "another user's key is not kept");
        let mut response = Map::new();
        for field in ["device_keys", "master_keys", "self_signing_keys"] {
            response.insert(field.into(), json!({}));
        }
        add_remote_keys(&mut response, &user, &[], &list);
        let devices = &response["device_keys"]["@a:remote.test"];
        assert_eq!(
            devices["K"]["unsigned"]["device_display_name"],
            json!("phone")
        );
        assert!(devices.get("N").is_none() && devices.get("S").is_none());
        assert!(parse_answer(&user, json!({"user_id": "@b:remote.test", "stream_id": 1})).is_err());
        let many: Vec<Value> = (0..=MAX_REMOTE_DEVICES)
            .map(|i| json!({"device_id": format!("D{i}")}))
            .collect();
        assert!(
            parse_answer(
                &user,
                json!({"user_id": user, "stream_id": 1, "devices": many})
            )
            .is_err()
        );
        assert_eq!(path_segment("@a:remote.test"), "%40a%3Aremote.test");
    }
}
