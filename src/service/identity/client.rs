//! The HTTP client for identity servers (the Identity Service API, v2). An identity
//! server is named by the client (`id_server`: a host, an optional port and path) and
//! reached over HTTPS, as Synapse does; since the name is the user's choice, requests
//! pass the same SSRF guard as federation (`federation.ip_range_denylist`) and trust the
//! same certificates (`federation.verify_tls`, `federation.extra_ca_files`). No redirect
//! is followed.
//!
//! Failures are [`IdentityError`]s, kept apart from client errors: an identity server
//! that cannot be reached or answers nonsense is a 502 `M_UNKNOWN` for the client (never
//! a 500); its own 4xx Matrix errors are passed on, as Synapse does.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use ruma::ServerName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::service::federation::client::with_extra_roots;
use crate::service::federation::guard::{IpGuard, guarded_client};
use crate::service::federation::{error_chain, xmatrix};
use crate::service::keys::ServerKeys;

/// The most an identity server's answer may weigh.
const MAX_ANSWER_BYTES: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to an identity server failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0:?} is not an identity server name (a host, with an optional port and path)")]
    BadName(String),
    #[error("{0:?} is not an http(s) URL")]
    BadUrl(String),
    #[error(
        "the identity server {server} is at {addr}, which this server may not contact (federation.ip_range_denylist)"
    )]
    Denied { server: String, addr: IpAddr },
    #[error("cannot reach the identity server {server}: {detail}")]
    Unreachable { server: String, detail: String },
    #[error(
        "the identity server {server} answered {status}{}",
        detail(errcode, error)
    )]
    Remote {
        server: String,
        status: u16,
        errcode: Option<String>,
        error: Option<String>,
    },
    #[error("the identity server {server} sent an invalid answer: {detail}")]
    BadResponse { server: String, detail: String },
}

fn detail(errcode: &Option<String>, error: &Option<String>) -> String {
    match (errcode, error) {
        (Some(code), Some(text)) => format!(" {code}: {text}"),
        (Some(code), None) => format!(" {code}"),
        (None, Some(text)) => format!(": {text}"),
        (None, None) => String::new(),
    }
}

impl IdentityError {
    /// The identity server's own error status, if it answered with one.
    pub fn remote_status(&self) -> Option<u16> {
        match self {
            Self::Remote { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// For the client: a bad name is its mistake (400); the identity server's own 4xx Matrix
/// error is passed on; anything else is the identity server's fault (502 `M_UNKNOWN`).
impl From<IdentityError> for Error {
    fn from(err: IdentityError) -> Self {
        let kind = match &err {
            IdentityError::BadName(_) => ErrorKind::InvalidParam,
            IdentityError::Remote {
                status,
                errcode: Some(errcode),
                ..
            } if (400..500).contains(status) => ErrorKind::Custom {
                status: *status,
                errcode: errcode.clone(),
            },
            _ => ErrorKind::BadGateway,
        };
        Error::new(kind, err.to_string())
    }
}

/// What `/store-invite` answered: the `m.room.third_party_invite` content's parts.
#[derive(Debug, Clone)]
pub struct StoredInvite {
    pub token: String,
    pub display_name: String,
    /// `{public_key, key_validity_url}` objects.
    pub public_keys: Vec<Value>,
    /// The key given at the top level (or the first of `public_keys`), for older clients.
    pub public_key: String,
    pub key_validity_url: String,
}

pub struct IdentityClient {
    http: reqwest::Client,
    guard: Arc<IpGuard>,
    keys: Arc<ServerKeys>,
}

/// The base URL of the identity server `name`: `https://` and the name, which must be a
/// host with an optional port and path (no credentials, query or fragment).
pub fn base_url(name: &str) -> Result<reqwest::Url, IdentityError> {
    let bad = || IdentityError::BadName(name.to_owned());
    let (authority, path) = name.split_once('/').unwrap_or((name, ""));
    let port_ok = |port: &str| {
        port.is_empty() || (port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()))
    };
    let authority_ok = match authority.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(ip, port)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| !p.is_empty() && port_ok(p)))
        }),
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                && (!authority.contains(':') || (!port.is_empty() && port_ok(port)))
        }
    };
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~-/".contains(&b));
    if !authority_ok || !path_ok || name.len() > 255 {
        return Err(bad());
    }
    reqwest::Url::parse(&format!("https://{}", name.trim_end_matches('/'))).map_err(|_| bad())
}

/// The v2 lookup value of a 3PID: `address medium pepper`, SHA-256, URL-safe unpadded
/// base64 (the Identity Service API's `sha256` algorithm).
pub fn hashed_lookup(address: &str, medium: &str, pepper: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("{address} {medium} {pepper}").as_bytes(),
    ))
}

