//! The source route: tenant, source, a token source's token and the
//! source's own rate limit bucket, checked before any body work.

use authorizer::{Authorizer, Config, Response};
use serde_json::{Value, json};
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;
use testkit::TenantRecordBuilder;

use super::*;

const TOKEN: &str = "tok_0123456789abcdef0123456789abcdef";
const STRIPE_SECRET: &str = "whsec_stripe_test_secret";

fn authorizer() -> Authorizer<MemoryTenantStore> {
    let records = json!([
        TenantRecordBuilder::new("acme")
            .rate_limit(1, 2)
            .source("stripe-live", "stripe", &[STRIPE_SECRET])
            .source("jotform", "token", &[TOKEN])
            .source("other", "typeform", &["typeform-secret"])
            .build(),
        TenantRecordBuilder::new("paused")
            .status("suspended")
            .source("stripe-live", "stripe", &[STRIPE_SECRET])
            .build(),
    ]);
    let store = MemoryTenantStore::from_json(&records.to_string()).unwrap();
    let config = Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    Authorizer::new(store, &config, Metrics::in_memory("authorizer").0)
}

/// A source route event as API Gateway sends it: no signature headers.
pub(crate) fn source_event(tenant: &str, source: &str, query: &str) -> Value {
    json!({
        "version": "2.0", "type": "REQUEST",
        "routeKey": "POST /v1/tenants/{tenant_id}/sources/{source_id}",
        "rawPath": format!("/v1/tenants/{tenant}/sources/{source}"),
        "rawQueryString": query,
        "headers": {"stripe-signature": "t=1,v1=00", "content-type": "application/json"},
        "pathParameters": {"tenant_id": tenant, "source_id": source},
        "requestContext": {"requestId": "r1", "http": {"method": "POST"}},
    })
}

fn to_json(r: &Response) -> Value {
    serde_json::to_value(r).unwrap()
}

#[tokio::test]
async fn a_known_source_is_allowed_with_its_id_in_the_context() {
    let a = authorizer();
    let response = a
        .handle(&raw(&source_event("acme", "stripe-live", "")), NOW)
        .await
        .unwrap();
    assert_eq!(
        to_json(&response),
        json!({"isAuthorized": true, "context": {"tenant_id": "acme", "routing": "shared", "source_id": "stripe-live"}})
    );
}

#[tokio::test]
async fn a_token_source_is_verified_here_and_others_are_left_to_ingest() {
    let a = authorizer();
    let ok = a
        .handle(
            &raw(&source_event("acme", "jotform", &format!("token={TOKEN}"))),
            NOW,
        )
        .await
        .unwrap();
    assert!(ok.is_authorized());
    for (query, reason) in [
        ("", "missing_token"),
        ("token=wrong-token-wrong-token-wrong-token", "bad_token"),
        (&format!("token={TOKEN}&token={TOKEN}"), "malformed_token"),
    ] {
        assert_eq!(
            reason_for(&a, "acme", "jotform", query).await.as_deref(),
            Some(reason),
            "{query:?}"
        );
    }
}

#[tokio::test]
async fn unknown_sources_tenants_and_suspended_tenants_are_denied_with_their_reason() {
    let a = authorizer();
    for (tenant, source, reason) in [
        ("acme", "nope", "unknown_source"),
        ("acme", "Not Valid", "invalid_source_id"),
        ("nobody", "stripe-live", "unknown_tenant"),
        ("paused", "stripe-live", "tenant_suspended"),
        ("acme", "jotform", "missing_token"),
    ] {
        assert_eq!(
            reason_for(&a, tenant, source, "").await.as_deref(),
            Some(reason),
            "{tenant}/{source}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn each_source_spends_its_own_bucket_never_the_signed_route() {
    let a = authorizer();
    // acme: 1/s, burst 2. Flooding one source's URL spends that source.
    let flood = raw(&source_event("acme", "stripe-live", ""));
    let allowed = allowed_of(&a, &flood, 10).await;
    assert_eq!(allowed, 2);
    assert_eq!(
        reason_for(&a, "acme", "stripe-live", "").await.as_deref(),
        Some("rate_limited")
    );
    // Another source and the signed route still have theirs.
    let other = raw(&source_event("acme", "other", ""));
    assert!(a.handle(&other, NOW).await.unwrap().is_authorized());
    assert!(
        a.handle(&raw(&fixture()), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
}

/// The deny reason for a source request, `None` when allowed.
async fn reason_for(
    a: &Authorizer<MemoryTenantStore>,
    tenant: &str,
    source: &str,
    query: &str,
) -> Option<String> {
    let request = authorizer::Request::for_source(tenant, source, query);
    let decision = a.authorize(request, NOW).await;
    decision
        .verdict
        .err()
        .map(|denial| denial.code().to_owned())
}

async fn allowed_of(
    a: &Authorizer<MemoryTenantStore>,
    event: &authorizer::AuthorizerEvent,
    n: usize,
) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        allowed += usize::from(a.handle(event, NOW).await.unwrap().is_authorized());
    }
    allowed
}

#[tokio::test(start_paused = true)]
async fn a_source_is_never_unlimited_even_when_its_tenant_is() {
    let records = json!([TenantRecordBuilder::new("free")
        .source("stripe-live", "stripe", &[STRIPE_SECRET])
        .build()]);
    let store = MemoryTenantStore::from_json(&records.to_string()).unwrap();
    let config = Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    let a = Authorizer::new(store, &config, Metrics::in_memory("authorizer").0);
    let flood = raw(&source_event("free", "stripe-live", ""));
    let burst = authorizer::DEFAULT_SOURCE_RATE_LIMIT.burst.get() as usize;
    assert_eq!(allowed_of(&a, &flood, burst + 50).await, burst);
    // It refills at the default rate.
    tokio::time::advance(std::time::Duration::from_secs(1)).await;
    let rate = authorizer::DEFAULT_SOURCE_RATE_LIMIT
        .requests_per_second
        .get() as usize;
    assert_eq!(allowed_of(&a, &flood, rate + 50).await, rate);
}
