//! The handler on real event JSON, tenants from a tenants file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authorizer::{Authorizer, AuthorizerEvent, Config, Response};
use serde_json::{Value, json};
use shared::store::MemoryTenantStore;
use shared::telemetry::{CapturedMetrics, Metrics};

use super::*;

fn config() -> Config {
    Config::from_env(&shared::config::Env::new(|_| None)).unwrap()
}

fn authorizer() -> (Authorizer<MemoryTenantStore>, CapturedMetrics) {
    let store = MemoryTenantStore::from_json(&data("tenants.json")).unwrap();
    let (metrics, captured) = Metrics::in_memory("authorizer");
    (Authorizer::new(store, &config(), metrics), captured)
}

fn to_json(r: &Response) -> Value {
    serde_json::to_value(r).unwrap()
}

fn last_metric(m: &CapturedMetrics) -> Value {
    m.lines().pop().expect("a metric line per decision")
}

#[tokio::test]
async fn allows_the_signed_fixture_with_the_tenants_context() {
    let (a, metrics) = authorizer();
    let response = a.handle(&raw(&fixture()), NOW).await.unwrap();
    assert_eq!(
        to_json(&response),
        json!({"isAuthorized": true, "context": {"tenant_id": "acme", "routing": "shared"}})
    );
    let m = last_metric(&metrics);
    assert_eq!(
        (m["Decision"].as_str(), m["TenantId"].as_str()),
        (Some("allow"), Some("acme"))
    );
}

#[tokio::test]
async fn every_failure_is_a_plain_deny_with_its_reason() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let header = |name: &'static str, value: Value| -> Mutation {
        Box::new(move |e: &mut Value| e["headers"][name] = value.clone())
    };
    let remove = |name: &'static str| -> Mutation {
        Box::new(move |e: &mut Value| {
            e["headers"].as_object_mut().unwrap().remove(name);
        })
    };
    let cases: Vec<(&str, Mutation, i64)> = vec![
        (
            "invalid_tenant_id",
            Box::new(|e| e["pathParameters"]["tenant_id"] = "ACME".into()),
            NOW,
        ),
        (
            "invalid_tenant_id",
            Box::new(|e| e["pathParameters"] = json!({})),
            NOW,
        ),
        (
            "invalid_tenant_id",
            Box::new(|e| e["pathParameters"] = Value::Null),
            NOW,
        ),
        ("missing_header", remove("x-formbridge-timestamp"), NOW),
        ("missing_header", remove("content-digest"), NOW),
        ("missing_header", remove("x-formbridge-signature"), NOW),
        (
            "malformed_timestamp",
            header("x-formbridge-timestamp", "soon".into()),
            NOW,
        ),
        ("malformed_digest", header("content-digest", "".into()), NOW),
        (
            "malformed_signature",
            header("x-formbridge-signature", "sha256=abc".into()),
            NOW,
        ),
        ("stale_timestamp", Box::new(|_| {}), NOW + 301),
        ("future_timestamp", Box::new(|_| {}), NOW - 301),
        (
            "bad_signature",
            header(
                "x-formbridge-signature",
                format!("v1={}", "0".repeat(64)).into(),
            ),
            NOW,
        ),
        (
            "bad_signature",
            header("x-formbridge-timestamp", (NOW + 1).to_string().into()),
            NOW,
        ),
        (
            "unknown_tenant",
            Box::new(|e| *e = signed_event("initech", ACME_SECRET, b"{}", NOW)),
            NOW,
        ),
        (
            "tenant_suspended",
            Box::new(|e| *e = signed_event("globex", GLOBEX_SECRET, b"{}", NOW)),
            NOW,
        ),
        // acme's valid signature replayed against another tenant's path.
        (
            "bad_signature",
            Box::new(|e| e["pathParameters"]["tenant_id"] = "umbrella".into()),
            NOW,
        ),
    ];
    let (a, metrics) = authorizer();
    for (want, mutate, now) in cases {
        let mut event = fixture();
        mutate(&mut event);
        let response = a.handle(&raw(&event), now).await.unwrap();
        assert_eq!(to_json(&response), json!({"isAuthorized": false}), "{want}");
        assert_eq!(last_metric(&metrics)["Reason"], want);
    }
}

