//! Sources: webhooks from form builders and providers, verified as each
//! provider signs them (docs/protocol.md, section 9).
//!
//! A provider is a row, not a branch. [`PROVIDERS`] is the one table: each
//! row is a [`Provider`], a name and a [`Verifier`]. Providers that sign the
//! same way share one verifier type (one file per family) and differ only in
//! the values of its fields: header names, prefix, encoding, the layout of
//! the signed string, tolerance and where the event ID is.
//!
//! | family | file | providers |
//! | --- | --- | --- |
//! | HMAC over the body | `body_hmac.rs` | typeform, tally, github, shopify |
//! | HMAC over a timestamp and the body | `timestamped.rs` | webflow, formspree, stripe, slack, hubspot |
//! | Standard Webhooks | `standard_webhooks.rs` | standard-webhooks (also `svix-*` headers) |
//! | a token in the URL | `token.rs` | token (Jotform, Fillout, Paperform) |
//!
//! To add a provider that signs like an existing family, add a `const` of
//! that family's type in its file, next to the provider's published test
//! vector, and one row to [`PROVIDERS`]. To add a family, add one file with a
//! type that implements [`Verifier`], and the row. Nothing else matches on
//! provider names.
//!
//! Use:
//!
//! 1. [`SourceKeys::new`] prepares a source's secrets once, when the tenant
//!    record is loaded (the first secret is current, the others stay valid
//!    during a rotation). It refuses a secret the provider could not have
//!    issued, without quoting it.
//! 2. [`SourceKeys::verify`] checks a [`Request`] (method, public URL, query,
//!    headers and the raw body) at `now`, before the body is parsed. It
//!    returns [`Verified`] (the delivery ID a header carries, and the
//!    signed timestamp, which with the body is the last-resort idempotency
//!    key) or a
//!    [`SourceError`] that names the header and the rule, never a value.
//! 3. Once the body is parsed, [`Provider::body_event_id`] reads the event ID
//!    a provider puts in the body (Stripe `id`, Typeform `event_id`, ...).
//!
//! Everything here is pure: the time is an argument. MACs are compared as
//! bytes in constant time, every key against every presented signature.

mod body_hmac;
mod common;
mod event_id;
mod standard_webhooks;
mod timestamped;
mod token;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

pub use common::{MAX_SIGNATURE_HEADER_LEN, MAX_SIGNATURES};

type HmacSha256 = Hmac<Sha256>;

/// The widest window any provider's signed timestamp has, either way, in
/// seconds: a captured request stays valid for twice this span, so an
/// idempotency key must outlive it.
pub const MAX_TOLERANCE_SECS: u64 = 300;

/// Every provider a source can name, and how each is verified.
pub static PROVIDERS: &[Provider] = &[
    Provider::new("typeform", &body_hmac::TYPEFORM, SecretOrigin::Chosen),
    Provider::new("tally", &body_hmac::TALLY, SecretOrigin::Chosen),
    Provider::new("webflow", &timestamped::WEBFLOW, SecretOrigin::Issued),
    Provider::new("formspree", &timestamped::FORMSPREE, SecretOrigin::Issued),
    Provider::new("stripe", &timestamped::STRIPE, SecretOrigin::Issued),
    Provider::new("github", &body_hmac::GITHUB, SecretOrigin::Chosen),
    Provider::new("shopify", &body_hmac::SHOPIFY, SecretOrigin::Issued),
    Provider::new("slack", &timestamped::SLACK, SecretOrigin::Issued),
    Provider::new("hubspot", &timestamped::HUBSPOT, SecretOrigin::Issued),
    Provider::new(
        "standard-webhooks",
        &standard_webhooks::STANDARD_WEBHOOKS,
        SecretOrigin::Issued,
    ),
    Provider::new("token", &token::TOKEN, SecretOrigin::Chosen),
];

/// Where a source's secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretOrigin {
    /// The receiver chooses it and pastes it into the provider's settings
    /// (Typeform, Tally, GitHub, a token): Form-Bridge can generate it.
    Chosen,
    /// The provider issues it (Stripe's `whsec_`, Slack's signing secret,
    /// ...): it must be copied from the provider.
    Issued,
}

/// How one family of providers checks a request. Implemented once per
/// family; each provider is a value of the family's type in [`PROVIDERS`].
pub trait Verifier: Sync {
    /// Prepares one of a source's secrets as this provider's key, or says
    /// which rule it breaks (the message never quotes the secret).
    fn prepare(&self, secret: &Secret) -> Result<Key, &'static str>;

