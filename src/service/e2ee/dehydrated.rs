//! Dehydrated devices (MSC3814): a device the client keeps on the server while it has
//! no session open, so that others can still encrypt to it. The client uploads the
//! device's pickled state (`device_data`, opaque to the server) with its keys; on a new
//! login it fetches the state and the to-device messages that arrived meanwhile, then
//! replaces the device with a fresh one. As Synapse: one per user, a new one deletes
//! the old, and only the current one's messages can be fetched.

use std::collections::BTreeMap;

use ruma::{DeviceId, OwnedDeviceId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::KeysUpload;
use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::DehydratedDeviceRecord;

/// The body of `PUT /dehydrated_device`.
#[derive(Debug, Deserialize)]
pub struct DehydratedDeviceUpload {
    pub device_id: OwnedDeviceId,
    pub device_data: Map<String, Value>,
    #[serde(default)]
    pub initial_device_display_name: Option<String>,
    #[serde(default)]
    pub device_keys: Option<Map<String, Value>>,
    #[serde(default)]
    pub one_time_keys: BTreeMap<String, Value>,
    #[serde(default)]
    pub fallback_keys: BTreeMap<String, Value>,
}

impl Services {
    /// The user's dehydrated device and its data, if it still exists.
    pub fn dehydrated_device(&self, user_id: &UserId) -> Result<Option<(OwnedDeviceId, Value)>> {
        let Some(record) = self.store.dehydrated_device(user_id.as_str())? else {
            return Ok(None);
        };
        if self
            .store
            .device(user_id.as_str(), &record.device_id)?
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some((record.device_id.into(), record.device_data)))
    }

    /// `PUT /dehydrated_device`: replaces the user's dehydrated device (deleting the
    /// old one with its keys and messages) by a new one with the given keys.
    pub async fn put_dehydrated_device(
        &self,
        user_id: &UserId,
        upload: DehydratedDeviceUpload,
    ) -> Result<OwnedDeviceId> {
        if !upload
            .device_data
            .get("algorithm")
            .is_some_and(Value::is_string)
        {
            return Err(Error::bad_json("device_data must have an algorithm string"));
        }
        let Some(device_keys) = upload.device_keys else {
            return Err(Error::missing_param(
                "device_keys are required for a dehydrated device",
            ));
        };
        let device_id = upload.device_id;
        let keys = KeysUpload {
            device_keys: Some(device_keys),
            one_time_keys: upload.one_time_keys,
            fallback_keys: upload.fallback_keys,
        };
        self.check_keys_upload(user_id, &device_id, &keys)?;
        let old = self.dehydrated_device(user_id)?.map(|(old, _)| old);
        // Checked before the old one goes: an ordinary device's ID is refused.
        if old.as_ref() != Some(&device_id)
            && self
                .store
                .device(user_id.as_str(), device_id.as_str())?
                .is_some()
        {
            return Err(Error::invalid_param(format!(
                "device {device_id} already exists"
            )));
        }
        if let Some(old) = old {
            self.remove_devices(user_id, &[old]).await?;
        }
        let record = DehydratedDeviceRecord {
            device_id: device_id.to_string(),
            device_data: Value::Object(upload.device_data),
            created_ts: now_ms(),
        };
        self.sessions
            .create_tokenless_device(
                user_id,
                &device_id,
                upload.initial_device_display_name,
                |batch| batch.put_dehydrated_device(user_id.as_str(), &record),
            )
            .await?;
        if let Err(error) = self.upload_keys(user_id, &device_id, keys) {
            // Checked above; should the write fail, no device is left behind.
            self.remove_devices(user_id, std::slice::from_ref(&device_id))
                .await?;
            return Err(error);
        }
        // Others learn of the device even when its keys were uploaded before (a retry).
        self.device_list_changed(user_id, Some(device_id.as_str()), false)?;
        Ok(device_id)
    }

    /// `DELETE /dehydrated_device`: deletes it; answers its ID.
    pub async fn delete_dehydrated_device(&self, user_id: &UserId) -> Result<OwnedDeviceId> {
        let Some((device_id, _)) = self.dehydrated_device(user_id)? else {
            return Err(Error::not_found("No dehydrated device"));
        };
        self.remove_devices(user_id, std::slice::from_ref(&device_id))
            .await?;
        let mut batch = self.store.batch();
        batch.delete_dehydrated_device(user_id.as_str());
        self.store.write(batch)?;
        Ok(device_id)
    }

    /// `POST /dehydrated_device/{deviceId}/events`: the device's to-device messages
    /// after `next_batch` (those up to it are deleted, as a sync's `since` does), at
    /// most 100, with the position to ask from next. Only the user's current
    /// dehydrated device, as Synapse.
    pub fn dehydrated_device_events(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        next_batch: Option<&str>,
    ) -> Result<Value> {
        match self.dehydrated_device(user_id)? {
            None => return Err(Error::forbidden("No dehydrated device exists")),
            Some((current, _)) if current.as_str() != device_id.as_str() => {
                return Err(Error::forbidden(
                    "You may only fetch messages for your dehydrated device",
                ));
            }
            Some(_) => {}
        }
        let after = match next_batch {
            None => 0,
            Some(token) => token.parse::<u64>().map_err(|_| {
                Error::invalid_param(format!("next_batch {token:?} is not from this server"))
            })?,
        };
        if after > 0 {
            self.acknowledge_to_device(user_id, device_id, after)?;
        }
        let upto = self.e2ee.to_device_position();
        let (events, reached) = self.to_device_for_sync(user_id, device_id, after, upto)?;
        Ok(json!({"events": events, "next_batch": reached.to_string()}))
    }
}
