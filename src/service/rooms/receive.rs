//! Receiving events made by other servers: the spec's checks on receipt of a PDU, in its
//! order, each failure ending the way the spec says.
//!
//! 1. Format and size: an invalid event is dropped.
//! 2. Signatures: a bad signature drops the event; a content hash mismatch replaces it
//!    with its redacted form.
//! 3. Its own auth events: failing them rejects it.
//! 4. The state before it, from its `prev_events`' states (resolved when they differ):
//!    failing that state rejects it.
//! 5. The room's current state: failing it soft-fails the event (stored, not shown, not
//!    a forward extremity, no effect on the current state).
//!
//! Rejected and soft-failed events are stored, so that the same event is not checked
//! again and so that later events can name them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ruma::{OwnedEventId, RoomId};
use serde_json::Value;

use super::persist::Local;
use crate::error::Error;
use crate::event::auth::auth_types_for_pdu;
use crate::event::{
    Pdu, PublicKeyMap, RoomVersion, StateKey, Verified, auth_check, check_event_auth, redact,
    verify_event,
};
use crate::service::Services;
use crate::store::EventStatus;

/// What became of a received event that could be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Part of the room now: in timelines, sync and the current state.
    Accepted,
    /// Authorised by the state before it but not by the current state.
    SoftFailed(String),
    /// Failed authorisation; stored as rejected.
    Rejected(String),
    /// Stored as an outlier: known, usable as an auth event, not in the timeline.
    Outlier,
    /// Already stored, with this status; nothing changed.
    AlreadyKnown(EventStatus),
}

