//! Persisting events, local or remote, once they are built or checked.
//!
//! An accepted event gets a stream position, joins the room's orderings and forward
//! extremities, and moves the room's current state: directly when it follows every
//! extremity, by state resolution over the extremities' states when the DAG has forked.
//! Outliers, rejected and soft-failed events are stored without any of that.

use std::collections::BTreeSet;

use ruma::{OwnedEventId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::StreamTicket;
use super::state::StateIds;
use crate::error::{Error, Result};
use crate::event::{Pdu, RoomPowers, RoomVersion};
use crate::service::notifications::{Notified, Withdrawn};
use crate::service::{Services, search};
use crate::store::{Batch, EventRecord, EventStatus, RoomRecord, UserRoomRecord};

/// An accepted event staged in a batch; [`Services::finish_accepted`] completes it once
/// the batch is written.
pub(crate) struct StagedEvent<'a> {
    ticket: StreamTicket<'a>,
    /// The member whose membership this event (or a resolution it caused) changed, to wake.
    membership_target: Option<OwnedUserId>,
    /// Any membership in the room changed: the member cache must be rebuilt.
    members_changed: bool,
    /// `(type, "")` state keys that changed, for the user directory.
    room_state_types: Vec<String>,
    /// Users whose notifications this event (a redaction) withdrew.
    withdrawn: Withdrawn,
    /// Users this event notifies, with whether it highlights for them.
    notified: Notified,
}

/// Extra facts about an accepted event that only its origin knows.
#[derive(Default)]
pub(crate) struct Local {
    /// The client transaction, for `unsigned.transaction_id`.
    pub txn: Option<(String, String)>,
    /// Received with a state fetched from another server (see `EventRecord::after_gap`).
    pub after_gap: bool,
}

