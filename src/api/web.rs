//! `/` and every path outside the APIs: the bundled web client, read from the built
//! `dist` directory (`web_client_dir`). A server whose client was never built answers
//! with a page that says how to build it.
//!
//! Only files found under that directory by a strict join are served: each path
//! segment must be a plain file name (no `..`, no percent escapes, no hidden files),
//! and the resolved file must still lie inside the canonical directory, so neither a
//! crafted URL nor a symlink can reach anything else.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, http::HeaderMap};

use super::AppState;
use crate::error::{Error, ErrorKind};

/// No inline script anywhere; sockets may go to this origin over ws/wss. WebAssembly
/// may be compiled (`'wasm-unsafe-eval'`, which allows no JavaScript `eval`): the
/// client's end-to-end encryption is the matrix-sdk-crypto WebAssembly module.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' blob: data:; connect-src 'self' ws: wss:; object-src 'none'; \
frame-ancestors 'none'; base-uri 'none'";

/// The placeholder carries its own small stylesheet inline, and nothing else.
const PLACEHOLDER_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// Vite names every file under `assets/` after a hash of its content, so a name never
/// changes meaning and browsers may keep it for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Paths that belong to the APIs: an unknown one is an unknown endpoint, never the app.
const API_PREFIXES: &[&str] = &["/_matrix", "/_hearth", "/_synapse", "/.well-known"];

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index))
}

async fn index(State(state): State<AppState>, request: Request) -> Response {
    let gzip = accepts_gzip(request.headers());
    serve(
        &state.config.web_client_dir,
        request.uri().path(),
        false,
        gzip,
    )
    .await
}

/// The router's fallback: the web client for browser paths, `M_UNRECOGNIZED` for the rest.
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    let is_api = API_PREFIXES
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if is_api || !matches!(*request.method(), Method::GET | Method::HEAD) {
        return super::unrecognized().await.into_response();
    }
    let gzip = accepts_gzip(request.headers());
    serve(&state.config.web_client_dir, path, true, gzip).await
}

/// Whether the browser takes gzip: a `gzip` or `*` coding in `Accept-Encoding` not
/// refused with `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|param| {
                param
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn serve(dir: &Path, path: &str, spa_fallback: bool, gzip: bool) -> Response {
    let is_asset = path.starts_with("/assets/");
    let Ok(root) = tokio::fs::canonicalize(dir).await else {
        return if is_asset { not_found() } else { placeholder() };
    };
    if let Some(relative) = safe_relative(path).filter(|r| !r.is_empty())
        && let Some(file) = resolve(&root, &relative).await
    {
        let cache = if is_asset { IMMUTABLE } else { "no-cache" };
        // The build keeps a gzipped copy of big hashed assets (the encryption module:
        // 8 MB, 2 MB gzipped) beside them, served to browsers that take gzip.
        if is_asset && let Some(packed) = resolve(&root, &format!("{relative}.gz")).await {
            let mut response = if gzip {
                let mut packed = file_response(&packed, &file, cache).await;
                packed
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                packed
            } else {
                file_response(&file, &file, cache).await
            };
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            return response;
        }
        return file_response(&file, &file, cache).await;
    }
    // A missing hashed asset must not turn into the HTML page: the browser would try
    // to run it as a script and report a confusing error instead of a 404.
    if is_asset || !(path == "/" || spa_fallback) {
        return not_found();
    }
    // Any other path is one of the client's own routes (room IDs and aliases carry
    // characters no file name here has), so it gets the app, never a file.
    match resolve(&root, "index.html").await {
        Some(index) => file_response(&index, &index, "no-cache").await,
        None => placeholder(),
    }
}

/// The URL path as a relative file path, or `None` if any segment is not a plain name.
/// Percent escapes are refused rather than decoded: the client's files need none.
fn safe_relative(path: &str) -> Option<String> {
    let trimmed = path.trim_start_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
    };
    // A trailing slash names a client route such as `/room/`, not a file.
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').all(plain).then(|| trimmed.to_owned())
}

/// The file under `root`, if it exists, is a regular file and really lies inside.
async fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let file = tokio::fs::canonicalize(root.join(relative)).await.ok()?;
    if !file.starts_with(root) {
        return None;
    }
    let meta = tokio::fs::metadata(&file).await.ok()?;
    meta.is_file().then_some(file)
}

/// The bytes of `file`, typed by `named`'s extension (a gzipped copy is typed as its original).
async fn file_response(file: &Path, named: &Path, cache: &'static str) -> Response {
    let bytes = match tokio::fs::read(file).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return Error::internal(format!("cannot read {}: {e}", file.display())).into_response();
        }
    };
    let mut headers = security_headers(CSP);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(named)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    (StatusCode::OK, headers, Body::from(bytes)).into_response()
}

fn placeholder() -> Response {
    let mut headers = security_headers(PLACEHOLDER_CSP);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, include_str!("web_placeholder.html")).into_response()
}

fn not_found() -> Response {
    let mut response =
        Error::new(ErrorKind::NotFound, "No such file in the web client").into_response();
    response.headers_mut().extend(security_headers(CSP));
    response
}

fn security_headers(csp: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        // `WebAssembly.instantiateStreaming` accepts nothing else.
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Said once at start-up, so whoever runs the server learns why `/` shows no client.
pub fn log_status(dir: &Path) {
    if dir.join("index.html").is_file() {
        tracing::info!(dir = %dir.display(), "serving the web client");
    } else {
        tracing::warn!(
            dir = %dir.display(),
            "the web client is not built: `/` shows a placeholder. Build it with \
             `npm ci && npm run build` in web-client/ (scripts/start does this when Node.js \
             is installed) or point web_client_dir at a built copy"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn only_plain_segments_are_accepted() {
        assert_eq!(safe_relative("/").as_deref(), Some(""));
        assert_eq!(
            safe_relative("/assets/index-AbC_12.js").as_deref(),
            Some("assets/index-AbC_12.js")
        );
        assert_eq!(safe_relative("/room/").as_deref(), Some("room"));
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/%2e%2e/x",
            "/a//b",
            "/.env",
            "/a\\b",
            "/a/./b",
            "/a%00b",
            "/!room:server",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
    }
}
