//! Shared by the handlers that serve a room's events to other servers.

use serde_json::{Value, json};

use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::{Services, now_ms};

/// A transaction-shaped answer (`/event`, `/backfill`): this server as `origin`, now as
/// `origin_server_ts`, and the PDUs.
pub fn transaction(state: &Services, pdus: Vec<Value>) -> Value {
    json!({
        "origin": state.server_name(),
        "origin_server_ts": now_ms(),
        "pdus": pdus,
    })
}

/// Runs store-heavy work (state, auth chains, walks through history) off the runtime's
/// worker threads.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Services) -> Result<T> + Send + 'static,
) -> Result<T> {
    let services = state.clone();
    tokio::task::spawn_blocking(move || work(&services))
        .await
        .map_err(Error::internal)?
}