    /// Checks `request` against `keys` (all prepared by [`Verifier::prepare`])
    /// at `now` (Unix seconds).
    fn verify<'a>(
        &self,
        request: &Request<'a>,
        keys: &[Key],
        now: i64,
    ) -> Result<Verified<'a>, SourceError>;

    /// The event ID this provider puts in the body, read from the body's
    /// JSON text (or a form's fields as a JSON object).
    fn body_event_id(&self, json: &str) -> Option<String>;

    /// How far from now a signed timestamp may be, either way, in seconds;
    /// `None` when the signature covers no timestamp (then only idempotency
    /// stops a replay). At most [`MAX_TOLERANCE_SECS`].
    fn tolerance_secs(&self) -> Option<i64>;

    /// A verified body that only checks the URL (Slack's
    /// `url_verification`): the field and value to answer with (200,
    /// `{"<field>": "<value>"}`) instead of accepting a submission.
    fn challenge(&self, json: &str) -> Option<(&'static str, String)> {
        let _ = json;
        None
    }

    /// Whether verifying needs the body. Without a body signature (`token`)
    /// the authorizer verifies the request itself, before any body work.
    fn signs_body(&self) -> bool {
        true
    }

    /// Signs `request` with `secret` at `now` as the provider would: the
    /// headers to attach, or for `token` the query string. For `formbridge
    /// send --provider` and tests.
    fn sign(
        &self,
        secret: &Secret,
        request: &SignRequest<'_>,
        now: i64,
    ) -> Result<Signed, &'static str>;
}

/// A source's ID, the path segment of `/v1/tenants/{tenant_id}/sources/{source_id}`:
/// the tenant ID grammar (1 to 63 of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(crate::tenant_id::TenantId);

