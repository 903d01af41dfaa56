//! The warm authorizer that both the criterion benchmark
//! (`benches/authorizer.rs`) and the instruction-count example
//! (`examples/handler_loop.rs`) measure, so their numbers describe the same
//! thing: acme from `tests/data/tenants.json`, with a rate limit high enough
//! that the limiter is consulted on every request but never denies.

use authorizer::{Authorizer, Config};
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;

/// The fixture's signing time (the published test vector's).
pub(crate) const NOW: i64 = testkit::VECTOR.timestamp;

/// An authorizer with acme's record cached after the first request, and
/// metrics written (then discarded) as in production.
pub(crate) fn warm_authorizer() -> Authorizer<MemoryTenantStore> {
    let acme = testkit::TenantRecordBuilder::new("acme")
        .secret(testkit::VECTOR.secret)
        .routing("shared")
        .rate_limit(1_000_000, 1_000_000)
        .build();
    // The isolated path's tenant: the same record, through the REST API.
    let initech = testkit::TenantRecordBuilder::new("initech")
        .secret(testkit::VECTOR.secret)
        .routing("shared")
        .rate_limit(1_000_000, 1_000_000)
        .field("isolation", serde_json::json!("per_tenant"))
        .build();
    let store = MemoryTenantStore::from_json(&format!("[{acme},{initech}]")).unwrap();
    let config = Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    Authorizer::new(
        store,
        &config,
        Metrics::to_writer("authorizer", std::io::sink()),
    )
}

/// The signed fixture event, as the runtime receives it.
pub(crate) fn signed_event() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/authorizer-request.json"
    ))
    .unwrap()
}

/// The fixture with a well-formed signature that matches no secret.
pub(crate) fn forged_event() -> Vec<u8> {
    let mut forged: serde_json::Value = serde_json::from_slice(&signed_event()).unwrap();
    forged["headers"]["x-formbridge-signature"] = format!("v1={}", "0".repeat(64)).into();
    serde_json::to_vec(&forged).unwrap()
}

/// The isolated REST API's event for initech, signed as the fixture is.
pub(crate) fn rest_event() -> Vec<u8> {
    let mut event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/rest-authorizer-request.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let tenant = shared::TenantId::parse("initech").unwrap();
    let h = shared::signature::sign_request(
        &shared::Secret::new(testkit::VECTOR.secret),
        &tenant,
        testkit::VECTOR.body,
        NOW,
    );
    event["pathParameters"]["tenant_id"] = "initech".into();
    event["methodArn"] = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/isolated/POST/v1/tenants/initech/submissions".into();
    event["headers"]["X-FormBridge-Timestamp"] = h.timestamp.into();
    event["headers"]["Content-Digest"] = h.content_digest.into();
    event["headers"]["X-FormBridge-Signature"] = h.signature.into();
    serde_json::to_vec(&event).unwrap()
}
