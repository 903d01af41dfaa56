//! The Secrets Manager tenant store against a moto server, through the real
//! AWS SDK: the answers a real account gives, good and bad.

#![allow(clippy::unwrap_used)]
// The Secrets Manager adapter exists with the `aws` feature (the default).
#![cfg(feature = "aws")]

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use serde_json::json;
use shared::store::{CachePolicy, CachedTenantStore, SecretsManagerStore, StoreError, TenantStore};
use shared::{TenantId, TenantStatus};
use testkit::{MotoServer, TenantRecordBuilder};

const SECRET: &str = "fb_test_secret_value_do_not_log_00000000";

async fn setup(moto: &MotoServer, prefix: &str) -> (Client, SecretsManagerStore) {
    let client = Client::new(&shared::aws::configure(moto.loader()).load().await);
    let store = SecretsManagerStore::new(client.clone(), prefix);
    (client, store)
}

fn id(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

#[tokio::test]
async fn reads_records_and_reports_every_kind_of_bad_secret() {
    let moto = MotoServer::start();
    let (client, store) = setup(&moto, "form-bridge/tenants/").await;
    let good = TenantRecordBuilder::new("acme")
        .secret(SECRET)
        .status("suspended")
        .routing("dedicated")
        .field("unknown", json!([1, 2, 3]));
    moto.put_secret("form-bridge/tenants/acme", &good.json())
        .await;
    moto.put_secret(
        "form-bridge/tenants/notjson",
        &format!("{{\"signing_secrets\": [\"{SECRET}\""),
    )
    .await;
    moto.put_secret("form-bridge/tenants/wrongtype", &json!(SECRET).to_string())
        .await;
    moto.put_secret(
        "form-bridge/tenants/misfiled",
        &TenantRecordBuilder::new("acme").secret(SECRET).json(),
    )
    .await;
    client
        .create_secret()
        .name("form-bridge/tenants/binary")
        .secret_binary(Blob::new(SECRET.as_bytes()))
        .send()
        .await
        .unwrap();

    let acme = store.fetch(&id("acme")).await.unwrap().expect("found");
    assert_eq!(acme.status, TenantStatus::Suspended);
    assert_eq!(acme.routing.as_str(), "dedicated");
    assert!(store.fetch(&id("missing")).await.unwrap().is_none());

    for (tenant, want) in [
        ("notjson", "not valid JSON"),
        ("wrongtype", "must be a JSON object"),
        ("misfiled", "does not match"),
        ("binary", "no SecretString"),
    ] {
        match store.fetch(&id(tenant)).await {
            Err(StoreError::Malformed(e)) => {
                let text = e.to_string();
                assert!(text.contains(want), "{tenant}: {text}");
                assert!(!text.contains(SECRET), "{tenant} leaks the secret: {text}");
            }
            other => panic!("{tenant}: expected Malformed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn honours_the_secret_name_prefix() {
    let moto = MotoServer::start();
    let (_, store) = setup(&moto, "prod/fb/").await;
    let record = TenantRecordBuilder::new("acme").secret(SECRET).json();
    moto.put_secret("prod/fb/acme", &record).await;
    moto.put_secret("form-bridge/tenants/other", &record).await;
    assert!(store.fetch(&id("acme")).await.unwrap().is_some());
    assert!(store.fetch(&id("other")).await.unwrap().is_none());
    assert_eq!(store.secret_name(&id("acme")), "prod/fb/acme");
}

#[tokio::test]
async fn a_tenant_whose_secret_is_deleted_is_unknown() {
    let moto = MotoServer::start();
    let (client, store) = setup(&moto, "form-bridge/tenants/").await;
    let record = TenantRecordBuilder::new("acme").secret(SECRET).json();
    moto.put_secret("form-bridge/tenants/acme", &record).await;
    // Scheduled for deletion (the default 30-day recovery window): Secrets
    // Manager answers InvalidRequestException, which is "no such tenant".
    client
        .delete_secret()
        .secret_id("form-bridge/tenants/acme")
        .send()
        .await
        .unwrap();
    assert!(store.fetch(&id("acme")).await.unwrap().is_none());
}

#[tokio::test]
async fn an_outage_is_unavailable_and_the_cache_rides_it_out() {
    let mut moto = MotoServer::start();
    let (_, store) = setup(&moto, "form-bridge/tenants/").await;
    let record = TenantRecordBuilder::new("acme").secret(SECRET).json();
    moto.put_secret("form-bridge/tenants/acme", &record).await;
    // TTL zero: every lookup goes to the store, so the stale path is used.
    let cached = CachedTenantStore::new(store.clone(), CachePolicy::with_ttl(Duration::ZERO));
    assert!(cached.get(&id("acme")).await.unwrap().is_some());

    moto.stop();
    let err = store.fetch(&id("acme")).await.expect_err("server is gone");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(SECRET));
    assert!(
        cached.get(&id("acme")).await.unwrap().is_some(),
        "last good record serves"
    );
    assert!(matches!(
        cached.get(&id("other")).await,
        Err(StoreError::Unavailable(_))
    ));
}
