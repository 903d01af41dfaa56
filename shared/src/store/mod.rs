//! Where tenant records come from.
//!
//! [`TenantStore`] is the one interface; [`SecretsManagerStore`] reads AWS
//! Secrets Manager, [`MemoryTenantStore`] holds records in memory (loaded
//! from a JSON file for the local gateway and tests), and
//! [`CachedTenantStore`] puts a TTL cache with a negative cache and
//! stale-if-error in front of either.

mod cache;
mod directory;
mod memory;
#[cfg(feature = "aws")]
mod secrets_manager;

use std::future::Future;

pub use cache::{CachePolicy, CachedTenantStore};
pub use directory::DirectoryPolicy;
pub use memory::{MemoryTenantStore, TenantsFileError};
#[cfg(feature = "aws")]
pub use secrets_manager::SecretsManagerStore;

/// Default secret name prefix of tenant records (`TENANT_SECRET_PREFIX`).
pub const DEFAULT_TENANT_SECRET_PREFIX: &str = "form-bridge/tenants/";

/// How long the functions keep a tenant record by default, in seconds
/// (`SECRET_CACHE_TTL_SECONDS`).
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 300;

/// The accepted `SECRET_CACHE_TTL_SECONDS`: 0 (no caching) to a day.
pub const CACHE_TTL_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 0..=86_400;

/// Where tenant records are and how long one is reused, read the same way
/// by every function that reads records: `TENANT_SECRET_PREFIX` and
/// `SECRET_CACHE_TTL_SECONDS` (docs/protocol.md, section 7).
pub fn record_settings(
    env: &crate::config::Env<'_>,
) -> Result<(String, std::time::Duration), crate::config::ConfigError> {
    Ok((
        env.secret_prefix("TENANT_SECRET_PREFIX", DEFAULT_TENANT_SECRET_PREFIX)?,
        env.seconds(
            "SECRET_CACHE_TTL_SECONDS",
            DEFAULT_CACHE_TTL_SECONDS,
            CACHE_TTL_SECONDS_RANGE,
        )?,
    ))
}

use crate::tenant::{RecordError, TenantRecord};
use crate::tenant_id::TenantId;

/// Why a tenant record could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backing service failed or timed out; worth retrying later.
    #[error("tenant store unavailable: {0}")]
    Unavailable(String),
    /// A record exists but is invalid; retrying will not help until an
    /// operator fixes it.
    #[error(transparent)]
    Malformed(#[from] RecordError),
    /// Too many lookups of tenants this process has not seen recently: the
    /// cache refuses to pass more to the store (see [`CachePolicy`]).
    #[error("too many lookups of new tenant IDs; try again shortly")]
    Throttled,
}

impl StoreError {
    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "store_unavailable",
            Self::Malformed(_) => "malformed_record",
            Self::Throttled => "lookup_throttled",
        }
    }
}

/// Reads tenant records by tenant ID.
pub trait TenantStore: Send + Sync + 'static {
    /// The tenant's record, `Ok(None)` when there is no such tenant.
    ///
    /// A record whose `tenant_id` differs from `tenant` is
    /// [`StoreError::Malformed`]: a misfiled secret must not grant another
    /// tenant's identity.
    fn fetch(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<TenantRecord>, StoreError>> + Send;

    /// Every tenant ID the store holds, for the directory that keeps
    /// floods of unknown IDs from spending real tenants' lookups
    /// ([`CachedTenantStore`]). `Ok(None)`: this store cannot list.
    fn list(&self) -> impl Future<Output = Result<Option<Vec<TenantId>>, StoreError>> + Send {
        std::future::ready(Ok(None))
    }
}

#[cfg(feature = "aws")]
/// Checks that a record read for `tenant` is that tenant's.
fn check_owner(tenant: &TenantId, record: TenantRecord) -> Result<TenantRecord, StoreError> {
    if &record.tenant_id == tenant {
        Ok(record)
    } else {
        Err(StoreError::Malformed(RecordError::mismatched_tenant()))
    }
}