/// Why a received event could not be checked at all. Nothing is stored.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("this server is not in room {0}")]
    UnknownRoom(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The event names auth events this server does not have (or has only as rejected
    /// placeholders): they must be fetched first.
    #[error("unknown auth events: {}", join_ids(.0))]
    MissingAuthEvents(Vec<OwnedEventId>),
    /// The event follows events this server does not have with their state: the gap
    /// must be filled first.
    #[error("unknown prev_events: {}", join_ids(.0))]
    MissingPrevEvents(Vec<OwnedEventId>),
    #[error("{0}")]
    Store(#[from] Error),
}

fn join_ids(ids: &[OwnedEventId]) -> String {
    ids.iter()
        .map(|id| id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<crate::store::StoreError> for PduError {
    fn from(e: crate::store::StoreError) -> Self {
        PduError::Store(e.into())
    }
}

/// Where a received event goes once it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Into the live room (pushed to us, or fetched to close a gap): it can become a
    /// forward extremity and move the current state.
    Live,
    /// As `Live`, stored without waiting for the disk: the caller makes a whole run of
    /// events durable at once ([`crate::store::Store::sync_wal`] or a later synced
    /// write) before it answers for them, as an incoming transaction does.
    LiveUnsynced,
    /// Into the room's past (backfill): placed in history for `/messages`, never on the
    /// live stream, and not checked against the current state.
    Historical,
}

impl Services {
    /// Checks and stores an event another server made. `keys` must hold the verify keys
    /// of the servers whose signatures the event needs (its sender's, and for a
    /// restricted join, the authorising server's).
    pub async fn receive_pdu(
        &self,
        room_id: &RoomId,
        json: Value,
        keys: &PublicKeyMap,
    ) -> Result<(OwnedEventId, Received), PduError> {
        self.receive_pdu_placed(room_id, json, keys, Placement::Live, None)
            .await
    }

    /// [`Self::receive_pdu`], placed as asked. `state_before` is the state group before
    /// the event when its `prev_events` are not all known here (a state another server
    /// vouched for, fetched by the caller); without it, the state comes from the
    /// `prev_events`, and unknown ones give [`PduError::MissingPrevEvents`].
    pub async fn receive_pdu_placed(
        &self,
        room_id: &RoomId,
        mut json: Value,
        keys: &PublicKeyMap,
        placement: Placement,
        state_before: Option<u64>,
    ) -> Result<(OwnedEventId, Received), PduError> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| PduError::UnknownRoom(room_id.to_string()))?;
        let version = room.version;
        let pdu = parse_pdu(&mut json, version)?;
        // A v12 create event names no room: its ID is the room's.
        let belongs = match pdu.room_id() {
            Some(r) => r == room_id,
            None => *pdu.event_id() == *room.create_event,
        };
        if !belongs {
            return Err(PduError::Invalid(format!(
                "event belongs to room {}, not {room_id}",
                pdu.room_id().map_or("(none)", |r| r.as_str())
            )));
        }
        let event_id = pdu.event_id().to_owned();
        let _guard = self.rooms.lock(room_id).await;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| PduError::UnknownRoom(room_id.to_string()))?;
        if let Some(existing) = self.store.event(event_id.as_str())?
            && existing.status != EventStatus::Outlier
        {
            return Ok((event_id, Received::AlreadyKnown(existing.status)));
        }

        let (pdu, json) = check_signatures(pdu, json, keys, version)?;

        // Its own auth events.
        let auth_events = self.stored_auth_events(&pdu, version)?;
        let create = self.pdu(room.create_event.as_str(), version)?;
        let auth_refs: Vec<&Pdu> = auth_events.iter().map(|p| &**p).collect();
        if let Err(e) = check_event_auth(version, &pdu, &auth_refs, create.as_deref()) {
            let reason = format!("not authorised by its auth events: {e}");
            self.store_rejected(room_id, &pdu, json, placement)?;
            return Ok((event_id, Received::Rejected(reason)));
        }

        // The state before it.
        let fetched_state = state_before.is_some();
        let state_before = match state_before {
            Some(group) => group,
            None => self.state_before_event(version, &pdu)?,
        };
        let mut batch = self.store.batch();
        // With a partial state, what it lacks comes from the event's own auth events
        // (checked again against the full state when it comes: rooms/partial.rs).
        let partial = self.is_partial_state(room_id);
        let mut before = self.auth_state_at(version, &pdu, state_before)?;
        if partial {
            fill_from_auth_events(&mut before, &auth_events);
        }
        if let Err(e) = auth_check(version, &pdu, |t, k| {
            before.get(&(t.to_owned(), k.to_owned())).map(|p| &**p)
        }) {
            let reason = format!("not authorised by the state before it: {e}");
            self.stage_unaccepted(
                &mut batch,
                room_id,
                &pdu,
                json,
                EventStatus::Rejected,
                state_before,
            )?;
            self.write_received(batch, placement)?;
            return Ok((event_id, Received::Rejected(reason)));
        }

        if placement == Placement::Historical {
            let ticket =
                self.stage_historical(&mut batch, room_id, version, &pdu, json, state_before)?;
            self.write_received(batch, placement)?;
            drop(ticket);
            return Ok((event_id, Received::Accepted));
        }

        // The room's current state.
        if state_before != room.state_group {
            let mut current = self.auth_state_at(version, &pdu, room.state_group)?;
            if partial {
                fill_from_auth_events(&mut current, &auth_events);
            }
            if let Err(e) = auth_check(version, &pdu, |t, k| {
                current.get(&(t.to_owned(), k.to_owned())).map(|p| &**p)
            }) {
                let reason = format!("not authorised by the room's current state: {e}");
                self.stage_unaccepted(
                    &mut batch,
                    room_id,
                    &pdu,
                    json,
                    EventStatus::SoftFailed,
                    state_before,
                )?;
                self.write_received(batch, placement)?;
                return Ok((event_id, Received::SoftFailed(reason)));
            }
        }

        let staged = self.stage_accepted(
            &mut batch,
            room_id,
            &room,
            &pdu,
            json,
            state_before,
            Local {
                after_gap: fetched_state,
                ..Local::default()
            },
        )?;
        self.write_received(batch, placement)?;
        self.finish_accepted(room_id, staged);
        Ok((event_id, Received::Accepted))
    }

    /// Stores an event known without the state before it (from another server's auth
    /// chain or state), after checking it against its own auth events, which must be
    /// stored already: callers store an auth chain in topological order. An event that
    /// fails is stored as rejected.
    pub fn store_outlier(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        json: Value,
        keys: &PublicKeyMap,
        create: Option<&Pdu>,
    ) -> Result<(OwnedEventId, Received), PduError> {
        let mut json = json;
        let pdu = parse_pdu(&mut json, version)?;
        let event_id = pdu.event_id().to_owned();
        if let Some(existing) = self.store.event(event_id.as_str())? {
            return Ok((event_id, Received::AlreadyKnown(existing.status)));
        }
        if pdu.room_id().is_some_and(|r| r != room_id) {
            return Err(PduError::Invalid(format!(
                "event does not belong to {room_id}"
            )));
        }
        let (pdu, json) = check_signatures(pdu, json, keys, version)?;
        let auth_events = self.stored_auth_events(&pdu, version)?;
        let auth_refs: Vec<&Pdu> = auth_events.iter().map(|p| &**p).collect();
        let status = match check_event_auth(version, &pdu, &auth_refs, create) {
            Ok(()) => EventStatus::Outlier,
            Err(_) => EventStatus::Rejected,
        };
        let mut batch = self.store.batch();
        self.stage_unaccepted(&mut batch, room_id, &pdu, json, status, 0)?;
        self.store.write(batch)?;
        let outcome = match status {
            EventStatus::Outlier => Received::Outlier,
            _ => Received::Rejected("not authorised by its auth events".into()),
        };
        Ok((event_id, outcome))
    }

    /// Stores an event that failed its own auth events as rejected (it has no state).
    fn store_rejected(
        &self,
        room_id: &RoomId,
        pdu: &Pdu,
        json: Value,
        placement: Placement,
    ) -> Result<(), PduError> {
        let mut batch = self.store.batch();
        self.stage_unaccepted(&mut batch, room_id, pdu, json, EventStatus::Rejected, 0)?;
        self.write_received(batch, placement)?;
        Ok(())
    }

    fn write_received(
        &self,
        batch: crate::store::Batch<'_>,
        placement: Placement,
    ) -> Result<(), PduError> {
        match placement {
            Placement::LiveUnsynced => self.store.write_unsynced(batch)?,
            Placement::Live | Placement::Historical => self.store.write(batch)?,
        }
        Ok(())
    }

    /// The event's auth events, which must all be stored.
    fn stored_auth_events(
        &self,
        pdu: &Pdu,
        version: RoomVersion,
    ) -> Result<Vec<Arc<Pdu>>, PduError> {
        let mut auth_events = Vec::with_capacity(pdu.auth_events().len());
        let mut missing = Vec::new();
        for id in pdu.auth_events() {
            match self.pdu(id.as_str(), version)? {
                Some(auth) => auth_events.push(auth),
                None => missing.push(id.clone()),
            }
        }
        if missing.is_empty() {
            Ok(auth_events)
        } else {
            Err(PduError::MissingAuthEvents(missing))
        }
    }

    /// The state group before an event: the state after its one prev event, or the
    /// resolution of the states after several. A resolved state that is none of theirs
    /// gets a group of its own, written at once: should the event not follow, the
    /// group is merely unused.
    fn state_before_event(&self, version: RoomVersion, pdu: &Pdu) -> Result<u64, PduError> {
        let mut groups = BTreeSet::new();
        let mut missing = Vec::new();
        for prev in pdu.prev_events() {
            match self.store.event(prev.as_str())? {
                Some(record)
                    if record.status != EventStatus::Outlier && record.state_after != 0 =>
                {
                    groups.insert(record.state_after);
                }
                _ => missing.push(prev.clone()),
            }
        }
        if !missing.is_empty() || groups.is_empty() {
            return Err(PduError::MissingPrevEvents(missing));
        }
        if groups.len() == 1 {
            return Ok(groups.into_iter().next().unwrap_or_default());
        }
        let mut sets = Vec::with_capacity(groups.len());
        for group in &groups {
            sets.push(self.state_ids_at(*group)?);
        }
        let resolved = self.resolve_state(version, sets.clone(), None)?;
        if let Some(i) = sets.iter().position(|s| *s == resolved) {
            return Ok(*groups.iter().nth(i).unwrap_or(&0));
        }
        let mut batch = self.store.batch();
        let group = self.new_full_state_group(&mut batch, &resolved)?;
        self.store.write(batch)?;
        Ok(group)
    }

    /// The events of a state group the auth rules consult for `pdu`.
    fn auth_state_at(
        &self,
        version: RoomVersion,
        pdu: &Pdu,
        group: u64,
    ) -> Result<HashMap<StateKey, Arc<Pdu>>, PduError> {
        let mut types = auth_types_for_pdu(version, pdu);
        types.push(("m.room.create".to_owned(), String::new()));
        let wanted: Vec<(&str, &str)> = types
            .iter()
            .map(|(t, k)| (t.as_str(), k.as_str()))
            .collect();
        let ids = self.state_entries_at(group, &wanted)?;
        let mut out = HashMap::new();
        for (key, id) in types.iter().zip(ids) {
            if let Some(id) = id
                && let Some(event) = self.pdu(id.as_str(), version)?
            {
                out.insert(key.clone(), event);
            }
        }
        Ok(out)
    }
}

