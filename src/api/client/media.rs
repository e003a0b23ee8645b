//! The content repository: uploads under `/_matrix/media/`, authenticated downloads,
//! thumbnails and configuration under `/_matrix/client/v1/media/`, and the deprecated
//! unauthenticated downloads, which answer only when `media.legacy_unauthenticated` is on.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::io::ReaderStream;

use crate::api::AppState;
use crate::api::extract::{Auth, Path, Query};
use crate::error::{Error, Result};
use crate::service::media::{Fetch, ThumbnailRequest, UploadMeta, essence};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_matrix/media/v3/upload", post(upload))
        .route(
            "/_matrix/media/v3/upload/{server_name}/{media_id}",
            put(upload_reserved),
        )
        .route("/_matrix/media/v1/create", post(create))
        .route("/_matrix/client/v1/media/config", get(config))
        // Authenticated in the spec too, so the freeze does not concern it.
        .route("/_matrix/media/v3/config", get(config))
        .route(
            "/_matrix/client/v1/media/download/{server_name}/{media_id}",
            get(download),
        )
        .route(
            "/_matrix/client/v1/media/download/{server_name}/{media_id}/{file_name}",
            get(download_named),
        )
        .route(
            "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}",
            get(thumbnail),
        )
        .route(
            "/_matrix/media/v3/download/{server_name}/{media_id}",
            get(legacy_download),
        )
        .route(
            "/_matrix/media/v3/download/{server_name}/{media_id}/{file_name}",
            get(legacy_download_named),
        )
        .route(
            "/_matrix/media/v3/thumbnail/{server_name}/{media_id}",
            get(legacy_thumbnail),
        )
        .layer(axum::middleware::map_response(safe_headers))
}

/// The spec's recommended policy, with `media-src 'self'` so audio and video still play
/// when opened directly. Media from users must never run as a page of this origin.
const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// Media never changes under its ID; `private` because downloads need an access token.
const CACHE_CONTROL: &str = "private, max-age=31536000, immutable";

/// Types the spec lists as safe to serve `inline`; everything else is an attachment.
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// Also laid over other endpoints that send images (the GIF previews).
pub(super) async fn safe_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    response
}

pub fn is_inline(content_type: &str) -> bool {
    INLINE_TYPES.contains(&essence(content_type).as_str())
}

/// RFC 6266: a plain quoted `filename` when the name is printable ASCII without quotes or
/// backslashes, otherwise `filename*` with the UTF-8 bytes percent-encoded (RFC 8187).
pub fn content_disposition(inline: bool, filename: Option<&str>) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let Some(name) = filename.filter(|n| !n.is_empty()) else {
        return kind.to_owned();
    };
    let plain = name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        return format!("{kind}; filename=\"{name}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename*=UTF-8''{encoded}")
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: Option<String>,
}

fn upload_meta(headers: &HeaderMap, filename: Option<String>) -> Result<(UploadMeta, Option<u64>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| Error::invalid_param("Content-Type must be printable ASCII"))
        })
        .transpose()?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    Ok((
        UploadMeta {
            content_type,
            filename,
        },
        declared,
    ))
}

async fn upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let (meta, declared) = upload_meta(&headers, query.filename)?;
    let media_id = state
        .upload_media(&authed.user_id, meta, declared, body.into_data_stream())
        .await?;
    Ok(Json(json!({ "content_uri": state.mxc(&media_id) })))
}

