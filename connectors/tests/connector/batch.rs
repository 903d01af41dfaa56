//! SQS batches and direct EventBridge events through `Connector::handle`.

use connectors::{BatchResponse, HandlerError, ItemFailure, Output};
use testkit::{HttpServer, Reply};

use super::*;

fn failures(ids: &[&str]) -> Output {
    Output::Batch(BatchResponse {
        batch_item_failures: ids
            .iter()
            .map(|id| ItemFailure {
                item_identifier: id.to_string(),
            })
            .collect(),
    })
}

#[tokio::test]
async fn the_sqs_fixture_is_delivered() {
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let (connector, _) = connector(&[record("acme", &server.url()).build()], &[]);
    let event = ConnectorEvent::from_json(&data("sqs-event.json")).unwrap();
    let output = connector.handle(&event, None).await.unwrap();
    assert_eq!(output, failures(&[]));
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!({"batchItemFailures": []})
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("webhook-id"),
        Some("019b76da-a800-7000-8000-000000000001")
    );
}

#[tokio::test]
async fn a_mixed_batch_reports_exactly_the_records_not_delivered() {
    let ok = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let broken = HttpServer::start(|_, _| Reply::json(500, "{}"));
    let gone = HttpServer::start(|_, _| Reply::json(410, "{}"));
    let slow = HttpServer::start(|_, _| Reply::json(200, "{}").after(Duration::from_secs(3)));
    let limited = HttpServer::start(|_, _| Reply::json(429, "{}").with_header("Retry-After", "60"));
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let redirect_target = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let location = redirect_target.url();
    let redirecting =
        HttpServer::start(move |_, _| Reply::json(307, "").with_header("Location", &location));
    let records = [
        record("ok", &ok.url()).build(),
        record("broken", &broken.url()).build(),
        record("gone", &gone.url()).build(),
        record("slow", &slow.url()).timeout_ms(200).build(),
        record("limited", &limited.url()).build(),
        record("refused", &format!("http://127.0.0.1:{refused_port}/")).build(),
        record("redirect", &redirecting.url()).build(),
        TenantRecordBuilder::new("nodest").build(),
    ];
    let (connector, metrics) = connector(&records, &[("DELIVERY_ATTEMPTS", "2")]);
    let bodies = vec![
        event("ok").0,                                             // m0 delivered
        event("broken").0,                                         // m1 500, 500
        "{not json".to_string(),                                   // m2 malformed
        event("gone").0,                                           // m3 410
        event("ok").0,                                             // m4 delivered
        event("slow").0,                                           // m5 timeout
        event("limited").0,                                        // m6 429, Retry-After too long
        event("refused").0,                                        // m7 connection refused
        event("redirect").0,                                       // m8 307 not followed
        event("nobody").0,                                         // m9 unknown tenant
        event("nodest").0,                                         // m10 no destination
        json!({"detail-type": "other", "detail": {}}).to_string(), // m11 wrong type
        event("ok").0,                                             // m12 delivered
    ];
    let output = connector.handle(&sqs(&bodies), None).await.unwrap();
    assert_eq!(
        output,
        failures(&["m1", "m2", "m3", "m5", "m6", "m7", "m8", "m9", "m10", "m11"])
    );
    assert_eq!(ok.requests().len(), 3);
    assert_eq!(broken.requests().len(), 2);
    assert_eq!(gone.requests().len(), 1);
    assert_eq!(limited.requests().len(), 1);
    assert_eq!(redirecting.requests().len(), 1);
    assert!(redirect_target.requests().is_empty());
    let mut reasons = reasons(&metrics);
    reasons.sort();
    let mut expected = vec![
        "delivered",
        "delivered",
        "delivered",
        "http_5xx",
        "malformed_event",
        "destination_gone",
        "timeout",
        "http_429",
        "connect_error",
        "http_3xx",
        "unknown_tenant",
        "no_destination",
        "malformed_event",
    ];
    expected.sort();
    assert_eq!(reasons, expected);
}

#[tokio::test]
async fn records_of_a_batch_are_delivered_concurrently_up_to_the_bound() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (Arc::clone(&now), Arc::clone(&peak));
    let server = HttpServer::start(move |_, _| {
        let current = n.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(current, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        n.fetch_sub(1, Ordering::SeqCst);
        Reply::json(200, "{}")
    });
    let (connector, _) = connector(
        &[record("acme", &server.url()).build()],
        &[("DELIVERY_CONCURRENCY", "4")],
    );
    let bodies: Vec<String> = (0..12).map(|_| event("acme").0).collect();
    let output = connector.handle(&sqs(&bodies), None).await.unwrap();
    assert_eq!(output, failures(&[]));
    assert_eq!(server.requests().len(), 12);
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak concurrency {peak}");
}

