//! `/sync` and its WebSocket twin: what changed for a user since a token, and waiting
//! (without polling) until something has.

mod budget;
mod initial;
mod lazy_members;
mod notifier;
mod response;
mod rooms;
mod summary;
mod token;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ruma::{DeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Map, Value, json};

pub(crate) use budget::fit_timeline_budget;
pub use initial::{
    DEFAULT_LIMIT as INITIAL_SYNC_DEFAULT_LIMIT, MAX_LIMIT as INITIAL_SYNC_MAX_LIMIT,
};
pub use lazy_members::LazyMembersSent;
pub use notifier::Notifier;
pub use response::SyncResponse;
pub(crate) use response::events_section;
pub(crate) use rooms::{Timeline, TimelineWindow};
pub use token::{Deferred, SyncSince, SyncToken};

use crate::error::Result;
use crate::service::Services;
use crate::service::filter::Filter;
use crate::service::presence::PresenceState;
use crate::service::push_rules::PUSH_RULES_TYPE;
use crate::service::rooms::ClientView;
use crate::store::ReceiptChange;

/// The longest a long-poll waits, whatever the client asks.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

pub struct SyncRequest {
    pub since: Option<SyncSince>,
    pub filter: std::sync::Arc<Filter>,
    pub full_state: bool,
    pub set_presence: PresenceState,
    pub timeout: Duration,
}

/// Everything one sync pass shares between rooms.
struct Pass<'a> {
    user_id: &'a UserId,
    view: ClientView<'a>,
    filter: &'a Filter,
    since: Option<SyncToken>,
    now: SyncToken,
    full_state: bool,
    receipts: HashMap<OwnedRoomId, Vec<ReceiptChange>>,
    room_account_data: HashMap<OwnedRoomId, Vec<String>>,
    /// People the user started sharing a room with in this window: their presence is
    /// sent even if it did not change, as the client has never seen it.
    newly_shared: RefCell<HashSet<OwnedUserId>>,
    /// The users in the user's `m.ignored_user_list`: their messages and invites are left
    /// out, as the spec asks.
    ignored: HashSet<OwnedUserId>,
    /// Bytes of timeline events the response may still carry (`limits.sync_timeline_bytes`).
    timeline_bytes_left: Cell<usize>,
    /// Bytes the response's rooms may still take (`limits.sync_response_bytes`).
    room_bytes_left: Cell<usize>,
    /// Catching up on deferred rooms: only this room and those after it are read.
    rooms_from: Option<&'a RoomId>,
    /// What the room being read adds to `newly_shared` and to the lazily loaded members
    /// sent, kept aside until the room is known to fit in the response.
    pending_shared: RefCell<Vec<OwnedUserId>>,
    pending_members: RefCell<Vec<(String, OwnedEventId)>>,
}

impl<'a> Pass<'a> {
    fn new(
        services: &Services,
        view: ClientView<'a>,
        filter: &'a Filter,
        since: Option<SyncToken>,
        now: SyncToken,
        full_state: bool,
    ) -> Result<Self> {
        let limits = &services.config.limits;
        Ok(Pass {
            user_id: view.user_id,
            view,
            filter,
            since,
            now,
            full_state,
            receipts: HashMap::new(),
            room_account_data: HashMap::new(),
            newly_shared: RefCell::new(HashSet::new()),
            ignored: services.ignored_users(view.user_id)?,
            timeline_bytes_left: Cell::new(limits.sync_timeline_bytes),
            room_bytes_left: Cell::new(limits.sync_response_bytes),
            rooms_from: None,
            pending_shared: RefCell::new(Vec::new()),
            pending_members: RefCell::new(Vec::new()),
        })
    }
}

