//! Form-Bridge ingest: the HTTP API's Lambda behind the authorizer.
//!
//! For each request it, in order:
//!
//! 1. takes the tenant and routing from the authorizer's context, and only
//!    from there (a missing context is a 500, never a default);
//! 2. bounds the body (`MAX_BODY_BYTES`), decoding base64 first;
//! 3. checks the raw bytes against the signed `Content-Digest` in constant
//!    time, before anything is parsed;
//! 4. reads the submissions ([`body`]): a JSON object, a batch of up to 100,
//!    or a URL-encoded form; on a source route, the provider's signature
//!    is verified over the raw body first (docs/protocol.md, section 9) and
//!    the body is one submission (JSON, a form or multipart fields);
//! 5. claims the request's idempotency keys, all or none in one call
//!    ([`shared::idempotency`]): the `Idempotency-Key` header's when sent,
//!    and the signed identity (on a source route: the provider's event ID
//!    and what it signed). A request seen before gets its first answer
//!    again and publishes nothing;
//! 6. gives each a time-sortable submission ID and publishes the events
//!    ([`shared::publish`]): at most 10 entries and 1 MiB per PutEvents
//!    call, only failed entries retried;
//! 7. answers 202 with the IDs in request order (completing the key), or
//!    the status docs/protocol.md, section 2, gives (releasing it)
//!    and `{"error": {"code", "message"}}`.
//!
//! [`Ingest::handle`] is what the Lambda runs on an [`IngestEvent`];
//! [`Ingest::ingest`] is the same for callers holding the request's parts
//! (the local gateway). Errors become responses in [`Rejection`] only.

pub mod body;
pub mod event;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

pub use body::{BodyError, ContentType, MAX_BATCH};
pub use event::{IngestEvent, Response};
use futures_util::future::join_all;
use serde_json::json;
use shared::config::{ConfigError, Env};
use shared::event::{
    DEFAULT_EVENT_SOURCE, DETAIL_TYPE, DETAIL_VERSION, SubmissionDetail, SubmissionId,
    SubmissionIds, SubmissionSource, received_at,
};
use shared::idempotency::{
    Claims, IdempotencyKey, IdempotencyStore, KeyError, MemoryIdempotencyStore, Ticket,
};
use shared::publish::{
    self, BusEntry, EntryError, EntryTooLarge, EventPublisher, PublishReport, RetryPolicy,
};
use shared::signature::{DigestError, verify_content_digest};
use shared::source::{self, SourceError, SourceId};
use shared::store::{CachedTenantStore, StoreError, TenantStore};
use shared::telemetry::{Measure, Metrics};
use shared::{Routing, TenantId, TenantRecord, TenantStatus};
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// The largest `MAX_BODY_BYTES`: Lambda's 6 MB synchronous payload limit.
pub const MAX_BODY_BYTES_LIMIT: u64 = 6 * 1024 * 1024;
/// `MAX_BODY_BYTES` when unset.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 262_144;

/// Ingest's configuration (docs/protocol.md, section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `EVENT_BUS_NAME`: the bus's name or ARN. Required.
    pub event_bus_name: String,
    /// `EVENT_SOURCE`: the events' `Source`.
    pub event_source: String,
    /// `MAX_BODY_BYTES`: the largest body accepted, after base64 decoding.
    pub max_body_bytes: usize,
    /// `IDEMPOTENCY_TTL_SECONDS`: how long an accepted request's answer is
    /// replayed to the same request (at least twice the replay window).
    pub idempotency_ttl: std::time::Duration,
    /// `IDEMPOTENCY_TABLE`: the DynamoDB table (name or ARN) holding
    /// idempotency keys; unset, they are kept in memory per process.
    pub idempotency_table: Option<String>,
    /// `TENANT_SECRET_PREFIX`: where tenant records are (a source's
    /// secrets are in its tenant's record).
    pub tenant_secret_prefix: String,
    /// `SECRET_CACHE_TTL_SECONDS`: how long a record is reused.
    pub secret_cache_ttl: std::time::Duration,
}

