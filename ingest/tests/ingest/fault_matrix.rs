//! Ingest when what it calls fails (docs/fault-matrix.md): EventBridge,
//! DynamoDB (the idempotency table) and Secrets Manager (a source's
//! record), each behind a server that refuses, hangs, answers 5xx,
//! throttles, answers something unreadable or hangs up mid-answer, through
//! the real SDK with the bootstrap's timeouts (`shared::aws::configure`).
//! Each test asserts what the sender is told and what reached the bus.

use std::time::Instant;

use shared::idempotency::DynamoDbIdempotencyStore;
use shared::publish::EventBridgePublisher;
use shared::store::{CachePolicy, CachedTenantStore, SecretsManagerStore};
use testkit::faults::operation;
use testkit::{Fault, FaultServer, MotoServer};

use super::*;

const EB_JSON: &str = "application/x-amz-json-1.1";
const SM_JSON: &str = "application/x-amz-json-1.1";
const DDB_JSON: &str = "application/x-amz-json-1.0";
const TABLE: &str = "form-bridge-idempotency";
const BUS: &str = "form-bridge-test";
/// Generous: publishing starts no retry after 5 s and each call is bounded
/// at 2 s; a loaded machine adds to it.
const BOUND: Duration = Duration::from_secs(20);

/// A nothing-listening endpoint: connection refused.
fn refused() -> String {
    format!("http://127.0.0.1:{}", testkit::free_port())
}

/// The SDK configuration the bootstrap builds, pointed at `endpoint`.
async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    shared::aws::configure(testkit::loader_for(endpoint))
        .load()
        .await
}

/// Ingest publishing to the EventBridge at `endpoint`, keys in memory.
async fn ingest_publishing_to(endpoint: &str) -> Ingest<EventBridgePublisher> {
    Ingest::new(
        EventBridgePublisher::from_sdk_config(&sdk(endpoint).await, BUS),
        &config(),
        Metrics::to_writer("ingest", std::io::sink()),
    )
}

/// What the sender learns from a 503: may it send the same request again
/// without risking a second publication?
#[derive(Debug, PartialEq, Eq)]
enum Told {
    RetryIsSafe,
    MayHaveBeenPublished,
}

fn told(body: &Value) -> Told {
    let message = message(body);
    match (
        message.contains("retrying the request is safe"),
        message.contains("may have been published"),
    ) {
        (true, false) => Told::RetryIsSafe,
        (false, true) => Told::MayHaveBeenPublished,
        _ => panic!("the 503 says neither or both: {body}"),
    }
}

/// Every EventBridge fault is a 503 `bus_unavailable`, within the bound;
/// the sender is told a retry is safe exactly when the bus cannot have
/// taken the events (no connection, or an answer saying the call failed),
/// and that they may have been published when the call was sent and its
/// answer lost or unreadable.
#[tokio::test]
async fn every_eventbridge_fault_is_a_503_that_says_whether_a_retry_is_safe() {
    let error = |status, kind: &str| {
        Fault::status(
            status,
            EB_JSON,
            json!({"__type": kind, "message": "injected"}).to_string(),
        )
    };
    let accepted = json!({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}).to_string();
    let cases: Vec<(&str, Option<Fault>, Told)> = vec![
        ("down (connection refused)", None, Told::RetryIsSafe),
        (
            "slow (never answers)",
            Some(Fault::hang()),
            Told::MayHaveBeenPublished,
        ),
        (
            "5xx",
            Some(error(500, "InternalException")),
            Told::RetryIsSafe,
        ),
        (
            "503",
            Some(error(503, "ServiceUnavailable")),
            Told::RetryIsSafe,
        ),
        (
            "throttled",
            Some(error(400, "ThrottlingException")),
            Told::RetryIsSafe,
        ),
        (
            "429",
            Some(error(429, "TooManyRequestsException")),
            Told::RetryIsSafe,
        ),
        (
            "malformed answer (200, not JSON)",
            Some(Fault::status(200, EB_JSON, "<html>gateway</html>")),
            Told::MayHaveBeenPublished,
        ),
        (
            "reset mid-answer",
            Some(Fault::truncated_json(EB_JSON, accepted)),
            Told::MayHaveBeenPublished,
        ),
        (
            "hang-up before any answer",
            Some(Fault::hang_up()),
            Told::MayHaveBeenPublished,
        ),
        (
            "not HTTP",
            Some(Fault::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())),
            Told::MayHaveBeenPublished,
        ),
    ];
    let runs = cases.into_iter().map(|(name, fault, expected)| async move {
        let server = fault.map(|fault| FaultServer::start(move |_, _| fault.clone()));
        let endpoint = server.as_ref().map_or_else(refused, FaultServer::url);
        let ingest = ingest_publishing_to(&endpoint).await;
        let started = Instant::now();
        let (status, body) = run(&ingest, &fixture()).await;
        let took = started.elapsed();
        let calls = server.as_ref().map_or(0, |s| s.calls_of("PutEvents"));
        (name, expected, status, body, took, calls)
    });
    for (name, expected, status, body, took, calls) in futures_util::future::join_all(runs).await {
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "bus_unavailable", "{name}");
        assert_eq!(told(&body), expected, "{name}: {body}");
        assert!(took < BOUND, "{name}: answered after {took:?}");
        if expected == Told::MayHaveBeenPublished {
            assert!(
                calls <= 1,
                "{name}: a call that may have published is never sent again"
            );
        }
        eprintln!("EventBridge {name}: 503 after {took:?}, {calls} call(s), {expected:?}");
    }
}

