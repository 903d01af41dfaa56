//! A tenant record as it is stored: the JSON object, read, created and
//! edited here so that no tool indexes records by field name.
//!
//! [`TenantDocument`] keeps every field, the ones this version does not
//! know included, so an older tool never drops what a newer one wrote.
//! Edits ([`rotate`](TenantDocument::rotate),
//! [`expire`](TenantDocument::expire), [`set_status`](TenantDocument::set_status),
//! [`set_routing`](TenantDocument::set_routing),
//! [`set_isolation`](TenantDocument::set_isolation), and the sources'
//! [`add_source`](TenantDocument::add_source),
//! [`rotate_source`](TenantDocument::rotate_source),
//! [`expire_source`](TenantDocument::expire_source) and
//! [`remove_source`](TenantDocument::remove_source)) are checked with the
//! functions' own validation ([`TenantRecord::from_value`]) and leave the
//! document unchanged when the result would be invalid.
//!
//! [`redacted`](TenantDocument::redacted) shows a record by allow-list:
//! only values known to be safe are printed; every other field, whatever
//! its name or shape, is printed with its value hidden.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{
    Isolation, MAX_SIGNING_SECRETS, MAX_SOURCE_SECRETS, MAX_SOURCES, RecordError, Routing,
    TenantRecord, TenantStatus,
};
use crate::secret::Secret;
use crate::source::{Provider, SourceId};
use crate::tenant_id::TenantId;

/// What [`TenantDocument::redacted`] puts in place of a hidden value.
const REDACTED: &str = "<redacted>";

/// The field `set_status` records the Unix time of a suspension in (the
/// functions ignore it; `formbridge tenants delete` reads it).
const SUSPENDED_AT: &str = "suspended_at";

/// Random bytes in a signing secret (256 bits, HMAC-SHA256's key size).
const SIGNING_SECRET_BYTES: usize = 32;
/// Random bytes in a `whsec_` delivery secret.
const WEBHOOK_SECRET_BYTES: usize = 32;
/// Characters in a generated source secret: 44 letters and digits, about
/// 262 random bits. Letters and digits only, and a multiple of 4 long, so
/// that one shape suits every provider: a `token` needs no escaping in a
/// URL, and the text is also valid base64 for a `standard-webhooks` key.
const SOURCE_SECRET_CHARS: usize = 44;

/// Why a document could not be made or changed. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The record is, or would become, invalid.
    #[error(transparent)]
    Invalid(#[from] RecordError),
    /// A rotation would exceed [`MAX_SIGNING_SECRETS`].
    #[error("already has {0} signing secrets, the most allowed")]
    TooManySecrets(usize),
    /// The operating system's random source failed.
    #[error("cannot read the system's random source: {0}")]
    Random(getrandom::Error),
    /// An added source's ID is taken.
    #[error("already has a source {0}")]
    SourceExists(SourceId),
    /// No source has this ID.
    #[error("has no source {0}")]
    NoSource(SourceId),
    /// An added source would exceed [`MAX_SOURCES`].
    #[error("already has {MAX_SOURCES} sources, the most allowed")]
    TooManySources,
}

/// What a new record holds besides its fresh signing secret.
#[derive(Debug, Clone, Default)]
pub struct NewTenant<'a> {
    /// Where its events are delivered; a fresh `whsec_` secret comes with it.
    pub destination: Option<&'a str>,
    /// Requests per second; the burst is twice that.
    pub rate_limit: Option<u32>,
    /// Its delivery path.
    pub routing: Routing,
    /// The API its requests come through (written only when not shared).
    pub isolation: Isolation,
}

/// What [`TenantDocument::rotate_source`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRotation {
    /// The source's provider.
    pub provider: Provider,
    /// Secrets the source now holds, the new one first.
    pub secrets: usize,
    /// The oldest secrets dropped to stay within [`MAX_SOURCE_SECRETS`].
    pub dropped: usize,
}

/// A fresh source secret from the operating system's CSPRNG: 44 letters
/// and digits, a shape every provider accepts (a `token` is at least 32
/// characters; a `standard-webhooks` key is base64).
pub fn new_source_secret() -> Result<Secret, DocumentError> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes from 248 up are skipped, so that each of the 62 characters is
    // equally likely (248 = 4 x 62).
    let mut secret = String::with_capacity(SOURCE_SECRET_CHARS);
    while secret.len() < SOURCE_SECRET_CHARS {
        for byte in random(SOURCE_SECRET_CHARS)? {
            if byte < 248 && secret.len() < SOURCE_SECRET_CHARS {
                secret.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    Ok(Secret::new(secret))
}

/// A tenant record as stored (a Secrets Manager `SecretString`, or one
/// element of a tenants file), with every field kept.
#[derive(Clone, PartialEq)]
pub struct TenantDocument {
    fields: Map<String, Value>,
}

impl std::fmt::Debug for TenantDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TenantDocument")
            .field(&self.redacted())
            .finish()
    }
}

