//! The outgoing federation client: every request goes over TLS to the addresses that
//! discovery found, with the `Host` header and certificate name the spec asks for, and
//! is signed with `X-Matrix`. Connections are pooled per host and port.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use ruma::api::path_builder::SinglePath;
use ruma::api::{IncomingResponse, OutgoingBody, OutgoingRequest};
use ruma::{OwnedServerName, ServerName};
use serde_json::Value;

use super::guard::{DeniedName, GuardedDns, IpGuard};
use super::resolve::{Destination, Host, Resolver};
use super::wellknown::WellKnownFetcher;
use super::{OutboundError, error_chain, xmatrix};
use crate::config::Config;
use crate::service::keys::ServerKeys;

/// How long a request may take and how large its answer may be.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for Limits {
    /// Enough for ordinary requests; large state or join answers ask for more.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_response_bytes: 32 << 20,
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FederationClient {
    enabled: bool,
    keys: Arc<ServerKeys>,
    http: reqwest::Client,
    dns: Arc<GuardedDns>,
    guard: Arc<IpGuard>,
    resolver: Resolver,
}

impl FederationClient {
    /// Builds the client from `federation.*`; fails (at start-up) if an extra CA file
    /// cannot be read.
    pub fn new(config: &Config, keys: Arc<ServerKeys>) -> anyhow::Result<Self> {
        let fed = &config.federation;
        let guard = Arc::new(IpGuard::new(fed.ip_range_denylist.clone()));
        let dns = Arc::new(GuardedDns::new(guard.clone()));
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .no_proxy()
            .dns_resolver(dns.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(redirect_policy(guard.clone()))
            .user_agent(concat!("Hearth/", env!("CARGO_PKG_VERSION")));
        builder = with_extra_roots(builder, &fed.extra_ca_files)?;
        if !fed.verify_tls {
            tracing::warn!(
                "federation.verify_tls is off: other servers' certificates are not checked"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build()?;
        Ok(Self {
            enabled: fed.enabled,
            keys,
            resolver: Resolver::new(guard.clone(), WellKnownFetcher::new(http.clone())),
            http,
            dns,
            guard,
        })
    }

    /// This server's name, the `origin` of every request.
    pub fn server_name(&self) -> &ServerName {
        self.keys.signing_key().server_name()
    }

    /// Where requests for `server` go (discovery, cached).
    pub async fn resolve(&self, server: &ServerName) -> Result<Destination, OutboundError> {
        if !self.enabled {
            return Err(OutboundError::Disabled);
        }
        self.resolver.resolve(server).await
    }

    /// Sends a typed ruma request to `destination` and parses the typed answer.
    pub async fn send<R>(
        &self,
        destination: &ServerName,
        request: R,
    ) -> Result<R::IncomingResponse, OutboundError>
    where
        R: OutgoingRequest<PathBuilder = SinglePath>,
    {
        self.send_with(destination, request, Limits::default())
            .await
    }

    /// [`Self::send`] with other limits.
    pub async fn send_with<R>(
        &self,
        destination: &ServerName,
        request: R,
        limits: Limits,
    ) -> Result<R::IncomingResponse, OutboundError>
    where
        R: OutgoingRequest<PathBuilder = SinglePath>,
    {
        let bad_request = |e: &dyn std::fmt::Display| OutboundError::BadResponse {
            server: destination.to_owned(),
            detail: format!("cannot build the request: {e}"),
        };
        // The base URL only serves to build the path; the real one comes from discovery.
        let http_request = request
            .try_into_http_request_inner("https://destination.invalid", ())
            .map_err(|e| bad_request(&e))?;
        let (parts, body) = http_request.into_parts();
        let content_type = body.content_type();
        let body: Vec<u8> = body.try_into_buf().map_err(|e| {
            let e: ruma::api::error::IntoHttpError = e.into();
            bad_request(&e)
        })?;
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let content = if body.is_empty() {
            None
        } else {
            Some(serde_json::from_slice::<Value>(&body).map_err(|e| bad_request(&e))?)
        };
        let (status, bytes) = self
            .execute(
                destination,
                parts.method,
                &target,
                content.as_ref(),
                content_type,
                limits,
            )
            .await?;
        let response = axum::http::Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .body(bytes.as_slice())
            .map_err(|e| bad_request(&e))?;
        R::IncomingResponse::try_from_http_response_inner(response).map_err(|e| {
            OutboundError::BadResponse {
                server: destination.to_owned(),
                detail: e.to_string(),
            }
        })
    }

    /// Sends `body` (if any) as JSON to `path_and_query` on `destination`; returns the
    /// JSON answer of a 2xx response.
    pub async fn send_json(
        &self,
        destination: &ServerName,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Value, OutboundError> {
        let content_type = body.map(|_| HeaderValue::from_static("application/json"));
        let (_, bytes) = self
            .execute(
                destination,
                method,
                path_and_query,
                body,
                content_type,
                Limits::default(),
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| OutboundError::BadResponse {
            server: destination.to_owned(),
            detail: format!("not JSON: {e}"),
        })
    }

    /// Signs and sends one request; returns the status and body of a 2xx answer.
    async fn execute(
        &self,
        server: &ServerName,
        method: Method,
        target: &str,
        content: Option<&Value>,
        content_type: Option<HeaderValue>,
        limits: Limits,
    ) -> Result<(u16, Vec<u8>), OutboundError> {
        let response = self
            .send_signed(
                server,
                method,
                target,
                content,
                content_type,
                Some(limits.timeout),
            )
            .await?;
        let status = response.status().as_u16();
        let retry_after = retry_after_header(response.headers());
        let bytes = read_limited(server, response, limits.max_response_bytes).await?;
        if !(200..300).contains(&status) {
            return Err(remote_error(server, status, &bytes, retry_after));
        }
        Ok((status, bytes))
    }

    /// A signed `GET` whose answer the caller reads as a stream (media): returns the
    /// response whatever its status once its headers arrive, within `wait`. Redirects are
    /// not followed; see [`Self::get_redirected`].
    pub async fn get_streaming(
        &self,
        server: &ServerName,
        target: &str,
        wait: Duration,
    ) -> Result<reqwest::Response, OutboundError> {
        let sent = self.send_signed(server, Method::GET, target, None, None, None);
        tokio::time::timeout(wait, sent)
            .await
            .map_err(|_| OutboundError::Timeout {
                server: server.to_owned(),
            })?
    }

    /// An unsigned `GET` of a URL another server redirected to (`Location`), for the
    /// caller to read as a stream. Only HTTPS; the address passes the same
    /// `ip_range_denylist` guard as every federation request (names through the
    /// guarded resolver, IP literals here). `server` is who sent the redirect.
    pub async fn get_redirected(
        &self,
        server: &ServerName,
        url: &reqwest::Url,
        wait: Duration,
    ) -> Result<reqwest::Response, OutboundError> {
        if url.scheme() != "https" {
            return Err(OutboundError::BadResponse {
                server: server.to_owned(),
                detail: format!("redirect to a non-HTTPS URL ({})", url.scheme()),
            });
        }
        let Some(host) = url.host_str() else {
            return Err(OutboundError::BadResponse {
                server: server.to_owned(),
                detail: "redirect to a URL without a host".into(),
            });
        };
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        if let Some(ip) = literal {
            self.guard.check(server, ip)?;
        }
        let sent = self.http.get(url.clone()).send();
        match tokio::time::timeout(wait, sent).await {
            Err(_) => Err(OutboundError::Timeout {
                server: server.to_owned(),
            }),
            Ok(Err(e)) => Err(classify(server, &e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Signs and sends one request; returns the response, whatever its status.
    async fn send_signed(
        &self,
        server: &ServerName,
        method: Method,
        target: &str,
        content: Option<&Value>,
        content_type: Option<HeaderValue>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, OutboundError> {
        let dest = self.resolve(server).await?;
        if let Host::Name(name) = &dest.tls_name {
            self.dns.pin(name, &dest.addrs);
        }
        let url = reqwest::Url::parse(&format!(
            "https://{}:{}{target}",
            dest.tls_name.url_host(),
            dest.port
        ))
        .map_err(|e| OutboundError::BadResponse {
            server: server.to_owned(),
            detail: format!("cannot build a URL for {target:?}: {e}"),
        })?;
        // Signed as it will be sent, after the URL parser's normalisation.
        let sent_target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let authorization = xmatrix::authorization(
            self.keys.signing_key(),
            server,
            method.as_str(),
            &sent_target,
            content,
        )
        .map_err(|e| OutboundError::BadResponse {
            server: server.to_owned(),
            detail: format!("cannot sign the request: {e}"),
        })?;
        let mut request = self
            .http
            .request(method, url)
            .header(HOST, &dest.host_header)
            .header(AUTHORIZATION, authorization);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(content) = content {
            let bytes = serde_json::to_vec(content).map_err(|e| OutboundError::BadResponse {
                server: server.to_owned(),
                detail: e.to_string(),
            })?;
            request = request
                .header(
                    CONTENT_TYPE,
                    content_type.unwrap_or(HeaderValue::from_static("application/json")),
                )
                .body(bytes);
        }
        match request.send().await {
            Ok(response) => Ok(response),
            Err(e) => {
                let err = classify(server, &e);
                if matches!(err, OutboundError::Unreachable { .. }) {
                    self.resolver.forget(server);
                }
                Err(err)
            }
        }
    }
}

/// The error a non-2xx answer stands for, from its (small) body.
pub async fn error_of(server: &ServerName, response: reqwest::Response) -> OutboundError {
    let status = response.status().as_u16();
    let retry_after = retry_after_header(response.headers());
    match read_limited(server, response, 64 * 1024).await {
        Ok(bytes) => remote_error(server, status, &bytes, retry_after),
        Err(_) => remote_error(server, status, b"", retry_after),
    }
}

/// A transport failure while reading an answer's body.
pub fn body_error(server: &ServerName, err: &reqwest::Error) -> OutboundError {
    classify(server, err)
}

/// Redirects are followed only for `.well-known` (the spec asks for it there), only to
/// HTTPS, at most five times, and never to a denied IP literal (names pass the guard in
/// the resolver).
fn redirect_policy(guard: Arc<IpGuard>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let first_is_well_known = attempt
            .previous()
            .first()
            .is_some_and(|url| url.path() == "/.well-known/matrix/server");
        if !first_is_well_known || attempt.previous().len() > 5 {
            return attempt.stop();
        }
        if attempt.url().scheme() != "https" {
            return attempt.error("redirect away from HTTPS");
        }
        let host = attempt.url().host_str().unwrap_or("");
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let denied_ip = literal
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| guard.is_denied(ip));
        if denied_ip {
            return attempt.error("redirect to a denied address");
        }
        attempt.follow()
    })
}

async fn read_limited(
    server: &ServerName,
    response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, OutboundError> {
    let too_large = || OutboundError::BadResponse {
        server: server.to_owned(),
        detail: format!("answer larger than {max} bytes"),
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(max));
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(server, &e))?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A `Retry-After` header in its delay-seconds form (the form the spec asks for; an
/// HTTP date is ignored).
fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A non-2xx answer, with the Matrix error in its body when there is one. A 429's wait
/// is the `Retry-After` header when present, else the body's `retry_after_ms`.
fn remote_error(
    server: &ServerName,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> OutboundError {
    #[derive(serde::Deserialize)]
    struct MatrixError {
        errcode: Option<String>,
        error: Option<String>,
        retry_after_ms: Option<u64>,
        room_version: Option<String>,
    }
    let parsed: Option<MatrixError> = serde_json::from_slice(body).ok();
    let clip = |s: String| s.chars().take(300).collect::<String>();
    let body_wait = parsed
        .as_ref()
        .and_then(|e| e.retry_after_ms)
        .map(Duration::from_millis);
    OutboundError::Remote {
        server: server.to_owned(),
        status,
        errcode: parsed.as_ref().and_then(|e| e.errcode.clone()).map(clip),
        room_version: parsed
            .as_ref()
            .and_then(|e| e.room_version.clone())
            .map(clip),
        error: parsed.and_then(|e| e.error).map(clip),
        retry_after: retry_after.or(body_wait),
    }
}

/// A rustls error in `err`, looking inside the `io::Error`s it may be wrapped in (their
/// `source()` skips the error they wrap).
fn find_tls_error<'a>(mut err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    for _ in 0..8 {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
        err = inner;
    }
    None
}

/// Sorts a transport failure into timeout, TLS, guard refusal or unreachable.
fn classify(server: &ServerName, err: &reqwest::Error) -> OutboundError {
    let server: OwnedServerName = server.to_owned();
    if err.is_timeout() {
        return OutboundError::Timeout { server };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(denied) = cause.downcast_ref::<DeniedName>() {
            return OutboundError::Unreachable {
                server,
                detail: denied.to_string(),
            };
        }
        if let Some(tls) = find_tls_error(cause) {
            return OutboundError::Tls {
                server,
                detail: tls.to_string(),
            };
        }
        source = cause.source();
    }
    OutboundError::Unreachable {
        server,
        detail: error_chain(err),
    }
}

/// Adds the certificate authorities of `federation.extra_ca_files` to a client's roots
/// (other servers' and Web Push services' certificates are checked against them too).
pub fn with_extra_roots(
    mut builder: reqwest::ClientBuilder,
    files: &[std::path::PathBuf],
) -> anyhow::Result<reqwest::ClientBuilder> {
    for path in files {
        let pem = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read federation.extra_ca_files entry {}: {e}",
                path.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!("{} is not a PEM certificate file: {e}", path.display())
        })?;
        if certs.is_empty() {
            anyhow::bail!("{} holds no PEM certificate", path.display());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_answer_carries_the_wait_the_remote_asked_for() {
        let server: OwnedServerName = "remote.example".try_into().unwrap();
        let body = br#"{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":1500}"#;
        let from_body = remote_error(&server, 429, body, None);
        assert_eq!(from_body.retry_after(), Some(Duration::from_millis(1500)));
        // The header, which the spec prefers, wins over the body.
        let from_header = remote_error(&server, 429, body, Some(Duration::from_secs(7)));
        assert_eq!(from_header.retry_after(), Some(Duration::from_secs(7)));
        // Only a 429 asks for a wait.
        assert_eq!(remote_error(&server, 500, body, None).retry_after(), None);
        assert_eq!(remote_error(&server, 429, b"", None).retry_after(), None);

        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static(" 12 "),
        );
        assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_header(&headers), None);
    }
}
