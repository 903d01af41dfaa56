//! The local gateway's HTTP front: API Gateway on one machine.
//!
//! `POST /v1/tenants/{tenant_id}/submissions` goes through what API Gateway
//! does with the deployed stack: the three identity headers must be present
//! (else 401), the request's parts are what the authorizer Lambda reads
//! from its payload 2.0 event, and [`Authorizer::authorize`] decides (a
//! deny is 403), then the request becomes the payload 2.0 proxy event
//! ingest receives, with the authorizer's context, and [`Ingest::handle`]
//! answers. The statuses and bodies are therefore the deployed stack's.
//!
//! The deployed stack has two APIs, the shared one and the isolated one
//! (each tenant allowed only through the one its record names); this one
//! process serves every tenant on the same routes, isolated ones included:
//! there are no execution environments here to keep apart.
//!
//! `POST /v1/tenants/{tenant_id}/sources/{source_id}` (a provider's
//! webhook) goes the same way with the source route's authorizer, which has
//! no identity sources: the authorizer is called for every request and
//! checks the tenant and the source; ingest verifies the provider's
//! signature over the body.
//!
//! Also served: `GET /healthz`, `{"status":"ok"}` (liveness, for load
//! balancers and load tests). The bus's counts and the dead letters are on
//! the operations listener ([`super::operations`]), not here.
//!
//! An allowed request's body must arrive within the body read timeout,
//! else the answer is 408 and the connection is closed: a sender that
//! stalls cannot hold a connection (the header and idle timeouts are the
//! listener's, [`super::connections`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use authorizer::{Authorizer, AuthorizerEvent, Request as AuthorizerRequest};
use base64::Engine as _;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ingest::Ingest;
use ingest::event::{
    Authorizer as AuthorizerContext, Headers, IDEMPOTENCY_KEY_HEADER, IngestEvent, LambdaContext,
    OtherHeaders, PathParameters, RequestContext,
};
use shared::idempotency::MemoryIdempotencyStore;
use shared::signature::{CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, unix_now};
use shared::store::{CachedTenantStore, MemoryTenantStore};
use tracing::info;

use super::bus::BusPublisher;
use crate::http::{Body, Handler, json_response, read_body};

/// API Gateway's answer when an identity source header is missing.
const UNAUTHORIZED: &str = r#"{"message":"Unauthorized"}"#;
/// API Gateway's answer when the authorizer denies.
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
/// API Gateway's answer for a route that does not exist.
const NOT_FOUND: &str = r#"{"message":"Not Found"}"#;
/// The header API Gateway puts its request ID in.
const REQUEST_ID_HEADER: &str = "apigw-requestid";
/// `GET /healthz` here: up, and nothing more.
const HEALTHY: &str = r#"{"status":"ok"}"#;

/// The local gateway: the authorizer and ingest handlers in front of the
/// in-process bus.
pub struct Gateway {
    authorizer: Authorizer<MemoryTenantStore>,
    ingest: Ingest<BusPublisher, MemoryIdempotencyStore, CachedTenantStore<MemoryTenantStore>>,
    /// Bodies are read up to one byte more than ingest accepts, so that
    /// ingest itself answers 413 for a longer one.
    body_limit: usize,
    /// How long an allowed request's body may take to arrive.
    body_timeout: Duration,
    request_ids: AtomicU64,
    id_prefix: u32,
}

impl Gateway {
    /// A gateway over the two handlers; `max_body_bytes` is ingest's
    /// `MAX_BODY_BYTES`, `body_timeout` the time a body may take.
    pub fn new(
        authorizer: Authorizer<MemoryTenantStore>,
        ingest: Ingest<BusPublisher, MemoryIdempotencyStore, CachedTenantStore<MemoryTenantStore>>,
        max_body_bytes: usize,
        body_timeout: Duration,
    ) -> Self {
        Self {
            authorizer,
            ingest,
            body_limit: max_body_bytes.saturating_add(1),
            body_timeout,
            request_ids: AtomicU64::new(0),
            id_prefix: uuid::Uuid::new_v4().as_fields().0,
        }
    }

    async fn submit(&self, tenant_id: &str, request: Request<Incoming>) -> Response<Body> {
        let headers = request.headers();
        let (Some(timestamp), Some(content_digest), Some(signature)) = (
            identity(headers, TIMESTAMP_HEADER),
            identity(headers, CONTENT_DIGEST_HEADER),
            identity(headers, SIGNATURE_HEADER),
        ) else {
            return json_response(StatusCode::UNAUTHORIZED, UNAUTHORIZED);
        };
        let event = AuthorizerEvent {
            timestamp: Some(timestamp),
            content_digest: Some(content_digest),
            signature: Some(signature),
            ..authorizer_event(tenant_id)
        };
        self.forward(event, request).await
    }

