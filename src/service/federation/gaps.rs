//! Gaps in a room's DAG: a pushed event whose `prev_events` this server does not have
//! (it missed events while down, or the sender stopped queueing for it). The missing
//! events are asked for with `/get_missing_events` and received oldest first (a pushed
//! event whose sender sends none of them is dropped); if the
//! gap is longer than that, the state before the earliest event received is fetched from
//! the sender (`/state_ids`), so the event is checked against the right state, and the
//! events in between stay unknown (reachable later through backfill). The missing
//! events are asked for in rounds of 20, each from the oldest events received whose
//! `prev_events` are still unknown, for at most 15 rounds (300 events).

use std::collections::HashMap;

use ruma::api::federation::event::get_missing_events;
use ruma::{OwnedEventId, RoomId, ServerName, UInt};
use serde_json::Value;

use super::fetch::parse_remote_pdu;
use crate::event::{Pdu, PublicKeyMap, RoomVersion};
use crate::service::Services;
use crate::service::rooms::{PduError, Placement, Received};
use crate::store::EventStatus;

/// Missing events asked for at once (Hearth and Synapse answer at most 20).
const MISSING_EVENTS_LIMIT: u32 = 20;

/// `/get_missing_events` requests for one pushed event: up to 300 events are fetched
/// this way before the state before the oldest is asked for instead.
const MISSING_EVENTS_ROUNDS: usize = 15;

/// `latest_events` named in one request.
const MAX_LATEST_EVENTS: usize = 20;

impl Services {
    /// [`Self::receive_pdu`] for a PDU pushed by `origin`, filling a gap before it
    /// first: the missing events from `origin` (`/get_missing_events`), then, if the gap
    /// is still open, the state before the events whose `prev_events` are unknown.
    /// Writes are not synced one by one: the caller syncs once before answering.
    pub async fn receive_pushed_pdu(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        json: Value,
        keys: &PublicKeyMap,
    ) -> Result<(OwnedEventId, Received), PduError> {
        let unsynced = Placement::LiveUnsynced;
        let mut first = self
            .receive_pdu_placed(room_id, json.clone(), keys, unsynced, None)
            .await;
        if let Err(PduError::MissingAuthEvents(ids)) = first {
            let fetched = self.fetch_events(origin, room_id, version, ids).await;
            self.store_fetched_outliers(origin, room_id, version, fetched)
                .await?;
            first = self
                .receive_pdu_placed(room_id, json.clone(), keys, unsynced, None)
                .await;
        }
        // Its auth events known (or fetched), a gap before it is filled next.
        match first {
            Err(PduError::MissingPrevEvents(_)) => {}
            other => return other,
        }
        let pdu = parse_remote_pdu(json.clone(), room_id, version)
            .ok_or_else(|| PduError::Invalid("not an event of this room".into()))?;
        let missing = self.missing_events(origin, room_id, version, &pdu).await;
        // The sender pushed an event and will not say what comes before it: the event is
        // dropped rather than checked against a state asked for (as Synapse does; such
        // an event could otherwise become the room's only extremity on a state the
        // sender chose). Events it does send may still follow a longer gap.
        if missing.is_empty() {
            return Err(PduError::MissingPrevEvents(pdu.prev_events().to_vec()));
        }
        for missing in missing {
            let missing_id = missing.event_id().to_owned();
            let received = self
                .receive_fetching(origin, room_id, version, &missing, unsynced, None)
                .await;
            if let Err(e) = received {
                tracing::info!(%origin, event = %missing_id, error = %e, "missing event not stored");
            }
        }
        self.receive_fetching(origin, room_id, version, &pdu, unsynced, None)
            .await
            .map(|received| (pdu.event_id().to_owned(), received))
    }

    /// The events between the room's forward extremities and `pdu` as `origin` has
    /// them, oldest first; none if it cannot say. `/get_missing_events` is asked again
    /// from the oldest events received whose `prev_events` are still unknown, until the
    /// gap closes, `origin` has nothing more, or [`MISSING_EVENTS_ROUNDS`] requests
    /// were made; the caller then fetches the state before the oldest.
    async fn missing_events(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        version: RoomVersion,
        pdu: &Pdu,
    ) -> Vec<Pdu> {
        let earliest = match self.store.room(room_id.as_str()) {
            Ok(Some(room)) => room.extremities,
            _ => return Vec::new(),
        };
        let mut found: HashMap<OwnedEventId, Pdu> = HashMap::new();
        let mut latest = vec![pdu.event_id().to_owned()];
        for _ in 0..MISSING_EVENTS_ROUNDS {
            let mut request =
                get_missing_events::v1::Request::new(room_id.to_owned(), earliest.clone(), latest);
            request.limit = UInt::from(MISSING_EVENTS_LIMIT);
            let answer = match self.federation.send(origin, request).await {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::info!(%origin, room = %room_id, error = %e, "get_missing_events failed");
                    break;
                }
            };
            let before = found.len();
            for pdu in answer
                .events
                .iter()
                .take(MISSING_EVENTS_LIMIT as usize * 2)
                .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                .filter_map(|json| parse_remote_pdu(json, room_id, version))
            {
                found.entry(pdu.event_id().to_owned()).or_insert(pdu);
            }
            if found.len() == before {
                break;
            }
            latest = self.open_ends(&found, pdu);
            if latest.is_empty() {
                break;
            }
        }
        let mut events: Vec<Pdu> = found.into_values().collect();
        events.sort_by(|a, b| (a.depth(), a.event_id()).cmp(&(b.depth(), b.event_id())));
        events
    }

    /// The events of `found` (or `pdu`) with a prev event neither stored here (in the
    /// room's DAG) nor among `found`: where the gap still goes on.
    fn open_ends(&self, found: &HashMap<OwnedEventId, Pdu>, pdu: &Pdu) -> Vec<OwnedEventId> {
        let known = |id: &OwnedEventId| {
            found.contains_key(id)
                || self
                    .store
                    .event(id.as_str())
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.status != EventStatus::Outlier && r.state_after != 0)
        };
        let mut ends: Vec<OwnedEventId> = found
            .values()
            .chain(std::iter::once(pdu))
            .filter(|e| e.prev_events().iter().any(|p| !known(p)))
            .map(|e| e.event_id().to_owned())
            .collect();
        ends.sort();
        ends.truncate(MAX_LATEST_EVENTS);
        ends
    }
}
