//! Room history for other servers: `/backfill` and `/get_missing_events`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::api::federation::backfill::get_backfill;
use ruma::api::federation::event::get_missing_events;
use serde_json::{Value, json};

use super::Origin;
use super::respond::{blocking, transaction};
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::federation::history::MissingEventsQuery;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/backfill/{room_id}", get(backfill))
        .route(
            "/_matrix/federation/v1/get_missing_events/{room_id}",
            post(get_missing_events),
        )
}

fn count(value: ruma::UInt) -> usize {
    usize::try_from(u64::from(value)).unwrap_or(usize::MAX)
}

async fn backfill(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_backfill::v1::Request>,
) -> Result<Json<Value>> {
    if req.v.is_empty() {
        return Err(Error::missing_param(
            "Name the events to backfill from with v",
        ));
    }
    let limit = count(req.limit);
    let pdus = blocking(&state, move |s| {
        s.backfill_for_server(&req.room_id, &origin, &req.v, limit)
    })
    .await?;
    Ok(Json(transaction(&state, pdus)))
}

async fn get_missing_events(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_missing_events::v1::Request>,
) -> Result<Json<Value>> {
    let events = blocking(&state, move |s| {
        let query = MissingEventsQuery {
            earliest_events: &req.earliest_events,
            latest_events: &req.latest_events,
            limit: count(req.limit),
            min_depth: u64::from(req.min_depth),
        };
        s.missing_events_for_server(&req.room_id, &origin, &query)
    })
    .await?;
    Ok(Json(json!({ "events": events })))
}
