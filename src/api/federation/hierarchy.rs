//! `GET /_matrix/federation/v1/hierarchy/{roomId}`: a space and its children, for
//! another server walking a space tree for its users.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::api::federation::space::get_hierarchy;
use serde_json::Value;

use super::Origin;
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/hierarchy/{room_id}", get(hierarchy))
}

async fn hierarchy(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_hierarchy::v1::Request>,
) -> Result<Json<Value>> {
    let answer = state.hierarchy_for_server(&origin, &req.room_id, req.suggested_only)?;
    Ok(Json(answer))
}