impl TenantDocument {
    /// A new active record for `tenant` with a fresh signing secret (`fb_`
    /// and 256 random bits) and, with a destination, a fresh delivery
    /// secret, both from the operating system's CSPRNG. The record is
    /// validated as every function will read it.
    pub fn new(tenant: &TenantId, new: &NewTenant<'_>) -> Result<Self, DocumentError> {
        let mut fields = Map::new();
        fields.insert("tenant_id".into(), json!(tenant.as_str()));
        fields.insert("status".into(), json!("active"));
        fields.insert("signing_secrets".into(), json!([new_signing_secret()?]));
        fields.insert("routing".into(), json!(new.routing.as_str()));
        if new.isolation != Isolation::Shared {
            fields.insert("isolation".into(), json!(new.isolation.as_str()));
        }
        if let Some(rps) = new.rate_limit {
            fields.insert(
                "rate_limit".into(),
                json!({ "requests_per_second": rps, "burst": rps.saturating_mul(2) }),
            );
        }
        if let Some(url) = new.destination {
            fields.insert(
                "destination".into(),
                json!({ "url": url, "secret": new_webhook_secret()? }),
            );
        }
        let document = Self { fields };
        document.validate()?;
        Ok(document)
    }

    /// Reads a stored record. Only the top level is checked (a JSON
    /// object), so that a record the functions refuse can still be shown
    /// and mended; [`validate`](Self::validate) says whether they accept it.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        Self::from_value(super::parse_json(text)?)
    }

    /// A stored record already parsed as JSON.
    pub fn from_value(value: Value) -> Result<Self, RecordError> {
        match value {
            Value::Object(fields) => Ok(Self { fields }),
            _ => Err(RecordError::new("must be a JSON object")),
        }
    }

    /// The record as every function reads it, or why they refuse it.
    pub fn validate(&self) -> Result<TenantRecord, RecordError> {
        TenantRecord::from_value(Value::Object(self.fields.clone()))
    }

    /// The record as compact JSON, for storing.
    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// The whole record as indented JSON, secrets included.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(&self.fields).unwrap_or_else(|_| self.to_json())
    }

    /// The record as a JSON value, secrets included.
    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }

    /// `status`, when it is one the functions accept.
    pub fn status(&self) -> Option<TenantStatus> {
        TenantStatus::parse(self.fields.get("status")?.as_str()?)
    }

    /// `routing` (absent means shared); `None` when it is not one the
    /// functions accept.
    pub fn routing(&self) -> Option<Routing> {
        match self.fields.get("routing") {
            None | Some(Value::Null) => Some(Routing::default()),
            Some(value) => value.as_str().and_then(Routing::parse),
        }
    }

    /// When the tenant was suspended (Unix seconds), if recorded.
    pub fn suspended_at(&self) -> Option<i64> {
        self.fields.get(SUSPENDED_AT)?.as_i64()
    }

    /// The current signing secret (the first), for the sender.
    pub fn current_signing_secret(&self) -> Option<&str> {
        self.fields.get("signing_secrets")?.get(0)?.as_str()
    }

    /// The destination's host, never its path or query (which often hold
    /// a token).
    pub fn destination_host(&self) -> Option<String> {
        let url = self.fields.get("destination")?.get("url")?.as_str()?;
        url::Url::parse(url).ok()?.host_str().map(str::to_owned)
    }

    /// Adds a fresh signing secret in front; the previous ones stay valid.
    /// Returns the new secret.
    pub fn rotate(&mut self) -> Result<String, DocumentError> {
        let secret = new_signing_secret()?;
        let count = self.signing_secrets()?.len();
        if count >= MAX_SIGNING_SECRETS {
            return Err(DocumentError::TooManySecrets(count));
        }
        self.edit(|fields| {
            if let Some(Value::Array(list)) = fields.get_mut("signing_secrets") {
                list.insert(0, json!(secret));
            }
        })?;
        Ok(secret)
    }

    /// Removes every signing secret but the current one; returns how many
    /// were removed.
    pub fn expire(&mut self) -> Result<usize, DocumentError> {
        let removed = self.signing_secrets()?.len().saturating_sub(1);
        self.edit(|fields| {
            if let Some(Value::Array(list)) = fields.get_mut("signing_secrets") {
                list.truncate(1);
            }
        })?;
        Ok(removed)
    }

    /// Sets `status`; a suspension records its time (`now`, Unix seconds)
    /// unless one is already recorded for it, and resuming removes it.
    /// Returns whether the status changed.
    pub fn set_status(&mut self, status: TenantStatus, now: i64) -> Result<bool, DocumentError> {
        let changed = self.status() != Some(status);
        self.edit(|fields| {
            fields.insert("status".into(), json!(status.as_str()));
            match status {
                TenantStatus::Suspended if changed || !fields.contains_key(SUSPENDED_AT) => {
                    fields.insert(SUSPENDED_AT.into(), json!(now));
                }
                TenantStatus::Suspended => {}
                TenantStatus::Active => {
                    fields.remove(SUSPENDED_AT);
                }
            }
        })?;
        Ok(changed)
    }

    /// `isolation` (absent means shared); `None` when it is not one the
    /// functions accept.
    pub fn isolation(&self) -> Option<Isolation> {
        match self.fields.get("isolation") {
            None | Some(Value::Null) => Some(Isolation::default()),
            Some(value) => value.as_str().and_then(Isolation::parse),
        }
    }

    /// Sets `routing`.
    pub fn set_routing(&mut self, routing: Routing) -> Result<(), DocumentError> {
        self.edit(|fields| {
            fields.insert("routing".into(), json!(routing.as_str()));
        })
    }

    /// Sets `isolation`: `per_tenant` is written, `shared` (the default)
    /// removes the field, as [`TenantDocument::new`] writes it. Returns
    /// whether the isolation changed (unchanged, the document is left as
    /// it is); a record whose `isolation` is invalid gets the one given.
    pub fn set_isolation(&mut self, isolation: Isolation) -> Result<bool, DocumentError> {
        if self.isolation() == Some(isolation) {
            return Ok(false);
        }
        self.edit(|fields| match isolation {
            Isolation::Shared => {
                fields.remove("isolation");
            }
            Isolation::PerTenant => {
                fields.insert("isolation".into(), json!(isolation.as_str()));
            }
        })?;
        Ok(true)
    }

    /// The provider of the source `id`: [`DocumentError::NoSource`] when
    /// the record has none by that ID, an invalid-record error when its
    /// provider is not one the functions know.
    pub fn source_provider(&self, id: &SourceId) -> Result<Provider, DocumentError> {
        let source = self
            .sources()?
            .and_then(|sources| sources.get(id.as_str()))
            .ok_or_else(|| DocumentError::NoSource(id.clone()))?;
        source
            .get("provider")
            .and_then(Value::as_str)
            .and_then(|name| Provider::parse(name).ok())
            .ok_or_else(|| {
                RecordError::new(format!("`sources.{id}.provider` is not a known provider")).into()
            })
    }

    /// Adds the source `id` for `provider`, with `secret` as its only
    /// secret. Refused when the ID is taken, when the tenant has
    /// [`MAX_SOURCES`] already, or when the provider could not have issued
    /// the secret (the error names the rule, never the secret).
    pub fn add_source(
        &mut self,
        id: &SourceId,
        provider: Provider,
        secret: &Secret,
    ) -> Result<(), DocumentError> {
        let count = match self.sources()? {
            Some(sources) if sources.contains_key(id.as_str()) => {
                return Err(DocumentError::SourceExists(id.clone()));
            }
            Some(sources) => sources.len(),
            None => 0,
        };
        if count >= MAX_SOURCES {
            return Err(DocumentError::TooManySources);
        }
        self.edit(|fields| {
            // `null` counts as absent (as the functions read it).
            let sources = fields.entry("sources").or_insert(Value::Null);
            if sources.is_null() {
                *sources = Value::Object(Map::new());
            }
            if let Value::Object(sources) = sources {
                sources.insert(
                    id.as_str().to_owned(),
                    json!({ "provider": provider.as_str(), "secrets": [secret.expose()] }),
                );
            }
        })
    }

    /// Puts `secret` first in the source `id`'s secrets and keeps the
    /// previous ones, so that both verify while the provider switches; of
    /// the previous, only the newest `MAX_SOURCE_SECRETS - 1` are kept.
    /// Every other field of the source is kept.
    pub fn rotate_source(
        &mut self,
        id: &SourceId,
        secret: &Secret,
    ) -> Result<SourceRotation, DocumentError> {
        let provider = self.source_provider(id)?;
        let before = self.source_secrets(id)?;
        let kept = before.min(MAX_SOURCE_SECRETS - 1);
        self.edit_source_secrets(id, |list| {
            list.truncate(kept);
            list.insert(0, json!(secret.expose()));
        })?;
        Ok(SourceRotation {
            provider,
            secrets: kept + 1,
            dropped: before - kept,
        })
    }

    /// Removes every secret of the source `id` but the current one (the
    /// first); returns how many were removed.
    pub fn expire_source(&mut self, id: &SourceId) -> Result<usize, DocumentError> {
        self.source_provider(id)?;
        let removed = self.source_secrets(id)?.saturating_sub(1);
        self.edit_source_secrets(id, |list| list.truncate(1))?;
        Ok(removed)
    }

    /// Removes the source `id` (and `sources` with it when it was the
    /// last); returns its provider.
    pub fn remove_source(&mut self, id: &SourceId) -> Result<Provider, DocumentError> {
        let provider = self.source_provider(id)?;
        self.edit(|fields| {
            let emptied = match fields.get_mut("sources") {
                Some(Value::Object(sources)) => {
                    sources.remove(id.as_str());
                    sources.is_empty()
                }
                _ => false,
            };
            if emptied {
                fields.remove("sources");
            }
        })?;
        Ok(provider)
    }

    /// The record for people: values known to be safe are shown; every
    /// other field keeps its name and has its value replaced by
    /// `"<redacted>"`, whatever its shape (a misspelt or unknown field, a
    /// string where a list was expected). The destination URL is shown as
    /// its origin only (hook URLs carry tokens in the path, query or user
    /// info), destination header names without their values, sources with
    /// their IDs and providers but no secret.
    pub fn redacted(&self) -> Value {
        let shown = self
            .fields
            .iter()
            .map(|(name, value)| {
                let value = match name.as_str() {
                    "tenant_id" => shown_if(value, |v| {
                        v.as_str().is_some_and(|s| TenantId::parse(s).is_ok())
                    }),
                    "status" => shown_if(value, |v| {
                        v.as_str().and_then(TenantStatus::parse).is_some()
                    }),
                    "routing" => shown_if(value, |v| v.as_str().and_then(Routing::parse).is_some()),
                    "isolation" => {
                        shown_if(value, |v| v.as_str().and_then(Isolation::parse).is_some())
                    }
                    SUSPENDED_AT => shown_if(value, Value::is_i64),
                    "signing_secrets" => match value {
                        Value::Array(list) => Value::Array(list.iter().map(|_| hidden()).collect()),
                        _ => hidden(),
                    },
                    "rate_limit" => redact_object(value, |key, v| match key {
                        "requests_per_second" | "burst" => shown_if(v, Value::is_u64),
                        _ => hidden(),
                    }),
                    "destination" => redact_object(value, |key, v| match key {
                        "url" => v
                            .as_str()
                            .map_or_else(hidden, |url| json!(origin_only(url))),
                        "timeout_ms" => shown_if(v, Value::is_u64),
                        "headers" => redact_object(v, |_, _| hidden()),
                        _ => hidden(),
                    }),
                    // Source IDs (the keys) and providers are shown; every
                    // secret is hidden, one placeholder each.
                    "sources" => redact_sources(value),
                    _ => hidden(),
                };
                (name.clone(), value)
            })
            .collect();
        Value::Object(shown)
    }

    /// `sources` as stored: `None` when absent, an error when it is not an
    /// object.
    fn sources(&self) -> Result<Option<&Map<String, Value>>, RecordError> {
        match self.fields.get("sources") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(sources)) => Ok(Some(sources)),
            Some(_) => Err(RecordError::new(
                "`sources` must be an object of sources by ID",
            )),
        }
    }

    /// How many secrets the source `id` holds, or why they cannot be read.
    fn source_secrets(&self, id: &SourceId) -> Result<usize, DocumentError> {
        self.sources()?
            .and_then(|sources| sources.get(id.as_str()))
            .and_then(|source| source.get("secrets"))
            .and_then(Value::as_array)
            .map(Vec::len)
            .ok_or_else(|| {
                RecordError::new(format!(
                    "`sources.{id}.secrets` must be an array of 1 to {MAX_SOURCE_SECRETS} strings"
                ))
                .into()
            })
    }

    /// Applies `change` to the source `id`'s list of secrets, keeping it
    /// only if the record stays valid.
    fn edit_source_secrets(
        &mut self,
        id: &SourceId,
        change: impl FnOnce(&mut Vec<Value>),
    ) -> Result<(), DocumentError> {
        self.edit(|fields| {
            let list = fields
                .get_mut("sources")
                .and_then(|sources| sources.get_mut(id.as_str()))
                .and_then(|source| source.get_mut("secrets"));
            if let Some(Value::Array(list)) = list {
                change(list);
            }
        })
    }

    fn signing_secrets(&self) -> Result<&Vec<Value>, RecordError> {
        match self.fields.get("signing_secrets") {
            Some(Value::Array(list)) => Ok(list),
            _ => Err(RecordError::new(
                "`signing_secrets` must be an array of strings",
            )),
        }
    }

    /// Applies `change` and keeps it only if the record stays valid.
    fn edit(&mut self, change: impl FnOnce(&mut Map<String, Value>)) -> Result<(), DocumentError> {
        let mut fields = self.fields.clone();
        change(&mut fields);
        let edited = Self { fields };
        edited.validate()?;
        *self = edited;
        Ok(())
    }
}

