//! whoami, password change and deactivation.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson};
use crate::error::Result;
use crate::service::uia::{Requirement, Stage};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/account/whoami", get(whoami))
        .route("/_matrix/client/v3/account/password", post(change_password))
        .route("/_matrix/client/v3/account/deactivate", post(deactivate))
}

/// Sensitive account changes ask for the user's current password again.
pub fn password_requirement(purpose: &'static str, user: &ruma::UserId) -> Requirement {
    Requirement {
        purpose,
        flows: vec![vec![Stage::Password]],
        user: Some(user.to_owned()),
        target: None,
    }
}

async fn whoami(Auth(authed): Auth) -> Json<Value> {
    Json(json!({
        "user_id": authed.user_id,
        "device_id": authed.device_id,
        "is_guest": authed.is_guest,
    }))
}

#[derive(Deserialize)]
struct PasswordBody {
    new_password: String,
    #[serde(default = "default_true")]
    logout_devices: bool,
    auth: Option<Map<String, Value>>,
}

fn default_true() -> bool {
    true
}

async fn change_password(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<PasswordBody>,
) -> Result<Json<Value>> {
    state.check_password_rules(&body.new_password)?;
    state
        .authenticate(
            password_requirement("change_password", &authed.user_id),
            body.auth.as_ref(),
        )
        .await?;
    state
        .change_password(&authed.user_id, body.new_password)
        .await?;
    if body.logout_devices {
        state
            .remove_all_devices(&authed.user_id, Some(&authed.device_id))
            .await?;
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeactivateBody {
    auth: Option<Map<String, Value>>,
}

async fn deactivate(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DeactivateBody>,
) -> Result<Json<Value>> {
    state
        .authenticate(
            password_requirement("deactivate", &authed.user_id),
            body.auth.as_ref(),
        )
        .await?;
    state.deactivate(&authed.user_id, true).await?;
    // Hearth binds no third-party identifiers, so there is nothing to unbind.
    Ok(Json(json!({ "id_server_unbind_result": "no-support" })))
}
