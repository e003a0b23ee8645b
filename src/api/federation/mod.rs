//! The server-server API: `/_matrix/federation/*`, one file per endpoint family.
//!
//! Every request under `/_matrix/federation/` must carry a valid `X-Matrix` signature
//! from its origin. A layer in this module checks it before any handler runs and puts
//! the verified origin into the request's extensions; handlers take it as [`Origin`].

mod backfill;
mod devices;
mod directory;
mod events;
mod invite;
mod membership;
mod origin;
mod respond;
mod ruma_request;
mod send;

use axum::Router;

pub use origin::Origin;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(send::routes())
        .merge(membership::routes())
        .merge(invite::routes())
        .merge(events::routes())
        .merge(backfill::routes())
        .merge(directory::routes())
        .merge(devices::routes())
}
