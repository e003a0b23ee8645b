//! Test fixture: a room whose events are really hashed and signed (one deterministic key per
//! server), with a current state map that tests can extend, fork and authorise against.

use std::collections::BTreeMap;

use ruma::{EventId, OwnedEventId, OwnedRoomId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::auth_types_for_event;
use super::signing::{NewPdu, SigningKey, build_signed_pdu};
use super::types::{CREATE, MEMBER, POWER_LEVELS};
use super::{EventError, Pdu, Result, RoomVersion, StateKey, auth_check, check_event_auth, hashes};

/// The deterministic signing key of `server`.
pub fn key_for(server: &str) -> SigningKey {
    let seed: [u8; 32] = Sha256::digest(server.as_bytes()).into();
    SigningKey::from_seed(server, "ed25519:test", &seed).unwrap()
}

fn server_of(user: &str) -> &str {
    user.split_once(':').map(|(_, s)| s).unwrap()
}

#[derive(Clone, Debug)]
pub struct Fixture {
    pub version: RoomVersion,
    pub room_id: OwnedRoomId,
    pub create_id: OwnedEventId,
    pub events: BTreeMap<OwnedEventId, Pdu>,
    pub state: BTreeMap<StateKey, OwnedEventId>,
    pub last: Vec<OwnedEventId>,
    pub depth: u64,
    pub ts: u64,
}

impl Fixture {
    /// A room created by `creator` with default create content.
    pub fn new(version: RoomVersion, creator: &str) -> Self {
        let content = if version.create_requires_creator_field() {
            json!({"creator": creator, "room_version": version.as_str()})
        } else {
            json!({"room_version": version.as_str()})
        };
        Self::with_create_content(version, creator, content)
    }

    /// A room whose create event has the given content.
    pub fn with_create_content(version: RoomVersion, creator: &str, content: Value) -> Self {
        let room_id: Option<OwnedRoomId> = match version.room_id_is_create_event_hash() {
            true => None,
            false => Some(format!("!room:{}", server_of(creator)).try_into().unwrap()),
        };
        let create = Self::sign(
            version,
            NewPdu {
                room_id: room_id.clone(),
                sender: creator.try_into().unwrap(),
                event_type: CREATE.to_owned(),
                state_key: Some(String::new()),
                content,
                prev_events: vec![],
                auth_events: vec![],
                depth: 1,
                origin_server_ts: 1000,
                redacts: None,
            },
        );
        let room_id =
            room_id.unwrap_or_else(|| hashes::room_id_from_create_event_id(create.event_id()));
        let create_id = create.event_id().to_owned();
        let mut fx = Self {
            version,
            room_id,
            create_id: create_id.clone(),
            events: BTreeMap::new(),
            state: BTreeMap::new(),
            last: vec![],
            depth: 1,
            ts: 1000,
        };
        fx.apply(create);
        fx
    }

    /// Sign a PDU with its sender's server key and parse it.
    pub fn sign(version: RoomVersion, pdu: NewPdu) -> Pdu {
        let key = key_for(pdu.sender.server_name().as_str());
        let (id, json) = build_signed_pdu(&pdu, version, &key).unwrap();
        let parsed = Pdu::from_json(json, version).unwrap();
        assert_eq!(parsed.event_id(), &*id);
        parsed
    }

    pub fn create(&self) -> &Pdu {
        &self.events[&self.create_id]
    }

    pub fn get(&self, id: &EventId) -> &Pdu {
        &self.events[id]
    }

    /// The current state event for a key.
    pub fn state_event(&self, t: &str, sk: &str) -> Option<&Pdu> {
        self.state
            .get(&(t.to_owned(), sk.to_owned()))
            .map(|id| &self.events[id])
    }

    /// The auth event IDs that the auth events selection picks from the current state.
    pub fn select_auth_events(
        &self,
        sender: &str,
        t: &str,
        sk: Option<&str>,
        content: &Value,
    ) -> Vec<OwnedEventId> {
        if t == CREATE {
            return vec![];
        }
        auth_types_for_event(
            self.version,
            t,
            <&ruma::UserId>::try_from(sender).unwrap(),
            sk,
            content.as_object().unwrap(),
        )
        .into_iter()
        .filter_map(|k| self.state.get(&k).cloned())
        .collect()
    }

    /// Build (but do not apply) an event on top of the current state and extremities.
    pub fn build(&mut self, sender: &str, t: &str, sk: Option<&str>, content: Value) -> Pdu {
        let auth = self.select_auth_events(sender, t, sk, &content);
        let prev = self.last.clone();
        self.build_with(sender, t, sk, content, prev, auth)
    }

    /// Build an event with explicit prev and auth events.
    pub fn build_with(
        &mut self,
        sender: &str,
        t: &str,
        sk: Option<&str>,
        content: Value,
        prev_events: Vec<OwnedEventId>,
        auth_events: Vec<OwnedEventId>,
    ) -> Pdu {
        self.ts += 1;
        Self::sign(
            self.version,
            NewPdu {
                room_id: Some(self.room_id.clone()),
                sender: sender.try_into().unwrap(),
                event_type: t.to_owned(),
                state_key: sk.map(str::to_owned),
                content,
                prev_events,
                auth_events,
                depth: self.depth + 1,
                origin_server_ts: self.ts,
                redacts: None,
            },
        )
    }

    /// Store an event, make it the only forward extremity and update the state.
    pub fn apply(&mut self, pdu: Pdu) -> OwnedEventId {
        let id = pdu.event_id().to_owned();
        if let Some(k) = pdu.state_map_key() {
            self.state.insert(k, id.clone());
        }
        self.depth = self.depth.max(pdu.depth());
        self.last = vec![id.clone()];
        self.events.insert(id.clone(), pdu);
        id
    }

    /// Authorise against the current state.
    pub fn check(&self, pdu: &Pdu) -> Result<()> {
        auth_check(self.version, pdu, |t, sk| self.state_event(t, sk))
    }

    /// Authorise against the event's own auth events.
    pub fn check_against_auth_events(&self, pdu: &Pdu) -> Result<()> {
        let auth: Vec<&Pdu> = pdu
            .auth_events()
            .iter()
            .filter_map(|id| self.events.get(id))
            .collect();
        check_event_auth(self.version, pdu, &auth, Some(self.create()))
    }

    /// Build, check (must pass both checks) and apply.
    pub fn send(&mut self, sender: &str, t: &str, sk: Option<&str>, content: Value) -> Pdu {
        let pdu = self.build(sender, t, sk, content);
        self.check(&pdu)
            .unwrap_or_else(|e| panic!("{t} by {sender} rejected: {e}"));
        self.check_against_auth_events(&pdu)
            .unwrap_or_else(|e| panic!("{t} by {sender} rejected by its auth events: {e}"));
        self.apply(pdu.clone());
        pdu
    }

    pub fn member(&mut self, sender: &str, target: &str, membership: &str) -> Pdu {
        self.send(
            sender,
            MEMBER,
            Some(target),
            json!({"membership": membership}),
        )
    }

    pub fn join(&mut self, user: &str) -> Pdu {
        self.member(user, user, "join")
    }

    /// Send power levels with the given `users` and extra fields. For v10/v11 the creator is
    /// added at 100 unless listed (as room creation does); v12 creators must not be listed.
    pub fn power_levels(&mut self, sender: &str, users: Value, extra: Value) -> Pdu {
        let content = self.power_levels_content(users, extra);
        self.send(sender, POWER_LEVELS, Some(""), content)
    }

    pub fn power_levels_content(&self, users: Value, extra: Value) -> Value {
        let mut users = users.as_object().unwrap().clone();
        if !self.version.creators_have_infinite_power() {
            users
                .entry(self.create().sender().to_string())
                .or_insert(json!(100));
        }
        let mut content = extra.as_object().unwrap().clone();
        content.insert("users".to_owned(), Value::Object(users));
        Value::Object(content)
    }

    /// Assert that `pdu` is rejected against the current state with a reason containing `needle`.
    #[track_caller]
    pub fn assert_rejected(&self, pdu: &Pdu, needle: &str) {
        match self.check(pdu) {
            Err(EventError::Unauthorized(reason)) => {
                assert!(
                    reason.contains(needle),
                    "reason {reason:?} does not contain {needle:?}"
                )
            }
            other => panic!("expected rejection containing {needle:?}, got {other:?}"),
        }
    }

    /// Assert that `pdu` is accepted against the current state.
    #[track_caller]
    pub fn assert_allowed(&self, pdu: &Pdu) {
        if let Err(e) = self.check(pdu) {
            panic!("expected {} to be allowed, got {e}", pdu.event_type());
        }
    }
}
