//! The Form-Bridge authorizer: an API Gateway Lambda REQUEST authorizer,
//! for the shared HTTP API (payload 2.0, simple responses) and the isolated
//! REST API (an IAM policy and a context), told apart by their events.
//!
//! For `POST /v1/tenants/{tenant_id}/submissions` it checks, cheapest first,
//! so that bad requests cost nothing and cannot reach Secrets Manager:
//!
//! 1. the event is an authorizer event and `tenant_id` is a valid ID;
//! 2. the signature headers are present and well-formed and the timestamp
//!    is inside the replay window;
//! 3. the tenant's record (cached) exists and the tenant is active;
//! 4. a `v1` signature matches one of the tenant's active secrets;
//! 5. the tenant is within its own rate limit (checked after the signature,
//!    so unauthenticated traffic cannot spend a tenant's quota).
//!
//! For `POST /v1/tenants/{tenant_id}/sources/{source_id}` (a provider's
//! webhook, signed over the body, which an authorizer never sees) it checks
//! the IDs, that the tenant is active and has that source, a `token`
//! source's token (no body involved), and the source's own rate limit
//! bucket (the tenant's limit, counted apart, so that whoever learns a
//! source's URL can spend that source's budget, never the tenant's signed
//! route or its other sources). Ingest verifies the provider's signature.
//!
//! On either route a tenant is allowed only through its own API: the HTTP
//! API serves tenants whose record says `"isolation": "shared"` (or
//! nothing), the REST API those with `"per_tenant"`, whose ingest function
//! runs each tenant in execution environments of its own.
//!
//! Allowed requests carry `{"tenant_id", "routing"}` (and `"source_id"` on
//! the source route) to ingest in the authorizer context. Everything else
//! is a deny with a logged reason code and an EMF metric; the handler never
//! panics and never fails on input. It fails in one case only, an outage:
//! when the tenant's record cannot be read (Secrets Manager down or slow,
//! and no last good record in this environment), the invocation fails
//! ([`Unavailable`]), so API Gateway answers 500, which senders retry,
//! rather than a 403 that a sender takes as final.
//! [`Authorizer::handle`] is what the Lambda runs on an [`AuthorizerEvent`];
//! [`Authorizer::authorize`] is the same decision for callers that already
//! hold the parts (the local gateway).

mod event;

use std::num::NonZeroU32;
use std::time::Duration;

pub use event::{Api, AuthorizerEvent};
use http::HeaderMap;
use serde::Serialize;
use shared::config::{ConfigError, Env};
use shared::rate_limit::{RateLimited, TenantRateLimiter};
use shared::signature::{self, RequestHeaders, VerifyError};
use shared::source::{self, SourceError, SourceId, SourceKeys};
use shared::store::{CachePolicy, CachedTenantStore, StoreError, TenantStore};
use shared::telemetry::Metrics;
use shared::tenant::{RateLimit, TenantRecord};
use shared::tenant_id::TenantIdError;
use shared::{Isolation, Routing, TenantId, TenantStatus};

/// The path parameter holding the tenant ID.
pub const TENANT_PATH_PARAMETER: &str = "tenant_id";
/// The path parameter holding the source ID (source route only).
pub const SOURCE_PATH_PARAMETER: &str = "source_id";

/// Each source's bucket when its tenant's record sets no `rate_limit`:
/// 100 requests a second, bursts of 200, per execution environment.
/// Whoever learns a source's URL can send to it without a secret, and each
/// such request reaches ingest (which alone can verify a body signature),
/// so a source is never unlimited. Far above what a form builder or a
/// provider sends one endpoint; a tenant's own `rate_limit` replaces it.
pub const DEFAULT_SOURCE_RATE_LIMIT: RateLimit = RateLimit {
    requests_per_second: NonZeroU32::new(100).expect("non-zero"),
    burst: NonZeroU32::new(200).expect("non-zero"),
};

