//! Membership endpoints: join, knock, leave, forget, invite, kick, ban, unban.

use axum::extract::{Query, State};
use axum::routing::{MethodRouter, post};
use axum::{Json, Router};
use ruma::{OwnedRoomId, OwnedServerName, OwnedUserId, ServerName};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::parse_room_id;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, ErrorKind, Result};
use crate::service::identity::invite::{BoundInvite, ThirdPartyInvite};
use crate::service::ratelimit::Family;
use crate::service::rooms::MembershipChange;
use crate::service::sessions::Authed;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/client/v3/join/{room_id_or_alias}",
            post(join_by_id_or_alias),
        )
        .route("/_matrix/client/v3/rooms/{room_id}/join", post(join))
        .route("/_matrix/client/v3/knock/{room_id_or_alias}", post(knock))
        .route("/_matrix/client/v3/rooms/{room_id}/leave", post(leave))
        .route("/_matrix/client/v3/rooms/{room_id}/forget", post(forget))
        .route("/_matrix/client/v3/rooms/{room_id}/invite", post(invite))
        .route(
            "/_matrix/client/v3/rooms/{room_id}/kick",
            targeted(MembershipChange::Kick),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/ban",
            targeted(MembershipChange::Ban),
        )
        .route(
            "/_matrix/client/v3/rooms/{room_id}/unban",
            targeted(MembershipChange::Unban),
        )
}

#[derive(Deserialize)]
struct ReasonBody {
    reason: Option<String>,
}

