//! Request extractors that turn bad input into Matrix errors.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::service::Services;
use crate::service::guests::{guest_forbidden, guest_may_use};
use crate::service::sessions::{Authed, SeenFrom};

pub type AppState = Arc<Services>;

/// A JSON body: unparseable gives `M_NOT_JSON`, the wrong shape `M_BAD_JSON`, too big
/// `M_TOO_LARGE`. An empty body counts as `{}`, as several clients send none for POSTs
/// whose fields are all optional.
pub struct MatrixJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for MatrixJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let limit = super::federation::body_limit(state.config.max_request_bytes, req.uri().path());
        let too_large = || {
            Error::new(
                ErrorKind::TooLarge,
                format!("Request body is larger than {limit} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        parse_json_body(&bytes).map(MatrixJson)
    }
}

/// A request body's bytes as `T` (what [`MatrixJson`] does once the body is read):
/// unparseable gives `M_NOT_JSON`, anything but an object or the wrong shape `M_BAD_JSON`,
/// and an empty body counts as `{}`.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // An object of the right shape (nearly every request) goes straight to `T`; anything
    // else is read as a value first, to tell which error it is. Only an object takes the
    // short way: a derived struct would also accept an array of its fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(parsed) = serde_json::from_slice(bytes)
    {
        return Ok(parsed);
    }
    let value: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::new(ErrorKind::NotJson, format!("Body is not JSON: {e}")))?
    };
    if !value.is_object() {
        return Err(Error::bad_json("Body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| Error::bad_json(format!("Invalid request body: {e}")))
}

/// The address a request came from. Behind a reverse proxy (`forwarded_for_header`
/// on, and the connection itself from loopback) it is the last address the proxy
/// appended to `X-Forwarded-For`; otherwise every user would share the proxy's address,
/// and one attacker's failed logins would lock everyone out.
pub struct ClientAddr(pub Option<String>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = || {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
                .next_back()
        };
        let addr = match peer {
            Some(ip) if ip.is_loopback() && state.config.forwarded_for_header => {
                forwarded().or(Some(ip))
            }
            other => other,
        };
        Ok(ClientAddr(addr.map(|ip| ip.to_string())))
    }
}

/// The access token of a request: `Authorization: Bearer`, or the deprecated
/// `access_token` query parameter that older clients still use.
fn access_token(parts: &Parts) -> Result<Option<String>, Error> {
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let text = header
            .to_str()
            .map_err(|_| Error::new(ErrorKind::MissingToken, "Malformed Authorization header"))?;
        return match text.strip_prefix("Bearer ") {
            Some(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
            _ => Err(Error::new(
                ErrorKind::MissingToken,
                "Authorization header must be 'Bearer <access token>'",
            )),
        };
    }
    let query = parts.uri.query().unwrap_or("");
    Ok(url_params(query)
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v))
}

fn url_params(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .unwrap_or_default()
        .into_iter()
}

/// An authenticated request: `M_MISSING_TOKEN` without a token, `M_UNKNOWN_TOKEN` with a bad one,
/// `M_GUEST_ACCESS_FORBIDDEN` for a guest on an endpoint guests may not use.
pub struct Auth(pub Authed);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let authed = authenticate(parts, state).await?;
        if authed.is_guest {
            let template = parts
                .extensions
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if !guest_may_use(&parts.method, &template, parts.uri.path()) {
                return Err(guest_forbidden());
            }
        }
        Ok(Auth(authed))
    }
}

/// The most of a `User-Agent` header kept as a device's last one.
const MAX_USER_AGENT_BYTES: usize = 512;

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The token's session, refused when the token is missing or bad or the account locked.
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Authed, Error> {
    let token = access_token(parts)?
        .ok_or_else(|| Error::new(ErrorKind::MissingToken, "Missing access token"))?;
    let ClientAddr(addr) = ClientAddr::from_request_parts(parts, state)
        .await
        .unwrap_or(ClientAddr(None));
    let user_agent = user_agent(parts);
    authenticate_token(
        state,
        &token,
        addr.as_deref(),
        user_agent.as_deref(),
        parts.uri.path(),
    )
    .await
}

