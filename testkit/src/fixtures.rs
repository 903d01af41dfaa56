//! Fixtures written once: data that every crate's tests share.
//!
//! - [`VECTOR`]: the published test vector (docs/protocol.md, section 1).
//! - [`TenantRecordBuilder`]: tenant records as JSON, with defaults that
//!   parse (active, a signing secret long enough), so a test names only
//!   what it is about.
//! - [`assert_start_up_fails`]: a Lambda binary given a bad variable exits
//!   before it asks for an invocation, naming the variable.
//! - [`test_data`]: a file from a crate's `tests/data/`.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::runtime_api::FakeRuntimeApi;

/// The published signing test vector: `secret` signs `body` for `tenant`
/// at `timestamp`, giving these `Content-Digest` and signature headers.
#[derive(Debug, Clone, Copy)]
pub struct TestVector {
    /// The tenant ID in the route.
    pub tenant: &'static str,
    /// acme's signing secret.
    pub secret: &'static str,
    /// `X-FormBridge-Timestamp`, in Unix seconds.
    pub timestamp: i64,
    /// The request body.
    pub body: &'static [u8],
    /// `Content-Digest` of the body.
    pub content_digest: &'static str,
    /// `X-FormBridge-Signature`.
    pub signature: &'static str,
}

/// The published test vector (docs/protocol.md, section 1). The `tests/data`
/// request events of the authorizer and ingest carry it too.
pub const VECTOR: TestVector = TestVector {
    tenant: "acme",
    secret: "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c",
    timestamp: 1_767_225_600,
    body: br#"{"email":"ada@example.com","message":"Hello"}"#,
    content_digest: "sha-256=:kLZCCKh+RzacssrmVJu0nqgcAB6+8wBJdYBvr/uyQc8=:",
    signature: "v1=92f42e07398400bf7b1ec50fb0219ba4006c5243c4cb965976ac8ad22d76693f",
};

/// A delivery secret for test destinations: `whsec_` and the base64 of 32
/// bytes.
pub const DELIVERY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=";

/// The signing secret a [`TenantRecordBuilder`] gives `tenant` unless told
/// otherwise: the test vector's for acme, else `fb_test_<tenant>_` padded
/// with zeros to 40 characters (records need at least 32).
pub fn signing_secret(tenant: &str) -> String {
    if tenant == VECTOR.tenant {
        return VECTOR.secret.to_owned();
    }
    format!("{:0<40}", format!("fb_test_{tenant}_"))
}

/// A tenant record as JSON (docs/protocol.md, section 4), for stores,
/// tenants files and Secrets Manager in tests.
///
/// [`TenantRecordBuilder::new`] gives an active record with one signing
/// secret ([`signing_secret`]); every other field is absent until set.
/// Nothing is validated, so a test can build a record that must be refused.
///
/// ```
/// use testkit::TenantRecordBuilder;
///
/// let record = TenantRecordBuilder::new("acme")
///     .destination("https://hooks.acme.example/forms", testkit::DELIVERY_SECRET)
///     .header("Authorization", "Bearer t0ken")
///     .rate_limit(5, 3)
///     .build();
/// assert_eq!(record["status"], "active");
/// assert_eq!(record["signing_secrets"][0], testkit::VECTOR.secret);
/// assert_eq!(record["destination"]["headers"]["Authorization"], "Bearer t0ken");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TenantRecordBuilder {
    record: Map<String, Value>,
}

impl TenantRecordBuilder {
    /// An active record for `tenant` signed with [`signing_secret`].
    pub fn new(tenant: &str) -> Self {
        let mut record = Map::new();
        record.insert("tenant_id".into(), tenant.into());
        record.insert("status".into(), "active".into());
        record.insert("signing_secrets".into(), json!([signing_secret(tenant)]));
        Self { record }
    }

    /// One signing secret instead of the default.
    pub fn secret(self, secret: &str) -> Self {
        self.secrets(&[secret])
    }

    /// Several signing secrets, newest first (a rotation in progress).
    pub fn secrets(self, secrets: &[&str]) -> Self {
        self.field("signing_secrets", json!(secrets))
    }

    /// `active` or `suspended`.
    pub fn status(self, status: &str) -> Self {
        self.field("status", json!(status))
    }

    /// `shared` or `dedicated`.
    pub fn routing(self, routing: &str) -> Self {
        self.field("routing", json!(routing))
    }

    /// The tenant's rate limit.
    pub fn rate_limit(self, requests_per_second: u32, burst: u32) -> Self {
        self.field(
            "rate_limit",
            json!({"requests_per_second": requests_per_second, "burst": burst}),
        )
    }

    /// Deliveries go to `url`, signed with `secret` (`whsec_...`).
    pub fn destination(mut self, url: &str, secret: &str) -> Self {
        let destination = self.destination_mut();
        destination.insert("url".into(), url.into());
        destination.insert("secret".into(), secret.into());
        self
    }

