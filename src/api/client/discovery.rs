//! Versions, capabilities and `.well-known` discovery.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::Auth;
use crate::error::{Error, Result};
use crate::event::room_version::RoomVersion;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/versions", get(versions))
        .route("/.well-known/matrix/client", get(well_known))
        .route("/.well-known/matrix/server", get(well_known_server))
        .route("/_matrix/client/v3/capabilities", get(capabilities))
}

async fn versions() -> Json<Value> {
    Json(json!({
        "versions": [
            "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6",
            "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15",
            "v1.16",
        ],
        "unstable_features": {
            super::sliding_sync::UNSTABLE_FEATURE: true,
            super::dehydrated_device::UNSTABLE_FEATURE: true,
            "org.matrix.msc4174": true,
        },
    }))
}

async fn well_known(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "m.homeserver": { "base_url": state.config.public_baseurl() } }))
}

/// Federation delegation, when `well_known.server` is set; otherwise 404, as a server
/// without delegation answers (other servers then use port 8448 of the server name).
async fn well_known_server(State(state): State<AppState>) -> Result<Json<Value>> {
    match &state.config.well_known.server {
        Some(server) => Ok(Json(json!({ "m.server": server }))),
        None => Err(Error::not_found(
            "This server does not delegate federation (well_known.server is not set)",
        )),
    }
}

/// Only what is implemented is advertised. `m.room_versions` lists every version Hearth can
/// create and join, all stable; the default is the one new rooms get.
async fn capabilities(State(state): State<AppState>, Auth(authed): Auth) -> Json<Value> {
    let available: serde_json::Map<String, Value> = RoomVersion::ALL
        .iter()
        .map(|v| (v.as_str().to_owned(), json!("stable")))
        .collect();
    let mut body = json!({
        "capabilities": {
            "m.room_versions": {
                "default": RoomVersion::default().as_str(),
                "available": available,
            },
            "m.change_password": { "enabled": true },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.profile_fields": { "enabled": true },
            "m.3pid_changes": { "enabled": state.email.enabled() },
            "m.get_login_token": { "enabled": false },
        }
    });
    // MSC4174: Web Push pushers, with the VAPID key subscriptions are made with (also
    // under the unstable name clients looked for before the MSC dropped its prefix).
    let webpush = json!({ "enabled": true, "vapid": state.pushers.vapid_public_key() });
    body["capabilities"]["m.webpush"] = webpush.clone();
    body["capabilities"]["org.matrix.msc4174.webpush"] = webpush;
    // Server admins may lock and suspend accounts; the spec omits the capability for others.
    if state.require_server_admin(&authed.user_id).is_ok() {
        body["capabilities"]["m.account_moderation"] = json!({ "lock": true, "suspend": true });
    }
    Json(body)
}
