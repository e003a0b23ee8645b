//! Joining a room that lives on other servers: `make_join` for a template, sign it,
//! `send_join` for the room's state and auth chain, check all of it, and start the room
//! here from that state with the join as its first timeline event.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::Method;
use ruma::{
    OwnedEventId, OwnedRoomAliasId, OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, ServerName,
    UserId,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::OutboundError;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Pdu, RoomVersion, StateKey, auth_check, event_id, hash_and_sign_event};
use crate::service::Services;

#[derive(Deserialize)]
struct MakeMembership {
    room_version: Option<String>,
    event: Value,
}

#[derive(Deserialize)]
struct SendJoin {
    #[serde(default)]
    state: Vec<Value>,
    #[serde(default)]
    auth_chain: Vec<Value>,
    /// The join signed by the resident server too (restricted joins).
    event: Option<Value>,
    /// The state leaves out membership events (asked with `omit_members`).
    #[serde(default)]
    members_omitted: bool,
    /// With `members_omitted`: the servers in the room before the join.
    #[serde(default)]
    servers_in_room: Vec<String>,
}

/// What `send_join` answered about the room: its state before the join, the auth
/// chain, and for a partial state, the servers in the room.
struct JoinState {
    state: Vec<Value>,
    auth_chain: Vec<Value>,
    partial: Option<Vec<OwnedServerName>>,
}

#[derive(Deserialize)]
struct DirectoryAnswer {
    room_id: OwnedRoomId,
    #[serde(default)]
    servers: Vec<OwnedServerName>,
}

/// The most events a `send_join` answer may carry (state plus auth chain).
const MAX_JOIN_EVENTS: usize = 200_000;

