//! Which tenants exist: a directory of tenant IDs, listed from the store.
//!
//! The cache asks it one question on a miss: is this ID a tenant's? A
//! listed ID is looked up at once, never throttled, whatever anyone else
//! sends; only IDs the directory does not list (junk, or tenants created
//! since the last listing) share the budget for new lookups. That budget is
//! then spent by attackers alone.
//!
//! The directory is loaded by the first miss, not at start-up (a cold start
//! pays nothing), in a task of its own, and listed again at most every
//! `refresh` (plus up to a quarter, at random) while misses keep coming; a
//! tenant found by a lookup meanwhile is kept. A failed listing keeps the
//! previous one and is tried again after `retry`. Until the first listing
//! has ended, a miss that the budget refuses waits for it (up to
//! `first_load_wait`), so a brand-new process under a flood still finds its
//! real tenants.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::StoreError;
use crate::later;
use crate::tenant_id::TenantId;

/// What the directory says about one tenant ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// The store listed it: a tenant's ID.
    Listed,
    /// The directory is loaded and does not hold it.
    Unlisted,
    /// No listing yet (loading, failed, or a store that cannot list).
    Unknown,
}

/// How the directory keeps itself fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryPolicy {
    /// How often the store is listed again while misses keep coming (plus
    /// up to a quarter more, at random)...
    pub refresh: Duration,
    /// ...and at least this long per page of 100 tenants, so that one
    /// environment lists at most a page every this often, whatever the
    /// number of tenants (`ListSecrets` has a low account-wide quota).
    pub refresh_per_page: Duration,
    /// After a failed listing, how long before the next try.
    pub retry: Duration,
    /// How long a miss the new-lookup budget refused waits for the first
    /// listing to end.
    pub first_load_wait: Duration,
}

impl Default for DirectoryPolicy {
    /// Listed again every minute at most (every 6 s per page of 100
    /// tenants beyond 10 pages), retried 15 s after a failure, and a
    /// refused miss waits up to 3 s for the first listing.
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(60),
            refresh_per_page: Duration::from_secs(6),
            retry: Duration::from_secs(15),
            first_load_wait: Duration::from_secs(3),
        }
    }
}

#[derive(Default)]
struct State {
    ids: Option<HashSet<TenantId>>,
    /// When the next listing may start.
    due: Option<Instant>,
    listing: bool,
    /// Tenants found while a listing was in flight, which that listing may
    /// not hold yet.
    found_while_listing: Vec<TenantId>,
}

/// The tenant IDs last listed from the store.
pub(super) struct Directory {
    policy: DirectoryPolicy,
    state: Mutex<State>,
    /// `true` once the first listing has ended, either way.
    first_load: watch::Sender<bool>,
}

impl Directory {
    pub(super) fn new(policy: DirectoryPolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
            first_load: watch::Sender::new(false),
        }
    }

    /// What the last listing says about `tenant`.
    pub(super) fn lookup(&self, tenant: &TenantId) -> Listing {
        match &self.lock().ids {
            None => Listing::Unknown,
            Some(ids) if ids.contains(tenant) => Listing::Listed,
            Some(_) => Listing::Unlisted,
        }
    }

    /// Whether a listing should start now; if so, marks it started. The
    /// caller must then call [`Directory::finish`].
    pub(super) fn begin(&self, now: Instant) -> bool {
        let mut state = self.lock();
        if state.listing || state.due.is_some_and(|due| now < due) {
            return false;
        }
        state.listing = true;
        true
    }

    /// Records a listing's result: `Ok(None)` is a store that cannot list.
    pub(super) fn finish(&self, listed: Result<Option<Vec<TenantId>>, StoreError>, now: Instant) {
        let mut state = self.lock();
        state.listing = false;
        match listed {
            Ok(Some(ids)) => {
                tracing::info!(tenants = ids.len(), "tenant directory listed");
                let pages = u32::try_from(ids.len().div_ceil(100)).unwrap_or(u32::MAX);
                let interval = self
                    .policy
                    .refresh
                    .max(self.policy.refresh_per_page.saturating_mul(pages));
                let mut ids: HashSet<TenantId> = ids.into_iter().collect();
                ids.extend(state.found_while_listing.drain(..));
                state.ids = Some(ids);
                state.due = Some(later(now, jittered(interval)));
            }
            Ok(None) => state.due = Some(later(now, Duration::MAX)),
            Err(error) => {
                // The previous listing, if any, still holds real tenants.
                tracing::warn!(
                    error = %error,
                    retry_s = self.policy.retry.as_secs(),
                    "cannot list tenants; lookups of unlisted IDs share the new-lookup budget"
                );
                state.due = Some(later(now, self.policy.retry));
            }
        }
        state.found_while_listing.clear();
        drop(state);
        self.first_load.send_replace(true);
    }

    /// Adds a tenant found by a lookup (created since the last listing).
    pub(super) fn add(&self, tenant: &TenantId) {
        let mut state = self.lock();
        if state.listing {
            state.found_while_listing.push(tenant.clone());
        }
        if let Some(ids) = &mut state.ids {
            ids.insert(tenant.clone());
        }
    }

    /// Waits, up to the policy's bound, for the first listing to end.
    pub(super) async fn first_load(&self) {
        let mut done = self.first_load.subscribe();
        let _ = tokio::time::timeout(self.policy.first_load_wait, done.wait_for(|d| *d)).await;
    }

    // Every change under the lock is a single assignment: a panic elsewhere
    // cannot leave the state half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `interval` plus up to a quarter more, at random: environments that
/// started together do not list together.
fn jittered(interval: Duration) -> Duration {
    interval.saturating_add(interval.mul_f64(fastrand::f64() / 4.0))
}
