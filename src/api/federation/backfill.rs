//! Room history for other servers: `/backfill` and `/get_missing_events`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::api::federation::backfill::get_backfill;
use ruma::{OwnedEventId, OwnedRoomId, UInt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Origin;
use super::respond::{blocking, transaction};
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path};
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

/// The body of `/get_missing_events`. Typed here rather than with ruma's request type,
/// which requires `earliest_events` and `latest_events`: Synapse takes both as empty when
/// absent (and SyTest's ACL test sends `{}`), so Hearth does too.
#[derive(Deserialize)]
struct MissingEventsBody {
    #[serde(default)]
    earliest_events: Vec<OwnedEventId>,
    #[serde(default)]
    latest_events: Vec<OwnedEventId>,
    #[serde(default = "default_missing_limit")]
    limit: UInt,
    #[serde(default)]
    min_depth: UInt,
}

fn default_missing_limit() -> UInt {
    UInt::from(10u32)
}

async fn get_missing_events(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path(room_id): Path<OwnedRoomId>,
    MatrixJson(req): MatrixJson<MissingEventsBody>,
) -> Result<Json<Value>> {
    let events = blocking(&state, move |s| {
        let query = MissingEventsQuery {
            earliest_events: &req.earliest_events,
            latest_events: &req.latest_events,
            limit: count(req.limit),
            min_depth: u64::from(req.min_depth),
        };
        s.missing_events_for_server(&room_id, &origin, &query)
    })
    .await?;
    Ok(Json(json!({ "events": events })))
}
