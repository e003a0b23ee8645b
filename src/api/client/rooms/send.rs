//! `PUT /rooms/{roomId}/send/{eventType}/{txnId}`, and the older `POST` without a
//! transaction ID that Synapse still serves (and SyTest uses).

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::{check_identifier_length, parse_room_id};
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::ratelimit::Family;
use crate::service::rooms::{EventTemplate, TxnRef};
use crate::service::sessions::Authed;
use ruma::OwnedEventId;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}",
            put(send),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/send/{event_type}",
            post(send_without_txn),
        )
}

/// Without a transaction ID a retried request is a second event: each request gets a
/// transaction ID of its own.
async fn send_without_txn(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_type)): Path<(String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let txn_id = format!("post-{}", crate::service::random_string(24));
    let event_id = send_message(&state, &authed, &room_id, &event_type, txn_id, content).await?;
    Ok(Json(json!({ "event_id": event_id })))
}

async fn send(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_type, txn_id)): Path<(String, String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let event_id = send_message(&state, &authed, &room_id, &event_type, txn_id, content).await?;
    Ok(Json(json!({ "event_id": event_id })))
}

/// A client's send, over HTTP or a sync socket.
pub async fn send_message(
    state: &Services,
    authed: &Authed,
    room_id: &str,
    event_type: &str,
    txn_id: String,
    content: Map<String, Value>,
) -> Result<OwnedEventId> {
    let room_id = parse_room_id(room_id)?;
    check_identifier_length("event type", event_type)?;
    if event_type.is_empty() || txn_id.is_empty() {
        return Err(Error::invalid_param(
            "Event type and transaction ID must not be empty",
        ));
    }
    if event_type == "m.room.redaction" {
        state.check_suspended_redaction(&authed.user_id, content.get("redacts"))?;
    } else {
        state.refuse_if_suspended(&authed.user_id)?;
    }
    state.rate_limit(Family::Messages, &authed.user_id)?;
    if state.is_shadow_banned(&authed.user_id)? {
        let seed = format!("{}\0{txn_id}", authed.device_id);
        return state.shadow_event_id(&authed.user_id, Some(&seed));
    }
    state
        .append_event(
            &room_id,
            &authed.user_id,
            EventTemplate::message(event_type, Value::Object(content)),
            Some(TxnRef {
                device_id: authed.device_id.to_string(),
                txn_id,
            }),
        )
        .await
}
