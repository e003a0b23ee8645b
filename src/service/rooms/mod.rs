//! Rooms: appending local events to a room's DAG, room state, and the client view of events.

mod create;
mod format;
mod membership;
mod state;
mod timeline;
mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, RoomId};

use crate::error::{Error, ErrorKind};
use crate::event::EventError;
use crate::store::{Cf, Store, StoreResult};

pub use create::{CreateRoom, Preset};
pub use format::ClientView;
pub use membership::MembershipChange;
pub use timeline::{EventTemplate, TxnRef};

/// Largest event, as the spec limits PDUs.
pub const MAX_EVENT_BYTES: usize = 65_536;

pub struct Rooms {
    /// One lock per room: appending reads the room's head and writes a new one, and two
    /// appends must not both attach to the same head.
    locks: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>,
    stream: AtomicU64,
    state_groups: AtomicU64,
    /// Held for a whole upgrade, which spans many appends to two rooms.
    pub upgrades: tokio::sync::Mutex<()>,
}

impl Rooms {
    /// Counters resume from the highest key written, not from a separately stored value
    /// that concurrent batches could write out of order.
    pub fn new(store: &Store) -> StoreResult<Self> {
        Ok(Self {
            locks: Mutex::new(HashMap::new()),
            stream: AtomicU64::new(store.last_u64_key(Cf::Stream)?),
            state_groups: AtomicU64::new(store.last_u64_key(Cf::StateGroups)?),
            upgrades: tokio::sync::Mutex::new(()),
        })
    }

    pub async fn lock(&self, room_id: &RoomId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(room_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn next_stream(&self) -> u64 {
        self.stream.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn next_state_group(&self) -> u64 {
        self.state_groups.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The newest position on the event stream.
    pub fn stream_position(&self) -> u64 {
        self.stream.load(Ordering::SeqCst)
    }
}

impl From<EventError> for Error {
    fn from(err: EventError) -> Self {
        match err {
            EventError::Unauthorized(reason) => Error::forbidden(reason),
            EventError::CanonicalJson(why) | EventError::InvalidEvent(why) => {
                Error::new(ErrorKind::BadJson, why)
            }
            EventError::TooLarge(_) => Error::new(
                ErrorKind::TooLarge,
                format!("Event is larger than {MAX_EVENT_BYTES} bytes"),
            ),
            EventError::UnsupportedRoomVersion(version) => Error::new(
                ErrorKind::UnsupportedRoomVersion,
                format!("Room version {version} is not supported"),
            ),
            other => Error::internal(other),
        }
    }
}
