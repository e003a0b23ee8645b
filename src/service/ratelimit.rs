//! Token buckets keyed by user, address or server: failed logins, media uploads,
//! other servers' requests, and each user's sends, joins, invites, searches and reports
//! (and each address's registrations).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use ruma::UserId;

use crate::config::LimitsConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;

/// The endpoint families limited per user (per address for registrations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Messages,
    Joins,
    Invites,
    Registrations,
    Search,
    Reports,
}

impl Family {
    fn what(self) -> &'static str {
        match self {
            Family::Messages => "sending events",
            Family::Joins => "joining rooms",
            Family::Invites => "inviting users",
            Family::Registrations => "registering accounts",
            Family::Search => "searching",
            Family::Reports => "sending reports",
        }
    }
}

/// One bucket set per family, sized by `[limits]`.
pub struct RequestLimits {
    messages: RateLimiter,
    joins: RateLimiter,
    invites: RateLimiter,
    registrations: RateLimiter,
    search: RateLimiter,
    reports: RateLimiter,
}

impl RequestLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            messages: RateLimiter::new(config.messages_burst, config.messages_per_minute),
            joins: RateLimiter::new(config.joins_burst, config.joins_per_minute),
            invites: RateLimiter::new(config.invites_burst, config.invites_per_minute),
            registrations: RateLimiter::new(
                config.registrations_burst,
                config.registrations_per_minute,
            ),
            search: RateLimiter::new(config.search_burst, config.search_per_minute),
            reports: RateLimiter::new(config.reports_burst, config.reports_per_minute),
        }
    }

    fn limiter(&self, family: Family) -> &RateLimiter {
        match family {
            Family::Messages => &self.messages,
            Family::Joins => &self.joins,
            Family::Invites => &self.invites,
            Family::Registrations => &self.registrations,
            Family::Search => &self.search,
            Family::Reports => &self.reports,
        }
    }

    /// Takes one request of `family` from `key`'s allowance, or refuses with the wait.
    pub fn take(&self, family: Family, key: &str) -> Result<()> {
        self.limiter(family)
            .take(key)
            .map_err(|retry_after_ms| limit_exceeded(retry_after_ms, family.what()))
    }
}

pub fn limit_exceeded(retry_after_ms: u64, what: &str) -> Error {
    Error::new(
        ErrorKind::LimitExceeded { retry_after_ms },
        format!("Too many requests {what}; try again in {retry_after_ms} ms"),
    )
}

impl Services {
    /// Counts one request of `family` against `user`; server admins are not limited.
    pub fn rate_limit(&self, family: Family, user: &UserId) -> Result<()> {
        if self.limits.limiter(family).check(user.as_str()).is_ok() {
            self.limits.limiter(family).consume(user.as_str());
            return Ok(());
        }
        if self.is_server_admin(user)? {
            return Ok(());
        }
        self.limits.take(family, user.as_str())
    }
}

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Past this many tracked keys, full buckets (which carry no information) are dropped.
const PRUNE_AT: usize = 10_000;

impl RateLimiter {
    pub fn new(burst: u32, per_minute: f64) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: per_minute / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_second).min(self.burst),
            updated: now,
        }
    }

    /// `Err(retry_after_ms)` when `key` has used up its allowance.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            None => Ok(()),
            Some(bucket) => {
                let bucket = self.refilled(*bucket, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    let wait = (1.0 - bucket.tokens) / self.per_second;
                    Err((wait * 1000.0).ceil() as u64)
                }
            }
        }
    }

    /// Takes one token from `key`'s bucket if it has one (a request admitted);
    /// otherwise `Err(retry_after_ms)` and nothing is taken.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        self.check(key)?;
        self.consume(key);
        Ok(())
    }

    /// Records one failure against `key`.
    pub fn consume(&self, key: &str) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            let burst = self.burst;
            let per_second = self.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let mut refilled = self.refilled(*bucket, now);
        refilled.tokens = (refilled.tokens - 1.0).max(0.0);
        *bucket = refilled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(3, 6.0);
        for _ in 0..3 {
            assert!(limiter.check("k").is_ok());
            limiter.consume("k");
        }
        let wait = limiter.check("k").unwrap_err();
        assert!(wait > 9_000 && wait <= 10_000, "{wait}");
        assert!(limiter.check("other").is_ok());
    }
}
