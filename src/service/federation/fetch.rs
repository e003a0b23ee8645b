//! Fetching what a room's events need from another server: single events, auth chains
//! and the state before an event. Everything fetched goes through the same checks as a
//! pushed event (format, signatures, its own auth events) and is stored as an outlier,
//! or as rejected, before anything relies on it.

use std::collections::{HashMap, HashSet};

use futures_util::{StreamExt, stream};
use ruma::api::federation::authorization::get_event_authorization;
use ruma::api::federation::event::{get_event, get_room_state, get_room_state_ids};
use ruma::{OwnedEventId, RoomId, ServerName};
use serde_json::Value;

use super::OutboundError;
use super::client::Limits;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Pdu, RoomVersion, StateKey};
use crate::service::Services;
use crate::service::rooms::{OutlierInput, PduError, Placement, Received, StateIds};
use crate::store::EventStatus;

/// Single events fetched at once from one server.
const CONCURRENT_FETCHES: usize = 8;

/// Above this many missing events, the whole state is asked for in one `/state` request
/// rather than event by event.
const FETCH_ONE_BY_ONE: usize = 50;

/// The most events a fetched state and its auth chain may hold.
const MAX_STATE_EVENTS: usize = 200_000;

fn bad_gateway(server: &ServerName, detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::BadGateway, format!("{server}: {detail}"))
}

/// Parses a PDU another server sent for `room_id`: `None` if it is invalid or belongs
/// to another room. What is outside the signed event is dropped.
pub(crate) fn parse_remote_pdu(
    mut json: Value,
    room_id: &RoomId,
    version: RoomVersion,
) -> Option<Pdu> {
    if let Some(obj) = json.as_object_mut() {
        obj.remove("unsigned");
        if !version.event_id_in_event() {
            obj.remove("event_id");
        }
    }
    let pdu = Pdu::from_json(json, version).ok()?;
    (pdu.room_id().is_none_or(|r| r == room_id)).then_some(pdu)
}

impl Services {
    /// Events of `room_id` by ID from `server`, as many as it answers with the event
    /// asked for (an answer with another event is dropped).
    pub(crate) async fn fetch_events(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        ids: Vec<OwnedEventId>,
    ) -> HashMap<OwnedEventId, Pdu> {
        let fetches = ids.into_iter().map(|id| async move {
            let answer = self
                .federation
                .send(server, get_event::v1::Request::new(id.clone()))
                .await;
            match answer {
                Ok(answer) => {
                    let json: Value = serde_json::from_str(answer.pdu.get()).ok()?;
                    let pdu = parse_remote_pdu(json, room_id, version)?;
                    (pdu.event_id() == id).then_some((id, pdu))
                }
                Err(e) => {
                    tracing::info!(%server, event = %id, error = %e, "cannot fetch an event");
                    None
                }
            }
        });
        stream::iter(fetches)
            .buffer_unordered(CONCURRENT_FETCHES)
            .filter_map(|found| async move { found })
            .collect()
            .await
    }

    /// Stores fetched events as outliers, auth events first. Auth events that neither
    /// the store nor `events` hold are fetched first with `/event_auth` of the events
    /// naming them. Returns the events that ended up rejected (or were already).
    pub(crate) async fn store_fetched_outliers(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        mut events: HashMap<OwnedEventId, Pdu>,
    ) -> Result<HashSet<OwnedEventId>> {
        let mut needing_chain = Vec::new();
        for (id, pdu) in &events {
            for auth in pdu.auth_events() {
                if !events.contains_key(auth) && self.store.event(auth.as_str())?.is_none() {
                    needing_chain.push(id.clone());
                    break;
                }
            }
        }
        for id in needing_chain {
            let request = get_event_authorization::v1::Request::new(room_id.to_owned(), id);
            let answer = self.federation.send(server, request).await?;
            for raw in answer.auth_chain {
                let Ok(json) = serde_json::from_str::<Value>(raw.get()) else {
                    continue;
                };
                if let Some(pdu) = parse_remote_pdu(json, room_id, version) {
                    events.entry(pdu.event_id().to_owned()).or_insert(pdu);
                }
            }
        }
        let create_id = self
            .store
            .room(room_id.as_str())?
            .map(|room| room.create_event);
        let create = match &create_id {
            Some(id) => self.pdu(id.as_str(), version)?,
            None => None,
        };
        let create_ref = (!version.create_event_in_auth_events())
            .then_some(create.as_deref())
            .flatten();
        self.store_outliers_or_each(server, room_id, version, &events, create_ref)
            .await
    }