/// The authorizer's configuration (docs/protocol.md, section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TENANT_SECRET_PREFIX`: secret name prefix before the tenant ID.
    pub tenant_secret_prefix: String,
    /// `SECRET_CACHE_TTL_SECONDS` (0 to 86400): how long a record is reused.
    pub secret_cache_ttl: Duration,
    /// `REPLAY_WINDOW_SECONDS` (1 to 3600): accepted clock difference.
    pub replay_window: Duration,
}

impl Config {
    /// Reads the configuration; errors name the variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let (tenant_secret_prefix, secret_cache_ttl) = shared::store::record_settings(env)?;
        Ok(Self {
            tenant_secret_prefix,
            secret_cache_ttl,
            replay_window: env.seconds(
                "REPLAY_WINDOW_SECONDS",
                signature::DEFAULT_REPLAY_WINDOW.as_secs(),
                1..=3_600,
            )?,
        })
    }
}

/// The handler's failure: the tenant's record could not be read (the
/// store is unavailable and this environment holds no last good record).
/// Nothing was decided about the sender, so the invocation fails and API
/// Gateway answers 500 (`{"message":"Internal Server Error"}`), which a
/// sender retries; a deny would be a 403, which looks final. The message
/// is fixed: the store's own error, logged at error with the request, is
/// never part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the tenant's record could not be read (tenant store unavailable); nothing was accepted, retrying is safe"
)]
pub struct Unavailable;

/// The authorizer's answer, in the format of the API that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// An HTTP API's simple response (and the answer to any event that is
    /// not an authorizer request: a deny).
    Simple(SimpleResponse),
    /// A REST API's IAM policy and context.
    Policy(PolicyResponse),
}

impl Response {
    /// Whether API Gateway lets the request through.
    pub fn is_authorized(&self) -> bool {
        match self {
            Self::Simple(r) => r.is_authorized,
            Self::Policy(r) => r.policy_document.statement[0].effect == "Allow",
        }
    }
}

/// The simple response format of an HTTP API authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleResponse {
    /// Whether API Gateway lets the request through.
    pub is_authorized: bool,
    /// Present only when authorized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AllowContext>,
}

/// A REST API authorizer's answer: a policy allowing or denying the one
/// method called (`methodArn`; results are never cached, so no wider
/// resource is needed), and on an allow the context ingest reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    /// The tenant on an allow; `anonymous` on a deny (a path's tenant ID is
    /// only a claim until the signature is checked).
    pub principal_id: String,
    /// The policy.
    pub policy_document: PolicyDocument,
    /// Present only when allowed: flat strings, as REST API contexts must
    /// be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<AllowContext>,
}

/// An IAM policy of one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDocument {
    /// `2012-10-17`.
    #[serde(rename = "Version")]
    pub version: &'static str,
    /// The one statement.
    #[serde(rename = "Statement")]
    pub statement: [Statement; 1],
}

/// `execute-api:Invoke` allowed or denied on one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// `execute-api:Invoke`.
    #[serde(rename = "Action")]
    pub action: &'static str,
    /// `Allow` or `Deny`.
    #[serde(rename = "Effect")]
    pub effect: &'static str,
    /// The event's `methodArn`.
    #[serde(rename = "Resource")]
    pub resource: String,
}

/// What ingest learns about an allowed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllowContext {
    /// The authenticated tenant.
    pub tenant_id: TenantId,
    /// The tenant's delivery path.
    pub routing: Routing,
    /// The source, on the source route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<SourceId>,
}

/// Why a request was denied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Denial {
    /// The event is not an HTTP API authorizer event.
    #[error("not an API Gateway HTTP API authorizer event")]
    MalformedEvent,
    /// The path has no tenant ID.
    #[error("no tenant_id path parameter")]
    MissingTenantId,
    /// The tenant ID in the path is invalid.
    #[error(transparent)]
    InvalidTenantId(#[from] TenantIdError),
    /// The signature headers are missing, malformed, stale or do not match.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// No record for this tenant.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The source ID in the path is invalid.
    #[error("invalid source_id: {0}")]
    InvalidSourceId(TenantIdError),
    /// The tenant has no such source (treated like an unknown tenant).
    #[error("unknown source")]
    UnknownSource,
    /// A `token` source's token is missing or wrong.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The tenant is suspended.
    #[error("tenant is suspended")]
    Suspended,
    /// The tenant record could not be read or is invalid.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Over the tenant's rate limit.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The tenant's requests must come through the other API.
    #[error("tenant uses the {} API", if *.0 == Isolation::PerTenant { "isolated" } else { "shared" })]
    WrongApi(Isolation),
}

