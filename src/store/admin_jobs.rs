//! Longer admin work and what it leaves behind: bulk redactions of a user's events
//! (`admin_redactions`: redact ID → `RedactionRecord`, written with a `redact_user`
//! fan-out intent whose passes fill in the progress) and the server-notices room of
//! each local user (`server_notice_rooms`: user ID → room ID).

use std::collections::BTreeMap;

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult};

/// An admin's request to redact a user's events, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactionRecord {
    pub redact_id: String,
    pub admin: OwnedUserId,
    pub user_id: OwnedUserId,
    /// The rooms to redact in, fixed when the request is made.
    pub rooms: Vec<OwnedRoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// At most this many of the user's latest events per room.
    pub limit: usize,
    /// Only events sent at or after this time (ms), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ts: Option<u64>,
    pub started_ts: u64,
    /// `None` while it runs.
    #[serde(default)]
    pub finished_ts: Option<u64>,
    /// Rooms whose events have all been handled.
    #[serde(default)]
    pub done_rooms: Vec<OwnedRoomId>,
    /// How many redactions were sent.
    #[serde(default)]
    pub redacted: u64,
    /// Events that could not be redacted, with why.
    #[serde(default)]
    pub failed_redactions: BTreeMap<String, String>,
}

impl Store {
    pub fn admin_redaction(&self, redact_id: &str) -> StoreResult<Option<RedactionRecord>> {
        self.get_json(Cf::AdminRedactions, redact_id.as_bytes())
    }

    /// The server-notices room of a local user, once made.
    pub fn server_notice_room(&self, user_id: &str) -> StoreResult<Option<OwnedRoomId>> {
        self.get_json(Cf::ServerNoticeRooms, user_id.as_bytes())
    }
}

impl Batch<'_> {
    pub fn put_admin_redaction(&mut self, record: &RedactionRecord) -> StoreResult<()> {
        self.put_json(Cf::AdminRedactions, record.redact_id.as_bytes(), record)
    }

    pub fn put_server_notice_room(
        &mut self,
        user_id: &str,
        room_id: &OwnedRoomId,
    ) -> StoreResult<()> {
        self.put_json(Cf::ServerNoticeRooms, user_id.as_bytes(), room_id)
    }
}

impl Store {
    /// How many entries the column family holds, counted one by one (for the admin
    /// API's statistics; a full scan).
    pub fn count_entries(&self, cf: Cf) -> StoreResult<u64> {
        let mut count = 0;
        for item in self.raw_iter_from(cf, b"") {
            item?;
            count += 1;
        }
        Ok(count)
    }
}
