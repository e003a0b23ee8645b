//! Shared-secret registration at Synapse's path, so its tooling works unchanged.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::Result;
use crate::service::shared_secret::SharedSecretRequest;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_synapse/admin/v1/register", get(nonce).post(register))
}

async fn nonce(State(state): State<AppState>) -> Result<Json<Value>> {
    state.shared_secret_enabled()?;
    Ok(Json(json!({ "nonce": state.nonces.issue() })))
}

#[derive(Deserialize)]
struct RegisterBody {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    mac: String,
}

async fn register(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<RegisterBody>,
) -> Result<Json<Value>> {
    let (user_id, tokens) = state
        .register_with_shared_secret(SharedSecretRequest {
            nonce: body.nonce,
            username: body.username,
            password: body.password,
            admin: body.admin,
            mac: body.mac,
        })
        .await?;
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": tokens.access_token,
        "device_id": tokens.device_id,
        "home_server": state.server_name(),
    })))
}