/// The lean event view reads what `aws_lambda_events`' full type reads, on
/// our fixture and the upstream fixtures it is modelled on.
#[test]
fn event_view_agrees_with_aws_lambda_events() {
    use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request as Upstream;
    for name in [
        "authorizer-request.json",
        "upstream-apigw-v2-custom-authorizer-v2-request.json",
        "upstream-apigw-v2-custom-authorizer-v2-request-null-maps.json",
    ] {
        let text = data(name);
        let full: Upstream = serde_json::from_str(&text).unwrap();
        let lean: AuthorizerEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(lean.api(), Some(authorizer::Api::Http), "{name}");
        assert_eq!(
            lean.tenant_id.as_ref(),
            full.path_parameters.get("tenant_id"),
            "{name}"
        );
        assert_eq!(lean.request_id, full.request_context.request_id, "{name}");
        assert_eq!(lean.version, full.version, "{name}");
        assert_eq!(lean.kind, full.type_, "{name}");
        for (got, header) in [
            (&lean.timestamp, "x-formbridge-timestamp"),
            (&lean.content_digest, "content-digest"),
            (&lean.signature, "x-formbridge-signature"),
        ] {
            let want = full
                .headers
                .get(header)
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(got, &want, "{name} {header}");
        }
    }
}

#[tokio::test]
async fn upstream_fixtures_are_denied_for_want_of_a_tenant() {
    let (a, metrics) = authorizer();
    for name in [
        "upstream-apigw-v2-custom-authorizer-v2-request.json",
        "upstream-apigw-v2-custom-authorizer-v2-request-null-maps.json",
    ] {
        let event: Value = serde_json::from_str(&data(name)).unwrap();
        assert!(!a.handle(&raw(&event), NOW).await.unwrap().is_authorized());
        assert_eq!(
            last_metric(&metrics)["Reason"],
            "invalid_tenant_id",
            "{name}"
        );
    }
}

#[tokio::test]
async fn random_tenant_ids_never_become_metric_dimensions() {
    let (a, metrics) = authorizer();
    a.handle(
        &raw(&signed_event("nobody-here", ACME_SECRET, b"{}", NOW)),
        NOW,
    )
    .await
    .unwrap();
    let m = last_metric(&metrics);
    assert!(m.get("TenantId").is_none(), "{m}");
}

#[tokio::test]
async fn never_fails_on_events_that_are_not_authorizer_requests() {
    let (a, metrics) = authorizer();
    let mut wrong_types = fixture();
    wrong_types["headers"] = json!({"x-formbridge-timestamp": 5});
    let mut token = fixture();
    token["type"] = "TOKEN".into();
    let mut payload_v1 = fixture();
    payload_v1["version"] = "1.0".into();
    let events = [
        json!(null),
        json!(1),
        json!("x"),
        json!([]),
        json!({}),
        json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
        json!({"headers": 5, "requestContext": "x"}),
        wrong_types,
        token,
        payload_v1,
    ];
    for event in events {
        let response = a.handle(&raw(&event), NOW).await.unwrap();
        assert!(!response.is_authorized(), "{event}");
        assert_eq!(
            last_metric(&metrics)["Reason"],
            "malformed_event",
            "{event}"
        );
    }
}

