//! What a sync response carries of end-to-end encryption: the device's to-device
//! messages, whose device lists changed, and the device's key counts.

use ruma::{DeviceId, UserId};
use serde_json::{Map, Value};

use crate::error::Result;
use crate::service::Services;
use crate::service::sync::events_section;

/// The encryption parts of one sync response.
pub struct E2eeSync {
    pub to_device: Vec<Value>,
    /// The to-device position the response's `next_batch` carries.
    pub to_device_reached: u64,
    pub changed: Vec<String>,
    pub left: Vec<String>,
    pub one_time_key_counts: Map<String, Value>,
    pub unused_fallback_key_types: Vec<String>,
}

/// The positions of a sync window: `(since, now)` for each stream involved.
pub struct Window {
    pub to_device: (u64, u64),
    pub device_lists: (u64, u64),
    pub events: (u64, u64),
    /// No `since`: an initial sync, which carries no device-list changes.
    pub initial: bool,
}

impl E2eeSync {
    /// Whether a waiting sync should answer with this.
    pub fn has_updates(&self) -> bool {
        !self.to_device.is_empty() || !self.changed.is_empty() || !self.left.is_empty()
    }

    /// Adds the sections to a response, moving the values in (the `json!` macro would
    /// copy each one through the serializer).
    pub fn insert_into(self, response: &mut Map<String, Value>) {
        let strings =
            |list: Vec<String>| Value::Array(list.into_iter().map(Value::String).collect());
        response.insert("to_device".into(), events_section(self.to_device));
        let mut device_lists = Map::new();
        device_lists.insert("changed".into(), strings(self.changed));
        device_lists.insert("left".into(), strings(self.left));
        response.insert("device_lists".into(), Value::Object(device_lists));
        response.insert(
            "device_one_time_keys_count".into(),
            Value::Object(self.one_time_key_counts),
        );
        response.insert(
            "device_unused_fallback_key_types".into(),
            strings(self.unused_fallback_key_types),
        );
    }
}

impl Services {
    pub fn sync_e2ee(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        window: &Window,
    ) -> Result<E2eeSync> {
        let (to_device, to_device_reached) =
            self.to_device_for_sync(user_id, device_id, window.to_device.0, window.to_device.1)?;
        let (changed, left) = if window.initial {
            (Vec::new(), Vec::new())
        } else {
            let delta = self.device_list_delta(user_id, window.device_lists, window.events)?;
            (
                delta.changed.into_iter().map(|u| u.to_string()).collect(),
                delta.left.into_iter().map(|u| u.to_string()).collect(),
            )
        };
        let one_time_key_counts = self.one_time_key_counts(user_id, device_id)?;
        Ok(E2eeSync {
            to_device,
            to_device_reached,
            changed,
            left,
            one_time_key_counts,
            unused_fallback_key_types: self.unused_fallback_key_types(user_id, device_id)?,
        })
    }
}
