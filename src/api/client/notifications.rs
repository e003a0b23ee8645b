//! `GET /notifications` and the pushers (`GET /pushers`, `POST /pushers/set`, and
//! MSC4174's `POST /pushers/ack` that activates a Web Push pusher).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Query};
use crate::error::{Error, Result};
use crate::service::notifications::NotificationsQuery;
use crate::service::pushers::{AckPusher, SetPusher};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/notifications", get(notifications))
        .route("/_matrix/client/v3/pushers", get(get_pushers))
        .route("/_matrix/client/v3/pushers/set", post(set_pusher))
        .route("/_matrix/client/v3/pushers/ack", post(ack_pusher))
        .route(
            "/_matrix/client/unstable/org.matrix.msc4174/pushers/ack",
            post(ack_pusher),
        )
}

#[derive(Deserialize)]
struct NotificationsParams {
    from: Option<String>,
    limit: Option<String>,
    only: Option<String>,
}

async fn notifications(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<NotificationsParams>,
) -> Result<Json<Value>> {
    let limit = match params.limit.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            Error::invalid_param(format!(
                "limit must be a non-negative integer, not {text:?}"
            ))
        })?),
    };
    let query = NotificationsQuery {
        from: params.from.as_deref(),
        limit,
        only: params.only.as_deref(),
    };
    Ok(Json(state.list_notifications(
        &authed.user_id,
        &authed.device_id,
        &query,
    )?))
}

async fn get_pushers(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    Ok(Json(state.get_pushers(&authed.user_id)?))
}

async fn set_pusher(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<SetPusher>,
) -> Result<(StatusCode, Json<Value>)> {
    let needs_activation = state.set_pusher(&authed.user_id, &authed.device_id, body)?;
    // MSC4174: "201: the pusher is set but needs to be activated".
    let status = if needs_activation {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({}))))
}

async fn ack_pusher(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<AckPusher>,
) -> Result<Json<Value>> {
    state.ack_pusher(&authed.user_id, body)?;
    Ok(Json(json!({})))
}
