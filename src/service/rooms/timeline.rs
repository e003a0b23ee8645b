//! Appending local events: build, sign, authorise against the current state, and store
//! the event with every index it affects in one atomic write.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use super::MAX_EVENT_BYTES;
use super::persist::Local;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    NewPdu, Pdu, RoomPowers, RoomVersion, StateKey, auth_check, auth_types_for_event,
    build_signed_pdu, canonical_json, room_id_for_create_event,
};
use crate::service::direct::direct_inviter;
use crate::service::fanout::FanoutKind;
use crate::service::search;
use crate::service::{Services, now_ms};
use crate::store::{EventRecord, EventStatus, RoomRecord, TxnKey};

/// The state events the auth rules consult for an event, shared with the event cache.
pub type AuthState = HashMap<StateKey, Arc<Pdu>>;

/// What a local user wants to add to a room.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EventTemplate {
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// v10 redactions carry the target at the top level; later versions in `content`.
    pub redacts: Option<OwnedEventId>,
    /// Refuse the event unless the sender is joined, checked under the room lock: a
    /// profile update re-sends a join, which must not rejoin someone who just left.
    pub only_while_sender_joined: bool,
}

impl EventTemplate {
    pub fn state(event_type: &str, state_key: &str, content: Value) -> Self {
        Self {
            event_type: event_type.to_owned(),
            state_key: Some(state_key.to_owned()),
            content,
            redacts: None,
            only_while_sender_joined: false,
        }
    }

    pub fn message(event_type: &str, content: Value) -> Self {
        Self {
            event_type: event_type.to_owned(),
            state_key: None,
            content,
            redacts: None,
            only_while_sender_joined: false,
        }
    }

    pub fn redaction(target: OwnedEventId, reason: Option<String>) -> Self {
        let mut content = serde_json::Map::new();
        if let Some(reason) = reason {
            content.insert("reason".into(), Value::String(reason));
        }
        Self {
            event_type: "m.room.redaction".to_owned(),
            state_key: None,
            content: Value::Object(content),
            redacts: Some(target),
            only_while_sender_joined: false,
        }
    }

    pub fn only_while_sender_joined(self) -> Self {
        Self {
            only_while_sender_joined: true,
            ..self
        }
    }
}

/// The client transaction a send belongs to, for idempotency.
#[derive(Debug, Clone)]
pub struct TxnRef {
    pub device_id: String,
    pub txn_id: String,
}

/// The most prev_events a new event names; more extremities are merged by later events.
pub(super) const MAX_PREV_EVENTS: usize = 20;

/// A fan-out intent written with a new room's create event, so that what the caller goes
/// on to write is finished at the next start if a crash cuts it short.
pub enum CreationIntent {
    /// A `createRoom` request; the subject is the new room (see `create.rs`).
    CreateRoom(Value),
    /// A room upgrade's plan; the subject is the old room, and the new room's ID is added
    /// to the plan as `new_room` (see `upgrade.rs`).
    UpgradeRoom {
        old_room: OwnedRoomId,
        plan: serde_json::Map<String, Value>,
    },
}

