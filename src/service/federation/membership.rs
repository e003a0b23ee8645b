//! Membership handshakes for users of other servers, on the side of a server already in
//! the room: `make_join`/`send_join` (v2), `make_knock`/`send_knock` (v1) and
//! `make_leave`/`send_leave` (v2).
//!
//! `make_*` hands the user's server an unsigned event template built on this server's
//! view of the room, after checking that the room's rules would allow it; `send_*`
//! takes the event signed by the user's server through the receive pipeline, answers
//! with the room's state and auth chain (joins), and passes the event on to the room's
//! other servers.

use std::collections::{BTreeSet, HashSet};

use ruma::{EventId, OwnedEventId, RoomId, ServerName, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::event::{Pdu, RoomVersion, auth_check, hash_and_sign_event};
use crate::service::Services;
use crate::service::rooms::{PduError, Received, StateIds};

/// The room's state before the join, and what backs it.
pub struct JoinAnswer {
    pub state: Vec<Value>,
    pub auth_chain: Vec<Value>,
    /// The join as this server signed it, when this server authorised a restricted join.
    pub event: Option<Value>,
    pub servers_in_room: Vec<String>,
    /// Membership events are left out of `state` (a partial-state join).
    pub members_omitted: bool,
}

impl Services {
    /// `GET /make_join/{roomId}/{userId}` and `/make_leave`: an event template for a user
    /// of `origin`, if the room's current state allows that membership.
    pub fn make_membership(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        origin: &ServerName,
        membership: &str,
        supported_versions: &[String],
    ) -> Result<(RoomVersion, Value)> {
        if user_id.server_name() != origin {
            return Err(Error::forbidden(format!(
                "{origin} may not ask for an event of {user_id}"
            )));
        }
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("This server is not in {room_id}")))?;
        self.check_server_acl(room_id, origin)?;
        // With none of its users joined any more, this server cannot vouch for the room's
        // current state, nor would its copy of the room move on: joins and knocks get 404
        // as for an unknown room (as Synapse does), so the joining server asks another.
        if membership != "leave" {
            self.refuse_while_partial(room_id, &format!("make_{membership}"))?;
        }
        if membership != "leave" && !self.server_in_room(room_id, self.server_name())? {
            return Err(Error::not_found(format!(
                "This server is no longer in {room_id}"
            )));
        }
        let version = room.version;
        if membership != "leave" && !supported_versions.iter().any(|v| v == version.as_str()) {
            return Err(Error::new(
                ErrorKind::IncompatibleRoomVersion(version.as_str().to_owned()),
                format!(
                    "Room {room_id} has version {}, which {origin} does not support",
                    version.as_str()
                ),
            ));
        }
        let mut content = Map::new();
        content.insert("membership".into(), json!(membership));
        if membership == "join"
            && let Some(authoriser) = self.restricted_join_authoriser(room_id, version, user_id)?
        {
            content.insert("join_authorised_via_users_server".into(), json!(authoriser));
        }
        let content = Value::Object(content);
        let (template, auth_state) = self.event_template(
            room_id,
            &room,
            user_id,
            "m.room.member",
            Some(user_id.as_str()),
            content,
        )?;
        // The rules, checked now so that the user hears "no" from here rather than from
        // a rejected event. The template has no signature yet: a placeholder stands in
        // for the one the user's server will add.
        let mut probe = template.clone();
        probe["signatures"] = json!({ origin.as_str(): { "ed25519:probe": "" } });
        if version.event_id_in_event() {
            // v1/v2: the user's server chooses the ID when it signs; a stand-in until then.
            probe["event_id"] = json!(format!("$probe:{origin}"));
        }
        if let Some(authoriser) = probe["content"]
            .get("join_authorised_via_users_server")
            .and_then(Value::as_str)
            .and_then(|u| UserId::parse(u).ok())
        {
            probe["signatures"][authoriser.server_name().as_str()] = json!({ "ed25519:probe": "" });
        }
        let pdu = Pdu::from_json(probe, version)?;
        auth_check(version, &pdu, |t, k| {
            auth_state.get(&(t.to_owned(), k.to_owned())).map(|p| &**p)
        })
        .map_err(|e| Error::forbidden(e.to_string()))?;
        Ok((version, template))
    }

    /// `PUT /v2/send_join/{roomId}/{eventId}`: accepts the join and answers with the
    /// state before it and its auth chain. With `omit_members`, the state leaves out the
    /// membership events but those of the room's heroes (when it has neither name nor
    /// canonical alias), and the auth chain leaves out what the state already carries.
    pub async fn send_join(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
        mut event: Value,
        omit_members: bool,
    ) -> Result<JoinAnswer> {
        let room = self.check_membership_event(room_id, event_id, origin, &event, "join")?;
        // A restricted join names one of our users as its authoriser: we sign it.
        let mut signed_by_us = false;
        if let Some(authoriser) = event
            .get("content")
            .and_then(|c| c.get("join_authorised_via_users_server"))
            .and_then(Value::as_str)
            .and_then(|u| UserId::parse(u).ok())
            && authoriser.server_name() == self.server_name()
        {
            hash_and_sign_event(&mut event, self.keys.signing_key(), room.version)?;
            signed_by_us = true;
        }
        self.accept_membership_event(room_id, origin, event.clone())
            .await?;
        let record = self
            .store
            .event(event_id.as_str())?
            .ok_or_else(|| Error::internal("the accepted join is not stored"))?;
        let full_state = self.state_ids_at(record.state_before)?;
        let state_ids: Vec<OwnedEventId> = if omit_members {
            let joiner = event.get("state_key").and_then(Value::as_str).unwrap_or("");
            self.partial_state_ids(&full_state, joiner)?
        } else {
            full_state.into_values().collect()
        };
        let mut state = Vec::with_capacity(state_ids.len());
        for id in &state_ids {
            if let Some(record) = self.store.event(id.as_str())? {
                state.push(record.pdu);
            }
        }
        let in_state: HashSet<&OwnedEventId> = state_ids.iter().collect();
        // A partial state may lack auth events of the join (an earlier invite, say): the
        // join's own auth chain comes along.
        let mut seeds = state_ids.clone();
        if omit_members {
            seeds.push(event_id.to_owned());
        }
        let auth_chain = self
            .auth_chain(room_id, &seeds)?
            .into_iter()
            .filter(|(id, _)| !omit_members || !in_state.contains(id))
            .map(|(_, record)| record.pdu)
            .collect();
        let servers: BTreeSet<String> = self
            .room_members(room_id)?
            .joined
            .iter()
            .map(|u| u.server_name().to_string())
            .collect();
        Ok(JoinAnswer {
            state,
            auth_chain,
            event: signed_by_us.then_some(event),
            servers_in_room: servers.into_iter().collect(),
            members_omitted: omit_members,
        })
    }

    /// `PUT /v2/send_leave/{roomId}/{eventId}`.
    pub async fn send_leave(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
        event: Value,
    ) -> Result<()> {
        self.check_membership_event(room_id, event_id, origin, &event, "leave")?;
        self.accept_membership_event(room_id, origin, event).await
    }

    /// `PUT /v1/send_knock/{roomId}/{eventId}`: accepts the knock and answers with what
    /// the knocker may see of the room (stripped state).
    pub async fn send_knock(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
        event: Value,
    ) -> Result<Vec<Value>> {
        self.check_membership_event(room_id, event_id, origin, &event, "knock")?;
        let sender = event
            .get("sender")
            .and_then(Value::as_str)
            .and_then(|s| UserId::parse(s).ok());
        self.accept_membership_event(room_id, origin, event).await?;
        self.stripped_state(room_id, sender.as_deref())
    }

    /// The event is the one named, of the room, a membership of `membership` for a
    /// user of `origin`, sent by that user.
    fn check_membership_event(
        &self,
        room_id: &RoomId,
        event_id: &EventId,
        origin: &ServerName,
        event: &Value,
        membership: &str,
    ) -> Result<crate::store::RoomRecord> {
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found(format!("This server is not in {room_id}")))?;
        self.check_server_acl(room_id, origin)?;
        if membership != "leave" {
            self.refuse_while_partial(room_id, &format!("send_{membership}"))?;
        }
        let pdu = Pdu::from_json(event.clone(), room.version)?;
        if pdu.event_id() != event_id {
            return Err(Error::bad_json(format!(
                "the event's ID is {}, not {event_id}",
                pdu.event_id()
            )));
        }
        let sender = pdu.sender();
        let valid = pdu.room_id() == Some(room_id)
            && pdu.event_type() == "m.room.member"
            && pdu.state_key() == Some(sender.as_str())
            && pdu.membership() == Some(membership)
            && sender.server_name() == origin;
        if !valid {
            return Err(Error::bad_json(format!(
                "expected an m.room.member {membership} of a user of {origin} for themselves in {room_id}"
            )));
        }
        Ok(room)
    }

    /// Runs a membership event through the receive pipeline, then sends it to the
    /// room's other servers (the user's server sent it only to us).
    async fn accept_membership_event(
        &self,
        room_id: &RoomId,
        origin: &ServerName,
        event: Value,
    ) -> Result<()> {
        let keys = self.keys_for_pdu(&event).await;
        let (event_id, outcome) =
            self.receive_pdu(room_id, event, &keys)
                .await
                .map_err(|e| match e {
                    PduError::Store(e) => e,
                    other => Error::bad_json(other.to_string()),
                })?;
        match outcome {
            Received::Accepted => {}
            Received::AlreadyKnown(crate::store::EventStatus::Accepted) => return Ok(()),
            Received::Rejected(why) | Received::SoftFailed(why) => {
                return Err(Error::forbidden(why));
            }
            other => {
                return Err(Error::forbidden(format!(
                    "the event was not accepted: {other:?}"
                )));
            }
        }
        let destinations: Vec<_> = self
            .room_destinations(room_id)?
            .into_iter()
            .filter(|d| d != origin)
            .collect();
        if !destinations.is_empty() {
            let mut batch = self.store.batch();
            self.sender
                .stage_pdu(&mut batch, &destinations, &event_id)?;
            self.store.write(batch)?;
            self.sender.wake(&destinations);
        }
        Ok(())
    }

    /// For a restricted room the user may not join on their own: one of our joined users
    /// with the power to invite, if the user is in one of the rooms the rule allows.
    fn restricted_join_authoriser(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        user_id: &UserId,
    ) -> Result<Option<ruma::OwnedUserId>> {
        let Some(join_rules) = self.current_state_pdu(room_id, version, "m.room.join_rules", "")?
        else {
            return Ok(None);
        };
        let rule = join_rules
            .content()
            .get("join_rule")
            .and_then(Value::as_str);
        let restricted = match rule {
            Some("restricted") => version.supports_restricted_join(),
            Some("knock_restricted") => version.supports_knock_restricted(),
            _ => false,
        };
        if !restricted {
            return Ok(None);
        }
        if matches!(
            self.membership(room_id, user_id)?.as_deref(),
            Some("join" | "invite")
        ) {
            return Ok(None);
        }
        let allowed_rooms: Vec<ruma::OwnedRoomId> = join_rules
            .content()
            .get("allow")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| r.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                    .filter_map(|r| r.get("room_id").and_then(Value::as_str))
                    .filter_map(|r| RoomId::parse(r).ok())
                    .collect()
            })
            .unwrap_or_default();
        let in_allowed_room = allowed_rooms
            .iter()
            .any(|r| self.is_joined(r, user_id).unwrap_or(false));
        if !in_allowed_room {
            return Err(Error::forbidden(format!(
                "{user_id} is not in any of the rooms that {room_id} admits"
            )));
        }
        let powers = self.powers_at_current(room_id, version)?;
        let members = self.room_members(room_id)?;
        let authoriser = members
            .joined
            .iter()
            .filter(|u| u.server_name() == self.server_name())
            .find(|u| powers.user_power(u).at_least(powers.invite_level()));
        match authoriser {
            Some(u) => Ok(Some(u.clone())),
            None => Err(Error::forbidden(format!(
                "no user of {} may admit {user_id} to {room_id}",
                self.server_name()
            ))),
        }
    }

    /// An unsigned event of a remote user on the room's current extremities and state,
    /// and the auth state it was built on.
    fn event_template(
        &self,
        room_id: &RoomId,
        room: &crate::store::RoomRecord,
        sender: &UserId,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<(Value, crate::service::rooms::AuthState)> {
        let (auth_state, auth_events) =
            self.auth_state_for_new_event(room_id, room, event_type, sender, state_key, &content)?;
        let prev_events: Vec<&OwnedEventId> = room.extremities.iter().take(20).collect();
        let mut template = json!({
            "room_id": room_id,
            "sender": sender,
            "origin_server_ts": crate::service::now_ms(),
            "type": event_type,
            "content": content,
            "prev_events": crate::event::pdu::reference_list(room.version, &prev_events),
            "auth_events": crate::event::pdu::reference_list(room.version, &auth_events),
            "depth": room.depth + 1,
        });
        if let Some(k) = state_key {
            template["state_key"] = json!(k);
        }
        Ok((template, auth_state))
    }
}

