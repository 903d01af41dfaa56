//! Ingest's event reader and the whole handler (docs/protocol.md,
//! sections 1, 2, 9 and 10): any bytes as the Lambda payload, read as an
//! `IngestEvent`, then `Ingest::handle` publishing to the in-memory bus,
//! with the fixture tenants' sources, at the test vector's time.
//!
//! Input: the event's JSON (seeds: API Gateway's HTTP and REST proxy
//! events with the authorizer's context, signed submissions, forms,
//! batches, and a signed delivery for each provider's source).
//! Asserts: nothing panics; every answer is a documented status with a
//! JSON body; a 202 published exactly its `submission_ids`, in order, for
//! the authorizer's tenant, and any other answer published nothing; every
//! published event parses; no answer shows a secret the request did not
//! carry; an accepted token source's event never holds its token.
#![no_main]

use std::time::Duration;

use base64::Engine as _;
use ingest::{Config, Ingest, IngestEvent};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;
use shared::publish::MemoryPublisher;
use shared::store::{CachePolicy, CachedTenantStore};
use shared::telemetry::Metrics;

const STATUSES: &[u16] = &[200, 202, 400, 401, 403, 409, 413, 415, 422, 500, 503];

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<IngestEvent>(data) else {
        return;
    };
    let config = Config {
        event_bus_name: "fuzz".into(),
        event_source: "form-bridge".into(),
        max_body_bytes: 262_144,
        idempotency_ttl: Duration::from_secs(86_400),
        idempotency_table: None,
        tenant_secret_prefix: "form-bridge/tenants/".into(),
        secret_cache_ttl: Duration::from_secs(300),
    };
    let (publisher, mut bus) = MemoryPublisher::channel(1_000);
    let records = CachedTenantStore::new(
        fuzz::tenants(),
        CachePolicy::with_ttl(Duration::from_secs(300)),
    );
    let ingest =
        Ingest::new(publisher, &config, Metrics::off("ingest")).with_tenant_records(records);

    let response = fuzz::block_on(ingest.handle(&event, fuzz::now()));
    let status = response.status_code;
    assert!(STATUSES.contains(&status), "status {status}");
    let body: Value = serde_json::from_str(&response.body).expect("every answer is JSON");

    let mut published = Vec::new();
    while let Ok(entry) = bus.try_recv() {
        published.push(entry);
    }
    if status == 202 {
        let ids: Vec<&str> = body["submission_ids"]
            .as_array()
            .expect("a 202 lists submission_ids")
            .iter()
            .map(|id| id.as_str().expect("IDs are strings"))
            .collect();
        assert_eq!(
            published.len(),
            ids.len(),
            "a 202 published other than its IDs"
        );
        let context = event
            .request_context
            .authorizer
            .as_ref()
            .expect("an authorizer context");
        let tenant = context.tenant_and_routing().0.expect("a tenant");
        for (entry, id) in published.iter().zip(&ids) {
            serde_json::from_str::<IgnoredAny>(&entry.detail).expect("events parse");
            if let Ok(detail) = serde_json::from_str::<Value>(&entry.detail) {
                assert_eq!(detail["submission_id"], *id);
                assert_eq!(detail["tenant_id"], tenant);
            }
        }
        if context.source_id() == Some("token") {
            for secret in fuzz::source_secrets(tenant, "token") {
                for entry in &published {
                    assert!(
                        !entry.detail.contains(secret),
                        "a token source's token published"
                    );
                    assert!(
                        fuzz::decoded_strings_lack(&entry.detail, secret),
                        "a token source's token published, spelt with escapes"
                    );
                }
            }
        }
    } else {
        assert!(
            published.is_empty(),
            "{status} but published {}",
            published.len()
        );
    }

    // Secrets the request did not carry never show in the answer.
    if status != 200 {
        let decoded = match (&event.body, event.is_base64_encoded) {
            (Some(b), true) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (Some(b), false) => b.clone().into_bytes(),
            (None, _) => Vec::new(),
        };
        let carried = |s: &str| contains(data, s.as_bytes()) || contains(&decoded, s.as_bytes());
        for secret in fuzz::fixture_secrets() {
            if !carried(secret) {
                assert!(
                    !response.body.contains(secret.as_str()),
                    "a secret in the answer"
                );
            }
        }
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
