//! Knocking on a room this server is not in, through a server that is: `make_knock`,
//! then `send_knock` (v1). The knock is kept as an outlier and the user's membership
//! becomes `knock`, with what the room shared of itself (stripped state), which sync
//! shows in `rooms.knock`. Being let in comes as an invite from the room's server.

use ruma::{OwnedEventId, OwnedServerName, RoomId, ServerName, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Pdu;
use crate::service::Services;

/// Servers tried in turn.
const SERVERS_TO_TRY: usize = 5;

#[derive(Deserialize)]
struct SendKnock {
    /// `knock_state_events` before v1.2's name.
    #[serde(default, alias = "knock_state_events")]
    knock_room_state: Vec<Value>,
}

impl Services {
    /// Knocks on a room this server is not in, through the first of `via` (then the
    /// room ID's server, before v12) that takes the knock.
    pub async fn knock_remote_room(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        via: &[OwnedServerName],
        reason: Option<String>,
    ) -> Result<OwnedEventId> {
        let mut servers: Vec<OwnedServerName> = Vec::new();
        for server in via
            .iter()
            .cloned()
            .chain(room_id.server_name().map(ToOwned::to_owned))
        {
            if server != self.server_name() && !servers.contains(&server) {
                servers.push(server);
            }
        }
        if servers.is_empty() {
            return Err(Error::not_found(format!(
                "No server to knock on {room_id} through: name one with `via`"
            )));
        }
        let mut last_error = None;
        for server in servers.iter().take(SERVERS_TO_TRY) {
            match self
                .knock_through(room_id, user_id, server, reason.as_deref())
                .await
            {
                Ok(event_id) => return Ok(event_id),
                // The room's rules said no: that is the answer.
                Err(e) if e.kind == ErrorKind::Forbidden => return Err(e),
                Err(e) => {
                    tracing::info!(%room_id, %server, error = %e.message, "remote knock failed");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::not_found("No server took the knock")))
    }

    async fn knock_through(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        server: &ServerName,
        reason: Option<&str>,
    ) -> Result<OwnedEventId> {
        let (version, mut event) = self
            .membership_template(server, "knock", room_id, user_id)
            .await?;
        if let Some(reason) = reason {
            event["content"]["reason"] = json!(reason);
        }
        let (event_id, answer) = self
            .send_membership(server, "knock", room_id, &mut event, version)
            .await?;
        let answer: SendKnock = serde_json::from_value(answer).map_err(|e| {
            Error::new(
                ErrorKind::BadGateway,
                format!("{server}: bad send_knock answer: {e}"),
            )
        })?;
        let pdu = Pdu::from_json(event.clone(), version)?;
        self.record_remote_membership(
            room_id,
            user_id,
            &pdu,
            event,
            "knock",
            answer.knock_room_state,
        )?;
        Ok(event_id)
    }
}
