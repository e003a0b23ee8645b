//! `GET`/`PUT /presence/{userId}/status`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::UserId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::presence::PresenceState;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/client/v3/presence/{user_id}/status",
        get(get_status).put(put_status),
    )
}

fn parse_user(text: &str) -> Result<ruma::OwnedUserId> {
    UserId::parse(text).map_err(|e| Error::invalid_param(format!("Invalid user ID {text:?}: {e}")))
}

async fn get_status(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user(&user_id)?;
    Ok(Json(state.get_presence(&authed.user_id, &user_id)?))
}

#[derive(Deserialize)]
struct StatusBody {
    presence: String,
    status_msg: Option<String>,
}

async fn put_status(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<StatusBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user(&user_id)?;
    if user_id != authed.user_id {
        return Err(Error::forbidden("You can only set your own presence"));
    }
    let presence = PresenceState::parse(&body.presence).ok_or_else(|| {
        Error::invalid_param(format!(
            "presence must be online, unavailable or offline, not {:?}",
            body.presence
        ))
    })?;
    state.set_presence(&authed.user_id, presence, body.status_msg)?;
    Ok(Json(json!({})))
}