impl Services {
    /// An alias of any server: ours from the store, others' through `/query/directory`.
    pub async fn resolve_alias_anywhere(
        &self,
        alias: &RoomAliasId,
    ) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        if alias.server_name() == self.server_name() {
            return Ok((
                self.resolve_alias(alias)?,
                vec![self.server_name().to_owned()],
            ));
        }
        let alias: OwnedRoomAliasId = alias.to_owned();
        let path = format!(
            "/_matrix/federation/v1/query/directory?room_alias={}",
            urlencode(alias.as_str())
        );
        let answer = self
            .federation
            .send_json(alias.server_name(), Method::GET, &path, None)
            .await?;
        let answer: DirectoryAnswer = serde_json::from_value(answer).map_err(|e| {
            Error::new(
                ErrorKind::BadGateway,
                format!("{} sent a bad directory answer: {e}", alias.server_name()),
            )
        })?;
        Ok((answer.room_id, answer.servers))
    }

    /// Whether a join needs another server: the room is unknown here, or no local user
    /// is joined any more while users of other servers are (this server's view of the
    /// room may be stale). Rooms of local users only are joined locally.
    pub fn joins_remotely(&self, room_id: &RoomId) -> Result<bool> {
        if self.store.room(room_id.as_str())?.is_none() {
            return Ok(true);
        }
        let members = self.room_members(room_id)?;
        let ours = |u: &&ruma::OwnedUserId| u.server_name() == self.server_name();
        let local = members.joined.iter().any(|u| ours(&u));
        let remote = members.joined.iter().any(|u| !ours(&u));
        Ok(!local && remote)
    }

    /// Joins `user_id` to a room this server is not in, through the first of `via`
    /// that lets it in.
    pub async fn join_remote_room(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        via: &[OwnedServerName],
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
                "No server to join {room_id} through: name one with `via`"
            )));
        }
        let mut last_error = None;
        for server in servers.iter().take(5) {
            match self.join_through(room_id, user_id, server).await {
                Ok(event_id) => return Ok(event_id),
                Err(e) => {
                    tracing::info!(%room_id, %server, error = %e.message, "remote join failed");
                    // A refusal by the room's rules is the answer; try others only when
                    // the server could not help.
                    if e.kind == ErrorKind::Forbidden {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::not_found("No server could join the room")))
    }

    async fn join_through(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        server: &ServerName,
    ) -> Result<OwnedEventId> {
        let (version, mut event) = self
            .membership_template(server, "join", room_id, user_id)
            .await?;
        // Our part: the profile, then the signature.
        let (displayname, avatar_url) = self.member_profile(user_id)?;
        if let Some(content) = event.get_mut("content").and_then(Value::as_object_mut) {
            if let Some(name) = displayname {
                content.insert("displayname".into(), json!(name));
            }
            if let Some(url) = avatar_url {
                content.insert("avatar_url".into(), json!(url));
            }
        }
        let (join_id, answer) = self
            .send_membership(server, "join", room_id, &mut event, version)
            .await?;
        let joined: SendJoin = serde_json::from_value(answer)
            .map_err(|e| bad_gateway(server, format!("bad send_join answer: {e}")))?;
        if let Some(signed) = joined.event {
            // Only another signature may differ.
            if event_id(&signed, version).ok().as_ref() == Some(&join_id) {
                event = signed;
            }
        }
        let partial = joined.members_omitted.then(|| {
            joined
                .servers_in_room
                .iter()
                .filter_map(|s| OwnedServerName::try_from(s.as_str()).ok())
                .collect::<Vec<_>>()
        });
        self.start_joined_room(
            room_id,
            version,
            server,
            event,
            JoinState {
                state: joined.state,
                auth_chain: joined.auth_chain,
                partial,
            },
        )
        .await
    }

    /// Checks the state and auth chain a resident server sent, stores them as outliers,
    /// and starts the room here with the join on top of that state; a partial state
    /// (members omitted) is recorded as such, and its resync starts.
    async fn start_joined_room(
        &self,
        room_id: &RoomId,
        version: RoomVersion,
        server: &ServerName,
        join: Value,
        answer: JoinState,
    ) -> Result<OwnedEventId> {
        let JoinState {
            state,
            auth_chain,
            partial,
        } = answer;
        if state.len() + auth_chain.len() > MAX_JOIN_EVENTS {
            return Err(bad_gateway(
                server,
                "send_join answered with too many events",
            ));
        }
        // Every event once, by ID; state events remembered as such.
        let mut events: HashMap<OwnedEventId, Pdu> = HashMap::new();
        let mut state_ids: HashSet<OwnedEventId> = HashSet::new();
        for (json, is_state) in auth_chain
            .into_iter()
            .map(|e| (e, false))
            .chain(state.into_iter().map(|e| (e, true)))
        {
            let mut json = json;
            if let Some(obj) = json.as_object_mut() {
                obj.remove("unsigned");
                if !version.event_id_in_event() {
                    obj.remove("event_id");
                }
            }
            let pdu = Pdu::from_json(json, version).map_err(|e| {
                bad_gateway(server, format!("send_join carried an invalid event: {e}"))
            })?;
            if pdu.room_id().is_some_and(|r| r != room_id) {
                return Err(bad_gateway(
                    server,
                    "send_join carried an event of another room",
                ));
            }
            if is_state {
                state_ids.insert(pdu.event_id().to_owned());
            }
            events.insert(pdu.event_id().to_owned(), pdu);
        }
        let create = events
            .values()
            .find(|p| p.event_type() == "m.room.create" && p.state_key() == Some(""))
            .cloned()
            .ok_or_else(|| bad_gateway(server, "send_join carried no m.room.create event"))?;
        if version.room_id_is_create_event_hash()
            && crate::event::hashes::room_id_from_create_event_id(create.event_id()) != room_id
        {
            return Err(bad_gateway(
                server,
                "the room's create event does not match its ID",
            ));
        }

        // Auth events before the events they authorise, the signatures checked in
        // parallel, the events written in a few batches; an event that fails its
        // signatures is dropped (and what depends on it rejected) rather than failing
        // the join, as Synapse does.
        let create_ref = (!version.create_event_in_auth_events()).then_some(&create);
        let rejected: HashSet<OwnedEventId> = self
            .store_outliers_or_each(server, room_id, version, &events, create_ref)
            .await?;
        if rejected.contains(create.event_id()) {
            return Err(bad_gateway(
                server,
                "the room's create event does not check out",
            ));
        }

        // The state before the join: the state events that passed.
        let mut state_map: BTreeMap<StateKey, OwnedEventId> = BTreeMap::new();
        let mut state_pdus: HashMap<StateKey, &Pdu> = HashMap::new();
        for id in &state_ids {
            if rejected.contains(id) {
                continue;
            }
            let pdu = &events[id];
            if let Some(key) = pdu.state_map_key() {
                state_map.insert(key.clone(), id.clone());
                state_pdus.insert(key, pdu);
            }
        }
        let mut join_pdu = Pdu::from_json(join.clone(), version)?;
        let keys = self.keys_for_pdu(&join).await;
        match crate::event::verify_event(&join, &keys, version) {
            Ok(crate::event::Verified::All) => {}
            _ => {
                return Err(bad_gateway(
                    server,
                    "the join came back with bad signatures",
                ));
            }
        }
        if partial.is_some() {
            // A partial state lacks the joiner's own membership (an invite, a knock):
            // the join's auth events, which the auth chain carries, fill what it lacks.
            for id in join_pdu.auth_events() {
                if let Some(pdu) = events.get(id).filter(|_| !rejected.contains(id))
                    && let Some(key) = pdu.state_map_key()
                {
                    state_pdus.entry(key).or_insert(pdu);
                }
            }
        }
        auth_check(version, &join_pdu, |t, k| {
            state_pdus.get(&(t.to_owned(), k.to_owned())).copied()
        })
        .map_err(|e| Error::forbidden(format!("the room's state does not allow this join: {e}")))?;
        join_pdu.set_rejected(false);

        let _guard = self.rooms.lock(room_id).await;
        let room = self.seed_room_state(room_id, version, &create, &join_pdu, &state_map)?;
        let mut batch = self.store.batch();
        let staged = self.stage_accepted_remote(&mut batch, room_id, &room, &join_pdu, join)?;
        let partial_servers = match &partial {
            Some(servers_in_room) => Some(self.stage_partial_state(
                &mut batch,
                room_id,
                join_pdu.event_id().to_owned(),
                server,
                servers_in_room,
            )?),
            None => None,
        };
        self.store.write(batch)?;
        if let Some(servers) = partial_servers {
            tracing::info!(%room_id, %server, "joined with a partial state");
            self.partial_states.started(room_id, servers);
        }
        self.finish_accepted(room_id, staged);
        Ok(join_pdu.event_id().to_owned())
    }
}

