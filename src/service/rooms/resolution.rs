//! State resolution over stored events: the pure algorithm lives in `event::state_res`;
//! this loads what it needs.
//!
//! The algorithm compares the states' auth chains, which in a big room hold thousands of
//! events (every member's join), while a conflict usually involves a few. So the auth
//! DAG's edges (each event's auth event IDs, which never change) are walked from a cache of
//! their own, and only the events the algorithm reads are loaded: the full conflicted set,
//! its auth chain, and the unconflicted state entries its auth checks consult.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ruma::{EventId, OwnedEventId};

use super::state::StateIds;
use crate::error::{Error, Result};
use crate::event::auth::auth_types_for_pdu;
use crate::event::state_res::separate;
use crate::event::{EventError, Pdu, RoomVersion, full_conflicted_set, resolve_from_full};
use crate::service::Services;

/// The most events loaded for one resolution (state sets and their auth chains).
const MAX_RESOLUTION_EVENTS: usize = 100_000;

/// Events the algorithm asked for beyond what was loaded before it falls back to
/// loading every event of the states and their auth chains.
const MAX_EXTRA_LOADS: usize = 8;

/// An event's auth event IDs.
pub(crate) type AuthEdges = Arc<[OwnedEventId]>;

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
        let mut loader = Loader::new(self, version, pending);
        let resolved = if version.state_res_v1() {
            loader.load_all(&sets)?;
            crate::event::resolve(version, &sets, |id| loader.event(id))?
        } else {
            loader.resolve(&sets, &unconflicted, &conflicted)?
        };
        // Forks are rare; each resolution of one is logged with its cost (the big-room
        // bench reads these lines).
        tracing::info!(
            target: "hearth::state_res",
            sets = sets.len(),
            conflicted = conflicted.len(),
            loaded = loader.events.len(),
            walked = loader.edges.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "state resolved"
        );
        Ok(resolved)
    }
}

/// What one resolution has read: the auth DAG's edges walked, the events loaded.
struct Loader<'a> {
    services: &'a Services,
    version: RoomVersion,
    pending: Option<&'a Pdu>,
    edges: HashMap<OwnedEventId, AuthEdges>,
    events: HashMap<OwnedEventId, Arc<Pdu>>,
}

impl<'a> Loader<'a> {
    fn new(services: &'a Services, version: RoomVersion, pending: Option<&'a Pdu>) -> Self {
        Self {
            services,
            version,
            pending,
            edges: HashMap::new(),
            events: HashMap::new(),
        }
    }

    fn event(&self, id: &EventId) -> Option<&Pdu> {
        self.events.get(id).map(|p| &**p)
    }

    fn auth_ids(&self, id: &EventId) -> Option<&[OwnedEventId]> {
        self.edges.get(id).map(|e| &e[..])
    }

    /// Loads one event (the pending one, or a stored one); `None` when not stored.
    fn load(&mut self, id: &EventId) -> Result<Option<Arc<Pdu>>> {
        if let Some(pdu) = self.events.get(id) {
            return Ok(Some(pdu.clone()));
        }
        let pdu = match self.pending {
            Some(p) if p.event_id() == id => Arc::new(p.clone()),
            _ => match self.services.pdu(id.as_str(), self.version)? {
                Some(pdu) => pdu,
                None => return Ok(None),
            },
        };
        self.events.insert(id.to_owned(), pdu.clone());
        if self.events.len() > MAX_RESOLUTION_EVENTS {
            return Err(Error::internal(format!(
                "state resolution needs more than {MAX_RESOLUTION_EVENTS} events"
            )));
        }
        Ok(Some(pdu))
    }

    /// An event's auth event IDs, from the cache of edges or from the event.
    fn edges_of(&mut self, id: &EventId) -> Result<Option<AuthEdges>> {
        if let Some(edges) = self.edges.get(id) {
            return Ok(Some(edges.clone()));
        }
        let cache = &self.services.rooms.auth_edges;
        let edges = match cache.get(id) {
            Some(edges) => edges,
            None => {
                let pending = self.pending.filter(|p| p.event_id() == id);
                let edges: AuthEdges = match pending {
                    Some(p) => p.auth_events().into(),
                    None => match self.services.pdu(id.as_str(), self.version)? {
                        Some(pdu) => pdu.auth_events().into(),
                        None => return Ok(None),
                    },
                };
                if pending.is_none() {
                    cache.insert(id.to_owned(), edges.clone());
                }
                edges
            }
        };
        self.edges.insert(id.to_owned(), edges.clone());
        if self.edges.len() > MAX_RESOLUTION_EVENTS {
            return Err(Error::internal(format!(
                "state resolution walks more than {MAX_RESOLUTION_EVENTS} events"
            )));
        }
        Ok(Some(edges))
    }

