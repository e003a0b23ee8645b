//! Pulling a room's past from other servers when local history runs out (`/messages`
//! reaching the oldest event this server has): `/backfill` from the room's backward
//! extremities, each event checked like a pushed one and placed in history with the
//! state before it, from its `prev_events` or, where those are unknown, as the
//! answering server has it (`/state_ids`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruma::api::federation::backfill::get_backfill;
use ruma::{EventId, OwnedEventId, OwnedRoomId, RoomId, ServerName, UInt};
use serde_json::Value;

use super::fetch::parse_remote_pdu;
use crate::error::Result;
use crate::event::{Pdu, RoomVersion};
use crate::service::Services;
use crate::service::rooms::{Placement, Received, StateIds};
use crate::store::{Direction, EventRecord, EventStatus, TopoKey};

/// Events asked for in one `/backfill` (Synapse asks for 100, and serves at most 100).
const BACKFILL_LIMIT: u32 = 100;

/// How long one client request may wait for other servers' history.
const DEADLINE: Duration = Duration::from_secs(10);

/// Servers asked in turn before giving up on one request.
const SERVERS_TO_TRY: usize = 3;

/// After a backfill that brought nothing, the room is not asked about again for this
/// long, so that paging at the very start of a room does not call other servers each time.
const QUIET_AFTER_NOTHING: Duration = Duration::from_secs(60);

/// The oldest events examined for unknown `prev_events`.
const OLDEST_EXAMINED: usize = 50;

/// Backward extremities sent in one request.
const MAX_FROM: usize = 5;

/// One backfill at a time per room, and when a room last had nothing more to give.
#[derive(Default)]
pub struct BackfillAttempts {
    rooms: Mutex<HashMap<OwnedRoomId, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl BackfillAttempts {
    fn room(&self, room_id: &RoomId) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(room_id.to_owned()).or_default().clone()
    }
}

impl Services {
    /// Fetches older events of the room from other servers, within a deadline; returns
    /// how many were added to its history. Failures are logged, not returned: the
    /// client still gets the history this server has.
    pub async fn backfill_history(&self, room_id: &RoomId) -> usize {
        let attempt = self.backfill.room(room_id);
        let mut last_nothing = attempt.lock().await;
        if last_nothing.is_some_and(|at| at.elapsed() < QUIET_AFTER_NOTHING) {
            return 0;
        }
        let added = match tokio::time::timeout(DEADLINE, self.backfill_once(room_id)).await {
            Ok(Ok(added)) => added,
            Ok(Err(e)) => {
                tracing::info!(room = %room_id, error = %e.message, "backfill failed");
                0
            }
            Err(_) => {
                tracing::info!(room = %room_id, "backfill ran out of time");
                0
            }
        };
        *last_nothing = (added == 0).then(Instant::now);
        added
    }

    /// As [`Self::backfill_history`], for a gap in the middle of the room: the history
    /// that comes before `missing` (events the room's history lacks).
    pub async fn backfill_gap(&self, room_id: &RoomId, missing: Vec<OwnedEventId>) -> usize {
        let attempt = self.backfill.room(room_id);
        let mut last_nothing = attempt.lock().await;
        if last_nothing.is_some_and(|at| at.elapsed() < QUIET_AFTER_NOTHING) {
            return 0;
        }
        let from: Vec<OwnedEventId> = missing.into_iter().take(MAX_FROM).collect();
        let added =
            match tokio::time::timeout(DEADLINE, self.backfill_from(room_id, Some(from))).await {
                Ok(Ok(added)) => added,
                Ok(Err(e)) => {
                    tracing::info!(room = %room_id, error = %e.message, "backfill of a gap failed");
                    0
                }
                Err(_) => {
                    tracing::info!(room = %room_id, "backfill of a gap ran out of time");
                    0
                }
            };
        *last_nothing = (added == 0).then(Instant::now);
        added
    }

    async fn backfill_once(&self, room_id: &RoomId) -> Result<usize> {
        self.backfill_from(room_id, None).await
    }

