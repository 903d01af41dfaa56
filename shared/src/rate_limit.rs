//! Per-tenant rate limiting (GCRA, from governor).
//!
//! Each tenant with a `rate_limit` in its record gets its own limiter, built
//! the first time the tenant is seen and rebuilt when its limit changes.
//! Tenants without one are not limited here (the API's own throttling
//! applies). State lives in this process: on Lambda that is one execution
//! environment, so the effective limit across a fleet is the per-environment
//! limit times the number of warm environments.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::tenant::RateLimit;
use crate::tenant_id::TenantId;

/// governor's clock reading tokio's time, so limits follow paused time in
/// tests and the real monotonic clock in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One GCRA limiter on tokio's clock.
pub(crate) type Limiter =
    RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// A limiter allowing `limit.burst` at once, refilled at
/// `limit.requests_per_second`.
pub(crate) fn limiter(limit: RateLimit) -> Limiter {
    let quota = Quota::per_second(limit.requests_per_second).allow_burst(limit.burst);
    RateLimiter::direct_with_clock(quota, TokioClock)
}

struct TenantLimiter {
    limit: RateLimit,
    limiter: Limiter,
}

/// A request over the tenant's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry in {retry_after:?}")]
pub struct RateLimited {
    /// When the next request would be allowed.
    pub retry_after: Duration,
}

/// Rate limiters for all tenants seen by this process, one per key: a
/// tenant, or anything else that gets its own bucket under a tenant's limit
/// (a tenant's source: `(TenantId, SourceId)`). Only keys of records that
/// exist are ever checked, so the map is bounded by the records.
pub struct TenantRateLimiter<K = TenantId> {
    limiters: RwLock<HashMap<K, Arc<TenantLimiter>>>,
}

impl<K> Default for TenantRateLimiter<K> {
    fn default() -> Self {
        Self {
            limiters: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> TenantRateLimiter<K> {
    /// No tenants limited yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request for `tenant` under `limit` (from its record).
    pub fn check(&self, tenant: &K, limit: Option<RateLimit>) -> Result<(), RateLimited> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let limiter = self.limiter_for(tenant, limit);
        limiter.limiter.check().map_err(|not_until| RateLimited {
            retry_after: not_until.wait_time_from(TokioClock.now()),
        })
    }

    fn limiter_for(&self, tenant: &K, limit: RateLimit) -> Arc<TenantLimiter> {
        // Poisoning cannot leave the map half-updated (one insert per write).
        if let Some(l) = self
            .limiters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            && l.limit == limit
        {
            return Arc::clone(l);
        }
        let mut map = self.limiters.write().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(tenant.clone())
            .or_insert_with(|| new_limiter(limit));
        if entry.limit != limit {
            *entry = new_limiter(limit);
        }
        Arc::clone(entry)
    }
}

fn new_limiter(limit: RateLimit) -> Arc<TenantLimiter> {
    Arc::new(TenantLimiter {
        limit,
        limiter: limiter(limit),
    })
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn limit(rps: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests_per_second: NonZeroU32::new(rps).expect("nonzero"),
            burst: NonZeroU32::new(burst).expect("nonzero"),
        })
    }

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    fn allowed(l: &TenantRateLimiter, t: &TenantId, lim: Option<RateLimit>, n: usize) -> usize {
        (0..n).filter(|_| l.check(t, lim).is_ok()).count()
    }

    #[tokio::test(start_paused = true)]
    async fn allows_the_burst_then_the_sustained_rate() {
        let l = TenantRateLimiter::new();
        let acme = id("acme");
        assert_eq!(allowed(&l, &acme, limit(10, 20), 50), 20);
        let err = l.check(&acme, limit(10, 20)).expect_err("limited");
        assert_eq!(err.retry_after, Duration::from_millis(100));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(allowed(&l, &acme, limit(10, 20), 50), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn tenants_are_limited_independently() {
        let l = TenantRateLimiter::new();
        assert_eq!(allowed(&l, &id("a"), limit(1, 3), 5), 3);
        assert_eq!(allowed(&l, &id("b"), limit(1, 3), 5), 3);
        assert_eq!(allowed(&l, &id("a"), limit(1, 3), 5), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_means_not_limited() {
        let l = TenantRateLimiter::new();
        assert_eq!(allowed(&l, &id("a"), None, 10_000), 10_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_limit_takes_effect() {
        let l = TenantRateLimiter::new();
        let a = id("a");
        assert_eq!(allowed(&l, &a, limit(1, 1), 5), 1);
        assert_eq!(allowed(&l, &a, limit(100, 5), 10), 5);
    }
}