/// Sources: valid source IDs and providers are shown, every secret hidden
/// (one placeholder each); a member whose key is not a valid source ID is
/// hidden whole, name included (it could be anything pasted there).
fn redact_sources(value: &Value) -> Value {
    let Value::Object(sources) = value else {
        return hidden();
    };
    let mut shown = Map::new();
    for (id, source) in sources {
        if SourceId::parse(id).is_err() {
            shown.insert(REDACTED.to_owned(), hidden());
            continue;
        }
        let source = redact_object(source, |key, v| match (key, v) {
            ("provider", _) => shown_if(v, |v| {
                v.as_str().is_some_and(|p| Provider::parse(p).is_ok())
            }),
            ("secrets", Value::Array(list)) => {
                Value::Array(list.iter().map(|_| hidden()).collect())
            }
            _ => hidden(),
        });
        shown.insert(id.clone(), source);
    }
    Value::Object(shown)
}

fn hidden() -> Value {
    json!(REDACTED)
}

fn shown_if(value: &Value, safe: impl Fn(&Value) -> bool) -> Value {
    if safe(value) { value.clone() } else { hidden() }
}

/// An object with each member passed through `member`; anything but an
/// object is hidden whole.
fn redact_object(value: &Value, member: impl Fn(&str, &Value) -> Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, v)| (key.clone(), member(key, v)))
                .collect(),
        ),
        _ => hidden(),
    }
}

