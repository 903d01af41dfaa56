//! A TTL cache in front of any [`TenantStore`].
//!
//! - Records are reused for `ttl`, then refreshed.
//! - Concurrent lookups of one tenant that miss make one call to the store
//!   (moka serialises computations per key; the later callers find the fresh
//!   entry the first one stored).
//! - Unknown tenants and malformed records are remembered for
//!   `negative_ttl`, so random tenant IDs cannot hammer the store.
//! - When a lookup fails, a record that was valid within
//!   `ttl + stale_if_error` keeps serving; with none, the failure itself is
//!   remembered. Either way the store is asked again at most every
//!   `error_backoff` per tenant, not on every request.
//! - Lookups of tenants the cache holds no record for (never seen, unknown,
//!   malformed or failed) ask the tenant directory ([`super::directory`])
//!   first. IDs it lists are looked up at once; the others pass a
//!   per-process rate limit (`new_tenant_lookups`), so a flood of random
//!   tenant IDs cannot turn into a flood of store calls, and cannot spend
//!   anything a real tenant needs. Refreshes of tenants with a record are
//!   never limited.
//!
//! Time is `tokio::time::Instant`, so all of it is testable with paused time.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use tokio::time::Instant;

use super::directory::{Directory, DirectoryPolicy, Listing};
use super::{StoreError, TenantStore};
use crate::later;
use crate::rate_limit::{Limiter, limiter};
use crate::tenant::{RateLimit, RecordError, TenantRecord};
use crate::tenant_id::TenantId;

/// How long the cache trusts what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long a found record is served before it is refreshed
    /// (`SECRET_CACHE_TTL_SECONDS`).
    pub ttl: Duration,
    /// How long "no such tenant" or "malformed record" is remembered.
    pub negative_ttl: Duration,
    /// How long past `ttl` a record may still be served while the store
    /// is failing.
    pub stale_if_error: Duration,
    /// After a failed lookup, how long before the store is tried again.
    pub error_backoff: Duration,
    /// Most tenants held at once; least useful entries are evicted first.
    pub max_entries: u64,
    /// Limit on lookups of tenant IDs the cache holds no record for and
    /// the directory does not list.
    pub new_tenant_lookups: RateLimit,
    /// How the directory of tenant IDs is kept fresh.
    pub directory: DirectoryPolicy,
}

impl CachePolicy {
    /// The defaults around a given TTL: negative entries for 30 s (at most
    /// `ttl`), stale records for 15 minutes past `ttl` during an outage,
    /// retries of a failing store every 2 s, up to 10 000 tenants, unlisted
    /// tenant IDs looked up at 10 per second with bursts of 20 (real
    /// tenants are listed and never need it: it bounds what a flood of
    /// unknown IDs costs), and the directory's defaults
    /// ([`DirectoryPolicy::default`]).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(30)),
            stale_if_error: Duration::from_secs(15 * 60),
            error_backoff: Duration::from_secs(2),
            max_entries: 10_000,
            new_tenant_lookups: RateLimit {
                requests_per_second: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
                burst: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            },
            directory: DirectoryPolicy::default(),
        }
    }
}

#[derive(Clone)]
enum Cached {
    Found(Arc<TenantRecord>),
    Missing,
    Malformed(RecordError),
    /// The store failed and no recent record could stand in.
    Unavailable(String),
}

#[derive(Clone)]
struct Entry {
    value: Cached,
    fetched_at: Instant,
    refresh_at: Instant,
}

impl Entry {
    fn result(&self) -> Result<Option<Arc<TenantRecord>>, StoreError> {
        match &self.value {
            Cached::Found(record) => Ok(Some(Arc::clone(record))),
            Cached::Missing => Ok(None),
            Cached::Malformed(err) => Err(StoreError::Malformed(err.clone())),
            Cached::Unavailable(why) => Err(StoreError::Unavailable(why.clone())),
        }
    }
}

/// A [`TenantStore`] behind a TTL cache. See the module docs for the rules.
pub struct CachedTenantStore<S> {
    inner: Arc<S>,
    entries: Cache<TenantId, Arc<Entry>>,
    policy: CachePolicy,
    new_lookups: Limiter,
    directory: Arc<Directory>,
}

