//! Rooms: events, their orderings, state groups, current state and memberships.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Batch, Cf, Store, StoreResult, keys};
use crate::event::RoomVersion;

/// An accepted event as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pub room_id: OwnedRoomId,
    /// The PDU in federation format (no `event_id` key), redacted once a redaction applies.
    pub pdu: Value,
    /// Position on the global event stream.
    pub stream: u64,
    /// The state group holding the room state before this event.
    pub state_before: u64,
    /// The state group after it: a new group for state events, `state_before` otherwise.
    pub state_after: u64,
    /// The sender's device and transaction ID, for `unsigned.transaction_id`.
    #[serde(default)]
    pub txn: Option<(String, String)>,
    #[serde(default)]
    pub redacted_because: Option<OwnedEventId>,
    /// Where the event stands in its room; events stored before federation are accepted.
    #[serde(default)]
    pub status: EventStatus,
    /// Accepted with a state another server vouched for, its `prev_events` unknown here:
    /// events may be missing just before it, so a sync timeline reaching it is limited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_gap: bool,
}

/// What the server made of a stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// In the room's DAG with the state before and after it: shown to clients.
    #[default]
    Accepted,
    /// Known without the state before it (an auth chain or state fetched from another
    /// server): usable as an auth event, never in timelines or sync. It has no stream
    /// position and no state groups (`stream`, `state_before` and `state_after` are 0).
    Outlier,
    /// Failed authorisation: kept so it is not fetched again, never served to clients,
    /// never used as an auth event, never an extremity.
    Rejected,
    /// Passed against the state before it but not against the room's current state:
    /// stored, not shown to clients, not part of the current state nor an extremity.
    SoftFailed,
}

impl EventRecord {
    /// The event's place in its room's topological order; `None` if the PDU lacks a depth.
    pub fn topo_key(&self) -> Option<TopoKey> {
        Some(TopoKey {
            depth: self.pdu.get("depth")?.as_u64()?,
            stream: self.stream,
        })
    }
}

/// A room's head: where new local events attach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRecord {
    pub version: RoomVersion,
    pub create_event: OwnedEventId,
    /// Forward extremities: events with no known successor.
    pub extremities: Vec<OwnedEventId>,
    pub depth: u64,
    pub state_group: u64,
    pub last_stream: u64,
}

/// A state snapshot stored as a delta from an earlier group, or in full every so often
/// so that loading a group never walks a long chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateGroupRecord {
    pub prev: Option<u64>,
    /// Steps back to the nearest full snapshot (0 for a full snapshot).
    pub chain_len: u32,
    /// `(type, state_key) → event ID`: the changes from `prev`, or everything when `prev` is none.
    pub delta: Vec<(String, String, OwnedEventId)>,
}

/// One user's relation to one room, as of their latest membership event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRoomRecord {
    pub membership: String,
    pub event_id: OwnedEventId,
    pub stream: u64,
    #[serde(default)]
    pub forgotten: bool,
    /// For an invite to a room this server is not in: what the inviting server shared
    /// of the room (stripped state events), shown to the invitee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_state: Option<Vec<Value>>,
    /// For a join: the position of the join that started it (a later join event, a
    /// profile change, moves `stream` but not this). Absent for other memberships, and
    /// for joins recorded before Hearth kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_since: Option<u64>,
}

impl UserRoomRecord {
    /// Where the user's current membership began: for a join, the join that started it
    /// (as far as the record knows), otherwise the membership event's position.
    pub fn since(&self) -> u64 {
        self.joined_since.unwrap_or(self.stream)
    }
}

/// A user's rooms with their membership in each, shared between readers.
pub type UserRooms = Arc<Vec<(OwnedRoomId, UserRoomRecord)>>;

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(keys::SEP);
        }
        key.extend_from_slice(part);
    }
    key
}

fn state_key(room_id: &str, event_type: &str, state_key: &str) -> Vec<u8> {
    join(&[
        room_id.as_bytes(),
        event_type.as_bytes(),
        state_key.as_bytes(),
    ])
}

/// What identifies a `send` transaction: the sender's device and the request path.
#[derive(Debug, Clone, Copy)]
pub struct TxnKey<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub room_id: &'a str,
    pub event_type: &'a str,
    pub txn_id: &'a str,
}

