//! The AWS adapters of `shared` when the service fails (docs/fault-matrix.md):
//! Secrets Manager (a tenant's record, the tenant directory's listing) and
//! DynamoDB (idempotency keys), each behind a server that refuses, hangs,
//! answers 5xx, throttles, answers something unreadable, or hangs up
//! mid-answer, through the real SDK with the functions' own timeouts and
//! retries (`shared::aws::configure`).

#![allow(clippy::unwrap_used)]
#![cfg(feature = "aws")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::TenantId;
use shared::idempotency::{
    Claim, DEFAULT_TTL, DynamoDbIdempotencyStore, IdempotencyError, IdempotencyKey,
    IdempotencyStore,
};
use shared::store::{CachePolicy, CachedTenantStore, SecretsManagerStore, StoreError, TenantStore};
use testkit::faults::operation;
use testkit::{Fault, FaultServer, MotoServer, TenantRecordBuilder};

const SECRET: &str = "fb_test_fault_matrix_secret_do_not_log_0";
const SM_JSON: &str = "application/x-amz-json-1.1";
const DDB_JSON: &str = "application/x-amz-json-1.0";
/// Generous: the client bounds a call at 5 s (Secrets Manager) or 2 s
/// (DynamoDB), retries included; a loaded machine adds to it.
const BOUND: Duration = Duration::from_secs(20);