#[tokio::test]
async fn both_secrets_work_during_rotation() {
    let store = MemoryTenantStore::from_json(&data("tenants.json")).unwrap();
    let new_secret = "fb_test_rotated_in_1111111111111111111";
    let record = shared::TenantRecord::from_value(
        testkit::TenantRecordBuilder::new("acme")
            .secrets(&[new_secret, ACME_SECRET])
            .build(),
    )
    .unwrap();
    store.upsert(record);
    let (metrics, _) = Metrics::in_memory("authorizer");
    let a = Authorizer::new(store, &config(), metrics);
    for secret in [new_secret, ACME_SECRET] {
        let r = a
            .handle(&raw(&signed_event("acme", secret, b"{}", NOW)), NOW)
            .await
            .unwrap();
        assert!(r.is_authorized());
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limits_per_tenant_and_recovers() {
    // acme and umbrella: 5 requests/s, burst 3 each (tests/data/tenants.json).
    let (a, metrics) = authorizer();
    let acme = raw(&fixture());
    let umbrella = raw(&signed_event("umbrella", UMBRELLA_SECRET, b"{}", NOW));
    let mut allowed = 0;
    for _ in 0..10 {
        allowed += usize::from(a.handle(&acme, NOW).await.unwrap().is_authorized());
    }
    assert_eq!(allowed, 3);
    assert_eq!(last_metric(&metrics)["Reason"], "rate_limited");
    // acme's exhaustion does not touch umbrella.
    for _ in 0..3 {
        assert!(a.handle(&umbrella, NOW).await.unwrap().is_authorized());
    }
    assert!(!a.handle(&umbrella, NOW).await.unwrap().is_authorized());
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(a.handle(&acme, NOW).await.unwrap().is_authorized());
}

/// A log writer that keeps everything written, to search for leaks.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_carry_reasons_but_never_secrets_or_signatures() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (a, _) = authorizer();
    let good = fixture();
    let signature = good["headers"]["x-formbridge-signature"]
        .as_str()
        .unwrap()
        .to_string();
    a.handle(&raw(&good), NOW).await.unwrap();
    let mut forged = fixture();
    forged["headers"]["x-formbridge-signature"] = format!("v1={}", "ab".repeat(32)).into();
    a.handle(&raw(&forged), NOW).await.unwrap();
    let mut broken = fixture();
    broken["headers"] = json!({"x-formbridge-signature": ["v1=deadbeef"]});
    a.handle(&raw(&broken), NOW).await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains(r#""reason":"bad_signature""#), "{text}");
    assert!(text.contains(r#""tenant_id":"acme""#), "{text}");
    for needle in [ACME_SECRET, &signature[3..], &"ab".repeat(32), "deadbeef"] {
        assert!(!text.contains(needle), "log leaks {needle}: {text}");
    }
}

/// The entry point for callers holding an HTTP request (the local gateway):
/// same decisions, headers looked up case-insensitively, and a header that
/// is not visible ASCII is malformed rather than missing.
#[tokio::test]
async fn authorize_takes_http_parts_directly() {
    use authorizer::Request;
    use http::{HeaderMap, HeaderName, HeaderValue};

    let (a, metrics) = authorizer();
    let event = fixture();
    let mut headers = HeaderMap::new();
    for (name, value) in event["headers"].as_object().unwrap() {
        headers.insert(
            HeaderName::from_bytes(name.to_ascii_uppercase().as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
        );
    }
    let decision = a
        .authorize(Request::from_http(Some("acme"), &headers), NOW)
        .await;
    assert_eq!(decision.verdict.map(|r| r.as_str()).ok(), Some("shared"));

    for (name, reason) in [
        ("x-formbridge-timestamp", "malformed_timestamp"),
        ("content-digest", "malformed_digest"),
        ("x-formbridge-signature", "malformed_signature"),
    ] {
        let mut bad = headers.clone();
        bad.insert(
            name,
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        );
        let decision = a
            .authorize(Request::from_http(Some("acme"), &bad), NOW)
            .await;
        assert_eq!(
            decision.verdict.err().map(|d| d.code()),
            Some(reason),
            "{name}"
        );
        assert_eq!(last_metric(&metrics)["Reason"], reason);
    }
    let decision = a.authorize(Request::from_http(None, &headers), NOW).await;
    assert_eq!(
        decision.verdict.err().map(|d| d.code()),
        Some("invalid_tenant_id")
    );
}
