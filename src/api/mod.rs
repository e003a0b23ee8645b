//! HTTP handlers: parse, authorise, call a service. The router and the layers every
//! request passes through (CORS, panics, unknown endpoints) live here.

pub mod admin;
mod body_limits;
pub mod client;
pub mod extract;
pub mod federation;
pub mod keys;
mod route_list;
pub mod web;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};
pub use extract::AppState;
pub use route_list::route_table;

/// Every endpoint, before the fallbacks and the layers every request passes through.
fn endpoints(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(client::routes())
        .merge(keys::routes(state))
        .merge(federation::routes(state))
        .merge(admin::routes(state))
        .merge(web::routes())
}

pub fn router(state: AppState) -> Router {
    endpoints(&state)
        .fallback(web::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, cors_and_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
}

/// Each request's span in the log: its method and path, never the query string, which
/// can carry an access token (the deprecated `access_token` parameter) or a
/// registration token.
fn request_span(request: &Request) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        version = ?request.version(),
    )
}

async fn unrecognized() -> Error {
    Error::new(
        ErrorKind::Unrecognized {
            method_not_allowed: false,
        },
        "Unrecognized request",
    )
}

async fn method_not_allowed() -> Error {
    Error::new(
        ErrorKind::Unrecognized {
            method_not_allowed: true,
        },
        "This endpoint does not accept that method",
    )
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    Error::internal("a request handler panicked").into_response()
}

/// The one middleware every request passes: CORS, then the body check
/// ([`body_limits::check_body`]). One layer rather than two, as each `from_fn` layer
/// costs every request a boxed service clone and a boxed future.
///
/// The spec asks for the CORS headers on every response (the body check's refusals
/// included), and for `OPTIONS` to be answered for any path so browsers' preflight
/// requests succeed.
async fn cors_and_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        body_limits::check_body(State(state), request, next).await
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    response
}
