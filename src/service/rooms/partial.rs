//! The end of a partial-state join (see `federation/partial_state.rs`): the full state
//! at the join is stored; every state group of the room since the join is completed
//! with it (what the partial group holds wins, the full state fills the rest), every
//! event accepted since is checked again against its completed state, and the room's
//! current state and memberships move to the completed state, all in one write with the
//! partial flag cleared.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ruma::{OwnedEventId, RoomId};

use super::state::StateIds;
use crate::error::{Error, Result};
use crate::event::auth::auth_types_for_pdu;
use crate::event::{Pdu, RoomVersion, StateKey, auth_check};
use crate::service::Services;
use crate::store::{Batch, EventStatus, PartialStateRecord};

/// Events read per page of the room's stream.
const PAGE: usize = 1000;

impl Services {
    /// Completes the room's state with `full_before_join`, the state group of the full
    /// state before the join (its events stored). Returns the stream position at which
    /// the room became complete; the in-memory partial flag is cleared before that
    /// position becomes visible, so a sync sees the room either partial or complete.
    pub(crate) async fn complete_partial_state(
        &self,
        room_id: &RoomId,
        record: &PartialStateRecord,
        full_before_join: u64,
    ) -> Result<u64> {
        let _guard = self.rooms.lock(room_id).await;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        let version = room.version;
        let full = self.state_ids_at(full_before_join)?;
        let join = self
            .store
            .event(record.join_event.as_str())?
            .ok_or_else(|| Error::internal(format!("the join {} is missing", record.join_event)))?;

        let mut events = Vec::new();
        let mut after = join.stream.saturating_sub(1);
        loop {
            let page = self
                .store
                .room_events_after(room_id.as_str(), after, PAGE)?;
            let done = page.len() < PAGE;
            if let Some((last, _)) = page.last() {
                after = *last;
            }
            events.extend(page.into_iter().map(|(_, id)| id));
            if done {
                break;
            }
        }

        let ticket = self.stream_ticket();
        let mut batch = self.store.batch();
        let mut completer = Completer {
            services: self,
            full_group: full_before_join,
            full: &full,
            mapped: HashMap::new(),
        };
        // Events that fail their completed state: soft-failed from now on, and out of the
        // current state.
        let mut failed: HashSet<OwnedEventId> = HashSet::new();
        for event_id in &events {
            let Some(mut event) = self.store.event(event_id.as_str())? else {
                continue;
            };
            if event.status != EventStatus::Accepted || event.after_gap {
                continue;
            }
            if *event_id != record.join_event {
                let pdu = self
                    .pdu(event_id.as_str(), version)?
                    .ok_or_else(|| Error::internal(format!("event {event_id} is missing")))?;
                if !self.passes_completed(version, &pdu, event.state_before, &full, &failed)? {
                    tracing::warn!(room = %room_id, event = %event_id, "an event accepted on the partial state fails the full state");
                    failed.insert(event_id.clone());
                    event.status = EventStatus::SoftFailed;
                }
            }
            event.state_before = completer.complete(&mut batch, event.state_before)?;
            event.state_after = completer.complete(&mut batch, event.state_after)?;
            batch.put_event(event_id.as_str(), &event)?;
        }

        // The current state: completed, without the events that failed.
        let mut current = full.clone();
        for (key, id) in self.state_ids_at(room.state_group)? {
            if failed.contains(&id) {
                continue;
            }
            current.insert(key, id);
        }
        let group = self.new_full_state_group(&mut batch, &current)?;
        let stored = self.store.current_state(room_id.as_str(), None)?;
        // Room-wide state that the completion changed, for the caches that follow it.
        let mut changed_types = Vec::new();
        for (t, k) in stored.keys() {
            if !current.contains_key(&(t.clone(), k.clone())) {
                batch.delete_current_state(room_id.as_str(), t, k);
                if k.is_empty() {
                    changed_types.push(t.clone());
                }
            }
        }
        for ((t, k), id) in &current {
            if stored.get(&(t.clone(), k.clone())) == Some(id) {
                continue;
            }
            if k.is_empty() {
                changed_types.push(t.clone());
            }
            batch.put_current_state(room_id.as_str(), t, k, id)?;
            if t == "m.room.member"
                && let Some(membership) = self
                    .pdu(id.as_str(), version)?
                    .and_then(|p| p.membership().map(str::to_owned))
            {
                self.stage_membership(
                    &mut batch,
                    k,
                    room_id,
                    &membership,
                    id.clone(),
                    ticket.position,
                )?;
            }
        }
        batch.put_room(
            room_id.as_str(),
            &crate::store::RoomRecord {
                state_group: group,
                ..room
            },
        )?;
        batch.put_partial_state(
            room_id.as_str(),
            &PartialStateRecord {
                completed_at: Some(ticket.position),
                ..record.clone()
            },
        )?;
        self.store.write(batch)?;
        self.rooms.members.invalidate(room_id);
        self.room_state_changed(room_id, &changed_types);
        let at = ticket.position;
        self.partial_states.completed(room_id, at);
        ticket.publish(room_id, None);
        Ok(at)
    }

    /// Whether `pdu` passes the auth rules against its state before (`partial_group`)
    /// completed with `full`.
    fn passes_completed(
        &self,
        version: RoomVersion,
        pdu: &Pdu,
        partial_group: u64,
        full: &StateIds,
        failed: &HashSet<OwnedEventId>,
    ) -> Result<bool> {
        let mut types = auth_types_for_pdu(version, pdu);
        types.push(("m.room.create".to_owned(), String::new()));
        let wanted: Vec<(&str, &str)> = types
            .iter()
            .map(|(t, k)| (t.as_str(), k.as_str()))
            .collect();
        let known = self.state_entries_at(partial_group, &wanted)?;
        let mut state: HashMap<StateKey, Arc<Pdu>> = HashMap::new();
        for (key, id) in types.iter().zip(known) {
            let Some(id) = id
                .filter(|id| !failed.contains(id))
                .or_else(|| full.get(key).cloned())
            else {
                continue;
            };
            if let Some(event) = self.pdu(id.as_str(), version)? {
                state.insert(key.clone(), event);
            }
        }
        Ok(auth_check(version, pdu, |t, k| {
            state.get(&(t.to_owned(), k.to_owned())).map(|p| &**p)
        })
        .is_ok())
    }
}

/// Completed copies of partial state groups, each written once.
struct Completer<'a> {
    services: &'a Services,
    full_group: u64,
    full: &'a StateIds,
    mapped: HashMap<u64, u64>,
}

impl Completer<'_> {
    /// The group holding `partial`'s state with what it lacks of the full state: a
    /// delta on the full state's group.
    fn complete(&mut self, batch: &mut Batch<'_>, partial: u64) -> Result<u64> {
        if partial == 0 {
            return Ok(0);
        }
        if let Some(group) = self.mapped.get(&partial) {
            return Ok(*group);
        }
        let changes = self
            .services
            .state_ids_at(partial)?
            .into_iter()
            .filter(|(key, id)| self.full.get(key) != Some(id))
            .map(|((t, k), id)| (t, k, id))
            .collect();
        let group = self
            .services
            .new_state_group(batch, Some(self.full_group), changes)?;
        self.mapped.insert(partial, group);
        Ok(group)
    }
}
