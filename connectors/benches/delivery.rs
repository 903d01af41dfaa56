//! Delivery throughput and the cost of a refused delivery.
//!
//! - `pooled` vs `new_client`: deliveries to a local endpoint through the
//!   process's one pooled client, against building a new client for every
//!   delivery (what a handler that creates its client per event does), one
//!   at a time and 100 at a time (32 concurrent), in the same run.
//! - `breaker_open`: a whole `deliver_event` (parse, cached tenant lookup,
//!   breaker, metrics) for a destination whose breaker is open; the bench
//!   asserts that no request reached the endpoint meanwhile.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;
use connectors::{
    Config, Connector, Deliverer, DeliveryPolicy, HttpDeliveryClient, Submission, Target,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt as _;
use serde_json::Value;
use shared::TenantRecord;
use shared::config::Env;
use shared::event::SubmissionIds;
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;
use testkit::{DELIVERY_SECRET, HttpServer, Reply, TenantRecordBuilder};

fn record(url: &str) -> TenantRecord {
    let record = TenantRecordBuilder::new("acme").destination(url, DELIVERY_SECRET);
    TenantRecord::from_value(record.build()).unwrap()
}

fn event() -> String {
    let mut e: Value =
        serde_json::from_str(include_str!("../tests/data/eventbridge-event.json")).unwrap();
    e["detail"]["submission_id"] = SubmissionIds::new()
        .next(SystemTime::now())
        .to_string()
        .into();
    e.to_string()
}

fn config(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_env(&Env::from_map(&map)).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let record = record(&server.url());
    let config = config(&[("ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let event = event();
    let submission = Submission::parse(&event).unwrap();
    let body: Bytes = submission.body();
    let target = Target {
        tenant: &record.tenant_id,
        destination: record.destination.as_ref().unwrap(),
        id: &submission.detail.submission_id,
    };
    let quiet = || Metrics::to_writer("connector", std::io::sink());
    let policy = DeliveryPolicy {
        max_attempts: 1,
        ..config.policy
    };
    let pooled = Deliverer::new(
        HttpDeliveryClient::new(config.client_options()).unwrap(),
        policy,
        quiet(),
    );
    let fresh = || {
        Deliverer::new(
            HttpDeliveryClient::new(config.client_options()).unwrap(),
            policy,
            quiet(),
        )
    };

    let mut g = c.benchmark_group("delivery");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pooled/one_at_a_time", |b| {
        b.to_async(&rt).iter(|| async {
            assert!(pooled.deliver(&target, &body, None).await.result.is_ok());
        })
    });
    g.bench_function("new_client/one_at_a_time", |b| {
        b.to_async(&rt).iter(|| async {
            assert!(fresh().deliver(&target, &body, None).await.result.is_ok());
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("pooled/100_by_32", |b| {
        b.to_async(&rt).iter(|| async {
            let ok = futures_util::stream::iter(0..100)
                .map(|_| pooled.deliver(&target, &body, None))
                .buffer_unordered(32)
                .filter(|a| std::future::ready(a.result.is_ok()))
                .count()
                .await;
            assert_eq!(ok, 100);
        })
    });
    g.bench_function("new_client/100_by_32", |b| {
        b.to_async(&rt).iter(|| async {
            let ok = futures_util::stream::iter(0..100)
                .map(|_| async { fresh().deliver(&target, &body, None).await })
                .buffer_unordered(32)
                .filter(|a| std::future::ready(a.result.is_ok()))
                .count()
                .await;
            assert_eq!(ok, 100);
        })
    });
    g.finish();

    // A destination that fails once opens its breaker (threshold 1), then
    // every delivery to it is refused before any network call.
    let down = HttpServer::start(|_, _| Reply::json(503, "{}"));
    let store = MemoryTenantStore::new();
    store.upsert(self::record(&down.url()));
    let config = self::config(&[
        ("ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("BREAKER_FAILURE_THRESHOLD", "1"),
        ("BREAKER_COOL_DOWN_SECONDS", "3600"),
        ("DELIVERY_ATTEMPTS", "1"),
    ]);
    let client = HttpDeliveryClient::new(config.client_options()).unwrap();
    let connector = Connector::new(store, client, &config, quiet());
    rt.block_on(async {
        let error = connector.deliver_event(&event, None).await.unwrap_err();
        assert_eq!(error.code(), "http_5xx");
    });
    let mut g = c.benchmark_group("breaker_open");
    g.bench_function("deliver_event", |b| {
        b.to_async(&rt).iter(|| async {
            let error = connector.deliver_event(&event, None).await.unwrap_err();
            assert_eq!(error.code(), "breaker_open");
        })
    });
    g.finish();
    assert_eq!(down.requests().len(), 1, "an open breaker made a request");
}

criterion_group!(benches, bench);
criterion_main!(benches);
