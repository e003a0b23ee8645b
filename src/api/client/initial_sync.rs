//! The legacy `GET /initialSync` and `GET /rooms/{roomId}/initialSync`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::api::AppState;
use crate::api::client::rooms::parse_room_id;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::sync::{INITIAL_SYNC_DEFAULT_LIMIT, INITIAL_SYNC_MAX_LIMIT};

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for version in ["v3", "r0"] {
        router = router
            .route(
                &format!("/_matrix/client/{version}/initialSync"),
                get(initial_sync),
            )
            .route(
                &format!("/_matrix/client/{version}/rooms/{{room_id}}/initialSync"),
                get(room_initial_sync),
            );
    }
    router
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    limit: Option<String>,
    archived: Option<String>,
}

impl Params {
    fn limit(&self) -> Result<usize> {
        match self.limit.as_deref() {
            None | Some("") => Ok(INITIAL_SYNC_DEFAULT_LIMIT),
            Some(text) => text
                .parse::<usize>()
                .map(|n| n.min(INITIAL_SYNC_MAX_LIMIT))
                .map_err(|_| {
                    Error::invalid_param(format!("limit must be a whole number, not {text:?}"))
                }),
        }
    }

    fn archived(&self) -> Result<bool> {
        match self.archived.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(Error::invalid_param(format!(
                "archived must be true or false, not {other:?}"
            ))),
        }
    }
}

async fn initial_sync(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<Params>,
) -> Result<Json<Value>> {
    let (limit, archived) = (params.limit()?, params.archived()?);
    Ok(Json(state.initial_sync(
        &authed.user_id,
        &authed.device_id,
        limit,
        archived,
    )?))
}

async fn room_initial_sync(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let limit = params.limit()?;
    Ok(Json(state.room_initial_sync(
        &authed.user_id,
        &authed.device_id,
        &room_id,
        limit,
    )?))
}
