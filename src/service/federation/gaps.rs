//! Gaps in a room's DAG: a pushed event whose `prev_events` this server does not have
//! (it missed events while down, or the sender stopped queueing for it). The missing
//! events are asked for with `/get_missing_events` and received oldest first; if the
//! gap is longer than that, the state before the earliest event received is fetched from
//! the sender (`/state_ids`), so the event is checked against the right state, and the
//! events in between stay unknown (reachable later through backfill).

use ruma::api::federation::event::get_missing_events;
use ruma::{OwnedEventId, RoomId, ServerName, UInt};
use serde_json::Value;

use super::fetch::parse_remote_pdu;
use crate::event::{Pdu, PublicKeyMap, RoomVersion};
use crate::service::Services;
use crate::service::rooms::{PduError, Placement, Received};

/// Missing events asked for at once (Synapse asks for 10).
const MISSING_EVENTS_LIMIT: u32 = 10;

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
        match self
            .receive_pdu_placed(room_id, json.clone(), keys, unsynced, None)
            .await
        {
            Err(PduError::MissingPrevEvents(_)) => {}
            Err(PduError::MissingAuthEvents(ids)) => {
                let fetched = self.fetch_events(origin, room_id, version, ids).await;
                self.store_fetched_outliers(origin, room_id, version, fetched)
                    .await?;
                return self
                    .receive_pdu_placed(room_id, json, keys, unsynced, None)
                    .await;
            }
            other => return other,
        }
        let pdu = parse_remote_pdu(json.clone(), room_id, version)
            .ok_or_else(|| PduError::Invalid("not an event of this room".into()))?;
        for missing in self.missing_events(origin, room_id, version, &pdu).await {
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
    /// them, oldest first; none if it cannot say.
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
        let mut request = get_missing_events::v1::Request::new(
            room_id.to_owned(),
            earliest,
            vec![pdu.event_id().to_owned()],
        );
        request.limit = UInt::from(MISSING_EVENTS_LIMIT);
        let answer = match self.federation.send(origin, request).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::info!(%origin, room = %room_id, error = %e, "get_missing_events failed");
                return Vec::new();
            }
        };
        let mut events: Vec<Pdu> = answer
            .events
            .iter()
            .take(MISSING_EVENTS_LIMIT as usize * 2)
            .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .filter_map(|json| parse_remote_pdu(json, room_id, version))
            .collect();
        events.sort_by(|a, b| (a.depth(), a.event_id()).cmp(&(b.depth(), b.event_id())));
        events.dedup_by(|a, b| a.event_id() == b.event_id());
        events
    }
}
