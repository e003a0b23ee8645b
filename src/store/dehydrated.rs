//! Dehydrated devices (MSC3814): at most one per user, a device without tokens whose
//! pickled state the client stores here to pick it up on a new login.
//!
//! - `dehydrated_devices`: user ID → [`DehydratedDeviceRecord`]. The device itself is
//!   an ordinary record in `devices` (with keys and to-device messages as any device),
//!   written in the same batch; the record is ignored once its device is gone.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DehydratedDeviceRecord {
    pub device_id: String,
    /// The client's `device_data`, stored as given (an object with `algorithm`).
    pub device_data: Value,
    pub created_ts: u64,
}

impl Store {
    pub fn dehydrated_device(&self, user_id: &str) -> StoreResult<Option<DehydratedDeviceRecord>> {
        self.get_json(Cf::DehydratedDevices, user_id.as_bytes())
    }
}

impl Batch<'_> {
    pub fn put_dehydrated_device(
        &mut self,
        user_id: &str,
        record: &DehydratedDeviceRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::DehydratedDevices, user_id.as_bytes(), record)
    }

    pub fn delete_dehydrated_device(&mut self, user_id: &str) {
        self.delete(Cf::DehydratedDevices, user_id.as_bytes());
    }
}
