//! Delivering one event to one destination: signing, the breaker, and
//! quick retries inside the invocation.
//!
//! Each attempt asks the destination's breaker first (an open breaker
//! fails the delivery at once, with no network call), signs the body with
//! the time of sending, and reports the attempt's outcome back to the
//! breaker. A retryable failure is retried after a jittered backoff, or
//! after the destination's `Retry-After` when that is short enough; a
//! permanent one is not. No attempt starts that could not finish before
//! the invocation's deadline.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::Url;
use shared::backoff::{full_jitter, retry_after};
use shared::breaker::{BreakerPolicy, Breakers, Refused, State, Transition};
use shared::signature::unix_now;
use shared::store::StoreError;
use shared::telemetry::Metrics;
use shared::tenant::Destination;
use shared::{TenantId, webhook};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::{DeliveryClient, SendError, WebhookRequest};
use crate::guard::NotAllowed;

/// Time kept back before the deadline for reporting the outcome.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// An attempt with less time than this is not started.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// How deliveries are attempted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    /// Attempts per delivery in one invocation, the first included
    /// (`DELIVERY_ATTEMPTS`).
    pub max_attempts: u32,
    /// Backoff before the first retry, doubled for each further one.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for inside the invocation; a longer
    /// one ends the attempts and leaves the wait to the queue.
    pub max_retry_after: Duration,
    /// Total timeout of one attempt when the destination sets none
    /// (`DELIVERY_TIMEOUT_MS`).
    pub default_timeout: Duration,
    /// The breakers' thresholds and cool-down.
    pub breaker: BreakerPolicy,
}

impl Default for DeliveryPolicy {
    /// 3 attempts, backoff 200 ms doubling to 2 s with full jitter,
    /// `Retry-After` honoured up to 5 s, 10 s per attempt, default breaker.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(5),
            default_timeout: Duration::from_secs(10),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// Whether a failed delivery can succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later (SQS redelivers the message).
    Retryable,
    /// Retrying the same event cannot help until something is fixed.
    Permanent,
}

impl Class {
    /// `retryable` or `permanent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::Permanent => "permanent",
        }
    }
}

/// Why an event was not delivered. Never holds a URL, header value or
/// secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The record is not a Form-Bridge submission event.
    #[error("not a form.submission event: {0}")]
    Malformed(String),
    /// The tenant has no record.
    #[error("the tenant has no record")]
    UnknownTenant,
    /// The tenant's record has no `destination`.
    #[error("the tenant has no destination")]
    NoDestination,
    /// The tenant record could not be read.
    #[error(transparent)]
    Store(StoreError),
    /// A destination header has a name or value HTTP cannot carry.
    #[error("destination header {0:?} is not a valid HTTP header")]
    InvalidHeader(String),
    /// The breaker for this destination is open; nothing was sent.
    #[error(transparent)]
    BreakerOpen(#[from] Refused),
    /// The destination answered with a status other than 2xx.
    #[error("the destination answered {0}")]
    Status(u16),
    /// No answer: see [`SendError`].
    #[error(transparent)]
    Send(#[from] SendError),
    /// Too little of the invocation is left to attempt it.
    #[error("not enough time left in the invocation to attempt delivery")]
    NoTimeLeft,
}

impl From<NotAllowed> for DeliveryError {
    fn from(e: NotAllowed) -> Self {
        Self::Send(SendError::NotAllowed(e))
    }
}

impl DeliveryError {
    /// Whether a later attempt can succeed.
    pub fn class(&self) -> Class {
        match self {
            Self::Store(StoreError::Unavailable(_) | StoreError::Throttled)
            | Self::BreakerOpen(_)
            | Self::Send(SendError::Timeout(_) | SendError::Connect(_) | SendError::Transport(_))
            | Self::NoTimeLeft => Class::Retryable,
            Self::Status(status) if retryable_status(*status) => Class::Retryable,
            Self::Malformed(_)
            | Self::UnknownTenant
            | Self::NoDestination
            | Self::Store(StoreError::Malformed(_))
            | Self::InvalidHeader(_)
            | Self::Status(_)
            | Self::Send(SendError::NotAllowed(_)) => Class::Permanent,
        }
    }

    /// A stable snake_case reason code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_event",
            Self::UnknownTenant => "unknown_tenant",
            Self::NoDestination => "no_destination",
            Self::Store(e) => e.code(),
            Self::InvalidHeader(_) => "invalid_destination_header",
            Self::BreakerOpen(_) => "breaker_open",
            Self::Status(408) => "http_408",
            Self::Status(410) => "destination_gone",
            Self::Status(429) => "http_429",
            Self::Status(300..=399) => "http_3xx",
            Self::Status(400..=499) => "http_4xx",
            Self::Status(500..=599) => "http_5xx",
            Self::Status(_) => "http_other",
            Self::Send(SendError::NotAllowed(_)) => "destination_not_allowed",
            Self::Send(SendError::Timeout(_)) => "timeout",
            Self::Send(SendError::Connect(_)) => "connect_error",
            Self::Send(SendError::Transport(_)) => "transport_error",
            Self::NoTimeLeft => "deadline",
        }
    }
}

