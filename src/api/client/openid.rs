//! `POST /user/{userId}/openid/request_token`: a token that proves who the user is to a
//! third party (see `src/service/openid.rs`).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::extract::{Auth, MatrixJson, Path};
use crate::error::{Error, Result};

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/_matrix/client/v3/user/{user_id}/openid/request_token",
        post(request_token),
    )
}

async fn request_token(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(user_id): Path<String>,
    MatrixJson(_body): MatrixJson<Map<String, Value>>,
) -> Result<Json<Value>> {
    if authed.user_id.as_str() != user_id {
        return Err(Error::forbidden(
            "You may only request OpenID tokens for yourself",
        ));
    }
    let token = state.request_openid_token(&authed.user_id)?;
    Ok(Json(json!({
        "access_token": token.access_token,
        "token_type": "Bearer",
        "matrix_server_name": state.server_name(),
        "expires_in": token.expires_in_secs,
    })))
}