impl Services {
    /// Creates a room from its `m.room.create` content and returns the room ID. The
    /// caller goes on to add the rest of the initial state with `append_event`; with
    /// `creation`, a fan-out intent written with the create event finishes that after a
    /// crash (see [`CreationIntent`]).
    pub async fn append_create_event(
        &self,
        version: RoomVersion,
        sender: &UserId,
        content: Value,
        legacy_room_id: Option<OwnedRoomId>,
        creation: Option<CreationIntent>,
    ) -> Result<(OwnedRoomId, OwnedEventId)> {
        let mut new = NewPdu {
            room_id: legacy_room_id.clone(),
            sender: sender.to_owned(),
            event_type: "m.room.create".into(),
            state_key: Some(String::new()),
            content,
            prev_events: vec![],
            auth_events: vec![],
            depth: 1,
            origin_server_ts: now_ms(),
            redacts: None,
        };
        // From v12 the room ID is the create event's hash, so two identical requests in
        // the same millisecond would name the same room: the later one moves to the
        // next millisecond instead of failing.
        let mut attempts = 0;
        let (room_id, event_id, json, _guard) = loop {
            let (event_id, json) = build_signed_pdu(&new, version, self.keys.signing_key())?;
            let room_id = match &legacy_room_id {
                Some(id) => id.clone(),
                None => room_id_for_create_event(&json)?,
            };
            let guard = self.rooms.lock(&room_id).await;
            if self.store.room(room_id.as_str())?.is_none() {
                break (room_id, event_id, json, guard);
            }
            attempts += 1;
            if legacy_room_id.is_some() || attempts >= 10 {
                return Err(Error::new(ErrorKind::RoomInUse, "Room already exists"));
            }
            new.origin_server_ts += 1;
        };
        let pdu = Pdu::from_json(json.clone(), version)?;
        auth_check(version, &pdu, |_, _| None)?;
        let mut batch = self.store.batch();
        let group = self.new_state_group(
            &mut batch,
            None,
            vec![("m.room.create".into(), String::new(), event_id.clone())],
        )?;
        let ticket = self.stream_ticket();
        let stream = ticket.position;
        batch.put_event(
            event_id.as_str(),
            &EventRecord {
                room_id: room_id.clone(),
                pdu: json,
                stream,
                state_before: group,
                state_after: group,
                txn: None,
                redacted_because: None,
                status: EventStatus::Accepted,
                after_gap: false,
            },
        )?;
        batch.index_event(room_id.as_str(), &event_id, stream, 1)?;
        batch.put_current_state(room_id.as_str(), "m.room.create", "", &event_id)?;
        batch.put_room(
            room_id.as_str(),
            &RoomRecord {
                version,
                create_event: event_id.clone(),
                extremities: vec![event_id.clone()],
                depth: 1,
                state_group: group,
                last_stream: stream,
            },
        )?;
        match creation {
            Some(CreationIntent::CreateRoom(request)) => {
                self.fanout.stage_with(
                    &mut batch,
                    room_id.as_str(),
                    FanoutKind::CreateRoom,
                    Some(request),
                )?;
            }
            Some(CreationIntent::UpgradeRoom { old_room, mut plan }) => {
                plan.insert("new_room".into(), Value::String(room_id.to_string()));
                self.fanout.stage_with(
                    &mut batch,
                    old_room.as_str(),
                    FanoutKind::UpgradeRoom,
                    Some(Value::Object(plan)),
                )?;
            }
            None => {}
        }
        self.store.write(batch)?;
        ticket.publish(&room_id, Some(sender.to_owned()));
        Ok((room_id, event_id))
    }

