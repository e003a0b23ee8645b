//! Reading the EDUs of an incoming transaction, without I/O: each content typed, and
//! everything an origin may not say (about users of another server) taken out or
//! refused, before the services apply what is left. The services call these, and so does
//! the `federation_edu` fuzz target.

use std::collections::BTreeMap;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, ServerName, UserId};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::e2ee::Messages;
use crate::service::presence::{MAX_STATUS_MSG, PresenceState};

/// Refused unless `user_id` belongs to `origin`: a server speaks only for its own users.
pub fn check_user_origin(user_id: &UserId, origin: &ServerName) -> Result<()> {
    if user_id.server_name() == origin {
        Ok(())
    } else {
        Err(Error::forbidden(format!(
            "{origin} may not speak for {user_id}"
        )))
    }
}

fn typed<T: for<'de> Deserialize<'de>>(edu_type: &str, content: &Value) -> Result<T> {
    T::deserialize(content).map_err(|e| Error::bad_json(format!("bad {edu_type} EDU: {e}")))
}

/// An `m.typing` EDU.
#[derive(Debug, Deserialize)]
pub struct Typing {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    pub typing: bool,
}

pub fn typing(origin: &ServerName, content: &Value) -> Result<Typing> {
    let typing: Typing = typed("m.typing", content)?;
    check_user_origin(&typing.user_id, origin)?;
    Ok(typing)
}

/// One read receipt of an `m.receipt` EDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub room_id: OwnedRoomId,
    pub user_id: OwnedUserId,
    pub event_id: OwnedEventId,
    pub thread_id: Option<String>,
}

