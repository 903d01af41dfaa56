//! The EventBridge adapter against a local endpoint that speaks the
//! EventBridge JSON protocol badly. Each test asserts what reached the
//! "bus" (entries the endpoint answered with an EventId) and what the
//! client was told.

use std::sync::{Arc, Mutex};

use aws_config::timeout::TimeoutConfig;
use shared::publish::EventBridgePublisher;
use testkit::{HttpServer, RecordedRequest, Reply};

use super::*;

/// What the fake bus does with one call.
#[derive(Clone)]
enum Step {
    /// Publish every entry.
    Ok,
    /// Answer 200 with these positions failed with this code.
    Fail(Vec<usize>, &'static str),
    /// Answer an error status with an error type.
    Status(u16, &'static str),
    /// Publish, but answer only after this long.
    Late(Duration),
    /// Hang up without answering (nothing published).
    HangUp,
    /// Publish, then answer with one result too few.
    ShortAnswer,
}

struct FakeBus {
    server: HttpServer,
    published: Arc<Mutex<Vec<Value>>>,
}

impl FakeBus {
    /// A bus following `script` call by call, then publishing everything.
    fn start(script: Vec<Step>) -> Self {
        let published = Arc::new(Mutex::new(Vec::new()));
        let bus = Arc::clone(&published);
        let server = HttpServer::start(move |req: &RecordedRequest, n| {
            // Anything unexpected is refused (not retried), so a test fails
            // visibly instead of a panic here looking like a hang-up.
            if req.header("x-amz-target") != Some("AWSEvents.PutEvents")
                || serde_json::from_slice::<Value>(&req.body).is_err()
            {
                return Reply::json(400, r#"{"__type":"UnknownOperationException"}"#);
            }
            let entries = request_entries(req);
            let step = script.get(n).cloned().unwrap_or(Step::Ok);
            let publish = |positions: &[usize]| {
                let mut bus = bus.lock().unwrap();
                for (i, e) in entries.iter().enumerate() {
                    if !positions.contains(&i) {
                        bus.push(serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap());
                    }
                }
            };
            let answer = |failed: &[usize], drop_last: bool| {
                let mut results: Vec<Value> = (0..entries.len())
                    .map(|i| {
                        if failed.contains(&i) {
                            json!({"ErrorCode": failed_code(&script, n), "ErrorMessage": "fake failure"})
                        } else {
                            json!({"EventId": format!("event-{n}-{i}")})
                        }
                    })
                    .collect();
                if drop_last {
                    results.pop();
                }
                let body = json!({"FailedEntryCount": failed.len(), "Entries": results});
                Reply::json(200, body.to_string())
                    .with_header("Content-Type", "application/x-amz-json-1.1")
            };
            match step {
                Step::Ok => {
                    publish(&[]);
                    answer(&[], false)
                }
                Step::Fail(positions, _) => {
                    publish(&positions);
                    answer(&positions, false)
                }
                Step::Status(status, kind) => Reply::json(
                    status,
                    json!({"__type": kind, "message": "fake error"}).to_string(),
                ),
                Step::Late(delay) => {
                    publish(&[]);
                    answer(&[], false).after(delay)
                }
                Step::HangUp => Reply::Close,
                Step::ShortAnswer => {
                    publish(&[]);
                    answer(&[], true)
                }
            }
        });
        Self { server, published }
    }

    fn published(&self) -> Vec<Value> {
        self.published.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<Vec<Value>> {
        self.server.requests().iter().map(request_entries).collect()
    }
}

fn failed_code(script: &[Step], n: usize) -> &'static str {
    match script.get(n) {
        Some(Step::Fail(_, code)) => code,
        _ => "InternalFailure",
    }
}

fn request_entries(req: &RecordedRequest) -> Vec<Value> {
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    body["Entries"].as_array().cloned().unwrap_or_default()
}

/// Ingest publishing to `endpoint` with short timeouts.
async fn ingest_at(endpoint: &str) -> Ingest<EventBridgePublisher> {
    let sdk = testkit::loader_for(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(300))
                .operation_attempt_timeout(Duration::from_millis(500))
                .build(),
        )
        .load()
        .await;
    let publisher = EventBridgePublisher::from_sdk_config(&sdk, "form-bridge-test");
    Ingest::new(
        publisher,
        &config(),
        Metrics::to_writer("ingest", std::io::sink()),
    )
}

fn submission_ids_on(bus: &[Value]) -> Vec<String> {
    bus.iter()
        .map(|d| d["submission_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn partial_failures_are_retried_alone_until_they_succeed() {
    let bus = FakeBus::start(vec![Step::Fail(vec![1, 3], "ThrottlingException")]);
    let ingest = ingest_at(&bus.server.url()).await;
    let (status, body) = run(&ingest, &event_with(&batch_body(5, 10), "application/json")).await;
    assert_eq!(status, 202, "{body}");
    let calls = bus.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 5);
    let retried: Vec<Value> = calls[1]
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["Detail"].as_str().unwrap()).unwrap()["payload"]["n"]
                .clone()
        })
        .collect();
    assert_eq!(
        retried,
        vec![json!(1), json!(3)],
        "only the failed entries, in order"
    );
    let mut on_bus = submission_ids_on(&bus.published());
    on_bus.sort();
    assert_eq!(on_bus, ids(&body), "each exactly once");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let bus = FakeBus::start(vec![
        Step::Status(400, "ThrottlingException"),
        Step::Status(500, "InternalException"),
        Step::Status(503, "ServiceUnavailable"),
    ]);
    let ingest = ingest_at(&bus.server.url()).await;
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(bus.calls().len(), 4);
    assert_eq!(submission_ids_on(&bus.published()), ids(&body));
}