impl IdentityClient {
    pub fn new(config: &Config, keys: Arc<ServerKeys>) -> anyhow::Result<Self> {
        let fed = &config.federation;
        let guard = Arc::new(IpGuard::new(fed.ip_range_denylist.clone()));
        let mut builder = guarded_client(guard.clone())
            .https_only(false)
            .connect_timeout(Duration::from_secs(10))
            .timeout(TIMEOUT)
            .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION")));
        builder = with_extra_roots(builder, &fed.extra_ca_files)?;
        if !fed.verify_tls {
            builder = builder.danger_accept_invalid_certs(true);
        }
        Ok(Self {
            http: builder.build()?,
            guard,
            keys,
        })
    }

    /// Sends one request to `path` on the identity server `server` (with its access
    /// token as a bearer token, if given) and returns the JSON object of a 2xx answer.
    async fn call(
        &self,
        server: &str,
        method: Method,
        path: &str,
        access_token: Option<&str>,
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> Result<Value, IdentityError> {
        let base = base_url(server)?;
        let url = reqwest::Url::parse(&format!("{}{path}", base.as_str().trim_end_matches('/')))
            .map_err(|_| IdentityError::BadName(server.to_owned()))?;
        let mut request = self.http.request(method.clone(), url.clone());
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = access_token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                IdentityError::BadResponse {
                    server: server.to_owned(),
                    detail: "the identity server access token is not a header value".into(),
                }
            })?;
            request = request.header(AUTHORIZATION, value);
        }
        if access_token.is_none()
            && method == Method::POST
            && let Ok(destination) = ServerName::parse(url.authority())
        {
            // A request the homeserver makes for itself (an unbind) is signed as
            // federation requests are, as the Identity Service API allows.
            let target = url.path().to_owned();
            if let Ok(header) =
                xmatrix::authorization(self.keys.signing_key(), &destination, "POST", &target, body)
                && let Ok(value) = HeaderValue::from_str(&header)
            {
                request = request.header(AUTHORIZATION, value);
            }
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(server, &url, request).await
    }

    /// `GET` of a full URL an identity server gave (a `key_validity_url`).
    async fn get_url(&self, url: &str, query: &[(&str, &str)]) -> Result<Value, IdentityError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| IdentityError::BadUrl(url.to_owned()))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(IdentityError::BadUrl(url.to_owned()));
        }
        let server = parsed.authority().to_owned();
        let request = self.http.get(parsed.clone()).query(query);
        self.send(&server, &parsed, request).await
    }

    async fn send(
        &self,
        server: &str,
        url: &reqwest::Url,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, IdentityError> {
        if let Some(addr) = self.guard.denied_literal(url) {
            return Err(IdentityError::Denied {
                server: server.to_owned(),
                addr,
            });
        }
        let unreachable = |e: &reqwest::Error| IdentityError::Unreachable {
            server: server.to_owned(),
            detail: error_chain(e),
        };
        let mut response = request.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(IdentityError::BadResponse {
                    server: server.to_owned(),
                    detail: "the answer is too large".into(),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !(200..300).contains(&status) {
            let field = |name: &str| {
                json.as_ref()
                    .and_then(|j| j.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            return Err(IdentityError::Remote {
                server: server.to_owned(),
                status,
                errcode: field("errcode"),
                error: field("error"),
            });
        }
        match json {
            Some(value @ Value::Object(_)) => Ok(value),
            _ => Err(IdentityError::BadResponse {
                server: server.to_owned(),
                detail: "the answer is not a JSON object".into(),
            }),
        }
    }

    /// The Matrix user ID the identity server has bound to a 3PID, through the v2
    /// lookup (`/hash_details`, then `/lookup` hashed with `sha256` if offered, else in
    /// the clear with `none`).
    pub async fn lookup(
        &self,
        server: &str,
        access_token: &str,
        medium: &str,
        address: &str,
    ) -> Result<Option<String>, IdentityError> {
        let bad = |detail: &str| IdentityError::BadResponse {
            server: server.to_owned(),
            detail: detail.to_owned(),
        };
        let details = self
            .call(
                server,
                Method::GET,
                "/_matrix/identity/v2/hash_details",
                Some(access_token),
                None,
                &[],
            )
            .await?;
        let algorithms: Vec<&str> = details
            .get("algorithms")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let pepper = details
            .get("lookup_pepper")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("hash_details has no lookup_pepper"))?;
        let (algorithm, value) = if algorithms.contains(&"sha256") {
            ("sha256", hashed_lookup(address, medium, pepper))
        } else if algorithms.contains(&"none") {
            ("none", format!("{address} {medium}"))
        } else {
            return Err(bad(
                "no lookup algorithm this server supports (sha256, none)",
            ));
        };
        let answer = self
            .call(
                server,
                Method::POST,
                "/_matrix/identity/v2/lookup",
                Some(access_token),
                Some(&json!({
                    "addresses": [value],
                    "algorithm": algorithm,
                    "pepper": pepper,
                })),
                &[],
            )
            .await?;
        Ok(answer
            .get("mappings")
            .and_then(|m| m.get(&value))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Asks the identity server to keep an invitation for a 3PID
    /// (`/_matrix/identity/v2/store-invite`); `request` is the request body.
    pub async fn store_invite(
        &self,
        server: &str,
        access_token: &str,
        request: &Value,
    ) -> Result<StoredInvite, IdentityError> {
        let bad = |detail: &str| IdentityError::BadResponse {
            server: server.to_owned(),
            detail: detail.to_owned(),
        };
        let answer = self
            .call(
                server,
                Method::POST,
                "/_matrix/identity/v2/store-invite",
                Some(access_token),
                Some(request),
                &[],
            )
            .await?;
        let text = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
        let token = text("token").ok_or_else(|| bad("no token"))?;
        if token.is_empty() || token.len() > 255 {
            return Err(bad("the token is not a usable state key"));
        }
        let display_name = text("display_name").ok_or_else(|| bad("no display_name"))?;
        let default_url = format!(
            "{}/_matrix/identity/v2/pubkey/isvalid",
            base_url(server)?.as_str().trim_end_matches('/')
        );
        let mut public_keys: Vec<Value> = answer
            .get("public_keys")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|k| k.get("public_key").is_some_and(Value::is_string))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let (public_key, key_validity_url) = match text("public_key") {
            Some(key) => (key, default_url),
            None => {
                let first = public_keys.first().ok_or_else(|| bad("no public key"))?;
                (
                    first["public_key"].as_str().unwrap_or_default().to_owned(),
                    first
                        .get("key_validity_url")
                        .and_then(Value::as_str)
                        .map_or(default_url, str::to_owned),
                )
            }
        };
        if public_keys.is_empty() {
            public_keys.push(json!({
                "public_key": public_key,
                "key_validity_url": key_validity_url,
            }));
        }
        Ok(StoredInvite {
            token,
            display_name,
            public_keys,
            public_key,
            key_validity_url,
        })
    }

    /// Binds the 3PID of a validated session to `mxid` (`/_matrix/identity/v2/3pid/bind`);
    /// returns the identity server's answer (with `medium` and `address`).
    pub async fn bind(
        &self,
        server: &str,
        access_token: &str,
        sid: &str,
        client_secret: &str,
        mxid: &str,
    ) -> Result<Value, IdentityError> {
        self.call(
            server,
            Method::POST,
            "/_matrix/identity/v2/3pid/bind",
            Some(access_token),
            Some(&json!({ "sid": sid, "client_secret": client_secret, "mxid": mxid })),
            &[],
        )
        .await
    }

    /// Removes a binding (`/_matrix/identity/v2/3pid/unbind`, signed by this server).
    /// `false` when the identity server does not support unbinding or does not know the
    /// binding (400, 404 or 501), as Synapse reads those answers.
    pub async fn unbind(
        &self,
        server: &str,
        mxid: &str,
        medium: &str,
        address: &str,
    ) -> Result<bool, IdentityError> {
        let body = json!({
            "mxid": mxid,
            "threepid": { "medium": medium, "address": address },
        });
        match self
            .call(
                server,
                Method::POST,
                "/_matrix/identity/v2/3pid/unbind",
                None,
                Some(&body),
                &[],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.remote_status(), Some(400 | 404 | 501)) => {
                tracing::warn!(error = %e, "identity server did not unbind");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the identity server still vouches for `public_key`, asked at the
    /// `key_validity_url` it gave (`{"valid": true}`).
    pub async fn key_is_valid(&self, url: &str, public_key: &str) -> Result<bool, IdentityError> {
        let answer = self.get_url(url, &[("public_key", public_key)]).await?;
        Ok(answer.get("valid") == Some(&Value::Bool(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_server_names_are_hosts_with_optional_port_and_path() {
        for good in [
            "id.example.org",
            "localhost:8090",
            "id.example.org/prefix",
            "[::1]:8090",
        ] {
            assert!(base_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "https://id.example.org",
            "user@id.example.org",
            "id.example.org?x=1",
            "id.example.org#f",
            "id example",
            "/path",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lookups_are_hashed_as_the_identity_service_api_says() {
        // sha256("alice@example.com email matrixrocks"), URL-safe unpadded base64.
        assert_eq!(
            hashed_lookup("alice@example.com", "email", "matrixrocks"),
            "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc"
        );
        assert_ne!(
            hashed_lookup("alice@example.com", "email", "matrixrocks"),
            hashed_lookup("alice@example.com", "email", "other")
        );
    }

    #[test]
    fn identity_server_failures_are_gateway_errors_and_its_refusals_pass_through() {
        let status = |e: IdentityError| Error::from(e).status().as_u16();
        let server = "id.example".to_owned();
        assert_eq!(
            status(IdentityError::Unreachable {
                server: server.clone(),
                detail: "refused".into()
            }),
            502
        );
        let refused = Error::from(IdentityError::Remote {
            server: server.clone(),
            status: 400,
            errcode: Some("M_SESSION_NOT_VALIDATED".into()),
            error: None,
        });
        assert_eq!(refused.status().as_u16(), 400);
        assert_eq!(refused.errcode(), "M_SESSION_NOT_VALIDATED");
        assert_eq!(
            status(IdentityError::Remote {
                server,
                status: 500,
                errcode: None,
                error: None
            }),
            502
        );
        assert_eq!(status(IdentityError::BadName("x y".into())), 400);
    }
}
