//! `https://<hostname>/.well-known/matrix/server`, fetched and cached as the spec asks:
//! answers for as long as their cache headers say (24 hours by default, at most 48),
//! invalid answers for an hour, failures with a growing back-off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use ruma::ServerName;
use serde::Deserialize;

use super::resolve::{cache_lifetime, error_lifetime, split_server_name};

/// Largest `.well-known` answer read.
const MAX_BYTES: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Past this many cached hostnames, expired ones are dropped.
const MAX_CACHED: usize = 10_000;

/// What `.well-known` says for a hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WellKnown {
    /// `m.server`: the delegated server name, as written.
    Delegated(String),
    /// No valid answer: go on with SRV.
    None,
}

struct Entry {
    answer: WellKnown,
    until: Instant,
    failures_in_a_row: u32,
}

pub struct WellKnownFetcher {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Entry>>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "m.server")]
    server: String,
}

/// Why a fetch gave no delegation.
enum Failure {
    /// The server answered, but not with a valid `.well-known`.
    Invalid(String),
    /// No answer at all.
    Unreachable(String),
}

impl WellKnownFetcher {
    /// `http` must be the federation HTTP client, whose name lookups pass the SSRF guard.
    pub fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, server: &ServerName, hostname: &str) -> WellKnown {
        let previous_failures = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(hostname) {
                Some(entry) if entry.until > Instant::now() => return entry.answer.clone(),
                Some(entry) => entry.failures_in_a_row,
                None => 0,
            }
        };
        let (answer, lifetime, failures_in_a_row) = match self.fetch(hostname).await {
            Ok((delegated, lifetime)) => (WellKnown::Delegated(delegated), lifetime, 0),
            Err(Failure::Invalid(detail)) => {
                tracing::debug!(%server, %detail, "no valid .well-known/matrix/server");
                (WellKnown::None, error_lifetime(true, 0), 0)
            }
            Err(Failure::Unreachable(detail)) => {
                tracing::debug!(%server, %detail, "cannot fetch .well-known/matrix/server");
                let failures = previous_failures + 1;
                (WellKnown::None, error_lifetime(false, failures), failures)
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, entry| entry.until > now);
        }
        cache.insert(
            hostname.to_owned(),
            Entry {
                answer: answer.clone(),
                until: Instant::now() + lifetime,
                failures_in_a_row,
            },
        );
        answer
    }

    async fn fetch(&self, hostname: &str) -> Result<(String, Duration), Failure> {
        let url = format!("https://{hostname}/.well-known/matrix/server");
        let response = self
            .http
            .get(&url)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| Failure::Unreachable(super::error_chain(&e)))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(Failure::Invalid(format!("status {}", response.status())));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let lifetime = cache_lifetime(
            header(reqwest::header::CACHE_CONTROL).as_deref(),
            header(reqwest::header::EXPIRES).as_deref(),
            SystemTime::now(),
        );
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Failure::Unreachable(super::error_chain(&e)))?;
            if bytes.len() + chunk.len() > MAX_BYTES {
                return Err(Failure::Invalid(format!(
                    "answer larger than {MAX_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        // The spec: parse as JSON whatever the Content-Type.
        let body: Body = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Invalid(format!("not a .well-known answer: {e}")))?;
        if split_server_name(&body.server).is_none() {
            return Err(Failure::Invalid(format!(
                "m.server {:?} is not a server name",
                body.server
            )));
        }
        Ok((body.server, lifetime))
    }
}
