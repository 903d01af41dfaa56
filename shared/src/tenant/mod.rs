//! The tenant record (docs/protocol.md, section 4) and its validation;
//! [`document`] reads, creates, edits and redacts records as stored.
//!
//! Every field is validated by hand from the parsed JSON, and every error
//! message is built from field names and rules only. serde's own messages
//! quote the offending value, and a secret pasted into the wrong field
//! would then reach a log line; here it cannot.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;
use crate::signature::SigningKey;
use crate::source::{Provider, SourceId, SourceKeys, UnknownProvider};
use crate::tenant_id::TenantId;

pub mod document;

pub use document::{DocumentError, NewTenant, TenantDocument};

/// Shortest accepted signing secret, in characters.
pub const MIN_SIGNING_SECRET_CHARS: usize = 32;
/// Most signing secrets one tenant may have active at once (rotation needs 2).
pub const MAX_SIGNING_SECRETS: usize = 5;
/// Highest accepted `rate_limit.requests_per_second` and `burst`: far above
/// any API Gateway account limit, and low enough that the limiter's
/// nanosecond arithmetic stays exact.
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Longest accepted destination timeout.
pub const MAX_DESTINATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether a tenant may submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Submissions are accepted.
    Active,
    /// Every submission is denied.
    Suspended,
}

impl TenantStatus {
    /// Reads the wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }

    /// The wire name: `active` or `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which delivery path a tenant's events take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// The shared connector fleet (the default).
    #[default]
    Shared,
    /// A connector dedicated to this tenant.
    Dedicated,
}

impl Routing {
    /// Reads the wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shared" => Some(Self::Shared),
            "dedicated" => Some(Self::Dedicated),
            _ => None,
        }
    }

    /// The wire name: `shared` or `dedicated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }
}

impl fmt::Display for Routing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which API, and so which execution environments, take a tenant's
/// requests (docs/protocol.md, section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// The shared HTTP API and ingest function (the default).
    #[default]
    Shared,
    /// The isolated REST API, whose ingest function runs each tenant in
    /// execution environments of its own (Lambda tenant isolation mode).
    PerTenant,
}

impl Isolation {
    /// Reads the wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shared" => Some(Self::Shared),
            "per_tenant" => Some(Self::PerTenant),
            _ => None,
        }
    }

    /// The wire name: `shared` or `per_tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::PerTenant => "per_tenant",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's own request rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: NonZeroU32,
    /// Requests that may arrive at once after a quiet period.
    pub burst: NonZeroU32,
}

/// A Standard Webhooks signing secret: `whsec_` followed by the standard
/// base64 of 24 to 64 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Box<[u8]>,
}

impl WebhookSecret {
    /// Parses the `whsec_...` form.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let b64 = s
            .strip_prefix("whsec_")
            .ok_or("must start with \"whsec_\"")?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "must be standard base64 after \"whsec_\"")?;
        if !(24..=64).contains(&key.len()) {
            return Err("must encode 24 to 64 bytes");
        }
        Ok(Self { key: key.into() })
    }

    /// The decoded key bytes, for signing deliveries.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where and how a tenant's events are delivered.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Endpoint URL (`https://`, or `http://` where private destinations are
    /// allowed; the connector enforces that at delivery time).
    pub url: String,
    /// Key for the `webhook-signature` header.
    pub secret: WebhookSecret,
    /// Extra headers sent with every delivery; values may be credentials.
    pub headers: BTreeMap<String, Secret>,
    /// Per-destination delivery timeout, overriding `DELIVERY_TIMEOUT_MS`.
    pub timeout: Option<Duration>,
}

