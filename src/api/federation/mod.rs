//! The server-server API: `/_matrix/federation/*`, one file per endpoint family.
//!
//! Every request under `/_matrix/federation/` must carry a valid `X-Matrix` signature
//! from its origin. A layer in this module checks it before any handler runs and puts
//! the verified origin into the request's extensions; handlers take it as [`Origin`].

mod backfill;
mod devices;
mod directory;
mod events;
mod origin;
mod respond;
mod ruma_request;

use axum::Router;

pub use origin::Origin;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(events::routes())
        .merge(backfill::routes())
        .merge(directory::routes())
        .merge(devices::routes())
}
