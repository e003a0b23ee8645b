//! Devices' identity keys, one-time keys and fallback keys: upload, query, claim.

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::lock;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::FallbackKeyRecord;

/// The one-time key algorithm clients look up in the counts.
const SIGNED_CURVE25519: &str = "signed_curve25519";

/// The most one-time keys one upload may add.
const MAX_KEYS_PER_UPLOAD: usize = 1000;

/// The body of `/keys/upload`, typed at the edge; key objects stay JSON because their
/// signatures cover every field the client put in them.
#[derive(Debug, Default, Deserialize)]
pub struct KeysUpload {
    #[serde(default)]
    pub device_keys: Option<Map<String, Value>>,
    #[serde(default)]
    pub one_time_keys: BTreeMap<String, Value>,
    #[serde(default)]
    pub fallback_keys: BTreeMap<String, Value>,
}

/// The parts of a device-keys object the server checks.
#[derive(Deserialize)]
struct DeviceKeysShape {
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    #[allow(dead_code)]
    algorithms: Vec<String>,
    #[allow(dead_code)]
    keys: BTreeMap<String, String>,
    #[allow(dead_code)]
    signatures: BTreeMap<String, BTreeMap<String, String>>,
}

/// A one-time or fallback key: a bare string or a signed key object.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeyShape {
    Bare(#[allow(dead_code)] String),
    Signed {
        #[allow(dead_code)]
        key: String,
        #[allow(dead_code)]
        #[serde(default)]
        signatures: BTreeMap<String, BTreeMap<String, String>>,
    },
}

#[derive(Debug, Default, Deserialize)]
pub struct QueryRequest {
    #[serde(default)]
    pub device_keys: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    #[serde(default)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClaimRequest {
    #[serde(default)]
    pub one_time_keys: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `algorithm:key_id`, split; both parts non-empty.
fn split_key_id(id: &str) -> Result<(&str, &str)> {
    match id.split_once(':') {
        Some((algorithm, key)) if !algorithm.is_empty() && !key.is_empty() => Ok((algorithm, key)),
        _ => Err(Error::invalid_param(format!(
            "{id:?} is not a key ID of the form algorithm:id"
        ))),
    }
}

fn check_key_shape(id: &str, value: &Value) -> Result<()> {
    serde_json::from_value::<KeyShape>(value.clone())
        .map(|_| ())
        .map_err(|_| Error::bad_json(format!("key {id:?} is neither a string nor a signed key")))
}

impl Services {
    /// `/keys/upload` for the authenticated device; answers the one-time key counts.
    pub fn upload_keys(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        upload: KeysUpload,
    ) -> Result<Map<String, Value>> {
        if upload.one_time_keys.len() > MAX_KEYS_PER_UPLOAD {
            return Err(Error::invalid_param(format!(
                "at most {MAX_KEYS_PER_UPLOAD} one-time keys per upload"
            )));
        }
        let device_keys = match upload.device_keys {
            Some(keys) => Some(self.checked_device_keys(user_id, device_id, keys)?),
            None => None,
        };
        let mut one_time = Vec::with_capacity(upload.one_time_keys.len());
        for (id, value) in &upload.one_time_keys {
            let (algorithm, key_id) = split_key_id(id)?;
            check_key_shape(id, value)?;
            one_time.push((algorithm, key_id, value));
        }
        let mut fallback = Vec::new();
        for (id, value) in &upload.fallback_keys {
            let (algorithm, key_id) = split_key_id(id)?;
            check_key_shape(id, value)?;
            fallback.push((algorithm, key_id, value));
        }

        let user = user_id.as_str();
        let device = device_id.as_str();
        let mut keys_changed = false;
        // Applied under the lock, made durable after it, as claims are.
        let applied = {
            let _guard = lock(&self.e2ee.keys);
            let mut batch = self.store.batch();
            if let Some(keys) = &device_keys
                && self.store.device_keys(user, device)?.as_ref() != Some(keys)
            {
                batch.put_device_keys(user, device, keys)?;
                keys_changed = true;
            }
            for (algorithm, key_id, value) in one_time {
                match self
                    .store
                    .has_one_time_key(user, device, algorithm, key_id)?
                {
                    Some(old) if &old == value => {}
                    Some(_) => {
                        return Err(Error::invalid_param(format!(
                            "one-time key {algorithm}:{key_id} already exists with another value"
                        )));
                    }
                    None => batch.put_one_time_key(user, device, algorithm, key_id, value)?,
                }
            }
            for (algorithm, key_id, value) in fallback {
                let old = self.store.fallback_key(user, device, algorithm)?;
                // The same key again keeps its used mark, as Synapse does.
                if old.is_some_and(|old| old.key_id == key_id && &old.key == value) {
                    continue;
                }
                batch.put_fallback_key(
                    user,
                    device,
                    algorithm,
                    &FallbackKeyRecord {
                        key_id: key_id.to_owned(),
                        key: value.clone(),
                        used: false,
                    },
                )?;
            }
            self.store.write_visible(batch)?
        };
        self.store.make_durable(applied)?;
        if keys_changed {
            self.device_list_changed(user_id, Some(device), false)?;
        }
        self.one_time_key_counts(user_id, device_id)
    }

    /// Checks an upload as [`Self::upload_keys`] does, writing nothing.
    pub(super) fn check_keys_upload(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        upload: &KeysUpload,
    ) -> Result<()> {
        if upload.one_time_keys.len() > MAX_KEYS_PER_UPLOAD {
            return Err(Error::invalid_param(format!(
                "at most {MAX_KEYS_PER_UPLOAD} one-time keys per upload"
            )));
        }
        if let Some(keys) = &upload.device_keys {
            self.checked_device_keys(user_id, device_id, keys.clone())?;
        }
        for (id, value) in upload.one_time_keys.iter().chain(&upload.fallback_keys) {
            split_key_id(id)?;
            check_key_shape(id, value)?;
        }
        Ok(())
    }

