//! The authorizer when Secrets Manager fails (docs/fault-matrix.md): a
//! tenant's record (`GetSecretValue`) or the tenant directory
//! (`ListSecrets`) behind a server that refuses, hangs, answers 5xx,
//! throttles, answers something unreadable or hangs up mid-answer, through
//! the real SDK with the bootstrap's timeouts (`shared::aws::configure`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authorizer::{Authorizer, Config, Unavailable};
use serde_json::json;
use shared::store::{SecretsManagerStore, StoreError, TenantStore};
use shared::telemetry::{CapturedMetrics, Metrics};
use shared::{TenantId, TenantRecord};
use testkit::faults::operation;
use testkit::{Fault, FaultServer, MotoServer, TenantRecordBuilder};

use super::*;

const PREFIX: &str = "form-bridge/tenants/";
const SM_JSON: &str = "application/x-amz-json-1.1";
/// Generous: a lookup is bounded at 5 s, retries included, and the
/// authorizer function's timeout is 10 s; a loaded machine adds to it.
const BOUND: Duration = Duration::from_secs(20);

async fn store_at(endpoint: &str) -> SecretsManagerStore {
    let sdk = shared::aws::configure(testkit::loader_for(endpoint))
        .load()
        .await;
    SecretsManagerStore::from_sdk_config(&sdk, PREFIX)
}

/// A store that reads through `healthy` until told to fail, then through
/// `failing`: Secrets Manager going wrong while the function runs.
struct Failing {
    healthy: SecretsManagerStore,
    failing: SecretsManagerStore,
    failed: Arc<AtomicBool>,
}

impl Failing {
    fn current(&self) -> &SecretsManagerStore {
        if self.failed.load(Ordering::SeqCst) {
            &self.failing
        } else {
            &self.healthy
        }
    }
}

impl TenantStore for Failing {
    async fn fetch(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.current().fetch(tenant).await
    }

    async fn list(&self) -> Result<Option<Vec<TenantId>>, StoreError> {
        self.current().list().await
    }
}

/// An authorizer over `store` whose records are reused for `ttl_seconds`.
fn authorizer_over<S: TenantStore>(
    store: S,
    ttl_seconds: &str,
) -> (Authorizer<S>, CapturedMetrics) {
    let ttl = ttl_seconds.to_owned();
    let config = Config::from_env(&shared::config::Env::new(move |name| {
        (name == "SECRET_CACHE_TTL_SECONDS").then(|| ttl.clone())
    }))
    .unwrap();
    let (metrics, captured) = Metrics::in_memory("authorizer");
    (Authorizer::new(store, &config, metrics), captured)
}

