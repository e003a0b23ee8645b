//! Token buckets keyed by user, address or server: failed logins, media uploads,
//! other servers' requests, and each user's sends, joins, invites, searches and reports
//! (and each address's registrations and `/register/available` questions).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use ruma::UserId;

use crate::config::LimitsConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;

/// The endpoint families limited per user (per address for registrations and
/// availability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Messages,
    Joins,
    Invites,
    Registrations,
    Availability,
    TokenValidity,
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
            Family::Availability => "asking whether user names are available",
            Family::TokenValidity => "asking whether registration tokens are valid",
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
    availability: RateLimiter,
    token_validity: RateLimiter,
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
            availability: RateLimiter::new(
                config.availability_burst,
                config.availability_per_minute,
            ),
            token_validity: RateLimiter::new(
                config.token_validity_burst,
                config.token_validity_per_minute,
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
            Family::Availability => &self.availability,
            Family::TokenValidity => &self.token_validity,
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
    /// Counts one request of `family` against `user`. Server admins are not limited; a user
    /// with an admin's override (Synapse's `override_ratelimit`) is limited at that rate.
    pub fn rate_limit(&self, family: Family, user: &UserId) -> Result<()> {
        let record = self.store.user(user.as_str())?;
        let limiter = self.limits.limiter(family);
        if let Some(rate) = record.as_ref().and_then(|u| u.ratelimit_override) {
            if rate.messages_per_second == 0 {
                return Ok(());
            }
            // A burst of 0 would refuse every request for ever; Hearth allows one at a time.
            let rate = Rate {
                burst: f64::from(rate.burst_count.max(1)),
                per_second: f64::from(rate.messages_per_second),
            };
            return limiter
                .take_at(user.as_str(), rate)
                .map_err(|retry_after_ms| limit_exceeded(retry_after_ms, family.what()));
        }
        if limiter.check(user.as_str()).is_ok() {
            limiter.consume(user.as_str());
            return Ok(());
        }
        if record.is_some_and(|u| u.admin && !u.deactivated) {
            return Ok(());
        }
        self.limits.take(family, user.as_str())
    }
}

pub struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A bucket's size and how fast it refills.
#[derive(Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Past this many tracked keys, full buckets (which carry no information) are dropped.
const PRUNE_AT: usize = 10_000;

impl Rate {
    fn refilled(self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.per_second).min(self.burst),
            updated: now,
        }
    }
}

impl RateLimiter {
    pub fn new(burst: u32, per_minute: f64) -> Self {
        Self {
            rate: Rate {
                burst: f64::from(burst),
                per_second: per_minute / 60.0,
            },
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after_ms)` when `key` has used up its allowance.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Self::check_in(&buckets, key, self.rate, Instant::now())
    }

    fn check_in(
        buckets: &HashMap<String, Bucket>,
        key: &str,
        rate: Rate,
        now: Instant,
    ) -> Result<(), u64> {
        match buckets.get(key) {
            None if rate.burst >= 1.0 => Ok(()),
            None => Err((1000.0 / rate.per_second).ceil() as u64),
            Some(bucket) => {
                let bucket = rate.refilled(*bucket, now);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    let wait = (1.0 - bucket.tokens) / rate.per_second;
                    Err((wait * 1000.0).ceil() as u64)
                }
            }
        }
    }

    /// Takes one token from `key`'s bucket if it has one (a request admitted);
    /// otherwise `Err(retry_after_ms)` and nothing is taken.
    pub fn take(&self, key: &str) -> Result<(), u64> {
        self.take_at(key, self.rate)
    }

    /// [`Self::take`] with a bucket of another size and rate (an admin's override).
    fn take_at(&self, key: &str, rate: Rate) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Self::check_in(&buckets, key, rate, now)?;
        self.consume_in(&mut buckets, key, rate, now);
        Ok(())
    }

    /// Records one failure against `key`.
    pub fn consume(&self, key: &str) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        self.consume_in(&mut buckets, key, self.rate, Instant::now());
    }

    fn consume_in(
        &self,
        buckets: &mut HashMap<String, Bucket>,
        key: &str,
        rate: Rate,
        now: Instant,
    ) {
        if buckets.len() >= PRUNE_AT {
            let own = self.rate;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * own.per_second < own.burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate.burst,
            updated: now,
        });
        let mut refilled = rate.refilled(*bucket, now);
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

    #[test]
    fn an_override_uses_its_own_burst_and_rate() {
        let limiter = RateLimiter::new(100, 6000.0);
        let slow = Rate {
            burst: 2.0,
            per_second: 0.5,
        };
        assert!(limiter.take_at("k", slow).is_ok());
        assert!(limiter.take_at("k", slow).is_ok());
        let wait = limiter.take_at("k", slow).unwrap_err();
        assert!(wait > 1_900 && wait <= 2_000, "{wait}");
        // The configured rate still admits others, and a larger override admits this key.
        assert!(limiter.take("other").is_ok());
        let fast = Rate {
            burst: 10.0,
            per_second: 100.0,
        };
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(limiter.take_at("k", fast).is_ok());
    }
}
