//! What the idempotency check costs a request: a new request's claim and
//! completion, and a replay's claim, in the memory store (CPU only) and in
//! the DynamoDB store against moto through the real SDK (round trips on
//! loopback, beside one bare GetItem for moto's own cost per call).
//! Moto is Python: its round trips are far slower than DynamoDB's; what
//! carries over to AWS is the number of round trips (docs/performance.md).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use criterion::{Criterion, criterion_group, criterion_main};
use shared::TenantId;
use shared::idempotency::{
    Claim, DEFAULT_TTL, DynamoDbIdempotencyStore, IdempotencyKey, IdempotencyStore,
    MemoryIdempotencyStore,
};
use testkit::MotoServer;

const TABLE: &str = "form-bridge-idempotency";

/// A key no request used before.
fn fresh_key(tenant: &TenantId, counter: &AtomicU64) -> IdempotencyKey {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    IdempotencyKey::from_signed_identity(tenant, &n.to_string(), "sha-256=:bench:")
}

/// Claims a fresh key and completes it with one submission ID, as an
/// accepted request does.
async fn accept<S: IdempotencyStore>(store: &S, key: IdempotencyKey, ids: &[String]) {
    let Claim::New(ticket) = store.claim(&key).await.unwrap() else {
        panic!("not a new claim")
    };
    store.complete(&ticket, ids).await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let ids = vec!["01938a5e-7c2b-7d3e-9f10-123456789abc".to_owned()];
    let counter = AtomicU64::new(0);

    let mut g = c.benchmark_group("idempotency/memory");
    let memory = MemoryIdempotencyStore::new(DEFAULT_TTL, 100_000);
    g.bench_function("claim+complete", |b| {
        b.to_async(&rt)
            .iter(|| accept(&memory, fresh_key(&tenant, &counter), &ids))
    });
    let seen = fresh_key(&tenant, &counter);
    rt.block_on(accept(&memory, seen, &ids));
    g.bench_function("claim (replay)", |b| {
        b.to_async(&rt).iter(|| memory.claim(&seen))
    });
    g.finish();

    let moto = MotoServer::start();
    let sdk = rt.block_on(shared::aws::configure(moto.loader()).load());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    rt.block_on(
        client
            .create_table()
            .table_name(TABLE)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::B)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send(),
    )
    .unwrap();
    let store = DynamoDbIdempotencyStore::from_sdk_config(&sdk, TABLE, DEFAULT_TTL);

    let mut g = c.benchmark_group("idempotency/dynamodb-moto");
    g.sample_size(50).measurement_time(Duration::from_secs(10));
    g.bench_function("baseline/get_item", |b| {
        b.to_async(&rt).iter(|| {
            client
                .get_item()
                .table_name(TABLE)
                .key("pk", AttributeValue::B(Blob::new(vec![0u8; 32])))
                .send()
        })
    });
    g.bench_function("claim+complete", |b| {
        b.to_async(&rt)
            .iter(|| accept(&store, fresh_key(&tenant, &counter), &ids))
    });
    let seen = fresh_key(&tenant, &counter);
    rt.block_on(accept(&store, seen, &ids));
    g.bench_function("claim (replay)", |b| {
        b.to_async(&rt).iter(|| store.claim(&seen))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
