//! The stores' tests. Both stores run the same [`semantics`] through the
//! trait, on time the test moves: the memory store on tokio's paused
//! clock, the DynamoDB store (against moto, through the real SDK) on a
//! clock of its own. What only one store has (the memory store's bound,
//! the DynamoDB item) is tested beside.

#![allow(clippy::unwrap_used)]

use super::*;

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn replay(list: &[&str]) -> Claim {
    Claim::Replay(ids(list).into())
}

/// A fresh key per name.
fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::from_header(&tenant("acme"), name, b"{}").unwrap()
}

/// The ticket of a claim that must be new.
async fn won<S: IdempotencyStore>(store: &S, key: &IdempotencyKey) -> Ticket {
    match store.claim(key).await.unwrap() {
        Claim::New(ticket) => ticket,
        other => panic!("{key:?}: expected a new claim, got {other:?}"),
    }
}

async fn claim<S: IdempotencyStore>(store: &S, key: &IdempotencyKey) -> Claim {
    store.claim(key).await.unwrap()
}

/// What every store does, through the trait. `store` replays answers for
/// `ttl` with [`DEFAULT_LEASE`]; `advance` moves its clock.
async fn semantics<S: IdempotencyStore>(store: &S, ttl: Duration, advance: impl AsyncFn(Duration)) {
    // The first claim wins; a duplicate meanwhile is in progress; the
    // answer, in request order, is replayed for the TTL, then forgotten.
    let first = key("first");
    let ticket = won(store, &first).await;
    assert_eq!(ticket.key(), &first);
    assert_eq!(claim(store, &first).await, Claim::InProgress);
    store
        .complete(&ticket, &ids(&["s2", "s1", "s3"]))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(claim(store, &first).await, replay(&["s2", "s1", "s3"]));
    }
    advance(ttl - Duration::from_secs(1)).await;
    assert_eq!(claim(store, &first).await, replay(&["s2", "s1", "s3"]));
    advance(Duration::from_secs(1)).await;
    let again = won(store, &first).await;
    assert_ne!(
        again.token(),
        ticket.token(),
        "every claim has its own token"
    );
    store.release(&again).await.unwrap();

    // The same header key for another body: a mismatch, claimed or done.
    let body_1 = IdempotencyKey::from_header(&tenant("acme"), "k1", b"{\"a\":1}").unwrap();
    let body_2 = IdempotencyKey::from_header(&tenant("acme"), "k1", b"{\"a\":2}").unwrap();
    let ticket = won(store, &body_1).await;
    assert_eq!(claim(store, &body_2).await, Claim::Mismatch);
    store.complete(&ticket, &ids(&["m1"])).await.unwrap();
    assert_eq!(claim(store, &body_2).await, Claim::Mismatch);
    assert_eq!(claim(store, &body_1).await, replay(&["m1"]));

    // A released key may be claimed again at once.
    let failed = IdempotencyKey::from_event_id(&tenant("acme"), "stripe-main", "evt_1");
    let ticket = won(store, &failed).await;
    store.release(&ticket).await.unwrap();
    let slow = won(store, &failed).await;

    // A claim never settled (a crash, or a request slower than the lease)
    // blocks the key for the lease only.
    advance(DEFAULT_LEASE - Duration::from_secs(1)).await;
    assert_eq!(claim(store, &failed).await, Claim::InProgress);
    advance(Duration::from_secs(1)).await;
    let newer = won(store, &failed).await;
    // The slow request ends after all: it cannot settle the newer claim.
    assert!(matches!(
        store.complete(&slow, &ids(&["slow"])).await,
        Err(IdempotencyError::Lapsed)
    ));
    store.release(&slow).await.unwrap();
    assert_eq!(
        claim(store, &failed).await,
        Claim::InProgress,
        "the newer claim stands"
    );
    store.complete(&newer, &ids(&["newer"])).await.unwrap();
    store.release(&slow).await.unwrap();
    assert_eq!(claim(store, &failed).await, replay(&["newer"]));

    // A lapsed claim that nobody took over keeps its answer.
    let late = key("late");
    let ticket = won(store, &late).await;
    advance(DEFAULT_LEASE + Duration::from_secs(5)).await;
    store.complete(&ticket, &ids(&["late"])).await.unwrap();
    assert_eq!(claim(store, &late).await, replay(&["late"]));

    // Keys of different kinds or tenants never meet.
    let signed = IdempotencyKey::from_signed_identity(&tenant("acme"), "1700000000", "sha-256=:x:");
    let other_tenant = IdempotencyKey::from_header(&tenant("globex"), "first", b"{}").unwrap();
    won(store, &signed).await;
    won(store, &other_tenant).await;
}