    /// Walks the auth DAG from `start` (the events and their auth chains) into `edges`;
    /// events not stored are left out (the algorithm names them if it needs them).
    fn walk(&mut self, start: impl IntoIterator<Item = OwnedEventId>) -> Result<()> {
        let mut queue: Vec<OwnedEventId> = start.into_iter().collect();
        while let Some(id) = queue.pop() {
            if self.edges.contains_key(&id) {
                continue;
            }
            if let Some(edges) = self.edges_of(&id)? {
                queue.extend(
                    edges
                        .iter()
                        .filter(|a| !self.edges.contains_key(*a))
                        .cloned(),
                );
            }
        }
        Ok(())
    }

    /// Loads `start` and their auth chains (walked already).
    fn load_with_chains(&mut self, start: impl IntoIterator<Item = OwnedEventId>) -> Result<()> {
        let mut queue: Vec<OwnedEventId> = start.into_iter().collect();
        while let Some(id) = queue.pop() {
            if self.events.contains_key(&id) {
                continue;
            }
            if self.load(&id)?.is_some()
                && let Some(edges) = self.edges_of(&id)?
            {
                queue.extend(
                    edges
                        .iter()
                        .filter(|a| !self.events.contains_key(*a))
                        .cloned(),
                );
            }
        }
        Ok(())
    }

    /// Loads every event of the states and their auth chains (room version 1, and the
    /// fallback).
    fn load_all(&mut self, sets: &[StateIds]) -> Result<()> {
        let mut start: Vec<OwnedEventId> = sets.iter().flat_map(|s| s.values().cloned()).collect();
        start.extend(self.pending.map(|p| p.event_id().to_owned()));
        self.walk(start.clone())?;
        self.load_with_chains(start)
    }

    /// State resolution v2 loading what it reads: the full conflicted set and its auth
    /// chain, and the unconflicted entries its events' auth checks use, with their chains.
    fn resolve(
        &mut self,
        sets: &[StateIds],
        unconflicted: &StateIds,
        conflicted: &BTreeSet<OwnedEventId>,
    ) -> Result<StateIds> {
        let version = self.version;
        self.walk(sets.iter().flat_map(|s| s.values().cloned()))?;
        let full = {
            let ids = |id: &EventId| {
                self.auth_ids(id)
                    .ok_or_else(|| EventError::MissingEvent(id.to_string()))
            };
            full_conflicted_set(version, sets, unconflicted, conflicted, &ids)?
        };
        let mut wanted: Vec<OwnedEventId> = full.iter().cloned().collect();
        for id in &full {
            let Some(pdu) = self.load(id)? else { continue };
            let mut keys = auth_types_for_pdu(version, &pdu);
            keys.push(("m.room.create".to_owned(), String::new()));
            wanted.extend(keys.iter().filter_map(|k| unconflicted.get(k).cloned()));
        }
        wanted.extend(
            unconflicted
                .get(&("m.room.create".to_owned(), String::new()))
                .cloned(),
        );
        self.load_with_chains(wanted)?;
        // What was loaded is what the algorithm reads; should it ask for more (a case
        // this selection missed), that event and its chain are loaded and it runs again,
        // a few times, and then with everything.
        for _ in 0..MAX_EXTRA_LOADS {
            let outcome = resolve_from_full(
                version,
                unconflicted,
                &full,
                |id| self.auth_ids(id),
                |id| self.event(id),
            );
            match outcome {
                Err(EventError::MissingEvent(missing)) => {
                    let id = OwnedEventId::try_from(missing.as_str())
                        .map_err(|_| Error::internal(format!("bad event ID {missing}")))?;
                    tracing::debug!(target: "hearth::state_res", event = %id, "state resolution read an event not loaded");
                    self.walk([id.clone()])?;
                    self.load_with_chains([id.clone()])?;
                    if !self.events.contains_key(&id) {
                        // Not stored: the resolution cannot be done.
                        return Err(EventError::MissingEvent(missing).into());
                    }
                }
                outcome => return Ok(outcome?),
            }
        }
        self.load_all(sets)?;
        Ok(resolve_from_full(
            version,
            unconflicted,
            &full,
            |id| self.auth_ids(id),
            |id| self.event(id),
        )?)
    }
}
