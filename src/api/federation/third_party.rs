//! Third-party invites between servers: `PUT /v1/exchange_third_party_invite/{roomId}`
//! (signed: another server asks this one, which is in the room, to make an invite from a
//! bound invitation) and `/v1/3pid/onbind` (called by identity servers, so unsigned; the
//! identity server's signature on each invitation is what is checked). The spec names
//! `PUT` for `onbind`; identity servers (Sydent, SyTest's) send `POST`, which Synapse
//! serves, so both are.

use axum::extract::{Path, State};
use axum::routing::put;
use axum::{Json, Router};
use ruma::{RoomId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Origin;
use crate::api::AppState;
use crate::api::extract::MatrixJson;
use crate::error::{Error, Result};
use crate::service::identity::invite::BoundInvite;

/// Under the `X-Matrix` layer.
pub fn signed_routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/federation/v1/exchange_third_party_invite/{room_id}",
        put(exchange),
    )
}

/// Without a signature: the identity server is not a homeserver.
pub fn open_routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/federation/v1/3pid/onbind",
        put(onbind).post(onbind),
    )
}

#[derive(Deserialize)]
struct OnBindBody {
    #[serde(default)]
    invites: Vec<Value>,
}

/// More invitations than one binding plausibly brings are refused: each costs a request
/// to an identity server.
const MAX_INVITES: usize = 100;

async fn onbind(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<OnBindBody>,
) -> Result<Json<Value>> {
    if body.invites.len() > MAX_INVITES {
        return Err(Error::invalid_param(format!(
            "at most {MAX_INVITES} invites per binding"
        )));
    }
    state.on_threepid_bound(&body.invites).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct ExchangeContent {
    membership: String,
    third_party_invite: ExchangeInvite,
}

#[derive(Deserialize)]
struct ExchangeInvite {
    signed: Map<String, Value>,
}

#[derive(Deserialize)]
struct ExchangeBody {
    #[serde(rename = "type")]
    event_type: String,
    room_id: String,
    sender: String,
    state_key: String,
    content: ExchangeContent,
}

async fn exchange(
    State(state): State<AppState>,
    Origin(origin): Origin,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<ExchangeBody>,
) -> Result<Json<Value>> {
    if body.room_id != room_id {
        return Err(Error::invalid_param("room_id differs from the path's"));
    }
    if body.event_type != "m.room.member" || body.content.membership != "invite" {
        return Err(Error::invalid_param(
            "only m.room.member invites are exchanged",
        ));
    }
    let parse_user = |id: &str| {
        UserId::parse(id).map_err(|e| Error::invalid_param(format!("bad user ID {id:?}: {e}")))
    };
    let mxid = parse_user(&body.state_key)?;
    // The invitee's server asks for its own user.
    if mxid.server_name().as_str() != origin.as_str() {
        return Err(Error::forbidden(format!(
            "{origin} may not exchange an invite for {mxid}"
        )));
    }
    let invite = BoundInvite {
        sender: parse_user(&body.sender)?,
        mxid,
        room_id: RoomId::parse(&room_id)
            .map_err(|e| Error::invalid_param(format!("bad room ID: {e}")))?,
        signed: body.content.third_party_invite.signed,
    };
    if state.joins_remotely(&invite.room_id)? {
        return Err(Error::not_found("This server is not in that room"));
    }
    state.make_third_party_invite(&invite).await?;
    Ok(Json(json!({})))
}