    /// The source route: no identity sources, so no 401 before the
    /// authorizer.
    async fn source(
        &self,
        tenant_id: &str,
        source_id: &str,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let event = AuthorizerEvent {
            source_id: Some(source_id.to_owned()),
            raw_query: Some(request.uri().query().unwrap_or_default().to_owned()),
            ..authorizer_event(tenant_id)
        };
        self.forward(event, request).await
    }

    /// Asks the authorizer, then hands an allowed request to ingest, as
    /// API Gateway does.
    async fn forward(
        &self,
        mut event: AuthorizerEvent,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let request_id = format!(
            "{:08x}{:08x}",
            self.id_prefix,
            self.request_ids.fetch_add(1, Relaxed)
        );
        event.request_id = Some(request_id.clone());
        // No API named: either isolation is served here.
        let asked = AuthorizerRequest::from_event(&event);
        let decision = self.authorizer.authorize(asked, unix_now()).await;
        let (Ok(routing), Some(tenant_id)) = (decision.verdict, decision.tenant_id) else {
            return with_request_id(json_response(StatusCode::FORBIDDEN, FORBIDDEN), &request_id);
        };
        let (parts, body) = request.into_parts();
        let body = match tokio::time::timeout(self.body_timeout, read_body(body, self.body_limit))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                let body = r#"{"error":{"code":"malformed_body","message":"the request body could not be read"}}"#;
                return with_request_id(json_response(StatusCode::BAD_REQUEST, body), &request_id);
            }
            Err(_) => {
                info!(
                    tenant_id = %tenant_id,
                    request_id,
                    "the request body did not arrive within the body read timeout"
                );
                return with_request_id(body_timeout(self.body_timeout), &request_id);
            }
        };
        // API Gateway passes text as it is and base64-encodes the rest.
        let (body, is_base64_encoded) = match String::from_utf8(body) {
            Ok(text) => (text, false),
            Err(e) => (
                base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
                true,
            ),
        };
        // A payload 2.0 event: what an HTTP API sets, a REST API's own
        // fields left out.
        let event = IngestEvent {
            headers: ingest_headers(&parts.headers),
            body: Some(body),
            is_base64_encoded,
            request_context: RequestContext {
                request_id: Some(request_id.clone()),
                authorizer: Some(AuthorizerContext {
                    lambda: Some(LambdaContext {
                        tenant_id: Some(tenant_id.to_string()),
                        routing: Some(routing.as_str().to_owned()),
                        source_id: decision.source_id.map(|s| s.to_string()),
                    }),
                    ..AuthorizerContext::default()
                }),
                domain_name: joined(&parts.headers, "host"),
                ..RequestContext::default()
            },
            raw_path: Some(parts.uri.path().to_owned()),
            raw_query_string: Some(parts.uri.query().unwrap_or_default().to_owned()),
            path_parameters: PathParameters {
                tenant_id: event.tenant_id.clone(),
            },
            ..IngestEvent::default()
        };
        let answer = self.ingest.handle(&event, SystemTime::now()).await;
        let status =
            StatusCode::from_u16(answer.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = with_request_id(json_response(status, answer.body), &request_id);
        // The queue is full, or the same request is in progress: the
        // client should come back shortly.
        let retry_after = answer
            .headers
            .retry_after
            .or((status == StatusCode::SERVICE_UNAVAILABLE).then_some("1"));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if let Some(replayed) = answer.headers.idempotent_replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static(replayed));
        }
        response
    }
}

/// 408, and the connection closed: what is left of the body is not read.
fn body_timeout(timeout: Duration) -> Response<Body> {
    let body = format!(
        r#"{{"error":{{"code":"body_timeout","message":"the request body did not arrive within {} s"}}}}"#,
        timeout.as_secs_f64()
    );
    let mut response = json_response(StatusCode::REQUEST_TIMEOUT, body);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

impl Handler for Gateway {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        if let Some(tenant_id) = submissions_route(path) {
            if request.method() == Method::POST {
                let tenant_id = tenant_id.to_owned();
                return self.submit(&tenant_id, request).await;
            }
        } else if let Some((tenant_id, source_id)) = source_route(path) {
            if request.method() == Method::POST {
                let (tenant_id, source_id) = (tenant_id.to_owned(), source_id.to_owned());
                return self.source(&tenant_id, &source_id, request).await;
            }
        } else if request.method() == Method::GET && path == "/healthz" {
            return json_response(StatusCode::OK, HEALTHY);
        }
        json_response(StatusCode::NOT_FOUND, NOT_FOUND)
    }
}

