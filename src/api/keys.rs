//! `/_matrix/key/v2/server`: the server's published signing key; and, with federation
//! on, the notary endpoints `/_matrix/key/v2/query` (`GET` for one server, `POST` for
//! several), which hand on servers' own key answers with this server's signature added.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use ruma::api::federation::discovery::get_remote_server_keys_batch::v2::QueryCriteria;
use ruma::{OwnedServerName, OwnedServerSigningKeyId, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::api::extract::{MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::federation::keys::MAX_NOTARY_SERVERS;
use crate::service::now_ms;

pub fn routes(state: &AppState) -> Router<AppState> {
    // The `{keyId}` form left the spec in v1.6; Synapse still answers it (with every
    // key, as the key ID never narrowed the answer), and older servers and SyTest ask it.
    let router = Router::new()
        .route("/_matrix/key/v2/server", get(server_keys))
        .route("/_matrix/key/v2/server/{key_id}", get(server_keys));
    if !state.config.federation.enabled {
        return router;
    }
    router
        .route("/_matrix/key/v2/query/{server_name}", get(query_one))
        .route(
            "/_matrix/key/v2/query/{server_name}/{key_id}",
            get(query_one_by_key_id),
        )
        .route("/_matrix/key/v2/query", post(query_many))
}

async fn server_keys(State(state): State<AppState>) -> Result<Json<Value>> {
    state
        .keys
        .server_keys_response(now_ms())
        .map(Json)
        .map_err(Error::internal)
}

#[derive(Deserialize)]
struct QueryOneParams {
    minimum_valid_until_ts: Option<u64>,
}

async fn query_one(
    State(state): State<AppState>,
    Path(server_name): Path<String>,
    Query(params): Query<QueryOneParams>,
) -> Result<Json<Value>> {
    let server = ServerName::parse(&server_name)
        .map_err(|e| Error::invalid_param(format!("Invalid server name {server_name:?}: {e}")))?;
    let answers = state
        .server_keys
        .notary_answer(&server, params.minimum_valid_until_ts)
        .await
        .into_iter()
        .collect::<Vec<_>>();
    Ok(Json(json!({ "server_keys": answers })))
}

/// The `{keyId}` form of the notary query, gone from the spec with the server one (v1.6);
/// as there, the key ID does not narrow the answer.
async fn query_one_by_key_id(
    state: State<AppState>,
    Path((server_name, _key_id)): Path<(String, String)>,
    params: Query<QueryOneParams>,
) -> Result<Json<Value>> {
    query_one(state, Path(server_name), params).await
}

#[derive(Deserialize)]
struct QueryManyBody {
    server_keys: BTreeMap<OwnedServerName, BTreeMap<OwnedServerSigningKeyId, QueryCriteria>>,
}

/// Every server asked for, in parallel; servers that cannot be reached and have nothing
/// cached are left out, as the spec says.
async fn query_many(
    State(state): State<AppState>,
    MatrixJson(body): MatrixJson<QueryManyBody>,
) -> Result<Json<Value>> {
    if body.server_keys.len() > MAX_NOTARY_SERVERS {
        return Err(Error::invalid_param(format!(
            "At most {MAX_NOTARY_SERVERS} servers can be queried at once"
        )));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (server, criteria) in body.server_keys {
        // The latest minimum asked for any key of the server.
        let minimum = criteria
            .values()
            .filter_map(|c| c.minimum_valid_until_ts)
            .map(|ts| u64::from(ts.get()))
            .max();
        let store = state.server_keys.clone();
        tasks.spawn(async move { store.notary_answer(&server, minimum).await });
    }
    let mut answers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Some(answer) = result.map_err(Error::internal)? {
            answers.push(answer);
        }
    }
    Ok(Json(json!({ "server_keys": answers })))
}
