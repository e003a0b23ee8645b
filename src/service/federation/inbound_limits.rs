//! Per-origin rate limits on what other servers ask of this one: transactions
//! (`PUT /send`) and everything else (queries, event fetches, joins) in two token
//! buckets per origin server, sized by `federation.transactions_per_minute` /
//! `transactions_burst` and `federation.queries_per_minute` / `queries_burst`. A server
//! over its allowance gets `429 M_LIMIT_EXCEEDED` with `retry_after_ms`; a transaction
//! refused so stays queued on its side and is retried.

use ruma::ServerName;

use crate::config::FederationConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::service::ratelimit::RateLimiter;

pub struct InboundLimits {
    transactions: RateLimiter,
    queries: RateLimiter,
}

/// Whether a federation request path is a transaction.
fn is_transaction(path: &str) -> bool {
    path.starts_with("/_matrix/federation/v1/send/")
}

impl InboundLimits {
    pub fn new(config: &FederationConfig) -> Self {
        Self {
            transactions: RateLimiter::new(
                config.transactions_burst,
                config.transactions_per_minute,
            ),
            queries: RateLimiter::new(config.queries_burst, config.queries_per_minute),
        }
    }

    /// Counts a request from `origin` to `path`; `M_LIMIT_EXCEEDED` once the origin has
    /// used up its allowance for that kind of request.
    pub fn admit(&self, origin: &ServerName, path: &str) -> Result<()> {
        let (limiter, what) = if is_transaction(path) {
            (&self.transactions, "transactions")
        } else {
            (&self.queries, "requests")
        };
        limiter.take(origin.as_str()).map_err(|retry_after_ms| {
            tracing::info!(%origin, %path, retry_after_ms, "federation request rate-limited");
            Error::new(
                ErrorKind::LimitExceeded { retry_after_ms },
                format!("{origin} sends {what} too fast; retry in {retry_after_ms} ms"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactions_and_queries_are_counted_apart_per_origin() {
        let config = FederationConfig {
            transactions_burst: 2,
            transactions_per_minute: 1.0,
            queries_burst: 1,
            queries_per_minute: 1.0,
            ..FederationConfig::default()
        };
        let limits = InboundLimits::new(&config);
        let a = ServerName::parse("a.example").unwrap();
        let b = ServerName::parse("b.example").unwrap();
        let send = "/_matrix/federation/v1/send/1";
        let query = "/_matrix/federation/v1/query/profile";
        assert!(limits.admit(&a, send).is_ok());
        assert!(limits.admit(&a, send).is_ok());
        assert!(limits.admit(&a, send).is_err());
        assert!(limits.admit(&a, query).is_ok());
        assert!(limits.admit(&a, query).is_err());
        assert!(limits.admit(&b, send).is_ok());
        assert!(limits.admit(&b, query).is_ok());
    }
}