    /// Builds, signs, authorises and stores a local event. A send that repeats a
    /// transaction ID of the same device returns the first event instead.
    pub async fn append_event(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: EventTemplate,
        txn: Option<TxnRef>,
    ) -> Result<OwnedEventId> {
        let _guard = self.rooms.lock(room_id).await;
        // From here to the write nothing awaits: the committer may wait for this batch
        // to write it with others (see `store::group_commit`).
        let write = self.store.begin_grouped();
        // `/redact/{eventId}/{txnId}` and `/send/{type}/{txnId}` are different paths, so
        // a redaction's transaction is keyed by its target as well.
        let txn_path = match &template.redacts {
            Some(target) => format!("{}/{target}", template.event_type),
            None => template.event_type.clone(),
        };
        let txn_key = txn.as_ref().map(|txn| TxnKey {
            user_id: sender.as_str(),
            device_id: &txn.device_id,
            room_id: room_id.as_str(),
            event_type: &txn_path,
            txn_id: &txn.txn_id,
        });
        if let Some(key) = txn_key
            && let Some(existing) = self.store.txn_event(key)?
        {
            return Ok(existing);
        }
        let room = self
            .store
            .room(room_id.as_str())?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        if template.only_while_sender_joined && !self.is_joined(room_id, sender)? {
            return Err(Error::forbidden(format!(
                "{sender} is no longer joined to {room_id}"
            )));
        }
        if let Some(existing) = self.identical_current_state(room_id, sender, &template)? {
            return Ok(existing);
        }
        self.check_guest_join(
            room_id,
            sender,
            &template.event_type,
            template.state_key.as_deref(),
            &template.content,
        )?;
        let version = room.version;
        let is_message = template.state_key.is_none();
        let (pdu, json, auth_state) = self.build_local_event(room_id, &room, sender, template)?;
        let event_id = pdu.event_id().to_owned();
        if let Some(target) = pdu.redacts(version) {
            let powers = powers_from(version, &auth_state)?;
            self.check_redaction(room_id, target, sender, &powers)?;
        }

        let mut batch = self.store.batch();
        let local = Local {
            txn: txn
                .as_ref()
                .map(|t| (t.device_id.clone(), t.txn_id.clone())),
            after_gap: false,
        };
        if let Some(key) = txn_key {
            batch.put_txn_event(key, &event_id)?;
        }
        // Accepting a direct chat invite records the room in the joiner's `m.direct` in
        // the same write, so the join never lands without it.
        let direct_partner = direct_inviter(
            &pdu,
            auth_state
                .get(&("m.room.member".to_owned(), sender.to_string()))
                .map(|p| &**p),
        );
        if let Some(partner) = direct_partner {
            drop(write);
            let guard = self.account_data_locks.lock(sender);
            self.stage_direct_room(&mut batch, &guard, sender, &partner, room_id)?;
            self.commit_local_event(batch, room_id, &room, &pdu, json, local)?;
        } else {
            // Written with the other sends staging now, sharing their fsync.
            let (staged, destinations) =
                self.stage_local_event(&mut batch, room_id, &room, &pdu, json, local)?;
            write.commit(batch).await?;
            self.finish_accepted(room_id, staged);
            self.sender.wake(&destinations);
        }
        if is_message {
            self.note_activity(sender);
        }
        Ok(event_id)
    }

    /// A state event the sender already sent with the same content and which is still
    /// current is not sent again: its ID is the answer, as Synapse does (so a repeated
    /// `PUT /state` or a join by someone joined adds nothing to the room).
    fn identical_current_state(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: &EventTemplate,
    ) -> Result<Option<OwnedEventId>> {
        let Some(state_key) = &template.state_key else {
            return Ok(None);
        };
        let Some(current) =
            self.store
                .current_state_id(room_id.as_str(), &template.event_type, state_key)?
        else {
            return Ok(None);
        };
        let Some(record) = self.store.event(current.as_str())? else {
            return Ok(None);
        };
        let same = record.pdu.get("sender").and_then(Value::as_str) == Some(sender.as_str())
            && record.pdu.get("content") == Some(&template.content);
        Ok(same.then_some(current))
    }

    /// Stores a local event built on the room's current state (with whatever the
    /// caller staged in `batch`) and queues it for the room's other servers in the same
    /// write.
    pub(crate) fn commit_local_event(
        &self,
        mut batch: crate::store::Batch<'_>,
        room_id: &RoomId,
        room: &RoomRecord,
        pdu: &Pdu,
        json: Value,
        local: Local,
    ) -> Result<()> {
        let (staged, destinations) =
            self.stage_local_event(&mut batch, room_id, room, pdu, json, local)?;
        self.store.write(batch)?;
        self.finish_accepted(room_id, staged);
        self.sender.wake(&destinations);
        Ok(())
    }

    /// Stages a local event built on the room's current state and its queueing for the
    /// room's other servers; returns it and those servers, to wake once it is written.
    fn stage_local_event(
        &self,
        batch: &mut crate::store::Batch<'_>,
        room_id: &RoomId,
        room: &RoomRecord,
        pdu: &Pdu,
        json: Value,
        local: Local,
    ) -> Result<(super::persist::StagedEvent<'_>, Vec<ruma::OwnedServerName>)> {
        let destinations = self.event_destinations(room_id, pdu)?;
        self.sender
            .stage_pdu(batch, &destinations, &pdu.event_id().to_owned())?;
        let staged =
            self.stage_accepted(batch, room_id, room, pdu, json, room.state_group, local)?;
        Ok((staged, destinations))
    }

