//! Invites across servers (`PUT /_matrix/federation/v2/invite`): the invitee's server
//! signs the invite before the inviting server stores it, and keeps the invite for its
//! user even when it is not in the room.

use axum::http::Method;
use ruma::{EventId, OwnedEventId, RoomId, ServerName, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::remote_join::{unknown_endpoint, unwrap_v1_answer, urlencode};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    Pdu, RoomVersion, Verified, canonical_json, event_id, hash_and_sign_event, verify_event,
};
use crate::service::Services;
use crate::service::rooms::EventTemplate;
use crate::service::rooms::persist::Local;

#[derive(Debug, Deserialize)]
pub struct InviteRequest {
    pub room_version: String,
    pub event: Value,
    #[serde(default)]
    pub invite_room_state: Vec<Value>,
}

impl Services {
    /// Invites a user of another server to a room this server is in.
    pub async fn invite_remote_user(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        target: &UserId,
        content: Map<String, Value>,
    ) -> Result<OwnedEventId> {
        let _guard = self.rooms.lock(room_id).await;
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let version = room.version;
        let template =
            EventTemplate::state("m.room.member", target.as_str(), Value::Object(content));
        let (pdu, json, _) = self.build_local_event(room_id, &room, sender, template)?;
        let id = pdu.event_id().to_owned();
        let body = json!({
            "room_version": version.as_str(),
            "event": json,
            "invite_room_state": self.stripped_state(room_id, Some(sender))?,
        });
        let path = format!(
            "/_matrix/federation/v2/invite/{}/{}",
            urlencode(room_id.as_str()),
            urlencode(id.as_str())
        );
        let server = target.server_name();
        let answer = match self
            .federation
            .send_json(server, Method::PUT, &path, Some(&body))
            .await
        {
            // A server without the v2 API: v1 (the bare event; the answer wrapped in
            // `[200, …]`), which can only carry events of versions 1 and 2, whose
            // IDs are in the event, as Synapse does.
            Err(e) if unknown_endpoint(&e) => {
                if !version.event_id_in_event() {
                    return Err(Error::new(
                        ErrorKind::UnsupportedRoomVersion,
                        format!(
                            "{server} does not support room version {}",
                            version.as_str()
                        ),
                    ));
                }
                let path = format!(
                    "/_matrix/federation/v1/invite/{}/{}",
                    urlencode(room_id.as_str()),
                    urlencode(id.as_str())
                );
                let answer = self
                    .federation
                    .send_json(server, Method::PUT, &path, Some(&json))
                    .await?;
                unwrap_v1_answer(answer)
                    .ok_or_else(|| bad_gateway(server, "bad v1 invite answer"))?
            }
            other => other?,
        };
        let signed = answer
            .get("event")
            .cloned()
            .ok_or_else(|| bad_gateway(server, "the invite came back without the event"))?;
        // Numbers that are not integers in range are not valid in an event (Synapse
        // answers the client `M_BAD_JSON`).
        if canonical_json(&signed).is_err() {
            return Err(Error::bad_json(format!(
                "{server} answered the invite with an event that is not canonical JSON"
            )));
        }
        // The same event, with the invitee's server's signature added.
        if event_id(&signed, version).ok().as_ref() != Some(&id)
            || signed
                .pointer(&format!("/signatures/{}", escape_pointer(server.as_str())))
                .is_none()
        {
            return Err(bad_gateway(
                server,
                "the invite came back changed or unsigned",
            ));
        }
        let keys = self.keys_for_pdu(&signed).await;
        if !matches!(verify_event(&signed, &keys, version), Ok(Verified::All)) {
            return Err(bad_gateway(
                server,
                "the invite came back with bad signatures",
            ));
        }
        let pdu = Pdu::from_json(signed.clone(), version)?;
        let batch = self.store.batch();
        self.commit_local_event(batch, room_id, &room, &pdu, signed, Local::default())?;
        Ok(id)
    }

