//! The warm authorizer, end to end in-process: event JSON bytes in
//! (deserialised as the runtime does), decision, log filter, EMF metric
//! line, response JSON bytes out. The tenant record is cached, as on every warm request
//! after the first.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

mod support;

use authorizer::AuthorizerEvent;
use criterion::{Criterion, criterion_group, criterion_main};
use shared::telemetry::Metrics;

use support::NOW;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let authorizer = support::warm_authorizer();
    let event = support::signed_event();
    let forged = support::forged_event();
    let rest = support::rest_event();

    // As the runtime does it: bytes deserialised, handler awaited inside the
    // running runtime, response serialised.
    let invoke = async |bytes: &[u8]| {
        let payload: AuthorizerEvent = serde_json::from_slice(bytes).unwrap();
        let response = authorizer.handle(&payload, NOW).await.unwrap();
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
    assert!(
        String::from_utf8(rt.block_on(invoke(&rest)))
            .unwrap()
            .contains(r#""Effect":"Allow""#)
    );

    let mut g = c.benchmark_group("authorizer_handler");
    g.bench_function("warm/allow", |b| {
        b.to_async(&rt).iter(|| invoke(black_box(&event)))
    });
    g.bench_function("warm/deny_bad_signature", |b| {
        b.to_async(&rt).iter(|| invoke(black_box(&forged)))
    });
    // The isolated path: the REST API's event, answered with a policy.
    g.bench_function("warm/allow_rest", |b| {
        b.to_async(&rt).iter(|| invoke(black_box(&rest)))
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
