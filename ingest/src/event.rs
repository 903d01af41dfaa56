//! The API Gateway HTTP API payload 2.0 proxy event, as far as ingest reads
//! it, and the proxy response.
//!
//! The event is `aws_lambda_events::apigw::ApiGatewayV2httpRequest`. That
//! type builds every header into a `HeaderMap` and every nested context
//! struct; ingest needs two headers, the body and the authorizer context.
//! [`IngestEvent`] reads those and skips the rest. The conformance test in
//! `tests/ingest/handler.rs` reads the same fixtures through both types.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use shared::json_key::JsonKey;
use shared::signature::{CONTENT_DIGEST_HEADER, TIMESTAMP_HEADER};

/// `Content-Type`, lowercase.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// `Idempotency-Key`, lowercase.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// What ingest reads from a payload 2.0 proxy event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IngestEvent {
    /// The two headers ingest uses.
    pub headers: Headers,
    /// The body as API Gateway passes it.
    pub body: Option<String>,
    /// Whether `body` is base64 (API Gateway encodes non-text bodies).
    pub is_base64_encoded: bool,
    /// `requestContext`.
    pub request_context: RequestContext,
}

/// `requestContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    /// API Gateway's request ID, for log correlation.
    pub request_id: Option<String>,
    /// What the authorizer returned.
    pub authorizer: Option<Authorizer>,
}

/// `requestContext.authorizer`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Authorizer {
    /// The Lambda authorizer's `context`.
    pub lambda: Option<LambdaContext>,
}

/// `requestContext.authorizer.lambda`: the authorizer's allow context.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LambdaContext {
    /// The authenticated tenant.
    pub tenant_id: Option<String>,
    /// The tenant's routing.
    pub routing: Option<String>,
}

/// `Content-Type`, `Content-Digest`, `X-FormBridge-Timestamp` and
/// `Idempotency-Key`, found case-insensitively; every other header is
/// skipped without being copied.
#[derive(Debug, Default)]
pub struct Headers {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Digest`.
    pub content_digest: Option<String>,
    /// `X-FormBridge-Timestamp`: with the digest and the tenant, the
    /// request's idempotency key when it has no `Idempotency-Key`.
    pub timestamp: Option<String>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
                Ok(Headers::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Headers, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut h = Headers::default();
                while let Some(key) = map.next_key::<JsonKey<'de>>()? {
                    if key.is_ignore_case(CONTENT_TYPE_HEADER) {
                        h.content_type = map.next_value()?;
                    } else if key.is_ignore_case(CONTENT_DIGEST_HEADER) {
                        h.content_digest = map.next_value()?;
                    } else if key.is_ignore_case(TIMESTAMP_HEADER) {
                        h.timestamp = map.next_value()?;
                    } else if key.is_ignore_case(IDEMPOTENCY_KEY_HEADER) {
                        h.idempotency_key = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_any(HeadersVisitor)
    }
}

/// A payload 2.0 proxy response with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The HTTP status.
    pub status_code: u16,
    /// Always `content-type: application/json`.
    pub headers: ResponseHeaders,
    /// The JSON body.
    pub body: String,
    /// Always `false`.
    pub is_base64_encoded: bool,
}

/// The response's headers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseHeaders {
    /// `application/json`.
    #[serde(rename = "content-type")]
    pub content_type: &'static str,
    /// `true` on the answer to a request accepted before (the first
    /// answer again).
    #[serde(
        rename = "idempotent-replayed",
        skip_serializing_if = "Option::is_none"
    )]
    pub idempotent_replayed: Option<&'static str>,
    /// Seconds to wait before retrying (409 while the first request with
    /// the same key is in progress).
    #[serde(rename = "retry-after", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<&'static str>,
}

impl Response {
    /// A response with `status` and a JSON `body`.
    pub fn json(status_code: u16, body: String) -> Self {
        Self {
            status_code,
            headers: ResponseHeaders {
                content_type: "application/json",
                idempotent_replayed: None,
                retry_after: None,
            },
            body,
            is_base64_encoded: false,
        }
    }
}
