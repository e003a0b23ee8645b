//! Redaction by an admin: a user's events in bulk at Synapse's paths
//! (`POST /_synapse/admin/v1/user/{userId}/redact`, `GET .../user/redact_status/{id}`),
//! and one event at Hearth's (`POST /_hearth/admin/v1/events/{eventId}/redact`).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use ruma::{OwnedEventId, OwnedRoomId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::admin::{UserRedaction, parse_user_id};

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::POST,
            "/_synapse/admin/v1/user/{user_id}/redact",
            post(redact_user),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/user/redact_status/{redact_id}",
            get(redact_status),
        ),
        (
            Method::POST,
            "/_hearth/admin/v1/events/{event_id}/redact",
            post(redact_event),
        ),
    ]
}

#[derive(Deserialize)]
struct RedactUserBody {
    #[serde(default)]
    rooms: Vec<OwnedRoomId>,
    reason: Option<String>,
    limit: Option<u64>,
    /// Hearth's addition: only events sent at or after this time (ms).
    since_ts: Option<u64>,
}

async fn redact_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<RedactUserBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let limit = match body.limit {
        Some(0) => return Err(Error::invalid_param("limit must be a positive integer")),
        Some(limit) => Some(usize::try_from(limit).unwrap_or(usize::MAX)),
        None => None,
    };
    let redact_id = state.admin_redact_user(
        &admin.user_id,
        &user_id,
        UserRedaction {
            rooms: body.rooms,
            reason: body.reason,
            limit,
            since_ts: body.since_ts,
        },
    )?;
    Ok(Json(json!({ "redact_id": redact_id })))
}

async fn redact_status(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(redact_id): Path<String>,
) -> Result<Json<Value>> {
    let record = state.admin_redaction_status(&redact_id)?;
    let status = if record.finished_ts.is_some() {
        "completed"
    } else {
        "active"
    };
    Ok(Json(json!({
        "status": status,
        "failed_redactions": record.failed_redactions,
        "redact_id": record.redact_id,
        "user_id": record.user_id,
        "rooms": record.rooms,
        "redacted": record.redacted,
        "started_ts": record.started_ts,
        "finished_ts": record.finished_ts,
    })))
}

#[derive(Deserialize)]
struct RedactEventBody {
    reason: Option<String>,
}

async fn redact_event(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(event_id): Path<String>,
    MatrixJson(body): MatrixJson<RedactEventBody>,
) -> Result<Json<Value>> {
    let event_id = OwnedEventId::try_from(event_id.as_str())
        .map_err(|_| Error::invalid_param(format!("Invalid event ID {event_id}")))?;
    let redaction = state
        .admin_redact_event(&admin.user_id, &event_id, body.reason)
        .await?;
    Ok(Json(json!({ "event_id": redaction })))
}
