//! `GET /rooms/{roomId}/relations/...` and `GET /rooms/{roomId}/threads`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::relations::{RelationsPage, RelationsQuery};
use crate::service::rooms::ClientView;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}",
            get(relations),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type}",
            get(relations_of_type),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}",
            get(relations_of_type_and_event_type),
        )
        .route("/_matrix/client/v1/rooms/{room_id}/threads", get(threads))
}

#[derive(Deserialize)]
struct RelationsParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    dir: Option<String>,
}

fn limit(text: Option<&str>) -> Result<usize> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) => Ok(n.clamp(1, MAX_LIMIT)),
            Err(_) => Err(Error::invalid_param(format!(
                "limit must be a positive integer, not {text:?}"
            ))),
        },
    }
}

fn page_json(page: RelationsPage, prev_batch: Option<&str>) -> Value {
    let mut body = json!({ "chunk": page.chunk });
    if let Some(next) = page.next_batch {
        body["next_batch"] = json!(next);
    }
    if let Some(prev) = prev_batch {
        body["prev_batch"] = json!(prev);
    }
    body
}

async fn relations_common(
    state: AppState,
    authed: crate::service::sessions::Authed,
    room_id: String,
    event_id: String,
    rel_type: Option<String>,
    event_type: Option<String>,
    params: RelationsParams,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let forward = match params.dir.as_deref() {
        None | Some("b") => false,
        Some("f") => true,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "dir must be b or f, not {other:?}"
            )));
        }
    };
    let query = RelationsQuery {
        rel_type: rel_type.as_deref(),
        event_type: event_type.as_deref(),
        from: params.from.as_deref(),
        to: params.to.as_deref(),
        limit: limit(params.limit.as_deref())?,
        forward,
    };
    let view = ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    };
    let page = state.relations_page(&room_id, &event_id, view, &query)?;
    Ok(Json(page_json(page, params.from.as_deref())))
}

async fn relations(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
    Query(params): Query<RelationsParams>,
) -> Result<Json<Value>> {
    relations_common(state, authed, room_id, event_id, None, None, params).await
}

async fn relations_of_type(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id, rel_type)): Path<(String, String, String)>,
    Query(params): Query<RelationsParams>,
) -> Result<Json<Value>> {
    relations_common(
        state,
        authed,
        room_id,
        event_id,
        Some(rel_type),
        None,
        params,
    )
    .await
}

async fn relations_of_type_and_event_type(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id, rel_type, event_type)): Path<(String, String, String, String)>,
    Query(params): Query<RelationsParams>,
) -> Result<Json<Value>> {
    relations_common(
        state,
        authed,
        room_id,
        event_id,
        Some(rel_type),
        Some(event_type),
        params,
    )
    .await
}

#[derive(Deserialize)]
struct ThreadsParams {
    include: Option<String>,
    from: Option<String>,
    limit: Option<String>,
}

async fn threads(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(params): Query<ThreadsParams>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let participated_only = match params.include.as_deref() {
        None | Some("all") => false,
        Some("participated") => true,
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "include must be all or participated, not {other:?}"
            )));
        }
    };
    let view = ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    };
    let page = state.threads_page(
        &room_id,
        view,
        participated_only,
        params.from.as_deref(),
        limit(params.limit.as_deref())?,
    )?;
    Ok(Json(page_json(page, None)))
}
