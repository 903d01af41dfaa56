//! [`JsonKey`]: an object key read without copying, for the lean event
//! readers in the authorizer and ingest.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

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