/// The bus published, but its answer was lost: the sender is told the
/// events may have been published, and the request's key is released (a
/// 503 always releases it, docs/protocol.md, section 10). A retry of the
/// same request is then accepted and published again, under new
/// submission IDs: the tenant receives the submission twice, with
/// different `webhook-id`s. This is the one way a sender's retry can
/// duplicate a submission, and the 503's message says so.
#[tokio::test]
async fn a_retry_after_a_lost_bus_answer_publishes_again_under_new_ids() {
    let moto = MotoServer::start();
    let queue = moto
        .route_to_queue(BUS, "all", &json!({"source": ["form-bridge"]}).to_string())
        .await;
    let bus = FaultServer::proxy(&moto.endpoint(), |request, n| {
        if operation(request) == "PutEvents" && n == 0 {
            Fault::Lost
        } else {
            Fault::Forward
        }
    });
    let ingest = ingest_publishing_to(&bus.url()).await;
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(told(&body), Told::MayHaveBeenPublished);
    let (status, retried) = run(&ingest, &fixture()).await;
    assert_eq!(status, 202, "{retried}");
    let events: Vec<Value> = moto
        .drain_queue(&queue, 3)
        .await
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        2,
        "published by the lost call and by the retry"
    );
    let first = events[0]["detail"]["submission_id"].as_str().unwrap();
    let second = events[1]["detail"]["submission_id"].as_str().unwrap();
    assert_ne!(first, second, "the retry is a new submission");
    assert!(ids(&retried).iter().any(|id| id == first || id == second));
}

/// Ingest with its keys in the DynamoDB at `endpoint` and an in-memory bus.
async fn ingest_with_table_at(
    endpoint: &str,
) -> (
    Ingest<MemoryPublisher, DynamoDbIdempotencyStore>,
    tokio::sync::mpsc::Receiver<BusEntry>,
) {
    let (ingest, rx, _) = memory_ingest(&config(), 100);
    let store = DynamoDbIdempotencyStore::from_sdk_config(
        &sdk(endpoint).await,
        TABLE,
        shared::idempotency::DEFAULT_TTL,
    );
    (ingest.with_idempotency_store(store), rx)
}

/// Every DynamoDB fault on the claim is a 503 `idempotency_unavailable`
/// within the bound, nothing is published, and the sender is told a retry
/// is safe: a request whose key cannot be checked is never accepted.
#[tokio::test]
async fn every_dynamodb_fault_on_the_claim_is_a_503_and_publishes_nothing() {
    let error = |status, kind: &str| {
        Fault::status(
            status,
            DDB_JSON,
            json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "injected"})
                .to_string(),
        )
    };
    let cases: Vec<(&str, Option<Fault>)> = vec![
        ("down (connection refused)", None),
        ("slow (never answers)", Some(Fault::hang())),
        ("5xx", Some(error(500, "InternalServerError"))),
        (
            "throttled",
            Some(error(400, "ProvisionedThroughputExceededException")),
        ),
        ("429", Some(error(429, "ThrottlingException"))),
        (
            "malformed answer (200, not JSON)",
            Some(Fault::status(200, DDB_JSON, "<html/>")),
        ),
        (
            "reset mid-answer",
            Some(Fault::truncated_json(DDB_JSON, r#"{"Attributes":{}}"#)),
        ),
        ("hang-up before any answer", Some(Fault::hang_up())),
    ];
    let runs = cases.into_iter().map(|(name, fault)| async move {
        let server = fault.map(|fault| FaultServer::start(move |_, _| fault.clone()));
        let endpoint = server.as_ref().map_or_else(refused, FaultServer::url);
        let (ingest, mut rx) = ingest_with_table_at(&endpoint).await;
        let started = Instant::now();
        let response = ingest.handle(&raw(&fixture()), now()).await;
        let took = started.elapsed();
        (name, parts(&response), took, rx.try_recv().is_err())
    });
    for (name, (status, body), took, nothing) in futures_util::future::join_all(runs).await {
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "idempotency_unavailable", "{name}");
        assert_eq!(told(&body), Told::RetryIsSafe, "{name}");
        assert!(nothing, "{name}: nothing published");
        assert!(took < BOUND, "{name}: answered after {took:?}");
        eprintln!("DynamoDB {name} on the claim: 503 after {took:?}");
    }
}