    /// A header sent with every delivery.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let headers = self
            .destination_mut()
            .entry("headers")
            .or_insert_with(|| json!({}));
        headers[name] = value.into();
        self
    }

    /// The delivery timeout for this destination.
    pub fn timeout_ms(mut self, timeout_ms: u64) -> Self {
        self.destination_mut()
            .insert("timeout_ms".into(), timeout_ms.into());
        self
    }

    /// A source `id` of `provider` verified with `secrets` (current first).
    pub fn source(mut self, id: &str, provider: &str, secrets: &[&str]) -> Self {
        let sources = self.record.entry("sources").or_insert_with(|| json!({}));
        sources[id] = json!({"provider": provider, "secrets": secrets});
        self
    }

    /// Any top-level field, as given (replacing what was there).
    pub fn field(mut self, name: &str, value: Value) -> Self {
        self.record.insert(name.into(), value);
        self
    }

    /// The record.
    pub fn build(self) -> Value {
        Value::Object(self.record)
    }

    /// The record as JSON text (a Secrets Manager secret string).
    pub fn json(self) -> String {
        self.build().to_string()
    }

    fn destination_mut(&mut self) -> &mut Map<String, Value> {
        let destination = self
            .record
            .entry("destination")
            .or_insert_with(|| json!({}));
        if !destination.is_object() {
            *destination = json!({});
        }
        destination.as_object_mut().unwrap()
    }
}

impl From<TenantRecordBuilder> for Value {
    fn from(builder: TenantRecordBuilder) -> Self {
        builder.build()
    }
}

/// An ingest proxy event of the submissions route (as in ingest's test
/// data) moved to the source route of `tenant`'s `source`, as API Gateway
/// hands it to ingest after the source route's authorizer: the route key,
/// path, path parameters and the authorizer's `source_id`, the signature
/// headers replaced by `headers` (a provider's), and `body`.
pub fn on_source_route(
    mut event: Value,
    tenant: &str,
    source: &str,
    headers: impl IntoIterator<Item = (&'static str, String)>,
    body: &str,
) -> Value {
    event["routeKey"] = "POST /v1/tenants/{tenant_id}/sources/{source_id}".into();
    event["rawPath"] = format!("/v1/tenants/{tenant}/sources/{source}").into();
    event["pathParameters"] = json!({"tenant_id": tenant, "source_id": source});
    event["requestContext"]["authorizer"]["lambda"]["source_id"] = source.into();
    if let Some(map) = event["headers"].as_object_mut() {
        for name in [
            "content-digest",
            "x-formbridge-signature",
            "x-formbridge-timestamp",
        ] {
            map.remove(name);
        }
        for (name, value) in headers {
            map.insert(name.to_owned(), value.into());
        }
    }
    event["body"] = body.into();
    event
}

/// Starts the Lambda binary `exe` as Lambda would, with only `AWS_REGION`
/// and `vars` set, and asserts that it fails start-up: it exits unsuccessfully,
/// names `variable` on stderr, and never asks the Runtime API for an
/// invocation. Returns stderr.
pub fn assert_start_up_fails(exe: &str, vars: &[(&str, &str)], variable: &str) -> String {
    let runtime = FakeRuntimeApi::start([]);
    let output = runtime
        .command(exe)
        .env("AWS_REGION", "us-east-1")
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{exe} started with bad configuration:\n{stderr}"
    );
    assert!(stderr.contains(variable), "{stderr}");
    assert!(
        runtime.first_poll().is_none(),
        "{exe} must not serve with bad configuration"
    );
    stderr
}

/// A fixture from a crate's `tests/data/` (pass `env!("CARGO_MANIFEST_DIR")`).
pub fn test_data(crate_dir: &str, name: &str) -> String {
    let path = Path::new(crate_dir).join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_secrets_are_the_vectors_for_acme_and_long_enough_for_others() {
        assert_eq!(signing_secret("acme"), VECTOR.secret);
        assert_eq!(signing_secret("globex"), signing_secret("globex"));
        assert_ne!(signing_secret("globex"), signing_secret("umbrella"));
        for tenant in ["a", "globex", &"x".repeat(64)] {
            assert!(signing_secret(tenant).chars().count() >= 32, "{tenant}");
        }
    }

    #[test]
    fn the_builder_writes_only_what_it_is_told_besides_the_defaults() {
        assert_eq!(
            TenantRecordBuilder::new("globex").build(),
            json!({"tenant_id": "globex", "status": "active",
                   "signing_secrets": [signing_secret("globex")]})
        );
        let record = TenantRecordBuilder::new("acme")
            .secrets(&["new-secret", "old-secret"])
            .status("suspended")
            .routing("dedicated")
            .rate_limit(5, 3)
            .timeout_ms(200)
            .header("X-Key", "k")
            .destination("https://hooks.acme.example/", DELIVERY_SECRET)
            .field("extra", json!([1]))
            .json();
        let parsed: Value = serde_json::from_str(&record).unwrap();
        assert_eq!(
            parsed,
            json!({
                "tenant_id": "acme", "status": "suspended", "routing": "dedicated",
                "signing_secrets": ["new-secret", "old-secret"],
                "rate_limit": {"requests_per_second": 5, "burst": 3},
                "destination": {"url": "https://hooks.acme.example/", "secret": DELIVERY_SECRET,
                                "timeout_ms": 200, "headers": {"X-Key": "k"}},
                "extra": [1]
            })
        );
    }
}
