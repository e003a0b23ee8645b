//! Rooms, at Synapse's paths: list and search, details, members, state, and deletion
//! (v1 answers when done; v2 answers at once with a `delete_id` whose status is polled).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{delete, get};
use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::parse_from;
use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::admin::{
    DEFAULT_NEW_ROOM_MESSAGE, DEFAULT_NEW_ROOM_NAME, RoomDeletion, RoomListQuery, RoomOrder,
    parse_user_id,
};
use crate::store::{DeletedRoomRecord, NewRoomRequest};

pub(super) fn table() -> Vec<Entry> {
    vec![
        (Method::GET, "/_synapse/admin/v1/rooms", get(list)),
        (Method::GET, "/_synapse/admin/v1/rooms/{room_id}", get(show)),
        (
            Method::GET,
            "/_synapse/admin/v1/rooms/{room_id}/members",
            get(members),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/rooms/{room_id}/state",
            get(state_events),
        ),
        (
            Method::DELETE,
            "/_synapse/admin/v1/rooms/{room_id}",
            delete(delete_v1),
        ),
        (
            Method::POST,
            "/_synapse/admin/v1/rooms/{room_id}/make_room_admin",
            axum::routing::post(make_room_admin),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/rooms/{room_id}/block",
            get(get_block),
        ),
        (
            Method::PUT,
            "/_synapse/admin/v1/rooms/{room_id}/block",
            axum::routing::put(put_block),
        ),
        (
            Method::DELETE,
            "/_synapse/admin/v2/rooms/{room_id}",
            delete(delete_v2),
        ),
        (
            Method::GET,
            "/_synapse/admin/v2/rooms/{room_id}/delete_status",
            get(status_by_room),
        ),
        (
            Method::GET,
            "/_synapse/admin/v2/rooms/delete_status/{delete_id}",
            get(status_by_id),
        ),
    ]
}

