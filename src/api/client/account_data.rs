//! Account data (`/user/{userId}/account_data/...`, `/user/{userId}/rooms/{roomId}/account_data/...`)
//! and room tags (`/user/{userId}/rooms/{roomId}/tags...`).

use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};
use ruma::OwnedRoomId;
use serde_json::{Map, Value, json};

use super::rooms::{check_identifier_length, parse_room_id};
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::sessions::Authed;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/user/{user_id}/account_data/{data_type}",
            get(get_global).put(put_global),
        )
        .route(
            "/_matrix/client/v3/user/{user_id}/rooms/{room_id}/account_data/{data_type}",
            get(get_room).put(put_room),
        )
        .route(
            "/_matrix/client/v3/user/{user_id}/rooms/{room_id}/tags",
            get(get_tags),
        )
        .route(
            "/_matrix/client/v3/user/{user_id}/rooms/{room_id}/tags/{tag}",
            put(put_tag).delete(delete_tag),
        )
}

/// Account data is private: a user reads and writes only their own.
fn check_own(authed: &Authed, user_id: &str) -> Result<()> {
    if authed.user_id.as_str() != user_id {
        return Err(Error::forbidden(
            "Cannot read or change account data of other users",
        ));
    }
    Ok(())
}

fn own_room(authed: &Authed, user_id: &str, room_id: &str) -> Result<OwnedRoomId> {
    check_own(authed, user_id)?;
    parse_room_id(room_id)
}

async fn get_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, data_type)): Path<(String, String)>,
) -> Result<Json<Value>> {
    check_own(&authed, &user_id)?;
    Ok(Json(state.get_account_data(
        &authed.user_id,
        None,
        &data_type,
    )?))
}

async fn put_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, data_type)): Path<(String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    check_own(&authed, &user_id)?;
    check_identifier_length("Account data type", &data_type)?;
    state.set_account_data(&authed.user_id, None, &data_type, content)?;
    Ok(Json(json!({})))
}

async fn get_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, room_id, data_type)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    let room_id = own_room(&authed, &user_id, &room_id)?;
    Ok(Json(state.get_account_data(
        &authed.user_id,
        Some(&room_id),
        &data_type,
    )?))
}

async fn put_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, room_id, data_type)): Path<(String, String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let room_id = own_room(&authed, &user_id, &room_id)?;
    check_identifier_length("Account data type", &data_type)?;
    state.set_account_data(&authed.user_id, Some(&room_id), &data_type, content)?;
    Ok(Json(json!({})))
}

async fn get_tags(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, room_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let room_id = own_room(&authed, &user_id, &room_id)?;
    Ok(Json(state.room_tags(&authed.user_id, &room_id)?))
}

async fn put_tag(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, room_id, tag)): Path<(String, String, String)>,
    MatrixJson(content): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let room_id = own_room(&authed, &user_id, &room_id)?;
    check_identifier_length("Tag", &tag)?;
    state.set_room_tag(&authed.user_id, &room_id, &tag, content)?;
    Ok(Json(json!({})))
}

async fn delete_tag(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, room_id, tag)): Path<(String, String, String)>,
) -> Result<Json<Value>> {
    let room_id = own_room(&authed, &user_id, &room_id)?;
    state.remove_room_tag(&authed.user_id, &room_id, &tag)?;
    Ok(Json(json!({})))
}
