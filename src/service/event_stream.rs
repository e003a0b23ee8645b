//! The legacy `GET /events` stream: everything new for a user since a sync token, as
//! one flat list of events (room events, presence, typing, receipts, account data), or
//! one room's part of it for someone peeking into a world-readable room. It reads the
//! same streams as `/sync` and waits on the same notifier.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ruma::{DeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::presence::PresenceState;
use crate::service::push_rules::PUSH_RULES_TYPE;
use crate::service::rooms::{ClientView, HistoryReader, ReadAccess};
use crate::service::sync::{MAX_TIMEOUT, SyncToken};

/// Room events per answer when the client gives no limit, and the most it may ask.
pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 1000;

/// The most room events one room's scan reads, however many the visibility rules skip.
const SCAN_BUDGET: usize = 2000;

pub struct EventsRequest {
    /// Where the client's view ends; `None` starts from now.
    pub from: Option<SyncToken>,
    pub timeout: Duration,
    /// Only this room's events: the room-preview form, open to non-members of
    /// world-readable rooms.
    pub room_id: Option<OwnedRoomId>,
    pub limit: usize,
}

/// The rooms one answer covers and whose users' presence it shows.
struct Scope {
    rooms: Vec<OwnedRoomId>,
    /// `Some` for the one-room (peeking) form: account data is left out.
    only_room: Option<OwnedRoomId>,
}

/// Synapse's older client format, which its legacy endpoints (`/events`,
/// `/initialSync`) still give: the sender again as `user_id`, and `age`, `prev_content`,
/// `replaces_state` and `redacted_because` repeated from `unsigned` at the top level.
pub(crate) fn legacy_client_event(mut event: Value) -> Value {
    let Some(object) = event.as_object_mut() else {
        return event;
    };
    if let Some(sender) = object.get("sender").cloned() {
        object.insert("user_id".into(), sender);
    }
    let unsigned = object.get("unsigned").and_then(Value::as_object).cloned();
    for key in ["age", "redacted_because", "replaces_state", "prev_content"] {
        if let Some(value) = unsigned.as_ref().and_then(|u| u.get(key)) {
            object.insert(key.into(), value.clone());
        }
    }
    event
}

