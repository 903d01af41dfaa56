//! The Form-Bridge connector: delivers submission events from the bus to
//! each tenant's REST endpoint (docs/protocol.md, section 6).
//!
//! An EventBridge rule sends events to an SQS queue, and the queue invokes
//! this Lambda with batches. For each record, concurrently up to a bound,
//! and up to a smaller bound per tenant so that one slow endpoint cannot
//! take the whole invocation:
//!
//! 1. read the EventBridge event and check it is a submission
//!    ([`event`]); a malformed record fails alone;
//! 2. look the tenant's `destination` up through the cached tenant store;
//! 3. deliver it ([`deliver`]): signed with Standard Webhooks
//!    ([`shared::webhook`]), through one pooled HTTP client ([`client`])
//!    that refuses non-public destinations ([`guard`]), behind a circuit
//!    breaker per destination ([`shared::breaker`]), with a few quick
//!    retries of retryable failures;
//! 4. answer with exactly the records not delivered as
//!    `batchItemFailures`, so SQS redelivers those later and moves them to
//!    the dead-letter queue after its receive limit. Nothing is dropped.
//!
//! A single EventBridge event (an asynchronous invoke) is delivered the
//! same way; its failure is the invocation's error. [`Connector::handle`]
//! is what the Lambda runs; [`Connector::deliver_event`] delivers one event
//! for callers with their own queue (the local gateway). Failures become
//! outcomes, logs and metrics in `Connector::finish` only.

pub mod client;
pub mod deliver;
pub mod event;
pub mod guard;

use std::time::Duration;

pub use client::{ClientOptions, DeliveryClient, HttpDeliveryClient, SendError, WebhookRequest};
pub use deliver::{Attempts, Class, Deliverer, DeliveryError, DeliveryPolicy, Target};
pub use event::{BatchResponse, ConnectorEvent, Input, ItemFailure, SqsRecord, Submission};
use futures_util::StreamExt as _;
pub use guard::{GuardRules, Hosts, NotAllowed};
use serde::Serialize;
use shared::TenantId;
use shared::breaker::BreakerPolicy;
use shared::config::{ConfigError, Env};
use shared::store::{CachePolicy, CachedTenantStore, TenantStore};
use shared::telemetry::{Dimension, Measure, Metrics};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// The connector's configuration (docs/protocol.md, section 7, which also
/// lists the delivery and breaker settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TENANT_SECRET_PREFIX`.
    pub tenant_secret_prefix: String,
    /// `SECRET_CACHE_TTL_SECONDS`.
    pub secret_cache_ttl: Duration,
    /// `ALLOW_PRIVATE_DESTINATIONS`: lifts the SSRF guard (local use only).
    pub allow_private_destinations: bool,
    /// `DELIVERY_CONCURRENCY`: records of one batch delivered at once.
    pub concurrency: usize,
    /// `DELIVERY_CONCURRENCY_PER_DESTINATION`: of those, at most this many
    /// to one tenant's destination, so one slow endpoint cannot take a
    /// whole invocation (or the local gateway's delivery slots).
    pub per_destination: usize,
    /// `SLOW_DELIVERY_MS`: a delivery that takes longer counts as slow
    /// (the `SlowDeliveries` metric, per tenant and in all).
    pub slow_delivery: Duration,
    /// Attempts, backoff, timeouts and breaker thresholds.
    pub policy: DeliveryPolicy,
}

