//! Server-side key backups: `/room_keys/version[/{version}]` and
//! `/room_keys/keys[/{roomId}[/{sessionId}]]`. Every request is about the
//! authenticated user's own backup.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::{OwnedRoomId, RoomId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::key_backup::{AllKeys, NewVersion, RoomKeys, Scope, VersionUpdate};
use crate::store::BackedUpKey;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/room_keys/version",
            post(create_version).get(current_version),
        )
        .route(
            "/_matrix/client/v3/room_keys/version/{version}",
            get(get_version).put(update_version).delete(delete_version),
        )
        .route(
            "/_matrix/client/v3/room_keys/keys",
            get(get_all).put(put_all).delete(delete_all),
        )
        .route(
            "/_matrix/client/v3/room_keys/keys/{room_id}",
            get(get_room).put(put_room).delete(delete_room),
        )
        .route(
            "/_matrix/client/v3/room_keys/keys/{room_id}/{session_id}",
            get(get_session).put(put_session).delete(delete_session),
        )
}

#[derive(Deserialize)]
struct VersionParam {
    version: Option<String>,
}

impl VersionParam {
    fn required(self) -> Result<String> {
        self.version
            .ok_or_else(|| Error::missing_param("the version query parameter is required"))
    }
}

fn owned_room_id(room_id: &str) -> Result<OwnedRoomId> {
    RoomId::parse(room_id)
        .map_err(|e| Error::invalid_param(format!("{room_id:?} is not a room ID: {e}")))
}

fn room_id(room_id: &str) -> Result<&str> {
    owned_room_id(room_id).map(|_| room_id)
}

fn session_id(session_id: &str) -> Result<&str> {
    if session_id.is_empty() {
        return Err(Error::invalid_param("the session ID must not be empty"));
    }
    Ok(session_id)
}

fn to_json(value: impl serde::Serialize) -> Result<Json<Value>> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(Error::internal)
}

async fn create_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<NewVersion>,
) -> Result<Json<Value>> {
    let version = state.key_backup.create_version(&authed.user_id, body)?;
    Ok(Json(json!({ "version": version })))
}

async fn current_version(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    to_json(state.key_backup.current_version(&authed.user_id)?)
}

async fn get_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(version): Path<String>,
) -> Result<Json<Value>> {
    to_json(state.key_backup.version(&authed.user_id, &version)?)
}

async fn update_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(version): Path<String>,
    MatrixJson(body): MatrixJson<VersionUpdate>,
) -> Result<Json<Value>> {
    state
        .key_backup
        .update_version(&authed.user_id, &version, body)?;
    Ok(Json(json!({})))
}

async fn delete_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(version): Path<String>,
) -> Result<Json<Value>> {
    state.key_backup.delete_version(&authed.user_id, &version)?;
    Ok(Json(json!({})))
}

async fn put_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<VersionParam>,
    MatrixJson(body): MatrixJson<AllKeys>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    to_json(state.key_backup.put_keys(&authed.user_id, &version, body)?)
}

async fn put_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room): Path<String>,
    Query(params): Query<VersionParam>,
    MatrixJson(body): MatrixJson<RoomKeys>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let room = owned_room_id(&room)?;
    let mut keys = AllKeys::default();
    keys.rooms.insert(room, body);
    to_json(state.key_backup.put_keys(&authed.user_id, &version, keys)?)
}

async fn put_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room, session)): Path<(String, String)>,
    Query(params): Query<VersionParam>,
    MatrixJson(body): MatrixJson<BackedUpKey>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let room = owned_room_id(&room)?;
    let mut sessions = RoomKeys::default();
    sessions
        .sessions
        .insert(session_id(&session)?.to_owned(), body);
    let mut keys = AllKeys::default();
    keys.rooms.insert(room, sessions);
    to_json(state.key_backup.put_keys(&authed.user_id, &version, keys)?)
}

async fn get_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    Ok(Json(state.key_backup.keys(
        &authed.user_id,
        &version,
        Scope::All,
    )?))
}

async fn get_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room): Path<String>,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let scope = Scope::Room(room_id(&room)?);
    Ok(Json(state.key_backup.keys(
        &authed.user_id,
        &version,
        scope,
    )?))
}

async fn get_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room, session)): Path<(String, String)>,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let scope = Scope::Session(room_id(&room)?, session_id(&session)?);
    Ok(Json(state.key_backup.keys(
        &authed.user_id,
        &version,
        scope,
    )?))
}

async fn delete_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    to_json(
        state
            .key_backup
            .delete_keys(&authed.user_id, &version, Scope::All)?,
    )
}

async fn delete_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room): Path<String>,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let scope = Scope::Room(room_id(&room)?);
    to_json(
        state
            .key_backup
            .delete_keys(&authed.user_id, &version, scope)?,
    )
}

async fn delete_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room, session)): Path<(String, String)>,
    Query(params): Query<VersionParam>,
) -> Result<Json<Value>> {
    let version = params.required()?;
    let scope = Scope::Session(room_id(&room)?, session_id(&session)?);
    to_json(
        state
            .key_backup
            .delete_keys(&authed.user_id, &version, scope)?,
    )
}
