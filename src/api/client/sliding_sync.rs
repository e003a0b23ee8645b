//! `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`: simplified
//! sliding sync (MSC4186). See `spec/sliding-sync.md`.

use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Query};
use crate::error::{Error, Result};
use crate::service::presence::PresenceState;
use crate::service::sliding_sync::{Body, SlidingAnswer, SlidingSyncRequest};

pub const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

/// The name `/versions` advertises in `unstable_features`.
pub const UNSTABLE_FEATURE: &str = "org.matrix.simplified_msc3575";

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(sliding_sync))
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    pos: Option<String>,
    timeout: Option<String>,
    set_presence: Option<String>,
}

async fn sliding_sync(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<Params>,
    MatrixJson(body): MatrixJson<Body>,
) -> Result<Json<SlidingAnswer>> {
    let timeout = match params.timeout.as_deref() {
        None | Some("") => Duration::ZERO,
        Some(text) => Duration::from_millis(text.parse::<u64>().map_err(|_| {
            Error::invalid_param(format!("timeout must be milliseconds, not {text:?}"))
        })?),
    };
    let set_presence = match params.set_presence.as_deref() {
        None => PresenceState::Online,
        Some(text) => PresenceState::parse(text).ok_or_else(|| {
            Error::invalid_param(format!(
                "set_presence must be online, unavailable or offline, not {text:?}"
            ))
        })?,
    };
    let request = SlidingSyncRequest {
        pos: params.pos,
        timeout,
        set_presence,
        body,
    };
    Ok(Json(
        state
            .sliding_sync(&authed.user_id, &authed.device_id, request)
            .await?,
    ))
}