    /// Stores `events` as outliers in topological order, all at once (signatures in
    /// parallel, a few unsynced batches, one sync), as a `send_join` answer; if one
    /// event spoils the lot, one by one, an event that cannot be stored (a bad
    /// signature, an auth event missing) counting as rejected, as what depends on it.
    /// Returns the events that ended up rejected (or were already).
    pub(crate) async fn store_outliers_or_each(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        events: &HashMap<OwnedEventId, Pdu>,
        create_ref: Option<&Pdu>,
    ) -> Result<HashSet<OwnedEventId>> {
        let order = topological_order(events);
        let mut inputs = Vec::with_capacity(order.len());
        for id in &order {
            let json = events[id].json().clone();
            let keys = self.keys_for_pdu(&json).await;
            inputs.push(OutlierInput { json, keys });
        }
        match self.store_outliers(room_id, version, inputs, create_ref) {
            Ok(rejected) => return Ok(rejected.into_iter().collect()),
            Err((id, e)) => {
                tracing::info!(%server, event = ?id, error = %e, "fetched events stored one by one");
            }
        }
        let mut rejected = HashSet::new();
        for id in order {
            let pdu = &events[&id];
            let keys = self.keys_for_pdu(pdu.json()).await;
            match self.store_outlier(room_id, version, pdu.json().clone(), &keys, create_ref) {
                Ok((_, Received::Rejected(_)))
                | Ok((_, Received::AlreadyKnown(EventStatus::Rejected))) => {
                    rejected.insert(id);
                }
                Ok(_) => {}
                // A bad signature or a missing auth event: nothing is stored, and what
                // depends on it cannot be trusted either.
                Err(e) => {
                    tracing::info!(%server, event = %id, error = %e, "fetched event not stored");
                    rejected.insert(id);
                }
            }
        }
        Ok(rejected)
    }

    /// The state before `event_id` as `server` has it, stored here as a state group:
    /// `/state_ids`, then the events not stored yet (one by one, or all at once with
    /// `/state` when many are missing), checked and stored as outliers after their auth
    /// chains. Rejected events are left out of the state; a state without the room's
    /// create event is refused.
    pub(crate) async fn state_before_from(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        event_id: &OwnedEventId,
    ) -> Result<u64> {
        let ids = self
            .federation
            .send(
                server,
                get_room_state_ids::v1::Request::new(event_id.clone(), room_id.to_owned()),
            )
            .await?;
        if ids.pdu_ids.len() + ids.auth_chain_ids.len() > MAX_STATE_EVENTS {
            return Err(bad_gateway(server, "the room's state is too large"));
        }
        let mut missing = Vec::new();
        for id in ids.pdu_ids.iter().chain(&ids.auth_chain_ids) {
            if self.store.event(id.as_str())?.is_none() && !missing.contains(id) {
                missing.push(id.clone());
            }
        }
        let fetched = if missing.len() > FETCH_ONE_BY_ONE {
            self.fetch_whole_state(server, room_id, version, event_id, &missing)
                .await?
        } else {
            self.fetch_events(server, room_id, version, missing).await
        };
        let rejected = self
            .store_fetched_outliers(server, room_id, version, fetched)
            .await?;

        let mut state = StateIds::new();
        for id in &ids.pdu_ids {
            if rejected.contains(id) {
                continue;
            }
            let Some(record) = self.store.event(id.as_str())? else {
                return Err(bad_gateway(
                    server,
                    format!("the state before {event_id} names {id}, which it did not send"),
                ));
            };
            if record.status == EventStatus::Rejected || record.room_id != room_id {
                continue;
            }
            let event_type = record.pdu.get("type").and_then(Value::as_str);
            let state_key = record.pdu.get("state_key").and_then(Value::as_str);
            if let (Some(t), Some(k)) = (event_type, state_key) {
                let key: StateKey = (t.to_owned(), k.to_owned());
                state.insert(key, id.clone());
            }
        }
        let create = self.store.room(room_id.as_str())?.map(|r| r.create_event);
        if create.is_none()
            || state.get(&("m.room.create".to_owned(), String::new())) != create.as_ref()
        {
            return Err(bad_gateway(
                server,
                format!("the state before {event_id} lacks the room's create event"),
            ));
        }
        self.store_state_group(&state)
    }

    /// The state before `pdu` from its `prev_events`, as Synapse builds it: the state
    /// after each prev event this server has in the room's DAG, and for each it lacks,
    /// the state before that event as `server` has it (`/state_ids` at it) with the event
    /// itself fetched, checked and added; several states are merged by state resolution.
    async fn state_after_prevs(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        pdu: &Pdu,
    ) -> Result<u64> {
        let mut sets = Vec::new();
        for prev in pdu.prev_events() {
            if let Some(record) = self.store.event(prev.as_str())?
                && record.room_id == room_id
                && record.status != EventStatus::Outlier
                && record.status != EventStatus::Rejected
                && record.state_after != 0
            {
                sets.push(self.state_ids_at(record.state_after)?);
                continue;
            }
            let before = self
                .state_before_from(server, room_id, version, prev)
                .await?;
            let mut state = self.state_ids_at(before)?;
            if self.store.event(prev.as_str())?.is_none() {
                let fetched = self
                    .fetch_events(server, room_id, version, vec![prev.clone()])
                    .await;
                self.store_fetched_outliers(server, room_id, version, fetched)
                    .await?;
            }
            let Some(record) = self.store.event(prev.as_str())? else {
                return Err(bad_gateway(server, format!("{prev} could not be fetched")));
            };
            if record.room_id == room_id && record.status != EventStatus::Rejected {
                let event_type = record.pdu.get("type").and_then(Value::as_str);
                let state_key = record.pdu.get("state_key").and_then(Value::as_str);
                if let (Some(t), Some(k)) = (event_type, state_key) {
                    state.insert((t.to_owned(), k.to_owned()), prev.clone());
                }
            }
            sets.push(state);
        }
        let state = self.resolve_state(version, sets, None)?;
        self.store_state_group(&state)
    }