async fn create(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>> {
    let (media_id, expires_at) = state.create_media(&authed.user_id).await?;
    Ok(Json(json!({
        "content_uri": state.mxc(&media_id),
        "unused_expires_at": expires_at,
    })))
}

async fn upload_reserved(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let (meta, declared) = upload_meta(&headers, query.filename)?;
    state
        .upload_reserved_media(
            &authed.user_id,
            &server_name,
            &media_id,
            meta,
            declared,
            body.into_data_stream(),
        )
        .await?;
    Ok(Json(json!({})))
}

async fn config(State(state): State<AppState>, _: Auth) -> Json<Value> {
    Json(json!({ "m.upload.size": state.config.media.max_upload_bytes }))
}

/// `allow_remote=false` keeps the request to this server's own media; `allow_redirect`
/// is accepted and has nothing to change (there is no CDN to redirect to).
#[derive(Deserialize)]
struct DownloadQuery {
    timeout_ms: Option<u64>,
    allow_remote: Option<bool>,
}

async fn file_response(
    path: &std::path::Path,
    size: u64,
    content_type: &str,
    disposition: String,
) -> Result<Response> {
    let file = tokio::fs::File::open(path).await.map_err(Error::internal)?;
    let body = Body::from_stream(ReaderStream::with_capacity(file, 64 * 1024));
    let header = |text: &str| HeaderValue::from_str(text).map_err(Error::internal);
    Ok((
        [
            (header::CONTENT_TYPE, header(content_type)?),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
            (header::CONTENT_DISPOSITION, header(&disposition)?),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
        ],
        body,
    )
        .into_response())
}

async fn serve_download(
    state: &AppState,
    server_name: &str,
    media_id: &str,
    file_name: Option<&str>,
    query: DownloadQuery,
) -> Result<Response> {
    let fetch = Fetch {
        timeout_ms: query.timeout_ms,
        allow_remote: query.allow_remote.unwrap_or(true),
    };
    let stored = state.media_content(server_name, media_id, fetch).await?;
    let content = &stored.content;
    let filename = file_name.or(content.filename.as_deref());
    let disposition = content_disposition(is_inline(&content.content_type), filename);
    file_response(
        &stored.path,
        content.size,
        &content.content_type,
        disposition,
    )
    .await
}

async fn download(
    State(state): State<AppState>,
    _: Auth,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response> {
    serve_download(&state, &server_name, &media_id, None, query).await
}

async fn download_named(
    State(state): State<AppState>,
    _: Auth,
    Path((server_name, media_id, file_name)): Path<(String, String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response> {
    serve_download(&state, &server_name, &media_id, Some(&file_name), query).await
}

#[derive(Deserialize)]
struct ThumbnailQuery {
    width: Option<i64>,
    height: Option<i64>,
    method: Option<String>,
    animated: Option<bool>,
    timeout_ms: Option<u64>,
    allow_remote: Option<bool>,
}

async fn serve_thumbnail(
    state: &AppState,
    server_name: &str,
    media_id: &str,
    query: ThumbnailQuery,
) -> Result<Response> {
    let request = ThumbnailRequest::parse(
        query.width,
        query.height,
        query.method.as_deref(),
        query.animated,
    )?;
    let fetch = Fetch {
        timeout_ms: query.timeout_ms,
        allow_remote: query.allow_remote.unwrap_or(true),
    };
    let thumb = state
        .media_thumbnail(server_name, media_id, request, fetch)
        .await?;
    let name = format!("thumbnail.{}", thumb.kind.extension());
    file_response(
        &thumb.path,
        thumb.size,
        &thumb.content_type,
        content_disposition(true, Some(&name)),
    )
    .await
}

async fn thumbnail(
    State(state): State<AppState>,
    _: Auth,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<ThumbnailQuery>,
) -> Result<Response> {
    serve_thumbnail(&state, &server_name, &media_id, query).await
}

/// The spec (1.11) asks servers to freeze the unauthenticated endpoints for media uploaded
/// after the freeze, answering `M_NOT_FOUND`. Hearth had no media before, so with the
/// switch off every medium is "after the freeze".
fn check_legacy(state: &AppState) -> Result<()> {
    if state.config.media.legacy_unauthenticated {
        Ok(())
    } else {
        Err(Error::not_found(
            "Unauthenticated media access is frozen; use /_matrix/client/v1/media/ with an access token",
        ))
    }
}

async fn legacy_download(
    State(state): State<AppState>,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response> {
    check_legacy(&state)?;
    serve_download(&state, &server_name, &media_id, None, query).await
}

async fn legacy_download_named(
    State(state): State<AppState>,
    Path((server_name, media_id, file_name)): Path<(String, String, String)>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response> {
    check_legacy(&state)?;
    serve_download(&state, &server_name, &media_id, Some(&file_name), query).await
}

async fn legacy_thumbnail(
    State(state): State<AppState>,
    Path((server_name, media_id)): Path<(String, String)>,
    Query(query): Query<ThumbnailQuery>,
) -> Result<Response> {
    check_legacy(&state)?;
    serve_thumbnail(&state, &server_name, &media_id, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_quotes_plain_names_and_encodes_the_rest() {
        assert_eq!(content_disposition(true, None), "inline");
        assert_eq!(
            content_disposition(false, Some("War and Peace.pdf")),
            "attachment; filename=\"War and Peace.pdf\""
        );
        assert_eq!(
            content_disposition(true, Some("ça \"va\".txt")),
            "inline; filename*=UTF-8''%C3%A7a%20%22va%22.txt"
        );
    }

    #[test]
    fn only_the_spec_safe_list_is_inline() {
        assert!(is_inline("image/png"));
        assert!(is_inline("Text/Plain; charset=utf-8"));
        assert!(!is_inline("text/html"));
        assert!(!is_inline("image/svg+xml"));
        assert!(!is_inline("application/octet-stream"));
    }
}