impl Config {
    /// Reads the configuration; errors name the variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let defaults = DeliveryPolicy::default();
        let breaker_defaults = BreakerPolicy::default();
        let window = env.number(
            "BREAKER_WINDOW",
            u64::from(breaker_defaults.window),
            1..=u64::from(shared::breaker::MAX_WINDOW),
        )?;
        let minimum_calls = env.number(
            "BREAKER_MINIMUM_CALLS",
            u64::from(breaker_defaults.minimum_calls).min(window),
            1..=window,
        )?;
        let breaker = BreakerPolicy {
            consecutive_failures: small(env.number(
                "BREAKER_FAILURE_THRESHOLD",
                u64::from(breaker_defaults.consecutive_failures),
                1..=1_000,
            )?),
            failure_ratio: env.number(
                "BREAKER_FAILURE_RATE_PERCENT",
                (breaker_defaults.failure_ratio * 100.0) as u64,
                1..=100,
            )? as f64
                / 100.0,
            minimum_calls: small(minimum_calls),
            window: small(window),
            cool_down: env.seconds(
                "BREAKER_COOL_DOWN_SECONDS",
                breaker_defaults.cool_down.as_secs(),
                1..=3_600,
            )?,
        };
        let policy = DeliveryPolicy {
            max_attempts: small(env.number(
                "DELIVERY_ATTEMPTS",
                u64::from(defaults.max_attempts),
                1..=10,
            )?),
            default_timeout: env.millis(
                "DELIVERY_TIMEOUT_MS",
                defaults.default_timeout.as_millis() as u64,
                100..=shared::tenant::MAX_DESTINATION_TIMEOUT.as_millis() as u64,
            )?,
            breaker,
            ..defaults
        };
        let (tenant_secret_prefix, secret_cache_ttl) = shared::store::record_settings(env)?;
        Ok(Self {
            tenant_secret_prefix,
            secret_cache_ttl,
            allow_private_destinations: env.flag("ALLOW_PRIVATE_DESTINATIONS", false)?,
            concurrency: env.number("DELIVERY_CONCURRENCY", 32, 1..=1_000)? as usize,
            per_destination: env.number("DELIVERY_CONCURRENCY_PER_DESTINATION", 8, 1..=1_000)?
                as usize,
            slow_delivery: env.millis(
                "SLOW_DELIVERY_MS",
                2_000,
                100..=shared::tenant::MAX_DESTINATION_TIMEOUT.as_millis() as u64,
            )?,
            policy,
        })
    }

    /// The options for [`HttpDeliveryClient::new`]: the guard from
    /// `ALLOW_PRIVATE_DESTINATIONS`, the system resolver, and connections
    /// given at most 5 s (less when `DELIVERY_TIMEOUT_MS` is shorter).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            rules: GuardRules::new(self.allow_private_destinations),
            hosts: Hosts::system(),
            connect_timeout: self.policy.default_timeout.min(Duration::from_secs(5)),
        }
    }
}

/// A number already range-checked to fit.
fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The Lambda's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// For an SQS batch.
    Batch(BatchResponse),
    /// For a direct event that was delivered.
    Delivered {
        /// Its submission ID.
        delivered: String,
    },
}

/// Why an invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Neither an SQS event nor an EventBridge event.
    #[error("the invocation is neither an SQS event nor an EventBridge event")]
    NotAnEvent,
    /// A direct event was not delivered.
    #[error("not delivered ({code}): {0}", code = .0.code())]
    Undelivered(#[from] DeliveryError),
}

impl HandlerError {
    /// A stable snake_case code: the Lambda error's type.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAnEvent => "not_an_event",
            Self::Undelivered(e) => e.code(),
        }
    }
}

/// The connector: the tenant store, the deliverer and the batch logic.
pub struct Connector<S, C> {
    store: CachedTenantStore<S>,
    deliverer: Deliverer<C>,
    concurrency: usize,
    per_destination: usize,
    slow_delivery: Duration,
    metrics: Metrics,
}

impl<S: TenantStore, C: DeliveryClient> Connector<S, C> {
    /// A connector reading tenants from `store` (behind a cache) and
    /// sending through `client`.
    pub fn new(store: S, client: C, config: &Config, metrics: Metrics) -> Self {
        Self {
            store: CachedTenantStore::new(store, CachePolicy::with_ttl(config.secret_cache_ttl)),
            deliverer: Deliverer::new(client, config.policy, metrics.clone()),
            concurrency: config.concurrency.max(1),
            per_destination: config.per_destination.max(1),
            slow_delivery: config.slow_delivery,
            metrics,
        }
    }

    /// The deliverer (breaker states, for tests and the local gateway).
    pub fn deliverer(&self) -> &Deliverer<C> {
        &self.deliverer
    }