/// 408, 429 and 5xx: the destination may accept the same event later.
fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// One event bound for one destination.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The tenant it belongs to.
    pub tenant: &'a TenantId,
    /// Where it goes.
    pub destination: &'a Destination,
    /// The submission ID, sent as `webhook-id`.
    pub id: &'a str,
}

/// What a delivery took, whatever its outcome.
#[derive(Debug, Clone)]
pub struct Attempts {
    /// Requests sent (0 when none could be).
    pub sent: u32,
    /// The 2xx status, or why the event was not delivered.
    pub result: Result<u16, DeliveryError>,
}

impl Attempts {
    /// Nothing could be sent, because of `error`.
    pub fn none(error: DeliveryError) -> Self {
        Self {
            sent: 0,
            result: Err(error),
        }
    }
}

/// Delivers events through one client, with one breaker per destination.
pub struct Deliverer<C> {
    client: C,
    policy: DeliveryPolicy,
    breakers: Breakers,
    metrics: Metrics,
}

impl<C: DeliveryClient> Deliverer<C> {
    /// A deliverer sending through `client`.
    pub fn new(client: C, policy: DeliveryPolicy, metrics: Metrics) -> Self {
        Self {
            client,
            breakers: Breakers::new(policy.breaker),
            policy,
            metrics,
        }
    }

    /// The breaker state of `target`'s destination.
    pub fn breaker_state(&self, target: &Target<'_>) -> State {
        self.breakers.state(&breaker_key(target))
    }

    /// Delivers `body` to `target`, retrying retryable failures while
    /// attempts and time (up to `deadline`) remain.
    pub async fn deliver(
        &self,
        target: &Target<'_>,
        body: &Bytes,
        deadline: Option<Instant>,
    ) -> Attempts {
        let mut sent = 0;
        let result = self.attempts(target, body, deadline, &mut sent).await;
        Attempts { sent, result }
    }

