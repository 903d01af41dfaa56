//! The API Gateway proxy event, as far as ingest reads it, and the proxy
//! response.
//!
//! The event is the HTTP API's payload 2.0
//! (`aws_lambda_events::apigw::ApiGatewayV2httpRequest`) or, on the
//! isolated path, the REST API's payload 1.0 (`ApiGatewayProxyRequest`). That
//! type builds every header into a `HeaderMap` and every nested context
//! struct; ingest needs a few headers (and on a source route, the
//! provider's), the body, the path, the query and the authorizer context.
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

/// What ingest reads from a proxy event: an HTTP API's (payload 2.0) or a
/// REST API's (payload 1.0, the isolated path), which carry the same parts
/// under a few other names. `Debug` leaves out the body and the query
/// string (a `token` source's secret).
#[derive(Default, Deserialize)]
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
    /// `rawPath`: the path as called (a source's public URL, which HubSpot
    /// signs).
    pub raw_path: Option<String>,
    /// `rawQueryString`: a `token` source's token travels there (never
    /// logged).
    pub raw_query_string: Option<String>,
    /// A REST API's `multiValueQueryStringParameters`, as a query string
    /// (its events have no `rawQueryString`).
    pub multi_value_query_string_parameters: shared::json_key::RestQuery,
    /// `pathParameters`.
    pub path_parameters: PathParameters,
}

/// `pathParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PathParameters {
    /// The tenant ID in the path.
    pub tenant_id: Option<String>,
}

impl fmt::Debug for IngestEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestEvent")
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(String::len))
            .field("is_base64_encoded", &self.is_base64_encoded)
            .field("request_context", &self.request_context)
            .field("raw_path", &self.raw_path)
            .finish_non_exhaustive()
    }
}

/// `requestContext`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestContext {
    /// API Gateway's request ID, for log correlation.
    pub request_id: Option<String>,
    /// What the authorizer returned.
    pub authorizer: Option<Authorizer>,
    /// The host name the sender called (a source's public URL).
    pub domain_name: Option<String>,
    /// On a REST API, the path as called, with the stage (an HTTP API
    /// event has `rawPath` instead).
    pub path: Option<String>,
}

/// `requestContext.authorizer`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Authorizer {
    /// The Lambda authorizer's `context`, on an HTTP API.
    pub lambda: Option<LambdaContext>,
    /// On a REST API the authorizer's context is here directly: its
    /// `tenant_id`.
    pub tenant_id: Option<String>,
    /// Its `routing`, on a REST API.
    pub routing: Option<String>,
    /// Its `source_id`, on a REST API's source route.
    pub source_id: Option<String>,
}

impl Authorizer {
    /// The authorizer's `tenant_id` and `routing`, from an HTTP API's
    /// `lambda` object, else (a REST API) from this object itself.
    pub fn tenant_and_routing(&self) -> (Option<&str>, Option<&str>) {
        match &self.lambda {
            Some(lambda) => (lambda.tenant_id.as_deref(), lambda.routing.as_deref()),
            None => (self.tenant_id.as_deref(), self.routing.as_deref()),
        }
    }

    /// The authorizer's `source_id` (source route only), from the same
    /// place.
    pub fn source_id(&self) -> Option<&str> {
        match &self.lambda {
            Some(lambda) => lambda.source_id.as_deref(),
            None => self.source_id.as_deref(),
        }
    }
}

impl IngestEvent {
    /// The query string as called: an HTTP API's `rawQueryString`, or a
    /// REST API's query parameters encoded again.
    pub fn query(&self) -> &str {
        self.raw_query_string
            .as_deref()
            .or(self.multi_value_query_string_parameters.0.as_deref())
            .unwrap_or_default()
    }

    /// The path as called: an HTTP API's `rawPath`, or a REST API's
    /// `requestContext.path` (which includes the stage, as the URL does).
    pub fn path(&self) -> &str {
        self.raw_path
            .as_deref()
            .or(self.request_context.path.as_deref())
            .unwrap_or_default()
    }
}

/// `requestContext.authorizer.lambda`: the authorizer's allow context.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LambdaContext {
    /// The authenticated tenant.
    pub tenant_id: Option<String>,
    /// The tenant's routing.
    pub routing: Option<String>,
    /// The source, on the source route.
    pub source_id: Option<String>,
}

/// `Content-Type`, `Content-Digest`, `X-FormBridge-Timestamp` and
/// `Idempotency-Key`, found case-insensitively, and every other header in
/// [`OtherHeaders`].
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
    /// Every other header, for a source's provider (whose signature
    /// headers vary). Values that are not strings are dropped.
    pub others: OtherHeaders,
}

/// Headers by lowercase name, kept in one buffer (two allocations for all
/// of them, not two per header: every request carries a dozen that only a
/// source route reads). `Debug` shows the names only.
#[derive(Default, Clone)]
pub struct OtherHeaders {
    text: String,
    /// Where each name ends and its value ends, in `text`.
    ends: Vec<(u32, u32)>,
}

impl OtherHeaders {
    /// Adds a header; the name is lowercased.
    pub fn push(&mut self, name: &str, value: &str) {
        let (Ok(name_end), Ok(value_end)) = (
            u32::try_from(self.text.len() + name.len()),
            u32::try_from(self.text.len() + name.len() + value.len()),
        ) else {
            return; // over 4 GiB of headers: not an API Gateway event
        };
        let start = self.text.len();
        self.text.push_str(name);
        self.text[start..].make_ascii_lowercase();
        self.text.push_str(value);
        self.ends.push((name_end, value_end));
    }

    /// The first value of the header `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        let mut start = 0usize;
        for &(name_end, value_end) in &self.ends {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            if self.text.get(start..name_end) == Some(name) {
                return self.text.get(name_end..value_end);
            }
            start = value_end;
        }
        None
    }

    /// The header names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let name = self.text.get(start..name_end as usize).unwrap_or_default();
            start = value_end as usize;
            name
        })
    }
}

impl fmt::Debug for OtherHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Headers {
    /// A header's value by lowercase name, among all of them.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            CONTENT_TYPE_HEADER => self.content_type.as_deref(),
            CONTENT_DIGEST_HEADER => self.content_digest.as_deref(),
            TIMESTAMP_HEADER => self.timestamp.as_deref(),
            IDEMPOTENCY_KEY_HEADER => self.idempotency_key.as_deref(),
            _ => self.others.get(name),
        }
    }
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
                    } else if let Some(StringOrOther::String(value)) =
                        map.next_value::<Option<StringOrOther<'_>>>()?
                    {
                        h.others
                            .push(&String::from_utf8_lossy(key.as_bytes()), &value);
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_any(HeadersVisitor)
    }
}

/// A header value: a string (borrowed from the event's text when it has
/// no escapes), or anything else (skipped).
enum StringOrOther<'de> {
    String(std::borrow::Cow<'de, str>),
    Other,
}

impl<'de> Deserialize<'de> for StringOrOther<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrOther<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StringOrOther::String(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOrOther::String(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(StringOrOther::String(std::borrow::Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StringOrOther::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StringOrOther::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StringOrOther::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StringOrOther::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(StringOrOther::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StringOrOther::Other)
            }
        }
        d.deserialize_any(V)
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