#[tokio::test]
async fn a_direct_eventbridge_event_is_delivered_or_fails_the_invocation() {
    let server = HttpServer::start(|_, n| {
        if n == 0 {
            Reply::json(200, "{}")
        } else {
            Reply::json(404, "{}")
        }
    });
    let (connector, _) = connector(&[record("acme", &server.url()).build()], &[]);
    let fixture = ConnectorEvent::from_json(&data("eventbridge-event.json")).unwrap();
    let output = connector.handle(&fixture, None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!({"delivered": "019b76da-a800-7000-8000-000000000001"})
    );
    let error = connector.handle(&fixture, None).await.unwrap_err();
    assert!(
        matches!(&error, HandlerError::Undelivered(e) if e.code() == "http_4xx"),
        "{error:?}"
    );
    assert_eq!(error.code(), "http_4xx");

    for not_an_event in ["{}", "[]", "42", r#"{"Records": "nope"}"#] {
        let event = ConnectorEvent::from_json(not_an_event).unwrap();
        let error = connector.handle(&event, None).await.unwrap_err();
        assert!(matches!(error, HandlerError::NotAnEvent), "{not_an_event}");
    }
}

#[tokio::test]
async fn malformed_details_fail_alone_with_a_reason_that_quotes_nothing() {
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let (connector, _) = connector(&[record("acme", &server.url()).build()], &[]);
    let (good, _) = event("acme");
    let mut cases = Vec::new();
    for (field, value) in [
        // Opaque, but within the grammar: 1 to 128 of [A-Za-z0-9._:-].
        ("submission_id", json!("not an id/")),
        ("tenant_id", json!("Not A Tenant")),
        ("version", json!("2")),
        ("payload", Value::Null),
        ("routing", json!("elsewhere")),
    ] {
        let mut e: Value = serde_json::from_str(&good).unwrap();
        e["detail"][field] = value;
        cases.push(e.to_string());
    }
    let mut no_detail: Value = serde_json::from_str(&good).unwrap();
    no_detail.as_object_mut().unwrap().remove("detail");
    cases.push(no_detail.to_string());
    cases.push(good);
    let output = connector.handle(&sqs(&cases), None).await.unwrap();
    assert_eq!(output, failures(&["m0", "m1", "m2", "m3", "m4", "m5"]));
    for case in &cases[..6] {
        let error = connector.deliver_event(case, None).await.unwrap_err();
        assert_eq!(error.code(), "malformed_event");
        assert!(!error.to_string().contains("ada@example.com"), "{error}");
        assert!(!error.to_string().contains("Not A Tenant"), "{error}");
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn one_destination_takes_only_its_share_of_an_invocation_and_slowness_is_counted() {
    // slowco answers after 1 s; its eight records may use two slots at once.
    let slow = HttpServer::start(|_, _| Reply::json(200, "{}").after(Duration::from_secs(1)));
    let fast = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let (connector, metrics) = connector(
        &[
            record("slowco", &slow.url()).build(),
            record("fastco", &fast.url()).build(),
        ],
        &[
            ("DELIVERY_CONCURRENCY_PER_DESTINATION", "2"),
            ("SLOW_DELIVERY_MS", "500"),
        ],
    );
    let mut bodies: Vec<String> = (0..8).map(|_| event("slowco").0).collect();
    bodies.push(event("fastco").0);
    // Time for two rounds of slowco's deliveries, not four: the records
    // whose turn would come too late go back to the queue, undelivered.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2_600);
    let output = connector
        .handle(&sqs(&bodies), Some(deadline))
        .await
        .unwrap();
    let Output::Batch(batch) = output else {
        panic!("{output:?}")
    };
    let failed: Vec<&str> = batch
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(fast.requests().len(), 1, "fastco delivered");
    assert!(!failed.contains(&"m8"), "{failed:?}");
    // At most two at a time for two rounds (a third may just fit).
    let sent = slow.requests().len();
    assert!((4..=6).contains(&sent), "{sent} sent to slowco");
    assert_eq!(failed.len(), 8 - sent, "{failed:?}");
    // Each of slowco's deliveries counts as slow, per tenant and in all.
    let slow_lines: Vec<Value> = metrics
        .lines()
        .into_iter()
        .filter(|m| m.get("SlowDeliveries").is_some())
        .collect();
    assert_eq!(slow_lines.len(), sent, "{slow_lines:?}");
    assert!(slow_lines.iter().all(|m| m["TenantId"] == "slowco"));
    assert_eq!(
        slow_lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function", "TenantId"], ["Function"]])
    );
}
