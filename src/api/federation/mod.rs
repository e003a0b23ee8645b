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
mod ruma_request;

use axum::Router;
use serde_json::{Value, json};

pub use origin::Origin;

use super::AppState;
use crate::error::{Error, Result};
use crate::service::{Services, now_ms};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(events::routes())
        .merge(backfill::routes())
        .merge(directory::routes())
        .merge(devices::routes())
}

/// A transaction-shaped answer (`/event`, `/backfill`): this server as `origin`, now as
/// `origin_server_ts`, and the PDUs.
fn transaction(state: &Services, pdus: Vec<Value>) -> Value {
    json!({
        "origin": state.server_name(),
        "origin_server_ts": now_ms(),
        "pdus": pdus,
    })
}

/// Runs store-heavy work (state, auth chains, walks through history) off the runtime's
/// worker threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Services) -> Result<T> + Send + 'static,
) -> Result<T> {
    let services = state.clone();
    tokio::task::spawn_blocking(move || work(&services))
        .await
        .map_err(Error::internal)?
}
