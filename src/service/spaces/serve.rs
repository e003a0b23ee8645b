//! Summaries served: `GET /_matrix/federation/v1/hierarchy/{roomId}` for other servers and
//! `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}` for clients.

use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::service::Services;

impl Services {
    /// A space and its children as `origin` may see them, one level deep: children this
    /// server participates in, described, or listed as inaccessible when `origin` may not
    /// see them; children it does not know are left out. 404 when `origin` may not see
    /// the space, as if it were unknown.
    pub fn hierarchy_for_server(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        suggested_only: bool,
    ) -> Result<Value> {
        let summary = match self.participates_in(room_id)? {
            true => self.local_summary(room_id)?,
            false => None,
        };
        let Some(summary) = summary else {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        };
        if !self.server_may_preview(origin, &summary)? {
            return Err(Error::not_found(format!("Unknown room {room_id}")));
        }
        let mut children = Vec::new();
        let mut inaccessible = Vec::new();
        for child in summary.children(suggested_only) {
            if !self.participates_in(&child.room_id)? {
                continue;
            }
            let Some(child_summary) = self.local_summary(&child.room_id)? else {
                continue;
            };
            if self.server_may_preview(origin, &child_summary)? {
                children.push(Value::Object(child_summary.entry));
            } else {
                inaccessible.push(child.room_id);
            }
        }
        Ok(json!({
            "room": summary.hierarchy_entry(),
            "children": children,
            "inaccessible_children": inaccessible,
        }))
    }

    /// A room's summary for `user` (or for anyone, without a user): from its state when
    /// this server participates in it, else from the first of `via` that answers. 404
    /// when the room is unknown or the user may not see it; with a user, their
    /// membership (`leave` when they have none).
    pub async fn room_preview(
        &self,
        user: Option<&UserId>,
        room_id: &RoomId,
        via: &[OwnedServerName],
    ) -> Result<Value> {
        let summary = if self.participates_in(room_id)? {
            self.local_summary(room_id)?
        } else {
            let mut via = via.to_vec();
            if via.is_empty()
                && let Some(server) = room_id.server_name()
            {
                via.push(server.to_owned());
            }
            self.fetch_remote_space(room_id, &via, false)
                .await
                .map(|space| space.room)
        };
        let not_found = || Error::not_found(format!("Room {room_id} not found"));
        let summary = summary.ok_or_else(not_found)?;
        let visible = match user {
            Some(user) => self.user_may_preview(user, &summary)?,
            None => summary.open_to_all(),
        };
        if !visible {
            return Err(not_found());
        }
        let mut entry = summary.entry;
        if let Some(user) = user {
            let membership = self.membership(room_id, user)?;
            entry.insert(
                "membership".into(),
                json!(membership.as_deref().unwrap_or("leave")),
            );
        }
        Ok(Value::Object(entry))
    }
}