impl Config {
    /// Reads the configuration; errors name the variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let event_bus_name = env.required("EVENT_BUS_NAME")?;
        if event_bus_name.len() > 1600 || event_bus_name.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "EVENT_BUS_NAME",
                "must be a bus name or ARN without spaces",
            ));
        }
        let event_source = env.string("EVENT_SOURCE", DEFAULT_EVENT_SOURCE);
        let source_ok = event_source.len() <= 256
            && !event_source.starts_with("aws.")
            && event_source.bytes().all(|b| b.is_ascii_graphic());
        if !source_ok {
            return Err(ConfigError::new(
                "EVENT_SOURCE",
                "must be at most 256 visible ASCII characters and not start with \"aws.\"",
            ));
        }
        let max_body_bytes = env.number(
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_BODY_BYTES_LIMIT,
        )?;
        // The authorizer accepts a timestamp up to the window either side
        // of now, and a provider's signed timestamp up to its own window,
        // so one signed request stays valid for twice the wider of them:
        // its key must outlive that.
        let replay_window = env.number("REPLAY_WINDOW_SECONDS", 300, 1..=3_600)?;
        let widest = replay_window.max(shared::source::MAX_TOLERANCE_SECS);
        let idempotency_ttl = env.seconds(
            "IDEMPOTENCY_TTL_SECONDS",
            shared::idempotency::DEFAULT_TTL.as_secs(),
            2 * widest..=30 * 86_400,
        )?;
        let idempotency_table = Some(env.string("IDEMPOTENCY_TABLE", "")).filter(|t| !t.is_empty());
        if let Some(table) = &idempotency_table
            && !shared::idempotency::valid_table_name(table)
        {
            return Err(ConfigError::new(
                "IDEMPOTENCY_TABLE",
                "must be a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -) or table ARN",
            ));
        }
        let (tenant_secret_prefix, secret_cache_ttl) = shared::store::record_settings(env)?;
        Ok(Self {
            tenant_secret_prefix,
            secret_cache_ttl,
            event_bus_name,
            event_source,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            idempotency_ttl,
            idempotency_table,
        })
    }
}

/// The tenant the authorizer let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its ID.
    pub id: TenantId,
    /// Its routing.
    pub routing: Routing,
}

/// The parts of a request ingest uses. `Debug` shows the body's length
/// only (a token source's body may hold its token until it is redacted).
#[derive(Clone, Copy, Default)]
pub struct Request<'a> {
    /// From the authorizer's context; `None` when there was none.
    pub tenant: Option<&'a Tenant>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Content-Digest`.
    pub content_digest: Option<&'a str>,
    /// The raw body bytes, already base64-decoded.
    pub body: &'a [u8],
    /// API Gateway's request ID, for logs.
    pub request_id: Option<&'a str>,
    /// `X-FormBridge-Timestamp`, as sent (the signed identity's part).
    pub timestamp: Option<&'a str>,
    /// `Idempotency-Key`, when sent.
    pub idempotency_key: Option<&'a str>,
    /// On a source route: what the provider's verifier reads.
    pub source: Option<SourceRequest<'a>>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("tenant", &self.tenant)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .field("request_id", &self.request_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The parts of a source route's request a provider's verifier reads.
/// `Debug` shows the source ID only (the URL and query may carry a token).
#[derive(Clone, Copy)]
pub struct SourceRequest<'a> {
    /// The `source_id` from the authorizer's context.
    pub source_id: &'a str,
    /// The public URL the sender called, with `?` and the raw query when
    /// there is one (HubSpot signs it).
    pub url: &'a str,
    /// The raw query string (`token` sources).
    pub query: &'a str,
    /// Any header's value by lowercase name.
    pub headers: &'a (dyn Fn(&str) -> Option<&'a str> + Sync),
}

impl std::fmt::Debug for SourceRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceRequest")
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

/// Where ingest reads a tenant's sources: its record, through the same
/// cached store as the authorizer and the connector.
pub trait TenantRecords: Send + Sync + 'static {
    /// The tenant's record, `Ok(None)` when there is none.
    fn record(
        &self,
        tenant: &TenantId,
    ) -> impl std::future::Future<Output = Result<Option<Arc<TenantRecord>>, StoreError>> + Send;
}

impl<S: TenantStore> TenantRecords for CachedTenantStore<S> {
    async fn record(&self, tenant: &TenantId) -> Result<Option<Arc<TenantRecord>>, StoreError> {
        self.get(tenant).await
    }
}

/// No tenant records: a handler that serves the submissions route only
/// (a source request is answered 503 `tenant_store_unavailable`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRecords;

impl TenantRecords for NoRecords {
    async fn record(&self, _: &TenantId) -> Result<Option<Arc<TenantRecord>>, StoreError> {
        Err(StoreError::Unavailable(
            "this handler has no tenant store for source routes".into(),
        ))
    }
}

