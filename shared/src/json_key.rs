//! [`JsonKey`]: an object key read without copying, for the lean event
//! readers in the authorizer and ingest; [`RestQuery`]: a REST API event's
//! query parameters as a query string, for both.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON object key as bytes (escapes decoded), borrowed when the text has
/// none. Event keys are only compared with ASCII names, so they are read as
/// bytes: serde_json then neither copies them nor validates their UTF-8,
/// which was a sixth of the authorizer's instructions per request.
pub struct JsonKey<'de>(Cow<'de, [u8]>);

impl JsonKey<'_> {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the key is exactly `name`.
    pub fn is(&self, name: &str) -> bool {
        *self.0 == *name.as_bytes()
    }

    /// Whether the key is `name` in any ASCII case (header names).
    pub fn is_ignore_case(&self, name: &str) -> bool {
        self.0.eq_ignore_ascii_case(name.as_bytes())
    }
}

impl<'de> Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = JsonKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(JsonKey(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(JsonKey(Cow::Owned(v.to_owned())))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonKey(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonKey(Cow::Owned(v.as_bytes().to_owned())))
            }
        }
        d.deserialize_bytes(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_with_and_without_escapes() {
        let key: JsonKey<'_> = serde_json::from_str(r#""Content-Type""#).expect("key");
        assert!(matches!(key.0, Cow::Borrowed(_)));
        assert!(key.is_ignore_case("content-type") && !key.is("content-type"));
        let escaped: JsonKey<'_> = serde_json::from_str(r#""content\u002dtype""#).expect("key");
        assert!(escaped.is("content-type"));
    }
}

/// A REST API event's `multiValueQueryStringParameters` (names and values
/// decoded by API Gateway) encoded again as a query string, every value of
/// every name in the event's order: what an HTTP API's `rawQueryString`
/// holds, up to the encoding. Reads any JSON without failing: values that
/// are not strings are left out; `None` when no value is left.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestQuery(pub Option<String>);

impl<'de> Deserialize<'de> for RestQuery {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct QueryVisitor;
        impl<'de> Visitor<'de> for QueryVisitor {
            type Value = RestQuery;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("query parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RestQuery, A::Error> {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                let mut any = false;
                while let Some(name) = map.next_key::<String>()? {
                    let values = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::Array(values) => values,
                        one => vec![one],
                    };
                    for value in values.iter().filter_map(serde_json::Value::as_str) {
                        query.append_pair(&name, value);
                        any = true;
                    }
                }
                Ok(RestQuery(any.then(|| query.finish())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RestQuery, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RestQuery(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<RestQuery, E> {
                Ok(RestQuery(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<RestQuery, D2::Error> {
                d.deserialize_any(self)
            }
        }
        d.deserialize_any(QueryVisitor)
    }
}

#[cfg(test)]
mod rest_query_tests {
    use super::RestQuery;

    fn read(json: &str) -> Option<String> {
        serde_json::from_str::<RestQuery>(json).expect("any JSON").0
    }

    #[test]
    fn every_value_of_every_name_is_encoded_in_order() {
        assert_eq!(
            read(r#"{"token":["a b","b"],"n":[7],"x":["&="],"y":"one"}"#).as_deref(),
            Some("token=a+b&token=b&x=%26%3D&y=one")
        );
        for nothing in ["null", "{}", r#"{"n":[1]}"#, "[1]", r#""q""#, "3"] {
            assert_eq!(read(nothing), None, "{nothing}");
        }
    }
}
