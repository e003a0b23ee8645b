//! `PUT /sendToDevice/{eventType}/{txnId}`.

use axum::extract::State;
use axum::routing::put;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::e2ee::Messages;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/client/v3/sendToDevice/{event_type}/{txn_id}",
        put(send),
    )
}

#[derive(Deserialize)]
struct Body {
    messages: Messages,
}

async fn send(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((event_type, txn_id)): Path<(String, String)>,
    MatrixJson(body): MatrixJson<Body>,
) -> Result<Json<Value>> {
    if event_type.is_empty() || txn_id.is_empty() {
        return Err(Error::invalid_param(
            "eventType and txnId must not be empty",
        ));
    }
    state
        .send_to_device(
            &authed.user_id,
            &authed.device_id,
            &event_type,
            &txn_id,
            body.messages,
        )
        .await?;
    Ok(Json(json!({})))
}
