//! End-to-end encryption, server side: devices' keys (`keys.rs`), cross-signing
//! (`cross_signing.rs`), the device-list stream (`device_lists.rs`), to-device messages
//! (`to_device.rs`), what `/sync` carries of them (`sync.rs`), the same over
//! federation (`federation.rs`), other servers' users' device lists
//! (`remote_devices.rs`) and dehydrated devices (`dehydrated.rs`).

mod cross_signing;
mod dehydrated;
mod device_lists;
mod federation;
mod keys;
mod remote_devices;
mod sync;
mod to_device;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use ruma::{OwnedDeviceId, UserId};

pub use cross_signing::{SignaturesUpload, SigningKeysUpload};
pub use dehydrated::DehydratedDeviceUpload;
pub use keys::{ClaimRequest, KeysUpload, QueryRequest};
pub use sync::{E2eeSync, Window};
pub use to_device::Messages;
pub use to_device::{MAX_PENDING_PER_DEVICE, MAX_PER_SYNC as MAX_TO_DEVICE_PER_SYNC};

use crate::error::Result;
use crate::service::Services;
use crate::store::{AcknowledgedMessages, Store, StoreResult};

/// The positions of the streams this feature adds, each changed only under its lock
/// and only after the write that it names is in the store, so that a reader never sees
/// a position whose record is not there yet.
pub struct E2ee {
    device_lists: Mutex<u64>,
    /// Serialises the writers of to-device messages (sends, which hand out positions in
    /// order, and acknowledgements), and of each device's pending positions kept in memory;
    /// holds the acknowledged messages whose deletion is not written yet.
    to_device: Mutex<AcknowledgedMessages>,
    /// The to-device stream's position: moved under that lock once the write it names is
    /// in the store, and read without it (every sync reads it).
    to_device_visible: AtomicU64,
    /// Serialises changes to one-time and fallback keys, so that a key is given out
    /// once even when claims race.
    keys: Mutex<()>,
    /// Other servers' users' device lists being updated.
    remote: remote_devices::RemoteLists,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How far the to-device position moves at each start. A send is visible (a sync may
/// hand its position out in a `next_batch`) a moment before it is durable
/// (`store::durable`), so a power loss can take back positions a client already holds;
/// without the jump, messages sent after the restart would reuse them, and that client's
/// next sync would skip them and acknowledge (delete) them unseen. One shared fsync's
/// window holds far fewer sends than this.
const TO_DEVICE_START_GAP: u64 = 1 << 20;

/// The stored position moved on by [`TO_DEVICE_START_GAP`], stored durably before
/// anything is handed out: a second power loss then cannot take the jump back either.
fn to_device_position_after_start(store: &Store) -> StoreResult<u64> {
    let position = store
        .to_device_position()?
        .saturating_add(TO_DEVICE_START_GAP);
    let mut batch = store.batch();
    batch.set_to_device_position(position);
    store.write(batch)?;
    Ok(position)
}

impl E2ee {
    pub fn new(store: &Store) -> StoreResult<Self> {
        let to_device_position = to_device_position_after_start(store)?;
        Ok(Self {
            device_lists: Mutex::new(store.last_u64_key(crate::store::Cf::DeviceListStream)?),
            to_device: Mutex::new(AcknowledgedMessages::default()),
            to_device_visible: AtomicU64::new(to_device_position),
            keys: Mutex::new(()),
            remote: remote_devices::RemoteLists::default(),
        })
    }

    pub fn device_list_position(&self) -> u64 {
        *lock(&self.device_lists)
    }

    pub fn to_device_position(&self) -> u64 {
        self.to_device_visible.load(Ordering::Acquire)
    }

    /// Under the to-device lock, once the write the position names is in the store.
    fn to_device_moved(&self, position: u64) {
        self.to_device_visible.store(position, Ordering::Release);
    }
}

impl Services {
    /// Deletes devices with their tokens, keys, waiting messages and the pushers they set,
    /// and tells those who share a room with the user.
    pub async fn remove_devices(
        &self,
        user_id: &UserId,
        device_ids: &[OwnedDeviceId],
    ) -> Result<()> {
        let mut existing = Vec::new();
        for device_id in device_ids {
            if self
                .store
                .device(user_id.as_str(), device_id.as_str())?
                .is_some()
            {
                existing.push(device_id);
            }
        }
        let pushers = self.sessions.delete_devices(user_id, device_ids).await?;
        for (app_id, pushkey) in pushers {
            self.pushers.stop(user_id, &app_id, &pushkey);
        }
        for device_id in existing {
            self.device_list_changed(user_id, Some(device_id.as_str()), true)?;
        }
        Ok(())
    }

    /// Deletes every device of the user but `keep`, as [`Self::remove_devices`].
    pub async fn remove_all_devices(
        &self,
        user_id: &UserId,
        keep: Option<&ruma::DeviceId>,
    ) -> Result<()> {
        let ids: Vec<OwnedDeviceId> = self
            .store
            .devices_shared(user_id.as_str())?
            .iter()
            .map(|d| d.device_id.clone())
            .filter(|id| Some(id.as_ref()) != keep)
            .collect();
        self.remove_devices(user_id, &ids).await
    }
}
