//! `GET /_hearth/admin/v1/audit`: the log of admin actions, newest first, filtered by
//! admin, action or target.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::parse_from;
use super::{Admin, Entry, next_token};
use crate::api::AppState;
use crate::api::extract::Query;
use crate::error::Result;
use crate::service::admin::AuditQuery;

pub(super) fn table() -> Vec<Entry> {
    vec![(Method::GET, "/_hearth/admin/v1/audit", get(list))]
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    limit: Option<usize>,
    admin: Option<String>,
    action: Option<String>,
    target: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let (entries, total) = state.audit_log(&AuditQuery {
        admin: query.admin,
        action: query.action,
        target: query.target,
        from,
        limit: query.limit.unwrap_or(100),
    })?;
    let mut body = json!({ "entries": entries, "total": total });
    if let Some(next) = next_token(from, entries.len(), total) {
        body["next_token"] = json!(next);
    }
    Ok(Json(body))
}