    /// Device keys must have the spec's fields and name the uploading user and device.
    fn checked_device_keys(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        keys: Map<String, Value>,
    ) -> Result<Value> {
        let value = Value::Object(keys);
        let shape: DeviceKeysShape = serde_json::from_value(value.clone())
            .map_err(|e| Error::bad_json(format!("invalid device_keys: {e}")))?;
        if shape.user_id != user_id || shape.device_id != device_id {
            return Err(Error::invalid_param(format!(
                "device_keys are for {} {}, not for this device ({user_id} {device_id})",
                shape.user_id, shape.device_id
            )));
        }
        // The device's own signature is not checked, as Synapse does not: the spec asks
        // clients to verify the keys they fetch, and a key the server refused for its
        // signature would only hide the device from them.
        Ok(value)
    }

    /// `device_one_time_keys_count` (and `/keys/upload`'s `one_time_key_counts`), built
    /// as the JSON object it is sent as: every sync of an encrypting device carries it.
    pub fn one_time_key_counts(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Map<String, Value>> {
        let mut counts = self.store.with_one_time_key_counts(
            user_id.as_str(),
            device_id.as_str(),
            |counts| {
                counts
                    .iter()
                    .map(|(algorithm, count)| (algorithm.clone(), Value::from(*count)))
                    .collect::<Map<String, Value>>()
            },
        )?;
        // As Synapse: clients look for this one and treat a missing count as unknown.
        if !counts.contains_key(SIGNED_CURVE25519) {
            counts.insert(SIGNED_CURVE25519.to_owned(), Value::from(0));
        }
        Ok(counts)
    }

    /// The algorithms of the device's fallback keys that no claim has used.
    pub fn unused_fallback_key_types(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Vec<String>> {
        Ok(self
            .store
            .unused_fallback_key_types(user_id.as_str(), device_id.as_str())?)
    }

    /// Device keys of local users, as `/keys/query` answers them: all devices when the
    /// list is empty, with each device's display name in `unsigned`.
    pub fn local_device_keys(
        &self,
        user_id: &UserId,
        devices: &[OwnedDeviceId],
    ) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        // Both in the order of their device IDs (their keys' order in the store).
        let known = self.store.devices_shared(user_id.as_str())?;
        let mut known = known.iter().peekable();
        for (device_id, keys) in self.store.all_device_keys(user_id.as_str())?.iter() {
            while known
                .next_if(|d| d.device_id.as_str() < device_id.as_str())
                .is_some()
            {}
            // Keys left by a device deleted before keys were deleted with it.
            let Some(device) = known.next_if(|d| d.device_id.as_str() == device_id.as_str()) else {
                continue;
            };
            if !devices.is_empty() && !devices.contains(&device.device_id) {
                continue;
            }
            let name = &device.display_name;
            let mut keys = keys.clone();
            // `unsigned` is always there, as Synapse answers it; the name when there is one.
            if let Some(object) = keys.as_object_mut() {
                let unsigned = object.entry("unsigned").or_insert_with(|| json!({}));
                if let (Some(name), Some(unsigned)) = (name, unsigned.as_object_mut()) {
                    unsigned.insert("device_display_name".into(), json!(name));
                }
            }
            out.insert(device_id.clone(), keys);
        }
        Ok(out)
    }

    /// Claims one key per requested local device: a one-time key while there are any,
    /// then the fallback key (marked used, given out again until replaced). The fsync is
    /// awaited, not blocked on.
    pub async fn claim_local_keys(
        &self,
        claims: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
    ) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let _guard = lock(&self.e2ee.keys);
        let mut batch = self.store.batch();
        let mut used_fallback = Vec::new();
        // The devices whose one-time keys go, with their keys before, to be known after
        // the write.
        let mut taken = Vec::new();
        for (user_id, devices) in claims {
            if user_id.server_name() != self.server_name() {
                continue;
            }
            let user = user_id.as_str();
            let mut claimed = Map::new();
            for (device_id, algorithm) in devices {
                let device = device_id.as_str();
                if let Some(mut first) = self.store.first_one_time_key(user, device, algorithm)? {
                    batch.delete_one_time_key(user, device, algorithm, &first.key_id);
                    let key = std::mem::take(&mut first.key);
                    claimed.insert(
                        device.to_owned(),
                        json!({ format!("{algorithm}:{}", first.key_id): key }),
                    );
                    taken.push((user, device, first));
                } else if let Some(mut record) = self.store.fallback_key(user, device, algorithm)? {
                    claimed.insert(
                        device.to_owned(),
                        json!({ format!("{algorithm}:{}", record.key_id): record.key }),
                    );
                    if !record.used {
                        record.used = true;
                        batch.put_fallback_key(user, device, algorithm, &record)?;
                        used_fallback.push(user_id.clone());
                    }
                }
            }
            if !claimed.is_empty() {
                out.insert(user.to_owned(), Value::Object(claimed));
            }
        }
        // Applied under the lock, so the next claim sees these keys gone; made durable
        // after it, so that claims arriving together share one fsync.
        let applied = self.store.write_visible(batch)?;
        // One key per device and claim: each device's sync then reads its count, and the
        // next claim its next key, from memory rather than walking its keys again.
        for (user, device, first) in taken {
            self.store.note_one_time_key_claimed(user, device, first);
        }
        drop(_guard);
        self.store.durable(applied).await?;
        // The device learns through its sync that its fallback key is used.
        self.notifier.wake(used_fallback.iter().map(|u| u.as_ref()));
        Ok(out)
    }
}
