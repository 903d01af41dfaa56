//! Provider verification of a 1 KiB body, for every provider in the table,
//! beside one plain HMAC-SHA256 pass over the same body: the target is
//! within 2x of that pass.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::Secret;
use shared::source::{PROVIDERS, Provider, Request, SignRequest, SourceKeys};

const NOW: i64 = 1_767_225_600;
const URL: &str = "https://hooks.example.com/v1/tenants/acme/sources/main?x=a%3Ab";

fn secret(provider: Provider) -> Secret {
    match provider.as_str() {
        "standard-webhooks" => Secret::new(format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 24])
        )),
        "stripe" => Secret::new("whsec_0123456789abcdef0123456789abcdef"),
        _ => Secret::new("bench-secret-0123456789abcdef-0123456789"),
    }
}

fn bench(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let mut g = c.benchmark_group("source_1KiB");

    g.bench_function("baseline/hmac_sha256", |b| {
        let key = b"bench-secret-0123456789abcdef-0123456789";
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(key)).unwrap();
            mac.update(black_box(&body));
            mac.finalize().into_bytes()
        })
    });

    for &provider in PROVIDERS {
        let secret = secret(provider);
        let signed = provider
            .sign(
                &secret,
                &SignRequest {
                    method: "POST",
                    url: URL,
                    body: &body,
                    delivery_id: "msg_2Yh3pTq4bEwVfD1nKz8cR6sLmAo",
                },
                NOW,
            )
            .unwrap();
        let keys = SourceKeys::new(provider, &[secret]).unwrap();
        let query = signed.query.clone().unwrap_or_default();
        let lookup = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let request = Request {
            method: "POST",
            url: URL,
            query: &query,
            headers: &lookup,
            body: &body,
        };
        assert!(keys.verify(&request, NOW).is_ok(), "{provider}");
        g.bench_function(format!("verify/{provider}"), |b| {
            b.iter(|| keys.verify(black_box(&request), black_box(NOW)).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