/// Why a request was not accepted. Each maps to one status and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No usable authorizer context: the route is misconfigured.
    #[error("the request carries no authorizer context; the API is misconfigured")]
    MissingContext,
    /// An invocation in tenant isolation mode whose tenant is not the
    /// authorizer's and the path's: the API is misconfigured.
    #[error("the invocation's tenant is not the request's; the API is misconfigured")]
    TenantMismatch,
    /// The body is over `MAX_BODY_BYTES`.
    #[error("the body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// `isBase64Encoded` with a body that is not base64.
    #[error("the body is marked base64 but is not valid base64")]
    MalformedBase64,
    /// No `Content-Digest` header.
    #[error("the Content-Digest header is missing")]
    MissingDigest,
    /// A malformed digest or a body that does not match it.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Not JSON or a URL-encoded form.
    #[error("Content-Type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedContentType,
    /// The body is not valid submissions.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// One event would exceed what the bus takes in one entry.
    #[error("submission {} makes a {}-byte event; the delivery queues take events of at most {} bytes", .0.index, .0.size, publish::MAX_ENTRY_BYTES)]
    EventTooLarge(EntryTooLarge),
    /// `Idempotency-Key` is not 1 to 255 printable ASCII characters.
    #[error(transparent)]
    InvalidIdempotencyKey(#[from] KeyError),
    /// The `Idempotency-Key` was used before for a different body.
    #[error(
        "this Idempotency-Key was used for a different request body; use a new key for a new submission"
    )]
    IdempotencyKeyReused,
    /// The same request is being processed right now.
    #[error("the same request is still being processed; retry shortly to get its answer")]
    InProgress,
    /// The idempotency store failed: nothing is accepted that could be
    /// accepted twice.
    #[error(
        "cannot check whether this request was accepted before; nothing was published; retrying the request is safe"
    )]
    IdempotencyUnavailable,
    /// The tenant has no such source (any more).
    #[error("unknown source")]
    UnknownSource,
    /// The tenant was suspended after the authorizer let the request in.
    #[error("tenant is suspended")]
    Suspended,
    /// The provider's signature or token does not verify.
    #[error("{0}")]
    InvalidSignature(SourceError),
    /// A token source's body holds its token where it cannot be redacted.
    #[error("{}", shared::source::TokenInBody)]
    TokenInBody,
    /// The tenant's record could not be read.
    #[error(
        "cannot read the tenant's sources; nothing was published; retrying the request is safe"
    )]
    TenantStoreUnavailable,
    /// The bus did not take every event.
    #[error("{message}")]
    NotPublished {
        /// What the client is told.
        message: String,
        /// IDs of submissions of this request that did reach the bus.
        published: Vec<SubmissionId>,
    },
}

impl Rejection {
    /// The HTTP status (docs/protocol.md, section 2).
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingContext | Self::TenantMismatch => 500,
            Self::BodyTooLarge(_) | Self::EventTooLarge(_) => 413,
            Self::Body(e) => e.status(),
            Self::MalformedBase64 | Self::InvalidIdempotencyKey(_) | Self::TokenInBody => 400,
            Self::MissingDigest | Self::Digest(_) | Self::InvalidSignature(_) => 401,
            Self::UnknownSource | Self::Suspended => 403,
            Self::UnsupportedContentType => 415,
            Self::IdempotencyKeyReused => 422,
            Self::InProgress => 409,
            Self::NotPublished { .. }
            | Self::IdempotencyUnavailable
            | Self::TenantStoreUnavailable => 503,
        }
    }

    /// A stable snake_case code for the error body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingContext => "missing_authorizer_context",
            Self::TenantMismatch => "tenant_mismatch",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::MalformedBase64 => "malformed_body",
            Self::MissingDigest => "missing_digest",
            Self::Digest(DigestError::Malformed) => "malformed_digest",
            Self::Digest(DigestError::Mismatch) => "digest_mismatch",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::Body(e) => e.code(),
            Self::EventTooLarge(_) => "event_too_large",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InProgress => "request_in_progress",
            Self::IdempotencyUnavailable => "idempotency_unavailable",
            Self::UnknownSource => "unknown_source",
            Self::Suspended => "tenant_suspended",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::TokenInBody => "token_in_body",
            Self::TenantStoreUnavailable => "tenant_store_unavailable",
            Self::NotPublished { .. } => "bus_unavailable",
        }
    }

    /// The `{"error": {"code", "message"}}` body. A partly published batch
    /// also lists what did reach the bus, so the client is told.
    pub fn body(&self) -> String {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let Self::NotPublished { published, .. } = self
            && !published.is_empty()
        {
            error["published_submission_ids"] = json!(published);
        }
        json!({ "error": error }).to_string()
    }
}

