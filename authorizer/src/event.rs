//! The parts of an API Gateway authorizer event the authorizer reads.
//!
//! The event is an HTTP API's payload 2.0 REQUEST authorizer event
//! (`aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request`), or
//! on the isolated path a REST API's REQUEST authorizer event
//! (`ApiGatewayCustomAuthorizerRequestTypeRequest`), which carries the same
//! parts under a few other names.
//! Deserialising that whole type builds every header, map and nested
//! struct and costs about 8 µs per request; the authorizer needs five
//! strings. [`AuthorizerEvent`] reads just those in one pass and skips the
//! rest without allocating. It also accepts *any* JSON: a value that is not
//! an authorizer event deserialises to an event that is denied, so the
//! runtime never reports a deserialisation error. The conformance test in
//! `tests/authorizer/handler.rs` checks it against `aws_lambda_events` on
//! the upstream fixtures.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use shared::json_key::{JsonKey, RestQuery};
use shared::signature::{CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// What the authorizer reads from an event. Deserialises from any JSON.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct AuthorizerEvent {
    /// `version`, when present.
    pub version: Option<String>,
    /// `type`, when present.
    pub kind: Option<String>,
    /// Whether `requestContext` is an object, as in every API Gateway event.
    pub has_request_context: bool,
    /// Whether `headers`, when present, is an object of strings without
    /// duplicates of the signature headers.
    pub headers_well_formed: bool,
    /// `pathParameters.tenant_id`.
    pub tenant_id: Option<String>,
    /// `pathParameters.source_id`: present on the source route only.
    pub source_id: Option<String>,
    /// The query string (a `token` source's secret travels there: never
    /// logged): an HTTP API's `rawQueryString`, or a REST API's
    /// `multiValueQueryStringParameters` encoded again.
    pub raw_query: Option<String>,
    /// `methodArn`: a REST API's event only, and what its policy allows.
    pub method_arn: Option<String>,
    /// `requestContext.requestId`.
    pub request_id: Option<String>,
    /// `X-FormBridge-Timestamp` (header names are case-insensitive).
    pub timestamp: Option<String>,
    /// `Content-Digest`.
    pub content_digest: Option<String>,
    /// `X-FormBridge-Signature`.
    pub signature: Option<String>,
}

/// Which kind of API sent an authorizer event, which says which answer it
/// expects and which tenants it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// An HTTP API, payload 2.0: a simple response. The shared path.
    Http,
    /// A REST API's REQUEST authorizer: an IAM policy. The isolated path.
    Rest,
}

impl AuthorizerEvent {
    /// The kind of API the event came from, or `None` when it is not a
    /// REQUEST authorizer event of either. A REST API's event has a
    /// `methodArn` and no `version`; an HTTP API's payload 1.0 event (a
    /// `version` of "1.0") is neither: it expects a policy for an HTTP
    /// API, a wiring this authorizer refuses rather than half-works.
    pub fn api(&self) -> Option<Api> {
        if !self.has_request_context
            || !self.headers_well_formed
            || self.kind.as_deref().is_some_and(|t| t != "REQUEST")
        {
            return None;
        }
        match (self.version.as_deref(), &self.method_arn) {
            (Some("2.0"), _) => Some(Api::Http),
            (Some(_), _) => None,
            (None, Some(_)) if self.kind.is_some() => Some(Api::Rest),
            (None, Some(_)) => None,
            (None, None) => Some(Api::Http),
        }
    }
}

impl fmt::Debug for AuthorizerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerEvent")
            .field("tenant_id", &self.tenant_id)
            .field("source_id", &self.source_id)
            .field("request_id", &self.request_id)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for AuthorizerEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EventVisitor)
    }
}

/// Implements `expecting` and `visit_*` for every JSON type but maps (and,
/// with `strings`, but strings too) as "not what we want": the value is
/// consumed and `$default` returned, never an error.
macro_rules! accept_anything_else {
    ($default:expr, strings) => {
        accept_anything_else!($default);
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($default)
        }
    };
    ($default:expr) => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($default)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($default)
        }
    };
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = AuthorizerEvent;

    accept_anything_else!(AuthorizerEvent::default(), strings);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut event = AuthorizerEvent {
            headers_well_formed: true,
            ..AuthorizerEvent::default()
        };
        while let Some(key) = map.next_key::<JsonKey<'de>>()? {
            match key.as_bytes() {
                b"version" => event.version = map.next_value::<Lenient>()?.0,
                b"type" => event.kind = map.next_value::<Lenient>()?.0,
                b"headers" => {
                    let headers = map.next_value::<Headers>()?;
                    event.headers_well_formed = headers.well_formed;
                    event.timestamp = headers.timestamp;
                    event.content_digest = headers.content_digest;
                    event.signature = headers.signature;
                }
                b"pathParameters" => {
                    let path = map.next_value::<PathParameters>()?;
                    event.tenant_id = path.tenant_id;
                    event.source_id = path.source_id;
                }
                b"rawQueryString" => event.raw_query = map.next_value::<Lenient>()?.0,
                b"multiValueQueryStringParameters" => {
                    let query = map.next_value::<RestQuery>()?.0;
                    event.raw_query = event.raw_query.take().or(query);
                }
                b"methodArn" => event.method_arn = map.next_value::<Lenient>()?.0,
                b"requestContext" => {
                    let context = map.next_value::<Field<RequestIdField>>()?;
                    event.has_request_context = context.is_object;
                    event.request_id = context.value;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(event)
    }
}

