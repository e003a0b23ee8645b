//! `GET /joined_rooms`, `/rooms/{roomId}/members`, `/rooms/{roomId}/joined_members`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{parse_room_id, readable_state_group};
use crate::api::AppState;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::rooms::ClientView;
use crate::service::sync::SyncToken;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/joined_rooms", get(joined_rooms))
        .route("/_matrix/client/v3/rooms/{room_id}/members", get(members))
        .route(
            "/_matrix/client/v3/rooms/{room_id}/joined_members",
            get(joined_members),
        )
}

async fn joined_rooms(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    let rooms: Vec<_> = state
        .store
        .user_rooms(authed.user_id.as_str())?
        .into_iter()
        .filter(|(_, r)| r.membership == "join")
        .map(|(room_id, _)| room_id)
        .collect();
    Ok(Json(json!({ "joined_rooms": rooms })))
}

#[derive(Deserialize)]
struct MembersQuery {
    at: Option<String>,
    membership: Option<String>,
    not_membership: Option<String>,
}

async fn members(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    // A partially joined room's members are on their way: wait for them (bounded).
    state.await_full_state(&room_id).await;
    let group = readable_state_group(&state, &room_id, &authed.user_id)?;
    let view = ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    };
    let state_ids = match query.at.as_deref() {
        None => state.state_ids_at(group)?,
        Some(at) => {
            let token = SyncToken::parse(at).ok_or_else(|| {
                Error::invalid_param(format!("at={at:?} is not a sync token from this server"))
            })?;
            // Former members see no further than their departure.
            let mut position = token.events;
            if let Some(record) = state
                .store
                .user_room(authed.user_id.as_str(), room_id.as_str())?
                && record.membership != "join"
            {
                position = position.min(record.stream);
            }
            state.state_at(&room_id, position)?.unwrap_or_default()
        }
    };
    let mut chunk = Vec::new();
    for ((event_type, _), event_id) in state_ids {
        if event_type != "m.room.member" {
            continue;
        }
        let Some((_, event)) = state.client_event_by_id(event_id.as_str(), Some(view))? else {
            continue;
        };
        let membership = event["content"]["membership"].as_str().unwrap_or_default();
        if query.membership.as_deref().is_some_and(|m| m != membership)
            || query.not_membership.as_deref() == Some(membership)
        {
            continue;
        }
        chunk.push(event);
    }
    Ok(Json(json!({ "chunk": chunk })))
}

async fn joined_members(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if !state.is_joined(&room_id, &authed.user_id)? {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    state.await_full_state(&room_id).await;
    let mut joined = Map::new();
    for ((_, user), event_id) in state
        .store
        .current_state(room_id.as_str(), Some("m.room.member"))?
    {
        let Some(record) = state.store.event(event_id.as_str())? else {
            continue;
        };
        let content = &record.pdu["content"];
        if content["membership"] != "join" {
            continue;
        }
        let mut profile = Map::new();
        for (field, key) in [
            ("displayname", "display_name"),
            ("avatar_url", "avatar_url"),
        ] {
            // Both keys are always there, null when unset, as Synapse answers.
            let value = content.get(field).filter(|v| v.is_string());
            profile.insert(key.into(), value.cloned().unwrap_or(Value::Null));
        }
        joined.insert(user, Value::Object(profile));
    }
    Ok(Json(json!({ "joined": joined })))
}
