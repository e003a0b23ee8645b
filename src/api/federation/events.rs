//! Events and state for other servers: `/event`, `/state`, `/state_ids`,
//! `/event_auth` and `/timestamp_to_event`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::api::Direction as RumaDirection;
use ruma::api::federation::authorization::get_event_authorization;
use ruma::api::federation::event::{
    get_event, get_event_by_timestamp, get_room_state, get_room_state_ids,
};
use serde_json::{Value, json};

use super::Origin;
use super::respond::{blocking, transaction};
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::error::Result;
use crate::store::Direction;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/federation/v1/event/{event_id}", get(event))
        .route("/_matrix/federation/v1/state/{room_id}", get(room_state))
        .route(
            "/_matrix/federation/v1/state_ids/{room_id}",
            get(room_state_ids),
        )
        .route(
            "/_matrix/federation/v1/event_auth/{room_id}/{event_id}",
            get(event_auth),
        )
        .route(
            "/_matrix/federation/v1/timestamp_to_event/{room_id}",
            get(timestamp_to_event),
        )
}

async fn event(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_event::v1::Request>,
) -> Result<Json<Value>> {
    let pdu = state.event_for_server(&req.event_id, &origin)?;
    Ok(Json(transaction(&state, vec![pdu])))
}

async fn room_state(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_room_state::v1::Request>,
) -> Result<Json<Value>> {
    let at = blocking(&state, move |s| {
        s.state_for_server(&req.room_id, &req.event_id, &origin)
    })
    .await?;
    Ok(Json(
        json!({ "pdus": at.pdus, "auth_chain": at.auth_chain }),
    ))
}

async fn room_state_ids(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_room_state_ids::v1::Request>,
) -> Result<Json<Value>> {
    let at = blocking(&state, move |s| {
        s.state_ids_for_server(&req.room_id, &req.event_id, &origin)
    })
    .await?;
    Ok(Json(
        json!({ "pdu_ids": at.pdu_ids, "auth_chain_ids": at.auth_chain_ids }),
    ))
}

async fn event_auth(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_event_authorization::v1::Request>,
) -> Result<Json<Value>> {
    let auth_chain = blocking(&state, move |s| {
        s.event_auth_for_server(&req.room_id, &req.event_id, &origin)
    })
    .await?;
    Ok(Json(json!({ "auth_chain": auth_chain })))
}

async fn timestamp_to_event(
    State(state): State<AppState>,
    Origin(origin): Origin,
    RumaRequest(req): RumaRequest<get_event_by_timestamp::v1::Request>,
) -> Result<Json<Value>> {
    let dir = match req.dir {
        RumaDirection::Forward => Direction::Forward,
        RumaDirection::Backward => Direction::Backward,
    };
    let ts = u64::from(req.ts.get());
    let (event_id, origin_server_ts) = blocking(&state, move |s| {
        s.timestamp_event_for_server(&req.room_id, &origin, ts, dir)
    })
    .await?;
    Ok(Json(
        json!({ "event_id": event_id, "origin_server_ts": origin_server_ts }),
    ))
}