impl TxnKey<'_> {
    fn key(&self) -> Vec<u8> {
        join(&[
            self.user_id.as_bytes(),
            self.device_id.as_bytes(),
            self.room_id.as_bytes(),
            self.event_type.as_bytes(),
            self.txn_id.as_bytes(),
        ])
    }
}

impl Store {
    pub fn event(&self, event_id: &str) -> StoreResult<Option<EventRecord>> {
        self.get_json(Cf::Events, event_id.as_bytes())
    }

    /// Every stored event, in event ID order: for offline checks such as verifying that
    /// each one still carries a valid signature and content hash.
    pub fn all_events(&self) -> StoreResult<Vec<(OwnedEventId, EventRecord)>> {
        let mut out = Vec::new();
        for (key, record) in self.scan_prefix::<EventRecord>(Cf::Events, b"")? {
            let id = String::from_utf8(key).map_err(|e| super::StoreError::Corrupt {
                cf: Cf::Events.name(),
                detail: format!("event key is not UTF-8: {e}"),
            })?;
            let id = OwnedEventId::try_from(id).map_err(|e| super::StoreError::Corrupt {
                cf: Cf::Events.name(),
                detail: format!("event key is not an event ID: {e}"),
            })?;
            out.push((id, record));
        }
        Ok(out)
    }

    /// The event at a position of the global stream, if any.
    pub fn stream_event(&self, stream: u64) -> StoreResult<Option<OwnedEventId>> {
        self.get_json(Cf::Stream, &be(stream))
    }

    /// The room's head, from memory when recently read.
    pub fn room(&self, room_id: &str) -> StoreResult<Option<RoomRecord>> {
        let key = room_id.as_bytes();
        self.inner
            .records
            .rooms
            .get_or_load(key, || self.get_json(Cf::Rooms, key))
    }

    pub fn state_group(&self, group: u64) -> StoreResult<Option<StateGroupRecord>> {
        self.get_json(Cf::StateGroups, &be(group))
    }

    /// The event currently holding `(event_type, state_key)` in the room.
    pub fn current_state_id(
        &self,
        room_id: &str,
        event_type: &str,
        key: &str,
    ) -> StoreResult<Option<OwnedEventId>> {
        self.get_json(Cf::RoomState, &state_key(room_id, event_type, key))
    }

    /// The room's current state, or only the events of one type.
    pub fn current_state(
        &self,
        room_id: &str,
        event_type: Option<&str>,
    ) -> StoreResult<BTreeMap<(String, String), OwnedEventId>> {
        let mut prefix = join(&[room_id.as_bytes(), b""]);
        if let Some(t) = event_type {
            prefix.extend_from_slice(t.as_bytes());
            prefix.push(keys::SEP);
        }
        let room_prefix_len = room_id.len() + 1;
        let mut out = BTreeMap::new();
        for (key, event_id) in self.scan_prefix::<OwnedEventId>(Cf::RoomState, &prefix)? {
            let rest = &key[room_prefix_len..];
            let Some(split) = rest.iter().position(|b| *b == keys::SEP) else {
                continue;
            };
            let t = String::from_utf8_lossy(&rest[..split]).into_owned();
            let k = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            out.insert((t, k), event_id);
        }
        Ok(out)
    }

    /// The user's membership record in the room, from memory when recently read.
    pub fn user_room(&self, user_id: &str, room_id: &str) -> StoreResult<Option<UserRoomRecord>> {
        let key = join(&[user_id.as_bytes(), room_id.as_bytes()]);
        self.inner
            .records
            .user_room
            .get_or_load(&key, || self.get_json(Cf::UserRooms, &key))
    }

    /// [`Self::user_rooms`], shared, from memory when recently read: every sync reads
    /// the syncing user's rooms.
    pub fn user_rooms_shared(&self, user_id: &str) -> StoreResult<UserRooms> {
        Ok(self
            .inner
            .user_rooms
            .get_or_load(user_id, || {
                self.user_rooms(user_id).map(|r| Some(Arc::new(r)))
            })?
            .unwrap_or_default())
    }

    /// Every room the user has a membership in, with that membership.
    pub fn user_rooms(&self, user_id: &str) -> StoreResult<Vec<(OwnedRoomId, UserRoomRecord)>> {
        let prefix = keys::devices_of(user_id);
        let mut out = Vec::new();
        for (key, record) in self.scan_prefix::<UserRoomRecord>(Cf::UserRooms, &prefix)? {
            let room = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Ok(room_id) = OwnedRoomId::try_from(room) {
                out.push((room_id, record));
            }
        }
        Ok(out)
    }

