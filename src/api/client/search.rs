//! `POST /search`: server-side search over room events.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Query};
use crate::error::{Error, Result};
use crate::service::filter::RoomEventFilter;
use crate::service::ratelimit::Family;
use crate::service::rooms::ClientView;
use crate::service::search::{ContextRequest, Field, GroupKey, Order, SearchRequest};

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/client/v3/search", post(search))
}

/// The spec's default context on each side of a result, and the most we give.
const DEFAULT_CONTEXT: usize = 5;
const MAX_CONTEXT: usize = 100;

#[derive(Deserialize)]
struct SearchQuery {
    next_batch: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(query): Query<SearchQuery>,
    MatrixJson(body): MatrixJson<Value>,
) -> Result<Json<Value>> {
    state.rate_limit(Family::Search, &authed.user_id)?;
    let categories = body
        .get("search_categories")
        .ok_or_else(|| Error::missing_param("search_categories is required"))?;
    let categories = categories
        .as_object()
        .ok_or_else(|| Error::bad_json("search_categories must be an object"))?;
    let Some(criteria) = categories.get("room_events") else {
        return Err(Error::bad_json(
            "search_categories names no category this server searches; room_events is the only one the spec defines",
        ));
    };
    let mut request = parse_room_events(criteria)?;
    request.next_batch = query.next_batch.filter(|t| !t.is_empty());
    // Intersecting postings and reading results can take longer than a runtime worker
    // should be held.
    let services = state.clone();
    let room_events = tokio::task::spawn_blocking(move || {
        let view = ClientView {
            user_id: &authed.user_id,
            device_id: &authed.device_id,
        };
        services.search_room_events(view, &request)
    })
    .await
    .map_err(Error::internal)??;
    Ok(Json(
        json!({ "search_categories": { "room_events": room_events } }),
    ))
}

/// A `room_events` search criteria object, checked field by field into a [`SearchRequest`].
pub fn parse_room_events(criteria: &Value) -> Result<SearchRequest> {
    let criteria = criteria
        .as_object()
        .ok_or_else(|| Error::bad_json("search_categories.room_events must be an object"))?;
    let search_term = match criteria.get("search_term") {
        None => {
            return Err(Error::missing_param(
                "search_categories.room_events.search_term is required",
            ));
        }
        Some(Value::String(term)) => term.clone(),
        Some(_) => return Err(Error::bad_json("search_term must be a string")),
    };
    let fields = match criteria.get("keys") {
        None | Some(Value::Null) => Field::ALL.to_vec(),
        Some(Value::Array(keys)) => {
            let mut fields = Vec::new();
            for key in keys {
                let field = key.as_str().and_then(Field::from_key).ok_or_else(|| {
                    Error::bad_json(format!(
                        "keys may hold content.body, content.name and content.topic, not {key}"
                    ))
                })?;
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
            fields
        }
        Some(_) => return Err(Error::bad_json("keys must be an array of strings")),
    };
    let filter = match criteria.get("filter") {
        None | Some(Value::Null) => RoomEventFilter::default(),
        Some(value) => RoomEventFilter::from_json(value)?,
    };
    let order = match criteria.get("order_by") {
        None | Some(Value::Null) => Order::Rank,
        Some(Value::String(s)) if s == "rank" => Order::Rank,
        Some(Value::String(s)) if s == "recent" => Order::Recent,
        Some(other) => {
            return Err(Error::bad_json(format!(
                "order_by must be \"rank\" or \"recent\", not {other}"
            )));
        }
    };
    let context = match criteria.get("event_context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(ctx)) => Some(ContextRequest {
            before: context_limit(ctx.get("before_limit"), "before_limit")?,
            after: context_limit(ctx.get("after_limit"), "after_limit")?,
            include_profile: flag(ctx.get("include_profile"), "event_context.include_profile")?,
        }),
        Some(_) => return Err(Error::bad_json("event_context must be an object")),
    };
    let include_state = flag(criteria.get("include_state"), "include_state")?;
    let group_by = match criteria.get("groupings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(groupings)) => match groupings.get("group_by") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(groups)) => {
                let mut keys = Vec::new();
                for group in groups {
                    let key = match group.get("key").and_then(Value::as_str) {
                        Some("room_id") => GroupKey::RoomId,
                        Some("sender") => GroupKey::Sender,
                        _ => {
                            return Err(Error::bad_json(format!(
                                "groupings.group_by entries need a key of room_id or sender, not {group}"
                            )));
                        }
                    };
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                keys
            }
            Some(_) => return Err(Error::bad_json("groupings.group_by must be an array")),
        },
        Some(_) => return Err(Error::bad_json("groupings must be an object")),
    };
    Ok(SearchRequest {
        search_term,
        fields,
        filter,
        order,
        context,
        include_state,
        group_by,
        next_batch: None,
    })
}

fn context_limit(value: Option<&Value>, name: &str) -> Result<usize> {
    match value {
        None | Some(Value::Null) => Ok(DEFAULT_CONTEXT),
        Some(v) => v
            .as_u64()
            .map(|n| usize::try_from(n).unwrap_or(MAX_CONTEXT).min(MAX_CONTEXT))
            .ok_or_else(|| {
                Error::bad_json(format!(
                    "event_context.{name} must be a non-negative integer, not {v}"
                ))
            }),
    }
}

fn flag(value: Option<&Value>, name: &str) -> Result<bool> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::bad_json(format!(
            "{name} must be true or false, not {other}"
        ))),
    }
}
