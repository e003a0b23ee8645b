//! `GET /_matrix/federation/v1/query/profile`: a local user's public profile.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Origin;
use crate::api::AppState;
use crate::api::extract::Query;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/query/profile", get(profile))
}

#[derive(Deserialize)]
struct ProfileQuery {
    user_id: String,
    field: Option<String>,
}

/// The whole profile, or only `field` (`{}` when it is unset, as the spec allows).
/// Users of other servers and unknown users get `M_NOT_FOUND`.
async fn profile(
    State(state): State<AppState>,
    Origin(_origin): Origin,
    Query(query): Query<ProfileQuery>,
) -> Result<Json<Map<String, Value>>> {
    let user_id: OwnedUserId = UserId::parse(&query.user_id)
        .map_err(|e| Error::invalid_param(format!("Invalid user ID {:?}: {e}", query.user_id)))?;
    if user_id.server_name() != state.server_name() {
        return Err(Error::not_found(format!(
            "{user_id} is not a user of this server"
        )));
    }
    let mut profile = state.profile(&user_id)?;
    if let Some(field) = &query.field {
        profile.retain(|key, _| key == field);
    }
    Ok(Json(profile))
}
