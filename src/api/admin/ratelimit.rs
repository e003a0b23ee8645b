//! Per-user rate limits at Synapse's path: `GET`, `POST` and `DELETE`
//! `/_synapse/admin/v1/users/{userId}/override_ratelimit`.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::admin::parse_user_id;
use crate::store::RateLimitOverride;

const PATH: &str = "/_synapse/admin/v1/users/{user_id}/override_ratelimit";

pub(super) fn table() -> Vec<Entry> {
    vec![
        (Method::GET, PATH, get(show)),
        (Method::POST, PATH, post(set)),
        (Method::DELETE, PATH, delete(remove)),
    ]
}

fn rate_json(rate: Option<RateLimitOverride>) -> Value {
    match rate {
        Some(rate) => json!({
            "messages_per_second": rate.messages_per_second,
            "burst_count": rate.burst_count,
        }),
        None => json!({}),
    }
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    Ok(Json(rate_json(state.admin_ratelimit_override(&user_id)?)))
}

/// Both fields default to 0, as in Synapse; a rate of 0 lifts every limit for the user.
#[derive(Deserialize)]
struct SetBody {
    #[serde(default)]
    messages_per_second: Option<Value>,
    #[serde(default)]
    burst_count: Option<Value>,
}

fn count(value: Option<Value>, name: &str) -> Result<u32> {
    match value {
        None => Ok(0),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::invalid_param(format!("{name} must be a positive integer"))),
    }
}

async fn set(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
    MatrixJson(body): MatrixJson<SetBody>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    let rate = RateLimitOverride {
        messages_per_second: count(body.messages_per_second, "messages_per_second")?,
        burst_count: count(body.burst_count, "burst_count")?,
    };
    state
        .admin_set_ratelimit_override(&admin.user_id, &user_id, Some(rate))
        .await?;
    Ok(Json(rate_json(Some(rate))))
}

async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(user_id): Path<String>,
) -> Result<Json<Value>> {
    let user_id = parse_user_id(&user_id, &state)?;
    state
        .admin_set_ratelimit_override(&admin.user_id, &user_id, None)
        .await?;
    Ok(Json(json!({})))
}
