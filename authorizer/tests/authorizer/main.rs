//! Authorizer integration tests: one binary, in groups.
//!
//! - `handler`: the handler on real event JSON, tenants from a tenants file.
//! - `rest`: the isolated path's REST API events and each tenant on its own
//!   API.
//! - `secrets_manager`: the handler on tenants in a moto server, through the
//!   real AWS SDK, including the server going away.
//! - `fault_matrix`: Secrets Manager refusing, hanging, failing,
//!   throttling, unreadable or cut off, for a cached tenant and an unseen
//!   one, and the tenant directory failing (docs/fault-matrix.md).
//! - `bootstrap`: the release `bootstrap` binary under a Lambda Runtime API
//!   stand-in, configured only by environment variables.

#![allow(clippy::unwrap_used)]

mod bootstrap;
mod fault_matrix;
mod handler;
mod rest;
mod secrets_manager;
mod sources;

use authorizer::AuthorizerEvent;
use serde_json::Value;

/// The published test vector's timestamp (the fixture is signed at it).
pub const NOW: i64 = testkit::VECTOR.timestamp;
/// acme's signing secret in `tests/data/tenants.json`: the test vector's.
pub const ACME_SECRET: &str = testkit::VECTOR.secret;
/// umbrella's signing secret in `tests/data/tenants.json`.
pub const UMBRELLA_SECRET: &str = "fb_test_umbrella_secret_000000000000000";
/// globex's signing secret in `tests/data/tenants.json`.
pub const GLOBEX_SECRET: &str = "fb_test_globex_secret_0000000000000000";

pub fn data(name: &str) -> String {
    testkit::test_data(env!("CARGO_MANIFEST_DIR"), name)
}

/// The fixture event, as JSON.
pub fn fixture() -> Value {
    serde_json::from_str(&data("authorizer-request.json")).unwrap()
}

/// The fixture re-signed for `tenant` with `secret` at `now` over `body`.
pub fn signed_event(tenant: &str, secret: &str, body: &[u8], now: i64) -> Value {
    let mut event = fixture();
    let tenant_id = shared::TenantId::parse(tenant).unwrap();
    let h = shared::signature::sign_request(&shared::Secret::new(secret), &tenant_id, body, now);
    event["pathParameters"]["tenant_id"] = tenant.into();
    let headers = &mut event["headers"];
    headers["x-formbridge-timestamp"] = h.timestamp.into();
    headers["content-digest"] = h.content_digest.into();
    headers["x-formbridge-signature"] = h.signature.into();
    event
}

/// The event as the runtime hands it over: deserialised from the JSON text.
pub fn raw(v: &Value) -> AuthorizerEvent {
    serde_json::from_str(&v.to_string()).unwrap()
}