    /// The event a client transaction created. The spec scopes a transaction ID to the
    /// device and the request path, so the room and event type are part of the key.
    pub fn txn_event(&self, txn: TxnKey<'_>) -> StoreResult<Option<OwnedEventId>> {
        self.get_json(Cf::TxnIds, &txn.key())
    }

    /// The highest key in a column family whose keys are big-endian u64s.
    pub fn last_u64_key(&self, cf: Cf) -> StoreResult<u64> {
        let mut iter = self.raw_iter_from_end(cf);
        match iter.next() {
            Some(item) => {
                let (key, _) = item?;
                Ok(<[u8; 8]>::try_from(&key[..])
                    .map(u64::from_be_bytes)
                    .unwrap_or(0))
            }
            None => Ok(0),
        }
    }

    /// Event IDs of a room in stream order, after `after` (exclusive), at most `limit`.
    pub fn room_events_after(
        &self,
        room_id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OwnedEventId)>> {
        let prefix = join(&[room_id.as_bytes(), b""]);
        let mut start = prefix.clone();
        start.extend_from_slice(&be(after.saturating_add(1)));
        let mut out = Vec::new();
        for item in self.raw_iter_within(Cf::RoomStream, &start, &prefix) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let pos = <[u8; 8]>::try_from(&key[prefix.len()..])
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let id: OwnedEventId = serde_json::from_slice(&value)?;
            out.push((pos, id));
        }
        Ok(out)
    }
}

impl Store {
    /// Whether the room has an event in its stream after position `above`: from memory
    /// for a room written since the store was opened, or for a position at or after that.
    pub fn room_has_events_after(&self, room_id: &str, above: u64) -> StoreResult<bool> {
        if let Some(any) = self.inner.room_streams.any_after(room_id, above) {
            return Ok(any);
        }
        Ok(!self
            .room_events_rev(room_id, u64::MAX, above, 1)?
            .is_empty())
    }

    /// Event IDs of a room in stream order, newest first: positions at most `newest`
    /// and above `above`, at most `limit` of them.
    pub fn room_events_rev(
        &self,
        room_id: &str,
        newest: u64,
        above: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OwnedEventId)>> {
        if let Some(recent) = self.inner.room_streams.rev(room_id, newest, above, limit) {
            return Ok(recent);
        }
        let prefix = join(&[room_id.as_bytes(), b""]);
        let mut start = prefix.clone();
        start.extend_from_slice(&be(newest));
        let mut out = Vec::new();
        for item in self.raw_iter_rev_from(Cf::RoomStream, &start) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let pos = <[u8; 8]>::try_from(&key[prefix.len()..])
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if pos <= above {
                break;
            }
            let id: OwnedEventId = serde_json::from_slice(&value)?;
            out.push((pos, id));
        }
        Ok(out)
    }
}

/// Where an event sits in its room's topological order: by depth, then by stream
/// position, which orders events of equal depth the way this server received them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopoKey {
    pub depth: u64,
    pub stream: u64,
}

