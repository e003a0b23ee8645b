//! Room aliases (`/directory/room/{roomAlias}`, `/rooms/{roomId}/aliases`) and the
//! published room directory (`/directory/list/room/{roomId}`, `/publicRooms`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::ServerName;
use serde::Deserialize;
use serde_json::{Value, json};

use super::rooms::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::directory::PublicRoomsQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/directory/room/{room_alias}",
            get(get_alias).put(put_alias).delete(delete_alias),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/aliases",
            get(room_aliases),
        )
        // The r0 names of the two lookups, which Synapse still serves and admin tools
        // (synadm) still call.
        .route(
            "/_matrix/client/r0/directory/room/{room_alias}",
            get(get_alias),
        )
        .route(
            "/_matrix/client/r0/rooms/{room_id}/aliases",
            get(room_aliases),
        )
        .route(
            "/_matrix/client/v3/directory/list/room/{room_id}",
            get(get_visibility).put(put_visibility),
        )
        .route(
            "/_matrix/client/v3/publicRooms",
            get(get_public_rooms).post(post_public_rooms),
        )
}

/// The spec lets anyone resolve an alias, without an access token.
async fn get_alias(
    State(state): State<AppState>,
    Path(alias): Path<String>,
) -> Result<Json<Value>> {
    let alias = state.parse_alias(&alias)?;
    let (room_id, servers) = state.resolve_alias_anywhere(&alias).await?;
    Ok(Json(json!({ "room_id": room_id, "servers": servers })))
}

#[derive(Deserialize)]
struct AliasBody {
    room_id: String,
}

async fn put_alias(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(alias): Path<String>,
    MatrixJson(body): MatrixJson<AliasBody>,
) -> Result<Json<Value>> {
    let alias = state.parse_new_alias(&alias)?;
    let room_id = parse_room_id(&body.room_id)?;
    state
        .create_alias(&alias, &room_id, &authed.user_id)
        .await?;
    Ok(Json(json!({})))
}

async fn delete_alias(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(alias): Path<String>,
) -> Result<Json<Value>> {
    let alias = state.parse_alias(&alias)?;
    state.delete_alias(&alias, &authed.user_id).await?;
    Ok(Json(json!({})))
}

async fn room_aliases(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let aliases = state.local_aliases(&room_id, &authed.user_id)?;
    Ok(Json(json!({ "aliases": aliases })))
}

async fn get_visibility(
    State(state): State<AppState>,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let public = state.room_visibility(&room_id)?;
    Ok(Json(
        json!({ "visibility": if public { "public" } else { "private" } }),
    ))
}

#[derive(Deserialize)]
struct VisibilityBody {
    visibility: Option<String>,
}

async fn put_visibility(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<VisibilityBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    // The spec makes `public` the default.
    let public = match body.visibility.as_deref() {
        None | Some("public") => true,
        Some("private") => false,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "Unknown visibility {other:?}; use \"public\" or \"private\""
            )));
        }
    };
    state.set_room_visibility(&room_id, &authed.user_id, public)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ServerQuery {
    server: Option<String>,
}

#[derive(Deserialize)]
struct PublicRoomsGetQuery {
    server: Option<String>,
    limit: Option<u64>,
    since: Option<String>,
}

/// Only this server's directory can be listed: fetching another's needs federation.
fn check_directory_server(state: &AppState, server: Option<&str>) -> Result<()> {
    let Some(server) = server else {
        return Ok(());
    };
    if server == state.server_name().as_str() {
        return Ok(());
    }
    ServerName::parse(server)
        .map_err(|e| Error::invalid_param(format!("Invalid server name {server:?}: {e}")))?;
    Err(Error::not_found(format!(
        "Cannot list the room directory of {server}: that needs federation, which this server does not offer yet"
    )))
}

/// A limit of 0 means no limit, as in Synapse.
fn limit(limit: Option<u64>) -> Option<usize> {
    limit
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX))
}

/// The spec asks for no access token here, so the directory is readable by anyone.
async fn get_public_rooms(
    State(state): State<AppState>,
    Query(query): Query<PublicRoomsGetQuery>,
) -> Result<Json<Value>> {
    check_directory_server(&state, query.server.as_deref())?;
    let rooms = state.public_rooms(&PublicRoomsQuery {
        limit: limit(query.limit),
        since: query.since,
        ..Default::default()
    })?;
    Ok(Json(rooms))
}

#[derive(Deserialize, Default)]
struct PublicRoomsFilter {
    generic_search_term: Option<String>,
    room_types: Option<Vec<Option<String>>>,
}

#[derive(Deserialize)]
struct PublicRoomsBody {
    limit: Option<u64>,
    since: Option<String>,
    filter: Option<PublicRoomsFilter>,
    #[serde(default)]
    include_all_networks: bool,
    third_party_instance_id: Option<String>,
}

async fn post_public_rooms(
    State(state): State<AppState>,
    Auth(_): Auth,
    Query(query): Query<ServerQuery>,
    MatrixJson(body): MatrixJson<PublicRoomsBody>,
) -> Result<Json<Value>> {
    check_directory_server(&state, query.server.as_deref())?;
    if body.include_all_networks && body.third_party_instance_id.is_some() {
        return Err(Error::invalid_param(
            "include_all_networks and third_party_instance_id cannot be used together",
        ));
    }
    if let Some(instance) = &body.third_party_instance_id {
        // No application service bridges a network here, so no room is published under one.
        tracing::debug!(%instance, "publicRooms asked for an unknown third-party network");
        return Ok(Json(json!({ "chunk": [], "total_room_count_estimate": 0 })));
    }
    let filter = body.filter.unwrap_or_default();
    let rooms = state.public_rooms(&PublicRoomsQuery {
        limit: limit(body.limit),
        since: body.since,
        search_term: filter.generic_search_term,
        room_types: filter.room_types,
    })?;
    Ok(Json(rooms))
}
