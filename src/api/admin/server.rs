//! `GET /_synapse/admin/v1/server_version`, `POST /_hearth/admin/v1/backup` and
//! `GET /_hearth/admin/v1/statistics`.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::error::{Error, Result};
use crate::service::admin::backup::take_backup;
use crate::service::now_ms;

pub(super) fn table() -> Vec<Entry> {
    vec![
        (
            Method::GET,
            "/_synapse/admin/v1/server_version",
            get(server_version),
        ),
        (Method::POST, "/_hearth/admin/v1/backup", post(backup)),
        (Method::GET, "/_hearth/admin/v1/statistics", get(statistics)),
    ]
}

async fn server_version(Admin(_): Admin) -> Json<Value> {
    Json(json!({ "server_version": format!("Hearth {}", env!("CARGO_PKG_VERSION")) }))
}

/// Counts of accounts, active users, rooms, events, media and open sync connections.
async fn statistics(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<Value>> {
    let stats = state.admin_statistics()?;
    Ok(Json(serde_json::to_value(stats).map_err(Error::internal)?))
}

/// A live backup of the data directory, in `<data>/backups/`; answers its path.
async fn backup(State(state): State<AppState>, Admin(admin): Admin) -> Result<Json<Value>> {
    let store = state.store.clone();
    let data = state.config.data.clone();
    let path = tokio::task::spawn_blocking(move || take_backup(&store, &data, now_ms()))
        .await
        .map_err(Error::internal)??;
    let path = path.display().to_string();
    state.audit(&admin.user_id, "backup", &path, None)?;
    Ok(Json(json!({ "path": path })))
}
