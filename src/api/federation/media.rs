//! `GET /_matrix/federation/v1/media/download/{mediaId}` and `.../thumbnail/{mediaId}`:
//! this server's own media for other servers (signed requests only, checked by the
//! `X-Matrix` layer). The answer is `multipart/mixed`: an empty JSON metadata part, then
//! the bytes with their `Content-Type` and `Content-Disposition`, streamed from the file.
//! Other servers' media cached here is never served: it is not ours to vouch for.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::Origin;
use crate::api::AppState;
use crate::api::client::media::{content_disposition, is_inline};
use crate::api::extract::{Path, Query};
use crate::error::{Error, Result};
use crate::service::media::multipart::Envelope;
use crate::service::media::{Fetch, ThumbnailRequest};
use crate::service::random_string;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_matrix/federation/v1/media/download/{media_id}",
            get(download),
        )
        .route(
            "/_matrix/federation/v1/media/thumbnail/{media_id}",
            get(thumbnail),
        )
}

#[derive(Deserialize)]
struct DownloadQuery {
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    width: Option<i64>,
    height: Option<i64>,
    method: Option<String>,
    animated: Option<bool>,
    timeout_ms: Option<u64>,
}

/// The file as the second part of a `multipart/mixed` answer, with a `Content-Length`.
async fn multipart_file(
    path: &std::path::Path,
    size: u64,
    content_type: &str,
    disposition: &str,
) -> Result<Response> {
    let file = tokio::fs::File::open(path).await.map_err(Error::internal)?;
    // Our own alphanumerics: never in the stored bytes' way, as a random 32-character
    // string is not going to turn up in them by chance.
    let boundary = random_string(32);
    let envelope = Envelope::new(
        &boundary,
        &[
            ("Content-Type", content_type),
            ("Content-Disposition", disposition),
        ],
    );
    let length = envelope.head.len() as u64 + size + envelope.tail.len() as u64;
    let head = futures_util::stream::once(async move { Ok(Bytes::from(envelope.head)) });
    let tail = futures_util::stream::once(async move { Ok(Bytes::from(envelope.tail)) });
    let body = head
        .chain(ReaderStream::with_capacity(file, 64 * 1024))
        .chain(tail);
    let content_type = HeaderValue::from_str(&envelope.content_type).map_err(Error::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

async fn download(
    State(state): State<AppState>,
    Origin(_origin): Origin,
    Path(media_id): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response> {
    let ours = state.server_name().to_string();
    let stored = state
        .media_content(&ours, &media_id, Fetch::local(query.timeout_ms))
        .await?;
    let content = &stored.content;
    let disposition = content_disposition(
        is_inline(&content.content_type),
        content.filename.as_deref(),
    );
    multipart_file(
        &stored.path,
        content.size,
        &content.content_type,
        &disposition,
    )
    .await
}

/// The same thumbnails, sized the same way, as the client endpoint gives.
async fn thumbnail(
    State(state): State<AppState>,
    Origin(_origin): Origin,
    Path(media_id): Path<String>,
    Query(query): Query<ThumbnailQuery>,
) -> Result<Response> {
    let request = ThumbnailRequest::parse(
        query.width,
        query.height,
        query.method.as_deref(),
        query.animated,
    )?;
    let ours = state.server_name().to_string();
    let thumb = state
        .media_thumbnail(&ours, &media_id, request, Fetch::local(query.timeout_ms))
        .await?;
    let name = format!("thumbnail.{}", thumb.kind.extension());
    let disposition = content_disposition(true, Some(&name));
    multipart_file(&thumb.path, thumb.size, &thumb.content_type, &disposition).await
}