impl SourceId {
    /// A valid source ID, or why not.
    pub fn parse(s: &str) -> Result<Self, crate::tenant_id::TenantIdError> {
        crate::tenant_id::TenantId::parse(s).map(Self)
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Serialize for SourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider: a name from [`PROVIDERS`] and its verifier. Only the table's
/// names can be held; [`Provider::parse`] is the way in.
#[derive(Clone, Copy)]
pub struct Provider {
    name: &'static str,
    verifier: &'static dyn Verifier,
    secret: SecretOrigin,
}

impl Provider {
    const fn new(
        name: &'static str,
        verifier: &'static dyn Verifier,
        secret: SecretOrigin,
    ) -> Self {
        Self {
            name,
            verifier,
            secret,
        }
    }

    /// Whether the receiver chooses the secret and gives it to the
    /// provider (so Form-Bridge may generate it), rather than copying one
    /// the provider issued.
    pub fn receiver_chooses_secret(self) -> bool {
        self.secret == SecretOrigin::Chosen
    }

    /// The provider named `name` (exact, lowercase).
    pub fn parse(name: &str) -> Result<Self, UnknownProvider> {
        PROVIDERS
            .iter()
            .find(|p| p.name == name)
            .copied()
            .ok_or(UnknownProvider)
    }

    /// The provider's name, as written in the tenant record.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// How this provider is verified.
    pub fn verifier(self) -> &'static dyn Verifier {
        self.verifier
    }

    /// The event ID in a parsed body (see [`Verifier::body_event_id`]):
    /// printable ASCII, 1 to 255 characters, or `None`.
    pub fn body_event_id(self, json: &str) -> Option<String> {
        self.verifier
            .body_event_id(json)
            .filter(|id| common::valid_id(id))
    }

    /// Whether the provider's signature covers a timestamp.
    pub fn signs_timestamp(self) -> bool {
        self.verifier.tolerance_secs().is_some()
    }

    /// How far from now its signed timestamp may be, in seconds (see
    /// [`Verifier::tolerance_secs`]).
    pub fn tolerance_secs(self) -> Option<i64> {
        self.verifier.tolerance_secs()
    }

    /// The answer to a URL check instead of a submission (see
    /// [`Verifier::challenge`]): printable ASCII, 1 to 255 characters.
    pub fn challenge(self, json: &str) -> Option<(&'static str, String)> {
        self.verifier
            .challenge(json)
            .filter(|(_, value)| common::valid_id(value))
    }

    /// Whether verifying needs the body (see [`Verifier::signs_body`]).
    pub fn signs_body(self) -> bool {
        self.verifier.signs_body()
    }

    /// Signs a request as the provider would (see [`Verifier::sign`]).
    pub fn sign(
        self,
        secret: &Secret,
        request: &SignRequest<'_>,
        now: i64,
    ) -> Result<Signed, SecretError> {
        self.verifier
            .sign(secret, request, now)
            .map_err(|rule| SecretError::Invalid {
                index: 0,
                provider: self.name,
                rule,
            })
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Provider {}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Provider {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A provider name that is not in [`PROVIDERS`]. The message lists the
/// valid names and does not quote the one given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownProvider;

impl fmt::Display for UnknownProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown provider; expected one of ")?;
        for (i, p) in PROVIDERS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(p.name)?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownProvider {}

/// A source's secret prepared for its provider: an HMAC key state computed
/// once, or a token's digest. `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct Key(KeyKind);

#[derive(Clone)]
enum KeyKind {
    Mac(HmacSha256),
    Digest([u8; 32]),
}

impl Key {
    /// An HMAC-SHA256 key over `bytes`.
    pub(crate) fn mac(bytes: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(bytes)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self(KeyKind::Mac(mac))
    }

    /// The SHA-256 of `bytes`, for comparing tokens of any length in
    /// constant time.
    pub(crate) fn digest(bytes: &[u8]) -> Self {
        Self(KeyKind::Digest(Sha256::digest(bytes).into()))
    }

    pub(crate) fn as_mac(&self) -> Option<&HmacSha256> {
        match &self.0 {
            KeyKind::Mac(mac) => Some(mac),
            KeyKind::Digest(_) => None,
        }
    }

    pub(crate) fn as_digest(&self) -> Option<&[u8; 32]> {
        match &self.0 {
            KeyKind::Digest(d) => Some(d),
            KeyKind::Mac(_) => None,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A source's provider with its secrets prepared, ready to verify requests.
/// Built once per tenant record load. `Debug` shows the provider and the
/// number of secrets only.
#[derive(Clone)]
pub struct SourceKeys {
    provider: Provider,
    keys: Vec<Key>,
}

impl SourceKeys {
    /// Prepares `secrets` (current first, then those still valid during a
    /// rotation) for `provider`.
    pub fn new(provider: Provider, secrets: &[Secret]) -> Result<Self, SecretError> {
        if secrets.is_empty() {
            return Err(SecretError::NoSecrets);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                provider
                    .verifier
                    .prepare(secret)
                    .map_err(|rule| SecretError::Invalid {
                        index,
                        provider: provider.name,
                        rule,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { provider, keys })
    }

    /// The provider these keys are for.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// `payload` (a verified request's body as JSON text) without the
    /// secret the sender presented in the URL, for a provider whose secret
    /// travels there (`token`): Jotform, for one, echoes the webhook's URL
    /// in a field. Every spelling of the token (decoded, JSON-escaped with
    /// or without `\/`, percent-encoded, and as the query carried it)
    /// becomes `REDACTED`. `None` when
    /// there is nothing to remove; [`TokenInBody`] when the result would
    /// not be JSON (the token written outside a string) or a string still
    /// holds the token once its escapes are decoded (`\u0074ok_...`).
    pub fn redact_presented_secret(
        &self,
        query: &str,
        payload: &str,
    ) -> Result<Option<String>, TokenInBody> {
        if self.provider.signs_body() {
            return Ok(None);
        }
        let Ok(token) = token::presented(query) else {
            return Ok(None);
        };
        if token.is_empty() {
            return Ok(None);
        }
        let escaped = serde_json::to_string(token.as_ref())
            .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
            .unwrap_or_default();
        let spellings = [
            token.to_string(),
            escaped.replace('/', "\\/"),
            escaped,
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect(),
            percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            // As the query carried it: a token typed with its own escapes.
            token::presented_raw(query).unwrap_or_default().to_owned(),
        ];
        let mut redacted = None::<String>;
        for spelling in spellings.iter().filter(|s| !s.is_empty()) {
            let text = redacted.as_deref().unwrap_or(payload);
            if text.contains(spelling.as_str()) {
                redacted = Some(text.replace(spelling.as_str(), "REDACTED"));
            }
        }
        match redacted {
            Some(text) if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() => {
                Err(TokenInBody)
            }
            // A string may spell the token with escapes no list can hold
            // (`\u0074` for `t`, any mix): a receiver decoding the JSON
            // would read it. Such a body is refused, as a token outside a
            // string is. Only text with an escape needs the decoding pass.
            other => {
                let text = other.as_deref().unwrap_or(payload);
                if text.contains('\\') && !decoded_strings_lack(text, &token) {
                    return Err(TokenInBody);
                }
                Ok(other)
            }
        }
    }

    /// Verifies `request` with the provider's scheme against every secret,
    /// at `now` (Unix seconds).
    pub fn verify<'a>(&self, request: &Request<'a>, now: i64) -> Result<Verified<'a>, SourceError> {
        self.provider.verifier.verify(request, &self.keys, now)
    }
}

impl fmt::Debug for SourceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceKeys")
            .field("provider", &self.provider.name)
            .field("secrets", &self.keys.len())
            .finish()
    }
}

/// Whether no string and no object key of JSON `text`, once decoded,
/// contains `needle`; `false` when `text` cannot be decoded (a lone
/// surrogate, a number serde_json cannot hold), so that what cannot be
/// checked is not kept.
fn decoded_strings_lack(text: &str, needle: &str) -> bool {
    fn lacks(value: &serde_json::Value, needle: &str) -> bool {
        match value {
            serde_json::Value::String(s) => !s.contains(needle),
            serde_json::Value::Array(items) => items.iter().all(|v| lacks(v, needle)),
            serde_json::Value::Object(map) => map
                .iter()
                .all(|(key, v)| !key.contains(needle) && lacks(v, needle)),
            _ => true,
        }
    }
    serde_json::from_str(text).is_ok_and(|value| lacks(&value, needle))
}

/// A body that holds the source's token where it cannot be redacted: not
/// inside a JSON string, or spelt there with JSON escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the body holds the source's token outside a JSON string, or spelt with escapes; it is refused rather than stored"
)]
pub struct TokenInBody;

/// Why a source's secrets cannot be used. Never quotes a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A source needs at least one secret.
    #[error("a source needs at least one secret")]
    NoSecrets,
    /// A secret breaks the provider's rule.
    #[error("secret {index} of a {provider} source {rule}")]
    Invalid {
        /// Its position in the source's list, from 0.
        index: usize,
        /// The provider.
        provider: &'static str,
        /// What it must be.
        rule: &'static str,
    },
}

impl SecretError {
    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSecrets => "no_secrets",
            Self::Invalid { .. } => "invalid_secret",
        }
    }
}

