//! `POST /rooms/{roomId}/upgrade`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::{OwnedUserId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/client/v3/rooms/{room_id}/upgrade", post(upgrade))
}

#[derive(Deserialize)]
struct UpgradeBody {
    new_version: Option<String>,
    #[serde(default)]
    additional_creators: Vec<String>,
}

async fn upgrade(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<UpgradeBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let new_version = body
        .new_version
        .ok_or_else(|| Error::missing_param("new_version is required"))?;
    let additional_creators = body
        .additional_creators
        .iter()
        .map(|id| {
            UserId::parse(id).map_err(|e| {
                Error::bad_json(format!("additional_creators: {id:?} is not a user ID: {e}"))
            })
        })
        .collect::<Result<Vec<OwnedUserId>>>()?;
    let replacement = state
        .upgrade_room(&room_id, &authed.user_id, &new_version, additional_creators)
        .await?;
    Ok(Json(json!({ "replacement_room": replacement })))
}
