//! Room state: state groups (deltas with periodic full snapshots) and lookups.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ruma::{OwnedEventId, RoomId, UserId};

use crate::error::{Error, Result};
use crate::event::{Pdu, RoomVersion};
use crate::service::Services;
use crate::store::{Batch, StateGroupRecord};

pub type StateIds = BTreeMap<(String, String), OwnedEventId>;

/// After this many deltas a full snapshot is stored, bounding the walk to load a group.
const SNAPSHOT_EVERY: u32 = 32;

impl Services {
    /// The full state a state group describes. Group 0 is the unknown state of an
    /// outlier: empty.
    pub fn state_ids_at(&self, group: u64) -> Result<StateIds> {
        let mut chain = Vec::new();
        let mut next = Some(group).filter(|g| *g != 0);
        while let Some(id) = next {
            let record = self.state_group_record(id)?;
            next = record.prev;
            chain.push(record);
        }
        let mut state = StateIds::new();
        for record in chain.into_iter().rev() {
            for (t, k, id) in &record.delta {
                state.insert((t.clone(), k.clone()), id.clone());
            }
        }
        Ok(state)
    }

    /// `user_id`'s membership in the state of `group`, read without building the state.
    pub fn membership_in_group(&self, group: u64, user_id: &UserId) -> Result<Option<String>> {
        let entries = self.state_entries_at(group, &[("m.room.member", user_id.as_str())])?;
        let Some(Some(event_id)) = entries.into_iter().next() else {
            return Ok(None);
        };
        Ok(self.store.event_shared(event_id.as_str())?.and_then(|e| {
            e.record
                .pdu
                .pointer("/content/membership")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        }))
    }

    /// A few entries of a state group, in the order asked, without building the whole
    /// state: the deltas are walked from the group back towards its full snapshot, and
    /// the newest entry for a key wins.
    pub fn state_entries_at(
        &self,
        group: u64,
        wanted: &[(&str, &str)],
    ) -> Result<Vec<Option<OwnedEventId>>> {
        let mut found: Vec<Option<OwnedEventId>> = vec![None; wanted.len()];
        let slots: HashMap<(&str, &str), usize> = wanted
            .iter()
            .enumerate()
            .map(|(i, key)| (*key, i))
            .collect();
        let mut missing = slots.len();
        let mut next = Some(group).filter(|g| *g != 0);
        while let Some(id) = next
            && missing > 0
        {
            let record = self.state_group_record(id)?;
            // Within one record a later entry replaces an earlier one, as in `state_ids_at`.
            for (t, k, event_id) in record.delta.iter().rev() {
                if let Some(&i) = slots.get(&(t.as_str(), k.as_str()))
                    && found[i].is_none()
                {
                    found[i] = Some(event_id.clone());
                    missing -= 1;
                }
            }
            next = record.prev;
        }
        Ok(found)
    }

    /// A stored state group's record, from memory when recently used.
    fn state_group_record(&self, group: u64) -> Result<Arc<StateGroupRecord>> {
        self.rooms.state_group_cache.get_or_load(group, || {
            self.store
                .state_group(group)?
                .map(Arc::new)
                .ok_or_else(|| Error::internal(format!("state group {group} is missing")))
        })
    }

    /// Writes a new group: `prev` plus `changes`. Returns its ID.
    pub(super) fn new_state_group(
        &self,
        batch: &mut Batch<'_>,
        prev: Option<u64>,
        changes: Vec<(String, String, OwnedEventId)>,
    ) -> Result<u64> {
        let id = self.rooms.next_state_group();
        let record = match prev {
            None => StateGroupRecord {
                prev: None,
                chain_len: 0,
                delta: changes,
            },
            Some(prev_id) => {
                let prev_record = self.state_group_record(prev_id)?;
                if prev_record.chain_len + 1 >= SNAPSHOT_EVERY {
                    let mut full = self.state_ids_at(prev_id)?;
                    for (t, k, e) in changes {
                        full.insert((t, k), e);
                    }
                    StateGroupRecord {
                        prev: None,
                        chain_len: 0,
                        delta: full.into_iter().map(|((t, k), e)| (t, k, e)).collect(),
                    }
                } else {
                    StateGroupRecord {
                        prev: Some(prev_id),
                        chain_len: prev_record.chain_len + 1,
                        delta: changes,
                    }
                }
            }
        };
        batch.put_state_group(id, &record)?;
        Ok(id)
    }

    /// A stored event as a validated PDU (marked rejected if the server rejected it, so
    /// that it is never used as an auth event), shared with other readers.
    pub fn pdu(&self, event_id: &str, version: RoomVersion) -> Result<Option<Arc<Pdu>>> {
        match self.store.event_shared(event_id)? {
            None => Ok(None),
            Some(event) => Ok(Some(event.pdu(version)?)),
        }
    }

    /// The current state event for `(event_type, state_key)`, if any.
    pub fn current_state_pdu(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Arc<Pdu>>> {
        match self
            .store
            .current_state_id(room_id.as_str(), event_type, state_key)?
        {
            None => Ok(None),
            Some(id) => self.pdu(id.as_str(), version),
        }
    }

    /// The user's current membership in the room (`join`, `invite`, `leave`, `ban`, `knock`).
    pub fn membership(&self, room_id: &RoomId, user_id: &UserId) -> Result<Option<String>> {
        Ok(self
            .store
            .user_room(user_id.as_str(), room_id.as_str())?
            .map(|r| r.membership))
    }

    pub fn is_joined(&self, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
        Ok(self.membership(room_id, user_id)?.as_deref() == Some("join"))
    }
}
