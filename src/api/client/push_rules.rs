//! Push rules (`/pushrules/...`); only the `global` scope exists.

use axum::extract::State;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::push_rules::{RuleAddress, parse_kind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/pushrules/",
            get(get_all).fallback(unrecognised_path),
        )
        .route(
            "/_matrix/client/v3/pushrules/global/",
            get(get_global).fallback(unrecognised_path),
        )
        .route(
            "/_matrix/client/v3/pushrules/global/{kind}/",
            get(get_kind).fallback(unrecognised_path),
        )
        // Any other path under `/pushrules/` (a missing or unknown scope, kind or
        // attribute, an empty rule ID) is a bad request, as Synapse answers.
        .route(
            "/_matrix/client/v3/pushrules/{*rest}",
            any(unrecognised_path),
        )
        .route(
            "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}",
            get(get_rule).put(put_rule).delete(delete_rule),
        )
        .route(
            "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}/enabled",
            get(get_enabled).put(put_enabled),
        )
        .route(
            "/_matrix/client/v3/pushrules/global/{kind}/{rule_id}/actions",
            get(get_actions).put(put_actions),
        )
}

/// The `{kind}/{ruleId}` part of a rule's path.
fn address<'a>(kind: &str, rule_id: &'a str) -> Result<RuleAddress<'a>> {
    Ok(RuleAddress {
        kind: parse_kind(kind)?,
        rule_id,
    })
}

async fn get_all(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    let ruleset = state.push_ruleset(&authed.user_id)?;
    Ok(Json(json!({ "global": ruleset.to_json() })))
}

async fn get_global(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    Ok(Json(state.push_ruleset(&authed.user_id)?.to_json()))
}

/// `GET /pushrules/global/{kind}/`: the rules of one kind, in order.
async fn get_kind(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(kind): Path<String>,
) -> Result<Json<Value>> {
    let kind = parse_kind(&kind)?;
    let rules = state.push_ruleset(&authed.user_id)?.to_json();
    Ok(Json(rules[kind.as_str()].clone()))
}

async fn unrecognised_path(Auth(_): Auth) -> Error {
    Error::invalid_param("Push rule paths are /pushrules/global/{kind}/{ruleId}[/enabled|/actions]")
}

async fn get_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    Ok(Json(state.push_rule(&authed.user_id, &address)?.to_json()))
}

#[derive(Deserialize)]
struct Placement {
    before: Option<String>,
    after: Option<String>,
}

async fn put_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
    Query(placement): Query<Placement>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    state.put_push_rule(
        &authed.user_id,
        &address,
        &body,
        placement.before.as_deref(),
        placement.after.as_deref(),
    )?;
    Ok(Json(json!({})))
}

async fn delete_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    state.delete_push_rule(&authed.user_id, &address)?;
    Ok(Json(json!({})))
}

async fn get_enabled(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    let rule = state.push_rule(&authed.user_id, &address)?;
    Ok(Json(json!({ "enabled": rule.enabled })))
}

async fn put_enabled(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
        return Err(Error::bad_json("enabled must be a boolean"));
    };
    state.set_push_rule_enabled(&authed.user_id, &address, enabled)?;
    Ok(Json(json!({})))
}

async fn get_actions(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    let rule = state.push_rule(&authed.user_id, &address)?;
    Ok(Json(json!({ "actions": rule.actions })))
}

async fn put_actions(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((kind, rule_id)): Path<(String, String)>,
    MatrixJson(body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    let address = address(&kind, &rule_id)?;
    state.set_push_rule_actions(&authed.user_id, &address, body.get("actions"))?;
    Ok(Json(json!({})))
}