/// A validated tenant record.
#[derive(Debug, Clone)]
pub struct TenantRecord {
    /// The tenant this record belongs to.
    pub tenant_id: TenantId,
    /// Whether submissions are accepted.
    pub status: TenantStatus,
    /// Active signing keys, current first; never empty.
    pub signing_keys: Vec<SigningKey>,
    /// Delivery path.
    pub routing: Routing,
    /// The API its requests must come through.
    pub isolation: Isolation,
    /// Per-tenant rate limit; `None` means not limited by Form-Bridge.
    pub rate_limit: Option<RateLimit>,
    /// Delivery endpoint, if the tenant has one.
    pub destination: Option<Destination>,
    /// Where hosted form builders and providers post for this tenant, by
    /// source ID, each with its provider's keys ready to verify.
    pub sources: BTreeMap<SourceId, SourceKeys>,
}

/// Why a tenant record was rejected. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant record: {0}")]
pub struct RecordError(String);

impl RecordError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    /// The record's `tenant_id` is not the tenant it was stored for.
    #[cfg(any(test, feature = "aws"))]
    pub(crate) fn mismatched_tenant() -> Self {
        Self::new("`tenant_id` does not match the tenant it is stored for")
    }

    /// The secret holds binary data instead of a JSON `SecretString`.
    #[cfg(feature = "aws")]
    pub(crate) fn not_a_string_secret() -> Self {
        Self::new("the secret has no SecretString (binary secrets are not tenant records)")
    }
}