    /// Receives an event `server` sent, fetching from it what the event needs: missing
    /// auth events, and the state before it when its `prev_events` are unknown here
    /// (unless `state_before` is given).
    pub(crate) async fn receive_fetching(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        pdu: &Pdu,
        placement: Placement,
        mut state_before: Option<u64>,
    ) -> Result<Received, PduError> {
        let json = pdu.json().clone();
        let keys = self.keys_for_pdu(&json).await;
        let mut fetched_auth = false;
        loop {
            let result = self
                .receive_pdu_placed(room_id, json.clone(), &keys, placement, state_before)
                .await;
            match result {
                Ok((_, received)) => return Ok(received),
                Err(PduError::MissingAuthEvents(ids)) if !fetched_auth => {
                    fetched_auth = true;
                    let fetched = self.fetch_events(server, room_id, version, ids).await;
                    self.store_fetched_outliers(server, room_id, version, fetched)
                        .await?;
                }
                Err(PduError::MissingPrevEvents(_)) if state_before.is_none() => {
                    let group = match self.state_after_prevs(server, room_id, version, pdu).await {
                        Ok(group) => group,
                        Err(e) => {
                            // Asked of the event itself instead: the sender's own
                            // resolution of the states before it.
                            tracing::info!(%server, event = %pdu.event_id(), error = %e, "state at the missing prev events not found");
                            let event_id = pdu.event_id().to_owned();
                            self.state_before_from(server, room_id, version, &event_id)
                                .await?
                        }
                    };
                    state_before = Some(group);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The events of `wanted` from the whole state before `event_id` (`/state`).
    async fn fetch_whole_state(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        event_id: &OwnedEventId,
        wanted: &[OwnedEventId],
    ) -> Result<HashMap<OwnedEventId, Pdu>, OutboundError> {
        let request = get_room_state::v1::Request::new(event_id.clone(), room_id.to_owned());
        let limits = Limits {
            max_response_bytes: 512 << 20,
            ..Limits::default()
        };
        let answer = self.federation.send_with(server, request, limits).await?;
        let wanted: HashSet<&OwnedEventId> = wanted.iter().collect();
        let mut out = HashMap::new();
        for raw in answer.pdus.iter().chain(&answer.auth_chain) {
            let Ok(json) = serde_json::from_str::<Value>(raw.get()) else {
                continue;
            };
            if let Some(pdu) = parse_remote_pdu(json, room_id, version)
                && wanted.contains(&pdu.event_id().to_owned())
            {
                out.insert(pdu.event_id().to_owned(), pdu);
            }
        }
        Ok(out)
    }
}

/// The events in an order where each comes after the auth events it names among them;
/// lowest depth first among those ready. Events caught in a cycle come last, by ID.
pub(crate) fn topological_order(events: &HashMap<OwnedEventId, Pdu>) -> Vec<OwnedEventId> {
    let mut waiting: HashMap<&OwnedEventId, usize> = HashMap::new();
    let mut dependents: HashMap<&OwnedEventId, Vec<&OwnedEventId>> = HashMap::new();
    for (id, pdu) in events {
        let deps: Vec<&OwnedEventId> = pdu
            .auth_events()
            .iter()
            .filter(|a| events.contains_key(*a))
            .collect();
        waiting.insert(id, deps.len());
        for dep in deps {
            dependents.entry(dep).or_default().push(id);
        }
    }
    let mut ready: Vec<&OwnedEventId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    ready.sort_by_key(|id| std::cmp::Reverse((events[*id].depth(), (*id).clone())));
    let mut out = Vec::with_capacity(events.len());
    let mut done: HashSet<&OwnedEventId> = HashSet::new();
    while let Some(id) = ready.pop() {
        out.push(id.clone());
        done.insert(id);
        for next in dependents.get(id).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(next) {
                *n -= 1;
                if *n == 0 {
                    ready.push(next);
                }
            }
        }
    }
    let mut rest: Vec<&OwnedEventId> = events.keys().filter(|id| !done.contains(id)).collect();
    rest.sort();
    out.extend(rest.into_iter().cloned());
    out
}
