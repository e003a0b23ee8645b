//! Walking back through a room for other servers: `/backfill`, `/get_missing_events`
//! and `/timestamp_to_event`.

use std::collections::{BinaryHeap, HashMap, HashSet};

use ruma::{EventId, OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::{Direction, EventRecord, EventStatus};

/// Most events one `/backfill` answer holds, whatever the request's `limit` (Synapse's
/// bound: it asks for 100 itself).
pub const MAX_BACKFILL: usize = 100;

/// Most events one `/get_missing_events` answer holds (Synapse's bound).
pub const MAX_MISSING_EVENTS: usize = 20;

/// The `get_missing_events` default `limit`, from the spec.
pub const DEFAULT_MISSING_EVENTS: usize = 10;

/// A validated `/get_missing_events` request.
pub struct MissingEventsQuery<'a> {
    pub earliest_events: &'a [OwnedEventId],
    pub latest_events: &'a [OwnedEventId],
    pub limit: usize,
    pub min_depth: u64,
}

fn depth_of(record: &EventRecord) -> u64 {
    record.pdu.get("depth").and_then(Value::as_u64).unwrap_or(0)
}

fn prev_events(record: &EventRecord) -> Vec<OwnedEventId> {
    crate::event::pdu::referenced_ids(record.pdu.get("prev_events"))
        .into_iter()
        .filter_map(|id| EventId::parse(id).ok())
        .collect()
}

impl Services {
    /// A stored, non-rejected event of the room, or `None`.
    fn room_event(&self, room_id: &RoomId, event_id: &EventId) -> Result<Option<EventRecord>> {
        Ok(self
            .store
            .event(event_id.as_str())?
            .filter(|r| r.room_id == room_id && r.status != EventStatus::Rejected))
    }

    /// `GET /backfill/{roomId}?v=…&limit=`: the events `v` and those before them, walked
    /// through `prev_events` newest first (by depth, then by arrival), at most `limit`
    /// (up to [`MAX_BACKFILL`]), as Synapse's `get_backfill_events` does. Outliers are not
    /// walked into (their place in the room is not known), rejected events never
    /// served; events the server may not see come redacted. None when no event of `v` is
    /// in the room (as Synapse: an event of another room is not a way in).
    pub fn backfill_for_server(
        &self,
        room_id: &RoomId,
        origin: &ServerName,
        from: &[OwnedEventId],
        limit: usize,
    ) -> Result<Vec<Value>> {
        self.room_for_server(room_id, origin)?;
        self.refuse_while_partial(room_id, "its history")?;
        let limit = limit.min(MAX_BACKFILL);
        // Newest first: the greatest (depth, stream position) comes off the heap first.
        let mut queue: BinaryHeap<(u64, u64, OwnedEventId)> = BinaryHeap::new();
        let mut records: HashMap<OwnedEventId, EventRecord> = HashMap::new();
        for event_id in from {
            if let Some(record) = self.room_event(room_id, event_id)? {
                queue.push((depth_of(&record), record.stream, event_id.clone()));
                records.insert(event_id.clone(), record);
            }
        }
        if queue.is_empty() {
            return Ok(Vec::new());
        }
        let mut view = self.server_view(room_id, origin)?;
        let mut taken: HashSet<OwnedEventId> = HashSet::new();
        let mut pdus = Vec::new();
        while pdus.len() < limit {
            let Some((_, _, event_id)) = queue.pop() else {
                break;
            };
            if !taken.insert(event_id.clone()) {
                continue;
            }
            let Some(record) = records.remove(&event_id) else {
                continue;
            };
            for prev in prev_events(&record) {
                if taken.contains(&prev) || records.contains_key(&prev) {
                    continue;
                }
                if let Some(prev_record) = self.room_event(room_id, &prev)?
                    && prev_record.status != EventStatus::Outlier
                {
                    queue.push((depth_of(&prev_record), prev_record.stream, prev.clone()));
                    records.insert(prev, prev_record);
                }
            }
            pdus.push(view.pdu_for(&record)?);
        }
        Ok(pdus)
    }

    /// `POST /get_missing_events/{roomId}`: a breadth-first walk through `prev_events`
    /// from `latest_events`, not entering `earliest_events` nor events below
    /// `min_depth`, of at most `limit` (up to [`MAX_MISSING_EVENTS`]) events, oldest
    /// first. The latest events themselves are not included. Events the server may not
    /// see come redacted. 404 when no event of `latest_events` is known in the room.
    pub fn missing_events_for_server(
        &self,
        room_id: &RoomId,
        origin: &ServerName,
        query: &MissingEventsQuery<'_>,
    ) -> Result<Vec<Value>> {
        self.room_for_server(room_id, origin)?;
        let limit = query.limit.min(MAX_MISSING_EVENTS);
        let mut seen: HashSet<OwnedEventId> = query.earliest_events.iter().cloned().collect();
        // Each level of the walk: the `prev_events` of the events reached last.
        let mut front: Vec<Vec<OwnedEventId>> = Vec::new();
        let mut known_latest = false;
        for event_id in query.latest_events {
            let Some(record) = self.room_event(room_id, event_id)? else {
                continue;
            };
            known_latest = true;
            if seen.insert(event_id.clone()) {
                front.push(prev_events(&record));
            }
        }
        if !known_latest && !query.latest_events.is_empty() {
            return Err(Error::not_found(format!(
                "None of the latest events is known in room {room_id}"
            )));
        }
        let mut found: Vec<EventRecord> = Vec::new();
        'walk: while !front.is_empty() {
            let mut next = Vec::new();
            for prev in front.into_iter().flatten() {
                if found.len() >= limit {
                    break 'walk;
                }
                if !seen.insert(prev.clone()) {
                    continue;
                }
                let Some(record) = self.room_event(room_id, &prev)? else {
                    continue;
                };
                if depth_of(&record) < query.min_depth {
                    continue;
                }
                next.push(prev_events(&record));
                found.push(record);
            }
            front = next;
        }
        found.reverse();
        let mut view = self.server_view(room_id, origin)?;
        found.iter().map(|record| view.pdu_for(record)).collect()
    }

    /// `GET /timestamp_to_event/{roomId}?ts=&dir=`: the event nearest `ts` in `dir`
    /// among those `origin` may see, gated by [`Self::room_for_server`]. Soft-failed
    /// events are not offered, since this server does not show them either.
    pub fn timestamp_event_for_server(
        &self,
        room_id: &RoomId,
        origin: &ServerName,
        ts: u64,
        dir: Direction,
    ) -> Result<(OwnedEventId, u64)> {
        self.room_for_server(room_id, origin)?;
        let mut view = self.server_view(room_id, origin)?;
        self.event_at_timestamp_where(room_id, ts, dir, None, |record| {
            Ok(record.status == EventStatus::Accepted && view.can_see(record)?)
        })?
        .ok_or_else(|| {
            let dir = match dir {
                Direction::Forward => "forward",
                Direction::Backward => "backward",
            };
            Error::not_found(format!(
                "No event of room {room_id} from {ts} in the {dir} direction"
            ))
        })
    }
}
