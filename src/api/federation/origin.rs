//! The verified origin of a federation request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ruma::OwnedServerName;

use crate::error::{Error, ErrorKind};

/// The server that signed the request, as checked by the `X-Matrix` layer. A handler
/// reached without that check (a routing mistake) is refused rather than trusted.
#[derive(Debug, Clone)]
pub struct Origin(pub OwnedServerName);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Origin>()
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Missing X-Matrix signature"))
    }
}
