//! Other servers' users' device lists, as this server keeps them for its own users'
//! `/keys/query` (spec server-server API, "Device Management"):
//!
//! - `remote_device_lists`: `user` → [`RemoteDeviceList`], one record per remote user,
//!   written whole so that a list is never half updated.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult};

/// A remote user's devices and cross-signing keys, up to date with `stream_id` of the
/// user's server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteDeviceList {
    /// The position on the user's server's stream the list reflects: every update up to
    /// it is in the list.
    pub stream_id: u64,
    /// Device ID → the device.
    #[serde(default)]
    pub devices: BTreeMap<String, RemoteDeviceRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signing_key: Option<Value>,
    /// An update was missed and fetching the whole list again failed: the list is still
    /// answered, and fetched again at the next query or update.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemoteDeviceRecord {
    /// The device's signed keys as its server gave them, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl Store {
    pub fn remote_device_list(&self, user_id: &str) -> StoreResult<Option<RemoteDeviceList>> {
        self.get_json(Cf::RemoteDeviceLists, user_id.as_bytes())
    }
}

impl Batch<'_> {
    pub fn put_remote_device_list(
        &mut self,
        user_id: &str,
        list: &RemoteDeviceList,
    ) -> StoreResult<()> {
        self.put_json(Cf::RemoteDeviceLists, user_id.as_bytes(), list)
    }

    pub fn delete_remote_device_list(&mut self, user_id: &str) {
        self.delete(Cf::RemoteDeviceLists, user_id.as_bytes());
    }
}
