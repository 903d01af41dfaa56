//! The handler on tenants kept in a moto server, through the real AWS SDK.

use authorizer::{Authorizer, Config, Unavailable};
use aws_sdk_secretsmanager::Client;
use shared::store::SecretsManagerStore;
use shared::telemetry::{CapturedMetrics, Metrics};
use testkit::{MotoServer, TenantRecordBuilder};

use super::*;

const PREFIX: &str = "form-bridge/tenants/";

async fn client(moto: &MotoServer) -> Client {
    Client::new(&shared::aws::configure(moto.loader()).load().await)
}

async fn put(moto: &MotoServer, tenant: &str, record: &str) {
    moto.put_secret(&format!("{PREFIX}{tenant}"), record).await;
}

async fn authorizer(client: Client) -> (Authorizer<SecretsManagerStore>, CapturedMetrics) {
    // TTL 0: every request asks Secrets Manager, so the outage below is met
    // by a real failed lookup, not by a cache hit.
    let config = Config::from_env(&shared::config::Env::new(|name| {
        (name == "SECRET_CACHE_TTL_SECONDS").then(|| "0".to_string())
    }))
    .unwrap();
    let (metrics, captured) = Metrics::in_memory("authorizer");
    let store = SecretsManagerStore::new(client, config.tenant_secret_prefix.clone());
    (Authorizer::new(store, &config, metrics), captured)
}

fn acme_record() -> String {
    TenantRecordBuilder::new("acme").secret(ACME_SECRET).json()
}

#[tokio::test]
async fn decides_on_records_in_secrets_manager_and_survives_an_outage() {
    let mut moto = MotoServer::start();
    let client = client(&moto).await;
    put(&moto, "acme", &acme_record()).await;
    put(
        &moto,
        "broken",
        r#"{"tenant_id": "broken", "status": "active"}"#,
    )
    .await;
    let (a, metrics) = authorizer(client).await;
    let reason = |m: &CapturedMetrics| m.lines().pop().unwrap()["Reason"].clone();

    assert!(
        a.handle(&raw(&fixture()), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    let unknown = signed_event("initech", ACME_SECRET, b"{}", NOW);
    assert!(!a.handle(&raw(&unknown), NOW).await.unwrap().is_authorized());
    assert_eq!(reason(&metrics), "unknown_tenant");
    let broken = signed_event("broken", ACME_SECRET, b"{}", NOW);
    assert!(!a.handle(&raw(&broken), NOW).await.unwrap().is_authorized());
    assert_eq!(reason(&metrics), "malformed_record");

    // Secrets Manager goes away mid-run: acme's lookup fails and its last
    // good record serves; for a tenant never seen the handler fails (API
    // Gateway answers 500, which the sender retries): not allowed, not a
    // crash, not a 403.
    moto.stop();
    assert!(
        a.handle(&raw(&fixture()), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    let new = signed_event("umbrella", ACME_SECRET, b"{}", NOW);
    assert_eq!(a.handle(&raw(&new), NOW).await, Err(Unavailable));
    assert_eq!(reason(&metrics), "store_unavailable");
}
