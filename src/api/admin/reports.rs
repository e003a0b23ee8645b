//! Content reports: Synapse's event report API, and Hearth's list of every kind of
//! report (events, rooms, users). Resolving a report deletes it.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::users::parse_from;
use super::{Admin, Entry, next_token};
use crate::api::AppState;
use crate::api::extract::{Path, Query};
use crate::error::{Error, Result};
use crate::store::{ReportRecord, ReportTarget};

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::GET,
            "/_synapse/admin/v1/event_reports",
            get(list_event_reports),
        ),
        (
            Method::GET,
            "/_synapse/admin/v1/event_reports/{report_id}",
            get(show_event_report),
        ),
        (
            Method::DELETE,
            "/_synapse/admin/v1/event_reports/{report_id}",
            axum::routing::delete(resolve_event_report),
        ),
        (Method::GET, "/_hearth/admin/v1/reports", get(list_reports)),
        (
            Method::GET,
            "/_hearth/admin/v1/reports/{report_id}",
            get(show_report),
        ),
        (
            Method::DELETE,
            "/_hearth/admin/v1/reports/{report_id}",
            axum::routing::delete(resolve_report),
        ),
    ]
}

#[derive(Deserialize)]
struct ListQuery {
    from: Option<String>,
    limit: Option<usize>,
    dir: Option<String>,
    room_id: Option<String>,
    user_id: Option<String>,
}

fn report_id(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::invalid_param("A report ID is a positive integer"))
}

/// Synapse's event report JSON; `None` for reports of rooms or users.
fn event_report_json(state: &AppState, id: u64, report: &ReportRecord) -> Result<Option<Value>> {
    let ReportTarget::Event { room_id, event_id } = &report.target else {
        return Ok(None);
    };
    let summary = state.admin_room_summary(room_id).ok();
    let sender = state
        .store
        .event(event_id.as_str())?
        .and_then(|e| e.pdu["sender"].as_str().map(str::to_owned));
    Ok(Some(json!({
        "id": id,
        "received_ts": report.received_ts,
        "room_id": room_id,
        "name": summary.as_ref().and_then(|s| s.name.clone()),
        "canonical_alias": summary.as_ref().and_then(|s| s.canonical_alias.clone()),
        "event_id": event_id,
        "user_id": report.reporter,
        "reason": report.reason,
        "score": null,
        "sender": sender,
    })))
}

async fn list_event_reports(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let mut reports = state.admin_reports()?;
    if query.dir.as_deref() == Some("f") {
        reports.reverse();
    }
    let mut all = Vec::new();
    for (id, report) in &reports {
        if let Some(entry) = event_report_json(&state, *id, report)? {
            let room_ok = query
                .room_id
                .as_deref()
                .is_none_or(|r| entry["room_id"] == r);
            let user_ok = query
                .user_id
                .as_deref()
                .is_none_or(|u| entry["user_id"] == u);
            if room_ok && user_ok {
                all.push(entry);
            }
        }
    }
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(from).take(limit).collect();
    let mut body = json!({ "event_reports": page, "total": total });
    if let Some(next) = next_token(
        from,
        body["event_reports"].as_array().map_or(0, Vec::len),
        total,
    ) {
        body["next_token"] = json!(next.parse::<u64>().unwrap_or_default());
    }
    Ok(Json(body))
}

async fn show_event_report(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = report_id(&id)?;
    let report = state.admin_report(id)?;
    let mut entry = event_report_json(&state, id, &report)?
        .ok_or_else(|| Error::not_found("Event report not found"))?;
    if let ReportTarget::Event { event_id, .. } = &report.target
        && let Some(event) = state.store.event(event_id.as_str())?
    {
        let mut pdu = event.pdu;
        pdu["event_id"] = json!(event_id);
        entry["event_json"] = pdu;
    }
    Ok(Json(entry))
}

async fn resolve_event_report(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = report_id(&id)?;
    if !matches!(state.admin_report(id)?.target, ReportTarget::Event { .. }) {
        return Err(Error::not_found("Event report not found"));
    }
    state.admin_resolve_report(&admin.user_id, id)?;
    Ok(Json(json!({})))
}

/// Hearth's report JSON: every kind, with `kind` and its target's fields.
fn report_json(id: u64, report: &ReportRecord) -> Value {
    let mut entry = serde_json::to_value(&report.target).unwrap_or(Value::Null);
    entry["id"] = json!(id);
    entry["reporter"] = json!(report.reporter);
    entry["reason"] = json!(report.reason);
    entry["received_ts"] = json!(report.received_ts);
    entry
}

async fn list_reports(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let from = parse_from(query.from.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    let reports = state.admin_reports()?;
    let total = reports.len();
    let page: Vec<Value> = reports
        .iter()
        .skip(from)
        .take(limit)
        .map(|(id, r)| report_json(*id, r))
        .collect();
    let mut body = json!({ "reports": page, "total": total });
    if let Some(next) = next_token(from, body["reports"].as_array().map_or(0, Vec::len), total) {
        body["next_token"] = json!(next);
    }
    Ok(Json(body))
}

async fn show_report(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = report_id(&id)?;
    Ok(Json(report_json(id, &state.admin_report(id)?)))
}

async fn resolve_report(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let id = report_id(&id)?;
    state.admin_resolve_report(&admin.user_id, id)?;
    Ok(Json(json!({})))
}
