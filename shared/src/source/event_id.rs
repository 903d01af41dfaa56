//! Event IDs that providers put in the body, read from its JSON text in one
//! pass without building a tree (the unread parts are skipped, not kept).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::json_key::JsonKey;

/// Where a provider keeps its event ID in the body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyId {
    /// Nowhere (the ID is a header, or there is none).
    None,
    /// A string or integer at one of these paths of object keys; the first
    /// path found wins.
    Field(&'static [&'static [&'static str]]),
    /// HubSpot: a batch of events whose `eventId` alone is not unique and
    /// whose `attemptNumber` changes on retry. The ID is `sha256:` and the
    /// hex digest of the sorted `portalId`, `subscriptionId`, `eventId`,
    /// `occurredAt` of each event, so a retried batch has the same ID.
    HubSpotBatch,
}

impl BodyId {
    /// The ID in `json`, or `None` when absent, not a string or integer,
    /// or `json` is not JSON.
    pub(crate) fn find(self, json: &str) -> Option<String> {
        let mut de = serde_json::Deserializer::from_str(json);
        match self {
            Self::None => None,
            Self::Field(paths) => Find { paths, depth: 0 }.deserialize(&mut de).ok()?,
            Self::HubSpotBatch => {
                let mut events = Batch.deserialize(&mut de).ok()?;
                if events.is_empty() {
                    return None;
                }
                events.sort_unstable();
                let mut digest = Sha256::new();
                for event in &events {
                    for field in event {
                        digest.update(field.as_bytes());
                        digest.update(b"\x1f");
                    }
                    digest.update(b"\x1e");
                }
                Some(format!("sha256:{}", hex::encode(digest.finalize())))
            }
        }
    }
}

/// Looks for the first of `paths` below the current value, `depth` keys in.
struct Find {
    paths: &'static [&'static [&'static str]],
    depth: usize,
}

/// The visitor methods for every shape but an object: nothing is found
/// there (arrays are skipped whole).
macro_rules! none_for_other_shapes {
    () => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
}

impl<'de> DeserializeSeed<'de> for Find {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // (index of the path found, its value): a better-ranked path found
        // later replaces it; the same path again (a duplicate key) too, as
        // most JSON parsers keep the last.
        let mut best: Option<(usize, String)> = None;
        while let Some(key) = map.next_key::<JsonKey<'de>>()? {
            let hit = self
                .paths
                .iter()
                .position(|path| path.get(self.depth).is_some_and(|name| key.is(name)));
            let Some(index) = hit else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let path = &self.paths[index..=index];
            let found = if path[0].len() == self.depth + 1 {
                map.next_value_seed(Scalar)?
            } else {
                map.next_value_seed(Find {
                    paths: path,
                    depth: self.depth + 1,
                })?
            };
            if let Some(value) = found
                && best.as_ref().is_none_or(|(i, _)| index <= *i)
            {
                best = Some((index, value));
            }
        }
        Ok(best.map(|(_, value)| value))
    }

    none_for_other_shapes!();
}

/// A string or an integer as text; anything else is `None` (and skipped).
struct Scalar;

impl<'de> DeserializeSeed<'de> for Scalar {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scalar {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

const HUBSPOT_FIELDS: [&str; 4] = ["portalId", "subscriptionId", "eventId", "occurredAt"];

/// A HubSpot batch (an array of events, or one event object): each event's
/// four identity fields, events missing any of them left out.
struct Batch;

impl<'de> DeserializeSeed<'de> for Batch {
    type Value = Vec<[String; 4]>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Batch {
    type Value = Vec<[String; 4]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of HubSpot events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        while let Some(event) = seq.next_element_seed(Event)? {
            events.extend(event);
        }
        Ok(events)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(Event.visit_map(map)?.into_iter().collect())
    }
}

/// One HubSpot event's identity fields, or `None` if any is missing.
struct Event;

impl<'de> DeserializeSeed<'de> for Event {
    type Value = Option<[String; 4]>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Event {
    type Value = Option<[String; 4]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a HubSpot event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: [Option<String>; 4] = Default::default();
        while let Some(key) = map.next_key::<JsonKey<'de>>()? {
            match HUBSPOT_FIELDS.iter().position(|name| key.is(name)) {
                Some(i) => fields[i] = map.next_value_seed(Scalar)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let [Some(a), Some(b), Some(c), Some(d)] = fields else {
            return Ok(None);
        };
        Ok(Some([a, b, c, d]))
    }

    none_for_other_shapes!();
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBFLOW: BodyId = BodyId::Field(&[&["payload", "id"]]);
    const ALTERNATIVES: BodyId = BodyId::Field(&[&["a"], &["b"]]);

    #[test]
    fn fields_at_a_path() {
        let find = |json: &str| WEBFLOW.find(json);
        assert_eq!(find(r#"{"payload":{"id":"x"}}"#).as_deref(), Some("x"));
        assert_eq!(
            find(r#"{"id":"no","payload":{"name":"f","id":42,"data":{"id":"deep"}}}"#).as_deref(),
            Some("42")
        );
        assert_eq!(
            find(r#"{"payload":{"id":"a\u0062c"}}"#).as_deref(),
            Some("abc")
        );
        for none in [
            r#"{"payload":{"id":1.5}}"#,
            r#"{"payload":{"id":null}}"#,
            r#"{"payload":{"id":{"x":1}}}"#,
            r#"{"payload":"id"}"#,
            r#"{"id":"x"}"#,
            r#"[{"payload":{"id":"x"}}]"#,
            r#"{"payload":{"id":"x"}"#,
            "",
            "not json",
        ] {
            assert_eq!(find(none), None, "{none}");
        }
    }

    #[test]
    fn the_first_ranked_alternative_wins_whatever_the_order() {
        assert_eq!(
            ALTERNATIVES.find(r#"{"b":"2","a":"1"}"#).as_deref(),
            Some("1")
        );
        assert_eq!(
            ALTERNATIVES.find(r#"{"a":"1","b":"2"}"#).as_deref(),
            Some("1")
        );
        assert_eq!(ALTERNATIVES.find(r#"{"b":"2"}"#).as_deref(), Some("2"));
        assert_eq!(
            ALTERNATIVES.find(r#"{"a":"1","a":"3"}"#).as_deref(),
            Some("3")
        );
    }

    #[test]
    fn hubspot_batches_are_identified_without_attempt_numbers() {
        let id = |json: &str| BodyId::HubSpotBatch.find(json);
        let first = id(r#"[
            {"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"attemptNumber":0},
            {"eventId":2,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600001,"attemptNumber":0}
        ]"#)
        .expect("id");
        assert!(first.starts_with("sha256:") && first.len() == 71);
        let retried_reordered = id(r#"[
            {"attemptNumber":1,"occurredAt":1564113600001,"portalId":62515,"subscriptionId":12345,"eventId":2},
            {"attemptNumber":1,"occurredAt":1564113600000,"portalId":62515,"subscriptionId":12345,"eventId":1}
        ]"#);
        assert_eq!(retried_reordered.as_deref(), Some(first.as_str()));
        let other = id(
            r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600002}]"#,
        );
        assert!(other.is_some() && other.as_deref() != Some(first.as_str()));
        let single = id(r#"{"eventId":1,"subscriptionId":1,"portalId":1,"occurredAt":1}"#);
        assert!(single.is_some());
        for none in ["[]", r#"[{"eventId":1}]"#, "[1,2]", r#""x""#, "not json"] {
            assert_eq!(id(none), None, "{none}");
        }
    }
}
