//! Ingest integration tests: one binary, eight groups.
//!
//! - `handler`: the handler on real event JSON with the in-memory bus,
//!   every rejection, and conformance with `aws_lambda_events`.
//! - `moto`: the EventBridge adapter through the real SDK against moto, a
//!   rule routing to SQS, events read back from the queue.
//! - `idempotency`: replays of a request get its first answer, once.
//! - `dynamodb`: the same across execution environments, keys in moto's
//!   DynamoDB (bootstraps in sequence and at once, concurrent handlers),
//!   and a DynamoDB that fails or hangs (503, nothing published).
//! - `faults`: the adapter against a local endpoint that speaks the
//!   EventBridge protocol badly (partial failures, throttling, 500s,
//!   timeouts, hang-ups, nothing listening).
//! - `fault_matrix`: every outside service ingest calls (EventBridge,
//!   DynamoDB, Secrets Manager) down, slow, failing, throttled, unreadable
//!   or cut off, and what the sender is told (docs/fault-matrix.md).
//! - `bootstrap`: the `bootstrap` binary under a Lambda Runtime API
//!   stand-in, configured only by environment variables.
//! - `strict_json`: JSON that strict receivers refuse is refused on both
//!   routes, and nothing of it is published.

#![allow(clippy::unwrap_used)]

mod bootstrap;
mod dynamodb;
mod fault_matrix;
mod faults;
mod handler;
mod idempotency;
mod moto;
mod strict_json;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ingest::{Config, Ingest, IngestEvent, Response};
use serde_json::{Value, json};
use shared::publish::{BusEntry, EventPublisher, MemoryPublisher};
use shared::telemetry::{CapturedMetrics, Metrics};

/// The published test vector's timestamp; the fixture's body is signed then.
pub const NOW_SECS: u64 = testkit::VECTOR.timestamp as u64;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub fn data(name: &str) -> String {
    testkit::test_data(env!("CARGO_MANIFEST_DIR"), name)
}

/// The fixture event (the published test vector's body, from acme).
pub fn fixture() -> Value {
    serde_json::from_str(&data("ingest-request.json")).unwrap()
}

/// The fixture carrying `body` with its digest and `content_type`.
pub fn event_with(body: &[u8], content_type: &str) -> Value {
    let mut event = fixture();
    event["body"] = String::from_utf8(body.to_vec()).unwrap().into();
    event["headers"]["content-type"] = content_type.into();
    event["headers"]["content-digest"] = shared::signature::content_digest(body).into();
    event
}

/// The same, base64-encoded as API Gateway sends binary bodies.
pub fn base64_event_with(body: &[u8], content_type: &str) -> Value {
    let mut event = fixture();
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    event["isBase64Encoded"] = true.into();
    event["headers"]["content-type"] = content_type.into();
    event["headers"]["content-digest"] = shared::signature::content_digest(body).into();
    event
}

/// The event as the runtime hands it over: deserialised from JSON text.
pub fn raw(v: &Value) -> IngestEvent {
    serde_json::from_str(&v.to_string()).unwrap()
}

pub fn config() -> Config {
    Config {
        event_bus_name: "form-bridge-test".into(),
        event_source: "form-bridge".into(),
        max_body_bytes: 262_144,
        idempotency_ttl: shared::idempotency::DEFAULT_TTL,
        idempotency_table: None,
        tenant_secret_prefix: "form-bridge/tenants/".into(),
        secret_cache_ttl: Duration::from_secs(300),
    }
}

/// Ingest on an in-memory bus of `capacity` entries.
pub fn memory_ingest(
    config: &Config,
    capacity: usize,
) -> (
    Ingest<MemoryPublisher>,
    tokio::sync::mpsc::Receiver<BusEntry>,
    CapturedMetrics,
) {
    let (publisher, rx) = MemoryPublisher::channel(capacity);
    let (metrics, captured) = Metrics::in_memory("ingest");
    (Ingest::new(publisher, config, metrics), rx, captured)
}

/// Status and parsed body of a response.
pub fn parts(response: &Response) -> (u16, Value) {
    assert_eq!(response.headers.content_type, "application/json");
    assert!(!response.is_base64_encoded);
    (
        response.status_code,
        serde_json::from_str(&response.body).unwrap(),
    )
}

/// The submission IDs of a 202 body.
pub fn ids(body: &Value) -> Vec<String> {
    body["submission_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("not a 202 body: {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The `error.message` of an error body.
pub fn message(body: &Value) -> &str {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// The detail the fixture becomes, with submission ID `id`.
pub fn fixture_detail(id: &str) -> Value {
    let payload: Value = serde_json::from_slice(testkit::VECTOR.body).unwrap();
    json!({
        "version": "1",
        "submission_id": id,
        "tenant_id": "acme",
        "routing": "shared",
        "received_at": "2026-01-01T00:00:00.000Z",
        "content_type": "application/json",
        "payload": payload
    })
}

/// `n` JSON submissions as one batch body, each about `pad` bytes.
pub fn batch_body(n: usize, pad: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"n": i, "pad": "x".repeat(pad)}))
        .collect();
    serde_json::to_vec(&items).unwrap()
}

/// Handles `event` and returns status and body.
pub async fn run<P: EventPublisher>(ingest: &Ingest<P>, event: &Value) -> (u16, Value) {
    parts(&ingest.handle(&raw(event), now()).await)
}
