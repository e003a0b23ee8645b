//! `GET /_synapse/admin/v1/server_version`.

use axum::Json;
use axum::http::Method;
use axum::routing::get;
use serde_json::{Value, json};

use super::{Admin, Entry};

pub(super) fn table() -> Vec<Entry> {
    vec![(
        Method::GET,
        "/_synapse/admin/v1/server_version",
        get(server_version),
    )]
}

async fn server_version(Admin(_): Admin) -> Json<Value> {
    Json(json!({ "server_version": format!("Hearth {}", env!("CARGO_PKG_VERSION")) }))
}
