//! The event a submission becomes on the bus (docs/protocol.md, section 5).
//!
//! Every submission gets a [`SubmissionId`] from [`SubmissionIds`] and is
//! written as the `Detail` of one PutEvents entry, [`SubmissionDetail`]. The
//! payload is embedded as the exact JSON text that was received (numbers,
//! key order and escapes unchanged), never a re-encoding of a parsed tree.

use std::borrow::Cow;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::{ContextV7, Timestamp, Uuid};

use crate::{Routing, TenantId};

/// `DetailType` of every submission event.
pub const DETAIL_TYPE: &str = "form.submission";
/// `Source` of submission events unless `EVENT_SOURCE` says otherwise.
pub const DEFAULT_EVENT_SOURCE: &str = "form-bridge";
/// The `version` field of the detail.
pub const DETAIL_VERSION: &str = "1";

/// A submission's ID: a UUIDv7 in its lowercase hyphenated form. It starts
/// with the receive time in milliseconds, so IDs sort by time as strings.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubmissionId(Uuid);

impl SubmissionId {
    /// Parses the hyphenated form; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 36)
            .then(|| Uuid::try_parse(s).ok())
            .flatten()
            .filter(|u| u.get_version_num() == 7)
            .map(Self)
    }

    /// The receive time encoded in the ID, in milliseconds since the epoch.
    pub fn unix_millis(&self) -> u64 {
        let (secs, nanos) = self.0.get_timestamp().map_or((0, 0), |t| t.to_unix());
        secs * 1000 + u64::from(nanos) / 1_000_000
    }
}

impl fmt::Display for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SubmissionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for SubmissionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Uuid::encode_buffer();
        s.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
    }
}

/// Hands out submission IDs that increase strictly within the process, even
/// for many IDs in one millisecond or when the clock steps back: the
/// millisecond is followed by a counter that is reseeded at random each
/// millisecond and incremented within it; the remaining bits are random.
#[derive(Debug)]
pub struct SubmissionIds(Mutex<(ContextV7, Duration)>);

impl Default for SubmissionIds {
    fn default() -> Self {
        Self(Mutex::new((ContextV7::new(), Duration::ZERO)))
    }
}

impl SubmissionIds {
    /// A generator with its own ordering context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next ID, for a submission received at `now`.
    pub fn next(&self, now: SystemTime) -> SubmissionId {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (context, latest) = &mut *guard;
        // Never hand the context an earlier time than it has seen: it keeps
        // order within a millisecond, not across a step back.
        let since = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .max(*latest);
        *latest = since;
        SubmissionId(Uuid::new_v7(Timestamp::from_unix(
            &*context,
            since.as_secs(),
            since.subsec_nanos(),
        )))
    }
}

/// The longest submission ID a consumer accepts.
pub const MAX_SUBMISSION_ID_LEN: usize = 128;