/// A string if the value is one, `None` (value consumed) otherwise.
struct Lenient(Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LenientVisitor;
        impl<'de> Visitor<'de> for LenientVisitor {
            type Value = Lenient;
            accept_anything_else!(Lenient(None));
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(LenientVisitor)
    }
}

/// The signature headers, found case-insensitively among all headers.
#[derive(Default)]
struct Headers {
    well_formed: bool,
    timestamp: Option<String>,
    content_digest: Option<String>,
    signature: Option<String>,
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            accept_anything_else!(Headers::default(), strings);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut h = Headers {
                    well_formed: true,
                    ..Headers::default()
                };
                while let Some(key) = map.next_key::<JsonKey<'de>>()? {
                    let slot = if key.is_ignore_case(TIMESTAMP_HEADER) {
                        &mut h.timestamp
                    } else if key.is_ignore_case(CONTENT_DIGEST_HEADER) {
                        &mut h.content_digest
                    } else if key.is_ignore_case(SIGNATURE_HEADER) {
                        &mut h.signature
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    let value = map.next_value::<Lenient>()?.0;
                    // API Gateway joins repeated headers into one value, so a
                    // second key or a non-string value is not its event.
                    if slot.is_some() || value.is_none() {
                        h.well_formed = false;
                    }
                    *slot = value;
                }
                Ok(h)
            }
        }
        d.deserialize_any(HeadersVisitor)
    }
}

/// `pathParameters`: the tenant's and, on the source route, the source's ID.
#[derive(Default)]
struct PathParameters {
    tenant_id: Option<String>,
    source_id: Option<String>,
}

impl<'de> Deserialize<'de> for PathParameters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PathVisitor;
        impl<'de> Visitor<'de> for PathVisitor {
            type Value = PathParameters;
            accept_anything_else!(PathParameters::default(), strings);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut path = PathParameters::default();
                while let Some(key) = map.next_key::<JsonKey<'de>>()? {
                    if key.is(crate::TENANT_PATH_PARAMETER) {
                        path.tenant_id = map.next_value::<Lenient>()?.0;
                    } else if key.is(crate::SOURCE_PATH_PARAMETER) {
                        path.source_id = map.next_value::<Lenient>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(path)
            }
        }
        d.deserialize_any(PathVisitor)
    }
}

/// Which string field of a nested object to pick out.
trait FieldName {
    const NAME: &'static str;
}

struct RequestIdField;
impl FieldName for RequestIdField {
    const NAME: &'static str = "requestId";
}

/// One string field of an object, and whether the value was an object.
struct Field<N> {
    is_object: bool,
    value: Option<String>,
    name: std::marker::PhantomData<N>,
}

impl<N> Default for Field<N> {
    fn default() -> Self {
        Self {
            is_object: false,
            value: None,
            name: std::marker::PhantomData,
        }
    }
}

