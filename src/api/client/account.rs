//! whoami, password change and deactivation.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, MaybeAuth};
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

/// With an access token the current password is asked for; without one this is a
/// password reset, authorised by an email address validated through
/// `/account/password/email/requestToken` (the `m.login.email.identity` stage).
async fn change_password(
    State(state): State<AppState>,
    MaybeAuth(authed): MaybeAuth,
    MatrixJson(body): MatrixJson<PasswordBody>,
) -> Result<Json<Value>> {
    let Some(authed) = authed else {
        return reset_password(state, body).await;
    };
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

async fn reset_password(state: AppState, body: PasswordBody) -> Result<Json<Value>> {
    state.email.require_enabled()?;
    state.check_password_rules(&body.new_password)?;
    state
        .authenticate(
            Requirement {
                purpose: "reset_password",
                flows: vec![vec![Stage::EmailIdentity]],
                user: None,
                target: None,
            },
            body.auth.as_ref(),
        )
        .await?;
    let auth = body
        .auth
        .as_ref()
        .ok_or_else(|| crate::error::Error::missing_param("Missing auth"))?;
    let user = state.email_identity_user(auth)?;
    let user_id = ruma::UserId::parse(user.as_str()).map_err(crate::error::Error::internal)?;
    state.change_password(&user_id, body.new_password).await?;
    state.consume_email_session(auth)?;
    if body.logout_devices {
        state.remove_all_devices(&user_id, None).await?;
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeactivateBody {
    auth: Option<Map<String, Value>>,
    /// Erasure: the account's events are shown redacted to those who were not in the
    /// room when they were sent.
    #[serde(default)]
    erase: bool,
    /// Where to unbind the account's 3PIDs; else wherever this server bound them.
    id_server: Option<String>,
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
    // The 3PIDs this server bound go first, as Synapse does.
    let unbound = state
        .unbind_all_threepids(&authed.user_id, body.id_server.as_deref())
        .await;
    state.deactivate(&authed.user_id, true).await?;
    if body.erase {
        state.mark_erased(&authed.user_id).await?;
    }
    Ok(Json(json!({
        "id_server_unbind_result": crate::service::identity::bind::unbind_result(unbound),
    })))
}
