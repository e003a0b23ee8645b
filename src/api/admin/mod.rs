//! The admin API. Shared-secret registration authenticates with its HMAC; every other
//! endpoint is in [`table`] and sits behind one layer that admits only server admins'
//! access tokens (`401 M_MISSING_TOKEN` without one, `403 M_FORBIDDEN` for others).
//! Synapse's paths and JSON where Synapse has the operation, so its tools work;
//! Hearth's own under `/_hearth/admin/v1/`; and the spec's `/admin/` endpoints.

mod audit;
mod federation;
mod media;
mod moderation;
mod notices;
mod ratelimit;
mod redaction;
mod register;
mod registration_tokens;
mod reports;
mod rooms;
mod server;
mod users;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::MethodRouter;

use super::AppState;
use super::extract::Auth;
use crate::error::{Error, Result};
use crate::service::sessions::Authed;

/// One admin endpoint: its method, its path (axum syntax) and its handler.
type Entry = (Method, &'static str, MethodRouter<AppState>);

/// Every endpoint behind the admin check. The router is built from this list only, so
/// an endpoint cannot be served without the check; tests walk it.
fn table() -> Vec<Entry> {
    [
        users::table(),
        moderation::table(),
        ratelimit::table(),
        redaction::table(),
        rooms::table(),
        reports::table(),
        registration_tokens::table(),
        media::table(),
        audit::table(),
        server::table(),
        notices::table(),
        federation::table(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The method and path of every admin endpoint, for tests that must cover them all.
pub fn route_table() -> Vec<(Method, &'static str)> {
    table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

pub fn routes(state: &AppState) -> Router<AppState> {
    let mut admin = Router::new();
    for (_, path, handler) in table() {
        admin = admin.route(path, handler);
    }
    let admin = admin.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_admin,
    ));
    Router::new()
        .merge(register::routes())
        .merge(moderation::whois_routes())
        .merge(admin)
}

/// The caller of an admin endpoint, checked to be a server admin.
#[derive(Clone)]
pub struct Admin(pub Authed);

async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response> {
    let (mut parts, body) = request.into_parts();
    let Auth(authed) = Auth::from_request_parts(&mut parts, &state).await?;
    state.require_server_admin(&authed.user_id)?;
    parts.extensions.insert(Admin(authed));
    Ok(next.run(Request::from_parts(parts, body)).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Error;

    /// Only the admin layer puts the caller here; anywhere else this refuses.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        parts
            .extensions
            .get::<Admin>()
            .cloned()
            .ok_or_else(|| Error::forbidden("You are not a server admin"))
    }
}

/// Synapse's paging: `from` (an offset) and `limit`, with `next_token` while more remain.
pub(super) fn next_token(from: usize, shown: usize, total: usize) -> Option<String> {
    (from + shown < total).then(|| (from + shown).to_string())
}