/// Moto's DynamoDB with the stack's table, behind a proxy that fails the
/// operation `failing` with a 500 and passes everything else.
async fn table_failing(moto: &MotoServer, failing: &'static str) -> FaultServer {
    moto.create_idempotency_table(TABLE).await;
    FaultServer::proxy(&moto.endpoint(), move |request, _| {
        if operation(request) == failing {
            Fault::status(
                500,
                DDB_JSON,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#,
            )
        } else {
            Fault::Forward
        }
    })
}

/// DynamoDB fails after the events were published, when the key is to be
/// completed with the answer: the 202 stands (the submission is on the
/// bus), and the key stays claimed until its lease ends (60 s), so a copy
/// of the request meanwhile gets 409 `request_in_progress` with
/// `Retry-After`, never a second publication. (After the lease a copy
/// would be accepted again: docs/fault-matrix.md, DynamoDB.)
#[tokio::test]
async fn a_completion_that_fails_keeps_the_202_and_a_copy_meanwhile_is_in_progress() {
    let moto = MotoServer::start();
    let table = table_failing(&moto, "UpdateItem").await;
    let (ingest, mut rx) = ingest_with_table_at(&table.url()).await;
    let (status, body) = parts(&ingest.handle(&raw(&fixture()), now()).await);
    assert_eq!(status, 202, "{body}");
    assert!(table.calls_of("UpdateItem") >= 1);
    let copy = ingest.handle(&raw(&fixture()), now()).await;
    assert_eq!(copy.headers.retry_after, Some("1"));
    let (status, body) = parts(&copy);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "request_in_progress");
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "published once");
}

/// The bus refuses and then DynamoDB fails to release the key: the sender
/// is told to retry (nothing was published), and its retry is answered 409
/// `request_in_progress` until the claim's lease ends (60 s), then
/// accepted. Delayed, never lost or doubled.
#[tokio::test]
async fn a_release_that_fails_makes_the_retry_wait_for_the_lease() {
    let moto = MotoServer::start();
    let table = table_failing(&moto, "DeleteItem").await;
    let store = DynamoDbIdempotencyStore::from_sdk_config(
        &sdk(&table.url()).await,
        TABLE,
        shared::idempotency::DEFAULT_TTL,
    );
    let ingest = ingest_publishing_to(&refused())
        .await
        .with_idempotency_store(store);
    let (status, body) = parts(&ingest.handle(&raw(&fixture()), now()).await);
    assert_eq!(status, 503, "{body}");
    assert_eq!(told(&body), Told::RetryIsSafe);
    assert!(table.calls_of("DeleteItem") >= 1, "the release was tried");
    let (status, body) = parts(&ingest.handle(&raw(&fixture()), now()).await);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "request_in_progress");
}

/// A source route whose tenant record cannot be read (Secrets Manager down
/// or failing, and no record cached): 503 `tenant_store_unavailable`,
/// nothing published, and the provider told a retry is safe (providers
/// retry a 5xx on their own schedule).
#[tokio::test]
async fn a_source_route_is_a_503_when_its_record_cannot_be_read() {
    let status = |code: u16, kind: &str| {
        Fault::status(
            code,
            SM_JSON,
            json!({"__type": kind, "message": "injected"}).to_string(),
        )
    };
    let cases: Vec<(&str, Option<Fault>)> = vec![
        ("down (connection refused)", None),
        ("slow (never answers)", Some(Fault::hang())),
        ("5xx", Some(status(500, "InternalServiceError"))),
        ("throttled", Some(status(400, "ThrottlingException"))),
        (
            "malformed answer (200, not JSON)",
            Some(Fault::status(200, SM_JSON, "<html>gateway</html>")),
        ),
        (
            "reset mid-answer",
            Some(Fault::truncated_json(SM_JSON, r#"{"Name":"x"}"#)),
        ),
        ("hang-up before any answer", Some(Fault::hang_up())),
    ];
    let body = r#"{"id":"evt_1","object":"event","type":"checkout.session.completed"}"#;
    for (name, fault) in cases {
        let server = fault.map(|fault| FaultServer::start(move |_, _| fault.clone()));
        let endpoint = server.as_ref().map_or_else(refused, FaultServer::url);
        let records = CachedTenantStore::new(
            SecretsManagerStore::from_sdk_config(&sdk(&endpoint).await, "form-bridge/tenants/"),
            CachePolicy::with_ttl(Duration::from_secs(300)),
        );
        let (ingest, mut rx, _) = memory_ingest(&config(), 10);
        let ingest = ingest.with_tenant_records(records);
        // Unsigned: the record is read before any signature is checked.
        let event = testkit::on_source_route(fixture(), "acme", "stripe-live", Vec::new(), body);
        let (status, answer) = parts(&ingest.handle(&raw(&event), now()).await);
        assert_eq!(status, 503, "{name}: {answer}");
        assert_eq!(
            answer["error"]["code"], "tenant_store_unavailable",
            "{name}"
        );
        assert_eq!(told(&answer), Told::RetryIsSafe, "{name}");
        assert!(rx.try_recv().is_err(), "{name}: nothing published");
    }
}
