//! Reports of events, rooms and users for the server's moderators: `report ID` (u64 BE,
//! in the order they arrived) → `ReportRecord`. Nothing serves them over HTTP; the admin
//! CLI reads them.

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{Batch, Cf, Store, StoreResult};

/// What was reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportTarget {
    Event {
        room_id: OwnedRoomId,
        event_id: OwnedEventId,
    },
    Room {
        room_id: OwnedRoomId,
    },
    User {
        user_id: OwnedUserId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub reporter: OwnedUserId,
    pub target: ReportTarget,
    /// Optional for event reports; room and user reports always carry one, maybe blank.
    pub reason: Option<String>,
    pub received_ts: u64,
}

impl Store {
    /// Every report, oldest first.
    pub fn reports(&self) -> StoreResult<Vec<(u64, ReportRecord)>> {
        Ok(self
            .scan_prefix::<ReportRecord>(Cf::Reports, b"")?
            .into_iter()
            .filter_map(|(key, record)| {
                let id = u64::from_be_bytes(<[u8; 8]>::try_from(key.as_slice()).ok()?);
                Some((id, record))
            })
            .collect())
    }
}

impl Batch<'_> {
    pub fn put_report(&mut self, id: u64, record: &ReportRecord) -> StoreResult<()> {
        self.put_json(Cf::Reports, &id.to_be_bytes(), record)
    }
}