#[test]
fn header_keys_are_scoped_to_the_tenant_and_validated() {
    let body = b"{}";
    let a = IdempotencyKey::from_header(&tenant("acme"), "order-1", body).unwrap();
    let b = IdempotencyKey::from_header(&tenant("globex"), "order-1", body).unwrap();
    assert_ne!(a.id(), b.id());
    let other_body = IdempotencyKey::from_header(&tenant("acme"), "order-1", b"[]").unwrap();
    assert_eq!(a.id(), other_body.id());
    assert_ne!(a.fingerprint(), other_body.fingerprint());
    for bad in ["", "tab\there", "é", &"k".repeat(256)] {
        assert_eq!(
            IdempotencyKey::from_header(&tenant("acme"), bad, body),
            Err(KeyError::Invalid),
            "{bad:?}"
        );
    }
    assert!(IdempotencyKey::from_header(&tenant("acme"), &"k".repeat(255), body).is_ok());
    // The kinds never collide, and Debug shows no key material.
    let signed = IdempotencyKey::from_signed_identity(&tenant("acme"), "order-1", "");
    assert_ne!(signed.id(), a.id());
    assert!(!format!("{a:?}").contains("order-1"));
}

#[tokio::test(start_paused = true)]
async fn the_memory_store_keeps_the_semantics() {
    let ttl = Duration::from_secs(3_600);
    let store = MemoryIdempotencyStore::new(ttl, 1_000);
    semantics(&store, ttl, async |d| tokio::time::advance(d).await).await;
}

