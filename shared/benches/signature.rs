//! Signature scheme costs: what the authorizer pays per request (headers
//! only) and what ingest pays (the body digest).

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shared::signature::{self, RequestHeaders, SigningKey};
use shared::{Secret, TenantId, TenantRecord};

const NOW: i64 = testkit::VECTOR.timestamp;
const SECRET: &str = testkit::VECTOR.secret;
const OLD_SECRET: &str = "fb_test_previous_secret_0000000000000000";

fn bench(c: &mut Criterion) {
    let tenant = TenantId::parse("acme").unwrap();
    let body = vec![b'x'; 1024];
    let signed = signature::sign_request(&Secret::new(SECRET), &tenant, &body, NOW);
    let old = signature::sign_request(&Secret::new(OLD_SECRET), &tenant, &body, NOW);
    let both = format!("{}, {}", old.signature, signed.signature);
    let one_key = [SigningKey::new(&Secret::new(SECRET))];
    let two_keys = [
        SigningKey::new(&Secret::new(OLD_SECRET)),
        SigningKey::new(&Secret::new(SECRET)),
    ];
    let window = Duration::from_secs(300);
    let headers = |signature| RequestHeaders {
        timestamp: &signed.timestamp,
        content_digest: &signed.content_digest,
        signature,
    };

    let mut g = c.benchmark_group("signature");
    g.bench_function("verify_headers/1_secret_1_signature", |b| {
        let h = headers(signed.signature.as_str());
        b.iter(|| signature::verify(black_box(h), &tenant, &one_key, NOW, window))
    });
    g.bench_function("verify_headers/2_secrets_2_signatures", |b| {
        let h = headers(both.as_str());
        b.iter(|| signature::verify(black_box(h), &tenant, &two_keys, NOW, window))
    });
    g.bench_function("reject/malformed_signature", |b| {
        let h = headers("v1=not-hex");
        b.iter(|| signature::verify(black_box(h), &tenant, &one_key, NOW, window))
    });
    g.finish();

    let mut g = c.benchmark_group("content_digest");
    for size in [1024usize, 256 * 1024] {
        let body = vec![b'x'; size];
        let header = signature::content_digest(&body);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("verify/{size}B"), |b| {
            b.iter(|| signature::verify_content_digest(black_box(&header), black_box(&body)))
        });
    }
    g.finish();

    c.bench_function("tenant_record/parse_and_prepare_keys", |b| {
        let text = testkit::TenantRecordBuilder::new("acme")
            .secrets(&[SECRET, OLD_SECRET])
            .rate_limit(100, 200)
            .destination(
                "https://hooks.acme.example/forms",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .json();
        b.iter(|| TenantRecord::from_json(black_box(&text)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
