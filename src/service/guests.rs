//! Guest accounts (spec, "Guest Access"): what a guest may call, joining only rooms
//! whose `m.room.guest_access` is `can_join`, and leaving those rooms when it stops
//! being so.

use std::sync::{Arc, Mutex};

use axum::http::Method;
use ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::service::rooms::MembershipChange;
use crate::service::sessions::IssuedTokens;
use crate::service::{Services, password};

/// The endpoints a guest may call: the spec's list (reading rooms, previews, sending to
/// joined rooms, their devices and keys, their display name), and what Synapse also
/// opens to guests that clients call on start-up (filters, capabilities, push rules,
/// presence, typing, receipts, logout). `r0` paths are matched as `v3`.
const GUEST_MAY_USE: &[(&str, &str)] = &[
    ("GET", "/_matrix/client/v3/rooms/{room_id}/state"),
    (
        "GET",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}",
    ),
    (
        "GET",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/",
    ),
    (
        "GET",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}",
    ),
    (
        "GET",
        "/_matrix/client/v3/rooms/{room_id}/context/{event_id}",
    ),
    ("GET", "/_matrix/client/v3/rooms/{room_id}/event/{event_id}"),
    ("GET", "/_matrix/client/v3/rooms/{room_id}/messages"),
    ("GET", "/_matrix/client/v3/rooms/{room_id}/members"),
    ("GET", "/_matrix/client/v3/rooms/{room_id}/joined_members"),
    ("GET", "/_matrix/client/v3/rooms/{room_id}/initialSync"),
    ("GET", "/_matrix/client/v3/sync"),
    ("GET", "/_matrix/client/v3/events"),
    ("GET", "/_matrix/client/v3/events/{event_id}"),
    (
        "GET",
        "/_matrix/client/v1/media/download/{server_name}/{media_id}",
    ),
    (
        "GET",
        "/_matrix/client/v1/media/download/{server_name}/{media_id}/{file_name}",
    ),
    (
        "GET",
        "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}",
    ),
    ("POST", "/_matrix/client/v3/rooms/{room_id}/join"),
    ("POST", "/_matrix/client/v3/join/{room_id_or_alias}"),
    ("POST", "/_matrix/client/v3/rooms/{room_id}/leave"),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}",
    ),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}",
    ),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/",
    ),
    (
        "PUT",
        "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}",
    ),
    (
        "PUT",
        "/_matrix/client/v3/sendToDevice/{event_type}/{txn_id}",
    ),
    // Only the display name: checked on the path itself below.
    ("PUT", "/_matrix/client/v3/profile/{user_id}/{key_name}"),
    ("DELETE", "/_matrix/client/v3/profile/{user_id}/{key_name}"),
    ("GET", "/_matrix/client/v3/devices"),
    ("GET", "/_matrix/client/v3/devices/{device_id}"),
    ("PUT", "/_matrix/client/v3/devices/{device_id}"),
    ("GET", "/_matrix/client/v3/account/whoami"),
    ("POST", "/_matrix/client/v3/keys/upload"),
    ("POST", "/_matrix/client/v3/keys/query"),
    ("POST", "/_matrix/client/v3/keys/claim"),
    ("GET", "/_matrix/client/v3/keys/changes"),
    ("POST", "/_matrix/client/v3/user/{user_id}/filter"),
    (
        "GET",
        "/_matrix/client/v3/user/{user_id}/filter/{filter_id}",
    ),
    ("GET", "/_matrix/client/v3/capabilities"),
    ("GET", "/_matrix/client/v3/pushrules/"),
    ("GET", "/_matrix/client/v3/pushrules/global/"),
    ("GET", "/_matrix/client/v3/presence/{user_id}/status"),
    ("PUT", "/_matrix/client/v3/presence/{user_id}/status"),
    ("PUT", "/_matrix/client/v3/rooms/{room_id}/typing/{user_id}"),
    (
        "POST",
        "/_matrix/client/v3/rooms/{room_id}/receipt/{receipt_type}/{event_id}",
    ),
    ("POST", "/_matrix/client/v3/rooms/{room_id}/read_markers"),
    ("POST", "/_matrix/client/v3/logout"),
    ("POST", "/_matrix/client/v3/logout/all"),
];

/// Whether a guest may call the route `template` (the router's path pattern) with
/// `method`; `path` is the request's own path, for the profile rule.
pub fn guest_may_use(method: &Method, template: &str, path: &str) -> bool {
    let template = match template.strip_prefix("/_matrix/client/r0/") {
        Some(rest) => format!("/_matrix/client/v3/{rest}"),
        None => template.to_owned(),
    };
    let listed = GUEST_MAY_USE
        .iter()
        .any(|(m, t)| *m == method.as_str() && *t == template);
    if !listed {
        return false;
    }
    if template.starts_with("/_matrix/client/v3/profile/") {
        return path.ends_with("/displayname");
    }
    true
}