fn room_id(text: &str) -> Result<OwnedRoomId> {
    OwnedRoomId::try_from(text).map_err(|_| Error::invalid_param(format!("Invalid room ID {text}")))
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    limit: Option<usize>,
    order_by: Option<String>,
    dir: Option<String>,
    search_term: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let backwards = match query.dir.as_deref() {
        None | Some("f") => false,
        Some("b") => true,
        Some(_) => return Err(Error::invalid_param("dir must be f or b")),
    };
    let order_by = query
        .order_by
        .as_deref()
        .map(RoomOrder::parse)
        .transpose()?
        .unwrap_or_default();
    let (rooms, total) = state.admin_list_rooms(&RoomListQuery {
        search_term: query.search_term.filter(|s| !s.is_empty()),
        order_by,
        backwards,
        from,
        limit,
    })?;
    let mut body = json!({
        "rooms": rooms,
        "offset": from,
        "total_rooms": total,
    });
    if from + rooms.len() < total {
        body["next_batch"] = json!(from + rooms.len());
    }
    if from > 0 {
        body["prev_batch"] = json!(from.saturating_sub(limit));
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    Ok(Json(
        serde_json::to_value(state.admin_room_summary(&room_id)?).map_err(Error::internal)?,
    ))
}

async fn members(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    let members = state.admin_room_members(&room_id)?;
    Ok(Json(json!({ "total": members.len(), "members": members })))
}

async fn state_events(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    if state.store.room(room_id.as_str())?.is_none() {
        return Err(Error::not_found("Room not found"));
    }
    let mut events = Vec::new();
    for (_, event_id) in state.store.current_state(room_id.as_str(), None)? {
        if let Some(record) = state.store.event(event_id.as_str())? {
            let mut pdu = record.pdu;
            pdu["event_id"] = json!(event_id);
            events.push(pdu);
        }
    }
    Ok(Json(json!({ "state": events })))
}

#[derive(Deserialize)]
struct DeleteBody {
    #[serde(default)]
    block: bool,
    #[serde(default = "yes")]
    purge: bool,
    new_room_user_id: Option<String>,
    room_name: Option<String>,
    message: Option<String>,
}

fn yes() -> bool {
    true
}

fn shutdown_json(record: &DeletedRoomRecord) -> Value {
    json!({
        "kicked_users": record.kicked_users,
        "failed_to_kick_users": record.failed_to_kick_users,
        "local_aliases": record.local_aliases,
        "new_room_id": record.new_room_id,
    })
}

fn status_json(room_id: &OwnedRoomId, record: &DeletedRoomRecord) -> Value {
    let status = if record.finished_ts.is_some() {
        "complete"
    } else {
        "shutting_down"
    };
    json!({
        "delete_id": record.delete_id,
        "room_id": room_id,
        "status": status,
        "shutdown_room": shutdown_json(record),
    })
}

async fn run_delete(
    state: &AppState,
    admin: &Admin,
    target: &str,
    body: DeleteBody,
    wait: bool,
) -> Result<(OwnedRoomId, DeletedRoomRecord)> {
    let room_id = room_id(target)?;
    let new_room = match body.new_room_user_id {
        Some(creator) => Some(NewRoomRequest {
            creator: parse_user_id(&creator, state)?,
            name: body
                .room_name
                .unwrap_or_else(|| DEFAULT_NEW_ROOM_NAME.to_owned()),
            message: body
                .message
                .unwrap_or_else(|| DEFAULT_NEW_ROOM_MESSAGE.to_owned()),
        }),
        None => None,
    };
    let record = state
        .admin_delete_room(
            &admin.0.user_id,
            &room_id,
            RoomDeletion {
                block: body.block,
                purge: body.purge,
                new_room,
            },
            wait,
        )
        .await?;
    Ok((room_id, record))
}

async fn delete_v1(
    State(state): State<AppState>,
    admin: Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> Result<Json<Value>> {
    let (_, record) = run_delete(&state, &admin, &target, body, true).await?;
    Ok(Json(shutdown_json(&record)))
}

/// As in Synapse, the deletion runs in the background (the room's fan-out worker); the
/// answer's `delete_id` is polled at the status endpoints.
async fn delete_v2(
    State(state): State<AppState>,
    admin: Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> Result<Json<Value>> {
    let (_, record) = run_delete(&state, &admin, &target, body, false).await?;
    Ok(Json(json!({ "delete_id": record.delete_id })))
}

async fn status_by_room(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    let record = state
        .store
        .deleted_room(room_id.as_str())?
        .ok_or_else(|| Error::not_found("No deletion for this room"))?;
    Ok(Json(json!({ "results": [status_json(&room_id, &record)] })))
}

async fn status_by_id(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(delete_id): Path<String>,
) -> Result<Json<Value>> {
    let (room_id, record) = state
        .store
        .deletion(&delete_id)?
        .ok_or_else(|| Error::not_found("No deletion with this ID"))?;
    Ok(Json(status_json(&room_id, &record)))
}

async fn get_block(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    Ok(Json(match state.admin_room_block(&room_id)? {
        Some(record) => json!({ "block": true, "user_id": record.blocked_by }),
        None => json!({ "block": false }),
    }))
}

#[derive(Deserialize)]
struct BlockBody {
    block: bool,
}

async fn put_block(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<BlockBody>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    state.admin_set_room_block(&admin.user_id, &room_id, body.block)?;
    Ok(Json(json!({ "block": body.block })))
}

#[derive(Deserialize)]
struct MakeRoomAdminBody {
    user_id: String,
}

/// Synapse's `make_room_admin`: a local member with the most power makes `user_id` an
/// admin of the room. Answers `{}`.
async fn make_room_admin(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<MakeRoomAdminBody>,
) -> Result<Json<Value>> {
    let room_id = room_id(&target)?;
    let user_id = crate::service::admin::parse_user_id(&body.user_id, &state)?;
    state
        .admin_make_room_admin(&admin.user_id, &room_id, &user_id)
        .await?;
    Ok(Json(json!({})))
}
