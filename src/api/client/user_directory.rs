//! `POST /user_directory/search`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson};
use crate::error::{Error, Result};
use crate::service::user_directory::MAX_LIMIT;

/// The spec's default number of results.
const DEFAULT_LIMIT: usize = 10;

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/client/v3/user_directory/search", post(search))
}

async fn search(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let term = match body.get("search_term") {
        Some(Value::String(term)) => term,
        Some(_) => return Err(Error::bad_json("search_term must be a string")),
        None => return Err(Error::missing_param("search_term is required")),
    };
    let limit = match body.get("limit") {
        None => DEFAULT_LIMIT,
        Some(value) => match value.as_i64() {
            Some(n) if n >= 0 => (n as u64).min(MAX_LIMIT as u64) as usize,
            Some(_) => return Err(Error::invalid_param("limit must not be negative")),
            None => return Err(Error::bad_json("limit must be an integer")),
        },
    };
    let (results, limited) = state.search_users(&authed.user_id, term, limit)?;
    Ok(Json(json!({ "results": results, "limited": limited })))
}
