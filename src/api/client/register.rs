//! Account registration.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::OwnedDeviceId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::login::session_response;
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::service::uia::{Requirement, Stage};
use crate::service::users::NewAccount;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/register", post(register))
        .route("/_matrix/client/v3/register/available", get(available))
        .route(
            "/_matrix/client/v1/register/m.login.registration_token/validity",
            get(token_validity),
        )
}

#[derive(Deserialize)]
struct RegisterQuery {
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    device_id: Option<OwnedDeviceId>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default)]
    refresh_token: bool,
    auth: Option<Map<String, Value>>,
}

fn registration_flows(state: &AppState) -> Vec<Vec<Stage>> {
    if !state.config.registration.tokens_required() {
        vec![vec![Stage::Dummy]]
    } else {
        vec![vec![Stage::RegistrationToken]]
    }
}

async fn register(
    State(state): State<AppState>,
    Query(query): Query<RegisterQuery>,
    MatrixJson(body): MatrixJson<RegisterBody>,
) -> Result<Json<Value>> {
    match query.kind.as_deref() {
        None | Some("user") => {}
        Some("guest") => {
            return Err(Error::new(
                ErrorKind::GuestAccessForbidden,
                "Guest access is not enabled on this server",
            ));
        }
        Some(other) => return Err(Error::invalid_param(format!("Unknown kind {other:?}"))),
    }
    if !state.config.registration.enabled {
        return Err(Error::forbidden("Registration is disabled on this server"));
    }
    // Problems with what was given are reported before authentication starts, so a
    // client learns of a taken name before the user works through any stage.
    if let Some(username) = &body.username {
        state.username_available(username)?;
    }
    if let Some(password) = &body.password {
        state.check_password_rules(password)?;
    }
    state
        .authenticate(
            Requirement {
                purpose: "register",
                flows: registration_flows(&state),
                user: None,
            },
            body.auth.as_ref(),
        )
        .await?;
    if body.password.is_none() {
        return Err(Error::missing_param("A password is required"));
    }
    // The flow is the token stage alone, so the request that completed it carries it.
    let registration_token = match state.config.registration.tokens_required() {
        true => Some(
            body.auth
                .as_ref()
                .and_then(|auth| auth.get("token"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing_param("Missing registration token"))?
                .to_owned(),
        ),
        false => None,
    };
    let (user_id, tokens) = state
        .create_account(NewAccount {
            localpart: body.username,
            password: body.password,
            device_id: body.device_id,
            device_display_name: body.initial_device_display_name,
            inhibit_login: body.inhibit_login,
            refreshable: body.refresh_token,
            admin: false,
            registration_token,
        })
        .await?;
    Ok(Json(match tokens {
        Some(tokens) => session_response(&state, &user_id, &tokens),
        None => json!({ "user_id": user_id, "home_server": state.server_name() }),
    }))
}

#[derive(Deserialize)]
struct AvailableQuery {
    username: String,
}

async fn available(
    State(state): State<AppState>,
    Query(query): Query<AvailableQuery>,
) -> Result<Json<Value>> {
    if !state.config.registration.enabled {
        return Err(Error::forbidden("Registration is disabled on this server"));
    }
    state.username_available(&query.username)?;
    Ok(Json(json!({ "available": true })))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn token_validity(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>> {
    if !state.config.registration.enabled || !state.config.registration.tokens_required() {
        return Err(Error::forbidden(
            "Registration tokens are not used on this server",
        ));
    }
    Ok(Json(
        json!({ "valid": state.registration_token_valid(&query.token)? }),
    ))
}
