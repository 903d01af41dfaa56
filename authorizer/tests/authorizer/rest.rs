//! The isolated path: the REST API's REQUEST authorizer events, answered
//! with an IAM policy, and each tenant allowed only through its own API.

use authorizer::{Api, Authorizer, AuthorizerEvent, Response};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest as Upstream,
    ApiGatewayCustomAuthorizerResponse as UpstreamResponse,
};
use aws_lambda_events::iam::IamPolicyEffect;
use serde_json::{Value, json};
use shared::store::MemoryTenantStore;
use shared::telemetry::{CapturedMetrics, Metrics};
use testkit::TenantRecordBuilder;

use super::*;

pub(crate) const ISOLATED_SECRET: &str = "fb_test_initech_secret_00000000000000000";
const TOKEN: &str = "tok_0123456789abcdef0123456789abcdef";

fn authorizer() -> (Authorizer<MemoryTenantStore>, CapturedMetrics) {
    let records = json!([
        TenantRecordBuilder::new("acme").secret(ACME_SECRET).build(),
        TenantRecordBuilder::new("initech")
            .secret(ISOLATED_SECRET)
            .routing("dedicated")
            .field("isolation", json!("per_tenant"))
            .source("jotform", "token", &[TOKEN])
            .source("stripe-live", "stripe", &["whsec_stripe_test_secret"])
            .build(),
    ]);
    let store = MemoryTenantStore::from_json(&records.to_string()).unwrap();
    let config = authorizer::Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    let (metrics, captured) = Metrics::in_memory("authorizer");
    (Authorizer::new(store, &config, metrics), captured)
}

/// The REST fixture: acme's signed test vector as the isolated API sends it.
pub(crate) fn rest_fixture() -> Value {
    serde_json::from_str(&data("rest-authorizer-request.json")).unwrap()
}

/// The REST fixture re-signed for `tenant` with `secret` at `now`.
pub(crate) fn rest_signed_at(tenant: &str, secret: &str, now: i64) -> Value {
    let v2 = signed_event(tenant, secret, b"{}", now);
    let mut event = rest_fixture();
    event["pathParameters"]["tenant_id"] = tenant.into();
    event["methodArn"] = method_arn(&format!("/v1/tenants/{tenant}/submissions")).into();
    for (name, v2_name) in [
        ("X-FormBridge-Timestamp", "x-formbridge-timestamp"),
        ("Content-Digest", "content-digest"),
        ("X-FormBridge-Signature", "x-formbridge-signature"),
    ] {
        event["headers"][name] = v2["headers"][v2_name].clone();
        event["multiValueHeaders"][name] = json!([v2["headers"][v2_name]]);
    }
    event
}

/// A source route event from the REST API, with its query parameters.
fn rest_source(tenant: &str, source: &str, query: Value) -> Value {
    let mut event = rest_fixture();
    for headers in ["headers", "multiValueHeaders"] {
        let headers = event[headers].as_object_mut().unwrap();
        headers.retain(|name, _| !name.starts_with("X-FormBridge") && name != "Content-Digest");
    }
    event["resource"] = "/v1/tenants/{tenant_id}/sources/{source_id}".into();
    event["pathParameters"] = json!({"tenant_id": tenant, "source_id": source});
    event["methodArn"] = method_arn(&format!("/v1/tenants/{tenant}/sources/{source}")).into();
    event["multiValueQueryStringParameters"] = query;
    event
}

fn method_arn(path: &str) -> String {
    format!("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/isolated/POST{path}")
}

fn to_json(r: &Response) -> Value {
    serde_json::to_value(r).unwrap()
}

fn last_reason(m: &CapturedMetrics) -> Value {
    m.lines().pop().expect("a metric line per decision")["Reason"].clone()
}

/// The lean view reads what `aws_lambda_events`' REST authorizer request
/// reads, on our fixture and the upstream one.
#[test]
fn rest_event_view_agrees_with_aws_lambda_events() {
    for name in [
        "rest-authorizer-request.json",
        "upstream-apigw-custom-auth-request-type-request.json",
    ] {
        let text = data(name);
        let full: Upstream = serde_json::from_str(&text).unwrap();
        let lean: AuthorizerEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(lean.api(), Some(Api::Rest), "{name}");
        assert_eq!(lean.method_arn, full.method_arn, "{name}");
        assert_eq!(lean.request_id, full.request_context.request_id, "{name}");
        assert_eq!(
            lean.tenant_id.as_deref(),
            full.path_parameters.get("tenant_id").map(String::as_str),
            "{name}"
        );
        let header = |n: &str| full.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(lean.timestamp, header("x-formbridge-timestamp"), "{name}");
        assert_eq!(lean.content_digest, header("content-digest"), "{name}");
        assert_eq!(lean.signature, header("x-formbridge-signature"), "{name}");
        // The upstream map does not keep the order of names: compare sorted.
        let mut query: Vec<(String, String)> = full
            .multi_value_query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut lean_query: Vec<(String, String)> =
            url::form_urlencoded::parse(lean.raw_query.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        query.sort();
        lean_query.sort();
        assert_eq!(lean_query, query, "{name}");
    }
}

#[tokio::test]
async fn an_isolated_tenant_is_allowed_on_the_rest_api_with_a_policy_and_context() {
    let (a, _) = authorizer();
    let event = rest_signed_at("initech", ISOLATED_SECRET, NOW);
    let response = a.handle(&raw(&event), NOW).await.unwrap();
    assert!(response.is_authorized());
    let arn = method_arn("/v1/tenants/initech/submissions");
    assert_eq!(
        to_json(&response),
        json!({
            "principalId": "initech",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}
            ]},
            "context": {"tenant_id": "initech", "routing": "dedicated"}
        })
    );
    // The answer is what aws_lambda_events reads as a REST authorizer's.
    let upstream: UpstreamResponse = serde_json::from_value(to_json(&response)).unwrap();
    let statement = &upstream.policy_document.statement[0];
    assert_eq!(statement.effect, IamPolicyEffect::Allow);
    assert_eq!(statement.action, ["execute-api:Invoke"]);
    assert_eq!(statement.resource, [arn]);
    assert_eq!(upstream.context["tenant_id"], "initech");
}