    async fn attempts(
        &self,
        target: &Target<'_>,
        body: &Bytes,
        deadline: Option<Instant>,
        sent: &mut u32,
    ) -> Result<u16, DeliveryError> {
        let destination = target.destination;
        let url = Url::parse(&destination.url).map_err(|_| NotAllowed::InvalidUrl)?;
        let host = url.host_str().unwrap_or_default();
        let headers = base_headers(destination, target.id)?;
        let key = breaker_key(target);
        let timeout = destination.timeout.unwrap_or(self.policy.default_timeout);
        loop {
            let now = Instant::now();
            let timeout = match deadline {
                None => timeout,
                Some(deadline) => {
                    let left = deadline
                        .saturating_duration_since(now)
                        .saturating_sub(DEADLINE_MARGIN);
                    if left < MIN_ATTEMPT {
                        return Err(DeliveryError::NoTimeLeft);
                    }
                    timeout.min(left)
                }
            };
            let (permit, transition) = self.breakers.acquire(&key, now);
            self.changed(target.tenant, host, transition);
            let permit = permit?;
            let timestamp = unix_now();
            let mut headers = headers.clone();
            headers.insert(
                HeaderName::from_static("webhook-timestamp"),
                HeaderValue::from(timestamp),
            );
            let signature = webhook::sign(&destination.secret, target.id, timestamp, body);
            // `v1,` and base64: always a valid header value.
            if let Ok(value) = HeaderValue::try_from(signature) {
                headers.insert(HeaderName::from_static("webhook-signature"), value);
            }
            let answer = self
                .client
                .send(WebhookRequest {
                    url: url.clone(),
                    headers,
                    body: body.clone(),
                    timeout,
                })
                .await;
            if !matches!(answer, Err(SendError::NotAllowed(_))) {
                *sent += 1;
            }
            let (error, wait_hint) = match answer {
                Ok(response) if (200..300).contains(&response.status) => {
                    let t = self.breakers.record(&key, permit, true, Instant::now());
                    self.changed(target.tenant, host, t);
                    return Ok(response.status);
                }
                Ok(response) => (DeliveryError::Status(response.status), response.retry_after),
                Err(e) => (DeliveryError::Send(e), None),
            };
            let retryable = error.class() == Class::Retryable;
            // The breaker tracks whether the destination is up: an answer
            // that blames the request (a 4xx) is not the destination's
            // failure.
            let t = self
                .breakers
                .record(&key, permit, !retryable, Instant::now());
            self.changed(target.tenant, host, t);
            if !retryable || *sent >= self.policy.max_attempts {
                return Err(error);
            }
            let wait = match wait_hint.and_then(|v| retry_after(&v, std::time::SystemTime::now())) {
                Some(asked) if asked > self.policy.max_retry_after => return Err(error),
                Some(asked) => asked,
                None => full_jitter(self.policy.base_delay, self.policy.max_delay, *sent),
            };
            if deadline.is_some_and(|d| Instant::now() + wait + MIN_ATTEMPT + DEADLINE_MARGIN > d) {
                return Err(error);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Logs and counts a breaker's change of state.
    fn changed(&self, tenant: &TenantId, host: &str, transition: Option<Transition>) {
        let Some(Transition { from, to }) = transition else {
            return;
        };
        if to == State::Open {
            warn!(tenant_id = %tenant, host, from = %from, to = %to, "circuit breaker opened; deliveries to this destination fail fast");
        } else {
            info!(tenant_id = %tenant, host, from = %from, to = %to, "circuit breaker changed state");
        }
        self.metrics.count(
            "BreakerTransitions",
            &[("TenantId", tenant.as_str()), ("State", to.as_str())],
            &[&["TenantId", "State"], &["State"]],
        );
    }
}

/// One breaker per tenant and URL: a shared receiving host failing for
/// one tenant does not stop another's deliveries.
fn breaker_key(target: &Target<'_>) -> String {
    format!("{}\n{}", target.tenant, target.destination.url)
}

/// The headers every attempt shares: the destination's own, then ours.
fn base_headers(destination: &Destination, id: &str) -> Result<HeaderMap, DeliveryError> {
    let mut headers = HeaderMap::with_capacity(destination.headers.len() + 5);
    // The record's validation already refused invalid and reserved names
    // and values; ours are inserted after these, so they win regardless.
    for (name, value) in &destination.headers {
        let invalid = || DeliveryError::InvalidHeader(name.clone());
        let name = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
        let mut value = HeaderValue::try_from(value.expose()).map_err(|_| invalid())?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        HeaderName::from_static("webhook-id"),
        HeaderValue::try_from(id)
            .map_err(|_| DeliveryError::Malformed("submission_id is not a valid header".into()))?,
    );
    Ok(headers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_documented() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                DeliveryError::Status(status).class(),
                Class::Retryable,
                "{status}"
            );
        }
        for status in [300, 301, 302, 400, 401, 403, 404, 409, 410, 413, 422, 600] {
            assert_eq!(
                DeliveryError::Status(status).class(),
                Class::Permanent,
                "{status}"
            );
        }
        assert_eq!(DeliveryError::Status(410).code(), "destination_gone");
        assert_eq!(DeliveryError::Status(503).code(), "http_5xx");
        assert_eq!(
            DeliveryError::Send(SendError::Timeout(Duration::from_secs(1))).class(),
            Class::Retryable
        );
        assert_eq!(
            DeliveryError::from(NotAllowed::NonPublicAddress).class(),
            Class::Permanent
        );
        assert_eq!(
            DeliveryError::Store(StoreError::Unavailable("x".into())).class(),
            Class::Retryable
        );
    }
}