/// The most heroes a partial state carries the membership of (as in `/sync` summaries).
const MAX_HEROES: usize = 5;

impl Services {
    /// The state a partial-state join gets: everything but membership events, except,
    /// when the room has neither `m.room.name` nor `m.room.canonical_alias`, those of the
    /// members a room summary names as heroes (joined, then invited, in user ID order;
    /// not the joiner).
    fn partial_state_ids(&self, full: &StateIds, joiner: &str) -> Result<Vec<OwnedEventId>> {
        let named = full
            .keys()
            .any(|(t, k)| k.is_empty() && (t == "m.room.name" || t == "m.room.canonical_alias"));
        let mut ids: Vec<OwnedEventId> = full
            .iter()
            .filter(|((t, _), _)| t != "m.room.member")
            .map(|(_, id)| id.clone())
            .collect();
        if named {
            return Ok(ids);
        }
        let (mut joined, mut invited) = (Vec::new(), Vec::new());
        for ((_, user), id) in full.iter().filter(|((t, _), _)| t == "m.room.member") {
            if user == joiner {
                continue;
            }
            let Some(record) = self.store.event(id.as_str())? else {
                continue;
            };
            match record
                .pdu
                .pointer("/content/membership")
                .and_then(Value::as_str)
            {
                Some("join") => joined.push(id.clone()),
                Some("invite") if invited.len() < MAX_HEROES => invited.push(id.clone()),
                _ => {}
            }
            if joined.len() == MAX_HEROES {
                break;
            }
        }
        ids.extend(joined.into_iter().chain(invited).take(MAX_HEROES));
        Ok(ids)
    }
}
