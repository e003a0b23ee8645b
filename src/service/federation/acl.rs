//! The room's server ACL, applied both ways: to requests from other servers, and to
//! the servers this one sends a room's events and EDUs to.

use ruma::{RoomId, ServerName};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::ServerAcl;
use crate::service::Services;

impl Services {
    /// `403 M_FORBIDDEN` when the room's current `m.room.server_acl` denies `origin`; a
    /// room without one allows every server. The spec requires this of `/state`,
    /// `/state_ids`, `/backfill`, `/event_auth`, `/get_missing_events` and the
    /// membership endpoints; Hearth applies it to every request about a room's events.
    pub fn check_server_acl(&self, room_id: &RoomId, origin: &ServerName) -> Result<()> {
        if self.room_acl(room_id)?.is_none_or(|acl| acl.allows(origin)) {
            Ok(())
        } else {
            tracing::info!(%origin, room = %room_id, "request refused by the room's server ACL");
            Err(Error::forbidden(format!(
                "Server {origin} is denied by the server ACL of room {room_id}"
            )))
        }
    }

    /// The room's current server ACL; `None` when it has none.
    pub fn room_acl(&self, room_id: &RoomId) -> Result<Option<ServerAcl>> {
        let Some(event_id) =
            self.store
                .current_state_id(room_id.as_str(), "m.room.server_acl", "")?
        else {
            return Ok(None);
        };
        let Some(record) = self.store.event(event_id.as_str())? else {
            return Err(Error::internal(format!(
                "current server ACL event {event_id} of {room_id} is missing"
            )));
        };
        let content = record.pdu.get("content").unwrap_or(&Value::Null);
        Ok(Some(ServerAcl::from_content(content)))
    }
}
