//! Partial-state ("faster") joins as the joining server (MSC3706, MSC3902): a remote
//! room joined with `send_join?omit_members=true` starts here with the state minus most
//! membership events, usable at once, and a background worker per room fetches the
//! full state at the join (`/state_ids`, then the events not stored yet, each checked as
//! a `send_join` answer is) from the servers in the room, then recomputes the room's
//! state with it and clears the partial flag in one write (`rooms/partial.rs`).
//!
//! While a room is partial (as Synapse): `/members` and `/joined_members` wait for the
//! full state (up to [`FULL_STATE_WAIT`], then answer what is known); non-lazy-loading
//! `/sync` leaves the room out until it is complete, and then shows it as a new join
//! with its full state, while lazy-loading syncs show it at once; events are sent to
//! the servers of `servers_in_room` besides those of the members known; received events
//! whose authorisation needs state this server lacks are checked with their own auth
//! events filling the gaps, and checked again against the full state when it comes;
//! other servers are refused `make_join`/`send_join`, `make_knock`/`send_knock`,
//! `/state`, `/state_ids` and `/backfill` for the room (404), since the answers would be
//! incomplete.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::{OwnedEventId, OwnedRoomId, OwnedServerName, RoomId, ServerName};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::service::Services;
use crate::store::{Batch, PartialStateRecord, Store, StoreResult};

/// The longest `/members` and `/joined_members` wait for a room's full state.
pub const FULL_STATE_WAIT: Duration = Duration::from_secs(25);

/// The first wait after every server in the room failed a resync; it doubles up to
/// `federation.max_retry_interval_secs`.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// Which rooms are partial, which completed when, and the queue of rooms whose resync
/// worker is to start.
pub struct PartialStates {
    /// Partial rooms and their servers (`servers_in_room`).
    partial: Mutex<HashMap<OwnedRoomId, Vec<OwnedServerName>>>,
    /// Rooms whose full state arrived, with the stream position it did at.
    completed: Mutex<HashMap<OwnedRoomId, u64>>,
    /// Rooms with a worker running.
    running: Mutex<HashSet<OwnedRoomId>>,
    /// Bumped whenever a room completes, for those waiting on one.
    changed: watch::Sender<u64>,
    queue: mpsc::UnboundedSender<OwnedRoomId>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<OwnedRoomId>>>,
}

impl PartialStates {
    pub fn load(store: &Store) -> StoreResult<Self> {
        let mut partial = HashMap::new();
        let mut completed = HashMap::new();
        for (room_id, record) in store.partial_state_rooms()? {
            match record.completed_at {
                Some(at) => {
                    completed.insert(room_id, at);
                }
                None => {
                    partial.insert(room_id, record.servers);
                }
            }
        }
        let (queue, rx) = mpsc::unbounded_channel();
        Ok(Self {
            partial: Mutex::new(partial),
            completed: Mutex::new(completed),
            running: Mutex::new(HashSet::new()),
            changed: watch::channel(0).0,
            queue,
            rx: Mutex::new(Some(rx)),
        })
    }

    pub fn is_partial(&self, room_id: &RoomId) -> bool {
        lock(&self.partial).contains_key(room_id)
    }

