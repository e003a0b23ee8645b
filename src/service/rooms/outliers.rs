//! Storing many events known without the state before them at once (a `send_join`
//! answer's state and auth chain): the same checks as [`Services::store_outlier`] one
//! event at a time, but with the signatures verified in parallel across the CPUs and
//! the events written in a few large batches with one sync of the write-ahead log at the
//! end, instead of a synced write per event.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::{OwnedEventId, RoomId};
use serde_json::Value;

use super::PduError;
use super::receive::{check_signatures, parse_pdu};
use crate::event::{Pdu, PublicKeyMap, RoomVersion, check_event_auth};
use crate::service::Services;
use crate::store::EventStatus;

/// Events per write batch: bounds the memory a batch holds before it is written.
const BATCH_EVENTS: usize = 2_000;

/// One event to store: its JSON and the keys of the servers that signed it.
pub struct OutlierInput {
    pub json: Value,
    pub keys: PublicKeyMap,
}

impl Services {
    /// Stores `events`, given in topological order (auth events first), as outliers or,
    /// when they fail their auth events, as rejected. Events already stored keep their
    /// status. Returns the IDs of the events that are rejected (now or before). Fails,
    /// storing nothing further, on the first event that is invalid, badly signed or of
    /// another room, or whose auth events are neither stored nor among `events`.
    pub fn store_outliers(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        events: Vec<OutlierInput>,
        create: Option<&Pdu>,
    ) -> Result<Vec<OwnedEventId>, (Option<OwnedEventId>, PduError)> {
        let checked = verify_all(room_id, version, events);
        // Events of this call accepted so far, for the auth checks of later ones (they are
        // not readable from the store before their batch is written).
        let mut known: HashMap<OwnedEventId, (EventStatus, Arc<Pdu>)> = HashMap::new();
        let mut rejected = Vec::new();
        let mut batch = self.store.batch();
        let mut in_batch = 0;
        for item in checked {
            let (event_id, pdu, json) = item?;
            let fail = |e: PduError| (Some(event_id.clone()), e);
            if known.contains_key(&event_id) {
                continue;
            }
            if let Some(existing) = self
                .store
                .event(event_id.as_str())
                .map_err(|e| fail(e.into()))?
            {
                let is_rejected = existing.status == EventStatus::Rejected;
                if is_rejected {
                    rejected.push(event_id.clone());
                }
                // Rule 3.3: an event whose auth event was rejected is rejected too.
                let mut pdu = pdu;
                pdu.set_rejected(is_rejected);
                known.insert(event_id, (existing.status, Arc::new(pdu)));
                continue;
            }
            let mut auth_events: Vec<Arc<Pdu>> = Vec::with_capacity(pdu.auth_events().len());
            let mut missing = Vec::new();
            for id in pdu.auth_events() {
                if let Some((_, auth)) = known.get(id) {
                    auth_events.push(auth.clone());
                } else {
                    match self.pdu(id.as_str(), version).map_err(|e| fail(e.into()))? {
                        Some(auth) => auth_events.push(auth),
                        None => missing.push(id.clone()),
                    }
                }
            }
            if !missing.is_empty() {
                return Err(fail(PduError::MissingAuthEvents(missing)));
            }
            let auth_refs: Vec<&Pdu> = auth_events.iter().map(|p| &**p).collect();
            let status = match check_event_auth(version, &pdu, &auth_refs, create) {
                Ok(()) => EventStatus::Outlier,
                Err(_) => EventStatus::Rejected,
            };
            if status == EventStatus::Rejected {
                rejected.push(event_id.clone());
            }
            self.stage_unaccepted(&mut batch, room_id, &pdu, json, status, 0)
                .map_err(|e| fail(e.into()))?;
            let mut pdu = pdu;
            pdu.set_rejected(status == EventStatus::Rejected);
            known.insert(event_id.clone(), (status, Arc::new(pdu)));
            in_batch += 1;
            if in_batch == BATCH_EVENTS {
                let full = std::mem::replace(&mut batch, self.store.batch());
                self.store
                    .write_unsynced(full)
                    .map_err(|e| fail(e.into()))?;
                in_batch = 0;
            }
        }
        self.store
            .write_unsynced(batch)
            .map_err(|e| (None, e.into()))?;
        // Durable before anything builds on them.
        self.store.sync_wal().map_err(|e| (None, e.into()))?;
        Ok(rejected)
    }
}

type Checked = Result<(OwnedEventId, Pdu, Value), (Option<OwnedEventId>, PduError)>;

/// Parses and verifies every event (signatures and content hashes), in parallel across
/// the CPUs this process may use; keeps the order.
fn verify_all(room_id: &RoomId, version: RoomVersion, events: Vec<OutlierInput>) -> Vec<Checked> {
    let check = |input: OutlierInput| -> Checked {
        let mut json = input.json;
        let pdu = parse_pdu(&mut json, version).map_err(|e| (None, e))?;
        let event_id = pdu.event_id().to_owned();
        if pdu.room_id().is_some_and(|r| r != room_id) {
            return Err((
                Some(event_id),
                PduError::Invalid(format!("event does not belong to {room_id}")),
            ));
        }
        let (pdu, json) = check_signatures(pdu, json, &input.keys, version)
            .map_err(|e| (Some(event_id.clone()), e))?;
        Ok((event_id, pdu, json))
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if threads < 2 || events.len() < 64 {
        return events.into_iter().map(check).collect();
    }
    let chunk = events.len().div_ceil(threads);
    let mut chunks: Vec<Vec<OutlierInput>> = Vec::with_capacity(threads);
    let mut events = events.into_iter();
    loop {
        let part: Vec<OutlierInput> = events.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        chunks.push(part);
    }
    let check = &check;
    let work = || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|part| scope.spawn(move || part.into_iter().map(check).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("signature checks do not panic"))
                .collect()
        })
    };
    // The checks take a while for thousands of events: off the runtime's queue.
    if tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}