/// The `{tenant_id}` of `/v1/tenants/{tenant_id}/submissions`: one
/// non-empty path segment, as API Gateway matches it.
fn submissions_route(path: &str) -> Option<&str> {
    let tenant = path
        .strip_prefix("/v1/tenants/")?
        .strip_suffix("/submissions")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

/// The `{tenant_id}` and `{source_id}` of
/// `/v1/tenants/{tenant_id}/sources/{source_id}`: one non-empty path
/// segment each.
fn source_route(path: &str) -> Option<(&str, &str)> {
    let (tenant, source) = path.strip_prefix("/v1/tenants/")?.split_once("/sources/")?;
    let segment = |s: &str| !s.is_empty() && !s.contains('/');
    (segment(tenant) && segment(source)).then_some((tenant, source))
}

/// The authorizer event API Gateway sends for `tenant_id`, before the
/// route's own parts.
fn authorizer_event(tenant_id: &str) -> AuthorizerEvent {
    AuthorizerEvent {
        version: Some("2.0".to_owned()),
        kind: Some("REQUEST".to_owned()),
        has_request_context: true,
        headers_well_formed: true,
        tenant_id: Some(tenant_id.to_owned()),
        ..AuthorizerEvent::default()
    }
}

/// The headers as ingest reads them from a payload 2.0 event: names
/// lowercase, repeated headers joined with commas. API Gateway sets
/// `x-forwarded-proto` (always `https` there); here it is `http` unless a
/// proxy in front (a tunnel) says otherwise: a source's signed URL (HubSpot)
/// is the URL its sender called.
fn ingest_headers(headers: &HeaderMap) -> Headers {
    let mut ingest = Headers {
        content_type: joined(headers, CONTENT_TYPE.as_str()),
        content_digest: joined(headers, CONTENT_DIGEST_HEADER),
        timestamp: joined(headers, TIMESTAMP_HEADER),
        idempotency_key: joined(headers, IDEMPOTENCY_KEY_HEADER),
        others: OtherHeaders::default(),
    };
    let known = [
        CONTENT_TYPE.as_str(),
        CONTENT_DIGEST_HEADER,
        TIMESTAMP_HEADER,
        IDEMPOTENCY_KEY_HEADER,
    ];
    for name in headers.keys().map(HeaderName::as_str) {
        if !known.contains(&name)
            && let Some(value) = joined(headers, name)
        {
            ingest.others.push(name, &value);
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        ingest.others.push("x-forwarded-proto", "http");
    }
    ingest
}

/// An identity source header: API Gateway answers 401 before calling the
/// authorizer when one is missing or empty.
fn identity(headers: &HeaderMap, name: &str) -> Option<String> {
    joined(headers, name).filter(|v| !v.is_empty())
}

/// A header's values as API Gateway's payload 2.0 passes them: repeated
/// headers joined with commas. A value that is not visible ASCII becomes a
/// NUL, which every check downstream refuses as malformed.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers
        .get_all(HeaderName::from_bytes(name.as_bytes()).ok()?)
        .iter();
    let text = |v: &HeaderValue| v.to_str().unwrap_or("\0").to_owned();
    let mut joined = text(values.next()?);
    for value in values {
        joined.push(',');
        joined.push_str(&text(value));
    }
    Some(joined)
}

fn with_request_id(mut response: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submissions_route_takes_one_segment() {
        assert_eq!(
            submissions_route("/v1/tenants/acme/submissions"),
            Some("acme")
        );
        assert_eq!(
            submissions_route("/v1/tenants/Not%20Valid/submissions"),
            Some("Not%20Valid")
        );
        assert_eq!(
            source_route("/v1/tenants/acme/sources/stripe-live"),
            Some(("acme", "stripe-live"))
        );
        for path in [
            "/v1/tenants/acme/sources/",
            "/v1/tenants//sources/x",
            "/v1/tenants/acme/sources/a/b",
            "/v1/tenants/acme/submissions",
        ] {
            assert_eq!(source_route(path), None, "{path}");
        }
        for path in [
            "/v1/tenants//submissions",
            "/v1/tenants/a/b/submissions",
            "/v1/tenants/acme/submissions/",
            "/v1/tenants/acme",
            "/healthz",
        ] {
            assert_eq!(submissions_route(path), None, "{path}");
        }
    }

    #[test]
    fn repeated_headers_are_joined_and_non_ascii_is_malformed() {
        let mut headers = HeaderMap::new();
        headers.append("x-formbridge-signature", HeaderValue::from_static("v1=aa"));
        headers.append("x-formbridge-signature", HeaderValue::from_static("v1=bb"));
        headers.append(
            "content-digest",
            HeaderValue::from_bytes(b"sha-256=:\xff:").unwrap_or(HeaderValue::from_static("")),
        );
        headers.append("x-formbridge-timestamp", HeaderValue::from_static(""));
        assert_eq!(
            joined(&headers, SIGNATURE_HEADER).as_deref(),
            Some("v1=aa,v1=bb")
        );
        assert_eq!(
            joined(&headers, CONTENT_DIGEST_HEADER).as_deref(),
            Some("\0")
        );
        assert_eq!(identity(&headers, TIMESTAMP_HEADER), None);
        assert_eq!(identity(&headers, "content-type"), None);
    }
}
