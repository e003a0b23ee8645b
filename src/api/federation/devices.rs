//! A local user's devices for other servers: `/user/devices/{userId}`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::api::federation::device::get_devices;
use serde_json::{Map, Value, json};

use super::Origin;
use super::ruma_request::RumaRequest;
use crate::api::AppState;
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/federation/v1/user/devices/{user_id}",
        get(user_devices),
    )
}

async fn user_devices(
    State(state): State<AppState>,
    Origin(_): Origin,
    RumaRequest(req): RumaRequest<get_devices::v1::Request>,
) -> Result<Json<Value>> {
    let list = state.devices_for_server(&req.user_id)?;
    let devices: Vec<Value> = list
        .devices
        .into_iter()
        .map(|device| {
            let mut entry = Map::new();
            entry.insert("device_id".into(), json!(device.device_id));
            if let Some(name) = device.display_name {
                entry.insert("device_display_name".into(), json!(name));
            }
            if let Some(keys) = device.keys {
                entry.insert("keys".into(), keys);
            }
            Value::Object(entry)
        })
        .collect();
    let mut body = json!({
        "user_id": req.user_id,
        "stream_id": list.stream_id,
        "devices": devices,
    });
    for (field, key) in [
        ("master_key", list.master_key),
        ("self_signing_key", list.self_signing_key),
    ] {
        if let Some(key) = key {
            body[field] = key;
        }
    }
    Ok(Json(body))
}