#[test]
fn table_names_and_arns_are_told_from_junk() {
    for good in [
        "form-bridge-IdempotencyTable-1ABC2DEF3",
        "a_b.c",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/form-bridge-keys",
        "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/keys",
    ] {
        assert!(valid_table_name(good), "{good}");
    }
    for bad in [
        "",
        "ab",
        "has space",
        "semi;colon",
        &"t".repeat(256),
        "arn:aws:dynamodb:eu-west-1:123456789012:keys",
        "arn:aws:s3:eu-west-1:123456789012:table/keys",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/a b",
    ] {
        assert!(!valid_table_name(bad), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_bound_counts_keys_and_their_ids_the_oldest_dropped_first() {
    // Each key below answers with one ID: it weighs 2; 6 hold three.
    let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 6);
    let keys: Vec<IdempotencyKey> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    for key in &keys {
        let ticket = won(&store, key).await;
        store.complete(&ticket, &ids(&["s"])).await.unwrap();
    }
    assert_eq!((store.len(), store.weight()), (3, 6));
    // The newest are replayed; the oldest were dropped.
    assert!(matches!(claim(&store, &keys[4]).await, Claim::Replay(_)));
    won(&store, &keys[0]).await;
    // A batch's answer weighs what its IDs do.
    let batch = key("batch");
    let ticket = won(&store, &batch).await;
    store
        .complete(&ticket, &ids(&["a", "b", "c", "d"]))
        .await
        .unwrap();
    assert_eq!(
        (store.len(), store.weight()),
        (2, 6),
        "k0 claimed (1) and the batch (5)"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_whose_claim_was_dropped_is_kept_and_weighed() {
    let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 2);
    let first = key("first");
    let ticket = won(&store, &first).await;
    // Two newer claims push the first out of the bound.
    won(&store, &key("second")).await;
    won(&store, &key("third")).await;
    assert_eq!(store.len(), 2);
    store.complete(&ticket, &ids(&["s"])).await.unwrap();
    assert_eq!(claim(&store, &first).await, replay(&["s"]));
    // Its answer counts (the two newer claims made room for it).
    assert_eq!((store.len(), store.weight()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn released_keys_leave_no_garbage_behind() {
    let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 100_000);
    let kept = won(&store, &key("kept")).await;
    store.complete(&kept, &ids(&["s"])).await.unwrap();
    for i in 0..10_000 {
        let ticket = won(&store, &key(&format!("r{i}"))).await;
        store.release(&ticket).await.unwrap();
    }
    assert_eq!(store.len(), 1);
    assert!(
        store.lock().order.len() <= 2 * 1024 + 1,
        "{}",
        store.lock().order.len()
    );
}

/// The DynamoDB store against moto's DynamoDB, through the real SDK.
#[cfg(feature = "aws")]
mod dynamodb {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    use testkit::{HttpServer, MotoServer, Reply};

    use super::super::dynamodb::{EXPIRES_AT, PK};
    use super::*;

    const TABLE: &str = "form-bridge-keys";

    /// A table as the stack makes it: `pk` binary, on demand.
    async fn create_table(client: &aws_sdk_dynamodb::Client) {
        client
            .create_table()
            .table_name(TABLE)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::B)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }

    /// A clock in whole seconds that only the test moves.
    #[derive(Clone)]
    struct TestClock(Arc<AtomicU64>);

    impl TestClock {
        fn new() -> Self {
            Self(Arc::new(AtomicU64::new(1_800_000_000)))
        }

        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_secs(), Ordering::SeqCst);
        }

        fn now(&self) -> SystemTime {
            UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
        }
    }

    struct Fixture {
        _moto: MotoServer,
        client: aws_sdk_dynamodb::Client,
        clock: TestClock,
        store: DynamoDbIdempotencyStore,
    }

    async fn fixture(ttl: Duration) -> Fixture {
        let moto = MotoServer::start();
        let sdk = crate::aws::configure(moto.loader()).load().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        create_table(&client).await;
        let clock = TestClock::new();
        let store = DynamoDbIdempotencyStore::from_sdk_config(&sdk, TABLE, ttl).with_clock({
            let clock = clock.clone();
            move || clock.now()
        });
        Fixture {
            _moto: moto,
            client,
            clock,
            store,
        }
    }

    #[tokio::test]
    async fn the_dynamodb_store_keeps_the_semantics() {
        let ttl = Duration::from_secs(3_600);
        let f = fixture(ttl).await;
        let clock = f.clock.clone();
        semantics(&f.store, ttl, async |d| clock.advance(d)).await;
    }

    #[tokio::test]
    async fn items_hold_hashes_state_token_expiry_and_ids_only() {
        let ttl = Duration::from_secs(86_400);
        let f = fixture(ttl).await;
        let header = "order-1234-secretish";
        let body = br#"{"email":"ada@example.com"}"#;
        let key = IdempotencyKey::from_header(&tenant("acme"), header, body).unwrap();
        let ticket = won(&f.store, &key).await;
        let item = |f: &Fixture| {
            let client = f.client.clone();
            async move {
                client
                    .get_item()
                    .table_name(TABLE)
                    .key(PK, AttributeValue::B(key.id().to_vec().into()))
                    .send()
                    .await
                    .unwrap()
                    .item
                    .unwrap()
            }
        };
        let now = f.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let claimed = item(&f).await;
        let mut names: Vec<&str> = claimed.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["claim_token", "expires_at", "fingerprint", "pk", "state"]
        );
        assert_eq!(claimed["state"], AttributeValue::S("claimed".into()));
        assert_eq!(
            claimed[EXPIRES_AT],
            AttributeValue::N((now + DEFAULT_LEASE.as_secs()).to_string()),
            "a claim expires at its lease's end"
        );
        assert_eq!(
            claimed["claim_token"],
            AttributeValue::B(ticket.token().to_be_bytes().to_vec().into())
        );

        f.store
            .complete(&ticket, &ids(&["s1", "s2"]))
            .await
            .unwrap();
        let done = item(&f).await;
        let mut names: Vec<&str> = done.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "claim_token",
                "expires_at",
                "fingerprint",
                "pk",
                "state",
                "submission_ids"
            ]
        );
        assert_eq!(done["state"], AttributeValue::S("done".into()));
        assert_eq!(
            done[EXPIRES_AT],
            AttributeValue::N((now + ttl.as_secs()).to_string()),
            "an answer expires after the TTL (the table's TTL attribute)"
        );
        assert_eq!(
            done["fingerprint"],
            AttributeValue::B(key.fingerprint().to_vec().into())
        );
        // Nothing the sender sent is stored as sent.
        let text = format!("{done:?}");
        for sent in ["order-1234", "ada@example.com"] {
            assert!(!text.contains(sent), "{sent} stored: {text}");
        }
    }

    #[tokio::test]
    async fn a_claim_sent_again_after_a_lost_answer_is_still_new() {
        let f = fixture(DEFAULT_TTL).await;
        let key = key("retried");
        let first = f.store.claim_with(&key, 7).await.unwrap();
        // The SDK's retry of the same call: the item holds its own token.
        let again = f.store.claim_with(&key, 7).await.unwrap();
        assert_eq!(first, again);
        assert!(matches!(first, Claim::New(_)));
        // Anyone else is still kept out.
        assert_eq!(claim(&f.store, &key).await, Claim::InProgress);
    }

    #[tokio::test]
    async fn a_malformed_item_fails_closed() {
        let f = fixture(DEFAULT_TTL).await;
        let key = key("junk");
        let far = f.clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3_600;
        f.client
            .put_item()
            .table_name(TABLE)
            .item(PK, AttributeValue::B(key.id().to_vec().into()))
            .item(EXPIRES_AT, AttributeValue::N(far.to_string()))
            .item("state", AttributeValue::S("something else".into()))
            .send()
            .await
            .unwrap();
        let error = f.store.claim(&key).await.unwrap_err();
        assert!(
            matches!(&error, IdempotencyError::Unavailable(m) if m.contains("malformed")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_table_is_unavailable_with_a_reason() {
        let f = fixture(DEFAULT_TTL).await;
        let sdk = crate::aws::configure(testkit::loader_for(&f._moto.endpoint()))
            .load()
            .await;
        let store = DynamoDbIdempotencyStore::from_sdk_config(&sdk, "no-such-table", DEFAULT_TTL);
        let error = store.claim(&key("k")).await.unwrap_err();
        assert!(
            matches!(&error, IdempotencyError::Unavailable(m) if m.contains("ResourceNotFoundException")),
            "{error:?}"
        );
    }

    /// An endpoint that answers a failed condition without the item (not
    /// every DynamoDB-compatible service returns it) is read with GetItem.
    #[tokio::test]
    async fn a_conflict_answered_without_the_item_is_read_back() {
        let key = key("fallback");
        let item = serde_json::json!({
            "pk": {"B": base64_of(key.id())},
            "fingerprint": {"B": base64_of(key.fingerprint())},
            "state": {"S": "done"},
            "claim_token": {"B": base64_of(&[1; 16])},
            "expires_at": {"N": "4000000000"},
            "submission_ids": {"L": [{"S": "from-get"}]}
        });
        let server = HttpServer::start(move |req, _| {
            match req.header("x-amz-target") {
                Some("DynamoDB_20120810.PutItem") => Reply::json(
                    400,
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#,
                ),
                Some("DynamoDB_20120810.GetItem") => {
                    Reply::json(200, serde_json::json!({"Item": item}).to_string())
                }
                _ => Reply::json(400, r#"{"__type":"UnknownOperationException"}"#),
            }
            .with_header("Content-Type", "application/x-amz-json-1.0")
        });
        let sdk = crate::aws::configure(testkit::loader_for(&server.url()))
            .load()
            .await;
        let store = DynamoDbIdempotencyStore::from_sdk_config(&sdk, TABLE, DEFAULT_TTL);
        assert_eq!(claim(&store, &key).await, replay(&["from-get"]));
        let targets: Vec<String> = server
            .requests()
            .iter()
            .filter_map(|r| r.header("x-amz-target").map(str::to_owned))
            .collect();
        assert_eq!(
            targets,
            ["DynamoDB_20120810.PutItem", "DynamoDB_20120810.GetItem"]
        );
        let get: serde_json::Value = serde_json::from_slice(&server.requests()[1].body).unwrap();
        assert_eq!(
            get["ConsistentRead"], true,
            "the read sees the latest write"
        );
    }

    fn base64_of(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
