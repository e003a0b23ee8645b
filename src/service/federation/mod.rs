//! Federation: what this server answers other servers. See `spec/federation-serving.md`.
//!
//! * [`visibility`]: which events a server may see, and whether it is in a room.
//! * [`acl`]: the room's `m.room.server_acl`, checked on every request naming a room.
//! * [`events`]: single events, the state at an event, auth chains (`/event`, `/state`,
//!   `/state_ids`, `/event_auth`).
//! * [`history`]: walks back through a room (`/backfill`, `/get_missing_events`,
//!   `/timestamp_to_event`).
//! * [`queries`]: alias lookups and device lists (`/query/directory`, `/user/devices`).

pub mod acl;
pub mod events;
pub mod history;
pub mod queries;
pub mod visibility;

use ruma::{RoomId, ServerName};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::RoomRecord;

impl Services {
    /// The checks before a server reads a room's events and state: the room exists here
    /// (404), its server ACL allows `origin` (403) and a user of `origin` is joined to it
    /// (403), as the spec asks of `/state`, `/state_ids`, `/event_auth`, `/backfill` and
    /// `/get_missing_events`, and Synapse of `/timestamp_to_event` too.
    pub fn room_for_server(&self, room_id: &RoomId, origin: &ServerName) -> Result<RoomRecord> {
        let room = self.known_room(room_id)?;
        self.check_server_acl(room_id, origin)?;
        if !self.server_in_room(room_id, origin)? {
            return Err(Error::forbidden(format!(
                "Server {origin} is not in room {room_id}"
            )));
        }
        Ok(room)
    }

    /// The room's record, or 404.
    pub fn known_room(&self, room_id: &RoomId) -> Result<RoomRecord> {
        self.store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))
    }
}
