//! The HTTP client for push gateways. A gateway URL is chosen by the user who sets the
//! pusher, so requests to it pass the same SSRF guard as federation
//! (`federation.ip_range_denylist`): no loopback, private or link-local address is
//! posted to, whether the URL names it as an IP literal or through a hostname, and no
//! redirect is followed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::IpRange;
use crate::service::federation::guard::{IpGuard, guarded_client};

pub struct GatewayClient {
    http: reqwest::Client,
    guard: Arc<IpGuard>,
}

impl GatewayClient {
    /// `extra_ca_files` (`federation.extra_ca_files`) are trusted beside the system's
    /// roots, as for Web Push services.
    pub fn new(
        denylist: Vec<IpRange>,
        extra_ca_files: &[std::path::PathBuf],
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(IpGuard::new(denylist));
        let builder = guarded_client(guard.clone())
            .timeout(timeout)
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")));
        let http = crate::service::federation::client::with_extra_roots(builder, extra_ca_files)?
            .build()?;
        Ok(Self { http, guard })
    }

    /// The URL's host when it is an IP literal in the denylist (the resolver never sees
    /// literals, so they are checked here).
    pub fn denied_literal(&self, url: &reqwest::Url) -> Option<IpAddr> {
        self.guard.denied_literal(url)
    }

    /// POSTs `body` (JSON) to the gateway at `url`; an error is a text for the log.
    pub async fn post(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, String> {
        if let Some(ip) = self.denied_literal(url) {
            return Err(format!(
                "the gateway's address {ip} is in federation.ip_range_denylist"
            ));
        }
        self.http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| with_causes(&e))
    }
}

/// An error and its causes, which reqwest's own text leaves out (a refused address is
/// one of them).
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_ip_range_denylist;

    /// A listener that must never be connected to.
    fn bait() -> (std::net::TcpListener, u16) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    #[tokio::test]
    async fn denied_addresses_are_refused_by_literal_and_by_name() {
        let client =
            GatewayClient::new(default_ip_range_denylist(), &[], Duration::from_secs(5)).unwrap();
        let (listener, port) = bait();
        let body = br#"{"notification":{}}"#.to_vec();
        for url in [
            format!("http://127.0.0.1:{port}/_matrix/push/v1/notify"),
            format!("http://[::ffff:127.0.0.1]:{port}/_matrix/push/v1/notify"),
            format!("http://localhost:{port}/_matrix/push/v1/notify"),
        ] {
            let url = reqwest::Url::parse(&url).unwrap();
            let error = client.post(&url, body.clone()).await.unwrap_err();
            assert!(error.contains("ip_range_denylist"), "{url}: {error}");
        }
        // Every request has finished; none reached the listener.
        assert!(listener.accept().is_err());

        let literal = reqwest::Url::parse("http://10.1.2.3/_matrix/push/v1/notify").unwrap();
        assert_eq!(
            client.denied_literal(&literal),
            Some("10.1.2.3".parse().unwrap())
        );
        let public =
            reqwest::Url::parse("https://push.example.org/_matrix/push/v1/notify").unwrap();
        assert_eq!(client.denied_literal(&public), None);
    }

    #[tokio::test]
    async fn an_empty_denylist_lets_loopback_through() {
        let client = GatewayClient::new(Vec::new(), &[], Duration::from_secs(5)).unwrap();
        let (listener, port) = bait();
        listener.set_nonblocking(false).unwrap();
        let accepted = std::thread::spawn(move || listener.accept().is_ok());
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/_matrix/push/v1/notify"))
            .unwrap();
        // The listener never answers; the connection having been made is the point.
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            client.post(&url, b"{}".to_vec()),
        )
        .await;
        assert!(accepted.join().unwrap());
    }
}