impl Services {
    /// Stages an accepted event: its record, orderings, relations, redaction, search
    /// terms, the room's new extremities and current state. `state_before` is the state
    /// group before the event (for a local event, the room's current state).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stage_accepted<'a>(
        &'a self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        room: &RoomRecord,
        pdu: &Pdu,
        json: Value,
        state_before: u64,
        local: Local,
    ) -> Result<StagedEvent<'a>> {
        let version = room.version;
        let event_id = pdu.event_id().to_owned();
        let ticket = self.stream_ticket();
        let stream = ticket.position;
        let state_after = self.stage_state_after(batch, pdu, state_before)?;

        // The event replaces the extremities it follows.
        let prevs: BTreeSet<&ruma::EventId> = pdu.prev_events().iter().map(|e| &**e).collect();
        let mut extremities: Vec<OwnedEventId> = room
            .extremities
            .iter()
            .filter(|e| !prevs.contains(&***e))
            .cloned()
            .collect();
        extremities.push(event_id.clone());

        // The room's new current state.
        let (current_group, changes) = if extremities.len() == 1 {
            if state_before == room.state_group {
                let changes = match pdu.state_key() {
                    Some(k) => vec![(
                        (pdu.event_type().to_owned(), k.to_owned()),
                        Some(event_id.clone()),
                    )],
                    None => vec![],
                };
                (state_after, changes)
            } else {
                let old = self.state_ids_at(room.state_group)?;
                let new = self.state_after_in_memory(pdu, state_before)?;
                (state_after, state_diff(&old, &new))
            }
        } else if let Some(before) = self.extremity_groups(&room.extremities, None)?
            && self.extremity_groups(&extremities, Some((&event_id, state_after)))? == Some(before)
        {
            // The extremities' states are the ones the current state was resolved from
            // (an event that changes no state, after an extremity of the same state): the
            // current state stays. A fork that lasts while one side goes on sending
            // messages costs no resolution per message.
            (room.state_group, Vec::new())
        } else {
            let mut sets = Vec::with_capacity(extremities.len());
            for extremity in &extremities {
                if *extremity == event_id {
                    sets.push(self.state_after_in_memory(pdu, state_before)?);
                    continue;
                }
                let group = self
                    .store
                    .event(extremity.as_str())?
                    .map(|r| r.state_after)
                    .ok_or_else(|| {
                        Error::internal(format!("extremity {extremity} is not stored"))
                    })?;
                sets.push(self.state_ids_at(group)?);
            }
            let resolved = self.resolve_state(version, sets, Some(pdu))?;
            let old = self.state_ids_at(room.state_group)?;
            let changes = state_diff(&old, &resolved);
            let group = if changes.is_empty() {
                room.state_group
            } else {
                self.new_state_group_for(batch, room.state_group, &old, &resolved)?
            };
            (group, changes)
        };

        let mut membership_target = None;
        let mut members_changed = false;
        let mut room_state_types = Vec::new();
        for ((t, k), id) in &changes {
            match id {
                Some(id) => batch.put_current_state(room_id.as_str(), t, k, id)?,
                None => batch.delete_current_state(room_id.as_str(), t, k),
            }
            if k.is_empty() {
                room_state_types.push(t.clone());
            }
            if t != "m.room.member" {
                continue;
            }
            let (membership, member_event) = match id {
                Some(id) if *id == event_id => (pdu.membership().map(str::to_owned), id.clone()),
                Some(id) => (
                    self.store
                        .event(id.as_str())?
                        .and_then(|r| membership_of(&r.pdu)),
                    id.clone(),
                ),
                // A member key gone from the state: the departure is recorded at this event.
                None => (Some("leave".to_owned()), event_id.clone()),
            };
            let Some(membership) = membership else {
                continue;
            };
            if self.stage_membership(batch, k, room_id, &membership, member_event, stream)? {
                members_changed = true;
                if Some(k.as_str()) == pdu.state_key() && pdu.event_type() == "m.room.member" {
                    membership_target = UserId::parse(k.as_str()).ok();
                }
            }
        }

        let sender = pdu.sender();
        self.stage_relation(batch, room_id, &event_id, &json, sender, stream)?;
        let mut withdrawn = Withdrawn::default();
        if let Some(target) = pdu.redacts(version) {
            let powers = self.powers_at(version, state_before)?;
            withdrawn =
                self.apply_redaction(batch, room_id, version, target, sender, &powers, &event_id)?;
        }
        search::index_event(batch, room_id.as_str(), stream, state_after, &json)?;
        let notified = self.stage_notifications(
            batch,
            room_id,
            version,
            state_before,
            &event_id,
            &json,
            stream,
        )?;
        let mut ticket = ticket;
        ticket.notified = notified.users.iter().map(|(u, _)| u.clone()).collect();
        batch.put_event(
            event_id.as_str(),
            &EventRecord {
                room_id: room_id.to_owned(),
                pdu: json,
                stream,
                state_before,
                state_after,
                txn: local.txn,
                redacted_because: None,
                status: EventStatus::Accepted,
                after_gap: local.after_gap,
            },
        )?;
        batch.index_event(room_id.as_str(), &event_id, stream, pdu.depth())?;
        batch.put_room(
            room_id.as_str(),
            &RoomRecord {
                extremities,
                depth: room.depth.max(pdu.depth()),
                state_group: current_group,
                last_stream: stream,
                ..room.clone()
            },
        )?;
        Ok(StagedEvent {
            ticket,
            membership_target,
            members_changed,
            room_state_types,
            withdrawn,
            notified,
        })
    }

    /// Stages an event from the room's past (backfill) with the state before it: stored
    /// as accepted and placed in the room's topological order, so `/messages` reads it
    /// where it belongs, but not on the live stream (no sync shows it as new) and with no
    /// effect on the extremities, the current state or memberships. The returned ticket
    /// only reserves the position that orders it among events of the same depth.
    pub(super) fn stage_historical<'a>(
        &'a self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        version: RoomVersion,
        pdu: &Pdu,
        json: Value,
        state_before: u64,
    ) -> Result<StreamTicket<'a>> {
        let event_id = pdu.event_id().to_owned();
        let ticket = self.stream_ticket();
        let stream = ticket.position;
        let state_after = self.stage_state_after(batch, pdu, state_before)?;
        let sender = pdu.sender();
        self.stage_relation(batch, room_id, &event_id, &json, sender, stream)?;
        if let Some(target) = pdu.redacts(version) {
            let powers = self.powers_at(version, state_before)?;
            self.apply_redaction(batch, room_id, version, target, sender, &powers, &event_id)?;
        }
        search::index_event(batch, room_id.as_str(), stream, state_after, &json)?;
        batch.put_event(
            event_id.as_str(),
            &EventRecord {
                room_id: room_id.to_owned(),
                pdu: json,
                stream,
                state_before,
                state_after,
                txn: None,
                redacted_because: None,
                status: EventStatus::Accepted,
                after_gap: false,
            },
        )?;
        batch.index_historical_event(room_id.as_str(), &event_id, stream, pdu.depth())?;
        Ok(ticket)
    }

    /// The state group after an accepted event: a new group for a state event, staged in
    /// `batch`, else `state_before`.
    fn stage_state_after(
        &self,
        batch: &mut Batch<'_>,
        pdu: &Pdu,
        state_before: u64,
    ) -> Result<u64> {
        match pdu.state_key() {
            Some(state_key) => self.new_state_group(
                batch,
                Some(state_before),
                vec![(
                    pdu.event_type().to_owned(),
                    state_key.to_owned(),
                    pdu.event_id().to_owned(),
                )],
            ),
            None => Ok(state_before),
        }
    }

    /// Completes an accepted event after its batch is written: caches, directory, wake-ups.
    pub(crate) fn finish_accepted(&self, room_id: &RoomId, staged: StagedEvent<'_>) {
        self.room_state_changed(room_id, &staged.room_state_types);
        if staged.members_changed && staged.membership_target.is_none() {
            self.rooms.members.invalidate(room_id);
        }
        self.notifications_withdrawn(room_id, &staged.withdrawn);
        self.notifications_written(room_id, staged.ticket.position, &staged.notified);
        staged.ticket.publish(room_id, staged.membership_target);
    }

    /// Tells the caches that follow room-wide state (`(type, "")`) that these types
    /// changed in the room's current state.
    pub(crate) fn room_state_changed(&self, room_id: &RoomId, event_types: &[String]) {
        for event_type in event_types {
            self.user_directory
                .state_changed(&self.store, room_id, event_type);
            if event_type == "m.room.guest_access" {
                self.guest_kicks.changed(room_id);
            }
        }
    }

    /// The state after an event whose state group is staged but not yet written.
    fn state_after_in_memory(&self, pdu: &Pdu, state_before: u64) -> Result<StateIds> {
        let mut state = self.state_ids_at(state_before)?;
        if let Some(k) = pdu.state_key() {
            state.insert(
                (pdu.event_type().to_owned(), k.to_owned()),
                pdu.event_id().to_owned(),
            );
        }
        Ok(state)
    }

    /// Starts (or starts again) a room here from a state another server vouched for,
    /// whose events are stored as outliers: the state becomes the room's current state,
    /// and `join` (not yet stored) is to follow it. Returns the room's record.
    pub(crate) fn seed_room_state(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        create: &Pdu,
        join: &Pdu,
        state: &StateIds,
    ) -> Result<RoomRecord> {
        let mut batch = self.store.batch();
        let group = self.new_full_state_group(&mut batch, state)?;
        for (t, k) in self.store.current_state(room_id.as_str(), None)?.keys() {
            if !state.contains_key(&(t.clone(), k.clone())) {
                batch.delete_current_state(room_id.as_str(), t, k);
            }
        }
        let stream = self.rooms.stream_position();
        for ((t, k), id) in state {
            batch.put_current_state(room_id.as_str(), t, k, id)?;
            if t == "m.room.member"
                && let Some(membership) = self
                    .store
                    .event(id.as_str())?
                    .and_then(|r| membership_of(&r.pdu))
            {
                self.stage_membership(&mut batch, k, room_id, &membership, id.clone(), stream)?;
            }
        }
        let previous = self.store.room(room_id.as_str())?;
        let room = RoomRecord {
            version,
            create_event: create.event_id().to_owned(),
            extremities: join.prev_events().to_vec(),
            depth: join.depth().saturating_sub(1),
            state_group: group,
            last_stream: previous.map_or(0, |r| r.last_stream),
        };
        batch.put_room(room_id.as_str(), &room)?;
        self.store.write(batch)?;
        self.rooms.members.invalidate(room_id);
        Ok(room)
    }

    /// An invite of a local user to a room this server is not in (signed by both
    /// servers), or a local user's knock on one: the event is kept as an outlier, and the
    /// user's membership becomes `membership` with what the room's server shared of the
    /// room (stripped state), on the event stream so that sync shows it.
    pub(crate) fn record_remote_membership(
        &self,
        room_id: &RoomId,
        invitee: &UserId,
        pdu: &Pdu,
        json: Value,
        membership: &str,
        invite_state: Vec<Value>,
    ) -> Result<()> {
        let event_id = pdu.event_id().to_owned();
        let ticket = self.stream_ticket();
        let stream = ticket.position;
        let mut batch = self.store.batch();
        self.stage_unaccepted(&mut batch, room_id, pdu, json, EventStatus::Outlier, 0)?;
        batch.put_stream_entry(stream, &event_id)?;
        let previous = self.store.user_room(invitee.as_str(), room_id.as_str())?;
        // Neither overrides a membership this server knows better.
        if previous
            .as_ref()
            .is_some_and(|p| matches!(p.membership.as_str(), "join" | "ban"))
        {
            return Ok(());
        }
        batch.put_user_room(
            invitee.as_str(),
            room_id.as_str(),
            &UserRoomRecord {
                membership: membership.to_owned(),
                event_id,
                stream,
                forgotten: false,
                invite_state: Some(invite_state),
                joined_since: None,
            },
        )?;
        self.store.write(batch)?;
        ticket.publish(room_id, Some(invitee.to_owned()));
        Ok(())
    }

    /// Stages a remote event accepted on the room's current state.
    pub(crate) fn stage_accepted_remote<'a>(
        &'a self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        room: &RoomRecord,
        pdu: &Pdu,
        json: Value,
    ) -> Result<StagedEvent<'a>> {
        self.stage_accepted(
            batch,
            room_id,
            room,
            pdu,
            json,
            room.state_group,
            Local::default(),
        )
    }

    /// Records a user's membership in a room; returns whether it changed.
    pub(super) fn stage_membership(
        &self,
        batch: &mut Batch<'_>,
        user_id: &str,
        room_id: &RoomId,
        membership: &str,
        event_id: OwnedEventId,
        stream: u64,
    ) -> Result<bool> {
        let previous = self.store.user_room(user_id, room_id.as_str())?;
        let changed = previous.as_ref().map(|p| p.membership.as_str()) != Some(membership);
        let joined_since = match &previous {
            _ if membership != "join" => None,
            Some(p) if p.membership == "join" => Some(p.since()),
            _ => Some(stream),
        };
        batch.put_user_room(
            user_id,
            room_id.as_str(),
            &UserRoomRecord {
                membership: membership.to_owned(),
                event_id,
                stream,
                // Rejoining or being invited again un-forgets the room.
                forgotten: previous.is_some_and(|p| p.forgotten)
                    && !matches!(membership, "join" | "invite" | "knock"),
                invite_state: None,
                joined_since,
            },
        )?;
        Ok(changed)
    }

    /// Stores an event that is not part of the room's timeline: an outlier, or an event
    /// rejected or soft-failed. `state_before` is the state group before it where known
    /// (0 otherwise); a rejected event leaves the state as it was before it.
    pub(super) fn stage_unaccepted(
        &self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        pdu: &Pdu,
        json: Value,
        status: EventStatus,
        state_before: u64,
    ) -> Result<()> {
        let state_after = match (status, pdu.state_key()) {
            (EventStatus::SoftFailed, Some(k)) if state_before != 0 => self.new_state_group(
                batch,
                Some(state_before),
                vec![(
                    pdu.event_type().to_owned(),
                    k.to_owned(),
                    pdu.event_id().to_owned(),
                )],
            )?,
            _ => state_before,
        };
        batch.put_event(
            pdu.event_id().as_str(),
            &EventRecord {
                room_id: room_id.to_owned(),
                pdu: json,
                stream: 0,
                state_before,
                state_after,
                txn: None,
                redacted_because: None,
                status,
                after_gap: false,
            },
        )?;
        Ok(())
    }

    /// Stores a state another server vouched for (its events already stored) as a state
    /// group of its own.
    pub(crate) fn store_state_group(&self, state: &StateIds) -> Result<u64> {
        let mut batch = self.store.batch();
        let group = self.new_full_state_group(&mut batch, state)?;
        self.store.write(batch)?;
        Ok(group)
    }

    /// The room's powers in its current state.
    pub(crate) fn powers_at_current(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
    ) -> Result<RoomPowers> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("Unknown room {room_id}")))?;
        self.powers_at(version, room.state_group)
    }

    /// The room's powers in a state group.
    pub(crate) fn powers_at(&self, version: RoomVersion, group: u64) -> Result<RoomPowers> {
        let ids =
            self.state_entries_at(group, &[("m.room.create", ""), ("m.room.power_levels", "")])?;
        let create = ids[0]
            .as_ref()
            .and_then(|id| self.pdu(id.as_str(), version).transpose())
            .transpose()?
            .ok_or_else(|| Error::internal("room has no create event"))?;
        let power_levels = ids[1]
            .as_ref()
            .and_then(|id| self.pdu(id.as_str(), version).transpose())
            .transpose()?;
        Ok(RoomPowers::new(version, &create, power_levels.as_deref())?)
    }

    /// Writes a group holding `new`, as a delta from `prev` (whose state is `old`) when
    /// nothing is removed, or as a full snapshot otherwise.
    fn new_state_group_for(
        &self,
        batch: &mut Batch<'_>,
        prev: u64,
        old: &StateIds,
        new: &StateIds,
    ) -> Result<u64> {
        let removes = old.keys().any(|k| !new.contains_key(k));
        if removes {
            return self.new_full_state_group(batch, new);
        }
        let changes = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|((t, k), v)| (t.clone(), k.clone(), v.clone()))
            .collect();
        self.new_state_group(batch, Some(prev), changes)
    }

    /// Writes a group holding exactly `state`.
    pub(super) fn new_full_state_group(
        &self,
        batch: &mut Batch<'_>,
        state: &StateIds,
    ) -> Result<u64> {
        let all = state
            .iter()
            .map(|((t, k), v)| (t.clone(), k.clone(), v.clone()))
            .collect();
        self.new_state_group(batch, None, all)
    }
}

