//! `GET /_matrix/federation/v1/version`, the one federation endpoint without a signature.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/version", get(version))
}

async fn version() -> Json<Value> {
    Json(json!({ "server": { "name": "Hearth", "version": env!("CARGO_PKG_VERSION") } }))
}
