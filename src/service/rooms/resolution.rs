//! State resolution over stored events: the pure algorithm lives in `event::state_res`;
//! this loads what it needs.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::OwnedEventId;

use super::state::StateIds;
use crate::error::{Error, Result};
use crate::event::state_res::separate;
use crate::event::{Pdu, RoomVersion};
use crate::service::Services;

/// The most events loaded for one resolution (state sets and their auth chains).
const MAX_RESOLUTION_EVENTS: usize = 100_000;

impl Services {
    /// Resolves several states of a room into one (state resolution v2). States that
    /// agree are merged without loading any event. `pending` is an event the states may
    /// name that is not stored yet.
    pub(crate) fn resolve_state(
        &self,
        version: RoomVersion,
        sets: Vec<StateIds>,
        pending: Option<&Pdu>,
    ) -> Result<StateIds> {
        if sets.len() < 2 {
            return Ok(sets.into_iter().next().unwrap_or_default());
        }
        let (unconflicted, conflicted) = separate(&sets);
        if conflicted.is_empty() {
            return Ok(unconflicted);
        }
        let started = std::time::Instant::now();
        self.rooms
            .resolutions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Every event of the states and of their auth chains.
        let mut events: HashMap<OwnedEventId, Arc<Pdu>> = HashMap::new();
        if let Some(pdu) = pending {
            events.insert(pdu.event_id().to_owned(), Arc::new(pdu.clone()));
        }
        let mut queue: Vec<OwnedEventId> = sets.iter().flat_map(|s| s.values().cloned()).collect();
        if let Some(pdu) = pending {
            queue.extend(pdu.auth_events().iter().cloned());
        }
        while let Some(id) = queue.pop() {
            if events.contains_key(&id) {
                continue;
            }
            let Some(pdu) = self.pdu(id.as_str(), version)? else {
                // Resolution names the missing event if it needs it.
                continue;
            };
            queue.extend(pdu.auth_events().iter().cloned());
            events.insert(id, pdu);
            if events.len() > MAX_RESOLUTION_EVENTS {
                return Err(Error::internal(format!(
                    "state resolution needs more than {MAX_RESOLUTION_EVENTS} events"
                )));
            }
        }
        let resolved = crate::event::resolve(version, &sets, |id| events.get(id).map(|p| &**p))?;
        // Forks are rare; each resolution of one is logged with its cost (the big-room
        // bench reads these lines).
        tracing::info!(
            target: "hearth::state_res",
            sets = sets.len(),
            conflicted = conflicted.len(),
            loaded = events.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "state resolved"
        );
        Ok(resolved)
    }
}
