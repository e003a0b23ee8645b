//! Account registration.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::OwnedDeviceId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::login::session_response;
use crate::api::AppState;
use crate::api::extract::{ClientAddr, MatrixJson, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::service::ratelimit::Family;
use crate::service::uia::{REGISTER, Requirement, Stage};
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
    /// A guest's access token: the registration upgrades that guest to a full account.
    guest_access_token: Option<String>,
}

/// What `register?kind=guest` reads of the body (Synapse ignores the rest).
#[derive(Deserialize)]
struct GuestBody {
    initial_device_display_name: Option<String>,
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
    ClientAddr(addr): ClientAddr,
    Query(query): Query<RegisterQuery>,
    MatrixJson(mut raw): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    match query.kind.as_deref() {
        None | Some("user") => {}
        Some("guest") => return register_guest(&state, addr, raw).await,
        Some(other) => return Err(Error::invalid_param(format!("Unknown kind {other:?}"))),
    }
    if !state.config.registration.enabled {
        return Err(Error::forbidden("Registration is disabled on this server"));
    }
    let auth = match raw.remove("auth") {
        Some(Value::Object(auth)) => Some(auth),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Error::bad_json("auth must be an object")),
    };
    let requirement = Requirement {
        purpose: REGISTER,
        flows: registration_flows(&state),
        user: None,
        target: None,
    };
    // Problems with what was given are reported before authentication starts, so a
    // client learns of a taken name before the user works through any stage.
    // (A retry of a session that registered its account already has nothing to check.)
    let early: RegisterBody = parse_body(raw.clone())?;
    let upgrading = match &early.guest_access_token {
        Some(token) => Some(upgraded_guest(&state, token, early.username.as_deref()).await?),
        None => None,
    };
    if state.registered_by_session(auth.as_ref()).is_none() {
        if let Some(username) = early.username.as_ref().filter(|_| upgrading.is_none()) {
            // As Synapse: numbers are the names of guests.
            if !username.is_empty() && username.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::new(
                    ErrorKind::InvalidUsername,
                    "Numeric user IDs are reserved for guest users",
                ));
            }
            state.username_available(&username.to_lowercase())?;
        }
        if let Some(password) = &early.password {
            state.check_password_rules(password)?;
        }
    }
    // Later requests of a session may leave out what the first one gave.
    let (params, registered) = state.registration_params(&requirement, auth.as_ref(), raw)?;
    let body: RegisterBody = parse_body(params)?;
    // The session may carry the guest's token from its first request.
    let upgrading = match (upgrading, &body.guest_access_token) {
        (None, Some(token)) => Some(upgraded_guest(&state, token, body.username.as_deref()).await?),
        (upgrading, _) => upgrading,
    };
    state.authenticate(requirement, auth.as_ref()).await?;
    if let Some(user_id) = registered {
        // The session registered an account already: a retry gets that account.
        if body.inhibit_login {
            return Ok(Json(
                json!({ "user_id": user_id, "home_server": state.server_name() }),
            ));
        }
        let tokens = state
            .sessions
            .open_session(
                &user_id,
                body.device_id,
                body.initial_device_display_name,
                body.refresh_token,
            )
            .await?;
        return Ok(Json(session_response(&state, &user_id, &tokens)));
    }
    let Some(password) = body.password else {
        return Err(Error::missing_param("A password is required"));
    };
    if let Some(guest) = upgrading {
        let tokens = state
            .upgrade_guest(
                &guest,
                password,
                body.device_id,
                body.initial_device_display_name,
                body.refresh_token,
            )
            .await?;
        state.registration_done(auth.as_ref(), &guest);
        return Ok(Json(session_response(&state, &guest, &tokens)));
    }
    // Counted only when an account is about to be made, not for each UIA round trip.
    if let Some(addr) = &addr {
        state.limits.take(Family::Registrations, addr)?;
    }
    // The flow is the token stage alone, so the request that completed it carries it.
    let registration_token = match state.config.registration.tokens_required() {
        true => Some(
            auth.as_ref()
                .and_then(|auth| auth.get("token"))
                .and_then(Value::as_str)
                .ok_or_else(|| Error::missing_param("Missing registration token"))?
                .to_owned(),
        ),
        false => None,
    };
    let (user_id, tokens) = state
        .create_account(NewAccount {
            // User names are lower-cased, as Synapse does: `Alice` registers `@alice`.
            localpart: body.username.map(|u| u.to_lowercase()),
            password: Some(password),
            device_id: body.device_id,
            device_display_name: body.initial_device_display_name,
            inhibit_login: body.inhibit_login,
            refreshable: body.refresh_token,
            admin: false,
            registration_token,
            guest: false,
        })
        .await?;
    state.registration_done(auth.as_ref(), &user_id);
    Ok(Json(match tokens {
        Some(tokens) => session_response(&state, &user_id, &tokens),
        None => json!({ "user_id": user_id, "home_server": state.server_name() }),
    }))
}