/// The `m.read` receipts of an `m.receipt` EDU (`{room: {"m.read": {user: {event_ids,
/// data}}}}`), of the origin's users only; other receipt types are not federated.
pub fn receipts(origin: &ServerName, content: &Value) -> Result<Vec<Receipt>> {
    #[derive(Deserialize)]
    struct UserReceipt {
        event_ids: Vec<OwnedEventId>,
        #[serde(default)]
        data: ReceiptData,
    }
    #[derive(Deserialize, Default)]
    struct ReceiptData {
        thread_id: Option<String>,
    }
    type Receipts = BTreeMap<OwnedRoomId, BTreeMap<String, BTreeMap<OwnedUserId, UserReceipt>>>;
    let receipts: Receipts = typed("m.receipt", content)?;
    let mut out = Vec::new();
    for (room_id, mut by_type) in receipts {
        let Some(users) = by_type.remove("m.read") else {
            continue;
        };
        for (user_id, receipt) in users {
            if check_user_origin(&user_id, origin).is_err() {
                continue;
            }
            for event_id in receipt.event_ids {
                out.push(Receipt {
                    room_id: room_id.clone(),
                    user_id: user_id.clone(),
                    event_id,
                    thread_id: receipt.data.thread_id.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// One update of an `m.presence` EDU.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub user_id: OwnedUserId,
    pub state: PresenceState,
    pub status_msg: Option<String>,
    pub last_active_ago: Option<u64>,
    pub currently_active: bool,
}

/// The updates of an `m.presence` EDU about the origin's users, with a presence this
/// server knows and a status message within [`MAX_STATUS_MSG`]; others are dropped.
pub fn presence(origin: &ServerName, content: &Value) -> Result<Vec<Presence>> {
    #[derive(Deserialize)]
    struct Push {
        push: Vec<Update>,
    }
    #[derive(Deserialize)]
    struct Update {
        user_id: OwnedUserId,
        presence: String,
        #[serde(default)]
        status_msg: Option<String>,
        #[serde(default)]
        last_active_ago: Option<u64>,
        #[serde(default)]
        currently_active: Option<bool>,
    }
    let push: Push = typed("m.presence", content)?;
    Ok(push
        .push
        .into_iter()
        .filter(|u| check_user_origin(&u.user_id, origin).is_ok())
        .filter(|u| {
            u.status_msg
                .as_ref()
                .is_none_or(|m| m.len() <= MAX_STATUS_MSG)
        })
        .filter_map(|u| {
            Some(Presence {
                state: PresenceState::parse(&u.presence)?,
                user_id: u.user_id,
                status_msg: u.status_msg,
                last_active_ago: u.last_active_ago,
                currently_active: u.currently_active.unwrap_or(false),
            })
        })
        .collect())
}

/// An `m.device_list_update` EDU (the fields this server reads).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceListUpdate {
    pub user_id: OwnedUserId,
    pub device_id: String,
    /// The position of this update on the user's server's stream.
    pub stream_id: u64,
    /// The updates just before this one (for this server); empty when unknown.
    #[serde(default)]
    pub prev_id: Vec<u64>,
    #[serde(default)]
    pub deleted: Option<bool>,
    /// The device's keys, when it has some (an object; anything else counts as none).
    #[serde(default)]
    pub keys: Option<Value>,
    #[serde(default)]
    pub device_display_name: Option<String>,
}

pub fn device_list_update(origin: &ServerName, content: &Value) -> Result<DeviceListUpdate> {
    let mut update: DeviceListUpdate = typed("m.device_list_update", content)?;
    check_user_origin(&update.user_id, origin)?;
    if update.keys.as_ref().is_some_and(|k| !k.is_object()) {
        update.keys = None;
    }
    Ok(update)
}

/// An `m.signing_key_update` EDU: the user's new master and/or self-signing key.
#[derive(Debug, Clone, Deserialize)]
pub struct SigningKeyUpdate {
    pub user_id: OwnedUserId,
    #[serde(default)]
    pub master_key: Option<Value>,
    #[serde(default)]
    pub self_signing_key: Option<Value>,
}

/// An `m.signing_key_update` EDU; a key that is not the user's own (its `user_id`
/// another) is dropped.
pub fn signing_key_update(origin: &ServerName, content: &Value) -> Result<SigningKeyUpdate> {
    let mut update: SigningKeyUpdate = typed("m.signing_key_update", content)?;
    check_user_origin(&update.user_id, origin)?;
    let user = update.user_id.as_str();
    for key in [&mut update.master_key, &mut update.self_signing_key] {
        if key
            .as_ref()
            .is_some_and(|k| k.get("user_id").and_then(Value::as_str) != Some(user))
        {
            *key = None;
        }
    }
    Ok(update)
}

/// An `m.direct_to_device` EDU, with only the messages for users of `local`.
#[derive(Debug, Deserialize)]
pub struct DirectToDevice {
    pub sender: OwnedUserId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub message_id: String,
    pub messages: Messages,
}

pub fn direct_to_device(
    origin: &ServerName,
    local: &ServerName,
    content: &Value,
) -> Result<DirectToDevice> {
    let mut edu: DirectToDevice = typed("m.direct_to_device", content)?;
    check_user_origin(&edu.sender, origin)?;
    edu.messages.retain(|user, _| user.server_name() == local);
    Ok(edu)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn origin() -> ruma::OwnedServerName {
        ServerName::parse("remote.test").unwrap()
    }

    #[test]
    fn only_the_origins_users_are_heard() {
        let content = json!({
            "!r:remote.test": { "m.read": {
                "@a:remote.test": { "event_ids": ["$e"], "data": { "thread_id": "main" } },
                "@b:other.test": { "event_ids": ["$f"] },
            }, "m.read.private": { "@a:remote.test": { "event_ids": ["$g"] } } }
        });
        let got = receipts(&origin(), &content).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_id, "$e");
        assert_eq!(got[0].thread_id.as_deref(), Some("main"));
        assert!(
            typing(
                &origin(),
                &json!({"room_id": "!r:x", "user_id": "@b:other.test", "typing": true})
            )
            .is_err()
        );
        let push = json!({ "push": [
            { "user_id": "@a:remote.test", "presence": "online" },
            { "user_id": "@a:remote.test", "presence": "asleep" },
            { "user_id": "@a:remote.test", "presence": "online", "status_msg": "x".repeat(MAX_STATUS_MSG + 1) },
            { "user_id": "@b:other.test", "presence": "online" },
        ]});
        assert_eq!(presence(&origin(), &push).unwrap().len(), 1);
        let local = ServerName::parse("here.test").unwrap();
        let edu = direct_to_device(
            &origin(),
            &local,
            &json!({
                "sender": "@a:remote.test", "type": "m.x", "message_id": "1",
                "messages": { "@me:here.test": { "*": {} }, "@you:else.test": { "D": {} } },
            }),
        )
        .unwrap();
        assert_eq!(edu.messages.len(), 1);
    }
}
