//! Room endpoints: creation, sending, state, membership, reading events.

mod create;
mod ephemeral;
mod members;
mod membership;
mod redact;
pub mod send;
pub mod state;
mod upgrade;

use axum::Router;
use ruma::{OwnedRoomId, RoomId, UserId};

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::Services;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(create::routes())
        .merge(send::routes())
        .merge(state::routes())
        .merge(membership::routes())
        .merge(members::routes())
        .merge(redact::routes())
        .merge(upgrade::routes())
        .merge(ephemeral::routes())
}

pub fn parse_room_id(text: &str) -> Result<OwnedRoomId> {
    RoomId::parse(text).map_err(|e| Error::invalid_param(format!("Invalid room ID {text:?}: {e}")))
}

/// Limits the spec sets on event types and state keys.
pub fn check_identifier_length(what: &str, text: &str) -> Result<()> {
    if text.len() > 255 {
        return Err(Error::invalid_param(format!(
            "{what} is longer than 255 bytes"
        )));
    }
    Ok(())
}

/// The state group a user may read a room's state at: the current one while joined, the
/// one after their departure once they have left or been removed, unless they have since
/// forgotten the room. Others may not read it.
pub fn readable_state_group(state: &Services, room_id: &RoomId, user: &UserId) -> Result<u64> {
    let not_member = || Error::forbidden("You are not a member of this room");
    let room = state.store.room(room_id.as_str())?.ok_or_else(not_member)?;
    let membership = state
        .store
        .user_room(user.as_str(), room_id.as_str())?
        .ok_or_else(not_member)?;
    if membership.forgotten {
        return Err(Error::forbidden("You have forgotten this room"));
    }
    match membership.membership.as_str() {
        "join" => Ok(room.state_group),
        "leave" | "ban" => {
            let event = state
                .store
                .event(membership.event_id.as_str())?
                .ok_or_else(|| Error::internal("membership event missing"))?;
            // Only someone who was joined until this event keeps a view of the room.
            let before = state.state_ids_at(event.state_before)?;
            let previous = before
                .get(&("m.room.member".to_owned(), user.to_string()))
                .map(|id| state.store.event(id.as_str()))
                .transpose()?
                .flatten();
            let was_joined = previous.is_some_and(|p| {
                p.pdu
                    .pointer("/content/membership")
                    .and_then(serde_json::Value::as_str)
                    == Some("join")
            });
            if !was_joined {
                return Err(not_member());
            }
            Ok(event.state_after)
        }
        _ => Err(not_member()),
    }
}