impl<S: TenantStore> CachedTenantStore<S> {
    /// Caches `inner` under `policy`.
    pub fn new(inner: S, policy: CachePolicy) -> Self {
        Self {
            inner: Arc::new(inner),
            entries: Cache::builder().max_capacity(policy.max_entries).build(),
            new_lookups: limiter(policy.new_tenant_lookups),
            directory: Arc::new(Directory::new(policy.directory)),
            policy,
        }
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The tenant's record, from the cache when it is fresh.
    pub async fn get(&self, tenant: &TenantId) -> Result<Option<Arc<TenantRecord>>, StoreError> {
        if let Some(entry) = self.entries.get(tenant).await
            && Instant::now() < entry.refresh_at
        {
            return entry.result();
        }
        self.refresh(tenant).await
    }

    async fn refresh(&self, tenant: &TenantId) -> Result<Option<Arc<TenantRecord>>, StoreError> {
        let computed = self
            .entries
            .entry_by_ref(tenant)
            .and_try_compute_with(|current| self.compute(tenant, current.map(|e| e.into_value())))
            .await?;
        match computed {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => {
                e.value().result()
            }
            // `compute` never removes, and only leaves an existing entry as is.
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(StoreError::Unavailable(
                "tenant cache entry vanished during refresh".into(),
            )),
        }
    }

    /// Runs with the per-tenant lock held: at most one refresh per tenant at
    /// a time.
    async fn compute(
        &self,
        tenant: &TenantId,
        current: Option<Arc<Entry>>,
    ) -> Result<Op<Arc<Entry>>, StoreError> {
        if let Some(cur) = &current
            && Instant::now() < cur.refresh_at
        {
            // Another caller refreshed it while we waited for the lock.
            return Ok(Op::Nop);
        }
        // Only refreshes of tenants with a good record skip the directory;
        // otherwise expired negative entries for random IDs would let a
        // flood through after all.
        let has_record = current
            .as_ref()
            .is_some_and(|c| matches!(c.value, Cached::Found(_)));
        let listing = if has_record {
            Listing::Listed
        } else {
            self.admit(tenant).await?
        };
        let fetched = self.inner.fetch(tenant).await;
        let now = Instant::now();
        let (value, ttl) = match fetched {
            Ok(Some(record)) => {
                if listing != Listing::Listed {
                    // Created since the last listing: no budget next time.
                    self.directory.add(tenant);
                }
                (Cached::Found(Arc::new(record)), self.policy.ttl)
            }
            Ok(None) => (Cached::Missing, self.policy.negative_ttl),
            // Logged by the caller, which turns it into an outcome.
            Err(StoreError::Malformed(err)) => (Cached::Malformed(err), self.policy.negative_ttl),
            Err(StoreError::Unavailable(why)) => {
                return Ok(self.on_failure(tenant, current, now, why));
            }
            Err(StoreError::Throttled) => return Err(StoreError::Throttled),
        };
        Ok(Op::Put(Arc::new(Entry {
            value,
            fetched_at: now,
            refresh_at: later(now, ttl),
        })))
    }

    /// Decides whether a miss may ask the store: IDs the directory lists
    /// always may; the others while the new-lookup budget lasts. Before the
    /// first listing has ended, a refused miss waits for it and asks again.
    async fn admit(&self, tenant: &TenantId) -> Result<Listing, StoreError> {
        self.refresh_directory();
        let listing = self.directory.lookup(tenant);
        if listing == Listing::Listed || self.new_lookups.check().is_ok() {
            return Ok(listing);
        }
        if listing == Listing::Unknown {
            self.directory.first_load().await;
            if self.directory.lookup(tenant) == Listing::Listed {
                return Ok(Listing::Listed);
            }
        }
        Err(StoreError::Throttled)
    }

    /// Lists the store's tenants in a task of its own when the directory
    /// is due (first miss, then at most every `directory.refresh`).
    fn refresh_directory(&self) {
        if !self.directory.begin(Instant::now()) {
            return;
        }
        let store = Arc::clone(&self.inner);
        let directory = Arc::clone(&self.directory);
        tokio::spawn(async move {
            let listed = store.list().await;
            directory.finish(listed, Instant::now());
        });
    }

    /// The store failed: keep serving the last good record while it is
    /// recent enough, else remember the failure; retry after the backoff.
    fn on_failure(
        &self,
        tenant: &TenantId,
        current: Option<Arc<Entry>>,
        now: Instant,
        why: String,
    ) -> Op<Arc<Entry>> {
        let retry_at = later(now, self.policy.error_backoff);
        if let Some(cur) = current.filter(|c| matches!(c.value, Cached::Found(_))) {
            let serve_until = later(
                cur.fetched_at,
                self.policy.ttl.saturating_add(self.policy.stale_if_error),
            );
            if now < serve_until {
                tracing::warn!(
                    tenant_id = %tenant,
                    error = %why,
                    age_s = now.duration_since(cur.fetched_at).as_secs(),
                    "tenant store failed; serving the last good record"
                );
                return Op::Put(Arc::new(Entry {
                    value: cur.value.clone(),
                    fetched_at: cur.fetched_at,
                    refresh_at: retry_at.min(serve_until),
                }));
            }
        }
        Op::Put(Arc::new(Entry {
            value: Cached::Unavailable(why),
            fetched_at: now,
            refresh_at: retry_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::store::MemoryTenantStore;
    use crate::tenant::TenantStatus;

    /// A real memory store that can be made to fail, counting calls, with a
    /// latency so concurrent callers overlap.
    #[derive(Default)]
    struct Flaky {
        store: MemoryTenantStore,
        calls: AtomicUsize,
        failing: AtomicBool,
    }

    impl TenantStore for Flaky {
        async fn fetch(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("connection refused".into()));
            }
            self.store.fetch(tenant).await
        }
    }

    const TTL: Duration = Duration::from_secs(300);

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    fn record(tenant: &str, status: &str) -> TenantRecord {
        TenantRecord::from_json(&format!(
            r#"{{"tenant_id":"{tenant}","status":"{status}","signing_secrets":["{}"]}}"#,
            "s".repeat(32)
        ))
        .expect("valid")
    }

    fn cache() -> CachedTenantStore<Flaky> {
        let flaky = Flaky::default();
        flaky.store.upsert(record("acme", "active"));
        CachedTenantStore::new(flaky, CachePolicy::with_ttl(TTL))
    }

    fn calls(c: &CachedTenantStore<Flaky>) -> usize {
        c.inner().calls.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn serves_from_cache_until_the_ttl_then_refreshes() {
        let c = cache();
        let acme = id("acme");
        assert!(c.get(&acme).await.expect("ok").is_some());
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        c.inner().store.upsert(record("acme", "suspended"));
        let rec = c.get(&acme).await.expect("ok").expect("found");
        assert_eq!((rec.status, calls(&c)), (TenantStatus::Active, 1));
        tokio::time::advance(Duration::from_secs(2)).await;
        let rec = c.get(&acme).await.expect("ok").expect("found");
        assert_eq!((rec.status, calls(&c)), (TenantStatus::Suspended, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_make_one_call() {
        let c = Arc::new(cache());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = Arc::clone(&c);
            set.spawn(async move { c.get(&id("acme")).await.map(|r| r.is_some()) });
        }
        let results = set.join_all().await;
        assert!(results.iter().all(|r| matches!(r, Ok(true))));
        assert_eq!(calls(&c), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_tenants_are_remembered_briefly() {
        let c = cache();
        let ghost = id("ghost");
        for _ in 0..5 {
            assert!(c.get(&ghost).await.expect("ok").is_none());
        }
        assert_eq!(calls(&c), 1);
        // Created while negatively cached: visible after negative_ttl.
        c.inner().store.upsert(record("ghost", "active"));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(c.get(&ghost).await.expect("ok").is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get(&ghost).await.expect("ok").is_some());
        assert_eq!(calls(&c), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_refresh_serves_the_last_good_record_for_a_bounded_time() {
        let c = cache();
        let acme = id("acme");
        assert!(c.get(&acme).await.expect("ok").is_some());
        c.inner().failing.store(true, Ordering::SeqCst);
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        // Refresh fails: still served, and the store is not retried per request.
        assert!(c.get(&acme).await.expect("stale ok").is_some());
        assert!(c.get(&acme).await.expect("stale ok").is_some());
        assert_eq!(calls(&c), 2);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get(&acme).await.expect("stale ok").is_some());
        assert_eq!(calls(&c), 3);
        // Past ttl + stale_if_error the failure surfaces, still backed off.
        tokio::time::advance(Duration::from_secs(15 * 60)).await;
        assert!(matches!(
            c.get(&acme).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            c.get(&acme).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(calls(&c), 4);
        // The store answers again: the next retry after the backoff succeeds.
        c.inner().failing.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get(&acme).await.expect("ok").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_with_nothing_cached_is_remembered_for_the_backoff() {
        let c = cache();
        c.inner().failing.store(true, Ordering::SeqCst);
        let acme = id("acme");
        assert!(matches!(
            c.get(&acme).await,
            Err(StoreError::Unavailable(_))
        ));
        c.inner().failing.store(false, Ordering::SeqCst);
        assert!(matches!(
            c.get(&acme).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(calls(&c), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(c.get(&acme).await.expect("ok").is_some());
        assert_eq!(calls(&c), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_during_an_outage_make_one_call() {
        let c = Arc::new(cache());
        c.inner().failing.store(true, Ordering::SeqCst);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = Arc::clone(&c);
            set.spawn(async move { c.get(&id("acme")).await.is_err() });
        }
        assert!(set.join_all().await.into_iter().all(|failed| failed));
        assert_eq!(calls(&c), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_of_new_tenants_are_rate_limited_but_refreshes_are_not() {
        let flaky = Flaky::default();
        flaky.store.upsert(record("acme", "active"));
        let mut policy = CachePolicy::with_ttl(TTL);
        policy.new_tenant_lookups = RateLimit {
            requests_per_second: NonZeroU32::new(1).expect("1"),
            burst: NonZeroU32::new(3).expect("3"),
        };
        let c = CachedTenantStore::new(flaky, policy);
        assert!(c.get(&id("acme")).await.expect("ok").is_some());
        let mut throttled = 0;
        for i in 0..10 {
            let random = id(&format!("random-{i}"));
            throttled += usize::from(matches!(c.get(&random).await, Err(StoreError::Throttled)));
        }
        assert_eq!(throttled, 8, "the burst of 3 was acme plus two random IDs");
        assert_eq!(calls(&c), 3);
        // Their negative entries expire: refreshing them is limited too.
        tokio::time::advance(Duration::from_secs(31)).await;
        let again = (0..2)
            .map(|i| id(&format!("random-{i}")))
            .collect::<Vec<_>>();
        let mut refused = 0;
        for t in &again {
            refused += usize::from(matches!(c.get(t).await, Err(StoreError::Throttled)));
        }
        assert_eq!(refused, 0, "31 s refilled the bucket with 3 tokens (burst)");
        for i in 0..10 {
            let t = id(&format!("random-{i}"));
            let _ = c.get(&t).await;
        }
        assert_eq!(calls(&c), 3 + 2 + 1, "one more token, then refused");
        // A tenant with a record is refreshed even with the bucket empty.
        tokio::time::advance(TTL).await;
        for i in 0..10 {
            let _ = c.get(&id(&format!("other-{i}"))).await;
        }
        let before = calls(&c);
        assert!(c.get(&id("acme")).await.expect("ok").is_some());
        assert_eq!(calls(&c), before + 1);
    }

    /// A memory store that lists its tenants, counting calls; listing can
    /// be made to fail.
    #[derive(Default)]
    struct Listed {
        store: MemoryTenantStore,
        fetches: AtomicUsize,
        lists: AtomicUsize,
        list_fails: AtomicBool,
    }

    impl TenantStore for Listed {
        async fn fetch(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.store.fetch(tenant).await
        }

        /// What the store held when the call began, 200 ms later.
        async fn list(&self) -> Result<Option<Vec<TenantId>>, StoreError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            let listed = self.store.list().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if self.list_fails.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("AccessDeniedException".into()));
            }
            listed
        }
    }

    /// Twenty real tenants behind a cache whose budget for unlisted IDs is
    /// 1 per second with bursts of 3.
    fn listed_cache() -> CachedTenantStore<Listed> {
        let store = Listed::default();
        for i in 0..20 {
            store.store.upsert(record(&format!("real-{i}"), "active"));
        }
        let mut policy = CachePolicy::with_ttl(TTL);
        policy.new_tenant_lookups = RateLimit {
            requests_per_second: NonZeroU32::new(1).expect("1"),
            burst: NonZeroU32::new(3).expect("3"),
        };
        CachedTenantStore::new(store, policy)
    }

    /// Looks up 50 junk IDs, then every real tenant; counts results.
    async fn flood_then_real(c: &CachedTenantStore<Listed>, round: usize) -> (usize, usize) {
        let mut throttled = 0;
        for i in 0..50 {
            let junk = id(&format!("x{round}-{i}"));
            throttled += usize::from(matches!(c.get(&junk).await, Err(StoreError::Throttled)));
        }
        let mut found = 0;
        for i in 0..20 {
            found += usize::from(matches!(
                c.get(&id(&format!("real-{i}"))).await,
                Ok(Some(_))
            ));
        }
        (throttled, found)
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_unknown_ids_never_refuses_a_real_tenant() {
        let c = listed_cache();
        // A brand-new process: the flood's first miss starts the listing;
        // misses the budget refuses wait for it, then junk is refused and
        // every real tenant, uncached, is found.
        let (throttled, found) = flood_then_real(&c, 0).await;
        assert_eq!((throttled, found), (47, 20));
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 1);
        // Store calls for junk stay within the budget: 3, plus 20 real.
        assert_eq!(c.inner().fetches.load(Ordering::SeqCst), 23);
        // Later, uncached again (past the TTL), still all found; the
        // directory was listed again once (a minute has passed).
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        let (_, found) = flood_then_real(&c, 1).await;
        assert_eq!(found, 20);
        tokio::task::yield_now().await;
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_created_after_the_listing_uses_the_budget_once() {
        let c = listed_cache();
        assert!(c.get(&id("real-0")).await.expect("ok").is_some());
        tokio::time::sleep(Duration::from_millis(300)).await; // listed
        c.inner().store.upsert(record("newco", "active"));
        // Unlisted: the budget lets it through, and it is remembered.
        assert!(c.get(&id("newco")).await.expect("ok").is_some());
        // With the budget spent by junk, its next miss is still served.
        for i in 0..10 {
            let _ = c.get(&id(&format!("junk-{i}"))).await;
        }
        tokio::time::advance(TTL + Duration::from_secs(1)).await;
        c.entries.invalidate(&id("newco")).await;
        for i in 10..20 {
            let _ = c.get(&id(&format!("junk-{i}"))).await;
        }
        assert!(c.get(&id("newco")).await.expect("ok").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenant_found_while_a_listing_is_in_flight_stays_listed() {
        let c = listed_cache();
        // The first miss starts a listing that will not hold newco.
        assert!(c.get(&id("real-0")).await.expect("ok").is_some());
        c.inner().store.upsert(record("newco", "active"));
        assert!(c.get(&id("newco")).await.expect("ok").is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 1);
        assert_eq!(c.directory.lookup(&id("newco")), Listing::Listed);
    }

    #[tokio::test(start_paused = true)]
    async fn when_listing_fails_unlisted_lookups_share_the_budget_and_it_is_retried() {
        let c = listed_cache();
        c.inner().list_fails.store(true, Ordering::SeqCst);
        let (throttled, found) = flood_then_real(&c, 0).await;
        // What the budget allows: nothing left for the real tenants.
        assert_eq!((throttled, found), (47, 0));
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 1);
        // Not retried before 15 s; then it works again.
        c.inner().list_fails.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(10)).await;
        let _ = c.get(&id("junk-a")).await;
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        let _ = c.get(&id("junk-b")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.inner().lists.load(Ordering::SeqCst), 2);
        let (_, found) = flood_then_real(&c, 1).await;
        assert_eq!(found, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn extreme_policy_durations_do_not_overflow() {
        let flaky = Flaky::default();
        flaky.store.upsert(record("acme", "active"));
        let mut policy = CachePolicy::with_ttl(Duration::MAX);
        policy.stale_if_error = Duration::MAX;
        policy.error_backoff = Duration::MAX;
        let c = CachedTenantStore::new(flaky, policy);
        assert!(c.get(&id("acme")).await.expect("ok").is_some());
        assert!(c.get(&id("acme")).await.expect("ok").is_some());
        assert_eq!(calls(&c), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_records_are_negatively_cached() {
        struct Broken(AtomicUsize);
        impl TenantStore for Broken {
            async fn fetch(&self, _: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Malformed(RecordError::mismatched_tenant()))
            }
        }
        let c = CachedTenantStore::new(Broken(AtomicUsize::new(0)), CachePolicy::with_ttl(TTL));
        for _ in 0..3 {
            assert!(matches!(
                c.get(&id("acme")).await,
                Err(StoreError::Malformed(_))
            ));
        }
        assert_eq!(c.inner().0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_ttl_always_asks_the_store() {
        let flaky = Flaky::default();
        flaky.store.upsert(record("acme", "active"));
        let c = CachedTenantStore::new(flaky, CachePolicy::with_ttl(Duration::ZERO));
        for _ in 0..3 {
            assert!(c.get(&id("acme")).await.expect("ok").is_some());
        }
        assert_eq!(calls(&c), 3);
    }
}