    /// The servers in the room at the join, while it is partial.
    pub fn servers(&self, room_id: &RoomId) -> Vec<OwnedServerName> {
        lock(&self.partial)
            .get(room_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The stream position at which the room's full state arrived, if it was partial.
    pub fn completed_at(&self, room_id: &RoomId) -> Option<u64> {
        lock(&self.completed).get(room_id).copied()
    }

    /// Notes a room joined partially (its record is written) and queues its worker.
    pub(crate) fn started(&self, room_id: &RoomId, servers: Vec<OwnedServerName>) {
        lock(&self.partial).insert(room_id.to_owned(), servers);
        lock(&self.completed).remove(room_id);
        let _ = self.queue.send(room_id.to_owned());
    }

    /// Notes a room's full state written at stream position `at`.
    pub(crate) fn completed(&self, room_id: &RoomId, at: u64) {
        lock(&self.partial).remove(room_id);
        lock(&self.completed).insert(room_id.to_owned(), at);
        self.changed.send_modify(|n| *n += 1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Services {
    pub fn is_partial_state(&self, room_id: &RoomId) -> bool {
        self.partial_states.is_partial(room_id)
    }

    /// Refuses a request of another server about a room this server has only a partial
    /// state of (as Synapse does, with 404: the server asks another).
    pub fn refuse_while_partial(&self, room_id: &RoomId, what: &str) -> Result<()> {
        if self.is_partial_state(room_id) {
            return Err(Error::not_found(format!(
                "This server has only a partial state of {room_id} and cannot serve {what} yet"
            )));
        }
        Ok(())
    }

    /// Waits (up to [`FULL_STATE_WAIT`]) until the room's state is complete; returns
    /// whether it is.
    pub async fn await_full_state(&self, room_id: &RoomId) -> bool {
        let mut rx = self.partial_states.changed.subscribe();
        let wait = async {
            while self.is_partial_state(room_id) {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(FULL_STATE_WAIT, wait).await;
        !self.is_partial_state(room_id)
    }

    /// Stages the record of a room joined with a partial state, in the batch that
    /// stores the join; returns the servers to note with [`PartialStates::started`] once
    /// it is written.
    pub(crate) fn stage_partial_state(
        &self,
        batch: &mut Batch<'_>,
        room_id: &RoomId,
        join_event: OwnedEventId,
        through: &ServerName,
        servers_in_room: &[OwnedServerName],
    ) -> Result<Vec<OwnedServerName>> {
        let mut servers = vec![through.to_owned()];
        for server in servers_in_room {
            if server != self.server_name() && !servers.contains(server) {
                servers.push(server.clone());
            }
        }
        let record = PartialStateRecord {
            join_event,
            servers: servers.clone(),
            completed_at: None,
        };
        batch.put_partial_state(room_id.as_str(), &record)?;
        Ok(servers)
    }

    /// Starts the dispatcher of resync workers, and a worker for every room a restart
    /// left partial. Each worker ends when shutdown begins.
    pub(crate) fn start_partial_state_workers(self: &Arc<Self>) -> Result<()> {
        let Some(mut rx) = lock(&self.partial_states.rx).take() else {
            return Ok(());
        };
        for (room_id, record) in self.store.partial_state_rooms()? {
            if record.completed_at.is_none() {
                let _ = self.partial_states.queue.send(room_id);
            }
        }
        let services = self.clone();
        let shutdown = self.shutdown_started();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                let room_id = tokio::select! {
                    room = rx.recv() => match room {
                        Some(room) => room,
                        None => return,
                    },
                    () = &mut shutdown => return,
                };
                if !lock(&services.partial_states.running).insert(room_id.clone()) {
                    continue;
                }
                let worker = services.clone();
                let shutdown = services.shutdown_started();
                tokio::spawn(async move {
                    tokio::select! {
                        () = worker.resync_worker(&room_id) => {}
                        () = shutdown => {}
                    }
                    lock(&worker.partial_states.running).remove(&room_id);
                });
            }
        });
        Ok(())
    }

    /// Fetches the room's full state until it is stored, backing off while no server
    /// in the room answers.
    async fn resync_worker(&self, room_id: &RoomId) {
        let delay = self.config.federation.partial_state_resync_delay_secs;
        if delay > 0 {
            tokio::time::sleep(Duration::from_secs(delay)).await;
        }
        let max_wait = Duration::from_secs(self.config.federation.max_retry_interval_secs.max(1));
        let mut wait = FIRST_RETRY.min(max_wait);
        loop {
            match self.resync_partial_state(room_id).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(room = %room_id, error = %e.message, retry_in = ?wait, "cannot fetch the full state of a partially joined room");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(max_wait);
                }
            }
        }
    }

    /// One attempt: the state at the join from each server in the room in turn (those
    /// of the join first, then those of members learnt since), until one answers.
    async fn resync_partial_state(&self, room_id: &RoomId) -> Result<()> {
        let Some(record) = self.store.partial_state(room_id.as_str())? else {
            return Ok(());
        };
        if record.completed_at.is_some() {
            self.partial_states
                .completed(room_id, record.completed_at.unwrap_or_default());
            return Ok(());
        }
        let room = self.known_room(room_id)?;
        let mut servers = record.servers.clone();
        for server in self.room_destinations(room_id)? {
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        servers.retain(|s| s != self.server_name());
        let mut last_error = Error::not_found("No other server is in the room");
        for server in &servers {
            match self
                .state_before_from(server, room_id, room.version, &record.join_event)
                .await
            {
                Ok(group) => {
                    self.complete_partial_state(room_id, &record, group).await?;
                    tracing::info!(room = %room_id, %server, "the full state of a partially joined room arrived");
                    return Ok(());
                }
                Err(e) => {
                    tracing::info!(room = %room_id, %server, error = %e.message, "state at the join not fetched");
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }
}
