//! `GET /sync` and filters (`/user/{userId}/filter`).

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};

use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, ClientAddr, MatrixJson, Path};
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
#[derive(Debug, Default, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct SyncParams {
    pub since: Option<String>,
    pub filter: Option<String>,
    #[cfg_attr(test, serde(default))]
    pub full_state: Option<String>,
    pub set_presence: Option<String>,
    pub timeout: Option<String>,
}

/// Read straight from the query string rather than through serde (every long-poll passes
/// here), with the same result as [`Query`](crate::api::extract::Query): values
/// percent-decoded, unknown parameters ignored, a repeated one refused with
/// `M_INVALID_PARAM`.
impl<S: Send + Sync> FromRequestParts<S> for SyncParams {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        Self::parse(parts.uri.query().unwrap_or(""))
    }
}

impl SyncParams {
    pub fn parse(query: &str) -> Result<Self> {
        let mut params = SyncParams::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*key {
                "since" => &mut params.since,
                "filter" => &mut params.filter,
                "full_state" => &mut params.full_state,
                "set_presence" => &mut params.set_presence,
                "timeout" => &mut params.timeout,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Error::invalid_param(format!(
                    "Invalid query parameters: duplicate field `{key}`"
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok(params)
    }

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
    params: SyncParams,
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

#[cfg(test)]
mod tests {
    use super::SyncParams;

    /// The same parameters, or the same refusal, as reading the query through serde.
    #[test]
    fn queries_read_as_serde_reads_them() {
        for query in [
            "",
            "since=s1_2_3_4_5_6_7&timeout=30000",
            "timeout=30000&since=s1_2_3_4_5_6_7~i~IWE6eA&filter=%7B%22room%22%3A%7B%7D%7D",
            "filter={\"a\":1}&full_state=true&set_presence=offline&other=x&other=y",
            "filter=a+b%20c&since=&&timeout",
            "%73ince=x&full_state=%FF",
            "since=a&since=b",
            "timeout=1&t%69meout=2",
            "access_token=secret&since=x",
        ] {
            let ours = SyncParams::parse(query);
            let serde: Result<SyncParams, _> = serde_urlencoded::from_str(query);
            match (ours, serde) {
                (Ok(ours), Ok(serde)) => assert_eq!(ours, serde, "{query}"),
                (Err(ours), Err(serde)) => assert_eq!(
                    ours.message,
                    format!("Invalid query parameters: {serde}"),
                    "{query}"
                ),
                (ours, serde) => panic!("{query}: {ours:?} against {serde:?}"),
            }
        }
    }
}