/// The session of `token` (given in a request, or in a sync socket's first frame), seen
/// from `addr` with `user_agent`, refused when the token is bad or the account locked.
pub async fn authenticate_token(
    state: &AppState,
    token: &str,
    addr: Option<&str>,
    user_agent: Option<&str>,
    path: &str,
) -> Result<Authed, Error> {
    let seen = addr.map(|ip| SeenFrom { ip, user_agent });
    let authed = state.sessions.authenticate(token, seen).await?;
    state.check_not_locked(&authed.user_id, path)?;
    Ok(authed)
}

/// A request's `User-Agent`, cut to what a device keeps.
pub fn user_agent(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate_utf8(ua, MAX_USER_AGENT_BYTES).to_owned())
}

/// An authenticated request that also keeps its access token, for long-lived
/// connections that recheck it.
pub struct AuthWithToken(pub Authed, pub String);

impl FromRequestParts<AppState> for AuthWithToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Auth(authed) = Auth::from_request_parts(parts, state).await?;
        let token = access_token(parts)?.unwrap_or_default();
        Ok(AuthWithToken(authed, token))
    }
}

/// For the sync socket, which may be authenticated by its first frame instead: a
/// request with a token (header or query) is authenticated as [`AuthWithToken`] is (bad
/// tokens refused); one without gives `None`, with the `User-Agent` to record when the
/// token comes.
pub enum MaybeAuthWithToken {
    Authed(Authed, String),
    Later { user_agent: Option<String> },
}

impl FromRequestParts<AppState> for MaybeAuthWithToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if access_token(parts)?.is_none() {
            return Ok(MaybeAuthWithToken::Later {
                user_agent: user_agent(parts),
            });
        }
        let AuthWithToken(authed, token) = AuthWithToken::from_request_parts(parts, state).await?;
        Ok(MaybeAuthWithToken::Authed(authed, token))
    }
}

/// Query parameters, with `M_INVALID_PARAM` when they do not parse.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| Error::invalid_param(format!("Invalid query parameters: {e}")))
    }
}

/// Path parameters, with `M_INVALID_PARAM` when they do not parse.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| Error::invalid_param(format!("Invalid path: {e}")))
    }
}

/// For endpoints the spec leaves open to anonymous requests: no token is fine, but a
/// token that is sent must be valid.
pub struct MaybeAuth(pub Option<Authed>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if access_token(parts)?.is_none() {
            return Ok(MaybeAuth(None));
        }
        // Open to anyone, so to guests too.
        Ok(MaybeAuth(Some(authenticate(parts, state).await?)))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse_json_body;
    use crate::error::ErrorKind;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Shape {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn objects_parse_and_others_are_refused_as_before() {
        let parsed: Shape = parse_json_body(br#" {"a": 1, "b": "x"}"#).unwrap();
        assert_eq!(
            parsed,
            Shape {
                a: 1,
                b: Some("x".into())
            }
        );
        // A repeated key keeps the last value, as reading a value first does.
        let parsed: Shape = parse_json_body(br#"{"a": 1, "a": 2}"#).unwrap();
        assert_eq!(parsed.a, 2);
        let empty: serde_json::Value = parse_json_body(b"  ").unwrap();
        assert_eq!(empty, serde_json::json!({}));
        // A derived struct would take an array of its fields: not a body.
        let array = parse_json_body::<Shape>(br#"[1, "x"]"#).unwrap_err();
        assert_eq!(array.kind, ErrorKind::BadJson);
        let shape = parse_json_body::<Shape>(br#"{"a": "one"}"#).unwrap_err();
        assert_eq!(shape.kind, ErrorKind::BadJson);
        let broken = parse_json_body::<Shape>(br#"{"a": 1"#).unwrap_err();
        assert_eq!(broken.kind, ErrorKind::NotJson);
    }
}
