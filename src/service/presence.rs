//! Presence: online while a sync or socket is open, then unavailable, then offline after
//! the configured idle times. State changes are persisted and move the presence stream;
//! activity times live in memory, as they change on every request.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::{OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::service::{Services, now_ms};
use crate::store::{PresenceRecord, Store};

/// A user counts as "currently active" this long after their last action.
const CURRENTLY_ACTIVE_MS: u64 = 60_000;

/// Longest status message kept.
pub const MAX_STATUS_MSG: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    Online,
    Unavailable,
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Unavailable => "unavailable",
            Self::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "online" => Some(Self::Online),
            "unavailable" => Some(Self::Unavailable),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }
}

struct UserPresence {
    state: PresenceState,
    status_msg: Option<String>,
    last_active_ts: u64,
    position: u64,
    /// Open `/sync` requests and sockets.
    open_syncs: u32,
    /// When the last open sync closed (ms); the idle clock starts there.
    last_sync_end: u64,
    /// Set by the user (not by idleness), so syncing does not undo it.
    chosen_unavailable: bool,
}

pub struct Presence {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    position: u64,
    users: HashMap<OwnedUserId, UserPresence>,
    /// Each user once, at the position of their latest change.
    changes: BTreeMap<u64, OwnedUserId>,
}

impl Presence {
    pub fn load(store: &Store) -> crate::store::StoreResult<Self> {
        let mut inner = Inner::default();
        let now = now_ms();
        for (user, record) in store.all_presence()? {
            let Ok(user_id) = OwnedUserId::try_from(user) else {
                continue;
            };
            let state = PresenceState::parse(&record.presence).unwrap_or(PresenceState::Offline);
            inner.position = inner.position.max(record.position);
            inner.changes.insert(record.position, user_id.clone());
            inner.users.insert(
                user_id,
                UserPresence {
                    state,
                    status_msg: record.status_msg,
                    last_active_ts: record.last_active_ts,
                    position: record.position,
                    open_syncs: 0,
                    // Idle time counts from the restart: nobody was seen going away.
                    last_sync_end: now,
                    chosen_unavailable: false,
                },
            );
        }
        Ok(Self {
            inner: Mutex::new(inner),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn position(&self) -> u64 {
        self.inner().position
    }

    /// Users whose presence changed after `since`, up to `until`.
    pub fn changed_between(&self, since: u64, until: u64) -> Vec<OwnedUserId> {
        self.inner()
            .changes
            .range(since.saturating_add(1)..=until)
            .map(|(_, u)| u.clone())
            .collect()
    }

    /// The `m.presence` event for the user, or `None` if they never had a presence.
    pub fn event(&self, user_id: &UserId) -> Option<Value> {
        let inner = self.inner();
        let user = inner.users.get(user_id)?;
        Some(json!({
            "type": "m.presence",
            "sender": user_id,
            "content": content(user, now_ms()),
        }))
    }
}

fn content(user: &UserPresence, now: u64) -> Value {
    let mut content = json!({
        "presence": user.state.as_str(),
        "last_active_ago": now.saturating_sub(user.last_active_ts),
        "currently_active": user.state == PresenceState::Online
            && now.saturating_sub(user.last_active_ts) < CURRENTLY_ACTIVE_MS,
    });
    if let Some(msg) = &user.status_msg {
        content["status_msg"] = json!(msg);
    }
    content
}

/// What changed, to be persisted and announced outside the lock.
struct Change {
    user_id: OwnedUserId,
    record: PresenceRecord,
}

impl Inner {
    fn user(&mut self, user_id: &UserId, now: u64) -> &mut UserPresence {
        self.users
            .entry(user_id.to_owned())
            .or_insert_with(|| UserPresence {
                state: PresenceState::Offline,
                status_msg: None,
                last_active_ts: now,
                position: 0,
                open_syncs: 0,
                last_sync_end: now,
                chosen_unavailable: false,
            })
    }

    /// Moves the user to the next position and returns the record to persist.
    fn bump(&mut self, user_id: &UserId) -> Change {
        self.position += 1;
        let position = self.position;
        let user = self.users.get_mut(user_id).expect("user entry exists");
        let old = std::mem::replace(&mut user.position, position);
        self.changes.remove(&old);
        self.changes.insert(position, user_id.to_owned());
        let user = &self.users[user_id];
        Change {
            user_id: user_id.to_owned(),
            record: PresenceRecord {
                presence: user.state.as_str().to_owned(),
                status_msg: user.status_msg.clone(),
                last_active_ts: user.last_active_ts,
                position,
            },
        }
    }
}

/// Held while a sync or socket is open; closing it starts the user's idle clock.
pub struct SyncPresence {
    services: Arc<Services>,
    user_id: OwnedUserId,
}

impl Drop for SyncPresence {
    fn drop(&mut self) {
        let mut inner = self.services.presence.inner();
        let now = now_ms();
        let user = inner.user(&self.user_id, now);
        user.open_syncs = user.open_syncs.saturating_sub(1);
        user.last_sync_end = now;
    }
}

impl Services {
    fn presence_enabled(&self) -> bool {
        self.config.presence.enabled
    }

    /// Marks a sync or socket open. `set_presence` is the client's wish for the
    /// duration (online when absent).
    pub fn begin_sync(
        self: &Arc<Self>,
        user_id: &UserId,
        set_presence: PresenceState,
    ) -> SyncPresence {
        let change = {
            let mut inner = self.presence.inner();
            let now = now_ms();
            let user = inner.user(user_id, now);
            user.open_syncs += 1;
            let target = match set_presence {
                PresenceState::Online if user.chosen_unavailable => PresenceState::Unavailable,
                other => other,
            };
            if target == PresenceState::Online {
                user.last_active_ts = now;
            }
            // `offline` leaves presence as it is (the spec: the client "is not marked
            // as being online"), as Synapse does: it does not mark the user offline.
            if target != PresenceState::Offline && user.state != target && self.presence_enabled() {
                user.state = target;
                Some(inner.bump(user_id))
            } else {
                None
            }
        };
        if let Some(change) = change {
            self.publish_presence(change);
        }
        SyncPresence {
            services: Arc::clone(self),
            user_id: user_id.to_owned(),
        }
    }

    /// Sending a message is activity: it resets the idle clock and brings an idle user back.
    pub fn note_activity(&self, user_id: &UserId) {
        let change = {
            let mut inner = self.presence.inner();
            let now = now_ms();
            let user = inner.user(user_id, now);
            user.last_active_ts = now;
            if user.state != PresenceState::Online
                && !user.chosen_unavailable
                && self.presence_enabled()
            {
                user.state = PresenceState::Online;
                Some(inner.bump(user_id))
            } else {
                None
            }
        };
        if let Some(change) = change {
            self.publish_presence(change);
        }
    }

    /// `PUT /presence/{userId}/status`.
    pub fn set_presence(
        &self,
        user_id: &UserId,
        state: PresenceState,
        status_msg: Option<String>,
    ) -> Result<()> {
        if status_msg
            .as_ref()
            .is_some_and(|m| m.len() > MAX_STATUS_MSG)
        {
            return Err(Error::invalid_param(format!(
                "status_msg is longer than {MAX_STATUS_MSG} bytes"
            )));
        }
        if !self.presence_enabled() {
            return Ok(());
        }
        let change = {
            let mut inner = self.presence.inner();
            let now = now_ms();
            let user = inner.user(user_id, now);
            user.chosen_unavailable = state == PresenceState::Unavailable;
            if state == PresenceState::Online {
                user.last_active_ts = now;
            }
            if user.state == state && user.status_msg == status_msg {
                None
            } else {
                user.state = state;
                user.status_msg = status_msg;
                Some(inner.bump(user_id))
            }
        };
        if let Some(change) = change {
            self.publish_presence(change);
        }
        Ok(())
    }

    /// `GET /presence/{userId}/status`: for the user and those who share a room with them.
    pub fn get_presence(&self, viewer: &UserId, user_id: &UserId) -> Result<Value> {
        if viewer != user_id && !self.shares_room(viewer, user_id)? {
            return Err(Error::forbidden(
                "You do not share a room with this user, so you cannot see their presence",
            ));
        }
        if !self.presence_enabled() {
            return Ok(json!({"presence": "offline"}));
        }
        let inner = self.presence.inner();
        match inner.users.get(user_id) {
            Some(user) => Ok(content(user, now_ms())),
            None if self.store.user(user_id.as_str())?.is_some() => {
                Ok(json!({"presence": "offline"}))
            }
            None => Err(Error::not_found(format!("Unknown user {user_id}"))),
        }
    }

    /// Everyone who shares a joined room with the user, the user included.
    pub fn co_members(&self, user_id: &UserId) -> Result<HashSet<OwnedUserId>> {
        let mut users = HashSet::new();
        users.insert(user_id.to_owned());
        for (room_id, record) in self.store.user_rooms_shared(user_id.as_str())?.iter() {
            if record.membership == "join" {
                users.extend(self.room_members(room_id)?.joined.iter().cloned());
            }
        }
        Ok(users)
    }

    fn shares_room(&self, a: &UserId, b: &UserId) -> Result<bool> {
        for (room_id, record) in self.store.user_rooms_shared(a.as_str())?.iter() {
            if record.membership == "join" && self.room_members(room_id)?.is_joined(b) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A remote user's presence, as their server reports it.
    pub fn set_remote_presence(
        &self,
        user_id: &UserId,
        state: PresenceState,
        status_msg: Option<String>,
        last_active_ago: Option<u64>,
        currently_active: bool,
    ) {
        if !self.presence_enabled()
            || status_msg
                .as_ref()
                .is_some_and(|m| m.len() > MAX_STATUS_MSG)
        {
            return;
        }
        let change = {
            let mut inner = self.presence.inner();
            let now = now_ms();
            let user = inner.user(user_id, now);
            user.last_active_ts = if currently_active {
                now
            } else {
                now.saturating_sub(last_active_ago.unwrap_or(0))
            };
            user.state = state;
            user.status_msg = status_msg;
            inner.bump(user_id)
        };
        self.publish_presence(change);
    }

    fn publish_presence(&self, change: Change) {
        if let Err(e) = self
            .store
            .put_presence(change.user_id.as_str(), &change.record)
        {
            tracing::warn!(error = %e, user = %change.user_id, "cannot store presence");
        }
        let users = match self.co_members(&change.user_id) {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!(error = %e, "cannot wake presence watchers");
                return;
            }
        };
        self.notifier.wake(users.iter().map(|u| u.as_ref()));
        // Our own users' presence goes to the servers they share a room with.
        if change.user_id.server_name() == self.server_name() {
            let destinations: BTreeSet<&ServerName> = users
                .iter()
                .map(|u| u.server_name())
                .filter(|s| *s != self.server_name())
                .collect();
            if !destinations.is_empty() {
                let destinations: Vec<_> =
                    destinations.into_iter().map(ToOwned::to_owned).collect();
                let now = now_ms();
                let mut update = json!({
                    "user_id": change.user_id,
                    "presence": change.record.presence,
                    "last_active_ago": now.saturating_sub(change.record.last_active_ts),
                    "currently_active": change.record.presence == "online"
                        && now.saturating_sub(change.record.last_active_ts) < CURRENTLY_ACTIVE_MS,
                });
                if let Some(msg) = &change.record.status_msg {
                    update["status_msg"] = json!(msg);
                }
                self.sender.send_edu(
                    &destinations,
                    json!({ "edu_type": "m.presence", "content": { "push": [update] } }),
                );
            }
        }
    }

    /// Moves users without an open sync to unavailable and then offline. Runs for the
    /// server's life; it only looks at users not already offline.
    pub async fn presence_idle_loop(self: Arc<Self>) {
        let config = &self.config.presence;
        let unavailable_ms = (config.unavailable_after_secs * 1000.0) as u64;
        let offline_ms = (config.offline_after_secs * 1000.0) as u64;
        let tick = Duration::from_millis((unavailable_ms / 4).clamp(50, 1000));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if !self.presence_enabled() {
                continue;
            }
            let changes = {
                let mut inner = self.presence.inner();
                let now = now_ms();
                let mut due = Vec::new();
                for (user_id, user) in &inner.users {
                    // Other servers report their users' idleness themselves.
                    if user.open_syncs > 0
                        || user.state == PresenceState::Offline
                        || user_id.server_name() != self.server_name()
                    {
                        continue;
                    }
                    let idle = now.saturating_sub(user.last_sync_end.max(user.last_active_ts));
                    if idle >= offline_ms {
                        due.push((user_id.clone(), PresenceState::Offline));
                    } else if idle >= unavailable_ms && user.state == PresenceState::Online {
                        due.push((user_id.clone(), PresenceState::Unavailable));
                    }
                }
                due.into_iter()
                    .map(|(user_id, state)| {
                        if let Some(user) = inner.users.get_mut(&user_id) {
                            user.state = state;
                        }
                        inner.bump(&user_id)
                    })
                    .collect::<Vec<_>>()
            };
            for change in changes {
                self.publish_presence(change);
            }
        }
    }
}
