//! Reading history: `GET /rooms/{roomId}/messages`, `/context/{eventId}` and
//! `/timestamp_to_event`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::rooms::ClientView;
use crate::service::sessions::Authed;
use crate::store::Direction;

/// Events per page when the client names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/rooms/{room_id}/messages", get(messages))
        .route(
            "/_matrix/client/v3/rooms/{room_id}/context/{event_id}",
            get(context),
        )
        .route(
            "/_matrix/client/v1/rooms/{room_id}/timestamp_to_event",
            get(timestamp_to_event),
        )
}

fn view(authed: &Authed) -> ClientView<'_> {
    ClientView {
        user_id: &authed.user_id,
        device_id: &authed.device_id,
    }
}

fn parse_dir(dir: Option<&str>) -> Result<Direction> {
    match dir {
        Some("b") => Ok(Direction::Backward),
        Some("f") => Ok(Direction::Forward),
        None => Err(Error::missing_param("dir is required (b or f)")),
        Some(other) => Err(Error::invalid_param(format!(
            "dir must be b or f, not {other:?}"
        ))),
    }
}

fn parse_limit(limit: Option<&str>) -> Result<usize> {
    match limit {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<u64>()
            .map(|l| usize::try_from(l).unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
            .map_err(|_| {
                Error::invalid_param(format!(
                    "limit must be a non-negative integer, not {text:?}"
                ))
            }),
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<String>,
    filter: Option<String>,
}

async fn messages(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let dir = parse_dir(query.dir.as_deref())?;
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = state.resolve_room_event_filter(&authed.user_id, query.filter.as_deref())?;
    let (from, to, mut page) = {
        let mut reader = state.history_reader(&room_id, view(&authed))?;
        let from = query
            .from
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| reader.parse_token(t))
            .transpose()?;
        let to = query
            .to
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| reader.parse_token(t))
            .transpose()?;
        let page = reader.messages(from, to, dir, limit, &filter)?;
        (from, to, page)
    };
    // Paging back past the oldest event this server has, or into a gap in the middle
    // of the room: ask the room's other servers for what came before, then read again.
    let filled = if dir != Direction::Backward {
        0
    } else if !page.gap.is_empty() {
        state.backfill_gap(&room_id, page.gap.clone()).await
    } else if page.end.is_none() {
        state.backfill_history(&room_id).await
    } else {
        0
    };
    if filled > 0 {
        let mut reader = state.history_reader(&room_id, view(&authed))?;
        page = reader.messages(from, to, dir, limit, &filter)?;
    }
    // The spec has `start` repeat `from` as given, which may be a sync token.
    let start = match query.from.as_deref().filter(|t| !t.is_empty()) {
        Some(from) => from.to_owned(),
        None => page.start.to_string(),
    };
    let chunk: Vec<Value> = page.chunk.into_iter().map(|(_, e)| e).collect();
    let mut body = json!({ "chunk": chunk, "start": start });
    if let Some(end) = page.end {
        body["end"] = json!(end.to_string());
    }
    if !page.state.is_empty() {
        body["state"] = Value::Array(page.state);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct ContextQuery {
    limit: Option<String>,
    filter: Option<String>,
}

async fn context(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((room_id, event_id)): Path<(String, String)>,
    Query(query): Query<ContextQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let limit = parse_limit(query.limit.as_deref())?;
    let filter = state.resolve_room_event_filter(&authed.user_id, query.filter.as_deref())?;
    let mut reader = state.history_reader(&room_id, view(&authed))?;
    let context = reader
        .context(&event_id, limit, &filter)?
        .ok_or_else(|| Error::not_found("Event not found"))?;
    Ok(Json(json!({
        "event": context.event,
        "events_before": context.before,
        "events_after": context.after,
        "start": context.start.to_string(),
        "end": context.end.to_string(),
        "state": context.state,
    })))
}

#[derive(Deserialize)]
struct TimestampQuery {
    ts: Option<String>,
    dir: Option<String>,
}

async fn timestamp_to_event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    Query(query): Query<TimestampQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let ts = match query.ts.as_deref() {
        None => return Err(Error::missing_param("ts is required")),
        Some(text) => text.parse::<u64>().map_err(|_| {
            Error::invalid_param(format!("ts must be milliseconds since 1970, not {text:?}"))
        })?,
    };
    let dir = parse_dir(query.dir.as_deref())?;
    let mut reader = state.history_reader(&room_id, view(&authed))?;
    let (event_id, origin_server_ts) = reader.event_at_timestamp(ts, dir)?.ok_or_else(|| {
        let direction = match dir {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        };
        Error::not_found(format!(
            "Unable to find event from {ts} in {direction} direction"
        ))
    })?;
    Ok(Json(json!({
        "event_id": event_id,
        "origin_server_ts": origin_server_ts,
    })))
}
