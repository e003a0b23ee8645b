//! Hearth's GIF search (`/_hearth/client/v1/gifs/`), a proxy to Giphy that keeps the API
//! key on the server and Giphy away from the people searching and reading.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::media::{content_disposition, safe_headers};
use crate::api::AppState;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::gifs::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};

/// A GIF's renditions do not change; `private` because the request carried a token.
const PREVIEW_CACHE_CONTROL: &str = "private, max-age=86400";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_hearth/client/v1/gifs/search", get(search))
        .route("/_hearth/client/v1/gifs/{id}/import", post(import))
        .route(
            "/_hearth/client/v1/gifs/{id}/preview",
            get(preview).layer(axum::middleware::map_response(safe_headers)),
        )
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn search(
    State(state): State<AppState>,
    _: Auth,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>> {
    state.require_gifs()?;
    let q = query
        .q
        .ok_or_else(|| Error::missing_param("Missing the q parameter"))?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n) if n < 1 => return Err(Error::invalid_param("limit must be positive")),
        // Larger pages are shortened, as Synapse does with its limits.
        Some(n) => u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
    };
    let offset = match query.offset {
        None => 0,
        Some(n) if (0..=i64::from(MAX_OFFSET)).contains(&n) => n as u32,
        Some(_) => {
            return Err(Error::invalid_param(format!(
                "offset must be between 0 and {MAX_OFFSET}"
            )));
        }
    };
    Ok(Json(state.gif_search(&q, limit, offset).await?))
}

async fn preview(
    State(state): State<AppState>,
    _: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let preview = state.gif_preview(&id).await?;
    let extension = preview.content_type.trim_start_matches("image/");
    let disposition = content_disposition(true, Some(&format!("{id}.{extension}")));
    let header = |text: &str| HeaderValue::from_str(text).map_err(Error::internal);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(preview.content_type),
            ),
            (header::CONTENT_DISPOSITION, header(&disposition)?),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(PREVIEW_CACHE_CONTROL),
            ),
        ],
        preview.bytes,
    )
        .into_response())
}

async fn import(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(state.gif_import(&authed.user_id, &id).await?))
}