impl Services {
    /// `GET /events`: waits up to the timeout for something new after `from`, and
    /// answers `{chunk, start, end}`.
    pub async fn event_stream(
        self: &Arc<Self>,
        user_id: &UserId,
        device_id: &DeviceId,
        is_guest: bool,
        request: &EventsRequest,
    ) -> Result<Value> {
        if let Some(room_id) = &request.room_id {
            if let ReadAccess::Denied(why) = self.read_access(room_id, user_id)? {
                return Err(Error::forbidden(why));
            }
        } else if is_guest {
            return Err(Error::new(
                ErrorKind::GuestAccessForbidden,
                "Guests may only read the events of one world-readable room",
            ));
        }
        // As Synapse: a user reading their stream is online (a guest peeking is not).
        let _presence = (!is_guest).then(|| self.begin_sync(user_id, PresenceState::Online));
        // The stream carries no to-device messages, so its tokens never move that part
        // on: a `/sync` from one of them acknowledges none the client has not had.
        let from = match request.from {
            Some(from) => from,
            None => SyncToken {
                to_device: 0,
                ..self.sync_position(user_id)?
            },
        };
        // Someone peeking gets no wake of their own: the room's members do.
        let waker = match &request.room_id {
            Some(room_id) if !self.is_joined(room_id, user_id)? => self
                .room_members(room_id)?
                .joined
                .iter()
                .find(|u| self.user_is_local(u))
                .cloned()
                .unwrap_or_else(|| user_id.to_owned()),
            _ => user_id.to_owned(),
        };
        let mut wakes = self.notifier.subscribe(&waker);
        let deadline = tokio::time::Instant::now() + request.timeout.min(MAX_TIMEOUT);
        let shutdown = self.shutdown_started();
        tokio::pin!(shutdown);
        loop {
            let (chunk, end) = self.events_once(user_id, device_id, from, request)?;
            if !chunk.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(json!({
                    "chunk": chunk,
                    "start": from.to_string(),
                    "end": end.to_string(),
                }));
            }
            tokio::select! {
                changed = wakes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {}
                _ = &mut shutdown => {
                    return Ok(json!({"chunk": [], "start": from.to_string(), "end": from.to_string()}));
                }
            }
        }
    }

    fn user_is_local(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name()
    }

    /// One answer without waiting: the events after `from` and the token after them.
    fn events_once(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        from: SyncToken,
        request: &EventsRequest,
    ) -> Result<(Vec<Value>, SyncToken)> {
        let now = self.sync_position(user_id)?;
        let view = ClientView { user_id, device_id };
        let scope = self.stream_scope(user_id, from, request.room_id.as_deref())?;
        let ignored = self.ignored_users(user_id)?;

        // Room events, oldest first across rooms, at most `limit`: when more remain,
        // the token stops at the last one given, so the next call goes on from there.
        let mut room_events = Vec::new();
        for room_id in &scope.rooms {
            room_events.extend(self.room_events_between(
                room_id,
                view,
                &ignored,
                from.events,
                now.events,
                request.limit,
            )?);
        }
        room_events.sort_by_key(|(position, _)| *position);
        let mut end = SyncToken {
            to_device: from.to_device,
            ..now
        };
        if room_events.len() > request.limit {
            room_events.truncate(request.limit);
            if let Some((position, _)) = room_events.last() {
                end.events = *position;
            }
        }
        let mut chunk: Vec<Value> = room_events
            .into_iter()
            .map(|(_, e)| legacy_client_event(e))
            .collect();

        chunk.extend(self.stream_presence(user_id, &scope, from, now)?);
        for room_id in &scope.rooms {
            if let Some(users) = self.typing.changed_since(room_id, Some(from.typing)) {
                chunk.push(json!({
                    "type": "m.typing",
                    "room_id": room_id,
                    "content": {"user_ids": users},
                }));
            }
        }
        if from.receipts < now.receipts {
            let mut by_room: HashMap<OwnedRoomId, Vec<_>> = HashMap::new();
            for (_, change) in self.store.receipt_changes(from.receipts, now.receipts)? {
                by_room
                    .entry(change.room_id.clone())
                    .or_default()
                    .push(change);
            }
            for room_id in &scope.rooms {
                if let Some(changes) = by_room.get(room_id)
                    && let Some(mut receipt) =
                        self.receipt_content(user_id, room_id, Some(changes))?
                {
                    receipt["room_id"] = json!(room_id);
                    chunk.push(receipt);
                }
            }
        }
        if scope.only_room.is_none() {
            chunk.extend(self.stream_account_data(user_id, &scope, from, now)?);
        }
        Ok((chunk, end))
    }

    /// The rooms whose events the user follows: those they are in, and those whose
    /// membership changed after `from` (to see the leave, invite or ban). With a room,
    /// that room alone (its access was checked by the caller).
    fn stream_scope(
        &self,
        user_id: &UserId,
        from: SyncToken,
        room_id: Option<&RoomId>,
    ) -> Result<Scope> {
        if let Some(room_id) = room_id {
            return Ok(Scope {
                rooms: vec![room_id.to_owned()],
                only_room: Some(room_id.to_owned()),
            });
        }
        let mut rooms = Vec::new();
        for (room_id, record) in self.store.user_rooms_shared(user_id.as_str())?.iter() {
            if record.forgotten {
                continue;
            }
            if record.membership == "join" || record.stream > from.events {
                rooms.push(room_id.clone());
            }
        }
        Ok(Scope {
            rooms,
            only_room: None,
        })
    }

    /// Up to `limit + 1` events of the room in `(from, to]` that the user may see,
    /// oldest first, with their stream positions.
    fn room_events_between(
        &self,
        room_id: &RoomId,
        view: ClientView<'_>,
        ignored: &HashSet<OwnedUserId>,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>> {
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        // Without a view of the history (an invite), the user still sees their own
        // membership events, as in `/sync`.
        let mut reader = self.history_reader(room_id, view).ok();
        let mut after = from;
        let mut budget = SCAN_BUDGET;
        while out.len() <= limit && budget > 0 {
            let page = self
                .store
                .room_events_after(room_id.as_str(), after, limit + 1)?;
            let exhausted = page.len() < limit + 1;
            for (position, event_id) in page {
                if position > to {
                    return Ok(out);
                }
                after = position;
                budget = budget.saturating_sub(1);
                let Some(cached) = self.store.event_shared(event_id.as_str())? else {
                    continue;
                };
                let record = &cached.record;
                let visible =
                    HistoryReader::timeline_visible(reader.as_mut(), view.user_id, record)?;
                if !visible {
                    continue;
                }
                let event = self.client_event_of(event_id.as_str(), record, Some(view))?;
                let from_ignored = event.get("state_key").is_none()
                    && event
                        .get("sender")
                        .and_then(Value::as_str)
                        .is_some_and(|s| ignored.iter().any(|u| u.as_str() == s));
                if !from_ignored {
                    out.push((position, event));
                    if out.len() > limit {
                        return Ok(out);
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(out)
    }

    /// Presence changes in the window of the users the user shares a room with (or, in
    /// the one-room form, of the room's members), in the legacy shape with the user in
    /// the content.
    fn stream_presence(
        &self,
        user_id: &UserId,
        scope: &Scope,
        from: SyncToken,
        now: SyncToken,
    ) -> Result<Vec<Value>> {
        if !self.config.presence.enabled || from.presence >= now.presence {
            return Ok(Vec::new());
        }
        let visible: HashSet<OwnedUserId> = match &scope.only_room {
            Some(room_id) => self.room_members(room_id)?.joined.iter().cloned().collect(),
            None => self.co_members(user_id)?,
        };
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for user in self.presence.changed_between(from.presence, now.presence) {
            if !visible.contains(&user) || !seen.insert(user.clone()) {
                continue;
            }
            if let Some(mut event) = self.presence.event(&user) {
                event["content"]["user_id"] = json!(user);
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The user's account data changed in the window: global, and per room (with its
    /// `room_id`, tags included) for the rooms in scope. Push rules are left out, as
    /// clients read them from `/pushrules`.
    fn stream_account_data(
        &self,
        user_id: &UserId,
        scope: &Scope,
        from: SyncToken,
        now: SyncToken,
    ) -> Result<Vec<Value>> {
        let mut events = Vec::new();
        if from.account_data >= now.account_data {
            return Ok(events);
        }
        let mut seen = HashSet::new();
        for (position, change) in self
            .store
            .account_data_changes_since(user_id.as_str(), from.account_data)?
        {
            if position > now.account_data {
                break;
            }
            if !seen.insert((change.room_id.clone(), change.data_type.clone())) {
                continue;
            }
            let room_id = match change.room_id.as_deref() {
                None if change.data_type == PUSH_RULES_TYPE => continue,
                None => None,
                Some(room) => match scope.rooms.iter().find(|r| r.as_str() == room) {
                    Some(room_id) => Some(room_id),
                    None => continue,
                },
            };
            let Some(content) =
                self.account_data(user_id, room_id.map(|r| &**r), &change.data_type)?
            else {
                continue;
            };
            let mut event = json!({"type": change.data_type, "content": content});
            if let Some(room_id) = room_id {
                event["room_id"] = json!(room_id);
            }
            events.push(event);
        }
        Ok(events)
    }
}