impl Services {
    /// `make_join`/`make_leave` on `server`: the template of the user's membership event,
    /// checked to be that event, stamped with our time and stripped of what we add.
    pub(crate) async fn membership_template(
        &self,
        server: &ServerName,
        membership: &str,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<(RoomVersion, Value)> {
        let versions: String = RoomVersion::ALL
            .iter()
            .map(|v| format!("ver={}", v.as_str()))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!(
            "/_matrix/federation/v1/make_{membership}/{}/{}?{versions}",
            urlencode(room_id.as_str()),
            urlencode(user_id.as_str())
        );
        let answer = self
            .federation
            .send_json(server, Method::GET, &path, None)
            .await
            .map_err(|e| refusal_for_client(e, room_id))?;
        let make: MakeMembership = serde_json::from_value(answer)
            .map_err(|e| bad_gateway(server, format!("bad make_{membership} answer: {e}")))?;
        let version: RoomVersion = make
            .room_version
            .as_deref()
            .unwrap_or("1")
            .parse()
            .map_err(|_| {
                Error::new(
                    ErrorKind::UnsupportedRoomVersion,
                    format!("{room_id} has a room version this server does not support"),
                )
            })?;
        let mut event = make.event;
        let str_at = |e: &Value, pointer: &str| {
            e.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let template_ok = str_at(&event, "/type").as_deref() == Some("m.room.member")
            && str_at(&event, "/state_key").as_deref() == Some(user_id.as_str())
            && str_at(&event, "/sender").as_deref() == Some(user_id.as_str())
            && str_at(&event, "/room_id").as_deref() == Some(room_id.as_str())
            && str_at(&event, "/content/membership").as_deref() == Some(membership);
        let Some(obj) = event.as_object_mut().filter(|_| template_ok) else {
            return Err(bad_gateway(
                server,
                format!("make_{membership} answered a template for another event"),
            ));
        };
        obj.insert("origin_server_ts".into(), json!(crate::service::now_ms()));
        for key in ["signatures", "hashes", "unsigned", "event_id"] {
            obj.remove(key);
        }
        Ok((version, event))
    }

    /// Signs a filled-in membership template and sends it with `send_join`/`send_leave`
    /// (v2) or `send_knock` (v1); returns its event ID and the answer.
    pub(crate) async fn send_membership(
        &self,
        server: &ServerName,
        membership: &str,
        room_id: &RoomId,
        event: &mut Value,
        version: RoomVersion,
    ) -> Result<(OwnedEventId, Value)> {
        hash_and_sign_event(event, self.keys.signing_key(), version)?;
        let id = event_id(event, version)?;
        // `send_knock` exists only as v1.
        let api = if membership == "knock" { "v1" } else { "v2" };
        // A partial-state join: the room's members come later (partial_state.rs).
        let query = if membership == "join" && self.config.federation.partial_state_joins {
            "?omit_members=true"
        } else {
            ""
        };
        let path = format!(
            "/_matrix/federation/{api}/send_{membership}/{}/{}{query}",
            urlencode(room_id.as_str()),
            urlencode(id.as_str())
        );
        let answer = match self
            .federation
            .send_json(server, Method::PUT, &path, Some(event))
            .await
        {
            // A server without the v2 API: v1, whose answer is wrapped in `[200, …]`.
            Err(e) if api == "v2" && unknown_endpoint(&e) => {
                let path = format!(
                    "/_matrix/federation/v1/send_{membership}/{}/{}",
                    urlencode(room_id.as_str()),
                    urlencode(id.as_str())
                );
                let answer = self
                    .federation
                    .send_json(server, Method::PUT, &path, Some(event))
                    .await?;
                unwrap_v1_answer(answer).ok_or_else(|| {
                    bad_gateway(server, format!("bad v1 send_{membership} answer"))
                })?
            }
            other => other?,
        };
        Ok((id, answer))
    }
}

/// Whether a request failed because the remote does not have the endpoint (a 404 or 405
/// without a Matrix error or with `M_UNRECOGNIZED`, or an older server's 400
/// `M_UNRECOGNIZED`), so that an older version of it may be tried.
pub(crate) fn unknown_endpoint(e: &OutboundError) -> bool {
    match e {
        OutboundError::Remote {
            status: 404 | 405,
            errcode,
            ..
        } => errcode.as_deref().is_none_or(|c| c == "M_UNRECOGNIZED"),
        OutboundError::Remote {
            status: 400,
            errcode: Some(code),
            ..
        } => code == "M_UNRECOGNIZED",
        _ => false,
    }
}

/// The body of a v1 `send_join`/`send_leave`/`invite` answer, `[200, {…}]`.
pub(crate) fn unwrap_v1_answer(answer: Value) -> Option<Value> {
    match answer {
        Value::Array(mut parts) if parts.len() == 2 && parts[1].is_object() => {
            Some(parts.swap_remove(1))
        }
        _ => None,
    }
}

/// A failed `make_join`/`make_leave` as the client sees it: a room version this
/// server does not support is `M_INCOMPATIBLE_ROOM_VERSION` with that version, and
/// another refusal with a Matrix error (4xx) keeps the remote's status and error code,
/// as Synapse passes them on; anything else is what [`OutboundError`] maps to.
fn refusal_for_client(e: OutboundError, room_id: &RoomId) -> Error {
    match &e {
        OutboundError::Remote {
            errcode: Some(code),
            room_version,
            ..
        } if code == "M_INCOMPATIBLE_ROOM_VERSION" => Error::new(
            ErrorKind::IncompatibleRoomVersion(room_version.clone().unwrap_or_default()),
            format!("{room_id} has a room version this server does not support ({e})"),
        ),
        OutboundError::Remote {
            status: status @ 400..=499,
            errcode: Some(code),
            error,
            ..
        } if !matches!(status, 401 | 403 | 404 | 429) => Error::new(
            ErrorKind::Custom {
                status: *status,
                errcode: code.clone(),
            },
            error.clone().unwrap_or_else(|| e.to_string()),
        ),
        _ => e.into(),
    }
}

fn bad_gateway(server: &ServerName, detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::BadGateway, format!("{server}: {detail}"))
}

/// Percent-encodes a path segment or query value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
