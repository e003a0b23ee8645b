//! Reporting content: events, rooms and users, for the server's moderators.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::{EventId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::rooms::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::rooms::ClientView;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/rooms/{room_id}/report/{event_id}",
            post(report_event),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/report",
            post(report_room),
        )
        .route(
            "/_matrix/client/v3/users/{user_id}/report",
            post(report_user),
        )
}

/// `score` was removed from event reports in v1.18; older clients still send it, and
/// it is ignored like any other unknown key.
#[derive(Deserialize)]
struct EventReportBody {
    reason: Option<String>,
}

/// Room and user reports require a reason, which may be blank.
#[derive(Deserialize)]
struct ReasonBody {
    reason: String,
}

async fn report_event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
    MatrixJson(body): MatrixJson<EventReportBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let event_id = EventId::parse(&event_id)
        .map_err(|e| Error::invalid_param(format!("Invalid event ID {event_id:?}: {e}")))?;
    let view = ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    };
    state.report_event(view, &room_id, &event_id, body.reason)?;
    Ok(Json(json!({})))
}

async fn report_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    state.report_room(&authed.user_id, &room_id, body.reason)?;
    Ok(Json(json!({})))
}

async fn report_user(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> Result<Json<Value>> {
    let user_id = UserId::parse(&user_id)
        .map_err(|e| Error::invalid_param(format!("Invalid user ID {user_id:?}: {e}")))?;
    state.report_user(&authed.user_id, &user_id, body.reason)?;
    Ok(Json(json!({})))
}