/// The routes guests may use, for the test that checks each is a real route.
pub fn guest_routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    GUEST_MAY_USE.iter().copied()
}

pub fn guest_forbidden() -> Error {
    Error::new(
        ErrorKind::GuestAccessForbidden,
        "Guest accounts cannot use this endpoint",
    )
}

/// Rooms whose guest access just changed, for the worker that makes guests leave.
pub struct GuestKicks {
    tx: mpsc::UnboundedSender<OwnedRoomId>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<OwnedRoomId>>>,
}

impl Default for GuestKicks {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl GuestKicks {
    /// Called once an `m.room.guest_access` event became the room's current state.
    pub fn changed(&self, room_id: &RoomId) {
        let _ = self.tx.send(room_id.to_owned());
    }
}

impl Services {
    /// Whether `user_id` is a guest account of this server.
    pub fn is_guest(&self, user_id: &UserId) -> Result<bool> {
        if user_id.server_name() != self.server_name() {
            return Ok(false);
        }
        Ok(self.store.user(user_id.as_str())?.is_some_and(|u| u.guest))
    }

    /// Whether guests may join the room now (`m.room.guest_access` is `can_join`).
    pub fn guests_may_join(&self, room_id: &RoomId) -> Result<bool> {
        let Some(event_id) =
            self.store
                .current_state_id(room_id.as_str(), "m.room.guest_access", "")?
        else {
            return Ok(false);
        };
        Ok(self.store.event(event_id.as_str())?.is_some_and(|e| {
            e.pdu
                .pointer("/content/guest_access")
                .and_then(Value::as_str)
                == Some("can_join")
        }))
    }

    /// Refuses a guest's own join to a room that does not let guests in. Called under
    /// the room lock for every local event, so no path to a join escapes it.
    pub(crate) fn check_guest_join(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        event_type: &str,
        state_key: Option<&str>,
        content: &Value,
    ) -> Result<()> {
        let joins = event_type == "m.room.member"
            && state_key == Some(sender.as_str())
            && content.get("membership").and_then(Value::as_str) == Some("join");
        if joins && self.is_guest(sender)? && !self.guests_may_join(room_id)? {
            return Err(Error::new(
                ErrorKind::GuestAccessForbidden,
                "Guest access is not allowed in this room",
            ));
        }
        Ok(())
    }

    /// The worker that makes this server's guests leave a room once its guest access
    /// is no longer `can_join` (the spec's "MUST set those users' membership to leave").
    /// Ends when shutdown begins.
    pub(crate) fn start_guest_kicks(self: &Arc<Self>) {
        let Some(mut rx) = self
            .guest_kicks
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
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
                if let Err(e) = services.remove_guests(&room_id).await {
                    tracing::warn!(room = %room_id, error = %e, "could not remove guests");
                }
            }
        });
    }

    /// Makes a guest a full account with a password, keeping its user ID, rooms and
    /// data, and opens a new session for it (`/register` with `guest_access_token`).
    pub async fn upgrade_guest(
        &self,
        user_id: &UserId,
        password: String,
        device_id: Option<OwnedDeviceId>,
        device_display_name: Option<String>,
        refreshable: bool,
    ) -> Result<IssuedTokens> {
        self.check_password_rules(&password)?;
        let hash = password::hash(password).await?;
        {
            let _guard = self.sessions.write_lock.lock().await;
            let mut user = self
                .store
                .user(user_id.as_str())?
                .filter(|u| u.guest && !u.deactivated)
                .ok_or_else(|| Error::forbidden("Only an active guest account can be upgraded"))?;
            user.guest = false;
            user.password_hash = Some(hash);
            let mut batch = self.store.batch();
            batch.put_user(user_id.as_str(), &user)?;
            self.store.write(batch)?;
        }
        tracing::info!(user_id = %user_id, "guest upgraded to a full account");
        self.sessions
            .open_session(user_id, device_id, device_display_name, refreshable)
            .await
    }

    async fn remove_guests(&self, room_id: &RoomId) -> Result<()> {
        if self.guests_may_join(room_id)? {
            return Ok(());
        }
        let members = self.room_members(room_id)?;
        let guests: Vec<OwnedUserId> = members
            .joined
            .iter()
            .filter(|u| self.is_guest(u).unwrap_or(false))
            .cloned()
            .collect();
        for guest in guests {
            // Their own leave, which the auth rules always allow, as Synapse does.
            self.change_membership(room_id, &guest, &guest, MembershipChange::Leave, None)
                .await?;
            tracing::info!(room = %room_id, user = %guest, "guest left: guest access revoked");
        }
        Ok(())
    }
}
