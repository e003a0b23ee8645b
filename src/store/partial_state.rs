//! Rooms joined with a partial state (`send_join` with `omit_members`), until their
//! full state is fetched, and when that happened.
//!
//! - `partial_state_rooms`: `room_id` → [`PartialStateRecord`].

use ruma::{OwnedEventId, OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartialStateRecord {
    /// This server's join, at which the full state is asked for.
    pub join_event: OwnedEventId,
    /// The servers in the room at the join (`servers_in_room`), the one joined through
    /// first.
    pub servers: Vec<OwnedServerName>,
    /// The stream position at which the full state replaced the partial one; `None`
    /// while the room is partial.
    #[serde(default)]
    pub completed_at: Option<u64>,
}

impl Store {
    pub fn partial_state(&self, room_id: &str) -> StoreResult<Option<PartialStateRecord>> {
        self.get_json(Cf::PartialStateRooms, room_id.as_bytes())
    }

    /// Every room with a record, partial or completed.
    pub fn partial_state_rooms(&self) -> StoreResult<Vec<(OwnedRoomId, PartialStateRecord)>> {
        let mut out = Vec::new();
        for (key, record) in self.scan_prefix::<PartialStateRecord>(Cf::PartialStateRooms, b"")? {
            if let Ok(room_id) = OwnedRoomId::try_from(String::from_utf8_lossy(&key).as_ref()) {
                out.push((room_id, record));
            }
        }
        Ok(out)
    }
}

impl Batch<'_> {
    pub fn put_partial_state(
        &mut self,
        room_id: &str,
        record: &PartialStateRecord,
    ) -> StoreResult<()> {
        self.put_json(Cf::PartialStateRooms, room_id.as_bytes(), record)
    }
}
