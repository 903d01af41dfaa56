//! Connector integration tests: one binary, five groups.
//!
//! - `delivery`: single deliveries to real local HTTP servers that succeed,
//!   fail, stall, redirect, refuse connections or hide behind a name that
//!   resolves to loopback; the breaker opening and failing fast.
//! - `batch`: SQS batches mixing all of that, with exact
//!   `batchItemFailures`; direct EventBridge events; real event fixtures.
//! - `fault_matrix`: endpoints that hang up, cut their answer short or do
//!   not speak HTTP, names that do not resolve, and Secrets Manager
//!   failing or hanging under a deadline (docs/fault-matrix.md).
//! - `moto`: an event published to an EventBridge bus in moto, routed to
//!   SQS, read back and delivered with the tenant record from moto's
//!   Secrets Manager through the real SDK.
//! - `bootstrap`: the `connector` binary under a Lambda Runtime API
//!   stand-in, configured only by environment variables.

#![allow(clippy::unwrap_used)]

mod batch;
mod bootstrap;
mod delivery;
mod fault_matrix;
mod moto;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use connectors::{
    ClientOptions, Config, Connector, ConnectorEvent, DeliveryError, GuardRules, Hosts,
    HttpDeliveryClient,
};
use serde_json::{Value, json};
use shared::TenantRecord;
use shared::config::Env;
use shared::event::SubmissionIds;
use shared::store::MemoryTenantStore;
use shared::telemetry::{CapturedMetrics, Metrics};

pub use testkit::DELIVERY_SECRET;
use testkit::TenantRecordBuilder;

pub fn data(name: &str) -> String {
    testkit::test_data(env!("CARGO_MANIFEST_DIR"), name)
}

/// An active tenant record delivering to `url`, signed with
/// [`DELIVERY_SECRET`]; add destination fields, then `.build()`.
pub fn record(tenant: &str, url: &str) -> TenantRecordBuilder {
    TenantRecordBuilder::new(tenant).destination(url, DELIVERY_SECRET)
}

/// An EventBridge event (the fixture's shape) for `tenant` with a fresh
/// submission ID; returns the event's JSON and the ID.
pub fn event(tenant: &str) -> (String, String) {
    static IDS: std::sync::OnceLock<SubmissionIds> = std::sync::OnceLock::new();
    let id = IDS
        .get_or_init(SubmissionIds::new)
        .next(SystemTime::now())
        .to_string();
    let mut event: Value = serde_json::from_str(&data("eventbridge-event.json")).unwrap();
    event["detail"]["tenant_id"] = tenant.into();
    event["detail"]["submission_id"] = id.clone().into();
    (event.to_string(), id)
}

/// An SQS event whose records carry `bodies` (message IDs `m0`, `m1`, ...).
pub fn sqs(bodies: &[String]) -> ConnectorEvent {
    ConnectorEvent::from_json(&sqs_json(bodies).to_string()).unwrap()
}

/// The same SQS event as JSON (the fixture's shape).
pub fn sqs_json(bodies: &[String]) -> Value {
    let mut event: Value = serde_json::from_str(&data("sqs-event.json")).unwrap();
    let template = event["Records"][0].clone();
    event["Records"] = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut r = template.clone();
            r["messageId"] = format!("m{i}").into();
            r["body"] = body.clone().into();
            r
        })
        .collect();
    event
}

/// Delivers a fresh event for `tenant`.
pub async fn deliver(connector: &TestConnector, tenant: &str) -> Result<String, DeliveryError> {
    connector.deliver_event(&event(tenant).0, None).await
}

/// The configuration from `vars`, with backoff shortened so tests are quick.
pub fn config(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config = Config::from_env(&Env::from_map(&map)).unwrap();
    config.policy.base_delay = Duration::from_millis(5);
    config.policy.max_delay = Duration::from_millis(20);
    config
}

pub type TestConnector = Connector<MemoryTenantStore, HttpDeliveryClient>;

/// A connector over in-memory `records` with the guard as `rules` and
/// `hosts` as fixed DNS answers.
pub fn connector_with(
    records: &[Value],
    config: &Config,
    rules: GuardRules,
    hosts: Hosts,
) -> (TestConnector, CapturedMetrics) {
    let store = MemoryTenantStore::new();
    for r in records {
        store.upsert(TenantRecord::from_value(r.clone()).unwrap());
    }
    let client = HttpDeliveryClient::new(ClientOptions {
        rules,
        hosts,
        ..config.client_options()
    })
    .unwrap();
    let (metrics, captured) = Metrics::in_memory("connector");
    (Connector::new(store, client, config, metrics), captured)
}

/// A connector for local test servers: private destinations allowed.
pub fn connector(records: &[Value], vars: &[(&str, &str)]) -> (TestConnector, CapturedMetrics) {
    let mut all = vec![("ALLOW_PRIVATE_DESTINATIONS", "true")];
    all.extend_from_slice(vars);
    let config = config(&all);
    let rules = GuardRules::new(true);
    connector_with(records, &config, rules, Hosts::system())
}

/// The `Deliveries` metric lines, in order: one per delivery. Other lines
/// come and go with timing (`SlowDeliveries` when a delivery, a record
/// lookup's retries included, takes over `SLOW_DELIVERY_MS`), so tests
/// never index `lines()` directly.
pub fn deliveries(metrics: &CapturedMetrics) -> Vec<Value> {
    metrics
        .lines()
        .into_iter()
        .filter(|l| l.get("Deliveries").is_some())
        .collect()
}

/// The `Reason` of every `Deliveries` metric line, in order.
pub fn reasons(metrics: &CapturedMetrics) -> Vec<String> {
    deliveries(metrics)
        .iter()
        .map(|l| l["Reason"].as_str().unwrap_or_default().to_string())
        .collect()
}
