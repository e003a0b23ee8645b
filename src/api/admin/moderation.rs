//! The spec's server administration endpoints: whois, account locking and suspension
//! (`/_matrix/client/v1/admin/lock|suspend/{userId}`), and Synapse's whois path.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use ruma::OwnedUserId;

/// Whois answers server admins and the user asked about (as the spec allows and
/// Synapse does), so it sits outside the admin-only table with its own check.
pub(super) fn whois_routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/admin/whois/{user_id}", get(whois))
        .route("/_synapse/admin/v1/whois/{user_id}", get(whois))
}

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::GET,
            "/_matrix/client/v1/admin/lock/{user_id}",
            get(get_lock),
        ),
        (
            Method::PUT,
            "/_matrix/client/v1/admin/lock/{user_id}",
            axum::routing::put(put_lock),
        ),
        (
            Method::GET,
            "/_matrix/client/v1/admin/suspend/{user_id}",
            get(get_suspend),
        ),
        (
            Method::PUT,
            "/_matrix/client/v1/admin/suspend/{user_id}",
            axum::routing::put(put_suspend),
        ),
    ]
}

/// The spec's user ID parameter: a full user ID.
fn user_id(text: &str) -> Result<OwnedUserId> {
    OwnedUserId::try_from(text).map_err(|_| Error::invalid_param(format!("Invalid user ID {text}")))
}

/// Each device with one session whose one connection is the device's last use: its
/// address, time and user agent (empty when the client sent none, as in Synapse).
async fn whois(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let target = user_id(&target)?;
    if target != authed.user_id {
        state.require_server_admin(&authed.user_id)?;
    }
    let devices = state.admin_user_devices(&target)?;
    let mut out = BTreeMap::new();
    for device in devices {
        let mut connection = serde_json::Map::new();
        if let Some(ip) = device.last_seen_ip {
            connection.insert("ip".into(), json!(ip));
        }
        if let Some(ts) = device.last_seen_ts {
            connection.insert("last_seen".into(), json!(ts));
        }
        if !connection.is_empty() {
            let agent = device.last_seen_user_agent.unwrap_or_default();
            connection.insert("user_agent".into(), json!(agent));
        }
        out.insert(
            device.device_id.to_string(),
            json!({ "sessions": [{ "connections": [connection] }] }),
        );
    }
    Ok(Json(json!({ "user_id": target, "devices": out })))
}

async fn get_lock(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let target = user_id(&target)?;
    Ok(Json(json!({ "locked": state.admin_is_locked(&target)? })))
}

#[derive(Deserialize)]
struct LockBody {
    locked: bool,
}

async fn put_lock(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<LockBody>,
) -> Result<Json<Value>> {
    let target = user_id(&target)?;
    state
        .admin_set_locked(&admin.user_id, &target, body.locked)
        .await?;
    Ok(Json(json!({ "locked": body.locked })))
}

async fn get_suspend(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(target): Path<String>,
) -> Result<Json<Value>> {
    let target = user_id(&target)?;
    Ok(Json(
        json!({ "suspended": state.admin_is_suspended(&target)? }),
    ))
}

#[derive(Deserialize)]
struct SuspendBody {
    suspended: bool,
}

async fn put_suspend(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(target): Path<String>,
    MatrixJson(body): MatrixJson<SuspendBody>,
) -> Result<Json<Value>> {
    let target = user_id(&target)?;
    state
        .admin_set_suspended(&admin.user_id, &target, body.suspended)
        .await?;
    Ok(Json(json!({ "suspended": body.suspended })))
}