/// Submissions on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Their IDs, in request order.
    pub submission_ids: Vec<String>,
    /// The same request was accepted before: this is its first answer
    /// again, and nothing was published now.
    pub replayed: bool,
}

impl Accepted {
    /// The 202 body: `{"submission_ids": [...]}`.
    pub fn body(&self) -> String {
        json!({ "submission_ids": self.submission_ids }).to_string()
    }
}

/// What ingest answers an accepted request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Submissions on the bus (202).
    Accepted(Accepted),
    /// A provider's signed URL check (Slack's `url_verification`),
    /// answered 200 with `{"<field>": "<value>"}`; nothing is published.
    Challenge {
        /// The answer's field.
        field: &'static str,
        /// Its value, from the request's body.
        value: String,
    },
}

impl Answer {
    /// The HTTP status and JSON body.
    pub fn status_and_body(&self) -> (u16, String) {
        match self {
            Self::Accepted(accepted) => (202, accepted.body()),
            Self::Challenge { field, value } => (200, json!({ *field: value }).to_string()),
        }
    }
}

/// The ingest handler: publisher, configuration, ID generator and metrics,
/// built once per process.
pub struct Ingest<P, K = MemoryIdempotencyStore, R = NoRecords> {
    publisher: P,
    idempotency: K,
    records: R,
    source: Arc<str>,
    max_body_bytes: usize,
    retry: RetryPolicy,
    ids: SubmissionIds,
    metrics: Metrics,
}

/// What a Lambda environment keeps of idempotency keys in memory when it
/// has no shared store, the newest first: a weight of 10,000, a key
/// counting one plus one per submission ID of its answer (about 100 bytes
/// each: 1 MB).
pub const MEMORY_IDEMPOTENCY_KEYS: usize = 10_000;

impl<P: EventPublisher> Ingest<P> {
    /// A handler publishing through `publisher`, keeping idempotency keys
    /// in memory (at most [`MEMORY_IDEMPOTENCY_KEYS`], for the TTL).
    pub fn new(publisher: P, config: &Config, metrics: Metrics) -> Self {
        Self {
            publisher,
            idempotency: MemoryIdempotencyStore::new(
                config.idempotency_ttl,
                MEMORY_IDEMPOTENCY_KEYS,
            ),
            records: NoRecords,
            source: Arc::from(config.event_source.as_str()),
            max_body_bytes: config.max_body_bytes,
            retry: RetryPolicy::default(),
            ids: SubmissionIds::new(),
            metrics,
        }
    }
}

impl<P: EventPublisher, K: IdempotencyStore, R: TenantRecords> Ingest<P, K, R> {
    /// Keeps idempotency keys in `store` instead.
    pub fn with_idempotency_store<S: IdempotencyStore>(self, store: S) -> Ingest<P, S, R> {
        Ingest {
            publisher: self.publisher,
            idempotency: store,
            records: self.records,
            source: self.source,
            max_body_bytes: self.max_body_bytes,
            retry: self.retry,
            ids: self.ids,
            metrics: self.metrics,
        }
    }

    /// Reads tenants' sources from `records`: the source route needs them.
    pub fn with_tenant_records<T: TenantRecords>(self, records: T) -> Ingest<P, K, T> {
        Ingest {
            publisher: self.publisher,
            idempotency: self.idempotency,
            records,
            source: self.source,
            max_body_bytes: self.max_body_bytes,
            retry: self.retry,
            ids: self.ids,
            metrics: self.metrics,
        }
    }

    /// Replaces the publish retry policy (the local gateway and tests).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Handles one event of an invocation that may carry a tenant ID (a
    /// function in Lambda's tenant isolation mode runs each tenant in
    /// environments of its own). With one, the invocation's tenant, the
    /// authorizer's and the path's must be the same, else the request is
    /// refused (500 `tenant_mismatch`, logged at error, nothing published):
    /// another tenant's data must never be processed in this tenant's
    /// environment. Without one, [`Ingest::handle`].
    pub async fn handle_invocation(
        &self,
        event: &IngestEvent,
        invocation_tenant: Option<&str>,
        now: SystemTime,
    ) -> Response {
        if let Some(expected) = invocation_tenant {
            let context = event
                .request_context
                .authorizer
                .as_ref()
                .and_then(|a| a.tenant_and_routing().0);
            let path = event.path_parameters.tenant_id.as_deref();
            if context != Some(expected) || path != Some(expected) {
                let rejection = Rejection::TenantMismatch;
                let tenant = TenantId::parse(expected).ok().map(|id| Tenant {
                    id,
                    routing: Routing::Shared,
                });
                self.rejected(
                    tenant.as_ref(),
                    event.request_context.request_id.as_deref(),
                    &rejection,
                );
                return Response::json(rejection.status(), rejection.body());
            }
        }
        self.handle(event, now).await
    }

