//! `/sync` and its WebSocket twin: what changed for a user since a token, and waiting
//! (without polling) until something has.

mod initial;
mod lazy_members;
mod notifier;
mod rooms;
mod summary;
mod token;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ruma::{DeviceId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

pub use initial::{
    DEFAULT_LIMIT as INITIAL_SYNC_DEFAULT_LIMIT, MAX_LIMIT as INITIAL_SYNC_MAX_LIMIT,
};
pub use lazy_members::LazyMembersSent;
pub use notifier::Notifier;
pub(crate) use rooms::{Timeline, TimelineWindow};
pub use token::SyncToken;

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
    pub since: Option<SyncToken>,
    pub filter: Filter,
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
}

impl Services {
    /// One `/sync` response. Incremental syncs with nothing to report wait up to the
    /// timeout for the notifier; initial and `full_state` syncs answer at once.
    pub async fn sync(
        self: &Arc<Self>,
        user_id: &UserId,
        device_id: &DeviceId,
        request: &SyncRequest,
    ) -> Result<Value> {
        let _presence = self.begin_sync(user_id, request.set_presence);
        // The client has what came before its token: its to-device messages up to
        // there are done with.
        if let Some(since) = request.since {
            self.acknowledge_to_device(user_id, device_id, since.to_device)?;
        }
        let mut wakes = self.notifier.subscribe(user_id);
        let deadline = tokio::time::Instant::now() + request.timeout.min(MAX_TIMEOUT);
        let shutdown = self.shutdown_started();
        tokio::pin!(shutdown);
        loop {
            let (response, has_updates) = self.sync_once(
                user_id,
                device_id,
                request.since,
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
                changed = wakes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(deadline).await;
                    }
                }
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
    pub fn sync_once(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<SyncToken>,
        filter: &Filter,
        full_state: bool,
    ) -> Result<(Value, bool)> {
        let now = self.sync_position(user_id)?;
        let mut pass = Pass {
            user_id,
            view: ClientView { user_id, device_id },
            filter,
            since,
            now,
            full_state,
            receipts: HashMap::new(),
            room_account_data: HashMap::new(),
            newly_shared: RefCell::new(HashSet::new()),
            ignored: self.ignored_users(user_id)?,
            timeline_bytes_left: Cell::new(self.config.limits.sync_timeline_bytes),
        };

        let mut global_account_data = Vec::new();
        let account_since = since.map_or(0, |s| s.account_data);
        if account_since < now.account_data {
            for (position, change) in self
                .store
                .account_data_changes_since(user_id.as_str(), account_since)?
            {
                if position > now.account_data {
                    break;
                }
                match change.room_id.and_then(|r| OwnedRoomId::try_from(r).ok()) {
                    Some(room_id) => pass
                        .room_account_data
                        .entry(room_id)
                        .or_default()
                        .push(change.data_type),
                    None if change.data_type == PUSH_RULES_TYPE => {}
                    None => {
                        if filter.account_data.matches(&change.data_type, None)
                            && let Some(content) =
                                self.account_data(user_id, None, &change.data_type)?
                        {
                            global_account_data
                                .push(json!({"type": change.data_type, "content": content}));
                        }
                    }
                }
            }
        }
        // As Synapse: the push rules come with every initial sync, stored or not, and
        // after each change, always merged with the server's current predefined rules.
        let push_rules_at = self
            .store
            .account_data(user_id.as_str(), None, PUSH_RULES_TYPE)?
            .map_or(0, |r| r.position);
        let push_rules_changed = push_rules_at > account_since;
        if (since.is_none() || push_rules_changed)
            && filter.account_data.matches(PUSH_RULES_TYPE, None)
        {
            let content = self.push_ruleset(user_id)?.to_account_data();
            global_account_data.push(json!({"type": PUSH_RULES_TYPE, "content": content}));
        }
        if let Some(since) = since
            && since.receipts < now.receipts
        {
            for (_, change) in self.store.receipt_changes(since.receipts, now.receipts)? {
                pass.receipts
                    .entry(change.room_id.clone())
                    .or_default()
                    .push(change);
            }
        }

        let mut rooms = self.sync_rooms(&pass)?;
        if pass.filter.event_format == crate::service::filter::EventFormat::Federation {
            self.federation_format_rooms(&mut rooms)?;
        }
        let presence = self.sync_presence(&pass)?;
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
        let next_batch = SyncToken {
            to_device: e2ee.to_device_reached,
            ..now
        };

        let mut response = Map::new();
        response.insert("next_batch".into(), json!(next_batch.to_string()));
        e2ee.insert_into(&mut response);
        response.insert("rooms".into(), Value::Object(rooms));
        response.insert("presence".into(), json!({ "events": presence }));
        response.insert(
            "account_data".into(),
            json!({ "events": global_account_data }),
        );
        Ok((Value::Object(response), has_updates))
    }

    fn sync_presence(&self, pass: &Pass<'_>) -> Result<Vec<Value>> {
        if !self.config.presence.enabled {
            return Ok(Vec::new());
        }
        let candidates: Vec<_> = match pass.since {
            Some(since) => {
                let mut users: Vec<OwnedUserId> =
                    pass.newly_shared.borrow().iter().cloned().collect();
                if since.presence < pass.now.presence {
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