impl<'de, N: FieldName> Deserialize<'de> for Field<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor<N>(std::marker::PhantomData<N>);
        impl<'de, N: FieldName> Visitor<'de> for FieldVisitor<N> {
            type Value = Field<N>;
            accept_anything_else!(Field::default(), strings);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut field = Field {
                    is_object: true,
                    ..Field::default()
                };
                while let Some(key) = map.next_key::<JsonKey<'de>>()? {
                    if key.is(N::NAME) {
                        field.value = map.next_value::<Lenient>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(field)
            }
        }
        d.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> AuthorizerEvent {
        serde_json::from_str(json).expect("any JSON deserialises")
    }

    #[test]
    fn picks_out_what_the_authorizer_needs() {
        let e = parse(
            r#"{"version":"2.0","type":"REQUEST","routeKey":"x","cookies":["a"],
                "headers":{"X-FormBridge-Timestamp":"1","content-digest":"d","x-formbridge-signature":"v1=ab","other":"o"},
                "pathParameters":{"tenant_id":"acme","x":{"y":[1]}},
                "requestContext":{"requestId":"r1","http":{"method":"POST"}},
                "stageVariables":null}"#,
        );
        assert_eq!(e.api(), Some(Api::Http));
        assert_eq!(e.tenant_id.as_deref(), Some("acme"));
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert_eq!(e.timestamp.as_deref(), Some("1"));
        assert_eq!(e.content_digest.as_deref(), Some("d"));
        assert_eq!(e.signature.as_deref(), Some("v1=ab"));
    }

    #[test]
    fn escaped_keys_and_values_are_decoded() {
        let e = parse(
            r#"{"requestContext":{},"headers":{"x-formbridge-\u0073ignature":"v1=\u0061b"}}"#,
        );
        assert_eq!(e.signature.as_deref(), Some("v1=ab"));
    }

    #[test]
    fn any_other_json_is_an_event_to_deny() {
        for json in [
            "null",
            "true",
            "1",
            "-1.5",
            r#""text""#,
            "[1,{}]",
            "{}",
            r#"{"requestContext":"x"}"#,
            r#"{"requestContext":{},"version":"1.0"}"#,
            r#"{"requestContext":{},"type":"TOKEN"}"#,
            r#"{"requestContext":{},"headers":{"x-formbridge-timestamp":5}}"#,
            r#"{"requestContext":{},"headers":{"x-formbridge-timestamp":"1","X-FormBridge-Timestamp":"2"}}"#,
            r#"{"requestContext":{},"headers":[]}"#,
            // REST: a methodArn and a type, and no version.
            r#"{"requestContext":{},"methodArn":"arn"}"#,
            r#"{"requestContext":{},"methodArn":"arn","type":"TOKEN"}"#,
            r#"{"requestContext":{},"methodArn":"arn","type":"REQUEST","version":"1.0"}"#,
        ] {
            assert_eq!(parse(json).api(), None, "{json}");
        }
        let odd = parse(r#"{"requestContext":{},"pathParameters":{"tenant_id":7},"version":{}}"#);
        assert_eq!(odd.tenant_id, None);
        assert_eq!(
            odd.api(),
            Some(Api::Http),
            "wrong-typed fields are just absent"
        );
    }

    #[test]
    fn debug_shows_no_signature_and_no_query() {
        let e = parse(
            r#"{"headers":{"x-formbridge-signature":"v1=secretsig"},"rawQueryString":"token=secrettoken"}"#,
        );
        assert_eq!(e.raw_query.as_deref(), Some("token=secrettoken"));
        let debug = format!("{e:?}");
        assert!(
            !debug.contains("secretsig") && !debug.contains("secrettoken"),
            "{debug}"
        );
    }

    #[test]
    fn the_source_route_has_a_source_id() {
        let e = parse(
            r#"{"version":"2.0","type":"REQUEST","requestContext":{},
                "pathParameters":{"source_id":"stripe-live","tenant_id":"acme"},
                "rawQueryString":"","headers":{"stripe-signature":"t=1,v1=00"}}"#,
        );
        assert_eq!(e.api(), Some(Api::Http));
        assert_eq!(e.tenant_id.as_deref(), Some("acme"));
        assert_eq!(e.source_id.as_deref(), Some("stripe-live"));
        assert_eq!(e.raw_query.as_deref(), Some(""));
    }

    #[test]
    fn a_rest_event_is_read_with_its_method_arn_and_query() {
        let e = parse(
            r#"{"type":"REQUEST","methodArn":"arn:aws:execute-api:eu-west-1:1:a/isolated/POST/v1/tenants/acme/sources/jf",
                "resource":"/v1/tenants/{tenant_id}/sources/{source_id}","httpMethod":"POST",
                "headers":{"X-FormBridge-Timestamp":"1"},
                "multiValueHeaders":{"X-FormBridge-Timestamp":["1"]},
                "queryStringParameters":{"token":"b"},
                "multiValueQueryStringParameters":{"token":["a b","b"],"n":[7],"x":["&="]},
                "pathParameters":{"tenant_id":"acme","source_id":"jf"},
                "requestContext":{"requestId":"r2","stage":"isolated"}}"#,
        );
        assert_eq!(e.api(), Some(Api::Rest));
        assert_eq!(
            e.method_arn.as_deref().map(|a| a.ends_with("/jf")),
            Some(true)
        );
        assert_eq!(e.raw_query.as_deref(), Some("token=a+b&token=b&x=%26%3D"));
        assert_eq!(e.timestamp.as_deref(), Some("1"));
        assert_eq!(e.source_id.as_deref(), Some("jf"));
        assert_eq!(e.request_id.as_deref(), Some("r2"));
        let none = parse(r#"{"multiValueQueryStringParameters":null}"#);
        assert_eq!(none.raw_query, None);
    }
}
