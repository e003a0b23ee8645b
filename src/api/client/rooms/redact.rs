//! `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`.

use axum::extract::State;
use axum::routing::put;
use axum::{Json, Router};
use ruma::EventId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::ratelimit::Family;
use crate::service::rooms::{EventTemplate, TxnRef};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/client/v3/rooms/{room_id}/redact/{event_id}/{txn_id}",
        put(redact),
    )
}

#[derive(Deserialize)]
struct RedactBody {
    reason: Option<String>,
}

async fn redact(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id, txn_id)): Path<(String, String, String)>,
    MatrixJson(body): MatrixJson<RedactBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let target = EventId::parse(&event_id)
        .map_err(|e| Error::invalid_param(format!("Invalid event ID {event_id:?}: {e}")))?;
    if txn_id.is_empty() {
        return Err(Error::invalid_param("Transaction ID must not be empty"));
    }
    state.check_suspended_redaction(&authed.user_id, Some(&json!(target)))?;
    state.rate_limit(Family::Messages, &authed.user_id)?;
    let event_id = state
        .append_event(
            &room_id,
            &authed.user_id,
            EventTemplate::redaction(target, body.reason),
            Some(TxnRef {
                device_id: authed.device_id.to_string(),
                txn_id,
            }),
        )
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}
