//! Joins, knocks and leaves of other servers' users: `make_join`, `send_join` (v2, and the
//! deprecated v1 that answers `[200, body]`), `make_knock`, `send_knock` (v1), `make_leave`
//! and `send_leave` (v2 and v1).

use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Origin;
use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/federation/v1/make_join/{room_id}/{user_id}",
            get(make_join),
        )
        .route(
            "/_matrix/federation/v2/send_join/{room_id}/{event_id}",
            put(send_join),
        )
        .route(
            "/_matrix/federation/v1/send_join/{room_id}/{event_id}",
            put(send_join_v1),
        )
        .route(
            "/_matrix/federation/v1/make_knock/{room_id}/{user_id}",
            get(make_knock),
        )
        .route(
            "/_matrix/federation/v1/send_knock/{room_id}/{event_id}",
            put(send_knock),
        )
        .route(
            "/_matrix/federation/v1/make_leave/{room_id}/{user_id}",
            get(make_leave),
        )
        .route(
            "/_matrix/federation/v2/send_leave/{room_id}/{event_id}",
            put(send_leave),
        )
        .route(
            "/_matrix/federation/v1/send_leave/{room_id}/{event_id}",
            put(send_leave_v1),
        )
}

/// `ver` may repeat: `?ver=10&ver=11`.
fn versions(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .filter(|(k, _)| k == "ver")
        .map(|(_, v)| v.clone())
        .collect()
}

fn ids<A, B>(a: &str, b: &str) -> Result<(A, B)>
where
    A: TryFrom<String>,
    B: TryFrom<String>,
{
    let a = A::try_from(a.to_owned())
        .map_err(|_| Error::invalid_param(format!("{a} is not a valid ID")))?;
    let b = B::try_from(b.to_owned())
        .map_err(|_| Error::invalid_param(format!("{b} is not a valid ID")))?;
    Ok((a, b))
}

async fn make_join(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, user_id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    make_versioned(&state, &origin, &room_id, &user_id, &query, "join")
}

async fn make_knock(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, user_id)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Json<Value>> {
    make_versioned(&state, &origin, &room_id, &user_id, &query, "knock")
}

/// `make_join` and `make_knock`, which name the room versions the asking server supports.
fn make_versioned(
    state: &AppState,
    origin: &ruma::ServerName,
    room_id: &str,
    user_id: &str,
    query: &[(String, String)],
    membership: &str,
) -> Result<Json<Value>> {
    let (room_id, user_id): (OwnedRoomId, OwnedUserId) = ids(room_id, user_id)?;
    // Without `ver`, the spec says the server supports only room version 1.
    let mut supported = versions(query);
    if supported.is_empty() {
        supported.push("1".to_owned());
    }
    let (version, event) =
        state.make_membership(&room_id, &user_id, origin, membership, &supported)?;
    Ok(Json(
        json!({ "room_version": version.as_str(), "event": event }),
    ))
}

async fn make_leave(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let (room_id, user_id): (OwnedRoomId, OwnedUserId) = ids(&room_id, &user_id)?;
    let (version, event) = state.make_membership(&room_id, &user_id, &origin, "leave", &[])?;
    Ok(Json(
        json!({ "room_version": version.as_str(), "event": event }),
    ))
}

#[derive(Deserialize)]
struct SendJoinQuery {
    /// The joining server takes a partial state: membership events left out.
    #[serde(default)]
    omit_members: bool,
}

async fn send_join(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, event_id)): Path<(String, String)>,
    Query(query): Query<SendJoinQuery>,
    MatrixJson(event): MatrixJson<Value>,
) -> Result<Json<Value>> {
    let (room_id, event_id): (OwnedRoomId, OwnedEventId) = ids(&room_id, &event_id)?;
    let answer = state
        .send_join(&room_id, &event_id, &origin, event, query.omit_members)
        .await?;
    let mut body = json!({
        "origin": state.server_name(),
        "state": answer.state,
        "auth_chain": answer.auth_chain,
        "members_omitted": answer.members_omitted,
        "servers_in_room": answer.servers_in_room,
    });
    if let Some(event) = answer.event {
        body["event"] = event;
    }
    Ok(Json(body))
}

/// The deprecated v1 form: the same join, the whole state, answered as `[200, body]`.
async fn send_join_v1(
    state: State<AppState>,
    origin: Origin,
    path: Path<(String, String)>,
    event: MatrixJson<Value>,
) -> Result<Json<Value>> {
    let query = Query(SendJoinQuery {
        omit_members: false,
    });
    let Json(body) = send_join(state, origin, path, query, event).await?;
    Ok(Json(json!([200, body])))
}

/// The deprecated v1 form, answered as `[200, {}]`.
async fn send_leave_v1(
    state: State<AppState>,
    origin: Origin,
    path: Path<(String, String)>,
    event: MatrixJson<Value>,
) -> Result<Json<Value>> {
    let Json(body) = send_leave(state, origin, path, event).await?;
    Ok(Json(json!([200, body])))
}

async fn send_leave(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, event_id)): Path<(String, String)>,
    MatrixJson(event): MatrixJson<Value>,
) -> Result<Json<Value>> {
    let (room_id, event_id): (OwnedRoomId, OwnedEventId) = ids(&room_id, &event_id)?;
    state
        .send_leave(&room_id, &event_id, &origin, event)
        .await?;
    Ok(Json(json!({})))
}

async fn send_knock(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path((room_id, event_id)): Path<(String, String)>,
    MatrixJson(event): MatrixJson<Value>,
) -> Result<Json<Value>> {
    let (room_id, event_id): (OwnedRoomId, OwnedEventId) = ids(&room_id, &event_id)?;
    let knock_room_state = state
        .send_knock(&room_id, &event_id, &origin, event)
        .await?;
    Ok(Json(json!({ "knock_room_state": knock_room_state })))
}