#[tokio::test]
async fn a_bus_that_keeps_failing_is_a_503_and_nothing_is_published() {
    let bus = FakeBus::start(vec![Step::Status(503, "ServiceUnavailable"); 20]);
    let ingest = ingest_at(&bus.server.url()).await;
    let (status, body) = run(&ingest, &event_with(&batch_body(3, 10), "application/json")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "bus_unavailable");
    assert!(message(&body).contains("retrying the request is safe"));
    assert_eq!(bus.calls().len(), 5, "the retry policy's attempts");
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let bus = FakeBus::start(vec![Step::Status(400, "AccessDeniedException")]);
    let ingest = ingest_at(&bus.server.url()).await;
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(bus.calls().len(), 1);
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn a_partly_published_batch_tells_the_client_what_went_through() {
    let bus = FakeBus::start(vec![Step::Fail(vec![1], "MalformedDetail")]);
    let ingest = ingest_at(&bus.server.url()).await;
    let (status, body) = run(&ingest, &event_with(&batch_body(3, 10), "application/json")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(bus.calls().len(), 1, "a rejected entry is not sent again");
    let published = submission_ids_on(&bus.published());
    assert_eq!(published.len(), 2);
    assert_eq!(body["error"]["published_submission_ids"], json!(published));
    assert!(message(&body).contains("1 of 3"));
}

#[tokio::test]
async fn a_lost_answer_is_not_retried_and_the_client_is_told() {
    for step in [
        Step::Late(Duration::from_secs(2)),
        Step::ShortAnswer,
        Step::HangUp,
    ] {
        let bus = FakeBus::start(vec![step]);
        let ingest = ingest_at(&bus.server.url()).await;
        let (status, body) = run(&ingest, &fixture()).await;
        assert_eq!(status, 503, "{body}");
        assert!(message(&body).contains("may have been published"), "{body}");
        assert!(
            !message(&body).contains("retrying the request is safe"),
            "{body}"
        );
        assert_eq!(bus.calls().len(), 1, "never sent twice");
        assert!(bus.published().len() <= 1);
    }
}

#[tokio::test]
async fn nothing_listening_is_a_503_after_retries() {
    let endpoint = format!("http://127.0.0.1:{}", testkit::free_port());
    let ingest = ingest_at(&endpoint).await;
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("retrying the request is safe"));
}
