//! Media quarantine at Synapse's paths: one piece of media, a user's uploads, a room's
//! media.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::post;
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::Path;
use crate::error::{Error, Result};
use crate::service::admin::parse_user_id;

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::POST,
            "/_synapse/admin/v1/media/quarantine/{server_name}/{media_id}",
            post(quarantine),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/media/unquarantine/{server_name}/{media_id}",
            post(unquarantine),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/user/{user_id}/media/quarantine",
            post(quarantine_user),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/room/{room_id}/media/quarantine",
            post(quarantine_room),
        ),
    ]
}

async fn quarantine(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    state.admin_quarantine_media(&admin.user_id, &server_name, &media_id, true)?;
    Ok(Json(json!({})))
}

async fn unquarantine(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    state.admin_quarantine_media(&admin.user_id, &server_name, &media_id, false)?;
    Ok(Json(json!({})))
}

async fn quarantine_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let n = state.admin_quarantine_user_media(&admin.user_id, &user_id)?;
    Ok(Json(json!({ "num_quarantined": n })))
}

async fn quarantine_room(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = ruma::RoomId::parse(&room_id)
        .map_err(|_| Error::invalid_param(format!("Invalid room ID {room_id}")))?;
    let n = state.admin_quarantine_room_media(&admin.user_id, &room_id)?;
    Ok(Json(json!({ "num_quarantined": n })))
}
