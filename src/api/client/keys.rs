//! End-to-end encryption keys: `/keys/upload`, `/keys/query`, `/keys/claim`,
//! `/keys/changes`, and cross-signing (`/keys/device_signing/upload`,
//! `/keys/signatures/upload`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::account::password_requirement;
use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Query};
use crate::error::{Error, Result};
use crate::service::e2ee::{
    ClaimRequest, KeysUpload, QueryRequest, SignaturesUpload, SigningKeysUpload,
};
use crate::service::sync::SyncToken;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/client/v3/keys/upload", post(upload))
        .route("/_matrix/client/v3/keys/query", post(query))
        .route("/_matrix/client/v3/keys/claim", post(claim))
        .route("/_matrix/client/v3/keys/changes", get(changes))
        .route(
            "/_matrix/client/v3/keys/device_signing/upload",
            post(device_signing_upload),
        )
        .route(
            "/_matrix/client/v3/keys/signatures/upload",
            post(signatures_upload),
        )
        // The unstable names of cross-signing (MSC1756), which Synapse still serves and
        // older clients (SyTest among them) use.
        .route(
            "/_matrix/client/unstable/keys/device_signing/upload",
            post(device_signing_upload),
        )
        .route(
            "/_matrix/client/unstable/keys/signatures/upload",
            post(signatures_upload),
        )
}

async fn upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<KeysUpload>,
) -> Result<Json<Value>> {
    let counts = state.upload_keys(&authed.user_id, &authed.device_id, body)?;
    Ok(Json(json!({ "one_time_key_counts": counts })))
}

async fn query(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<QueryRequest>,
) -> Result<Json<Value>> {
    Ok(Json(state.query_keys(&authed.user_id, body).await?))
}

async fn claim(
    State(state): State<AppState>,
    Auth(_authed): Auth,
    MatrixJson(body): MatrixJson<ClaimRequest>,
) -> Result<Json<Value>> {
    Ok(Json(state.claim_keys(body).await?))
}

#[derive(Deserialize)]
struct ChangesParams {
    from: String,
    to: String,
}

fn parse_token(name: &str, token: &str) -> Result<SyncToken> {
    SyncToken::parse(token).ok_or_else(|| {
        Error::invalid_param(format!(
            "{name} {token:?} is not a sync token from this server"
        ))
    })
}

async fn changes(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(params): Query<ChangesParams>,
) -> Result<Json<Value>> {
    let from = parse_token("from", &params.from)?;
    let to = parse_token("to", &params.to)?;
    let delta = state.device_list_delta(
        &authed.user_id,
        (from.device_lists, to.device_lists),
        (from.events, to.events),
    )?;
    Ok(Json(
        json!({ "changed": delta.changed, "left": delta.left }),
    ))
}

#[derive(Deserialize)]
struct DeviceSigningBody {
    #[serde(flatten)]
    keys: SigningKeysUpload,
    auth: Option<Map<String, Value>>,
}

/// Replacing cross-signing keys needs the password; the first upload (and a retry of
/// the same keys) does not, as the spec allows.
async fn device_signing_upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<DeviceSigningBody>,
) -> Result<Json<Value>> {
    if state.has_master_key(&authed.user_id)?
        && !state.signing_keys_unchanged(&authed.user_id, &body.keys)?
    {
        state
            .authenticate(
                password_requirement("device_signing_upload", &authed.user_id),
                body.auth.as_ref(),
            )
            .await?;
    }
    state.upload_signing_keys(&authed.user_id, body.keys)?;
    Ok(Json(json!({})))
}

async fn signatures_upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MatrixJson(body): MatrixJson<SignaturesUpload>,
) -> Result<Json<Value>> {
    Ok(Json(state.upload_signatures(&authed.user_id, body)?))
}