#[tokio::test]
async fn each_tenant_is_allowed_only_through_its_own_api() {
    let (a, metrics) = authorizer();
    // A shared tenant, correctly signed, on the isolated API.
    let shared_on_rest = a.handle(&raw(&rest_fixture()), NOW).await.unwrap();
    assert!(!shared_on_rest.is_authorized());
    assert_eq!(last_reason(&metrics), "wrong_api");
    // An isolated tenant, correctly signed, on the shared API.
    let isolated_on_http = signed_event("initech", ISOLATED_SECRET, b"{}", NOW);
    let answer = a.handle(&raw(&isolated_on_http), NOW).await.unwrap();
    assert_eq!(to_json(&answer), json!({"isAuthorized": false}));
    assert_eq!(last_reason(&metrics), "wrong_api");
    // Each on its own API.
    assert!(
        a.handle(&raw(&fixture()), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    assert!(
        a.handle(&raw(&rest_signed_at("initech", ISOLATED_SECRET, NOW)), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    // A source of the isolated tenant, on the shared API: denied too.
    let v2_source = json!({
        "version": "2.0", "type": "REQUEST", "rawQueryString": format!("token={TOKEN}"),
        "pathParameters": {"tenant_id": "initech", "source_id": "jotform"},
        "requestContext": {"requestId": "r1"}, "headers": {},
    });
    assert!(
        !a.handle(&raw(&v2_source), NOW)
            .await
            .unwrap()
            .is_authorized()
    );
    assert_eq!(last_reason(&metrics), "wrong_api");
}

#[tokio::test]
async fn the_wrong_api_is_checked_after_the_signature() {
    // An unsigned caller learns nothing, and the log says what failed first.
    let (a, metrics) = authorizer();
    let mut forged = rest_fixture();
    forged["headers"]["X-FormBridge-Signature"] = format!("v1={}", "0".repeat(64)).into();
    assert!(!a.handle(&raw(&forged), NOW).await.unwrap().is_authorized());
    assert_eq!(last_reason(&metrics), "bad_signature");
}

#[tokio::test]
async fn every_rest_deny_is_a_deny_policy_for_the_method_without_context() {
    let (a, _) = authorizer();
    let mut unknown = rest_signed_at("initech", ISOLATED_SECRET, NOW);
    unknown["pathParameters"]["tenant_id"] = "nobody".into();
    let mut stale = rest_signed_at("initech", ISOLATED_SECRET, NOW);
    stale["headers"]["X-FormBridge-Timestamp"] = (NOW - 3_600).to_string().into();
    let mut unsigned = rest_signed_at("initech", ISOLATED_SECRET, NOW);
    unsigned["headers"].as_object_mut().unwrap().clear();
    for event in [unknown, stale, unsigned, rest_fixture()] {
        let arn = event["methodArn"].clone();
        let response = a.handle(&raw(&event), NOW).await.unwrap();
        assert_eq!(
            to_json(&response),
            json!({
                "principalId": "anonymous",
                "policyDocument": {"Version": "2012-10-17", "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn}
                ]}
            }),
            "{event}"
        );
    }
}

#[tokio::test]
async fn an_isolated_tenants_token_source_is_checked_from_the_rest_query() {
    let (a, metrics) = authorizer();
    let ok = rest_source("initech", "jotform", json!({"token": [TOKEN], "a": ["1"]}));
    let response = a.handle(&raw(&ok), NOW).await.unwrap();
    assert_eq!(
        to_json(&response)["context"],
        json!({"tenant_id": "initech", "routing": "dedicated", "source_id": "jotform"})
    );
    for (query, reason) in [
        (
            json!({"token": ["tok_wrong_0123456789abcdef0123456789"]}),
            "invalid_token",
        ),
        (Value::Null, "missing_token"),
    ] {
        let event = rest_source("initech", "jotform", query);
        assert!(!a.handle(&raw(&event), NOW).await.unwrap().is_authorized());
        let got = last_reason(&metrics);
        assert!(
            got.as_str().is_some_and(|r| r.contains("token")),
            "{reason}: {got}"
        );
    }
    // A body-signed source: ingest verifies; the authorizer allows it here.
    let stripe = rest_source("initech", "stripe-live", Value::Null);
    assert!(a.handle(&raw(&stripe), NOW).await.unwrap().is_authorized());
}
