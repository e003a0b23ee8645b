//! `GET /sync` and filters (`/user/{userId}/filter`).

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, ClientAddr, MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::open_syncs::SyncKind;
use crate::service::presence::PresenceState;
use crate::service::sync::{SyncRequest, SyncSince};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/sync", get(sync))
        .route(
            "/_matrix/client/v3/user/{user_id}/filter",
            post(create_filter),
        )
        .route(
            "/_matrix/client/v3/user/{user_id}/filter/{filter_id}",
            get(get_filter),
        )
}

/// The query of `/sync`, shared with the WebSocket endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct SyncParams {
    pub since: Option<String>,
    pub filter: Option<String>,
    #[serde(default)]
    pub full_state: Option<String>,
    pub set_presence: Option<String>,
    pub timeout: Option<String>,
}

impl SyncParams {
    pub fn to_request(&self, state: &AppState, user_id: &ruma::UserId) -> Result<SyncRequest> {
        let since = match self.since.as_deref() {
            None | Some("") => None,
            Some(token) => Some(SyncSince::parse(token).ok_or_else(|| {
                Error::invalid_param(format!("{token:?} is not a sync token from this server"))
            })?),
        };
        let full_state = match self.full_state.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::invalid_param(format!(
                    "full_state must be true or false, not {other:?}"
                )));
            }
        };
        let set_presence = match self.set_presence.as_deref() {
            None => PresenceState::Online,
            Some(text) => PresenceState::parse(text).ok_or_else(|| {
                Error::invalid_param(format!(
                    "set_presence must be online, unavailable or offline, not {text:?}"
                ))
            })?,
        };
        let timeout = match self.timeout.as_deref() {
            None | Some("") => Duration::ZERO,
            Some(text) => Duration::from_millis(text.parse::<u64>().map_err(|_| {
                Error::invalid_param(format!("timeout must be milliseconds, not {text:?}"))
            })?),
        };
        Ok(SyncRequest {
            since,
            filter: state.resolve_filter(user_id, self.filter.as_deref())?,
            full_state,
            set_presence,
            timeout,
        })
    }
}

async fn sync(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Auth(authed): Auth,
    Query(params): Query<SyncParams>,
) -> Result<Json<crate::service::sync::SyncResponse>> {
    // Held until the answer is ready, or until the client leaves (hyper then drops this
    // future, and the slot with it).
    let _slot = state
        .open_syncs
        .admit(SyncKind::LongPoll, &authed.user_id, addr.as_deref())?;
    let request = params.to_request(&state, &authed.user_id)?;
    Ok(Json(
        state
            .sync(&authed.user_id, &authed.device_id, &request)
            .await?,
    ))
}

fn check_own(authed_user: &ruma::UserId, user_id: &str) -> Result<()> {
    if authed_user.as_str() != user_id {
        return Err(Error::forbidden("Cannot use filters of other users"));
    }
    Ok(())
}

async fn create_filter(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(user_id): Path<String>,
    MatrixJson(definition): MatrixJson<Value>,
) -> Result<Json<Value>> {
    check_own(&authed.user_id, &user_id)?;
    let filter_id = state.create_filter(&authed.user_id, &definition)?;
    Ok(Json(json!({ "filter_id": filter_id })))
}

async fn get_filter(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((user_id, filter_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    check_own(&authed.user_id, &user_id)?;
    Ok(Json(state.filter_definition(&authed.user_id, &filter_id)?))
}
