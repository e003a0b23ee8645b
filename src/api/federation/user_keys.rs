//! Local users' keys for other servers: `POST /user/keys/query` and `/user/keys/claim`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::{OwnedDeviceId, OwnedUserId};
use serde::Deserialize;
use serde_json::Value;

use super::Origin;
use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/user/keys/query", post(query))
        .route("/_matrix/federation/v1/user/keys/claim", post(claim))
}

#[derive(Deserialize)]
struct QueryBody {
    device_keys: BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
}

async fn query(
    State(state): State<AppState>,
    Origin(_): Origin,
    MatrixJson(body): MatrixJson<QueryBody>,
) -> Result<Json<Value>> {
    Ok(Json(state.serve_keys_query(&body.device_keys)?))
}

#[derive(Deserialize)]
struct ClaimBody {
    one_time_keys: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>>,
}

async fn claim(
    State(state): State<AppState>,
    Origin(_): Origin,
    MatrixJson(body): MatrixJson<ClaimBody>,
) -> Result<Json<Value>> {
    Ok(Json(state.serve_keys_claim(&body.one_time_keys).await?))
}