    /// Handles one API Gateway event received at `now`. Never fails: every
    /// outcome is a response.
    pub async fn handle(&self, event: &IngestEvent, now: SystemTime) -> Response {
        let tenant = tenant_from_context(event);
        let request_id = event.request_context.request_id.as_deref();
        // Without a tenant the body is not even decoded: `ingest` refuses it.
        let decoded = match tenant.as_ref().map(|_| self.decode_body(event)) {
            None => Cow::Borrowed(&[][..]),
            Some(Ok(body)) => body,
            Some(Err(rejection)) => {
                self.rejected(tenant.as_ref(), request_id, &rejection);
                return Response::json(rejection.status(), rejection.body());
            }
        };
        let source_id = source_id_from_context(event);
        // Only a source's verifier reads the URL.
        let url = source_id.map(|_| source_url(event)).unwrap_or_default();
        let headers = |name: &str| event.headers.get(name);
        let source = source_id.map(|source_id| SourceRequest {
            source_id,
            url: &url,
            query: event.query(),
            headers: &headers,
        });
        let request = Request {
            tenant: tenant.as_ref(),
            content_type: event.headers.content_type.as_deref(),
            content_digest: event.headers.content_digest.as_deref(),
            body: &decoded,
            request_id,
            timestamp: event.headers.timestamp.as_deref(),
            idempotency_key: event.headers.idempotency_key.as_deref(),
            source,
        };
        match self.ingest(request, now).await {
            Ok(answer) => {
                let (status, body) = answer.status_and_body();
                let mut response = Response::json(status, body);
                if matches!(answer, Answer::Accepted(Accepted { replayed: true, .. })) {
                    response.headers.idempotent_replayed = Some("true");
                }
                response
            }
            Err(rejection) => {
                let mut response = Response::json(rejection.status(), rejection.body());
                if rejection == Rejection::InProgress {
                    response.headers.retry_after = Some("1");
                }
                response
            }
        }
    }

    /// Accepts or rejects one request received at `now`, and logs and
    /// counts the outcome.
    pub async fn ingest(&self, request: Request<'_>, now: SystemTime) -> Result<Answer, Rejection> {
        let result = self.accept(&request, now).await;
        if let Err(rejection) = &result {
            self.rejected(request.tenant, request.request_id, rejection);
        }
        result
    }

    async fn accept(&self, request: &Request<'_>, now: SystemTime) -> Result<Answer, Rejection> {
        let tenant = request.tenant.ok_or(Rejection::MissingContext)?;
        if request.body.len() > self.max_body_bytes {
            return Err(Rejection::BodyTooLarge(self.max_body_bytes));
        }
        let read = match &request.source {
            None => read_signed(tenant, request)?,
            Some(source) => match self.read_source(tenant, source, request, now).await? {
                Ok(read) => read,
                Err(challenge) => return Ok(challenge),
            },
        };
        // All keys at once, all or nothing (one DynamoDB round trip): two
        // copies can never split the keys between them, each then seeing
        // the other's claim and neither being accepted. A refusal holds
        // no key.
        let claimed = match self.idempotency.claim_all(&read.keys).await {
            Ok(Claims::Won(tickets)) => tickets,
            Ok(Claims::Replay(ids)) => {
                debug!(tenant_id = %tenant.id, request_id = request.request_id, "replayed");
                return Ok(Answer::Accepted(Accepted {
                    submission_ids: ids.to_vec(),
                    replayed: true,
                }));
            }
            Ok(Claims::Mismatch) => return Err(Rejection::IdempotencyKeyReused),
            Ok(Claims::InProgress) => return Err(Rejection::InProgress),
            Err(e) => {
                error!(tenant_id = %tenant.id, request_id = request.request_id, error = %e, "idempotency store failed");
                return Err(Rejection::IdempotencyUnavailable);
            }
        };
        let result = self.publish(tenant, request, &read, now).await;
        let ids = result.as_ref().ok().map(|a| a.submission_ids.as_slice());
        self.settle(&claimed, ids, tenant, request).await;
        result.map(Answer::Accepted)
    }

