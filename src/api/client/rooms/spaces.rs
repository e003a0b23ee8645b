//! `GET /rooms/{roomId}/hierarchy` and `GET /room_summary/{roomIdOrAlias}`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::membership::{room_id_or_alias, via_servers};
use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MaybeAuth, Path, Query};
use crate::error::Result;
use crate::service::spaces::HierarchyQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v1/rooms/{room_id}/hierarchy",
            get(hierarchy),
        )
        .route("/_matrix/client/v1/room_summary/{room}", get(room_summary))
}

#[derive(Deserialize)]
struct HierarchyParams {
    from: Option<String>,
    limit: Option<u64>,
    max_depth: Option<u64>,
    #[serde(default)]
    suggested_only: bool,
}

async fn hierarchy(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(params): Query<HierarchyParams>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let query = HierarchyQuery {
        from: params.from,
        limit: params.limit,
        max_depth: params.max_depth,
        suggested_only: params.suggested_only,
    };
    let page = state
        .space_hierarchy(&authed.user_id, &room_id, query)
        .await?;
    Ok(Json(page))
}

/// Open to anonymous requests for rooms anyone may join, knock on or read.
async fn room_summary(
    State(state): State<AppState>,
    MaybeAuth(authed): MaybeAuth,
    Path(room): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    let mut via = via_servers(&query);
    let room_id = room_id_or_alias(&state, &room, &mut via).await?;
    let user = authed.as_ref().map(|a| a.user_id.as_ref());
    let summary = state.room_preview(user, &room_id, &via).await?;
    Ok(Json(summary))
}
