//! Federation destinations at Synapse's paths: the servers this one sends to, with
//! their backoff state, and resetting a destination's backoff.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use ruma::{OwnedServerName, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::parse_from;
use super::{Admin, Entry, next_token};
use crate::api::AppState;
use crate::api::extract::{Path, Query};
use crate::error::{Error, Result};
use crate::service::federation::sender::RetryState;

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::GET,
            "/_synapse/admin/v1/federation/destinations",
            get(list),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/federation/destinations/{destination}",
            get(show),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/federation/destinations/{destination}/reset_connection",
            post(reset_connection),
        ),
    ]
}

fn destination_json(name: &OwnedServerName, retry: &RetryState) -> Value {
    json!({
        "destination": name,
        "retry_last_ts": retry.retry_last_ts,
        "retry_interval": retry.retry_interval,
        "failure_ts": retry.failure_ts,
        "last_successful_stream_ordering": retry.last_successful_stream_ordering,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    limit: Option<usize>,
    /// A substring of the server name.
    destination: Option<String>,
    /// `destination` (default), `retry_last_ts`, `retry_interval`, `failure_ts` or
    /// `last_successful_stream_ordering`.
    order_by: Option<String>,
    dir: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let mut destinations = state.sender.destinations();
    if let Some(term) = &query.destination {
        let term = term.to_lowercase();
        destinations.retain(|(name, _)| name.as_str().to_lowercase().contains(&term));
    }
    match query.order_by.as_deref() {
        None | Some("destination") => {}
        Some("retry_last_ts") => destinations.sort_by_key(|(_, r)| r.retry_last_ts),
        Some("retry_interval") => destinations.sort_by_key(|(_, r)| r.retry_interval),
        Some("failure_ts") => destinations.sort_by_key(|(_, r)| r.failure_ts),
        Some("last_successful_stream_ordering") => {
            destinations.sort_by_key(|(_, r)| r.last_successful_stream_ordering)
        }
        Some(other) => return Err(Error::invalid_param(format!("Unknown order_by {other}"))),
    }
    match query.dir.as_deref() {
        None | Some("f") => {}
        Some("b") => destinations.reverse(),
        Some(_) => return Err(Error::invalid_param("dir must be f or b")),
    }
    let total = destinations.len();
    let page: Vec<Value> = destinations
        .iter()
        .skip(from)
        .take(limit)
        .map(|(name, retry)| destination_json(name, retry))
        .collect();
    let mut answer = json!({ "destinations": page, "total": total });
    if let Some(next) = next_token(from, page.len(), total) {
        answer["next_token"] = json!(next);
    }
    Ok(Json(answer))
}

fn find(state: &AppState, destination: &str) -> Result<(OwnedServerName, RetryState)> {
    let name = ServerName::parse(destination)
        .map_err(|_| Error::invalid_param(format!("Invalid server name {destination}")))?;
    state
        .sender
        .destinations()
        .into_iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| Error::not_found("Unknown destination"))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(destination): Path<String>,
) -> Result<Json<Value>> {
    let (name, retry) = find(&state, &destination)?;
    Ok(Json(destination_json(&name, &retry)))
}

async fn reset_connection(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(destination): Path<String>,
) -> Result<Json<Value>> {
    let (name, _) = find(&state, &destination)?;
    if !state.sender.reset_connection(&name) {
        return Err(Error::not_found("Unknown destination"));
    }
    state.audit(
        &admin.user_id,
        "federation.reset_connection",
        name.as_str(),
        None,
    )?;
    Ok(Json(json!({})))
}