    /// A source route's request: the source's provider verifies the raw
    /// body (docs/protocol.md, section 9), then the body becomes one
    /// payload, keyed by the provider's event ID when it gives one; or,
    /// for a provider's signed URL check, the answer it expects.
    async fn read_source<'r>(
        &self,
        tenant: &Tenant,
        source: &SourceRequest<'r>,
        request: &Request<'r>,
        now: SystemTime,
    ) -> Result<Result<Read<'r>, Answer>, Rejection> {
        let source_id = SourceId::parse(source.source_id).map_err(|_| Rejection::MissingContext)?;
        let record = match self.records.record(&tenant.id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Err(Rejection::UnknownSource),
            Err(e) => {
                error!(tenant_id = %tenant.id, request_id = request.request_id, error = %e, "tenant store failed");
                return Err(Rejection::TenantStoreUnavailable);
            }
        };
        if record.status == TenantStatus::Suspended {
            return Err(Rejection::Suspended);
        }
        let keys = record
            .sources
            .get(&source_id)
            .ok_or(Rejection::UnknownSource)?;
        let provider = keys.provider();
        let parts = source::Request {
            method: "POST",
            url: source.url,
            query: source.query,
            headers: source.headers,
            body: request.body,
        };
        let verified = keys
            .verify(&parts, unix_seconds(now))
            .map_err(Rejection::InvalidSignature)?;
        let mut payload = body::source_payload(request.content_type, request.body)?;
        // A secret that travels in the URL never travels on: some senders
        // echo their webhook's URL in the body (Jotform's webhookURL).
        match keys.redact_presented_secret(source.query, payload.json.get()) {
            Ok(None) => {}
            Ok(Some(redacted)) => {
                payload.json = Cow::Owned(
                    serde_json::value::RawValue::from_string(redacted)
                        .map_err(|_| Rejection::TokenInBody)?,
                );
            }
            Err(_) => return Err(Rejection::TokenInBody),
        }
        if let Some((field, value)) = provider.challenge(payload.json.get()) {
            debug!(tenant_id = %tenant.id, request_id = request.request_id, provider = provider.as_str(), "URL check answered");
            return Ok(Err(Answer::Challenge { field, value }));
        }

        // The provider's own ID for this event, when it gives one: in the
        // body, else in a header. A provider's retry of the event (other
        // bytes, signed again) has the same ID.
        let body_id = provider.body_event_id(payload.json.get());
        let event_id = body_id
            .clone()
            .or(verified.delivery_id().map(str::to_owned));
        let signed_content = IdempotencyKey::from_signed_content(
            &tenant.id,
            source_id.as_str(),
            verified.signed_timestamp(),
            verified.event_type(),
            request.body,
        );
        let by_id = |id: &str| IdempotencyKey::from_event_id(&tenant.id, source_id.as_str(), id);
        // What was signed is always a key too, so that a captured request
        // sent again is the same delivery whatever was changed that the
        // signature does not cover: an unsigned header ID (GitHub,
        // Shopify), or the Content-Type (the same bytes read as a form,
        // where no event ID is found).
        // A delivery ID in a header is a key too, signed or not (GitHub's,
        // Shopify's: docs/protocol.md, section 10); what was signed is
        // claimed beside it, so a captured body sent again under a new ID
        // is still caught.
        let mut keys = header_key(tenant, request)?;
        if let Some(id) = body_id.as_deref().or(verified.delivery_id()) {
            keys.push(by_id(id));
        }
        keys.push(signed_content);
        Ok(Ok(Read {
            content_type: payload.content_type(),
            payloads: vec![payload.json],
            keys,
            source: Some(OwnedSource {
                id: source_id,
                provider: provider.as_str(),
                event_id,
                event_type: verified.event_type().map(str::to_owned),
            }),
        }))
    }

    /// Completes the claimed keys with the accepted IDs, or releases them
    /// (not accepted: the sender's retry must be able to succeed).
    async fn settle(
        &self,
        claimed: &[Ticket],
        accepted: Option<&[String]>,
        tenant: &Tenant,
        request: &Request<'_>,
    ) {
        let settled = join_all(claimed.iter().map(|ticket| async move {
            match accepted {
                Some(ids) => self.idempotency.complete(ticket, ids).await,
                None => self.idempotency.release(ticket).await,
            }
        }))
        .await;
        for settled in settled {
            if let Err(e) = settled {
                // The answer stands; a retry may be accepted again (after a
                // completed request) or wait out the claim's lease.
                warn!(tenant_id = %tenant.id, request_id = request.request_id, error = %e, "idempotency store failed after the request");
            }
        }
    }

    /// Publishes one request's submissions as events.
    async fn publish(
        &self,
        tenant: &Tenant,
        request: &Request<'_>,
        read: &Read<'_>,
        now: SystemTime,
    ) -> Result<Accepted, Rejection> {
        let received_at = received_at(now);
        let mut ids = Vec::with_capacity(read.payloads.len());
        let source = read.source.as_ref().map(|s| SubmissionSource {
            id: Cow::Borrowed(s.id.as_str()),
            provider: Cow::Borrowed(s.provider),
            event_id: s.event_id.as_deref().map(Cow::Borrowed),
            event_type: s.event_type.as_deref().map(Cow::Borrowed),
        });
        let entries: Vec<BusEntry> = read
            .payloads
            .iter()
            .map(|payload| {
                let id = self.ids.next(now);
                ids.push(id);
                let detail = SubmissionDetail {
                    version: Cow::Borrowed(DETAIL_VERSION),
                    submission_id: Cow::Owned(id.to_string()),
                    tenant_id: tenant.id.clone(),
                    routing: tenant.routing,
                    received_at: Cow::Borrowed(&received_at),
                    content_type: Cow::Borrowed(read.content_type),
                    payload,
                    source: source.clone(),
                };
                BusEntry {
                    source: Arc::clone(&self.source),
                    detail_type: DETAIL_TYPE,
                    time: now,
                    detail: detail.to_json(),
                }
            })
            .collect();

        let started = Instant::now();
        let report = publish::publish(&self.publisher, &entries, &self.retry)
            .await
            .map_err(Rejection::EventTooLarge)?;
        let latency = started.elapsed();
        let published = ids.len() - report.failed.len();
        self.metrics.emit(
            &[
                Measure::count("Submissions", u32::try_from(published).unwrap_or(u32::MAX)),
                Measure::count("PublishCalls", report.calls),
                Measure::count("PublishRetries", report.retried_entries),
                Measure::millis("PublishLatency", latency),
            ],
            &[("TenantId", tenant.id.as_str())],
            &[&[], &["TenantId"]],
        );
        if report.failed.is_empty() {
            debug!(
                tenant_id = %tenant.id,
                request_id = request.request_id,
                submissions = ids.len(),
                calls = report.calls,
                retried = report.retried_entries,
                publish_ms = latency.as_secs_f64() * 1000.0,
                "accepted"
            );
            return Ok(Accepted {
                submission_ids: ids.iter().map(ToString::to_string).collect(),
                replayed: false,
            });
        }
        Err(not_published(tenant, request.request_id, &ids, &report))
    }

    /// The raw body: base64-decoded when API Gateway encoded it, refused
    /// before decoding when it cannot fit.
    fn decode_body<'e>(&self, event: &'e IngestEvent) -> Result<Cow<'e, [u8]>, Rejection> {
        let body = event.body.as_deref().unwrap_or_default();
        if !event.is_base64_encoded {
            return Ok(Cow::Borrowed(body.as_bytes()));
        }
        if body.len() / 4 * 3 > self.max_body_bytes.saturating_add(3) {
            return Err(Rejection::BodyTooLarge(self.max_body_bytes));
        }
        base64_simd::STANDARD
            .decode_to_vec(body)
            .map(Cow::Owned)
            .map_err(|_| Rejection::MalformedBase64)
    }

    fn rejected(&self, tenant: Option<&Tenant>, request_id: Option<&str>, rejection: &Rejection) {
        let reason = rejection.code();
        let tenant_id = tenant.map(|t| t.id.as_str());
        match rejection {
            Rejection::MissingContext | Rejection::TenantMismatch => {
                error!(tenant_id, request_id, reason, "rejected: {rejection}");
            }
            Rejection::NotPublished { .. } => {} // logged with detail where it happens
            _ => warn!(tenant_id, request_id, reason, "rejected: {rejection}"),
        }
        match tenant_id {
            Some(t) => self.metrics.count(
                "Rejections",
                &[("Reason", reason), ("TenantId", t)],
                &[&["Reason"], &["TenantId", "Reason"]],
            ),
            None => self
                .metrics
                .count("Rejections", &[("Reason", reason)], &[&["Reason"]]),
        }
    }
}