impl Denial {
    /// A stable snake_case reason code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedEvent => "malformed_event",
            Self::MissingTenantId | Self::InvalidTenantId(_) => "invalid_tenant_id",
            Self::Signature(e) => e.code(),
            Self::UnknownTenant => "unknown_tenant",
            Self::InvalidSourceId(_) => "invalid_source_id",
            Self::UnknownSource => "unknown_source",
            Self::Source(e) => e.code(),
            Self::Suspended => "tenant_suspended",
            Self::Store(e) => e.code(),
            Self::RateLimited(_) => "rate_limited",
            Self::WrongApi(_) => "wrong_api",
        }
    }

    /// Whether this is an outage rather than a verdict on the request: the
    /// tenant's record could not be read. Callers answer it as a server
    /// error (API Gateway: 500), never as a 403, so that senders retry. A
    /// record that is malformed, or a lookup refused by the budget for new
    /// tenant IDs (`lookup_throttled`), is a deny.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable(_)))
    }
}

/// The outcome of one authorization, with what is known about the tenant.
#[derive(Debug)]
pub struct Decision {
    /// The tenant named in the path, when it is a valid ID.
    pub tenant_id: Option<TenantId>,
    /// Whether that tenant has a record (only then is it a metric dimension,
    /// so random IDs cannot create metrics).
    pub tenant_exists: bool,
    /// Allowed with the tenant's routing, or denied.
    pub verdict: Result<Routing, Denial>,
    /// The source, when allowed on the source route.
    pub source_id: Option<SourceId>,
}

/// The parts of a request the authorizer looks at. `Debug` leaves out the
/// signature.
#[derive(Clone, Copy, Default)]
pub struct Request<'a> {
    /// The `tenant_id` path parameter.
    pub tenant_id: Option<&'a str>,
    /// `X-FormBridge-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `Content-Digest`.
    pub content_digest: Option<&'a str>,
    /// `X-FormBridge-Signature`.
    pub signature: Option<&'a str>,
    /// API Gateway's request ID, for log correlation.
    pub request_id: Option<&'a str>,
    /// The `source_id` path parameter: present on the source route only.
    pub source_id: Option<&'a str>,
    /// The raw query string (a `token` source's token; never logged).
    pub query: Option<&'a str>,
    /// Which tenants the API the request came through serves: shared ones
    /// on the HTTP API, per-tenant ones on the REST API; `None` where one
    /// process serves both (the local gateway), and any tenant is allowed.
    pub isolation: Option<Isolation>,
}

/// Stands in for a header value that is not visible ASCII: it fails every
/// signature header's shape check, so such a header is malformed, not
/// missing.
const NOT_VISIBLE_ASCII: &str = "\u{0}";

