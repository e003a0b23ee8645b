//! `GET /_matrix/federation/v1/openid/userinfo`: who an OpenID token belongs to. Asked by
//! third parties (not homeservers), so it carries no `X-Matrix` signature; the token is
//! the only credential.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::extract::Query;
use crate::error::{Error, ErrorKind, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route("/_matrix/federation/v1/openid/userinfo", get(userinfo))
}

#[derive(Deserialize)]
struct UserinfoQuery {
    access_token: Option<String>,
}

async fn userinfo(
    State(state): State<AppState>,
    Query(query): Query<UserinfoQuery>,
) -> Result<Json<Value>> {
    let Some(token) = query.access_token else {
        return Err(Error::new(
            ErrorKind::MissingToken,
            "Give the OpenID token as access_token",
        ));
    };
    let user_id = state.openid_userinfo(&token)?;
    Ok(Json(json!({ "sub": user_id })))
}