    /// The servers an event goes to: those with users joined before it, and for a
    /// membership event the target's server (a kicked or banned user's server learns of
    /// it; a joining user's server gets the room's further events from then on). An
    /// invite is not among them: the invitee's server had it through `/invite` and is
    /// not in the room, so it is not sent again in a transaction (as Synapse does; a
    /// server that does not know the room may not expect the room's events).
    pub(crate) fn event_destinations(
        &self,
        room_id: &RoomId,
        pdu: &Pdu,
    ) -> Result<Vec<ruma::OwnedServerName>> {
        let mut destinations = self.room_destinations(room_id)?;
        let is_invite = pdu.content_str("membership") == Some("invite");
        if pdu.event_type() == "m.room.member"
            && !is_invite
            && let Some(target) = pdu.state_key().and_then(|k| UserId::parse(k).ok())
            && target.server_name() != self.server_name()
            && !destinations.iter().any(|d| d == target.server_name())
        {
            destinations.push(target.server_name().to_owned());
        }
        Ok(destinations)
    }

    /// The current state events the auth rules consult for a new event (the create
    /// event always among them), and the IDs it lists as `auth_events` (sorted; from
    /// v12 the create event is implied by the room ID rather than listed).
    pub(crate) fn auth_state_for_new_event(
        &self,
        room_id: &RoomId,
        room: &RoomRecord,
        event_type: &str,
        sender: &UserId,
        state_key: Option<&str>,
        content: &Value,
    ) -> Result<(AuthState, Vec<OwnedEventId>)> {
        let version = room.version;
        let empty = serde_json::Map::new();
        let auth_types = auth_types_for_event(
            version,
            event_type,
            sender,
            state_key,
            content.as_object().unwrap_or(&empty),
        );
        let mut auth_state: AuthState = HashMap::new();
        for (t, k) in auth_types {
            if let Some(pdu) = self.current_state_pdu(room_id, version, &t, &k)? {
                auth_state.insert((t, k), pdu);
            }
        }
        let mut auth_events: Vec<OwnedEventId> = auth_state
            .values()
            .map(|p| p.event_id().to_owned())
            .collect();
        auth_events.sort();
        let create_key = ("m.room.create".to_owned(), String::new());
        if !auth_state.contains_key(&create_key)
            && let Some(create) = self.pdu(room.create_event.as_str(), version)?
        {
            auth_state.insert(create_key, create);
        }
        Ok((auth_state, auth_events))
    }

