//! `PUT /_matrix/federation/v1/send/{txnId}`: transactions of PDUs and EDUs.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use serde_json::Value;

use super::Origin;
use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::Result;
use crate::service::federation::transactions::Transaction;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/send/{txn_id}", put(send))
}

async fn send(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path(txn_id): Path<String>,
    MatrixJson(txn): MatrixJson<Transaction>,
) -> Result<Json<Value>> {
    state
        .receive_transaction(&origin, &txn_id, txn)
        .await
        .map(Json)
}
