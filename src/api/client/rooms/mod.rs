//! Room endpoints: creation, sending, state, membership, reading events.

mod create;
mod ephemeral;
mod history;
mod members;
mod membership;
mod redact;
mod relations;
pub mod send;
mod spaces;
pub mod state;
mod upgrade;

use axum::Router;
use ruma::{OwnedRoomId, RoomId, UserId};

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::ReadAccess;

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
        .merge(relations::routes())
        .merge(history::routes())
        .merge(spaces::routes())
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
/// forgotten the room. Anyone may read the current state of a room whose history is
/// world-readable (as Synapse allows, for peeking); others may not read it.
pub fn readable_state_group(state: &Services, room_id: &RoomId, user: &UserId) -> Result<u64> {
    match state.read_access(room_id, user)? {
        ReadAccess::Joined { state_group } => Ok(state_group),
        ReadAccess::Departed { leave } => Ok(leave.state_after),
        ReadAccess::Peeking => state
            .store
            .room(room_id.as_str())?
            .map(|room| room.state_group)
            .ok_or_else(|| Error::forbidden("You are not a member of this room")),
        ReadAccess::Denied(why) => Err(Error::forbidden(why)),
    }
}
