//! Directory lookups for other servers: `/query/directory` and `/publicRooms`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::api::federation::directory::{get_public_rooms, get_public_rooms_filtered};
use ruma::api::federation::query::get_room_information;
use ruma::directory::RoomNetwork;
use serde_json::{Value, json};

use super::Origin;
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::error::Result;
use crate::service::directory::PublicRoomsQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/federation/v1/query/directory",
            get(query_directory),
        )
        .route(
            "/_matrix/federation/v1/publicRooms",
            get(get_public_rooms).post(post_public_rooms),
        )
}

async fn query_directory(
    State(state): State<AppState>,
    Origin(_): Origin,
    RumaRequest(req): RumaRequest<get_room_information::v1::Request>,
) -> Result<Json<Value>> {
    let (room_id, servers) = state.alias_for_server(&req.room_alias)?;
    Ok(Json(json!({ "room_id": room_id, "servers": servers })))
}

/// A limit of 0 means no limit, as the spec says of the GET form and Synapse does of both.
fn limit(limit: Option<ruma::UInt>) -> Option<usize> {
    limit
        .map(u64::from)
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX))
}

/// No application service bridges a network here, so no room is published under a
/// third-party network, and "all networks" is the Matrix one.
fn empty_listing() -> Value {
    json!({ "chunk": [], "total_room_count_estimate": 0 })
}

async fn get_public_rooms(
    State(state): State<AppState>,
    Origin(_): Origin,
    RumaRequest(req): RumaRequest<get_public_rooms::v1::Request>,
) -> Result<Json<Value>> {
    if let RoomNetwork::ThirdParty(_) = req.room_network {
        return Ok(Json(empty_listing()));
    }
    let rooms = state.public_rooms(&PublicRoomsQuery {
        limit: limit(req.limit),
        since: req.since,
        ..Default::default()
    })?;
    Ok(Json(rooms))
}

async fn post_public_rooms(
    State(state): State<AppState>,
    Origin(_): Origin,
    RumaRequest(req): RumaRequest<get_public_rooms_filtered::v1::Request>,
) -> Result<Json<Value>> {
    if let RoomNetwork::ThirdParty(_) = req.room_network {
        return Ok(Json(empty_listing()));
    }
    let room_types = (!req.filter.room_types.is_empty()).then(|| {
        req.filter
            .room_types
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect()
    });
    let rooms = state.public_rooms(&PublicRoomsQuery {
        limit: limit(req.limit),
        since: req.since,
        search_term: req.filter.generic_search_term,
        room_types,
    })?;
    Ok(Json(rooms))
}
