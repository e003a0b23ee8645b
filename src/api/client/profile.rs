//! Profiles: `GET /profile/{userId}` and `GET|PUT|DELETE /profile/{userId}/{keyName}`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, MaybeAuth, Path};
use crate::error::{Error, Result};
use crate::service::profile::check_field_name;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/profile/{user_id}", get(whole_profile))
        .route(
            "/_matrix/client/v3/profile/{user_id}/{key_name}",
            get(get_field).put(put_field).delete(delete_field),
        )
}

fn parse_user_id(text: &str) -> Result<OwnedUserId> {
    UserId::parse(text).map_err(|e| Error::invalid_param(format!("Invalid user ID {text:?}: {e}")))
}

/// Profiles are public, as in the spec and Synapse's default; a token, if sent, is checked.
/// A user of another server is looked up on that server over federation.
async fn whole_profile(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id)?;
    if user_id.server_name() != state.server_name() {
        let profile = state.federation.remote_profile(&user_id, None).await?;
        return Ok(Json(Value::Object(profile)));
    }
    Ok(Json(Value::Object(state.profile(&user_id)?)))
}

async fn get_field(
    State(state): State<AppState>,
    MaybeAuth(_): MaybeAuth,
    Path((user_id, key_name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id)?;
    if user_id.server_name() != state.server_name() {
        check_field_name(&key_name)?;
        let profile = state
            .federation
            .remote_profile(&user_id, Some(&key_name))
            .await?;
        return Ok(Json(Value::Object(profile)));
    }
    let value = state.profile_field(&user_id, &key_name)?;
    Ok(Json(json!({ key_name: value })))
}

async fn put_field(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, key_name)): Path<(String, String)>,
    MatrixJson(mut body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id)?;
    state.refuse_if_suspended(&authed.user_id)?;
    let value = body.remove(&key_name).ok_or_else(|| {
        Error::missing_param(format!(
            "The body must hold the field being set, as {{\"{key_name}\": ...}}"
        ))
    })?;
    // Spawned so that a client hanging up mid-way does not stop the new name from
    // reaching every room.
    let task_state = state.clone();
    tokio::spawn(async move {
        task_state
            .set_profile_field(&authed.user_id, &user_id, &key_name, value)
            .await
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(json!({})))
}

async fn delete_field(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, key_name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id)?;
    state.refuse_if_suspended(&authed.user_id)?;
    let task_state = state.clone();
    tokio::spawn(async move {
        task_state
            .delete_profile_field(&authed.user_id, &user_id, &key_name)
            .await
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(json!({})))
}
