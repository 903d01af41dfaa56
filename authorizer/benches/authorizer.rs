//! The warm authorizer, end to end in-process: event JSON bytes in
//! (deserialised as the runtime does), decision, log filter, EMF metric
//! line, response JSON bytes out. The tenant record is cached, as on every warm request
//! after the first.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use authorizer::{Authorizer, AuthorizerEvent, Config};
use criterion::{Criterion, criterion_group, criterion_main};
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;

const NOW: i64 = 1_767_225_600;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // acme as in tests/data/tenants.json, with a limit high enough that the
    // limiter is consulted on every request but never denies.
    let store = MemoryTenantStore::from_json(
        r#"[{"tenant_id":"acme","status":"active","routing":"shared",
             "signing_secrets":["fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c"],
             "rate_limit":{"requests_per_second":1000000,"burst":1000000}}]"#,
    )
    .unwrap();
    let config = Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    let authorizer = Authorizer::new(
        store,
        &config,
        Metrics::to_writer("authorizer", std::io::sink()),
    );
    let event = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/authorizer-request.json"
    ))
    .unwrap();
    let mut forged: serde_json::Value = serde_json::from_slice(&event).unwrap();
    forged["headers"]["x-formbridge-signature"] = format!("v1={}", "0".repeat(64)).into();
    let forged = serde_json::to_vec(&forged).unwrap();

    // As the runtime does it: bytes deserialised, handler awaited inside the
    // running runtime, response serialised.
    let invoke = async |bytes: &[u8]| {
        let payload: AuthorizerEvent = serde_json::from_slice(bytes).unwrap();
        let response = authorizer.handle(&payload, NOW).await;
        serde_json::to_vec(&response).unwrap()
    };
    assert!(
        rt.block_on(invoke(&event))
            .starts_with(br#"{"isAuthorized":true"#)
    );
    assert!(
        rt.block_on(invoke(&forged))
            .starts_with(br#"{"isAuthorized":false"#)
    );

    let mut g = c.benchmark_group("authorizer_handler");
    g.bench_function("warm/allow", |b| {
        b.to_async(&rt).iter(|| invoke(black_box(&event)))
    });
    g.bench_function("warm/deny_bad_signature", |b| {
        b.to_async(&rt).iter(|| invoke(black_box(&forged)))
    });
    g.finish();

    // Where the time goes.
    let mut g = c.benchmark_group("authorizer_parts");
    g.bench_function("parse_event", |b| {
        b.iter(|| serde_json::from_slice::<AuthorizerEvent>(black_box(&event)).unwrap())
    });
    let metrics = Metrics::to_writer("authorizer", std::io::sink());
    g.bench_function("emf_line", |b| {
        b.iter(|| {
            metrics.count(
                "Authorizations",
                black_box(&[
                    ("Decision", "allow"),
                    ("Reason", "ok"),
                    ("TenantId", "acme"),
                ]),
                &[
                    &["Decision"],
                    &["Decision", "Reason"],
                    &["TenantId", "Decision"],
                ],
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
