//! What the idempotency check costs a request: a new request's claim and
//! completion, and a replay's claim, in the memory store (CPU only) and in
//! the DynamoDB store against moto through the real SDK (round trips on
//! loopback, beside one bare GetItem for moto's own cost per call).
//! Moto is Python: its round trips are far slower than DynamoDB's; what
//! carries over to AWS is the number of round trips (docs/performance.md).
//!
//! A request with two keys (an `Idempotency-Key` beside the signed
//! identity; an event ID beside what the provider signed) is measured
//! both ways: claimed at once (`claim_all`: one transaction) and claimed
//! one after the other (two conditional puts, what ingest did before),
//! each then completed (two updates at once). Moto copies the whole table
//! for every transaction, so these two run on a table of their own whose
//! items are deleted after each request, outside the timing: a table that
//! grew with the bench would charge the transaction for moto's copy.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::future::join_all;
use shared::TenantId;
use shared::idempotency::{
    Claim, Claims, DEFAULT_TTL, DynamoDbIdempotencyStore, IdempotencyKey, IdempotencyStore,
    MemoryIdempotencyStore,
};
use testkit::MotoServer;

const TABLE: &str = "form-bridge-idempotency";
/// The two-key requests' table, kept small.
const PAIRS: &str = "form-bridge-idempotency-pairs";

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

/// Claims fresh `keys` at once (`one_by_one`: one after the other, as
/// ingest did before `claim_all`) and, when `complete`, completes them at
/// once, as an accepted request with several keys does.
async fn accept_keys<S: IdempotencyStore>(
    store: &S,
    keys: &[IdempotencyKey],
    ids: &[String],
    one_by_one: bool,
    complete: bool,
) {
    let tickets = if one_by_one {
        let mut tickets = Vec::with_capacity(keys.len());
        for key in keys {
            let Claim::New(ticket) = store.claim(key).await.unwrap() else {
                panic!("not a new claim")
            };
            tickets.push(ticket);
        }
        tickets
    } else {
        let Claims::Won(tickets) = store.claim_all(keys).await.unwrap() else {
            panic!("not all new")
        };
        tickets
    };
    if complete {
        for done in join_all(tickets.iter().map(|t| store.complete(t, ids))).await {
            done.unwrap();
        }
    }
}

/// Deletes the items of `keys` from the pairs table.
async fn forget(client: &aws_sdk_dynamodb::Client, keys: &[IdempotencyKey]) {
    for key in keys {
        client
            .delete_item()
            .table_name(PAIRS)
            .key("pk", AttributeValue::B(Blob::new(key.id().to_vec())))
            .send()
            .await
            .unwrap();
    }
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
    g.bench_function("2 keys: claim_all+complete", |b| {
        b.to_async(&rt).iter(|| {
            let keys = [fresh_key(&tenant, &counter), fresh_key(&tenant, &counter)];
            let (memory, ids) = (&memory, &ids);
            async move { accept_keys(memory, &keys, ids, false, true).await }
        })
    });
    g.finish();

    let moto = MotoServer::start();
    let sdk = rt.block_on(shared::aws::configure(moto.loader()).load());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    rt.block_on(moto.create_idempotency_table(TABLE));
    rt.block_on(moto.create_idempotency_table(PAIRS));
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

    let pairs = DynamoDbIdempotencyStore::from_sdk_config(&sdk, PAIRS, DEFAULT_TTL);
    let mut two_keys = |name: &str, one_by_one: bool, complete: bool| {
        let (pairs, client, ids, tenant, counter) = (&pairs, &client, &ids, &tenant, &counter);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    let keys = [fresh_key(tenant, counter), fresh_key(tenant, counter)];
                    let started = Instant::now();
                    accept_keys(pairs, &keys, ids, one_by_one, complete).await;
                    took += started.elapsed();
                    forget(client, &keys).await;
                }
                took
            })
        });
    };
    // Before publishing: the claims alone.
    two_keys("2 keys: claim_all", false, false);
    two_keys("2 keys: claim one by one", true, false);
    // The whole check of an accepted request.
    two_keys("2 keys: claim_all+complete", false, true);
    two_keys("2 keys: claim one by one+complete", true, true);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