/// The 503 for a request whose events did not all reach the bus.
fn not_published(
    tenant: &Tenant,
    request_id: Option<&str>,
    ids: &[SubmissionId],
    report: &PublishReport,
) -> Rejection {
    let mut failed = vec![false; ids.len()];
    for (index, _) in &report.failed {
        failed[*index] = true;
    }
    let unknown = report.failed.iter().any(|(_, e)| e.outcome_unknown());
    let published: Vec<SubmissionId> = ids
        .iter()
        .zip(&failed)
        .filter(|(_, failed)| !**failed)
        .map(|(id, _)| *id)
        .collect();
    let first: &EntryError = &report.failed[0].1;
    error!(
        tenant_id = %tenant.id,
        request_id,
        submissions = ids.len(),
        failed = report.failed.len(),
        calls = report.calls,
        retried = report.retried_entries,
        reason = first.code(),
        error = ?first,
        "not published"
    );
    let mut message = format!(
        "the event bus did not take {} of {} submissions; the request was not accepted",
        report.failed.len(),
        ids.len()
    );
    if !published.is_empty() {
        message.push_str(
            "; the submissions in published_submission_ids were published and a retry sends them again",
        );
    }
    if unknown {
        message.push_str(
            "; the bus's answer was lost, so some of the others may have been published too",
        );
    } else if published.is_empty() {
        message.push_str("; retrying the request is safe");
    }
    Rejection::NotPublished { message, published }
}