/// A `/join` body: `reason`, and any other keys, which go into the join event as
/// Synapse puts them (`third_party_signed` is a request parameter and is dropped).
#[derive(Deserialize)]
struct JoinBody {
    reason: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl JoinBody {
    /// The reason, the other keys, and `third_party_signed` (an identity server's signed
    /// proof of a third-party invite).
    fn content(mut self) -> JoinContent {
        let signed = self.extra.remove("third_party_signed");
        (self.reason, self.extra, signed)
    }
}

type JoinContent = (Option<String>, Map<String, Value>, Option<Value>);

/// A `/invite` body: a user ID (`inviting.yaml`), or a third-party identifier and the
/// identity server to look it up at (`third_party_membership.yaml`).
#[derive(Deserialize)]
struct InviteBody {
    user_id: Option<OwnedUserId>,
    reason: Option<String>,
    id_server: Option<String>,
    id_access_token: Option<String>,
    medium: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
struct TargetBody {
    user_id: OwnedUserId,
    reason: Option<String>,
}

/// A room named by ID or by an alias of any server, as `/join` and `/knock` accept; a
/// remote alias adds the servers its server names to `via`.
pub(super) async fn room_id_or_alias(
    state: &AppState,
    target: &str,
    via: &mut Vec<OwnedServerName>,
) -> Result<OwnedRoomId> {
    if !target.starts_with('#') {
        return parse_room_id(target);
    }
    let (room_id, servers) = state
        .resolve_alias_anywhere(&state.parse_alias(target)?)
        .await?;
    via.extend(servers);
    Ok(room_id)
}

/// `join` and `knock` change the caller's own membership and answer with the room ID.
async fn own_membership(
    state: &AppState,
    authed: &Authed,
    room_id: OwnedRoomId,
    change: MembershipChange,
    reason: Option<String>,
) -> Result<Json<Value>> {
    state
        .change_membership(&room_id, &authed.user_id, &authed.user_id, change, reason)
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

async fn join_by_id_or_alias(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(target): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    MatrixJson(body): MatrixJson<JoinBody>,
) -> Result<Json<Value>> {
    let mut via = via_servers(&query);
    let room_id = room_id_or_alias(&state, &target, &mut via).await?;
    join_room(&state, &authed, room_id, via, body.content()).await
}

async fn join(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<JoinBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    join_room(&state, &authed, room_id, Vec::new(), body.content()).await
}

/// `via` (and its older name `server_name`), repeated: servers to join through.
pub(super) fn via_servers(query: &[(String, String)]) -> Vec<OwnedServerName> {
    query
        .iter()
        .filter(|(k, _)| k == "via" || k == "server_name")
        .filter_map(|(_, v)| ServerName::parse(v).ok())
        .collect()
}

/// Joins here when this server can make the join itself, through another server
/// otherwise.
async fn join_room(
    state: &AppState,
    authed: &Authed,
    room_id: OwnedRoomId,
    via: Vec<OwnedServerName>,
    (reason, extra, third_party_signed): JoinContent,
) -> Result<Json<Value>> {
    state.check_may_enter(&authed.user_id, &room_id)?;
    state.rate_limit(Family::Joins, &authed.user_id)?;
    // A join with an identity server's proof turns the third-party invite into an
    // invite first, as Synapse does.
    if let Some(signed) = third_party_signed {
        let invite = BoundInvite::from_join(&signed, &authed.user_id, &room_id)?;
        state.exchange_third_party_invite(&invite).await?;
    }
    if state.joins_remotely(&room_id)? {
        let mut via = via;
        via.extend(state.invite_servers(&room_id, &authed.user_id)?);
        state
            .join_remote_room(&room_id, &authed.user_id, &via)
            .await?;
        // The room's state is known only once joined: a guest in a room that does not
        // admit guests leaves again at once.
        if authed.is_guest && !state.guests_may_join(&room_id)? {
            state
                .change_membership(
                    &room_id,
                    &authed.user_id,
                    &authed.user_id,
                    MembershipChange::Leave,
                    None,
                )
                .await?;
            return Err(Error::new(
                ErrorKind::GuestAccessForbidden,
                "Guest access is not allowed in this room",
            ));
        }
        return Ok(Json(json!({ "room_id": room_id })));
    }
    state
        .change_membership_with(
            &room_id,
            &authed.user_id,
            &authed.user_id,
            MembershipChange::Join,
            reason,
            extra,
        )
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// Knocks here when this server is in the room, through another server otherwise.
async fn knock(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(target): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> Result<Json<Value>> {
    let mut via = via_servers(&query);
    let room_id = room_id_or_alias(&state, &target, &mut via).await?;
    state.check_may_enter(&authed.user_id, &room_id)?;
    state.rate_limit(Family::Joins, &authed.user_id)?;
    if state.joins_remotely(&room_id)? {
        state
            .knock_remote_room(&room_id, &authed.user_id, &via, body.reason)
            .await?;
        return Ok(Json(json!({ "room_id": room_id })));
    }
    own_membership(
        &state,
        &authed,
        room_id,
        MembershipChange::Knock,
        body.reason,
    )
    .await
}

async fn forget(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    state.forget_room(&room_id, &authed.user_id).await?;
    Ok(Json(json!({})))
}

async fn leave(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<ReasonBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    state
        .change_membership(
            &room_id,
            &authed.user_id,
            &authed.user_id,
            MembershipChange::Leave,
            body.reason,
        )
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/invite`: by user ID, or by 3PID (`medium` and `address`, which
/// need `id_server` and `id_access_token`, as Synapse asks).
async fn invite(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(room_id): Path<String>,
    MatrixJson(body): MatrixJson<InviteBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let third_party = match (&body.medium, &body.address) {
        (Some(medium), Some(address)) => {
            let (Some(id_server), Some(id_access_token)) = (&body.id_server, &body.id_access_token)
            else {
                return Err(Error::missing_param(
                    "id_server and id_access_token are required for an invite by 3PID",
                ));
            };
            Some(ThirdPartyInvite {
                id_server: id_server.clone(),
                id_access_token: id_access_token.clone(),
                medium: medium.clone(),
                address: address.clone(),
            })
        }
        _ => None,
    };
    // As for kick and ban, a body without its user is malformed.
    if third_party.is_none() && body.user_id.is_none() {
        return Err(Error::bad_json(
            "user_id, or medium and address, are required",
        ));
    }
    state.check_may_enter(&authed.user_id, &room_id)?;
    state.rate_limit(Family::Invites, &authed.user_id)?;
    // A shadow-banned user's invites are answered but never sent.
    if state.is_shadow_banned(&authed.user_id)? {
        return Ok(Json(json!({})));
    }
    if let Some(invite) = third_party {
        state
            .invite_third_party(&room_id, &authed.user_id, &invite)
            .await?;
        return Ok(Json(json!({})));
    }
    let Some(user_id) = body.user_id else {
        return Err(Error::bad_json("user_id is required"));
    };
    state
        .change_membership(
            &room_id,
            &authed.user_id,
            &user_id,
            MembershipChange::Invite,
            body.reason,
        )
        .await?;
    Ok(Json(json!({})))
}

/// `POST /rooms/{roomId}/kick|ban|unban`: one request shape, one membership change each.
fn targeted(change: MembershipChange) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              Auth(authed): Auth,
              Path(room_id): Path<String>,
              MatrixJson(body): MatrixJson<TargetBody>| async move {
            let room_id = parse_room_id(&room_id)?;
            state
                .change_membership(
                    &room_id,
                    &authed.user_id,
                    &body.user_id,
                    change,
                    body.reason,
                )
                .await?;
            Ok::<_, Error>(Json(json!({})))
        },
    )
}
