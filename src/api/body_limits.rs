//! The first check every request body passes, before any route or authentication:
//! its size (`413 M_TOO_LARGE`) and, for everything but media uploads, that it is one
//! JSON object (`400 M_NOT_JSON`, or `M_BAD_JSON` for JSON that is not an object);
//! the email pages' buttons post forms, checked by their handlers.
//! A handler that ignores its body thus never acts on a request that sent a bad one.
//!
//! An oversized body is read and thrown away (up to [`DRAIN_BYTES`] within
//! [`DRAIN_TIME`]) before the answer: a server that closes a connection with unread
//! bytes makes the kernel reset it, and the client then sees a network error instead of
//! the `413`. Past that bound the connection is answered and closed.

use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use crate::error::{Error, ErrorKind};

/// The most of an oversized body read and discarded so that its `413` is delivered.
const DRAIN_BYTES: usize = 64 << 20;
/// The longest spent discarding it.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Paths whose body is the content of a file, streamed to disk by the media service
/// under `media.max_upload_bytes`.
fn is_upload(path: &str) -> bool {
    path == "/_matrix/media/v3/upload" || path.starts_with("/_matrix/media/v3/upload/")
}

/// Paths whose body is an HTML form (the pages mailed links open, `spec/email.md`).
fn is_form(path: &str) -> bool {
    path.starts_with("/_hearth/client/v1/email/")
}

pub async fn check_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let upload = is_upload(path);
    let limit = if upload {
        state.config.media.max_upload_bytes as usize
    } else {
        super::federation::body_limit(state.config.max_request_bytes, path)
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        let (_, body) = request.into_parts();
        drain(body).await;
        return too_large(limit).into_response();
    }
    if upload || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    // A client that trickles its body (slow loris) gets `408` instead of holding its
    // connection and its buffer for good.
    let read_time = Duration::from_secs(state.config.limits.body_read_secs);
    let read = tokio::time::timeout(read_time, async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                return Err(Error::bad_json("The request body could not be read").into_response());
            };
            if bytes.len() + chunk.len() > limit {
                drain(Body::from_stream(stream)).await;
                return Err(too_large(limit).into_response());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(response)) => return response,
        Err(_) => return too_slow(read_time),
    }
    if !is_form(parts.uri.path())
        && let Err(error) = check_json_object(&bytes)
    {
        return error.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_slow(read_time: Duration) -> Response {
    let body = serde_json::json!({
        "errcode": "M_UNKNOWN",
        "error": format!("The request body did not arrive within {} seconds", read_time.as_secs()),
    });
    let mut response = (axum::http::StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("Request body is larger than {limit} bytes"),
    )
}

/// The deepest nesting of arrays and objects a body may have. serde_json refuses more
/// than 128 levels when it builds values; this refuses earlier, for every route alike.
pub const MAX_JSON_DEPTH: usize = 100;

/// Blank (several clients send nothing for optional bodies) or one JSON object no
/// deeper than [`MAX_JSON_DEPTH`]. Neither check recurses, so no input overflows a stack.
pub fn check_json_object(bytes: &[u8]) -> Result<(), Error> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| Error::new(ErrorKind::NotJson, format!("Body is not JSON: {e}")))?;
    if depth(bytes) > MAX_JSON_DEPTH {
        return Err(Error::new(
            ErrorKind::NotJson,
            format!("Body is nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    if *first != b'{' {
        return Err(Error::bad_json("Body must be a JSON object"));
    }
    Ok(())
}

/// The deepest nesting of valid JSON `bytes`, brackets inside strings not counted.
fn depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads and discards what is left of `body`, within the bounds above.
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_objects_pass_the_rest_is_refused() {
        assert!(check_json_object(b"").is_ok());
        assert!(check_json_object(b" \n").is_ok());
        assert!(check_json_object(br#"{"a": [1, {"b": null}]}"#).is_ok());
        let kind = |b: &[u8]| check_json_object(b).unwrap_err().kind;
        assert_eq!(kind(b"{\"a\":"), ErrorKind::NotJson);
        assert_eq!(kind(b"[1, 2]"), ErrorKind::BadJson);
        assert_eq!(kind(b"\"text\""), ErrorKind::BadJson);
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(99), "]".repeat(99));
        assert!(check_json_object(ok.as_bytes()).is_ok());
        assert!(check_json_object(br#"{"a": "[[[[\"{{{"}"#).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(kind(deep.as_bytes()), ErrorKind::NotJson);
    }
}