impl<'a> Request<'a> {
    /// The parts of an HTTP request: the path's tenant ID and its headers
    /// (a header that is not visible ASCII counts as malformed).
    pub fn from_http(tenant_id: Option<&'a str>, headers: &'a HeaderMap) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or(NOT_VISIBLE_ASCII))
        };
        Self {
            tenant_id,
            timestamp: get(signature::TIMESTAMP_HEADER),
            content_digest: get(signature::CONTENT_DIGEST_HEADER),
            signature: get(signature::SIGNATURE_HEADER),
            request_id: None,
            source_id: None,
            query: None,
            isolation: None,
        }
    }

    /// The parts of a source route's request: the path's IDs and the raw
    /// query string.
    pub fn for_source(tenant_id: &'a str, source_id: &'a str, query: &'a str) -> Self {
        Self {
            tenant_id: Some(tenant_id),
            source_id: Some(source_id),
            query: Some(query),
            ..Self::default()
        }
    }

    /// The parts of an authorizer event, with no API named (the caller
    /// says which isolation the API serves, if any).
    pub fn from_event(event: &'a AuthorizerEvent) -> Self {
        Self {
            tenant_id: event.tenant_id.as_deref(),
            timestamp: event.timestamp.as_deref(),
            content_digest: event.content_digest.as_deref(),
            signature: event.signature.as_deref(),
            request_id: event.request_id.as_deref(),
            source_id: event.source_id.as_deref(),
            query: event.raw_query.as_deref(),
            isolation: None,
        }
    }

    fn signature_headers(&self) -> Result<RequestHeaders<'a>, VerifyError> {
        use signature::{CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
        Ok(RequestHeaders {
            timestamp: self
                .timestamp
                .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?,
            content_digest: self
                .content_digest
                .ok_or(VerifyError::MissingHeader(CONTENT_DIGEST_HEADER))?,
            signature: self
                .signature
                .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?,
        })
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("tenant_id", &self.tenant_id)
            .field("source_id", &self.source_id)
            .field("timestamp", &self.timestamp)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// The authorizer, built once per execution environment.
pub struct Authorizer<S> {
    tenants: CachedTenantStore<S>,
    limiter: TenantRateLimiter,
    source_limiter: TenantRateLimiter<(TenantId, SourceId)>,
    replay_window: Duration,
    metrics: Metrics,
}

impl<S: TenantStore> Authorizer<S> {
    /// An authorizer over `store`, caching records per `config`.
    pub fn new(store: S, config: &Config, metrics: Metrics) -> Self {
        Self {
            tenants: CachedTenantStore::new(store, CachePolicy::with_ttl(config.secret_cache_ttl)),
            limiter: TenantRateLimiter::new(),
            source_limiter: TenantRateLimiter::new(),
            replay_window: config.replay_window,
            metrics,
        }
    }

    /// The Lambda handler: an event (from any JSON) in, the answer in the
    /// format of the API that sent it out (a simple deny for anything that
    /// is not an authorizer event). Logs the decision and writes its
    /// metric. `now` is Unix seconds.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] when the tenant's record could not be read (see
    /// [`Denial::is_unavailable`]): the invocation fails, API Gateway
    /// answers 500. Logged and counted like a deny, reason
    /// `store_unavailable`.
    pub async fn handle(&self, event: &AuthorizerEvent, now: i64) -> Result<Response, Unavailable> {
        let Some(api) = event.api() else {
            let decision = Decision::denied(None, false, Denial::MalformedEvent);
            self.record(&decision, event.request_id.as_deref());
            return Ok(Response::Simple(decision.into()));
        };
        let request = Request {
            isolation: Some(match api {
                Api::Http => Isolation::Shared,
                Api::Rest => Isolation::PerTenant,
            }),
            ..Request::from_event(event)
        };
        let decision = self.decide(request, now).await;
        self.record(&decision, request.request_id);
        if decision.verdict.as_ref().is_err_and(Denial::is_unavailable) {
            return Err(Unavailable);
        }
        Ok(match (api, event.method_arn.as_deref()) {
            (Api::Rest, Some(method_arn)) => Response::Policy(decision.policy(method_arn)),
            _ => Response::Simple(decision.into()),
        })
    }

    /// Decides on a request and records the decision (logs and metrics).
    pub async fn authorize(&self, request: Request<'_>, now: i64) -> Decision {
        let decision = self.decide(request, now).await;
        self.record(&decision, request.request_id);
        decision
    }

    async fn decide(&self, request: Request<'_>, now: i64) -> Decision {
        let tenant = match request.tenant_id.map(TenantId::parse) {
            None => return Decision::denied(None, false, Denial::MissingTenantId),
            Some(Err(e)) => return Decision::denied(None, false, e.into()),
            Some(Ok(t)) => t,
        };
        if let Some(source) = request.source_id {
            return self.decide_source(tenant, source, request, now).await;
        }
        let fresh = match request
            .signature_headers()
            .and_then(|h| signature::check_headers(h, now, self.replay_window))
        {
            Ok(fresh) => fresh,
            Err(e) => return Decision::denied(Some(tenant), false, e.into()),
        };
        let record = match self.tenants.get(&tenant).await {
            Ok(Some(record)) => record,
            Ok(None) => return Decision::denied(Some(tenant), false, Denial::UnknownTenant),
            Err(e) => return Decision::denied(Some(tenant), false, e.into()),
        };
        let checks = match record.status {
            TenantStatus::Suspended => Err(Denial::Suspended),
            TenantStatus::Active => fresh
                .verify(&tenant, &record.signing_keys)
                .map_err(Denial::from)
                .and_then(|()| own_api(&record, request))
                .and_then(|()| {
                    self.limiter
                        .check(&tenant, record.rate_limit)
                        .map_err(Denial::from)
                }),
        };
        Decision {
            tenant_id: Some(tenant),
            tenant_exists: true,
            verdict: checks.map(|()| record.routing),
            source_id: None,
        }
    }

    /// The source route: what can be checked without the body.
    async fn decide_source(
        &self,
        tenant: TenantId,
        source: &str,
        request: Request<'_>,
        now: i64,
    ) -> Decision {
        let source = match SourceId::parse(source) {
            Ok(source) => source,
            Err(e) => return Decision::denied(Some(tenant), false, Denial::InvalidSourceId(e)),
        };
        let record = match self.tenants.get(&tenant).await {
            Ok(Some(record)) => record,
            Ok(None) => return Decision::denied(Some(tenant), false, Denial::UnknownTenant),
            Err(e) => return Decision::denied(Some(tenant), false, e.into()),
        };
        let checks = match (record.status, record.sources.get(&source)) {
            (TenantStatus::Suspended, _) => Err(Denial::Suspended),
            (TenantStatus::Active, None) => Err(Denial::UnknownSource),
            (TenantStatus::Active, Some(keys)) => verify_without_body(keys, request, now)
                .map_err(Denial::from)
                .and_then(|()| own_api(&record, request))
                .and_then(|()| {
                    let bucket = (tenant.clone(), source.clone());
                    let limit = record.rate_limit.unwrap_or(DEFAULT_SOURCE_RATE_LIMIT);
                    self.source_limiter
                        .check(&bucket, Some(limit))
                        .map_err(Denial::from)
                }),
        };
        let allowed = checks.is_ok();
        Decision {
            tenant_id: Some(tenant),
            tenant_exists: true,
            verdict: checks.map(|()| record.routing),
            source_id: allowed.then_some(source),
        }
    }

    /// The one place a decision becomes a log line and a metric.
    fn record(&self, decision: &Decision, request_id: Option<&str>) {
        let tenant = decision.tenant_id.as_ref().map(TenantId::as_str);
        let (outcome, reason) = match &decision.verdict {
            Ok(routing) => {
                tracing::debug!(tenant_id = tenant, request_id, %routing, "allowed");
                ("allow", "ok")
            }
            Err(denial) => {
                let reason = denial.code();
                match denial {
                    // Unknown IDs over the budget: junk, whose volume an
                    // attacker controls; info, like any other deny.
                    Denial::Store(StoreError::Throttled) => tracing::info!(
                        tenant_id = tenant, request_id, reason, detail = %denial, "denied"
                    ),
                    Denial::Store(_) => tracing::error!(
                        tenant_id = tenant, request_id, reason, error = %denial, "denied"
                    ),
                    _ => tracing::info!(
                        tenant_id = tenant, request_id, reason, detail = %denial, "denied"
                    ),
                }
                ("deny", reason)
            }
        };
        const SETS: [&[&str]; 3] = [
            &["Decision"],
            &["Decision", "Reason"],
            &["TenantId", "Decision"],
        ];
        match tenant.filter(|_| decision.tenant_exists) {
            Some(t) => self.metrics.count(
                "Authorizations",
                &[("Decision", outcome), ("Reason", reason), ("TenantId", t)],
                &SETS,
            ),
            None => self.metrics.count(
                "Authorizations",
                &[("Decision", outcome), ("Reason", reason)],
                &SETS[..2],
            ),
        }
    }
}

/// Whether the request came through the API that serves the tenant: an
/// isolated tenant's requests never reach the shared ingest function's
/// environments, and a shared tenant's never take an isolated one's.
/// Checked after what proves the sender (the signature, a token), so a
/// `wrong_api` deny means a real sender at the wrong URL.
fn own_api(record: &TenantRecord, request: Request<'_>) -> Result<(), Denial> {
    match request.isolation {
        Some(api) if api != record.isolation => Err(Denial::WrongApi(record.isolation)),
        _ => Ok(()),
    }
}

/// A source whose provider signs no body (`token`) is verified here, with
/// the query string; the others are verified by ingest, over the body.
fn verify_without_body(
    keys: &SourceKeys,
    request: Request<'_>,
    now: i64,
) -> Result<(), SourceError> {
    if keys.provider().signs_body() {
        return Ok(());
    }
    let no_headers = |_: &str| None;
    let query = request.query.unwrap_or_default();
    let parts = source::Request {
        method: "POST",
        url: "",
        query,
        headers: &no_headers,
        body: &[],
    };
    keys.verify(&parts, now).map(|_| ())
}

impl Decision {
    fn denied(tenant_id: Option<TenantId>, tenant_exists: bool, denial: Denial) -> Self {
        Self {
            tenant_id,
            tenant_exists,
            verdict: Err(denial),
            source_id: None,
        }
    }
}

impl Decision {
    /// What ingest is told about an allowed request; `None` when denied.
    fn allow_context(self) -> Option<AllowContext> {
        match (self.verdict, self.tenant_id) {
            (Ok(routing), Some(tenant_id)) => Some(AllowContext {
                tenant_id,
                routing,
                source_id: self.source_id,
            }),
            _ => None,
        }
    }

    /// The REST API's answer for the method `method_arn`.
    fn policy(self, method_arn: &str) -> PolicyResponse {
        let context = self.allow_context();
        PolicyResponse {
            principal_id: context
                .as_ref()
                .map_or("anonymous", |c| c.tenant_id.as_str())
                .to_owned(),
            policy_document: PolicyDocument {
                version: "2012-10-17",
                statement: [Statement {
                    action: "execute-api:Invoke",
                    effect: if context.is_some() { "Allow" } else { "Deny" },
                    resource: method_arn.to_owned(),
                }],
            },
            context,
        }
    }
}

impl From<Decision> for SimpleResponse {
    fn from(d: Decision) -> Self {
        let context = d.allow_context();
        SimpleResponse {
            is_authorized: context.is_some(),
            context,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn config_defaults_match_the_protocol() {
        let empty = HashMap::new();
        let c = Config::from_env(&Env::from_map(&empty)).expect("defaults");
        assert_eq!(c.tenant_secret_prefix, "form-bridge/tenants/");
        assert_eq!(c.secret_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.replay_window, Duration::from_secs(300));
    }

    #[test]
    fn config_errors_name_the_variable() {
        for (var, value) in [
            ("SECRET_CACHE_TTL_SECONDS", "-1"),
            ("SECRET_CACHE_TTL_SECONDS", "100000"),
            ("REPLAY_WINDOW_SECONDS", "0"),
            ("REPLAY_WINDOW_SECONDS", "5m"),
            ("TENANT_SECRET_PREFIX", "has space/"),
        ] {
            let map = HashMap::from([(var.to_string(), value.to_string())]);
            let err = Config::from_env(&Env::from_map(&map)).expect_err("invalid");
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn responses_serialise_exactly_as_the_protocol_says() {
        let allow = SimpleResponse {
            is_authorized: true,
            context: Some(AllowContext {
                tenant_id: TenantId::parse("acme").expect("valid"),
                routing: Routing::Dedicated,
                source_id: None,
            }),
        };
        assert_eq!(
            serde_json::to_string(&allow).expect("json"),
            r#"{"isAuthorized":true,"context":{"tenant_id":"acme","routing":"dedicated"}}"#
        );
        let deny = SimpleResponse {
            is_authorized: false,
            context: None,
        };
        assert_eq!(
            serde_json::to_string(&deny).expect("json"),
            r#"{"isAuthorized":false}"#
        );
    }
}
