//! The legacy `GET /events` stream (and its room-preview form with `room_id`) and
//! `GET /events/{eventId}`.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::api::AppState;
use crate::api::client::rooms::parse_room_id;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, ErrorKind, Result};
use crate::service::event_stream::{DEFAULT_LIMIT, EventsRequest, MAX_LIMIT};
use crate::service::rooms::ClientView;
use crate::service::sync::SyncToken;

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for version in ["v3", "r0"] {
        router = router
            .route(&format!("/_matrix/client/{version}/events"), get(events))
            .route(
                &format!("/_matrix/client/{version}/events/{{event_id}}"),
                get(event),
            );
    }
    router
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    from: Option<String>,
    timeout: Option<String>,
    room_id: Option<String>,
    limit: Option<String>,
}

impl Params {
    fn to_request(&self) -> Result<EventsRequest> {
        let from = match self.from.as_deref() {
            None | Some("") => None,
            Some(token) => Some(SyncToken::parse(token).ok_or_else(|| {
                Error::invalid_param(format!("{token:?} is not a stream token from this server"))
            })?),
        };
        let timeout = match self.timeout.as_deref() {
            None | Some("") => Duration::ZERO,
            Some(text) => Duration::from_millis(text.parse::<u64>().map_err(|_| {
                Error::invalid_param(format!("timeout must be milliseconds, not {text:?}"))
            })?),
        };
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n > 0 => n.min(MAX_LIMIT),
                _ => {
                    return Err(Error::invalid_param(format!(
                        "limit must be a positive whole number, not {text:?}"
                    )));
                }
            },
        };
        let room_id = self.room_id.as_deref().map(parse_room_id).transpose()?;
        Ok(EventsRequest {
            from,
            timeout,
            room_id,
            limit,
        })
    }
}

async fn events(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<Params>,
) -> Result<Json<Value>> {
    let request = params.to_request()?;
    Ok(Json(
        state
            .event_stream(
                &authed.user_id,
                &authed.device_id,
                authed.is_guest,
                &request,
            )
            .await?,
    ))
}

/// One event of any room, if the user may see it (404 otherwise, as for unknown events).
async fn event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(event_id): Path<String>,
) -> Result<Json<Value>> {
    let not_found = || Error::not_found("Event not found");
    let record = state.store.event(&event_id)?.ok_or_else(not_found)?;
    let view = ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    };
    let mut reader = match state.history_reader(&record.room_id, view) {
        Err(e) if e.kind == ErrorKind::Forbidden => return Err(not_found()),
        other => other?,
    };
    let (_, event) = reader.event(&event_id)?.ok_or_else(not_found)?;
    Ok(Json(event))
}
