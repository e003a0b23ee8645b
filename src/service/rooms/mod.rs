//! Rooms: appending local events to a room's DAG, room state, and the client view of events.

mod auth_chain;
mod client_out;
mod create;
mod format;
mod history;
mod members;
mod membership;
mod outliers;
mod partial;
pub(crate) mod persist;
mod receive;
#[cfg(test)]
mod receive_tests;
mod resolution;
mod state;
mod state_content;
mod timeline;
mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId};

use crate::cache::Cache;
use crate::error::{Error, ErrorKind};
use crate::event::EventError;
use crate::service::Services;
use crate::service::positions::Positions;
use crate::store::{Cf, StateGroupRecord, Store, StoreResult};

pub(crate) use client_out::OutEvent;
pub use create::{CreateRoom, Preset};
pub use format::ClientView;
pub use history::{Boundary, Context, HistoryReader, Messages, ReadAccess};
pub use members::{MemberCache, RoomMembers};
pub use membership::MembershipChange;
pub use outliers::OutlierInput;
pub use receive::{PduError, Placement, Received, check_signatures, parse_pdu};
pub use state::StateIds;
pub use state_content::check_state_content;
pub use timeline::{AuthState, EventTemplate, TxnRef};

/// State group records kept in memory (per generation, see [`Cache`]). Sync and sends
/// read the groups of active rooms' current state and their delta chains (up to 32).
const STATE_GROUP_CACHE: usize = 4096;

/// Events' auth event IDs kept in memory for state resolution (per generation): a
/// 5,000-member room's state and auth chains are about as many events.
const AUTH_EDGES_CACHE: usize = 16_384;

/// `(group, user, peeking)` visibility answers kept in memory (per generation).
const VISIBILITY_CACHE: usize = 16_384;

/// Largest event, as the spec limits PDUs.
pub const MAX_EVENT_BYTES: usize = 65_536;

pub struct Rooms {
    /// One lock per room: appending reads the room's head and writes a new one, and two
    /// appends must not both attach to the same head.
    locks: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<()>>>>,
    /// Positions on the global event stream.
    pub positions: Arc<Positions<EventWake>>,
    pub members: MemberCache,
    state_groups: AtomicU64,
    /// State group records, which never change once written (IDs are never reused).
    pub(crate) state_group_cache: Cache<u64, Arc<StateGroupRecord>>,
    /// Whether a user may see events in a state group (see `HistoryReader::allowed`):
    /// `(group, user, peeking)`. It depends only on the group's history visibility and
    /// the user's membership events, whose deciding fields survive redaction.
    pub(crate) visibility_cache: Cache<(u64, OwnedUserId, bool), bool>,
    /// Held for a whole upgrade, which spans many appends to two rooms.
    pub upgrades: tokio::sync::Mutex<()>,
    /// The auth DAG's edges, for state resolution (see `resolution.rs`); they never change.
    pub(crate) auth_edges: Cache<ruma::OwnedEventId, resolution::AuthEdges>,
    /// State resolutions over conflicting states run since the start.
    pub(crate) resolutions: AtomicU64,
}

impl Rooms {
    /// Counters resume from the highest key written, not from a separately stored value
    /// that concurrent batches could write out of order.
    pub fn new(store: &Store) -> StoreResult<Self> {
        Ok(Self {
            locks: Mutex::new(HashMap::new()),
            positions: Arc::new(Positions::new(store.last_u64_key(Cf::Stream)?)),
            members: MemberCache::default(),
            state_groups: AtomicU64::new(store.last_u64_key(Cf::StateGroups)?),
            state_group_cache: Cache::new(STATE_GROUP_CACHE),
            visibility_cache: Cache::new(VISIBILITY_CACHE),
            upgrades: tokio::sync::Mutex::new(()),
            auth_edges: Cache::new(AUTH_EDGES_CACHE),
            resolutions: AtomicU64::new(0),
        })
    }

    pub async fn lock(&self, room_id: &RoomId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(room_id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn next_state_group(&self) -> u64 {
        self.state_groups.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The newest position on the event stream below which every event is stored.
    pub fn stream_position(&self) -> u64 {
        self.positions.visible()
    }

    /// The highest position on the event stream handed out so far.
    pub fn allocated_position(&self) -> u64 {
        self.positions.allocated()
    }
}

/// Who to wake when an event becomes visible: the room's members, and the target of a
/// membership event, who may no longer be one.
pub struct EventWake {
    room_id: OwnedRoomId,
    target: Option<OwnedUserId>,
    /// Users with a new notification, whose pushers have work.
    notified: Vec<OwnedUserId>,
}

/// A position on the event stream held by one write. Dropping it without
/// [`StreamTicket::publish`] (the write failed) releases the position silently.
pub struct StreamTicket<'a> {
    services: &'a Services,
    pub position: u64,
    wake: Option<EventWake>,
    /// Users the event notifies (set while staging an accepted event).
    pub(crate) notified: Vec<OwnedUserId>,
}

impl Services {
    fn stream_ticket(&self) -> StreamTicket<'_> {
        StreamTicket {
            services: self,
            position: self.rooms.positions.allocate(),
            wake: None,
            notified: Vec::new(),
        }
    }

    fn wake_for_events(&self, wakes: Vec<EventWake>) {
        if wakes.iter().any(|w| !w.notified.is_empty()) {
            self.pushers.visible_to(self.rooms.positions.visible());
        }
        for wake in wakes {
            self.pushers.wake(&wake.notified);
            match self.room_members(&wake.room_id) {
                Ok(members) => self.notifier.wake(members.audience()),
                Err(e) => {
                    tracing::warn!(error = %e, room = %wake.room_id, "cannot wake room members")
                }
            }
            if let Some(target) = &wake.target {
                self.notifier.wake([target.as_ref()]);
            }
        }
    }
}

impl StreamTicket<'_> {
    /// Called once the event's batch is written; `membership_target` for member events.
    pub fn publish(mut self, room_id: &RoomId, membership_target: Option<OwnedUserId>) {
        if membership_target.is_some() {
            self.services.rooms.members.invalidate(room_id);
        }
        self.wake = Some(EventWake {
            room_id: room_id.to_owned(),
            target: membership_target,
            notified: std::mem::take(&mut self.notified),
        });
    }
}

impl Drop for StreamTicket<'_> {
    fn drop(&mut self) {
        let woken = self
            .services
            .rooms
            .positions
            .finish(self.position, self.wake.take());
        self.services.wake_for_events(woken);
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
