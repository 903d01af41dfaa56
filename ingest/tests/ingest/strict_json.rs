//! JSON bodies strict receivers refuse (a lone surrogate escape, a number
//! beyond a 64-bit float) are refused 400 on both routes, and nothing is
//! published; what they accept is delivered byte for byte.

use shared::source::{Provider, SignRequest};
use shared::store::{CachePolicy, CachedTenantStore, MemoryTenantStore};

use super::*;

/// Refused bodies and what the message says about each.
const REFUSED: &[(&str, &str)] = &[
    (r#"{"a":"\ud800"}"#, "surrogate"),
    (r#"{"a":"\udc00"}"#, "surrogate"),
    (r#"{"a":"\udc00\ud800"}"#, "surrogate"),
    (r#"{"a":1e999999}"#, "number"),
    (r#"{"a":-1e400}"#, "number"),
    (r#"[{"a":1},{"b":"\udfff"}]"#, "surrogate"),
];

/// Accepted as they are.
const ACCEPTED: &str =
    r#"{"a":"\ud83d\ude00","b":"\\ud800","c":1.7976931348623157e308,"d":1e-400,"e":"1e999999"}"#;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";

/// A GitHub delivery of `body` to acme's source `gh`.
fn github_event(body: &str, delivery: &str) -> Value {
    let signed = Provider::parse("github")
        .unwrap()
        .sign(
            &shared::secret::Secret::new(GITHUB_SECRET),
            &SignRequest {
                method: "POST",
                url: "https://abcdef123.execute-api.us-east-1.amazonaws.com/v1/tenants/acme/sources/gh",
                body: body.as_bytes(),
                delivery_id: delivery,
            },
            NOW_SECS as i64,
        )
        .unwrap();
    let mut event = testkit::on_source_route(fixture(), "acme", "gh", signed.headers, body);
    event["headers"]["content-type"] = "application/json".into();
    event
}

#[tokio::test]
async fn submissions_strict_parsers_refuse_are_400_and_unpublished() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    for (body, what) in REFUSED {
        let (status, answer) = run(&ingest, &event_with(body.as_bytes(), "application/json")).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "malformed_json", "{body}");
        let message = message(&answer);
        assert!(
            message.contains(what) && message.contains("line 1 column "),
            "{message}"
        );
        assert!(
            !message.contains("\\u") && !message.contains("e4"),
            "{message}"
        );
    }
    assert!(rx.try_recv().is_err(), "nothing published");
    let (status, answer) = run(
        &ingest,
        &event_with(ACCEPTED.as_bytes(), "application/json"),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let entry = rx.try_recv().unwrap();
    assert!(
        entry
            .detail
            .ends_with(&format!(r#""payload":{ACCEPTED}}}"#)),
        "{}",
        entry.detail
    );
}

#[tokio::test]
async fn sources_strict_parsers_refuse_are_400_and_unpublished() {
    let (publisher, mut rx) = MemoryPublisher::channel(100);
    let record = testkit::TenantRecordBuilder::new("acme")
        .source("gh", "github", &[GITHUB_SECRET])
        .json();
    let store = CachedTenantStore::new(
        MemoryTenantStore::from_json(&format!("[{record}]")).unwrap(),
        CachePolicy::with_ttl(Duration::from_secs(300)),
    );
    let ingest = Ingest::new(publisher, &config(), Metrics::in_memory("ingest").0)
        .with_tenant_records(store);
    let run = async |event: &Value| parts(&ingest.handle(&raw(event), now()).await);
    for (n, (body, what)) in REFUSED.iter().enumerate() {
        let event = github_event(body, &format!("d-{n}"));
        let (status, answer) = run(&event).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "malformed_json", "{body}");
        assert!(message(&answer).contains(what), "{answer}");
    }
    assert!(rx.try_recv().is_err(), "nothing published");
    let (status, answer) = run(&github_event(ACCEPTED, "d-ok")).await;
    assert_eq!(status, 202, "{answer}");
    let entry = rx.try_recv().unwrap();
    assert!(
        entry.detail.contains(&format!(r#""payload":{ACCEPTED}"#)),
        "{}",
        entry.detail
    );
}
