//! Dehydrated devices (MSC3814, unstable prefix `org.matrix.msc3814.v1`): store, fetch
//! and delete the user's dehydrated device, and read its to-device messages.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::OwnedDeviceId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};
use crate::service::e2ee::DehydratedDeviceUpload;

/// The name `/versions` advertises in `unstable_features`, as Synapse.
pub const UNSTABLE_FEATURE: &str = "org.matrix.msc3814";

const PATH: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(fetch).put(store).delete(remove))
        .route(&format!("{PATH}/{{device_id}}/events"), post(events))
}

async fn fetch(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    match state.dehydrated_device(&authed.user_id)? {
        Some((device_id, device_data)) => Ok(Json(
            json!({"device_id": device_id, "device_data": device_data}),
        )),
        None => Err(Error::not_found("No dehydrated device")),
    }
}

async fn store(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DehydratedDeviceUpload>,
) -> Result<Json<Value>> {
    let device_id = state.put_dehydrated_device(&authed.user_id, body).await?;
    Ok(Json(json!({"device_id": device_id})))
}

async fn remove(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    let device_id = state.delete_dehydrated_device(&authed.user_id).await?;
    Ok(Json(json!({"device_id": device_id})))
}

#[derive(Deserialize)]
struct EventsBody {
    #[serde(default)]
    next_batch: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(device_id): Path<OwnedDeviceId>,
    MatrixJson(body): MatrixJson<EventsBody>,
) -> Result<Json<Value>> {
    Ok(Json(state.dehydrated_device_events(
        &authed.user_id,
        &device_id,
        body.next_batch.as_deref(),
    )?))
}