/// An incoming request as a verifier sees it. `Debug` shows the method and
/// the body's length only (the URL and query may carry a token).
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method as received (`POST`).
    pub method: &'a str,
    /// The public URL the sender called: scheme, host, path, and `?` with
    /// the raw query string as received, in its original order. HubSpot
    /// signs it.
    pub url: &'a str,
    /// The raw query string without `?` (`""` when there is none).
    pub query: &'a str,
    /// A header's value by lowercase name, found case-insensitively (the
    /// first value when a header repeats; `None` when absent or not UTF-8).
    pub headers: &'a dyn Fn(&str) -> Option<&'a str>,
    /// The body exactly as received.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The header `name` (lowercase), or [`SourceError::MissingHeader`].
    pub(crate) fn header(&self, name: &'static str) -> Result<&'a str, SourceError> {
        (self.headers)(name).ok_or(SourceError::MissingHeader(name))
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a verified request tells the caller about its identity, for
/// idempotency (docs/protocol.md, section 10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified<'a> {
    delivery_id: Option<&'a str>,
    delivery_id_signed: bool,
    signed_timestamp: Option<i64>,
    event_type: Option<&'a str>,
}

impl<'a> Verified<'a> {
    pub(crate) fn new(
        delivery_id: Option<&'a str>,
        delivery_id_signed: bool,
        signed_timestamp: Option<i64>,
    ) -> Self {
        Self {
            delivery_id: delivery_id.filter(|id| common::valid_id(id)),
            delivery_id_signed,
            signed_timestamp,
            event_type: None,
        }
    }

    pub(crate) fn with_event_type(mut self, event_type: Option<&'a str>) -> Self {
        self.event_type = event_type.filter(|t| common::valid_id(t));
        self
    }

    /// The event's type when a header names it and the body does not
    /// (GitHub `X-GitHub-Event`, Shopify `X-Shopify-Topic`): printable
    /// ASCII, 1 to 255 characters. Not signed.
    pub fn event_type(&self) -> Option<&'a str> {
        self.event_type
    }

    /// The event or delivery ID a header carries (GitHub
    /// `X-GitHub-Delivery`, Shopify `X-Shopify-Event-Id` else
    /// `X-Shopify-Webhook-Id`, Standard Webhooks `webhook-id`): printable
    /// ASCII, 1 to 255 characters. `None` when the provider sends none, or
    /// the header is absent or not such a string.
    pub fn delivery_id(&self) -> Option<&'a str> {
        self.delivery_id
    }

    /// Whether the signature covers [`Verified::delivery_id`] (Standard
    /// Webhooks). GitHub's and Shopify's are not signed: a captured request
    /// can be replayed under another ID, which only a key derived from what
    /// was signed catches.
    pub fn delivery_id_signed(&self) -> bool {
        self.delivery_id_signed
    }

    /// The timestamp the signature covers, when the provider signs one.
    /// With the body it is exactly what was signed: the last-resort
    /// idempotency key, which no rewording of the signature header (case,
    /// extra signatures, their order) changes.
    pub fn signed_timestamp(&self) -> Option<i64> {
        self.signed_timestamp
    }
}

