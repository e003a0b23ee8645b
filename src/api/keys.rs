//! `/_matrix/key/v2/server`: the server's published signing key.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::AppState;
use crate::error::{Error, Result};
use crate::service::now_ms;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/key/v2/server", get(server_keys))
}

async fn server_keys(State(state): State<AppState>) -> Result<Json<Value>> {
    state
        .keys
        .server_keys_response(now_ms())
        .map(Json)
        .map_err(Error::internal)
}
