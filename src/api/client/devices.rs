//! Device management.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::OwnedDeviceId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::account::password_requirement;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/devices", get(list))
        .route(
            "/_matrix/client/v3/devices/{device_id}",
            get(get_one).put(update).delete(delete_one),
        )
        .route("/_matrix/client/v3/delete_devices", post(delete_many))
}

async fn list(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    let devices = state.sessions.devices(&authed.user_id)?;
    Ok(Json(json!({ "devices": devices })))
}

async fn get_one(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(device_id): Path<OwnedDeviceId>,
) -> Result<Json<Value>> {
    let device = state.sessions.device(&authed.user_id, &device_id)?;
    Ok(Json(json!(device)))
}

#[derive(Deserialize)]
struct UpdateBody {
    display_name: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(device_id): Path<OwnedDeviceId>,
    MatrixJson(body): MatrixJson<UpdateBody>,
) -> Result<Json<Value>> {
    // "If not given, the display name is unchanged."
    if let Some(name) = body.display_name {
        state
            .sessions
            .rename_device(&authed.user_id, &device_id, Some(name))
            .await?;
        // The name is part of the device's keys as others query them.
        state.device_list_changed(&authed.user_id, Some(device_id.as_str()), false)?;
    } else {
        state.sessions.device(&authed.user_id, &device_id)?;
    }
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeleteBody {
    auth: Option<Map<String, Value>>,
}

async fn delete_one(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(device_id): Path<OwnedDeviceId>,
    MatrixJson(body): MatrixJson<DeleteBody>,
) -> Result<Json<Value>> {
    // Unknown devices are reported before asking for a password.
    state.sessions.device(&authed.user_id, &device_id)?;
    state
        .authenticate(
            password_requirement("delete_devices", &authed.user_id).for_target(device_id.as_str()),
            body.auth.as_ref(),
        )
        .await?;
    state.remove_devices(&authed.user_id, &[device_id]).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct DeleteManyBody {
    devices: Vec<OwnedDeviceId>,
    auth: Option<Map<String, Value>>,
}

async fn delete_many(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DeleteManyBody>,
) -> Result<Json<Value>> {
    let mut targets: Vec<&str> = body.devices.iter().map(|d| d.as_str()).collect();
    targets.sort_unstable();
    targets.dedup();
    state
        .authenticate(
            password_requirement("delete_devices", &authed.user_id).for_target(targets.join(" ")),
            body.auth.as_ref(),
        )
        .await?;
    state.remove_devices(&authed.user_id, &body.devices).await?;
    Ok(Json(json!({})))
}
