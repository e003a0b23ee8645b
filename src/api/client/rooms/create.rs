//! `POST /createRoom`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::OwnedUserId;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::check_identifier_length;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson};
use crate::error::{Error, Result};
use crate::service::identity::invite::ThirdPartyInvite;
use crate::service::rooms::{CreateRoom, EventTemplate, Preset};

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/client/v3/createRoom", post(create_room))
}

#[derive(Deserialize)]
struct InitialStateEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    state_key: String,
    content: Map<String, Value>,
}

/// An `invite_3pid` entry: every field is required, as Synapse asks.
#[derive(Deserialize)]
struct Invite3pid {
    id_server: String,
    id_access_token: String,
    medium: String,
    address: String,
}

#[derive(Deserialize)]
struct CreateRoomBody {
    visibility: Option<String>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<OwnedUserId>,
    #[serde(default)]
    invite_3pid: Vec<Invite3pid>,
    room_version: Option<String>,
    #[serde(default)]
    creation_content: Map<String, Value>,
    #[serde(default)]
    initial_state: Vec<InitialStateEvent>,
    preset: Option<String>,
    #[serde(default)]
    is_direct: bool,
    power_level_content_override: Option<Map<String, Value>>,
}

async fn create_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<CreateRoomBody>,
) -> Result<Json<Value>> {
    let public_visibility = match body.visibility.as_deref() {
        None | Some("private") => false,
        Some("public") => true,
        Some(other) => return Err(Error::bad_json(format!("Unknown visibility {other:?}"))),
    };
    let alias = match body.room_alias_name.as_deref() {
        None => None,
        Some(name) if name.contains(':') => {
            return Err(Error::invalid_param(
                "room_alias_name is the local part of the alias ('wombat', not '#wombat:example.com') and cannot contain ':'",
            ));
        }
        Some(name) => Some(state.parse_new_alias(&format!("#{name}:{}", state.server_name()))?),
    };
    let mut initial_state = Vec::new();
    for event in body.initial_state {
        check_identifier_length("type", &event.event_type)?;
        check_identifier_length("state_key", &event.state_key)?;
        if matches!(event.event_type.as_str(), "m.room.create" | "m.room.member") {
            return Err(Error::bad_json(format!(
                "initial_state cannot contain {}",
                event.event_type
            )));
        }
        initial_state.push(EventTemplate::state(
            &event.event_type,
            &event.state_key,
            Value::Object(event.content),
        ));
    }
    let request = CreateRoom {
        preset: body.preset.as_deref().map(Preset::parse).transpose()?,
        public_visibility,
        alias,
        room_version: body.room_version,
        creation_content: body.creation_content,
        power_level_content_override: body.power_level_content_override,
        initial_state,
        name: body.name,
        topic: body.topic,
        invite: body.invite,
        is_direct: body.is_direct,
    };
    let room_id = state.create_room(&authed.user_id, request).await?;
    // Third-party invites once the room stands, as Synapse sends them.
    for invite in body.invite_3pid {
        let invite = ThirdPartyInvite {
            id_server: invite.id_server,
            id_access_token: invite.id_access_token,
            medium: invite.medium,
            address: invite.address,
        };
        state
            .invite_third_party(&room_id, &authed.user_id, &invite)
            .await?;
    }
    Ok(Json(json!({ "room_id": room_id })))
}
