//! The parts of an HTTP API authorizer event the authorizer reads.
//!
//! The event is a payload 2.0 REQUEST authorizer event
//! (`aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request`).
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
use shared::json_key::JsonKey;
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
    /// `rawQueryString` (a `token` source's secret travels there: never
    /// logged).
    pub raw_query: Option<String>,
    /// `requestContext.requestId`.
    pub request_id: Option<String>,
    /// `X-FormBridge-Timestamp` (header names are case-insensitive).
    pub timestamp: Option<String>,
    /// `Content-Digest`.
    pub content_digest: Option<String>,
    /// `X-FormBridge-Signature`.
    pub signature: Option<String>,
}

impl AuthorizerEvent {
    /// Whether this is a payload 2.0 REQUEST authorizer event. Payload 1.0
    /// expects an IAM policy back, so an authorizer wired to it must fail
    /// closed rather than half-work.
    pub fn is_v2_request(&self) -> bool {
        self.has_request_context
            && self.headers_well_formed
            && self.version.as_deref().is_none_or(|v| v == "2.0")
            && self.kind.as_deref().is_none_or(|t| t == "REQUEST")
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
        assert!(e.is_v2_request());
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
        ] {
            assert!(!parse(json).is_v2_request(), "{json}");
        }
        let odd = parse(r#"{"requestContext":{},"pathParameters":{"tenant_id":7},"version":{}}"#);
        assert_eq!(odd.tenant_id, None);
        assert!(odd.is_v2_request(), "wrong-typed fields are just absent");
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
        assert!(e.is_v2_request());
        assert_eq!(e.tenant_id.as_deref(), Some("acme"));
        assert_eq!(e.source_id.as_deref(), Some("stripe-live"));
        assert_eq!(e.raw_query.as_deref(), Some(""));
    }
}