impl TenantRecord {
    /// Parses and validates a record from its JSON text (a Secrets Manager
    /// `SecretString`).
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        Self::from_value(parse_json(text)?)
    }

    /// Validates a record already parsed as JSON. Unknown fields are
    /// ignored; a field set to `null` counts as absent.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        let record = value
            .as_object()
            .ok_or_else(|| RecordError::new("must be a JSON object"))?;
        let tenant_id = required(record, "tenant_id")?
            .as_str()
            .ok_or_else(|| RecordError::new("`tenant_id` must be a string"))?;
        let tenant_id = TenantId::parse(tenant_id)
            .map_err(|e| RecordError::new(format!("`tenant_id`: {e}")))?;
        let status = required(record, "status")?
            .as_str()
            .and_then(TenantStatus::parse)
            .ok_or_else(|| RecordError::new(r#"`status` must be "active" or "suspended""#))?;
        let signing_keys = parse_signing_secrets(required(record, "signing_secrets")?)?;
        let routing = match optional(record, "routing") {
            None => Routing::default(),
            Some(value) => value
                .as_str()
                .and_then(Routing::parse)
                .ok_or_else(|| RecordError::new(r#"`routing` must be "shared" or "dedicated""#))?,
        };
        let isolation = match optional(record, "isolation") {
            None => Isolation::default(),
            Some(value) => value.as_str().and_then(Isolation::parse).ok_or_else(|| {
                RecordError::new(r#"`isolation` must be "shared" or "per_tenant""#)
            })?,
        };
        let rate_limit = optional(record, "rate_limit")
            .map(parse_rate_limit)
            .transpose()?;
        let destination = optional(record, "destination")
            .map(parse_destination)
            .transpose()?;
        let sources = optional(record, "sources")
            .map(parse_sources)
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            tenant_id,
            status,
            signing_keys,
            routing,
            isolation,
            rate_limit,
            destination,
            sources,
        })
    }
}

/// A record's JSON text parsed; the error names a position, never content
/// (serde_json's syntax errors do not quote the text).
fn parse_json(text: &str) -> Result<Value, RecordError> {
    serde_json::from_str(text).map_err(|e| {
        RecordError::new(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

type Object = serde_json::Map<String, Value>;

fn optional<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn required<'a>(object: &'a Object, key: &str) -> Result<&'a Value, RecordError> {
    optional(object, key).ok_or_else(|| RecordError::new(format!("missing field `{key}`")))
}

/// A whole number in `1..=max`, or an error naming `field` (never the value).
fn bounded(value: &Value, field: &str, max: u64) -> Result<u64, RecordError> {
    value
        .as_u64()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            RecordError::new(format!("`{field}` must be a whole number from 1 to {max}"))
        })
}

/// The most sources a tenant may have.
pub const MAX_SOURCES: usize = 50;
/// The most secrets one source may hold (current, and those still valid
/// during a rotation).
pub const MAX_SOURCE_SECRETS: usize = 4;

/// `sources`: `{"<source_id>": {"provider": "...", "secrets": ["...", ...]}}`.
/// Errors name the source and the rule, never a secret.
fn parse_sources(value: &Value) -> Result<BTreeMap<SourceId, SourceKeys>, RecordError> {
    let object = value
        .as_object()
        .ok_or_else(|| RecordError::new("`sources` must be an object of sources by ID"))?;
    if object.len() > MAX_SOURCES {
        return Err(RecordError::new(format!(
            "`sources` holds more than {MAX_SOURCES} sources"
        )));
    }
    object
        .iter()
        .map(|(id, source)| {
            // An invalid ID is not quoted: it could be anything pasted there.
            let id = SourceId::parse(id).map_err(|_| {
                RecordError::new(
                    "`sources` has an invalid source ID (1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit)",
                )
            })?;
            let field = |name: &str| format!("`sources.{id}.{name}`");
            let source = source
                .as_object()
                .ok_or_else(|| RecordError::new(format!("`sources.{id}` must be an object")))?;
            let provider = required(source, "provider")
                .map_err(|_| RecordError::new(format!("missing field {}", field("provider"))))?
                .as_str()
                .ok_or(UnknownProvider)
                .and_then(Provider::parse)
                .map_err(|e| RecordError::new(format!("{}: {e}", field("provider"))))?;
            let secrets = match required(source, "secrets") {
                Ok(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_SOURCE_SECRETS => list,
                _ => {
                    return Err(RecordError::new(format!(
                        "{} must be an array of 1 to {MAX_SOURCE_SECRETS} strings",
                        field("secrets")
                    )));
                }
            };
            let secrets = secrets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().map(Secret::new).ok_or_else(|| {
                        RecordError::new(format!("{}[{i}] must be a string", field("secrets")))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let keys = SourceKeys::new(provider, &secrets)
                .map_err(|e| RecordError::new(format!("`sources.{id}`: {e}")))?;
            Ok((id, keys))
        })
        .collect()
}

fn parse_rate_limit(value: &Value) -> Result<RateLimit, RecordError> {
    let object = value
        .as_object()
        .ok_or_else(|| RecordError::new("`rate_limit` must be an object"))?;
    let max = u64::from(MAX_RATE_LIMIT);
    let rps = bounded(
        required(object, "requests_per_second")
            .map_err(|_| RecordError::new("missing field `rate_limit.requests_per_second`"))?,
        "rate_limit.requests_per_second",
        max,
    )?;
    let burst = optional(object, "burst")
        .map(|b| bounded(b, "rate_limit.burst", max))
        .transpose()?
        .unwrap_or(rps);
    // Both are in 1..=MAX_RATE_LIMIT, so they fit and are non-zero.
    let nonzero = |n: u64| u32::try_from(n).ok().and_then(NonZeroU32::new);
    match (nonzero(rps), nonzero(burst)) {
        (Some(requests_per_second), Some(burst)) => Ok(RateLimit {
            requests_per_second,
            burst,
        }),
        _ => Err(RecordError::new("`rate_limit` values are out of range")),
    }
}

fn parse_signing_secrets(value: &Value) -> Result<Vec<SigningKey>, RecordError> {
    let list = match value {
        Value::Null => return Err(RecordError::new("missing field `signing_secrets`")),
        Value::Array(list) => list,
        _ => {
            return Err(RecordError::new(
                "`signing_secrets` must be an array of strings",
            ));
        }
    };
    if list.is_empty() {
        return Err(RecordError::new("`signing_secrets` must not be empty"));
    }
    if list.len() > MAX_SIGNING_SECRETS {
        return Err(RecordError::new(format!(
            "`signing_secrets` holds more than {MAX_SIGNING_SECRETS} secrets"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let s = item.as_str().ok_or_else(|| {
                RecordError::new(format!("`signing_secrets[{i}]` must be a string"))
            })?;
            if s.chars().count() < MIN_SIGNING_SECRET_CHARS {
                return Err(RecordError::new(format!(
                    "`signing_secrets[{i}]` is shorter than {MIN_SIGNING_SECRET_CHARS} characters"
                )));
            }
            Ok(SigningKey::new(&Secret::new(s)))
        })
        .collect()
}

fn parse_destination(value: &Value) -> Result<Destination, RecordError> {
    let object = value
        .as_object()
        .ok_or_else(|| RecordError::new("`destination` must be an object"))?;
    let url = required(object, "url")
        .map_err(|_| RecordError::new("missing field `destination.url`"))?
        .as_str()
        .unwrap_or_default();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if !matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/')) || url.len() > 2048 {
        return Err(RecordError::new(
            "`destination.url` must be an absolute http(s) URL of at most 2048 bytes",
        ));
    }
    let secret = match optional(object, "secret") {
        Some(Value::String(s)) => WebhookSecret::parse(s)
            .map_err(|why| RecordError::new(format!("`destination.secret` {why}")))?,
        None => return Err(RecordError::new("missing field `destination.secret`")),
        Some(_) => return Err(RecordError::new("`destination.secret` must be a string")),
    };
    let headers = parse_headers(optional(object, "headers"))?;
    let max_ms = u64::try_from(MAX_DESTINATION_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
    let timeout = optional(object, "timeout_ms")
        .map(|v| bounded(v, "destination.timeout_ms", max_ms).map(Duration::from_millis))
        .transpose()?;
    Ok(Destination {
        url: url.to_owned(),
        secret,
        headers,
        timeout,
    })
}

/// Header names a tenant may not set (compared in lowercase): they frame
/// the request, or the connector sets them for every delivery (the
/// Standard Webhooks headers, `content-type`, `user-agent`).
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

fn parse_headers(value: Option<&Value>) -> Result<BTreeMap<String, Secret>, RecordError> {
    let map = match value {
        None => return Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(RecordError::new("`destination.headers` must be an object")),
    };
    let mut headers = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (name, value) in map {
        let is_token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token {
            return Err(RecordError::new(
                "`destination.headers` has a name that is not a valid HTTP header name",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(RecordError::new(format!(
                "`destination.headers` may not set `{name}`"
            )));
        }
        if !seen.insert(lower) {
            return Err(RecordError::new(format!(
                "`destination.headers` sets `{name}` twice (names are case-insensitive)"
            )));
        }
        let value = value.as_str().ok_or_else(|| {
            RecordError::new(format!("`destination.headers.{name}` must be a string"))
        })?;
        if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            return Err(RecordError::new(format!(
                "`destination.headers.{name}` must be printable ASCII"
            )));
        }
        headers.insert(name.clone(), Secret::new(value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET_A: &str = "sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SECRET_B: &str = "sk_test_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn full() -> Value {
        json!({
            "tenant_id": "acme",
            "status": "active",
            "signing_secrets": [SECRET_A, SECRET_B],
            "routing": "dedicated",
            "rate_limit": {"requests_per_second": 100, "burst": 200},
            "destination": {
                "url": "https://hooks.acme.example/forms",
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "headers": {"Authorization": "Bearer topsecret"},
                "timeout_ms": 5000
            },
            "future_field": {"ignored": true}
        })
    }

    fn error_of(v: Value) -> String {
        TenantRecord::from_value(v)
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn parses_the_contract_example() {
        let r = TenantRecord::from_value(full()).expect("valid");
        assert_eq!(r.tenant_id.as_str(), "acme");
        assert_eq!(r.status, TenantStatus::Active);
        assert_eq!(r.signing_keys.len(), 2);
        assert_eq!(r.routing, Routing::Dedicated);
        let rl = r.rate_limit.expect("rate limit");
        assert_eq!((rl.requests_per_second.get(), rl.burst.get()), (100, 200));
        let d = r.destination.expect("destination");
        assert_eq!(d.timeout, Some(Duration::from_millis(5000)));
        assert_eq!(d.secret.key().len(), 24);
        assert_eq!(d.headers["Authorization"].expose(), "Bearer topsecret");
    }

    #[test]
    fn optional_fields_take_their_defaults() {
        let r = TenantRecord::from_json(&format!(
            r#"{{"tenant_id":"a","status":"suspended","signing_secrets":["{SECRET_A}"]}}"#
        ))
        .expect("valid");
        assert_eq!(r.routing, Routing::Shared);
        assert_eq!(r.isolation, Isolation::Shared);
        assert_eq!(r.status, TenantStatus::Suspended);
        assert!(r.rate_limit.is_none() && r.destination.is_none());
    }

    #[test]
    fn sources_are_read_with_their_providers_keys_and_never_print_a_secret() {
        let mut v = full();
        let token = "t".repeat(40);
        v["sources"] = json!({
            "typeform-main": {"provider": "typeform", "secrets": ["tf-secret-new", "tf-secret-old"]},
            "jotform-contact": {"provider": "token", "secrets": [token]},
        });
        let record = TenantRecord::from_value(v).expect("valid");
        let providers: Vec<(&str, &str)> = record
            .sources
            .iter()
            .map(|(id, keys)| (id.as_str(), keys.provider().as_str()))
            .collect();
        assert_eq!(
            providers,
            [("jotform-contact", "token"), ("typeform-main", "typeform")]
        );
        let debug = format!("{record:?}");
        assert!(
            !debug.contains("tf-secret") && !debug.contains(&token),
            "{debug}"
        );
        // No sources: none.
        assert!(
            TenantRecord::from_value(full())
                .expect("valid")
                .sources
                .is_empty()
        );
    }

    #[test]
    fn isolation_is_read() {
        let mut v = full();
        v["isolation"] = json!("per_tenant");
        let record = TenantRecord::from_value(v).expect("valid");
        assert_eq!(record.isolation, Isolation::PerTenant);
    }

    #[test]
    fn burst_defaults_to_the_rate() {
        let mut v = full();
        v["rate_limit"] = json!({"requests_per_second": 7});
        let rl = TenantRecord::from_value(v)
            .expect("valid")
            .rate_limit
            .expect("rl");
        assert_eq!(rl.burst.get(), 7);
    }

    #[test]
    fn rejects_bad_records_with_a_useful_reason() {
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut push = |path: &[&str], new: Value, want: &'static str| {
            let mut v = full();
            let mut slot = &mut v;
            for p in &path[..path.len() - 1] {
                slot = &mut slot[*p];
            }
            let last = path[path.len() - 1];
            if new.is_null() {
                slot.as_object_mut().expect("object").remove(last);
            } else {
                slot[last] = new;
            }
            cases.push((v, want));
        };
        push(&["tenant_id"], json!("Not Valid"), "`tenant_id`: tenant ID");
        push(&["tenant_id"], json!(7), "`tenant_id` must be a string");
        push(&["status"], json!("deleted"), "`status` must be");
        push(&["status"], Value::Null, "missing field `status`");
        push(
            &["signing_secrets"],
            Value::Null,
            "missing field `signing_secrets`",
        );
        push(&["signing_secrets"], json!([]), "must not be empty");
        push(&["signing_secrets"], json!(SECRET_A), "must be an array");
        push(
            &["signing_secrets"],
            json!([SECRET_A, 5]),
            "`signing_secrets[1]` must be a string",
        );
        push(&["signing_secrets"], json!(["short"]), "shorter than 32");
        push(
            &["signing_secrets"],
            json!(vec![SECRET_A; 6]),
            "more than 5",
        );
        push(&["routing"], json!("vip"), "`routing` must be");
        push(&["isolation"], json!("dedicated"), "`isolation` must be");
        push(&["isolation"], json!(true), "`isolation` must be");
        push(&["rate_limit"], json!(5), "`rate_limit` must be an object");
        push(
            &["destination"],
            json!("whsec_x"),
            "`destination` must be an object",
        );
        push(
            &["rate_limit", "requests_per_second"],
            json!(0),
            "from 1 to 1000000",
        );
        push(
            &["rate_limit", "requests_per_second"],
            json!(1.5),
            "whole number",
        );
        push(
            &["rate_limit", "requests_per_second"],
            json!(4_000_000_000u32),
            "from 1 to 1000000",
        );
        push(
            &["rate_limit", "burst"],
            json!(1_000_001),
            "from 1 to 1000000",
        );
        push(
            &["destination", "url"],
            json!("ftp://x"),
            "absolute http(s) URL",
        );
        push(&["destination", "secret"], json!("nope"), "whsec_");
        push(&["destination", "secret"], json!("whsec_!!!"), "base64");
        push(
            &["destination", "secret"],
            json!("whsec_AAAA"),
            "24 to 64 bytes",
        );
        push(
            &["destination", "headers"],
            json!({"bad name": "x"}),
            "valid HTTP header name",
        );
        push(
            &["destination", "headers"],
            json!({"Webhook-Signature": "x"}),
            "may not set",
        );
        push(
            &["destination", "headers"],
            json!({"User-Agent": "x"}),
            "may not set",
        );
        push(
            &["destination", "headers"],
            json!({"Authorization": "a", "authorization": "b"}),
            "twice",
        );
        push(
            &["destination", "headers"],
            json!({"X-A": "a\nb"}),
            "printable ASCII",
        );
        push(&["destination", "timeout_ms"], json!(0), "timeout_ms");
        push(&["destination", "timeout_ms"], json!(600_000), "timeout_ms");
        push(&["sources"], json!([]), "`sources` must be an object");
        push(
            &["sources"],
            json!({"Typeform Main": {"provider": "typeform", "secrets": ["s"]}}),
            "invalid source ID",
        );
        push(
            &["sources"],
            json!({"tf": {"provider": "typo", "secrets": ["s"]}}),
            "`sources.tf.provider`: unknown provider; expected one of typeform",
        );
        push(
            &["sources"],
            json!({"tf": {"provider": "typeform"}}),
            "`sources.tf.secrets` must be an array of 1 to 4 strings",
        );
        push(
            &["sources"],
            json!({"tf": {"provider": "typeform", "secrets": []}}),
            "`sources.tf.secrets` must be an array of 1 to 4 strings",
        );
        push(
            &["sources"],
            json!({"tf": {"provider": "typeform", "secrets": [7]}}),
            "`sources.tf.secrets`[0] must be a string",
        );
        push(
            &["sources"],
            json!({"jf": {"provider": "token", "secrets": ["short-token"]}}),
            "`sources.jf`: secret 0 of a token source",
        );
        for (v, want) in cases {
            let err = error_of(v);
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        assert!(error_of(json!([1])).contains("JSON object"));
        assert!(
            TenantRecord::from_json("{not json")
                .expect_err("syntax")
                .to_string()
                .contains("line 1")
        );
    }

    #[test]
    fn errors_and_debug_never_contain_secrets() {
        let leaky = [
            json!({"tenant_id": "acme", "status": "active", "signing_secrets": "sekrit-value-1"}),
            json!({"tenant_id": "acme", "status": "active", "signing_secrets": [{"k": "sekrit-value-1"}]}),
            json!({"tenant_id": "acme", "status": "active", "signing_secrets": ["sekrit-value-1"]}),
        ];
        for v in leaky {
            assert!(!error_of(v).contains("sekrit"));
        }
        let mut v = full();
        v["destination"]["secret"] = json!(["whsec_sekrit"]);
        assert!(!error_of(v).contains("sekrit"));
        let mut v = full();
        v["destination"]["headers"] = json!({"Authorization": 42});
        assert!(!error_of(v).contains("42"));
        let text = TenantRecord::from_json("\"sekrit-value\"")
            .expect_err("string")
            .to_string();
        assert!(!text.contains("sekrit"), "{text}");

        let debug = format!("{:?}", TenantRecord::from_value(full()).expect("valid"));
        for secret in [
            SECRET_A,
            SECRET_B,
            "topsecret",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(!debug.contains(secret), "Debug leaks {secret}: {debug}");
        }
    }
}
