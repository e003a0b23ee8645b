//! The `X-Matrix` check in front of every authenticated federation endpoint: the header
//! is parsed (typed), its `destination` must be this server, the origin's key is
//! fetched, and the signature must cover this request's method, path and query, both
//! server names and its JSON body. The body is read (up to `max_request_bytes`) and put
//! back for the handler; the verified origin goes into the request's extensions as
//! [`Origin`]. A body canonical JSON cannot hold is `400 M_BAD_JSON`; anything else is
//! `401 M_UNAUTHORIZED` with the reason.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Origin;
use crate::api::AppState;
use crate::error::{Error, ErrorKind};
use crate::event::canonical::canonical_json;
use crate::service::federation::xmatrix;
use crate::service::now_ms;

fn unauthorized(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Unauthorized, message)
}

pub async fn require_signature(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match verify(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn verify(state: &AppState, request: Request) -> Result<Request, Error> {
    let (mut parts, body) = request.into_parts();
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("Missing X-Matrix Authorization header"))?
        .to_str()
        .map_err(|_| unauthorized("Malformed X-Matrix Authorization header"))?;
    // A header that does not parse (an origin that is no server name, like
    // `localhost:http`) is a bad request: 400 `M_UNAUTHORIZED`, as Synapse answers.
    let header = xmatrix::parse_header(header).map_err(|e| {
        Error::new(
            ErrorKind::Custom {
                status: 400,
                errcode: "M_UNAUTHORIZED".to_owned(),
            },
            format!("Malformed X-Matrix Authorization header: {e}"),
        )
    })?;
    let our_name = state.server_name();
    if let Some(destination) = &header.destination
        && destination != our_name
    {
        return Err(unauthorized(format!(
            "The request is addressed to {destination}, not to this server ({our_name})"
        )));
    }

    let limit = super::body_limit(state.config.max_request_bytes, parts.uri.path());
    let too_large = || {
        Error::new(
            ErrorKind::TooLarge,
            format!("Request body is larger than {limit} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let content: Option<Value> = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::new(ErrorKind::NotJson, format!("Body is not JSON: {e}")))?,
        )
    };

    // A body that canonical JSON cannot hold (a float, an integer beyond 2^53) cannot
    // carry a valid signature: the request is bad, not unauthorised (as Synapse answers
    // an event with a float).
    if let Some(content) = &content
        && let Err(e) = canonical_json(content)
    {
        return Err(Error::bad_json(format!(
            "Body is not canonical JSON, so it cannot be signed: {e}"
        )));
    }

    let origin = header.origin.clone();
    let keys = state
        .server_keys
        .verify_keys(&origin, &[header.key.as_str()], now_ms())
        .await
        .map_err(|e| {
            unauthorized(format!(
                "Cannot check the signature: no key {} of {origin}: {e}",
                header.key
            ))
        })?;
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    xmatrix::verify(
        &header,
        our_name,
        parts.method.as_str(),
        &target,
        content.as_ref(),
        &keys,
    )
    .map_err(|e| unauthorized(format!("Invalid X-Matrix signature from {origin}: {e}")))?;

    state.inbound_limits.admit(&origin, parts.uri.path())?;
    // A server that talks to us is up: what we owe it goes out now, not after backoff.
    state.sender.contacted(&origin);
    parts.extensions.insert(Origin(origin));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
