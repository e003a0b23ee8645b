//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`, and the deprecated v1 form for
//! rooms of versions 1 and 2 (the event alone as the body, answered as `[200, body]`).

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use ruma::{OwnedEventId, OwnedRoomId};
use serde_json::{Value, json};

use super::Origin;
use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::{Error, Result};
use crate::service::federation::invite::InviteRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/federation/v2/invite/{room_id}/{event_id}",
            put(invite),
        )
        .route(
            "/_matrix/federation/v1/invite/{room_id}/{event_id}",
            put(invite_v1),
        )
}

/// v1 carries no room version: the spec keeps it for versions 1 and 2, which share the
/// event format, so the room is taken as version 1. The stripped state, if any, is in the
/// event's `unsigned.invite_room_state`.
async fn invite_v1(
    state: State<AppState>,
    origin: Origin,
    path: Path<(String, String)>,
    MatrixJson(event): MatrixJson<Value>,
) -> Result<Json<Value>> {
    let invite_room_state = event
        .pointer("/unsigned/invite_room_state")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let request = InviteRequest {
        room_version: "1".to_owned(),
        event,
        invite_room_state,
    };
    let Json(body) = invite(state, origin, path, MatrixJson(request)).await?;
    Ok(Json(json!([200, body])))
}

async fn invite(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, event_id)): Path<(String, String)>,
    MatrixJson(request): MatrixJson<InviteRequest>,
) -> Result<Json<Value>> {
    let room_id = OwnedRoomId::try_from(room_id)
        .map_err(|e| Error::invalid_param(format!("bad room ID: {e}")))?;
    let event_id = OwnedEventId::try_from(event_id)
        .map_err(|e| Error::invalid_param(format!("bad event ID: {e}")))?;
    let event = state
        .receive_invite(&origin, &room_id, &event_id, request)
        .await?;
    Ok(Json(json!({ "event": event })))
}