    /// Builds and signs a local event on top of the room's current state and forward
    /// extremities, and authorises it against that state. Returns the event, its JSON
    /// and the auth state it was checked against.
    pub(crate) fn build_local_event(
        &self,
        room_id: &RoomId,
        room: &RoomRecord,
        sender: &UserId,
        template: EventTemplate,
    ) -> Result<(Pdu, Value, AuthState)> {
        let version = room.version;
        let content = template.content;
        let (auth_state, auth_events) = self.auth_state_for_new_event(
            room_id,
            room,
            &template.event_type,
            sender,
            template.state_key.as_deref(),
            &content,
        )?;
        // Every extremity (up to the cap) is a prev event, so the state before the new
        // event is the room's current state, which resolves the extremities' states.
        let prev_events: Vec<OwnedEventId> = room
            .extremities
            .iter()
            .take(MAX_PREV_EVENTS)
            .cloned()
            .collect();
        let new = NewPdu {
            room_id: Some(room_id.to_owned()),
            sender: sender.to_owned(),
            event_type: template.event_type,
            state_key: template.state_key,
            content,
            prev_events,
            auth_events,
            depth: room.depth + 1,
            origin_server_ts: now_ms(),
            redacts: template.redacts,
        };
        let (event_id, json) = build_signed_pdu(&new, version, self.keys.signing_key())?;
        if canonical_json(&json)?.len() > MAX_EVENT_BYTES {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("Event is larger than {MAX_EVENT_BYTES} bytes"),
            ));
        }
        let pdu = Pdu::from_built_json(json.clone(), version, event_id)?;
        auth_check(version, &pdu, |t, k| {
            auth_state.get(&(t.to_owned(), k.to_owned())).map(|p| &**p)
        })?;
        Ok((pdu, json, auth_state))
    }

    /// What a local user may redact: an event of this room other than the create event
    /// and the server ACL (whose redaction would open the room to every server), and only
    /// their own unless they have the redact level. Synapse draws the same lines (and
    /// answers 400 for an event of another room, 404 for an unknown one).
    fn check_redaction(
        &self,
        room_id: &RoomId,
        target: &str,
        sender: &UserId,
        powers: &RoomPowers,
    ) -> Result<()> {
        let not_found = || Error::not_found(format!("Event {target} not found in this room"));
        let record = self.store.event(target)?.ok_or_else(not_found)?;
        // Synapse answers 400 for an event of another room (SyTest 10redactions).
        if record.room_id != room_id {
            return Err(Error::invalid_param(format!(
                "Cannot redact {target}: it belongs to another room"
            )));
        }
        match record.pdu.get("type").and_then(Value::as_str) {
            Some("m.room.create") => {
                return Err(Error::forbidden(
                    "The m.room.create event cannot be redacted",
                ));
            }
            Some("m.room.server_acl") => {
                return Err(Error::forbidden(
                    "The m.room.server_acl event cannot be redacted",
                ));
            }
            _ => {}
        }
        if record.pdu.get("sender").and_then(Value::as_str) == Some(sender.as_str()) {
            return Ok(());
        }
        let power = powers.user_power(sender);
        let needed = powers.redact_level();
        if power.at_least(needed) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "You may only redact your own events: redacting events of others needs power level {needed}, you have {power}"
            )))
        }
    }

    /// Replaces the target's stored copy with its redacted form. The auth rules let any
    /// member send a redaction; it takes effect only for the original sender or someone
    /// with the power to redact others' events, and only within the same room.
    /// Returns the notifications of the target that were withdrawn.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_redaction(
        &self,
        batch: &mut crate::store::Batch<'_>,
        room_id: &RoomId,
        version: RoomVersion,
        target: &str,
        redactor: &UserId,
        powers: &RoomPowers,
        redaction_id: &OwnedEventId,
    ) -> Result<crate::service::notifications::Withdrawn> {
        let Some(mut record) = self.store.event(target)? else {
            return Ok(Default::default());
        };
        if record.room_id != room_id || record.redacted_because.is_some() {
            return Ok(Default::default());
        }
        let original_sender = record
            .pdu
            .get("sender")
            .and_then(Value::as_str)
            .and_then(|s| UserId::parse(s).ok());
        let allowed = original_sender
            .as_deref()
            .is_some_and(|original| original == redactor || powers.can_redact(redactor, original));
        if !allowed {
            return Ok(Default::default());
        }
        self.unstage_relation(batch, target, &record)?;
        search::unindex_event(batch, room_id.as_str(), record.stream, &record.pdu);
        record.pdu = crate::event::redact(&record.pdu, version)?;
        record.redacted_because = Some(redaction_id.clone());
        batch.put_event(target, &record)?;
        // Synapse withdraws the notifications of redacted events; so do the counts here.
        self.stage_withdraw_notifications(batch, target)
    }
}

fn powers_from(version: RoomVersion, state: &AuthState) -> Result<RoomPowers> {
    let create = state
        .get(&("m.room.create".to_owned(), String::new()))
        .ok_or_else(|| Error::internal("room has no create event"))?;
    Ok(RoomPowers::new(
        version,
        create,
        state
            .get(&("m.room.power_levels".to_owned(), String::new()))
            .map(|p| &**p),
    )?)
}