    /// Handles one invocation. No attempt starts that could not end by
    /// `deadline` (the Lambda's, when there is one).
    pub async fn handle(
        &self,
        event: &ConnectorEvent,
        deadline: Option<Instant>,
    ) -> Result<Output, HandlerError> {
        match event.input() {
            Some(Input::Batch(records)) => Ok(Output::Batch(self.batch(&records, deadline).await)),
            Some(Input::Direct(json)) => {
                let delivered = self.deliver_event(json, deadline).await?;
                Ok(Output::Delivered { delivered })
            }
            None => {
                error!(
                    code = "not_an_event",
                    "invocation is neither an SQS nor an EventBridge event"
                );
                Err(HandlerError::NotAnEvent)
            }
        }
    }

    /// Delivers every record of a batch, at most `DELIVERY_CONCURRENCY` at
    /// once and `DELIVERY_CONCURRENCY_PER_DESTINATION` to one tenant;
    /// answers with the records that were not delivered.
    pub async fn batch(&self, records: &[SqsRecord], deadline: Option<Instant>) -> BatchResponse {
        let turns = Turns::new(self.per_destination);
        let turns = &turns;
        let mut failed: Vec<usize> = futures_util::stream::iter(records.iter().enumerate())
            .map(|(i, record)| async move {
                self.deliver(&record.body, deadline, Some(turns))
                    .await
                    .err()
                    .map(|_| i)
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|failed| async move { failed })
            .collect()
            .await;
        failed.sort_unstable();
        BatchResponse {
            batch_item_failures: failed
                .into_iter()
                .map(|i| ItemFailure {
                    item_identifier: records[i].message_id.clone(),
                })
                .collect(),
        }
    }

    /// Delivers one EventBridge event (JSON text); returns its submission
    /// ID. Logs and counts the outcome.
    pub async fn deliver_event(
        &self,
        json: &str,
        deadline: Option<Instant>,
    ) -> Result<String, DeliveryError> {
        self.deliver(json, deadline, None).await
    }

    /// [`Connector::deliver_event`], waiting first for the tenant's turn
    /// when the batch bounds deliveries per destination.
    async fn deliver(
        &self,
        json: &str,
        deadline: Option<Instant>,
        turns: Option<&Turns>,
    ) -> Result<String, DeliveryError> {
        let submission = match Submission::parse(json) {
            Ok(submission) => submission,
            Err(reason) => {
                let error = DeliveryError::Malformed(reason);
                self.finish(None, None, &Attempts::none(error.clone()), Instant::now());
                return Err(error);
            }
        };
        let tenant = &submission.detail.tenant_id;
        let id = &*submission.detail.submission_id;
        let _turn = match turns {
            None => None,
            Some(turns) => match turns.wait(tenant, deadline).await {
                Some(turn) => Some(turn),
                None => {
                    let error = DeliveryError::NoTimeLeft;
                    self.finish(
                        Some(tenant),
                        Some(id),
                        &Attempts::none(error.clone()),
                        Instant::now(),
                    );
                    return Err(error);
                }
            },
        };
        let started = Instant::now();
        let lookup = async {
            match self.store.get(tenant).await {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(DeliveryError::UnknownTenant),
                Err(e) => Err(DeliveryError::Store(e)),
            }
        };
        // A slow Secrets Manager must not run the invocation past its
        // deadline: SQS would then redeliver the records already delivered.
        let record = match deadline {
            None => lookup.await,
            Some(deadline) => {
                let by = deadline
                    .checked_sub(deliver::DEADLINE_MARGIN)
                    .unwrap_or(deadline);
                tokio::time::timeout_at(by, lookup)
                    .await
                    .unwrap_or(Err(DeliveryError::NoTimeLeft))
            }
        };
        let attempts = match record {
            Err(error) => Attempts::none(error),
            Ok(record) => match &record.destination {
                None => Attempts::none(DeliveryError::NoDestination),
                Some(destination) => {
                    let target = Target {
                        tenant,
                        destination,
                        id,
                    };
                    self.deliverer
                        .deliver(&target, &submission.body(), deadline)
                        .await
                }
            },
        };
        self.finish(Some(tenant), Some(id), &attempts, started);
        attempts.result.map(|_| id.to_owned())
    }

    /// The one place a delivery's outcome becomes a log line and metrics.
    fn finish(
        &self,
        tenant: Option<&TenantId>,
        id: Option<&str>,
        attempts: &Attempts,
        started: Instant,
    ) {
        let latency = started.elapsed();
        let latency_ms = latency.as_millis() as u64;
        let tenant_id = tenant.map_or("", TenantId::as_str);
        let (outcome, reason) = match &attempts.result {
            Ok(status) => {
                debug!(
                    tenant_id,
                    submission_id = id,
                    status,
                    attempts = attempts.sent,
                    latency_ms,
                    "delivered"
                );
                ("delivered", "delivered")
            }
            Err(error) => {
                let class = error.class();
                let code = error.code();
                let submission_id = id.unwrap_or_default();
                match (class, error) {
                    (_, DeliveryError::Status(410)) => error!(
                        tenant_id,
                        submission_id,
                        code,
                        attempts = attempts.sent,
                        "destination answered 410 Gone: it asks to be disabled; remove or replace the tenant's destination"
                    ),
                    (Class::Permanent, _) => error!(
                        tenant_id, submission_id, code, attempts = attempts.sent, error = %error,
                        "not delivered; retrying will not help until the cause is fixed"
                    ),
                    (Class::Retryable, _) => warn!(
                        tenant_id, submission_id, code, attempts = attempts.sent, error = %error,
                        "not delivered yet; the queue will redeliver it"
                    ),
                }
                (class.as_str(), code)
            }
        };
        if latency >= self.slow_delivery
            && let Some(tenant) = tenant
        {
            // Per tenant, to find it; and in all, for the stack's alarm.
            self.metrics.emit(
                &[Measure::count("SlowDeliveries", 1)],
                &[("TenantId", tenant.as_str())],
                &[&["TenantId"], &[]],
            );
        }
        let measures = [
            Measure::count("Deliveries", 1),
            Measure::count("DeliveryAttempts", attempts.sent),
            Measure::millis("DeliveryLatency", latency),
        ];
        let mut dimensions: Vec<Dimension<'_>> = vec![("Outcome", outcome), ("Reason", reason)];
        if tenant.is_some() {
            dimensions.push(("TenantId", tenant_id));
            self.metrics.emit(
                &measures,
                &dimensions,
                &[&["TenantId", "Outcome"], &["Outcome", "Reason"]],
            );
        } else {
            self.metrics
                .emit(&measures, &dimensions, &[&["Outcome", "Reason"]]);
        }
    }
}

/// Turns per destination within one batch: at most `per_destination`
/// deliveries to one tenant at once, so the rest of the batch is not held
/// behind one slow endpoint's records.
struct Turns {
    per_destination: usize,
    by_tenant: std::sync::Mutex<std::collections::HashMap<TenantId, std::sync::Arc<Semaphore>>>,
}

impl Turns {
    fn new(per_destination: usize) -> Self {
        Self {
            per_destination,
            by_tenant: std::sync::Mutex::default(),
        }
    }

    /// Waits for a turn to deliver to `tenant`; `None` when none comes in
    /// time to deliver before `deadline`.
    async fn wait(
        &self,
        tenant: &TenantId,
        deadline: Option<Instant>,
    ) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
            std::sync::Arc::clone(
                by_tenant
                    .entry(tenant.clone())
                    .or_insert_with(|| std::sync::Arc::new(Semaphore::new(self.per_destination))),
            )
        };
        let acquire = semaphore.acquire_owned();
        match deadline {
            None => acquire.await.ok(),
            Some(deadline) => {
                let by = deadline
                    .checked_sub(deliver::DEADLINE_MARGIN)
                    .unwrap_or(deadline);
                tokio::time::timeout_at(by, acquire).await.ok()?.ok()
            }
        }
    }
}
