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

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};

use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

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

/// The whole application: the router inside the layers every request passes, outermost
/// first: the request's log span, panic catching, then CORS and the body check.
///
/// The layers wrap the router once rather than through [`Router::layer`], which wraps
/// each route: axum clones a route's service for every request it routes, so each
/// request then cloned and dropped a boxed copy of all three layers with its handler,
/// and boxed the response body once more.
pub fn router<B>(
    state: AppState,
) -> impl tower::Service<
    axum::http::Request<B>,
    Response = Response<impl HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static>,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static
where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let routes = endpoints(&state)
        .fallback(web::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    tower::ServiceBuilder::new()
        .map_request(|request: axum::http::Request<B>| request.map(Body::new))
        .layer(TraceLayer::new_for_http().make_span_with(request_span as fn(&Request) -> Span))
        .layer(CatchPanicLayer::custom(on_panic as fn(_) -> Response))
        .layer(axum::middleware::from_fn_with_state(state, cors_and_body))
        .service(routes)
}

/// Each request's span in the log: its method and path, never the query string, which
/// can carry an access token (the deprecated `access_token` parameter) or a
/// registration token.
fn request_span(request: &Request) -> Span {
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
