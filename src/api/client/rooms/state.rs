//! Room state: `PUT`/`GET /rooms/{roomId}/state/...` and `GET /rooms/{roomId}/event/{eventId}`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{check_identifier_length, parse_room_id, readable_state_group};
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::ratelimit::Family;
use crate::service::rooms::{ClientView, EventTemplate};
use crate::service::sessions::Authed;
use ruma::OwnedEventId;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/rooms/{room_id}/state", get(all_state))
        .route(
            "/_matrix/client/v3/rooms/{room_id}/state/{event_type}",
            get(get_empty_key).put(put_empty_key),
        )
        // An empty state key leaves a trailing slash, which is how matrix-js-sdk (and so
        // Element) addresses m.room.name and the like; the router does not match an empty
        // segment against `{state_key}`.
        .route(
            "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/",
            get(get_empty_key).put(put_empty_key),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{state_key}",
            get(get_state).put(put_state),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/event/{event_id}",
            get(get_event),
        )
}

fn view(authed: &Authed) -> ClientView<'_> {
    ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    }
}

async fn all_state(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let group = readable_state_group(&state, &room_id, &authed.user_id)?;
    let mut events = Vec::new();
    for event_id in state.state_ids_at(group)?.values() {
        if let Some((_, event)) =
            state.client_event_by_id(event_id.as_str(), Some(view(&authed)))?
        {
            events.push(event);
        }
    }
    Ok(Json(Value::Array(events)))
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

async fn get_empty_key(
    state: State<AppState>,
    auth: Auth,
    Path((room_id, event_type)): Path<(String, String)>,
    query: Query<FormatQuery>,
) -> Result<Json<Value>> {
    lookup(state, auth, room_id, event_type, String::new(), query).await
}

async fn get_state(
    state: State<AppState>,
    auth: Auth,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
    query: Query<FormatQuery>,
) -> Result<Json<Value>> {
    lookup(state, auth, room_id, event_type, state_key, query).await
}

async fn lookup(
    State(state): State<AppState>,
    Auth(authed): Auth,
    room_id: String,
    event_type: String,
    state_key: String,
    Query(query): Query<FormatQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let group = readable_state_group(&state, &room_id, &authed.user_id)?;
    let ids = state.state_ids_at(group)?;
    let not_found = || Error::not_found(format!("No {event_type} state with key {state_key:?}"));
    let event_id = ids
        .get(&(event_type.clone(), state_key.clone()))
        .ok_or_else(not_found)?;
    let (_, event) = state
        .client_event_by_id(event_id.as_str(), Some(view(&authed)))?
        .ok_or_else(not_found)?;
    match query.format.as_deref() {
        None | Some("content") => Ok(Json(event["content"].clone())),
        Some("event") => Ok(Json(event)),
        Some(other) => Err(Error::invalid_param(format!("Unknown format {other:?}"))),
    }
}

async fn put_empty_key(
    state: State<AppState>,
    auth: Auth,
    Path((room_id, event_type)): Path<(String, String)>,
    body: MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    send_state(state, auth, room_id, event_type, String::new(), body).await
}

async fn put_state(
    state: State<AppState>,
    auth: Auth,
    Path((room_id, event_type, state_key)): Path<(String, String, String)>,
    body: MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    send_state(state, auth, room_id, event_type, state_key, body).await
}

async fn send_state(
    State(state): State<AppState>,
    Auth(authed): Auth,
    room_id: String,
    event_type: String,
    state_key: String,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let event_id =
        send_state_event(&state, &authed, &room_id, &event_type, &state_key, content).await?;
    Ok(Json(json!({ "event_id": event_id })))
}

/// A client's state event, over HTTP or a sync socket.
pub async fn send_state_event(
    state: &Services,
    authed: &Authed,
    room_id: &str,
    event_type: &str,
    state_key: &str,
    content: Map<String, Value>,
) -> Result<OwnedEventId> {
    let room_id = parse_room_id(room_id)?;
    check_identifier_length("event type", event_type)?;
    check_identifier_length("state key", state_key)?;
    if event_type.is_empty() {
        return Err(Error::invalid_param("Event type must not be empty"));
    }
    if event_type == "m.room.create" {
        return Err(Error::forbidden("The create event cannot be replaced"));
    }
    state.refuse_if_suspended(&authed.user_id)?;
    state.rate_limit(Family::Messages, &authed.user_id)?;
    if state.is_shadow_banned(&authed.user_id)? {
        return state.shadow_event_id(&authed.user_id, None);
    }
    state
        .send_state(
            &room_id,
            &authed.user_id,
            EventTemplate::state(event_type, state_key, Value::Object(content)),
        )
        .await
}

async fn get_event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let not_found = || Error::not_found("Event not found");
    // The spec answers 404 both for unknown events and for events the user may not see.
    let mut reader = match state.history_reader(&room_id, view(&authed)) {
        Err(e) if e.kind == ErrorKind::Forbidden => return Err(not_found()),
        other => other?,
    };
    let (_, event) = reader.event(&event_id)?.ok_or_else(not_found)?;
    Ok(Json(event))
}