fn id(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

/// A nothing-listening endpoint: connection refused.
fn refused() -> String {
    format!("http://127.0.0.1:{}", testkit::free_port())
}

/// The ways a service fails, as a server does them (`content_type` is the
/// service's JSON protocol; `throttle` its throttling error code).
fn faults(content_type: &'static str, throttle: &'static str) -> Vec<(&'static str, Fault)> {
    vec![
        ("slow (never answers)", Fault::hang()),
        (
            "5xx",
            Fault::status(
                500,
                content_type,
                r#"{"__type":"InternalServiceError","message":"injected"}"#,
            ),
        ),
        (
            "503",
            Fault::status(
                503,
                content_type,
                r#"{"__type":"ServiceUnavailable","message":"injected"}"#,
            ),
        ),
        (
            "throttled",
            Fault::status(
                400,
                content_type,
                format!(r#"{{"__type":"{throttle}","message":"Rate exceeded"}}"#),
            ),
        ),
        (
            "429",
            Fault::status(429, content_type, r#"{"message":"Too Many Requests"}"#),
        ),
        (
            "malformed answer (200, not JSON)",
            Fault::status(200, content_type, "<html>gateway</html>"),
        ),
        (
            "reset mid-answer",
            Fault::truncated_json(
                content_type,
                format!(r#"{{"Name":"x","SecretString":"{SECRET}"}}"#),
            ),
        ),
        ("hang-up before any answer", Fault::hang_up()),
        (
            "not HTTP",
            Fault::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ),
    ]
}

async fn secrets_store(endpoint: &str) -> SecretsManagerStore {
    let sdk = shared::aws::configure(testkit::loader_for(endpoint))
        .load()
        .await;
    SecretsManagerStore::from_sdk_config(&sdk, "form-bridge/tenants/")
}

/// Every fault of Secrets Manager is `Unavailable` (never "no such
/// tenant", which would deny a real tenant as unknown and cache it so),
/// within the client's bound, and names no secret; server errors and
/// throttling are retried by the SDK first. The same for the directory's
/// `ListSecrets`.
#[tokio::test]
async fn every_secrets_manager_fault_is_unavailable_within_the_bound() {
    let mut cases: Vec<(String, String, Option<FaultServer>)> =
        vec![("down (connection refused)".into(), refused(), None)];
    for (name, fault) in faults(SM_JSON, "ThrottlingException") {
        let server = FaultServer::start(move |_, _| fault.clone());
        cases.push((name.into(), server.url(), Some(server)));
    }
    let checks = cases.iter().map(|(name, endpoint, server)| async move {
        let store = secrets_store(endpoint).await;
        let started = Instant::now();
        let fetched = store.fetch(&id("acme")).await;
        let took = started.elapsed();
        let listed = store.list().await;
        let fetches = server.as_ref().map_or(0, |s| s.calls_of("GetSecretValue"));
        (name, fetched, took, listed, fetches)
    });
    for (name, fetched, took, listed, fetches) in futures_util::future::join_all(checks).await {
        match &fetched {
            Err(e @ StoreError::Unavailable(_)) => {
                assert!(!e.to_string().contains(SECRET), "{name}: {e}");
                assert_eq!(e.code(), "store_unavailable");
            }
            other => panic!("{name}: expected Unavailable, got {other:?}"),
        }
        assert!(took < BOUND, "{name}: answered after {took:?}");
        assert!(
            matches!(listed, Err(StoreError::Unavailable(_))),
            "{name}: listing gave {listed:?}"
        );
        if name == "5xx" || name == "503" || name == "throttled" {
            assert_eq!(fetches, 3, "{name}: the SDK's three attempts");
        }
        eprintln!("Secrets Manager {name}: Unavailable after {took:?}, {fetches} call(s)");
    }
}

/// A switchable proxy in front of moto: `Fault::Forward` passes calls on.
struct Switch {
    server: FaultServer,
    fault: Arc<Mutex<Fault>>,
}

impl Switch {
    fn new(moto: &MotoServer) -> Self {
        let fault = Arc::new(Mutex::new(Fault::Forward));
        let current = Arc::clone(&fault);
        let server = FaultServer::proxy(&moto.endpoint(), move |_, _| {
            current.lock().unwrap().clone()
        });
        Self { server, fault }
    }

    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

/// The cache in front of the store rides every fault out for a tenant it
/// has a record of (the last good record serves, for up to 15 minutes past
/// the TTL), and answers `Unavailable` for one it has none of: a real
/// tenant not yet seen by this process, or one whose record expired.
#[tokio::test]
async fn the_cache_serves_the_last_good_record_through_every_fault() {
    let moto = MotoServer::start();
    moto.put_secret(
        "form-bridge/tenants/acme",
        &TenantRecordBuilder::new("acme").secret(SECRET).json(),
    )
    .await;
    moto.put_secret(
        "form-bridge/tenants/globex",
        &TenantRecordBuilder::new("globex").json(),
    )
    .await;
    let mut all = vec![("down (connection refused)", None)];
    all.extend(
        faults(SM_JSON, "ThrottlingException")
            .into_iter()
            .map(|(name, fault)| (name, Some(fault))),
    );
    for (name, fault) in all {
        let server = fault.map(|fault| FaultServer::start(move |_, _| fault.clone()));
        let failing = match &server {
            Some(server) => secrets_store(&server.url()).await,
            None => secrets_store(&refused()).await,
        };
        let healthy = secrets_store(&moto.endpoint()).await;
        // TTL zero: every lookup asks the store, so each one meets the fault.
        let cached = CachedTenantStore::new(
            Switchable::new(healthy, failing),
            CachePolicy::with_ttl(Duration::ZERO),
        );
        assert!(cached.get(&id("acme")).await.unwrap().is_some(), "{name}");
        cached.inner().fail();
        let record = cached.get(&id("acme")).await;
        assert!(
            matches!(&record, Ok(Some(r)) if r.tenant_id.as_str() == "acme"),
            "{name}: the last good record serves: {record:?}"
        );
        let unseen = cached.get(&id("globex")).await;
        assert!(
            matches!(unseen, Err(StoreError::Unavailable(_))),
            "{name}: a tenant never seen: {unseen:?}"
        );
        if let Some(server) = server {
            assert!(
                server.calls_of("GetSecretValue") >= 2,
                "{name}: both lookups met the fault"
            );
        }
    }
}

/// A store that reads through `healthy` until told to fail, then through
/// `failing` (the same service behind a fault).
struct Switchable {
    healthy: SecretsManagerStore,
    failing: SecretsManagerStore,
    failed: std::sync::atomic::AtomicBool,
}

impl Switchable {
    fn new(healthy: SecretsManagerStore, failing: SecretsManagerStore) -> Self {
        Self {
            healthy,
            failing,
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn fail(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn current(&self) -> &SecretsManagerStore {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            &self.failing
        } else {
            &self.healthy
        }
    }
}

impl TenantStore for Switchable {
    async fn fetch(&self, tenant: &TenantId) -> Result<Option<shared::TenantRecord>, StoreError> {
        self.current().fetch(tenant).await
    }

    async fn list(&self) -> Result<Option<Vec<TenantId>>, StoreError> {
        self.current().list().await
    }
}

const TABLE: &str = "form-bridge-idempotency";

async fn dynamodb_store(endpoint: &str) -> DynamoDbIdempotencyStore {
    let sdk = shared::aws::configure(testkit::loader_for(endpoint))
        .load()
        .await;
    DynamoDbIdempotencyStore::from_sdk_config(&sdk, TABLE, DEFAULT_TTL)
}

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey::from_signed_identity(&id("acme"), "1767225600", name)
}

/// Every fault of DynamoDB makes a claim `Unavailable` within the store's
/// tighter bound (2 s a call), so ingest refuses the request (503) rather
/// than accept it unchecked.
#[tokio::test]
async fn every_dynamodb_fault_fails_a_claim_closed_within_the_bound() {
    let mut cases: Vec<(String, String, Option<FaultServer>)> =
        vec![("down (connection refused)".into(), refused(), None)];
    for (name, fault) in faults(DDB_JSON, "ProvisionedThroughputExceededException") {
        let server = FaultServer::start(move |_, _| fault.clone());
        cases.push((name.into(), server.url(), Some(server)));
    }
    let checks = cases.iter().map(|(name, endpoint, server)| async move {
        let store = dynamodb_store(endpoint).await;
        let started = Instant::now();
        let claimed = store.claim(&key(name)).await;
        let took = started.elapsed();
        let claims = server.as_ref().map_or(0, |s| s.calls_of("PutItem"));
        (name, claimed, took, claims)
    });
    for (name, claimed, took, claims) in futures_util::future::join_all(checks).await {
        assert!(
            matches!(claimed, Err(IdempotencyError::Unavailable(_))),
            "{name}: {claimed:?}"
        );
        assert!(took < BOUND, "{name}: answered after {took:?}");
        eprintln!("DynamoDB {name}: Unavailable after {took:?}, {claims} call(s)");
    }
}

/// A claim written whose answer is lost: the SDK sends it again, finds its
/// own token on the item, and the claim is still won. When every answer
/// is lost the claim is `Unavailable` (ingest answers 503), yet it was
/// written: the key is held until the claim's lease ends, and the sender's
/// retry meets it as in progress (409 with Retry-After) meanwhile.
#[tokio::test]
async fn a_claim_whose_answer_is_lost_is_won_on_the_retry_or_holds_the_key_until_its_lease() {
    let moto = MotoServer::start();
    moto.create_idempotency_table(TABLE).await;
    let first_lost = FaultServer::proxy(&moto.endpoint(), |request, n| {
        if operation(request) == "PutItem" && n == 0 {
            Fault::Lost
        } else {
            Fault::Forward
        }
    });
    let store = dynamodb_store(&first_lost.url()).await;
    let claim = store.claim(&key("lost-once")).await.unwrap();
    assert!(matches!(claim, Claim::New(_)), "{claim:?}");
    assert_eq!(
        first_lost.calls_of("PutItem"),
        2,
        "sent again after the loss"
    );

    let switch = Switch::new(&moto);
    let store = dynamodb_store(&switch.server.url()).await;
    switch.set(Fault::Lost);
    let lost = store.claim(&key("lost-always")).await;
    assert!(
        matches!(lost, Err(IdempotencyError::Unavailable(_))),
        "{lost:?}"
    );
    switch.set(Fault::Forward);
    assert_eq!(
        store.claim(&key("lost-always")).await.unwrap(),
        Claim::InProgress,
        "the written claim holds the key until its lease ends"
    );
}

/// Completing a claim fails after the events were published: the answer
/// stands (ingest still answers 202), and the key stays claimed until the
/// lease ends, so a copy of the request meanwhile is in progress, not
/// accepted again.
#[tokio::test]
async fn a_completion_that_fails_leaves_the_key_claimed_not_free() {
    let moto = MotoServer::start();
    moto.create_idempotency_table(TABLE).await;
    let switch = Switch::new(&moto);
    let store = dynamodb_store(&switch.server.url()).await;
    let Claim::New(ticket) = store.claim(&key("completing")).await.unwrap() else {
        panic!("a fresh key is new");
    };
    switch.set(Fault::status(
        500,
        DDB_JSON,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}"#,
    ));
    let completed = store.complete(&ticket, &["s1".to_owned()]).await;
    assert!(
        matches!(completed, Err(IdempotencyError::Unavailable(_))),
        "{completed:?}"
    );
    switch.set(Fault::Forward);
    assert_eq!(
        store.claim(&key("completing")).await.unwrap(),
        Claim::InProgress
    );
}

/// Every test docs/fault-matrix.md cites (`path::function`) is defined in
/// the file it names, so the page cannot point at a test that was renamed
/// or removed.
#[test]
fn every_test_the_fault_matrix_cites_exists() {
    let root = testkit::workspace_root();
    let page = std::fs::read_to_string(root.join("docs/fault-matrix.md")).unwrap();
    let mut cited = 0;
    // Code spans are the odd pieces between backticks.
    for span in page.split('`').skip(1).step_by(2) {
        let Some((path, name)) = span.split_once("::") else {
            continue;
        };
        if !(path.ends_with(".rs") || path.ends_with(".py")) {
            continue;
        }
        let source = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("docs/fault-matrix.md cites {path}: {e}"));
        assert!(
            [format!("fn {name}("), format!("def {name}(")]
                .iter()
                .any(|definition| source.contains(definition.as_str())),
            "docs/fault-matrix.md cites {path}::{name}, which {path} does not define"
        );
        cited += 1;
    }
    assert!(
        cited >= 50,
        "only {cited} tests cited: is the page still there?"
    );
}