fn reason(metrics: &CapturedMetrics) -> String {
    metrics.lines().pop().unwrap()["Reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// For every fault, within the bound: a tenant this execution environment
/// has a record of is still allowed (the last good record serves for up
/// to 15 minutes past the TTL); for one it has none of, on either route,
/// the handler fails with `Unavailable`, logged and counted with reason
/// `store_unavailable` (API Gateway answers the sender 500, which it
/// retries, and nothing reaches ingest). Never a crash, never an allow
/// without a record, never a 403 that looks final.
#[tokio::test]
async fn every_secrets_manager_fault_spares_a_cached_tenant_and_fails_an_unseen_one() {
    let moto = MotoServer::start();
    moto.put_secret(
        &format!("{PREFIX}acme"),
        &TenantRecordBuilder::new("acme").secret(ACME_SECRET).json(),
    )
    .await;
    moto.put_secret(
        &format!("{PREFIX}umbrella"),
        &TenantRecordBuilder::new("umbrella")
            .secret(UMBRELLA_SECRET)
            .json(),
    )
    .await;
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
        ("429", Some(status(429, "TooManyRequestsException"))),
        (
            "malformed answer (200, not JSON)",
            Some(Fault::status(200, SM_JSON, "<html>gateway</html>")),
        ),
        (
            "reset mid-answer",
            Some(Fault::truncated_json(
                SM_JSON,
                r#"{"Name":"form-bridge/tenants/umbrella","SecretString":"{}"}"#,
            )),
        ),
        ("hang-up before any answer", Some(Fault::hang_up())),
    ];
    for (name, fault) in cases {
        let server = fault.map(|fault| FaultServer::start(move |_, _| fault.clone()));
        let endpoint = server.as_ref().map_or_else(
            || format!("http://127.0.0.1:{}", testkit::free_port()),
            FaultServer::url,
        );
        let failed = Arc::new(AtomicBool::new(false));
        let store = Failing {
            healthy: store_at(&moto.endpoint()).await,
            failing: store_at(&endpoint).await,
            failed: Arc::clone(&failed),
        };
        // TTL zero: every request asks Secrets Manager, so each meets the
        // fault; only the stale-if-error rule keeps acme in.
        let (a, metrics) = authorizer_over(store, "0");
        let acme = raw(&fixture());
        let umbrella = raw(&signed_event("umbrella", UMBRELLA_SECRET, b"{}", NOW));
        assert!(
            a.handle(&acme, NOW).await.unwrap().is_authorized(),
            "{name}"
        );
        failed.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let cached = a.handle(&acme, NOW).await.unwrap().is_authorized();
        let cached_took = started.elapsed();
        let started = Instant::now();
        let unseen = a.handle(&umbrella, NOW).await;
        let took = started.elapsed();
        assert!(cached, "{name}: the last good record serves");
        assert_eq!(unseen, Err(Unavailable), "{name}");
        assert_eq!(reason(&metrics), "store_unavailable", "{name}");
        let source = raw(&super::sources::source_event("umbrella", "stripe-live", ""));
        assert_eq!(a.handle(&source, NOW).await, Err(Unavailable), "{name}");
        assert_eq!(reason(&metrics), "store_unavailable", "{name}");
        assert!(took < BOUND, "{name}: decided after {took:?}");
        assert!(cached_took < BOUND, "{name}: decided after {cached_took:?}");
        eprintln!(
            "authorizer, Secrets Manager {name}: cached tenant allowed after {cached_took:?}, \
             unseen tenant denied after {took:?}"
        );
    }
}

/// `ListSecrets` fails (the tenant directory cannot be listed) while
/// `GetSecretValue` works: a real tenant not yet cached is still looked up
/// and allowed, on the budget for lookups of unlisted IDs (10 a second,
/// bursts of 20), and a flood of unknown IDs is denied, spending that
/// budget (`lookup_throttled`) rather than Secrets Manager's quota. While
/// the flood lasts, a real tenant not cached shares what is left of the
/// budget (shared's `when_listing_fails_unlisted_lookups_share_the_budget_
/// and_it_is_retried`, on paused time); the directory is listed again 15 s
/// after the failure.
#[tokio::test]
async fn a_failing_tenant_directory_leaves_real_tenants_on_the_shared_budget() {
    let moto = MotoServer::start();
    moto.put_secret(
        &format!("{PREFIX}acme"),
        &TenantRecordBuilder::new("acme").secret(ACME_SECRET).json(),
    )
    .await;
    let proxy = FaultServer::proxy(&moto.endpoint(), |request, _| {
        if operation(request) == "ListSecrets" {
            Fault::status(
                500,
                SM_JSON,
                r#"{"__type":"InternalServiceError","message":"injected"}"#,
            )
        } else {
            Fault::Forward
        }
    });
    let (a, metrics) = authorizer_over(store_at(&proxy.url()).await, "300");
    assert!(
        a.handle(&raw(&fixture()), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    assert!(
        proxy.calls_of("ListSecrets") >= 1,
        "the directory was asked"
    );

    let junk_secret = "j".repeat(32);
    for i in 0..200 {
        let junk = signed_event(&format!("junk-{i}"), &junk_secret, b"{}", NOW);
        assert!(!a.handle(&raw(&junk), NOW).await.unwrap().is_authorized());
    }
    let throttled = metrics
        .lines()
        .iter()
        .filter(|l| l["Reason"] == "lookup_throttled")
        .count();
    let looked_up = proxy.calls_of("GetSecretValue");
    assert!(throttled > 0, "the flood spent the budget");
    assert!(
        looked_up < 200,
        "{looked_up} lookups for 200 unknown IDs: the budget bounds them"
    );
    eprintln!("directory failing: 200 unknown IDs, {looked_up} lookups, {throttled} throttled");
}