impl Services {
    /// One `/sync` response. Incremental syncs with nothing to report wait up to the
    /// timeout for the notifier; initial and `full_state` syncs answer at once.
    pub async fn sync(
        self: &Arc<Self>,
        user_id: &UserId,
        device_id: &DeviceId,
        request: &SyncRequest,
    ) -> Result<SyncResponse> {
        let _presence = self.begin_sync(user_id, request.set_presence);
        // The client has what came before its token: its to-device messages up to
        // there are done with.
        if let Some(since) = &request.since {
            self.acknowledge_to_device(user_id, device_id, since.token.to_device)?;
        }
        let mut wakes = self.notifier.subscribe(user_id);
        let deadline = tokio::time::Instant::now() + request.timeout.min(MAX_TIMEOUT);
        let shutdown = self.shutdown_started();
        tokio::pin!(shutdown);
        let hold = Duration::from_millis(self.config.limits.to_device_hold_ms);
        loop {
            let (response, has_updates) = self.sync_once(
                user_id,
                device_id,
                request.since.as_ref(),
                &request.filter,
                request.full_state,
            )?;
            if has_updates
                || request.since.is_none()
                || request.full_state
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(response);
            }
            tokio::select! {
                woken = wakes.changed() => match woken {
                    Err(_) => tokio::time::sleep_until(deadline).await,
                    // Woken by a room key alone: a moment (`limits.to_device_hold_ms`) for
                    // the message it unlocks, so that both come in one answer instead of
                    // two answers and a request between them.
                    Ok(woken) => tokio::select! {
                        () = wakes.hold_after(woken, hold, deadline) => {}
                        _ = &mut shutdown => return Ok(response),
                    },
                },
                _ = tokio::time::sleep_until(deadline) => {}
                _ = &mut shutdown => return Ok(response),
            }
        }
    }

    /// Where every stream the sync follows stands now, for the user: the `next_batch`
    /// of a sync that saw everything up to here.
    pub(crate) fn sync_position(&self, user_id: &UserId) -> Result<SyncToken> {
        Ok(SyncToken {
            events: self.rooms.stream_position(),
            receipts: self.receipts.position(),
            account_data: self.store.account_data_position(user_id.as_str())?,
            presence: self.presence.position(),
            typing: self.typing.position(),
            to_device: self.e2ee.to_device_position(),
            device_lists: self.e2ee.device_list_position(),
        })
    }

    /// Computes one response without waiting. The second value says whether it holds
    /// anything: a response without updates still carries a `next_batch`.
    ///
    /// A response holds the rooms that fit in `limits.sync_response_bytes` (at least
    /// one); the rest are deferred, and `next_batch` says which and from where, so the
    /// next request sends them (`sync_deferred`) before anything newer.
    pub fn sync_once(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<&SyncSince>,
        filter: &Filter,
        full_state: bool,
    ) -> Result<(SyncResponse, bool)> {
        if let Some(SyncSince {
            token,
            deferred: Some(deferred),
        }) = since
        {
            return self.sync_deferred(user_id, device_id, *token, deferred, filter, full_state);
        }
        let since = since.map(|s| s.token);
        let now = self.sync_position(user_id)?;
        let view = ClientView { user_id, device_id };
        let mut pass = Pass::new(self, view, filter, since, now, full_state)?;

        let mut global_account_data = self.account_data_changes(&mut pass, true)?;
        // As Synapse: the push rules come with every initial sync, stored or not, and
        // after each change, always merged with the server's current predefined rules.
        let push_rules_at = self
            .store
            .account_data(user_id.as_str(), None, PUSH_RULES_TYPE)?
            .map_or(0, |r| r.position);
        let push_rules_changed = push_rules_at > since.map_or(0, |s| s.account_data);
        if (since.is_none() || push_rules_changed)
            && filter.account_data.matches(PUSH_RULES_TYPE, None)
        {
            let content = self.push_ruleset(user_id)?.to_account_data();
            global_account_data.push(json!({"type": PUSH_RULES_TYPE, "content": content}));
        }
        self.receipt_changes(&mut pass)?;
        // Global account data is sent whole (each item is bounded by the request body
        // limit); the rooms share what is left of the response's budget.
        let global_bytes: usize = global_account_data.iter().map(budget::json_size).sum();
        pass.room_bytes_left
            .set(pass.room_bytes_left.get().saturating_sub(global_bytes));

        let (mut rooms, deferred_from) = self.sync_rooms(&pass)?;
        if pass.filter.event_format == crate::service::filter::EventFormat::Federation {
            self.federation_format_rooms(&mut rooms)?;
        }
        let presence = self.sync_presence(&pass, true)?;
        let e2ee = self.sync_e2ee(
            user_id,
            device_id,
            &crate::service::e2ee::Window {
                to_device: (since.map_or(0, |s| s.to_device), now.to_device),
                device_lists: (since.map_or(0, |s| s.device_lists), now.device_lists),
                events: (since.map_or(0, |s| s.events), now.events),
                initial: since.is_none(),
            },
        )?;
        let has_updates = !rooms.is_empty()
            || !presence.is_empty()
            || !global_account_data.is_empty()
            || e2ee.has_updates();
        let next_batch = SyncSince {
            token: SyncToken {
                to_device: e2ee.to_device_reached,
                ..now
            },
            deferred: deferred_from.map(|next_room| Deferred {
                from: since,
                full_state: since.is_none() || full_state,
                next_room,
            }),
        };

        let mut rest = Map::new();
        e2ee.insert_into(&mut rest);
        rest.insert("presence".into(), events_section(presence));
        rest.insert("account_data".into(), events_section(global_account_data));
        let response = SyncResponse {
            next_batch: next_batch.to_string(),
            rooms,
            rest,
        };
        Ok((response, has_updates))
    }

    /// A response that catches up on rooms an earlier one deferred: those rooms (from
    /// this one on, as far as the budget goes) between the deferring request's `since`
    /// and its `next_batch` (`now` here), as that response would have held them. Every
    /// other stream was sent up to `now` already; only to-device messages go on (they
    /// are no room's). The token it answers with stays at `now`, with fewer rooms
    /// deferred or none, so a client repeating a request gets the same rooms again.
    fn sync_deferred(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        now: SyncToken,
        deferred: &Deferred,
        filter: &Filter,
        full_state: bool,
    ) -> Result<(SyncResponse, bool)> {
        let view = ClientView { user_id, device_id };
        let full_state = deferred.full_state || full_state;
        let mut pass = Pass::new(self, view, filter, deferred.from, now, full_state)?;
        pass.rooms_from = Some(&deferred.next_room);
        self.account_data_changes(&mut pass, false)?;
        self.receipt_changes(&mut pass)?;
        let (mut rooms, deferred_from) = self.sync_rooms(&pass)?;
        if pass.filter.event_format == crate::service::filter::EventFormat::Federation {
            self.federation_format_rooms(&mut rooms)?;
        }
        // The presence of people the rooms sent newly share with the user (an initial
        // sync sent everyone's already).
        let presence = match deferred.from {
            Some(_) => self.sync_presence(&pass, false)?,
            None => Vec::new(),
        };
        let e2ee = self.sync_e2ee(
            user_id,
            device_id,
            &crate::service::e2ee::Window {
                to_device: (now.to_device, self.e2ee.to_device_position()),
                device_lists: (now.device_lists, now.device_lists),
                events: (now.events, now.events),
                initial: true,
            },
        )?;
        let next_batch = SyncSince {
            token: SyncToken {
                to_device: e2ee.to_device_reached,
                ..now
            },
            deferred: deferred_from.map(|next_room| Deferred {
                next_room,
                full_state,
                ..deferred.clone()
            }),
        };
        let mut rest = Map::new();
        e2ee.insert_into(&mut rest);
        rest.insert("presence".into(), events_section(presence));
        rest.insert("account_data".into(), events_section(Vec::new()));
        let response = SyncResponse {
            next_batch: next_batch.to_string(),
            rooms,
            rest,
        };
        // Always an answer at once: the client's token moves on either way.
        Ok((response, true))
    }

    /// Reads the account data changes in the pass's window: the rooms' types into the
    /// pass, and (with `global`) the global items, which are returned.
    fn account_data_changes(&self, pass: &mut Pass<'_>, global: bool) -> Result<Vec<Value>> {
        let mut global_account_data = Vec::new();
        let account_since = pass.since.map_or(0, |s| s.account_data);
        if account_since >= pass.now.account_data {
            return Ok(global_account_data);
        }
        for (position, change) in self
            .store
            .account_data_changes_since(pass.user_id.as_str(), account_since)?
        {
            if position > pass.now.account_data {
                break;
            }
            match change.room_id.and_then(|r| OwnedRoomId::try_from(r).ok()) {
                Some(room_id) => pass
                    .room_account_data
                    .entry(room_id)
                    .or_default()
                    .push(change.data_type),
                None if change.data_type == PUSH_RULES_TYPE || !global => {}
                None => {
                    if pass.filter.account_data.matches(&change.data_type, None)
                        && let Some(content) =
                            self.account_data(pass.user_id, None, &change.data_type)?
                    {
                        global_account_data
                            .push(json!({"type": change.data_type, "content": content}));
                    }
                }
            }
        }
        Ok(global_account_data)
    }

    /// Reads the receipt changes in the pass's window into the pass, by room.
    fn receipt_changes(&self, pass: &mut Pass<'_>) -> Result<()> {
        if let Some(since) = pass.since
            && since.receipts < pass.now.receipts
        {
            for (_, change) in self
                .store
                .receipt_changes(since.receipts, pass.now.receipts)?
            {
                pass.receipts
                    .entry(change.room_id.clone())
                    .or_default()
                    .push(change);
            }
        }
        Ok(())
    }

    /// Presence for the response: on an initial sync everyone's the user shares a room
    /// with; otherwise those newly shared with and (with `changes`) those whose presence
    /// changed in the window.
    fn sync_presence(&self, pass: &Pass<'_>, changes: bool) -> Result<Vec<Value>> {
        if !self.config.presence.enabled {
            return Ok(Vec::new());
        }
        let candidates: Vec<_> = match pass.since {
            Some(since) => {
                let mut users: Vec<OwnedUserId> =
                    pass.newly_shared.borrow().iter().cloned().collect();
                if changes && since.presence < pass.now.presence {
                    for user in self
                        .presence
                        .changed_between(since.presence, pass.now.presence)
                    {
                        if !users.contains(&user) {
                            users.push(user);
                        }
                    }
                }
                users
            }
            None => self.co_members(pass.user_id)?.into_iter().collect(),
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let visible: HashSet<_> = match pass.since {
            Some(_) => self.co_members(pass.user_id)?,
            None => candidates.iter().cloned().collect(),
        };
        let mut events = Vec::new();
        for user in candidates {
            if !visible.contains(&user)
                || !pass
                    .filter
                    .presence
                    .matches("m.presence", Some(user.as_str()))
            {
                continue;
            }
            if let Some(event) = self.presence.event(&user) {
                events.push(event);
            }
        }
        if let Some(limit) = pass.filter.presence.limit {
            events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(events)
    }
}
