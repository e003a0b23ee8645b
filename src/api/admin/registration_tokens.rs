//! Registration tokens at Synapse's paths: list, show, create, update, delete.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{Admin, Entry};
use crate::api::AppState;
use crate::api::extract::{MatrixJson, Path, Query};
use crate::error::{Error, Result};
use crate::service::admin::{NewRegistrationToken, RegistrationTokenChange};

const BASE: &str = "/_synapse/admin/v1/registration_tokens";
const ONE: &str = "/_synapse/admin/v1/registration_tokens/{token}";

pub(super) fn table() -> Vec<Entry> {
    vec![
        (Method::GET, BASE, get(list)),
        (
            Method::POST,
            "/_synapse/admin/v1/registration_tokens/new",
            post(create),
        ),
        (Method::GET, ONE, get(show)),
        (Method::PUT, ONE, put(update)),
        (Method::DELETE, ONE, delete(remove)),
    ]
}

#[derive(Deserialize)]
struct ListQuery {
    valid: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let valid = match query.valid.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Error::invalid_param(format!(
                "valid must be true or false, not {other:?}"
            )));
        }
    };
    let tokens = state.admin_registration_tokens(valid)?;
    Ok(Json(json!({ "registration_tokens": tokens })))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(token): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(json!(state.admin_registration_token(&token)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    token: Option<String>,
    length: Option<usize>,
    uses_allowed: Option<u64>,
    expiry_time: Option<u64>,
}

async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    MatrixJson(body): MatrixJson<CreateBody>,
) -> Result<Json<Value>> {
    let token = state
        .admin_create_registration_token(
            &admin.user_id,
            NewRegistrationToken {
                token: body.token,
                length: body.length,
                uses_allowed: body.uses_allowed,
                expiry_time: body.expiry_time,
            },
        )
        .await?;
    Ok(Json(json!(token)))
}

/// A field that may be absent (leave it), `null` (no limit) or a value.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<u64>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    uses_allowed: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    expiry_time: Option<Option<u64>>,
}

async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(token): Path<String>,
    MatrixJson(body): MatrixJson<UpdateBody>,
) -> Result<Json<Value>> {
    let token = state
        .admin_update_registration_token(
            &admin.user_id,
            &token,
            RegistrationTokenChange {
                uses_allowed: body.uses_allowed,
                expiry_time: body.expiry_time,
            },
        )
        .await?;
    Ok(Json(json!(token)))
}

async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(token): Path<String>,
) -> Result<Json<Value>> {
    state
        .admin_delete_registration_token(&admin.user_id, &token)
        .await?;
    Ok(Json(json!({})))
}