impl TopoKey {
    /// The largest key below this one, or `None` for the very first possible key.
    pub fn pred(self) -> Option<TopoKey> {
        match (self.depth, self.stream) {
            (0, 0) => None,
            (depth, 0) => Some(TopoKey {
                depth: depth - 1,
                stream: u64::MAX,
            }),
            (depth, stream) => Some(TopoKey {
                depth,
                stream: stream - 1,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Backward,
    Forward,
}

impl Store {
    /// A room's events in topological order, next to `from`: going backward, those at
    /// or before it, newest first; going forward, those after it, oldest first.
    pub fn room_topo_page(
        &self,
        room_id: &str,
        from: TopoKey,
        dir: Direction,
        limit: usize,
    ) -> StoreResult<Vec<(TopoKey, OwnedEventId)>> {
        let prefix = join(&[room_id.as_bytes(), b""]);
        let mut start = prefix.clone();
        start.extend_from_slice(&be(from.depth));
        start.extend_from_slice(&be(from.stream));
        let iter = match dir {
            Direction::Backward => self.raw_iter_rev_from(Cf::RoomTopo, &start),
            Direction::Forward => self.raw_iter_within(Cf::RoomTopo, &start, &prefix),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            let be_u64 = |bytes: Option<&[u8]>| {
                bytes
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
            };
            let (Some(depth), Some(stream)) = (be_u64(rest.get(..8)), be_u64(rest.get(8..))) else {
                return Err(super::StoreError::Corrupt {
                    cf: Cf::RoomTopo.name(),
                    detail: "key is not room, depth and stream position".into(),
                });
            };
            let at = TopoKey { depth, stream };
            // The forward seek lands on `from` itself when it is an event's key.
            if dir == Direction::Forward && at == from {
                continue;
            }
            let id: OwnedEventId = serde_json::from_slice(&value)?;
            out.push((at, id));
        }
        Ok(out)
    }
}

impl Batch<'_> {
    /// Names an event at a stream position without placing it in its room's orderings:
    /// for an invite to a room this server is not in.
    pub fn put_stream_entry(&mut self, stream: u64, event_id: &OwnedEventId) -> StoreResult<()> {
        self.put_json(Cf::Stream, &be(stream), event_id)
    }

    pub fn put_event(&mut self, event_id: &str, event: &EventRecord) -> StoreResult<()> {
        self.notes.events.push(event_id.to_owned());
        self.put_json(Cf::Events, event_id.as_bytes(), event)
    }

    /// Places a newly accepted event on the global stream and in its room's orderings.
    pub fn index_event(
        &mut self,
        room_id: &str,
        event_id: &OwnedEventId,
        stream: u64,
        depth: u64,
    ) -> StoreResult<()> {
        self.put_json(Cf::Stream, &be(stream), event_id)?;
        self.put_json(
            Cf::RoomStream,
            &join(&[room_id.as_bytes(), &be(stream)]),
            event_id,
        )?;
        self.notes
            .room_stream
            .push((room_id.to_owned(), stream, event_id.clone()));
        let mut topo = join(&[room_id.as_bytes(), &be(depth)]);
        topo.extend_from_slice(&be(stream));
        self.put_json(Cf::RoomTopo, &topo, event_id)
    }

    /// Places an event from the room's past in its topological order: `/messages` finds
    /// it, the room's live stream (sync) does not. Its position is still recorded on the
    /// global stream, so that positions are never handed out twice across restarts.
    pub fn index_historical_event(
        &mut self,
        room_id: &str,
        event_id: &OwnedEventId,
        stream: u64,
        depth: u64,
    ) -> StoreResult<()> {
        self.put_json(Cf::Stream, &be(stream), event_id)?;
        let mut topo = join(&[room_id.as_bytes(), &be(depth)]);
        topo.extend_from_slice(&be(stream));
        self.put_json(Cf::RoomTopo, &topo, event_id)
    }

    pub fn put_room(&mut self, room_id: &str, room: &RoomRecord) -> StoreResult<()> {
        self.put_json(Cf::Rooms, room_id.as_bytes(), room)
    }

    pub fn put_state_group(&mut self, group: u64, record: &StateGroupRecord) -> StoreResult<()> {
        self.put_json(Cf::StateGroups, &be(group), record)
    }

    pub fn put_current_state(
        &mut self,
        room_id: &str,
        event_type: &str,
        key: &str,
        event_id: &OwnedEventId,
    ) -> StoreResult<()> {
        self.put_json(
            Cf::RoomState,
            &state_key(room_id, event_type, key),
            event_id,
        )
    }

    pub fn delete_current_state(&mut self, room_id: &str, event_type: &str, key: &str) {
        self.delete(Cf::RoomState, &state_key(room_id, event_type, key));
    }

    pub fn put_user_room(
        &mut self,
        user_id: &str,
        room_id: &str,
        record: &UserRoomRecord,
    ) -> StoreResult<()> {
        self.notes.user_rooms.push(user_id.to_owned());
        self.put_json(
            Cf::UserRooms,
            &join(&[user_id.as_bytes(), room_id.as_bytes()]),
            record,
        )?;
        self.put_membership_change(user_id, room_id, record)
    }

    pub fn put_txn_event(&mut self, txn: TxnKey<'_>, event_id: &OwnedEventId) -> StoreResult<()> {
        self.put_json(Cf::TxnIds, &txn.key(), event_id)
    }
}
