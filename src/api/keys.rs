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
use crate::service::federation::keys::{MAX_NOTARY_SERVERS, NotaryQuery};
use crate::service::now_ms;

pub fn routes(state: &AppState) -> Router<AppState> {
    // The `{keyId}` form left the spec in v1.6; Synapse still answers it, and older
    // servers and SyTest ask it.
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
    query_server(state, server_name, BTreeMap::new(), params).await
}

async fn query_server(
    state: AppState,
    server_name: String,
    key_ids: BTreeMap<String, Option<u64>>,
    params: QueryOneParams,
) -> Result<Json<Value>> {
    let server = ServerName::parse(&server_name)
        .map_err(|e| Error::invalid_param(format!("Invalid server name {server_name:?}: {e}")))?;
    let query = NotaryQuery {
        key_ids,
        minimum_valid_until_ts: params.minimum_valid_until_ts,
    };
    let answers = state.server_keys.notary_answer(&server, &query).await;
    Ok(Json(json!({ "server_keys": answers })))
}

/// The `{keyId}` form of the notary query, gone from the spec with the server one (v1.6).
async fn query_one_by_key_id(
    State(state): State<AppState>,
    Path((server_name, key_id)): Path<(String, String)>,
    Query(params): Query<QueryOneParams>,
) -> Result<Json<Value>> {
    query_server(state, server_name, BTreeMap::from([(key_id, None)]), params).await
}

#[derive(Deserialize)]
struct QueryManyBody {
    server_keys: BTreeMap<OwnedServerName, BTreeMap<OwnedServerSigningKeyId, QueryCriteria>>,
}

/// Every server asked for, in parallel; servers that cannot be reached and have nothing
/// known are left out, as the spec says.
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
        let query = NotaryQuery {
            key_ids: criteria
                .into_iter()
                .map(|(id, c)| {
                    let minimum = c.minimum_valid_until_ts.map(|ts| u64::from(ts.get()));
                    (id.to_string(), minimum)
                })
                .collect(),
            minimum_valid_until_ts: None,
        };
        let store = state.server_keys.clone();
        tasks.spawn(async move { store.notary_answer(&server, &query).await });
    }
    let mut answers = Vec::new();
    while let Some(result) = tasks.join_next().await {
        answers.extend(result.map_err(Error::internal)?);
    }
    Ok(Json(json!({ "server_keys": answers })))
}
