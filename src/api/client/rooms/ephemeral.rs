//! Typing notifications, receipts and read markers.

use std::time::Duration;

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::receipts::{FULLY_READ, READ, READ_PRIVATE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/rooms/{room_id}/typing/{user_id}",
            put(typing),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/receipt/{receipt_type}/{event_id}",
            post(receipt),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/read_markers",
            post(read_markers),
        )
}

#[derive(Deserialize)]
struct TypingBody {
    typing: bool,
    timeout: Option<u64>,
}

/// Clients that omit the timeout while typing get this.
const DEFAULT_TYPING: Duration = Duration::from_secs(30);

async fn typing(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, user_id)): Path<(String, String)>,
    MatrixJson(body): MatrixJson<TypingBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if user_id != authed.user_id.as_str() {
        return Err(Error::forbidden("You can only set your own typing state"));
    }
    let timeout = body
        .typing
        .then(|| body.timeout.map_or(DEFAULT_TYPING, Duration::from_millis));
    state.set_typing(&room_id, &authed.user_id, timeout)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ReceiptBody {
    thread_id: Option<String>,
}

async fn receipt(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, receipt_type, event_id)): Path<(String, String, String)>,
    MatrixJson(body): MatrixJson<ReceiptBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    state.set_receipt(
        &authed.user_id,
        &room_id,
        &receipt_type,
        &event_id,
        body.thread_id.as_deref(),
    )?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ReadMarkersBody {
    #[serde(rename = "m.fully_read")]
    fully_read: Option<String>,
    #[serde(rename = "m.read")]
    read: Option<String>,
    #[serde(rename = "m.read.private")]
    read_private: Option<String>,
}

async fn read_markers(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<ReadMarkersBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    for (receipt_type, event_id) in [
        (FULLY_READ, &body.fully_read),
        (READ, &body.read),
        (READ_PRIVATE, &body.read_private),
    ] {
        if let Some(event_id) = event_id {
            state.set_receipt(&authed.user_id, &room_id, receipt_type, event_id, None)?;
        }
    }
    Ok(Json(json!({})))
}
