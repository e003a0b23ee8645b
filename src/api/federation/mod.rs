//! The server-server API: `/_matrix/federation/*`, one file per endpoint family.
//!
//! Every request under `/_matrix/federation/` but `GET /v1/version`,
//! `GET /v1/openid/userinfo` (asked by third parties with an OpenID token) and
//! `/v1/3pid/onbind` (called by identity servers) must carry a valid
//! `X-Matrix` signature from its origin. The layer in [`auth`] checks it before any
//! handler runs and puts the verified origin into the request's extensions; handlers
//! take it as [`Origin`].

pub mod auth;
mod backfill;
mod devices;
mod directory;
mod events;
mod hierarchy;
mod invite;
mod media;
mod membership;
mod openid;
mod origin;
mod query;
mod respond;
mod ruma_request;
mod send;
mod third_party;
mod user_keys;
mod version;

use axum::Router;
use axum::middleware::from_fn_with_state;

pub use origin::Origin;

/// The largest body another server may send: a transaction of 50 PDUs of up to 64 KiB
/// each is over 3 MiB, more than clients get (`max_request_bytes`, 1 MiB by default).
const MAX_FEDERATION_BODY: usize = 4 * 1024 * 1024;

/// The body limit for a request to `path`.
pub fn body_limit(configured: usize, path: &str) -> usize {
    if path.starts_with("/_matrix/federation/") {
        configured.max(MAX_FEDERATION_BODY)
    } else {
        configured
    }
}

use super::AppState;

/// The federation endpoints; only OpenID's userinfo when `federation.enabled` is off.
/// Endpoints that need a signature are merged into `signed`, under the `X-Matrix` layer
/// (a route layer, so unknown paths keep their 404 `M_UNRECOGNIZED` without a signature).
pub fn routes(state: &AppState) -> Router<AppState> {
    // OpenID's userinfo serves third parties, not other homeservers: it is there with
    // federation off too.
    if !state.config.federation.enabled {
        return openid::routes();
    }
    let signed = Router::new()
        .merge(query::routes())
        .merge(send::routes())
        .merge(membership::routes())
        .merge(invite::routes())
        .merge(events::routes())
        .merge(backfill::routes())
        .merge(directory::routes())
        .merge(hierarchy::routes())
        .merge(devices::routes())
        .merge(media::routes())
        .merge(user_keys::routes())
        .merge(third_party::signed_routes())
        .route_layer(from_fn_with_state(state.clone(), auth::require_signature));
    Router::new()
        .merge(version::routes())
        .merge(openid::routes())
        .merge(third_party::open_routes())
        .merge(signed)
}