    /// One `/backfill` from `from` (the room's backward extremities when `None`).
    async fn backfill_from(
        &self,
        room_id: &RoomId,
        from: Option<Vec<OwnedEventId>>,
    ) -> Result<usize> {
        let Some(room) = self.store.room(room_id.as_str())? else {
            return Ok(0);
        };
        let from = match from {
            Some(from) => from,
            None => self.backward_extremities(room_id)?,
        };
        if from.is_empty() {
            return Ok(0);
        }
        let servers = self.room_destinations(room_id)?;
        for server in servers.iter().take(SERVERS_TO_TRY) {
            let request = get_backfill::v1::Request::new(
                room_id.to_owned(),
                from.clone(),
                UInt::from(BACKFILL_LIMIT),
            );
            let answer = match self.federation.send(server, request).await {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::info!(room = %room_id, %server, error = %e, "backfill request failed");
                    continue;
                }
            };
            let mut events: Vec<Pdu> = answer
                .pdus
                .iter()
                .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                .filter_map(|json| parse_remote_pdu(json, room_id, room.version))
                .collect();
            events.sort_by(|a, b| (a.depth(), a.event_id()).cmp(&(b.depth(), b.event_id())));
            events.dedup_by(|a, b| a.event_id() == b.event_id());
            let added = self
                .place_in_history(server, room_id, room.version, events)
                .await?;
            if added > 0 {
                return Ok(added);
            }
        }
        Ok(0)
    }

    /// Events this server lacks that its oldest events follow: where history goes on.
    fn backward_extremities(&self, room_id: &RoomId) -> Result<Vec<OwnedEventId>> {
        let oldest = self.store.room_topo_page(
            room_id.as_str(),
            TopoKey {
                depth: 0,
                stream: 0,
            },
            Direction::Forward,
            OLDEST_EXAMINED,
        )?;
        let mut missing = BTreeSet::new();
        for (_, event_id) in oldest {
            let Some(record) = self.store.event(event_id.as_str())? else {
                continue;
            };
            missing.extend(self.missing_prev_events(&record)?);
            if missing.len() >= MAX_FROM {
                break;
            }
        }
        Ok(missing.into_iter().take(MAX_FROM).collect())
    }

    /// The `prev_events` of `record` that this server does not have in the room's
    /// history (unknown, or known only as outliers).
    pub(crate) fn missing_prev_events(&self, record: &EventRecord) -> Result<Vec<OwnedEventId>> {
        let mut missing = Vec::new();
        for prev in crate::event::pdu::referenced_ids(record.pdu.get("prev_events")) {
            let known = self
                .store
                .event(prev)?
                .is_some_and(|r| r.status != EventStatus::Outlier);
            if !known && let Ok(id) = EventId::parse(prev) {
                missing.push(id);
            }
        }
        Ok(missing)
    }

    /// Checks and stores events of the room's past, oldest first. Returns how many were
    /// accepted into history.
    async fn place_in_history(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        events: Vec<Pdu>,
    ) -> Result<usize> {
        let mut added = 0;
        for pdu in events {
            if self
                .store
                .event(pdu.event_id().as_str())?
                .is_some_and(|r| r.status != EventStatus::Outlier)
            {
                continue;
            }
            // The room's create event follows nothing: the state before it is empty.
            let state_before = match pdu.prev_events().is_empty() {
                true => Some(self.store_state_group(&StateIds::new())?),
                false => None,
            };
            let placement = Placement::Historical;
            let received = self
                .receive_fetching(server, room_id, version, &pdu, placement, state_before)
                .await;
            match received {
                Ok(Received::Accepted) => added += 1,
                Ok(outcome) => {
                    tracing::debug!(event = %pdu.event_id(), ?outcome, "backfilled event not accepted")
                }
                Err(e) => {
                    tracing::info!(%server, event = %pdu.event_id(), error = %e, "backfilled event not stored")
                }
            }
        }
        Ok(added)
    }
}
