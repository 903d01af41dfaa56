//! The authorizer's event reader and decision (docs/protocol.md, section
//! 3): any bytes as the Lambda payload, read as an `AuthorizerEvent`, then
//! `Authorizer::handle` (as the Lambda runs it) and
//! `Authorizer::authorize` (as the local gateway does) over the fixture
//! tenants in memory, at the test vector's time.
//!
//! Input: the event's JSON (seeds: API Gateway's HTTP and REST authorizer
//! events, signed for the fixture tenants).
//! Asserts: nothing panics; any JSON reads as an event (only non-JSON is
//! refused, so every event is answered, with a deny when it is not a
//! request); no answer contains a secret; an allow is only ever given to
//! an active tenant of the fixture, through its own API, with a fresh
//! timestamp and a signature made with one of its secrets, or on a source
//! route to one of its sources (a token source with its token).
#![no_main]

use std::time::Duration;

use authorizer::{Api, Authorizer, AuthorizerEvent, Config, Request};
use libfuzzer_sys::fuzz_target;
use shared::signature::SigningKey;
use shared::telemetry::Metrics;
use shared::{Secret, TenantId};

fuzz_target!(|data: &[u8]| {
    let event: AuthorizerEvent = match serde_json::from_slice(data) {
        Ok(event) => event,
        Err(_) => {
            // Any JSON API Gateway can write: UTF-8 text (RFC 8259,
            // section 8.1) whose numbers fit an f64 and whose strings are
            // Unicode. (A number such as 2E754 or a lone surrogate escape
            // "\ud800" is valid JSON serde_json cannot read as a string or
            // number, so no event from it: the runtime, not a deny,
            // answers. docs/fuzzing.md, "Findings".)
            let json = std::str::from_utf8(data)
                .is_ok_and(|text| serde_json::from_str::<serde_json::Value>(text).is_ok());
            assert!(
                !json,
                "valid JSON that is not read as an event: the Lambda would fail instead of denying"
            );
            return;
        }
    };
    let config = Config {
        tenant_secret_prefix: "form-bridge/tenants/".into(),
        secret_cache_ttl: Duration::from_secs(300),
        replay_window: Duration::from_secs(300),
    };
    let authorizer = Authorizer::new(fuzz::tenants(), &config, Metrics::off("authorizer"));

    // The fixture's records are in memory: never unavailable.
    let response = fuzz::block_on(authorizer.handle(&event, fuzz::NOW))
        .expect("an in-memory store is always readable");
    let answer = serde_json::to_string(&response).expect("answers serialise");
    // A REST answer's policy names the caller's methodArn, whatever it
    // holds; no other secret may show.
    let arn = event.method_arn.as_deref().unwrap_or_default();
    for secret in fuzz::fixture_secrets() {
        if !arn.contains(secret.as_str()) {
            assert!(!answer.contains(secret.as_str()), "a secret in the answer");
        }
    }
    if response.is_authorized() {
        let api = event.api().expect("an allow answers an authorizer request");
        allowed(&event, Some(api));
    }

    let decision = fuzz::block_on(authorizer.authorize(Request::from_event(&event), fuzz::NOW));
    if decision.verdict.is_ok() {
        allowed(&event, None);
    }
});

/// Checks an allow against the fixture independently of the authorizer.
fn allowed(event: &AuthorizerEvent, api: Option<Api>) {
    let tenant = event.tenant_id.as_deref().expect("an allow names a tenant");
    let id = TenantId::parse(tenant).expect("an allow names a valid tenant");
    let record = fuzz::fixture_record(tenant).expect("an allow is for a known tenant");
    assert_eq!(record["status"], "active", "a suspended tenant allowed");
    let isolated = record["isolation"] == "per_tenant";
    match api {
        Some(Api::Http) => assert!(!isolated, "an isolated tenant allowed on the HTTP API"),
        Some(Api::Rest) => assert!(isolated, "a shared tenant allowed on the REST API"),
        None => {}
    }
    match event.source_id.as_deref() {
        None => {
            let timestamp = event.timestamp.as_deref().expect("a timestamp");
            let digest = event.content_digest.as_deref().expect("a digest");
            let signature = event
                .signature
                .as_deref()
                .expect("a signature")
                .to_ascii_lowercase();
            let ts: i64 = timestamp.parse().expect("a decimal timestamp");
            assert!(
                (ts - fuzz::NOW).abs() <= 300,
                "a stale or future timestamp allowed"
            );
            let signed = record["signing_secrets"]
                .as_array()
                .expect("secrets")
                .iter()
                .filter_map(|s| s.as_str())
                .any(|secret| {
                    let mac = SigningKey::new(&Secret::new(secret)).sign(timestamp, &id, digest);
                    signature.contains(&mac["v1=".len()..])
                });
            assert!(
                signed,
                "allowed without a signature by one of the tenant's secrets"
            );
        }
        Some(source) => {
            let provider = record["sources"][source]["provider"]
                .as_str()
                .expect("an allow is for one of the tenant's sources");
            if provider == "token" {
                let query = event.raw_query.as_deref().unwrap_or_default();
                let tokens: Vec<_> = url::form_urlencoded::parse(query.as_bytes())
                    .filter(|(name, _)| name == "token")
                    .map(|(_, value)| value.into_owned())
                    .collect();
                let secrets = fuzz::source_secrets(tenant, source);
                assert!(
                    matches!(tokens.as_slice(), [one] if secrets.contains(&one.as_str())),
                    "a token source allowed without its token"
                );
            }
        }
    }
}