/// `register?kind=guest`: a guest account with a numeric name and no password, when
/// `registration.allow_guest_access` is on (whether or not ordinary registration is).
async fn register_guest(
    state: &AppState,
    addr: Option<String>,
    raw: Map<String, Value>,
) -> Result<Json<Value>> {
    if !state.config.registration.allow_guest_access {
        return Err(Error::new(
            ErrorKind::GuestAccessForbidden,
            "Guest access is not enabled on this server",
        ));
    }
    let body: GuestBody = serde_json::from_value(Value::Object(raw))
        .map_err(|e| Error::bad_json(format!("Invalid registration request: {e}")))?;
    if let Some(addr) = &addr {
        state.limits.take(Family::Registrations, addr)?;
    }
    let (user_id, tokens) = state
        .create_account(NewAccount {
            localpart: None,
            password: None,
            device_id: None,
            device_display_name: body.initial_device_display_name,
            inhibit_login: false,
            refreshable: false,
            admin: false,
            registration_token: None,
            guest: true,
        })
        .await?;
    let tokens = tokens.ok_or_else(|| Error::internal("guest registered without a session"))?;
    Ok(Json(session_response(state, &user_id, &tokens)))
}

/// The guest whose access token a registration carries, which it upgrades. The name
/// asked for must be that guest's (403 otherwise, as Synapse).
async fn upgraded_guest(
    state: &AppState,
    token: &str,
    username: Option<&str>,
) -> Result<ruma::OwnedUserId> {
    let authed = state.sessions.authenticate(token, None).await?;
    if !authed.is_guest {
        return Err(Error::forbidden("guest_access_token is not a guest's"));
    }
    match username {
        Some(name) if name == authed.user_id.localpart() => Ok(authed.user_id),
        Some(_) => Err(Error::forbidden(
            "Cannot register taken user ID without valid guest credentials for that user",
        )),
        None => Err(Error::missing_param(
            "username must be the guest's own localpart to upgrade it",
        )),
    }
}

fn parse_body(params: Map<String, Value>) -> Result<RegisterBody> {
    serde_json::from_value(Value::Object(params))
        .map_err(|e| Error::bad_json(format!("Invalid registration request: {e}")))
}

#[derive(Deserialize)]
struct AvailableQuery {
    username: String,
}

async fn available(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Query(query): Query<AvailableQuery>,
) -> Result<Json<Value>> {
    if !state.config.registration.enabled {
        return Err(Error::forbidden("Registration is disabled on this server"));
    }
    // Every question counts, taken or not, so names cannot be tried in bulk.
    if let Some(addr) = &addr {
        state.limits.take(Family::Availability, addr)?;
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
    ClientAddr(addr): ClientAddr,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>> {
    if !state.config.registration.enabled || !state.config.registration.tokens_required() {
        return Err(Error::forbidden(
            "Registration tokens are not used on this server",
        ));
    }
    // Every question counts, valid or not, so tokens cannot be guessed in bulk.
    if let Some(addr) = &addr {
        state.limits.take(Family::TokenValidity, addr)?;
    }
    Ok(Json(
        json!({ "valid": state.registration_token_valid(&query.token)? }),
    ))
}