/// Why a source request was not accepted. Messages name the header (or
/// the `token` query parameter) and the rule, never a value, a signature or
/// a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// A header the provider always sends is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A signature header does not have the provider's shape.
    #[error("header {header} must be {rule}")]
    MalformedHeader {
        /// The header, lowercase.
        header: &'static str,
        /// The shape it must have.
        rule: &'static str,
    },
    /// A timestamp is not canonical decimal digits.
    #[error("header {header} must be {rule}")]
    MalformedTimestamp {
        /// The header, lowercase.
        header: &'static str,
        /// The shape it must have.
        rule: &'static str,
    },
    /// The signed timestamp is older than the provider's tolerance.
    #[error("header {header}: timestamp is {age_secs} s old, outside the {window_secs} s window")]
    Stale {
        /// The header, lowercase.
        header: &'static str,
        /// How far in the past, in seconds.
        age_secs: i64,
        /// The tolerance, in seconds.
        window_secs: i64,
    },
    /// The signed timestamp is further ahead than the provider's tolerance.
    #[error(
        "header {header}: timestamp is {ahead_secs} s in the future, outside the {window_secs} s window"
    )]
    Future {
        /// The header, lowercase.
        header: &'static str,
        /// How far in the future, in seconds.
        ahead_secs: i64,
        /// The tolerance, in seconds.
        window_secs: i64,
    },
    /// No signature in the header matches any of the source's secrets.
    #[error("no signature in header {0} matches a secret of this source")]
    Mismatch(&'static str),
    /// The URL has no `token` query parameter.
    #[error("missing query parameter token")]
    MissingToken,
    /// The `token` query parameter is given more than once.
    #[error("query parameter token must appear once")]
    MalformedToken,
    /// The `token` query parameter matches none of the source's secrets.
    #[error("query parameter token matches no secret of this source")]
    TokenMismatch,
}

impl SourceError {
    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedHeader { .. } => "malformed_header",
            Self::MalformedTimestamp { .. } => "malformed_timestamp",
            Self::Stale { .. } => "stale_timestamp",
            Self::Future { .. } => "future_timestamp",
            Self::Mismatch(_) => "bad_signature",
            Self::MissingToken => "missing_token",
            Self::MalformedToken => "malformed_token",
            Self::TokenMismatch => "bad_token",
        }
    }
}

/// A request to sign as a provider would (see [`Provider::sign`]).
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The HTTP method (`POST`).
    pub method: &'a str,
    /// The public URL the request goes to (HubSpot signs it).
    pub url: &'a str,
    /// The body.
    pub body: &'a [u8],
    /// The delivery ID to send, for providers that send one in a header.
    pub delivery_id: &'a str,
}

/// What a sender attaches: headers, and for `token` a query parameter.
/// `Debug` shows the header names only.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// Headers to attach, lowercase names.
    pub headers: Vec<(&'static str, String)>,
    /// `token=<percent-encoded secret>`, to append to the URL's query.
    pub query: Option<String>,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Signed")
            .field("headers", &names)
            .field("query", &self.query.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}
