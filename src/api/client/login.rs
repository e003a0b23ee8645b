//! Login, token refresh and logout.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::{OwnedDeviceId, UserId};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, ClientAddr, MatrixJson};
use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::service::sessions::IssuedTokens;
use crate::service::users::identifier_user;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/login", get(login_flows).post(login))
        .route("/_matrix/client/v3/refresh", post(refresh))
        .route("/_matrix/client/v3/logout", post(logout))
        .route("/_matrix/client/v3/logout/all", post(logout_all))
}

/// Synapse's name for JWT login, which existing clients and tools send.
const JWT_LOGIN_TYPES: [&str; 2] = ["m.login.jwt", "org.matrix.login.jwt"];

async fn login_flows(State(state): State<AppState>) -> Json<Value> {
    let mut flows = vec![json!({ "type": "m.login.password" })];
    if state.config.jwt.enabled {
        flows.extend(JWT_LOGIN_TYPES.map(|t| json!({ "type": t })));
    }
    Json(json!({ "flows": flows }))
}

/// The body shared by login and registration responses.
pub fn session_response(state: &Services, user_id: &UserId, tokens: &IssuedTokens) -> Value {
    let mut body = json!({
        "user_id": user_id,
        "access_token": tokens.access_token,
        "device_id": tokens.device_id,
        "home_server": state.server_name(),
        "well_known": { "m.homeserver": { "base_url": state.config.public_baseurl() } },
    });
    if let (Some(refresh), Some(expires)) = (&tokens.refresh_token, tokens.expires_in_ms) {
        body["refresh_token"] = json!(refresh);
        body["expires_in_ms"] = json!(expires);
    }
    body
}

fn optional_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::bad_json(format!("'{key}' must be a string"))),
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let login_type =
        optional_str(&body, "type")?.ok_or_else(|| Error::missing_param("Missing login type"))?;
    let user_id = match login_type {
        "m.login.password" => {
            let user_id = identifier_user(&body, state.server_name())?;
            let password = optional_str(&body, "password")?
                .ok_or_else(|| Error::missing_param("Missing password"))?;
            state
                .check_password(&user_id, password, addr.as_deref())
                .await?;
            user_id
        }
        t if JWT_LOGIN_TYPES.contains(&t) => {
            let token = optional_str(&body, "token")?
                .ok_or_else(|| Error::missing_param("Missing token"))?;
            state.jwt_user(token).await?
        }
        other => {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!("Unknown login type {other}"),
            ));
        }
    };
    // After the credentials: a locked account gets no new tokens (spec, account locking).
    state.check_login_allowed(&user_id)?;
    let device_id = optional_str(&body, "device_id")?.map(|id| OwnedDeviceId::from(id.to_owned()));
    let display_name = optional_str(&body, "initial_device_display_name")?.map(str::to_owned);
    let refreshable = match body.get("refresh_token") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::bad_json("'refresh_token' must be a boolean")),
    };
    let known_device = match &device_id {
        Some(id) => state.store.device(user_id.as_str(), id.as_str())?.is_some(),
        None => false,
    };
    let tokens = state
        .sessions
        .open_session(&user_id, device_id, display_name, refreshable)
        .await?;
    // A new device is news for those who share a room with the user (their clients
    // will want its keys), as Synapse announces it.
    if !known_device {
        state.device_list_changed(&user_id, Some(tokens.device_id.as_str()), false)?;
    }
    tracing::info!(user_id = %user_id, device_id = %tokens.device_id, "logged in");
    Ok(Json(session_response(&state, &user_id, &tokens)))
}

#[derive(serde::Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<RefreshBody>,
) -> Result<Json<Value>> {
    let tokens = state.sessions.refresh(&body.refresh_token).await?;
    Ok(Json(json!({
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in_ms": tokens.expires_in_ms,
    })))
}

async fn logout(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    state
        .remove_devices(&authed.user_id, &[authed.device_id])
        .await?;
    Ok(Json(json!({})))
}

async fn logout_all(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    state.remove_all_devices(&authed.user_id, None).await?;
    Ok(Json(json!({})))
}