/// A request read and verified: its payloads, the media type they were
/// sent as, the idempotency keys to claim and, on a source route, the
/// source.
struct Read<'a> {
    content_type: &'static str,
    payloads: Vec<Cow<'a, serde_json::value::RawValue>>,
    keys: Vec<IdempotencyKey>,
    source: Option<OwnedSource>,
}

/// The detail's `source` field, before it borrows into each event.
struct OwnedSource {
    id: SourceId,
    provider: &'static str,
    event_id: Option<String>,
    event_type: Option<String>,
}

/// The submissions route's request: the body checked against the signed
/// digest before it is parsed, keyed by the signed identity.
fn read_signed<'r>(tenant: &Tenant, request: &Request<'r>) -> Result<Read<'r>, Rejection> {
    let digest = request.content_digest.ok_or(Rejection::MissingDigest)?;
    verify_content_digest(digest, request.body)?;
    let content_type = request
        .content_type
        .and_then(ContentType::parse)
        .ok_or(Rejection::UnsupportedContentType)?;
    let payloads = body::submissions(content_type, request.body)?;
    // The signed identity always: a captured request sent again, with or
    // without an Idempotency-Key of the sender's choosing, is the same
    // request. The header's key too when sent: it also catches a retry
    // that was signed again, and a key reused for another body.
    let mut keys = header_key(tenant, request)?;
    keys.push(IdempotencyKey::from_signed_identity(
        &tenant.id,
        request.timestamp.unwrap_or_default(),
        digest,
    ));
    Ok(Read {
        content_type: content_type.as_str(),
        payloads,
        keys,
        source: None,
    })
}

/// The `Idempotency-Key` header's key, when one was sent (claimed first).
fn header_key(tenant: &Tenant, request: &Request<'_>) -> Result<Vec<IdempotencyKey>, Rejection> {
    let mut keys = Vec::with_capacity(3);
    if let Some(header) = request.idempotency_key {
        keys.push(IdempotencyKey::from_header(
            &tenant.id,
            header,
            request.body,
        )?);
    }
    Ok(keys)
}

/// Seconds since the Unix epoch (0 before it).
fn unix_seconds(now: SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The public URL the sender called: `x-forwarded-proto` (API Gateway
/// sets `https`), the host it called, the raw path and query.
fn source_url(event: &IngestEvent) -> String {
    let scheme = event.headers.get("x-forwarded-proto").unwrap_or("https");
    let host = event
        .request_context
        .domain_name
        .as_deref()
        .or(event.headers.get("host"))
        .unwrap_or_default();
    let path = event.path();
    let mut url = format!("{scheme}://{host}{path}");
    let query = event.query();
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// The source ID from the authorizer's context, on a source route.
fn source_id_from_context(event: &IngestEvent) -> Option<&str> {
    event.request_context.authorizer.as_ref()?.source_id()
}

/// The tenant from the authorizer's context (an HTTP API's or a REST
/// API's), when it is complete and valid.
fn tenant_from_context(event: &IngestEvent) -> Option<Tenant> {
    let (tenant_id, routing) = event
        .request_context
        .authorizer
        .as_ref()?
        .tenant_and_routing();
    let id = TenantId::parse(tenant_id?).ok()?;
    let routing = Routing::parse(routing?)?;
    Some(Tenant { id, routing })
}