    /// `PUT /v2/invite/{roomId}/{eventId}` from the inviting server: checks and signs the
    /// invite of one of our users, and keeps it for them.
    pub async fn receive_invite(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id_in_path: &EventId,
        request: InviteRequest,
    ) -> Result<Value> {
        let version: RoomVersion = request.room_version.parse().map_err(|_| {
            Error::new(
                ErrorKind::IncompatibleRoomVersion(request.room_version.clone()),
                format!(
                    "Room version {} is not supported here",
                    request.room_version
                ),
            )
        })?;
        let mut event = request.event;
        if let Some(obj) = event.as_object_mut() {
            obj.remove("unsigned");
            if !version.event_id_in_event() {
                obj.remove("event_id");
            }
        }
        let pdu = Pdu::from_json(event.clone(), version)?;
        let invitee = pdu
            .state_key()
            .and_then(|k| UserId::parse(k).ok())
            .ok_or_else(|| Error::bad_json("an invite names its invitee as state_key"))?;
        let valid = pdu.event_id() == event_id_in_path
            && pdu.room_id() == Some(room_id)
            && pdu.event_type() == "m.room.member"
            && pdu.membership() == Some("invite")
            && pdu.sender().server_name() == origin;
        if !valid {
            return Err(Error::bad_json(format!(
                "expected an m.room.member invite sent by a user of {origin} in {room_id}, with event ID {event_id_in_path}"
            )));
        }
        if invitee.server_name() != self.server_name() {
            return Err(Error::bad_json(format!(
                "{invitee} is not a user of this server"
            )));
        }
        // An ID no account holds yet may be invited (as Synapse allows: the invite waits
        // for whoever registers it); a deactivated account may not.
        if self
            .store
            .user(invitee.as_str())?
            .is_some_and(|user| user.deactivated)
        {
            return Err(Error::not_found(format!("Unknown user {invitee}")));
        }
        if self.store.room(room_id.as_str())?.is_some() {
            self.check_server_acl(room_id, origin)?;
        }
        let keys = self.keys_for_pdu(&event).await;
        if !matches!(verify_event(&event, &keys, version), Ok(Verified::All)) {
            return Err(Error::forbidden(format!(
                "the invite is not validly signed by {origin}"
            )));
        }
        hash_and_sign_event(&mut event, self.keys.signing_key(), version)?;
        // In a room this server is in, the invite arrives as a PDU too and is checked
        // there; otherwise it is kept for the invitee on its own.
        if self.joins_remotely(room_id)? {
            let pdu = Pdu::from_json(event.clone(), version)?;
            let mut invite_state: Vec<Value> = request
                .invite_room_state
                .into_iter()
                .filter(|e| {
                    e.is_object()
                        && !(e.get("type") == Some(&json!("m.room.member"))
                            && e.get("state_key") == Some(&json!(invitee)))
                })
                .take(50)
                .map(|e| {
                    // Clients get stripped events, whatever the inviting server sent.
                    json!({
                        "type": e.get("type"),
                        "state_key": e.get("state_key"),
                        "sender": e.get("sender"),
                        "content": e.get("content"),
                    })
                })
                .collect();
            // The invite itself, stripped, as for a local invite: who invited, and
            // whether it is a direct chat.
            invite_state.push(json!({
                "type": "m.room.member",
                "state_key": invitee,
                "sender": pdu.sender(),
                "content": pdu.content(),
            }));
            self.record_remote_membership(
                room_id,
                &invitee,
                &pdu,
                event.clone(),
                "invite",
                invite_state,
            )?;
        }
        Ok(event)
    }