/// A URL as its scheme, host and port, with [`REDACTED`] for the rest
/// when there is a rest.
fn origin_only(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return REDACTED.to_owned();
    };
    if parsed.host_str().is_none() {
        return REDACTED.to_owned();
    }
    let origin = parsed.origin().ascii_serialization();
    let bare = parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.password().is_none()
        && parsed.username().is_empty();
    if bare {
        format!("{origin}/")
    } else {
        format!("{origin}/{REDACTED}")
    }
}

fn random(count: usize) -> Result<Vec<u8>, DocumentError> {
    let mut bytes = vec![0; count];
    getrandom::fill(&mut bytes).map_err(DocumentError::Random)?;
    Ok(bytes)
}

/// A new signing secret: `fb_` and 43 characters of URL-safe base64
/// (256 random bits).
fn new_signing_secret() -> Result<String, DocumentError> {
    let random = random(SIGNING_SECRET_BYTES)?;
    Ok(format!(
        "fb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    ))
}

/// A new Standard Webhooks delivery secret: `whsec_` and the standard
/// base64 of 256 random bits.
fn new_webhook_secret() -> Result<String, DocumentError> {
    let random = random(WEBHOOK_SECRET_BYTES)?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &str = "fb_secret_value_that_must_never_print_0001";
    const OLD: &str = "fb_older_secret_that_must_never_print_0002";
    const WHSEC: &str = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn document(value: Value) -> TenantDocument {
        TenantDocument::from_value(value).unwrap()
    }

    fn shown(value: Value) -> String {
        document(value).redacted().to_string()
    }

    #[test]
    fn new_records_are_valid_and_their_secrets_fresh() {
        let new = NewTenant {
            destination: Some("https://hooks.acme.example/forms"),
            rate_limit: Some(50),
            routing: Routing::Dedicated,
            isolation: Isolation::Shared,
        };
        let a = TenantDocument::new(&acme(), &new).unwrap();
        let b = TenantDocument::new(&acme(), &NewTenant::default()).unwrap();
        let record = a.validate().unwrap();
        assert_eq!(record.routing, Routing::Dedicated);
        assert_eq!(record.rate_limit.unwrap().burst.get(), 100);
        assert_ne!(a.current_signing_secret(), b.current_signing_secret());
        assert_eq!(a.current_signing_secret().unwrap().len(), 46);
        assert!(record.destination.is_some());
        assert!(b.validate().unwrap().destination.is_none());
        assert_eq!(b.routing(), Some(Routing::Shared));
        let refused = NewTenant {
            destination: Some("ftp://example.com"),
            ..NewTenant::default()
        };
        assert!(matches!(
            TenantDocument::new(&acme(), &refused),
            Err(DocumentError::Invalid(_))
        ));
    }

    #[test]
    fn edits_keep_unknown_fields_and_refuse_invalid_results() {
        let mut doc = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "added_by_a_newer_version": {"kept": true},
        }));
        let new = doc.rotate().unwrap();
        assert_eq!(doc.current_signing_secret(), Some(new.as_str()));
        assert!(
            doc.set_status(TenantStatus::Suspended, 1_700_000_000)
                .unwrap()
        );
        assert_eq!(doc.suspended_at(), Some(1_700_000_000));
        // Suspending again keeps the first time.
        assert!(
            !doc.set_status(TenantStatus::Suspended, 1_800_000_000)
                .unwrap()
        );
        assert_eq!(doc.suspended_at(), Some(1_700_000_000));
        assert_eq!(doc.expire().unwrap(), 1);
        assert!(doc.set_status(TenantStatus::Active, 0).unwrap());
        assert_eq!(doc.suspended_at(), None);
        doc.set_routing(Routing::Dedicated).unwrap();
        let value = doc.clone().into_value();
        assert_eq!(value["added_by_a_newer_version"]["kept"], true);
        assert_eq!(value["routing"], "dedicated");
        assert_eq!(value["signing_secrets"].as_array().unwrap().len(), 1);

        for _ in 1..MAX_SIGNING_SECRETS {
            doc.rotate().unwrap();
        }
        let before = doc.clone();
        assert!(matches!(
            doc.rotate(),
            Err(DocumentError::TooManySecrets(MAX_SIGNING_SECRETS))
        ));
        assert_eq!(doc, before);

        // An edit of a record the functions refuse is refused too.
        let mut broken =
            document(json!({"tenant_id": "acme", "status": "active", "signing_secrets": "x"}));
        assert!(broken.rotate().is_err());
        assert!(broken.set_status(TenantStatus::Suspended, 0).is_err());
        assert_eq!(broken.status(), Some(TenantStatus::Active));
    }

    fn source(id: &str) -> SourceId {
        SourceId::parse(id).unwrap()
    }

    fn provider(name: &str) -> Provider {
        Provider::parse(name).unwrap()
    }

    const TF_NEW: &str = "tf-secret-value-that-must-never-print-new";
    const TF_OLD: &str = "tf-secret-value-that-must-never-print-old";

    fn secrets_of(doc: &TenantDocument, id: &str) -> Value {
        doc.clone().into_value()["sources"][id]["secrets"].clone()
    }

    #[test]
    fn sources_are_added_rotated_expired_and_removed_keeping_unknown_fields() {
        let mut doc = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "added_by_a_newer_version": {"kept": true},
        }));
        let tf = source("typeform-main");
        doc.add_source(&tf, provider("typeform"), &Secret::new(TF_OLD))
            .unwrap();
        assert_eq!(doc.source_provider(&tf).unwrap(), provider("typeform"));
        let record = doc.validate().unwrap();
        assert_eq!(record.sources[&tf].provider().as_str(), "typeform");

        // A field of the source this version does not know is kept too.
        let mut value = doc.clone().into_value();
        value["sources"]["typeform-main"]["note"] = json!("kept");
        let mut doc = document(value);

        let rotation = doc.rotate_source(&tf, &Secret::new(TF_NEW)).unwrap();
        assert_eq!(
            rotation,
            SourceRotation {
                provider: provider("typeform"),
                secrets: 2,
                dropped: 0
            }
        );
        assert_eq!(secrets_of(&doc, "typeform-main"), json!([TF_NEW, TF_OLD]));
        assert_eq!(doc.expire_source(&tf).unwrap(), 1);
        assert_eq!(secrets_of(&doc, "typeform-main"), json!([TF_NEW]));
        assert_eq!(doc.expire_source(&tf).unwrap(), 0);
        let value = doc.clone().into_value();
        assert_eq!(value["sources"]["typeform-main"]["note"], "kept");
        assert_eq!(value["added_by_a_newer_version"]["kept"], true);
        assert_eq!(value["signing_secrets"], json!([SECRET]));

        // Two sources; removing one keeps the other, removing the last
        // removes `sources`.
        let jf = source("jotform");
        let token = new_source_secret().unwrap();
        doc.add_source(&jf, provider("token"), &token).unwrap();
        assert_eq!(doc.validate().unwrap().sources.len(), 2);
        assert_eq!(doc.remove_source(&tf).unwrap(), provider("typeform"));
        assert_eq!(doc.validate().unwrap().sources.len(), 1);
        assert!(matches!(
            doc.remove_source(&tf),
            Err(DocumentError::NoSource(_))
        ));
        doc.remove_source(&jf).unwrap();
        let value = doc.clone().into_value();
        assert!(value.get("sources").is_none(), "{value}");
        assert_eq!(value["added_by_a_newer_version"]["kept"], true);

        // `"sources": null` reads as none.
        let mut doc = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET], "sources": null,
        }));
        doc.add_source(&tf, provider("github"), &Secret::new(TF_NEW))
            .unwrap();
        assert_eq!(doc.validate().unwrap().sources.len(), 1);
    }

    #[test]
    fn a_rotation_keeps_at_most_four_secrets_dropping_the_oldest() {
        let mut doc = TenantDocument::new(&acme(), &NewTenant::default()).unwrap();
        let id = source("stripe");
        doc.add_source(&id, provider("stripe"), &Secret::new("whsec_0"))
            .unwrap();
        for n in 1..MAX_SOURCE_SECRETS {
            let rotation = doc
                .rotate_source(&id, &Secret::new(format!("whsec_{n}")))
                .unwrap();
            assert_eq!((rotation.secrets, rotation.dropped), (n + 1, 0));
        }
        let rotation = doc.rotate_source(&id, &Secret::new("whsec_4")).unwrap();
        assert_eq!(
            (rotation.secrets, rotation.dropped),
            (MAX_SOURCE_SECRETS, 1)
        );
        assert_eq!(
            secrets_of(&doc, "stripe"),
            json!(["whsec_4", "whsec_3", "whsec_2", "whsec_1"])
        );
        doc.validate().unwrap();
    }

    #[test]
    fn source_edits_that_would_leave_an_invalid_record_are_refused_without_quoting_a_secret() {
        let mut doc = TenantDocument::new(&acme(), &NewTenant::default()).unwrap();
        let id = source("jotform");
        let short = Secret::new("short-token-value-never-printed");
        let before = doc.clone();
        let error = doc
            .add_source(&id, provider("token"), &short)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`sources.jotform`: secret 0 of a token source must be at least 32"),
            "{error}"
        );
        assert!(!error.contains("never-printed"), "{error}");
        assert_eq!(doc, before);

        let sw = source("svix");
        let error = doc
            .add_source(
                &sw,
                provider("standard-webhooks"),
                &Secret::new("whsec_!!never-printed"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("base64") && !error.contains("never-printed"),
            "{error}"
        );
        let error = doc
            .add_source(&sw, provider("github"), &Secret::new(""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("must not be empty"), "{error}");
        assert_eq!(doc, before);

        // A rotation to a secret the provider refuses changes nothing.
        let good = new_source_secret().unwrap();
        doc.add_source(&id, provider("token"), &good).unwrap();
        let before = doc.clone();
        let error = doc.rotate_source(&id, &short).unwrap_err().to_string();
        assert!(error.contains("secret 0 of a token source"), "{error}");
        assert!(!error.contains("never-printed"), "{error}");
        assert_eq!(doc, before);

        // Taken IDs and unknown sources are named; nothing changes.
        let error = doc.add_source(&id, provider("token"), &good).unwrap_err();
        assert_eq!(error.to_string(), "already has a source jotform");
        let nobody = source("nobody");
        for error in [
            doc.rotate_source(&nobody, &good).unwrap_err(),
            doc.expire_source(&nobody).unwrap_err(),
            doc.remove_source(&nobody).unwrap_err(),
            doc.source_provider(&nobody).unwrap_err(),
        ] {
            assert_eq!(error.to_string(), "has no source nobody");
        }
        assert_eq!(doc, before);

        // At most MAX_SOURCES.
        for n in 1..MAX_SOURCES {
            doc.add_source(&source(&format!("s{n}")), provider("github"), &good)
                .unwrap();
        }
        assert!(matches!(
            doc.add_source(&source("one-more"), provider("github"), &good),
            Err(DocumentError::TooManySources)
        ));

        // An edit of a record the functions refuse is refused too, and
        // `sources` of the wrong shape is named, not quoted.
        let mut broken = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "sources": ["tf-secret-value-that-must-never-print"],
        }));
        for error in [
            broken
                .add_source(&id, provider("github"), &good)
                .unwrap_err(),
            broken.rotate_source(&id, &good).unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(text.contains("`sources` must be an object"), "{text}");
            assert!(!text.contains("never-print"), "{text}");
        }
        let mut unknown = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "sources": {"x": {"provider": "tf-secret-value-that-must-never-print", "secrets": ["s"]}},
        }));
        let text = unknown
            .rotate_source(&source("x"), &good)
            .unwrap_err()
            .to_string();
        assert!(text.contains("`sources.x.provider`"), "{text}");
        assert!(!text.contains("never-print"), "{text}");
        let mut no_signing_secret = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": "x",
        }));
        assert!(
            no_signing_secret
                .add_source(&id, provider("github"), &good)
                .is_err()
        );
    }

    #[test]
    fn generated_source_secrets_are_fresh_and_suit_every_provider() {
        let a = new_source_secret().unwrap();
        let b = new_source_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SOURCE_SECRET_CHARS);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        for provider in crate::source::PROVIDERS {
            crate::source::SourceKeys::new(*provider, std::slice::from_ref(&a))
                .unwrap_or_else(|e| panic!("{provider}: {e}"));
        }
        // The receiver chooses only where the provider takes a secret it
        // is given; every name in the table is a provider.
        for name in ["typeform", "tally", "github", "token"] {
            assert!(provider(name).receiver_chooses_secret(), "{name}");
        }
        for name in [
            "stripe",
            "slack",
            "shopify",
            "hubspot",
            "webflow",
            "formspree",
            "standard-webhooks",
        ] {
            assert!(!provider(name).receiver_chooses_secret(), "{name}");
        }
    }

    #[test]
    fn isolation_is_written_only_when_per_tenant() {
        let shared = TenantDocument::new(&acme(), &NewTenant::default()).unwrap();
        assert!(!shared.to_json().contains("isolation"));
        assert_eq!(shared.isolation(), Some(Isolation::Shared));
        let isolated = TenantDocument::new(
            &acme(),
            &NewTenant {
                isolation: Isolation::PerTenant,
                ..NewTenant::default()
            },
        )
        .unwrap();
        assert_eq!(isolated.into_value()["isolation"], "per_tenant");
        let odd = document(json!({"tenant_id": "acme", "isolation": "dedicated"}));
        assert_eq!(odd.isolation(), None);
    }

    #[test]
    fn isolation_is_set_and_shared_removes_the_field() {
        let mut doc = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "routing": "dedicated", "added_by_a_newer_version": 1,
        }));
        let before = doc.clone();
        assert!(!doc.set_isolation(Isolation::Shared).unwrap());
        assert_eq!(doc, before, "already shared: nothing written");
        assert!(doc.set_isolation(Isolation::PerTenant).unwrap());
        assert_eq!(doc.isolation(), Some(Isolation::PerTenant));
        assert!(!doc.set_isolation(Isolation::PerTenant).unwrap());
        let value = doc.clone().into_value();
        assert_eq!(value["isolation"], "per_tenant");
        assert_eq!(value["routing"], "dedicated", "the rest is kept");
        assert_eq!(value["added_by_a_newer_version"], 1);
        assert!(doc.set_isolation(Isolation::Shared).unwrap());
        assert_eq!(doc, before, "back to shared: the field is gone");
        // An explicit "shared" is the same isolation: not a change.
        let mut explicit = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "isolation": "shared",
        }));
        let kept = explicit.clone();
        assert!(!explicit.set_isolation(Isolation::Shared).unwrap());
        assert_eq!(explicit, kept);
        // An invalid one is replaced; an invalid record refuses the edit.
        let mut odd = document(json!({
            "tenant_id": "acme", "status": "active", "signing_secrets": [SECRET],
            "isolation": "dedicated",
        }));
        assert!(odd.set_isolation(Isolation::PerTenant).unwrap());
        assert_eq!(odd.isolation(), Some(Isolation::PerTenant));
        let mut broken =
            document(json!({"tenant_id": "acme", "status": "active", "signing_secrets": "x"}));
        assert!(broken.set_isolation(Isolation::PerTenant).is_err());
        assert_eq!(broken.isolation(), Some(Isolation::Shared));
    }

    #[test]
    fn redaction_shows_only_what_is_known_to_be_safe() {
        let text = shown(json!({
            "tenant_id": "acme", "status": "suspended", "routing": "dedicated",
            "isolation": "per_tenant", "suspended_at": 1_700_000_000,
            "signing_secrets": [SECRET, OLD],
            "rate_limit": {"requests_per_second": 5, "burst": 10},
            "destination": {"url": "https://user:pa55@hooks.acme.example/forms?token=t0k",
                            "secret": WHSEC, "headers": {"Authorization": "Bearer tok-123"},
                            "timeout_ms": 5000},
            "future_field": {"kept": "value-of-unknown-field"},
            "sources": {"typeform-main": {"provider": "typeform", "secrets": ["tf-secret-1", "tf-secret-0"],
                                          "note": "tf-note"},
                        "odd": {"provider": "tf-secret-as-provider", "secrets": "tf-secret-2"},
                        "tf-secret-as-id!": {"provider": "typeform"}},
        }));
        for secret in [
            SECRET,
            OLD,
            "tf-secret",
            "tf-note",
            "whsec_",
            "Bearer",
            "pa55",
            "t0k",
            "forms",
            "value-of-unknown",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in [
            r#""tenant_id":"acme""#,
            r#""status":"suspended""#,
            r#""routing":"dedicated""#,
            r#""isolation":"per_tenant""#,
            "1700000000",
            r#""requests_per_second":5"#,
            r#""url":"https://hooks.acme.example/<redacted>""#,
            r#""Authorization":"<redacted>""#,
            r#""timeout_ms":5000"#,
            r#""future_field":"<redacted>""#,
            r#""typeform-main":{"note":"<redacted>","provider":"typeform","secrets":["<redacted>","<redacted>"]}"#,
        ] {
            assert!(text.contains(kept), "{kept} missing from {text}");
        }
    }

    #[test]
    fn redaction_hides_secrets_in_every_unexpected_shape() {
        let shapes = [
            // signing_secrets as a string, not a list.
            json!({"tenant_id": "acme", "signing_secrets": SECRET}),
            // A misspelt field name.
            json!({"tenant_id": "acme", "signing_secret": [SECRET]}),
            json!({"tenant_id": "acme", "signingSecrets": SECRET}),
            // The destination as a URL string.
            json!({"tenant_id": "acme", "destination": format!("https://hooks.example/{SECRET}")}),
            // Headers as an array, and a secret in an unknown destination field.
            json!({"tenant_id": "acme", "destination": {"url": "https://h.example/", "headers": [["Authorization", SECRET]]}}),
            json!({"tenant_id": "acme", "destination": {"url": "https://h.example/", "token": SECRET}}),
            json!({"tenant_id": "acme", "destination": {"url": "https://h.example/", "secret": {"value": SECRET}}}),
            // Secrets where safe values are expected.
            json!({"tenant_id": SECRET, "status": SECRET, "routing": SECRET, "isolation": SECRET, "suspended_at": SECRET}),
            json!({"tenant_id": "acme", "status": {"note": SECRET}, "rate_limit": {"requests_per_second": SECRET, "key": SECRET}}),
            json!({"tenant_id": "acme", "rate_limit": SECRET, "destination": {"url": SECRET, "timeout_ms": SECRET}}),
            json!({"tenant_id": "acme", "destination": {"url": format!("https://{SECRET}@h.example/")}}),
            json!({"tenant_id": "acme", "destination": {"url": format!("https://h.example/#{SECRET}")}}),
            json!({"tenant_id": "acme", "destination": {"url": format!("mailto:{SECRET}")}}),
        ];
        for shape in shapes {
            let text = shown(shape.clone());
            assert!(!text.contains("secret_value"), "{shape} shown as {text}");
            let debug = format!("{:?}", document(shape.clone()));
            assert!(!debug.contains("secret_value"), "{shape} debugs as {debug}");
        }
        // Field names stay visible, so the record can be mended.
        let text = shown(json!({"tenant_id": "acme", "signing_secret": [SECRET]}));
        assert_eq!(
            text,
            r#"{"signing_secret":"<redacted>","tenant_id":"acme"}"#
        );
    }

    #[test]
    fn reading_needs_only_an_object() {
        assert!(TenantDocument::from_json("[1]").is_err());
        let error = TenantDocument::from_json(&format!("{{\"x\": \"{SECRET}\"")).unwrap_err();
        assert!(!error.to_string().contains("secret_value"));
        let doc = TenantDocument::from_json(r#"{"tenant_id": "acme"}"#).unwrap();
        assert!(doc.validate().is_err());
        assert_eq!(doc.destination_host(), None);
        let doc = document(json!({"destination": {"url": "https://hooks.acme.example/x?token=t"}}));
        assert_eq!(
            doc.destination_host().as_deref(),
            Some("hooks.acme.example")
        );
    }
}
