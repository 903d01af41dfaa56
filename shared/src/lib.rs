//! The Form-Bridge domain, shared by every function and the command line.
//!
//! A request's life, module by module:
//!
//! - [`tenant_id`]: the [`TenantId`] newtype, valid by construction.
//! - [`signature`]: signature scheme v1, what senders implement:
//!   `Content-Digest` over the body, HMAC-SHA256 over timestamp, tenant and
//!   digest, a replay window; pure functions with the time passed in.
//! - [`tenant`]: the tenant record kept in Secrets Manager, validated on
//!   load, secrets wrapped in [`Secret`] so they never print.
//! - [`store`]: the [`TenantStore`](store::TenantStore) trait, its Secrets
//!   Manager and in-memory adapters, and the TTL cache in front of them.
//! - [`rate_limit`]: per-tenant request limits.
//! - [`event`]: what a submission becomes on the bus, and its ID.
//! - [`publish`]: the [`EventPublisher`](publish::EventPublisher) trait,
//!   its EventBridge and in-memory adapters, and batched publishing with
//!   retries of only what failed.
//! - [`source`]: provider webhooks verified as each provider signs them.
//! - [`idempotency`]: each submission accepted once: idempotency keys,
//!   the store trait, its in-memory adapter and (feature `aws`) DynamoDB.
//! - [`webhook`]: Standard Webhooks signing of deliveries to tenants.
//! - [`breaker`]: circuit breakers per delivery destination.
//! - [`backoff`]: capped exponential backoff with full jitter, and
//!   `Retry-After`, for every retry loop.
//! - [`config`], [`telemetry`], [`aws`]: environment parsing, JSON logs and
//!   EMF metrics, and the SDK settings every function shares.
//! - [`json_key`]: zero-copy object keys for the functions' lean event
//!   readers.

#![warn(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod backoff;
pub mod breaker;
pub mod config;
pub mod event;
pub mod idempotency;
pub mod json_key;
pub mod publish;
pub mod rate_limit;
pub mod secret;
pub mod signature;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod tenant;
pub mod tenant_id;
pub mod webhook;

pub use secret::Secret;
pub use tenant::{Isolation, Routing, TenantRecord, TenantStatus};
pub use tenant_id::TenantId;

/// `at + d`, saturating far in the future instead of overflowing: for
/// expiry times computed from configured durations (the tenant cache, the
/// directory, idempotency keys).
pub(crate) fn later(at: tokio::time::Instant, d: std::time::Duration) -> tokio::time::Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}