/// Whether `id` is a submission ID as consumers must accept it
/// (docs/protocol.md, section 5): opaque, 1 to 128 characters from
/// `[A-Za-z0-9._:-]`. Form-Bridge emits UUIDv7 strings, but nothing may
/// depend on that.
pub fn valid_submission_id(id: &str) -> bool {
    (1..=MAX_SUBMISSION_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Where a submission that came through a source route came from: the
/// detail's `source` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionSource<'a> {
    /// The source's ID in the tenant's record.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Its provider's name.
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    /// The provider's event or delivery ID, when it gave one.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Cow<'a, str>>,
    /// The event's type, when the provider names it in a header rather
    /// than the body (GitHub `X-GitHub-Event`, Shopify `X-Shopify-Topic`).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<Cow<'a, str>>,
}

/// `received_at`: RFC 3339 in UTC with milliseconds, as in
/// `2026-01-01T00:00:00.000Z`.
pub fn received_at(now: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from(now)
        .format(format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// The `Detail` of a submission event, field for field as in
/// docs/protocol.md, section 5.
/// Serialising writes the documented field order; deserialising (the
/// connector's side) borrows the payload's JSON text.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmissionDetail<'a> {
    /// Always [`DETAIL_VERSION`].
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    /// The submission's ID, also the delivery's `webhook-id`.
    #[serde(borrow)]
    pub submission_id: Cow<'a, str>,
    /// The authenticated tenant.
    pub tenant_id: TenantId,
    /// The tenant's routing when the submission was received.
    pub routing: Routing,
    /// See [`received_at`].
    #[serde(borrow)]
    pub received_at: Cow<'a, str>,
    /// The request's media type, without parameters.
    #[serde(borrow)]
    pub content_type: Cow<'a, str>,
    /// The submission: a JSON object; for a source, the provider's body
    /// as JSON (an object or an array).
    #[serde(borrow)]
    pub payload: &'a RawValue,
    /// Present only for submissions that came through a source route.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SubmissionSource<'a>>,
}

impl SubmissionDetail<'_> {
    /// The detail as JSON text. Every field is a plain string or validated
    /// JSON, so this cannot fail in practice; the fallback keeps it total.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn ids_increase_within_one_millisecond_and_when_the_clock_steps_back() {
        let ids = SubmissionIds::new();
        let t = 1_767_225_600_000;
        let mut previous = ids.next(at(t));
        let steps_back = [
            at(t - 5_000),
            at(t - 500),
            at(t + 20),
            at(t - 1_100),
            at(t + 11),
        ];
        for now in (0..10_000).map(|i| at(t + i / 1000)).chain(steps_back) {
            let id = ids.next(now);
            assert!(id > previous, "{id} after {previous}");
            assert!(id.to_string() > previous.to_string(), "sorts as text");
            previous = id;
        }
    }

    #[test]
    fn ids_carry_their_time_and_round_trip() {
        let ids = SubmissionIds::new();
        let id = ids.next(at(1_767_225_600_123));
        assert_eq!(id.unix_millis(), 1_767_225_600_123);
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert!(text.starts_with("019b76da-a87b-7"), "{text}");
        assert_eq!(SubmissionId::parse(&text), Some(id));
        assert_eq!(
            serde_json::to_string(&id).expect("json"),
            format!("\"{text}\"")
        );
        assert_eq!(SubmissionId::parse("not-an-id"), None);
        let v4ish = "6f1c2a9e-0b3d-4e8f-9a7b-1c2d3e4f5a6b";
        assert_eq!(SubmissionId::parse(v4ish), None);
    }

    #[test]
    fn received_at_is_utc_with_milliseconds() {
        assert_eq!(
            received_at(at(1_767_225_600_007)),
            "2026-01-01T00:00:00.007Z"
        );
    }

    #[test]
    fn detail_keeps_the_contract_field_order_and_the_payload_text() {
        let payload =
            RawValue::from_string(r#"{"n": 12345678901234567890123, "b":"\u00e9"}"#.into())
                .expect("json");
        let tenant = TenantId::parse("acme").expect("valid");
        let detail = SubmissionDetail {
            version: DETAIL_VERSION.into(),
            submission_id: "019b7751-0000-7000-8000-000000000000".into(),
            tenant_id: tenant,
            routing: Routing::Shared,
            received_at: "2026-01-01T00:00:00.000Z".into(),
            content_type: "application/json".into(),
            payload: &payload,
            source: None,
        };
        let json = detail.to_json();
        assert_eq!(
            json,
            r#"{"version":"1","submission_id":"019b7751-0000-7000-8000-000000000000","tenant_id":"acme","routing":"shared","received_at":"2026-01-01T00:00:00.000Z","content_type":"application/json","payload":{"n": 12345678901234567890123, "b":"\u00e9"}}"#
        );
        let back: SubmissionDetail<'_> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.payload.get(), payload.get());
        assert_eq!(back.tenant_id.as_str(), "acme");
        assert_eq!(back.source, None);
    }

    #[test]
    fn a_source_comes_last_and_its_event_id_only_when_given() {
        let payload = RawValue::from_string(r#"[{"a":1}]"#.into()).expect("json");
        let mut detail = SubmissionDetail {
            version: DETAIL_VERSION.into(),
            submission_id: "019b7751-0000-7000-8000-000000000000".into(),
            tenant_id: TenantId::parse("acme").expect("valid"),
            routing: Routing::Shared,
            received_at: "2026-01-01T00:00:00.000Z".into(),
            content_type: "application/json".into(),
            payload: &payload,
            source: Some(SubmissionSource {
                id: "stripe-live".into(),
                provider: "stripe".into(),
                event_id: Some("evt_1".into()),
                event_type: None,
            }),
        };
        assert!(detail.to_json().ends_with(
            r#""payload":[{"a":1}],"source":{"id":"stripe-live","provider":"stripe","event_id":"evt_1"}}"#
        ));
        if let Some(source) = detail.source.as_mut() {
            source.event_id = None;
        }
        let json = detail.to_json();
        assert!(
            json.ends_with(r#""source":{"id":"stripe-live","provider":"stripe"}}"#),
            "{json}"
        );
        let back: SubmissionDetail<'_> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.source, detail.source);
    }

    #[test]
    fn submission_ids_are_opaque_within_the_grammar() {
        for ok in [
            "019b7751-0000-7000-8000-000000000000",
            "a",
            "evt_1.2:3-X",
            &"x".repeat(128),
        ] {
            assert!(valid_submission_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129), "a\n"] {
            assert!(!valid_submission_id(bad), "{bad:?}");
        }
    }
}