    /// Declines an invite to a room this server is not in, or withdraws a knock on one,
    /// through the room's server (`make_leave`/`send_leave`); the invite or knock is gone
    /// here even if that server cannot be reached, as Synapse does.
    pub async fn reject_remote_invite(&self, room_id: &RoomId, user_id: &UserId) -> Result<()> {
        let record = self
            .store
            .user_room(user_id.as_str(), room_id.as_str())?
            .filter(|r| r.membership == "invite" || r.membership == "knock")
            .ok_or_else(|| Error::forbidden(format!("{user_id} is not in {room_id}")))?;
        let mut leave = None;
        for server in self.invite_servers(room_id, user_id)? {
            match self.send_remote_leave(room_id, user_id, &server).await {
                Ok(sent) => {
                    leave = Some(sent);
                    break;
                }
                Err(e) => {
                    tracing::info!(%room_id, %server, error = %e.message, "remote leave failed")
                }
            }
        }
        // The room's server could not be told: a leave of our own, after the invite
        // (an out-of-band membership, as Synapse makes), so that the user's clients see
        // the room left with the event that left it.
        let (version, json) = match leave {
            Some(sent) => sent,
            None => self.out_of_band_leave(room_id, user_id, &record)?,
        };
        let pdu = Pdu::from_json(json.clone(), version)?;
        self.record_remote_membership(room_id, user_id, &pdu, json, "leave", Vec::new())
    }

    /// The leave that sent to the room's server, signed.
    async fn send_remote_leave(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        server: &ServerName,
    ) -> Result<(RoomVersion, Value)> {
        let (version, mut event) = self
            .membership_template(server, "leave", room_id, user_id)
            .await?;
        self.send_membership(server, "leave", room_id, &mut event, version)
            .await?;
        Ok((version, event))
    }

    /// A leave by `user_id` built here on top of their invite or knock, for when the
    /// room's server cannot be reached; it goes nowhere. The room version is the one
    /// the shared state's create event names (version 1 without one).
    fn out_of_band_leave(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        record: &crate::store::UserRoomRecord,
    ) -> Result<(RoomVersion, Value)> {
        let version: RoomVersion = record
            .invite_state
            .iter()
            .flatten()
            .find(|e| e.get("type").and_then(Value::as_str) == Some("m.room.create"))
            .and_then(|e| e.pointer("/content/room_version"))
            .and_then(Value::as_str)
            .unwrap_or("1")
            .parse()
            .unwrap_or(RoomVersion::V1);
        let depth = self
            .store
            .event(record.event_id.as_str())?
            .and_then(|e| e.pdu.get("depth").and_then(Value::as_u64))
            .unwrap_or(0);
        let previous = if version.event_id_in_event() {
            json!([[record.event_id, {}]])
        } else {
            json!([record.event_id])
        };
        let mut event = json!({
            "type": "m.room.member",
            "state_key": user_id,
            "sender": user_id,
            "room_id": room_id,
            "content": {"membership": "leave"},
            "origin": self.server_name(),
            "origin_server_ts": crate::service::now_ms(),
            "depth": depth.saturating_add(1),
            "prev_events": previous,
            "auth_events": previous,
        });
        hash_and_sign_event(&mut event, self.keys.signing_key(), version)?;
        Ok((version, event))
    }

    /// The servers that can let a user with an invite into a room (the inviter's), or
    /// take back a knock (those whose users' state the room shared with the knocker).
    pub fn invite_servers(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Vec<ruma::OwnedServerName>> {
        let Some(record) = self.store.user_room(user_id.as_str(), room_id.as_str())? else {
            return Ok(vec![]);
        };
        if record.membership == "knock" {
            let mut servers: Vec<ruma::OwnedServerName> = Vec::new();
            let senders = record.invite_state.iter().flatten().filter_map(|e| {
                e.get("sender")
                    .and_then(Value::as_str)
                    .and_then(|s| UserId::parse(s).ok())
            });
            for sender in senders {
                let server = sender.server_name().to_owned();
                if server != self.server_name() && !servers.contains(&server) {
                    servers.push(server);
                }
            }
            return Ok(servers);
        }
        if record.membership != "invite" {
            return Ok(vec![]);
        }
        Ok(self
            .store
            .event(record.event_id.as_str())?
            .and_then(|e| {
                e.pdu
                    .get("sender")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .and_then(|s| UserId::parse(s).ok())
            .map(|u| vec![u.server_name().to_owned()])
            .unwrap_or_default())
    }
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn bad_gateway(server: &ServerName, detail: &str) -> Error {
    Error::new(ErrorKind::BadGateway, format!("{server}: {detail}"))
}