fn membership_of(pdu: &Value) -> Option<String> {
    pdu.get("content")?
        .get("membership")?
        .as_str()
        .map(str::to_owned)
}

/// The keys whose event differs between two states: the new event, or `None` if removed.
type StateChange = ((String, String), Option<OwnedEventId>);

fn state_diff(old: &StateIds, new: &StateIds) -> Vec<StateChange> {
    let mut out = Vec::new();
    for (k, v) in new {
        if old.get(k) != Some(v) {
            out.push((k.clone(), Some(v.clone())));
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.push((k.clone(), None));
        }
    }
    out
}

impl Services {
    /// The state groups after `extremities` (`new`: an extremity not stored yet, with its
    /// group), as a set; `None` when one is not stored (as the prev events a joining
    /// server's room starts from).
    fn extremity_groups(
        &self,
        extremities: &[OwnedEventId],
        new: Option<(&OwnedEventId, u64)>,
    ) -> Result<Option<BTreeSet<u64>>> {
        let mut groups = BTreeSet::new();
        for extremity in extremities {
            if let Some((id, group)) = new
                && id == extremity
            {
                groups.insert(group);
                continue;
            }
            match self.store.event_shared(extremity.as_str())? {
                Some(cached) => groups.insert(cached.record.state_after),
                None => return Ok(None),
            };
        }
        Ok(Some(groups))
    }
}
