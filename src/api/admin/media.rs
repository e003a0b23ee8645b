//! Media quarantine and deletion at Synapse's paths: one piece of media, a user's
//! uploads, a room's media (quarantine), media older than a time (deletion).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{Path, Query};
use crate::error::{Error, Result};
use crate::service::admin::{DEFAULT_USER_MEDIA_LIMIT, OldMedia, parse_user_id};

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
        (
            Method::DELETE,
            "/_synapse/admin/v1/media/{server_name}/{media_id}",
            delete(delete_one),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/media/delete",
            post(delete_old),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/media/{server_name}/delete",
            post(delete_old_of_server),
        ),
        (
            Method::DELETE,
            "/_synapse/admin/v1/users/{user_id}/media",
            delete(delete_user_media),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/purge_media_cache",
            post(purge_media_cache),
        ),
    ]
}

fn deleted(ids: Vec<String>) -> Json<Value> {
    Json(json!({ "total": ids.len(), "deleted_media": ids }))
}

async fn delete_one(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path((server_name, media_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let ids = state
        .admin_delete_media(&admin.user_id, &server_name, &media_id)
        .await?;
    Ok(deleted(ids))
}

#[derive(Deserialize)]
struct OldMediaQuery {
    before_ts: Option<String>,
    size_gt: Option<String>,
    keep_profiles: Option<String>,
}

fn number(value: Option<&str>, name: &str) -> Result<Option<u64>> {
    value
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| Error::invalid_param(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

async fn delete_old(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Query(query): Query<OldMediaQuery>,
) -> Result<Json<Value>> {
    let before_ts = number(query.before_ts.as_deref(), "before_ts")?
        .ok_or_else(|| Error::missing_param("before_ts is required"))?;
    let keep_profiles = match query.keep_profiles.as_deref() {
        None | Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(Error::invalid_param("keep_profiles must be true or false")),
    };
    let which = OldMedia {
        before_ts,
        size_gt: number(query.size_gt.as_deref(), "size_gt")?.unwrap_or(0),
        keep_profiles,
    };
    Ok(deleted(
        state.admin_delete_old_media(&admin.user_id, which).await?,
    ))
}

/// The older form, naming the server (which must be this one).
async fn delete_old_of_server(
    state: State<AppState>,
    admin: Admin,
    Path(server_name): Path<String>,
    query: Query<OldMediaQuery>,
) -> Result<Json<Value>> {
    if server_name != state.server_name().as_str() {
        return Err(Error::invalid_param(
            "Only this server's media can be deleted",
        ));
    }
    delete_old(state, admin, query).await
}

#[derive(Deserialize)]
struct PurgeQuery {
    before_ts: Option<String>,
}

/// Synapse's purge of cached remote media; answers `{"deleted": n}`.
async fn purge_media_cache(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Query(query): Query<PurgeQuery>,
) -> Result<Json<Value>> {
    let before_ts = number(query.before_ts.as_deref(), "before_ts")?
        .ok_or_else(|| Error::missing_param("before_ts is required"))?;
    let deleted = state
        .admin_purge_remote_media(&admin.user_id, before_ts)
        .await?;
    Ok(Json(json!({ "deleted": deleted })))
}

#[derive(Deserialize)]
struct UserMediaQuery {
    from: Option<String>,
    limit: Option<String>,
}

async fn delete_user_media(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    Query(query): Query<UserMediaQuery>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let from = number(query.from.as_deref(), "from")?.unwrap_or(0) as usize;
    let limit =
        number(query.limit.as_deref(), "limit")?.map_or(DEFAULT_USER_MEDIA_LIMIT, |n| n as usize);
    let ids = state
        .admin_delete_user_media(&admin.user_id, &user_id, from, limit)
        .await?;
    Ok(deleted(ids))
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