/// Adds the event's auth events for the state keys `state` lacks.
fn fill_from_auth_events(state: &mut HashMap<StateKey, Arc<Pdu>>, auth_events: &[Arc<Pdu>]) {
    for auth in auth_events {
        if let Some(key) = auth.state_map_key() {
            state.entry(key).or_insert_with(|| auth.clone());
        }
    }
}

/// Step 1: the event's format, for the room's version. What is outside the signed event
/// (`unsigned`, an `event_id`) is the sender's to change, so it is not kept.
pub fn parse_pdu(json: &mut Value, version: RoomVersion) -> Result<Pdu, PduError> {
    if let Some(obj) = json.as_object_mut() {
        obj.remove("unsigned");
        if !version.event_id_in_event() {
            obj.remove("event_id");
        }
    }
    Pdu::from_json(json.clone(), version).map_err(|e| PduError::Invalid(e.to_string()))
}

/// Step 2: signatures; a content hash that does not match leaves the redacted event.
pub fn check_signatures(
    pdu: Pdu,
    json: Value,
    keys: &PublicKeyMap,
    version: RoomVersion,
) -> Result<(Pdu, Value), PduError> {
    match verify_event(&json, keys, version) {
        Ok(Verified::All) => Ok((pdu, json)),
        Ok(Verified::SignaturesOnly) => {
            let json = redact(&json, version).map_err(|e| PduError::Invalid(e.to_string()))?;
            let pdu = Pdu::from_json(json.clone(), version)
                .map_err(|e| PduError::Invalid(e.to_string()))?;
            Ok((pdu, json))
        }
        Err(e) => Err(PduError::BadSignature(e.to_string())),
    }
}
