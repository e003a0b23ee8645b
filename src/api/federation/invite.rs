//! `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`.

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
    Router::new().route(
        "/_matrix/federation/v2/invite/{room_id}/{event_id}",
        put(invite),
    )
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
