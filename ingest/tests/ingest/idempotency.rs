//! Each submission accepted once: replays of a request get its first
//! answer and publish nothing.

use serde_json::Value;

use super::*;

/// The handler's answer to `event`: status, body, and whether it was
/// marked replayed.
async fn send(ingest: &Ingest<MemoryPublisher>, event: &Value) -> (u16, Value, bool) {
    let response = ingest.handle(&raw(event), now()).await;
    let replayed = response.headers.idempotent_replayed == Some("true");
    let (status, body) = parts(&response);
    (status, body, replayed)
}

#[tokio::test]
async fn the_same_signed_request_four_times_is_one_submission() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    let event = fixture();
    let (status, first, replayed) = send(&ingest, &event).await;
    assert_eq!((status, replayed), (202, false), "{first}");
    for _ in 0..3 {
        let (status, body, replayed) = send(&ingest, &event).await;
        assert_eq!((status, replayed), (202, true), "{body}");
        assert_eq!(ids(&body), ids(&first));
    }
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "published once");
    // Another body, or another timestamp, is another submission.
    let mut later = fixture();
    later["headers"]["x-formbridge-timestamp"] = (NOW_SECS + 1).to_string().into();
    let (status, body, replayed) = send(&ingest, &later).await;
    assert_eq!((status, replayed), (202, false), "{body}");
    assert_ne!(ids(&body), ids(&first));
}

#[tokio::test]
async fn concurrent_copies_publish_once_and_agree() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    let event = fixture();
    let (a, b, c, d) = tokio::join!(
        send(&ingest, &event),
        send(&ingest, &event),
        send(&ingest, &event),
        send(&ingest, &event)
    );
    let accepted: Vec<Vec<String>> = [&a, &b, &c, &d]
        .iter()
        .filter(|(status, body, _)| {
            assert!(*status == 202 || *status == 409, "{status} {body}");
            *status == 202
        })
        .map(|(_, body, _)| ids(body))
        .collect();
    assert!(!accepted.is_empty());
    assert!(accepted.iter().all(|i| i == &accepted[0]));
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "published once");
}

#[tokio::test]
async fn an_idempotency_key_scopes_the_request_and_refuses_another_body() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    let mut first = event_with(br#"{"order":1}"#, "application/json");
    first["headers"]["Idempotency-Key"] = "order-1".into();
    let (status, body, _) = send(&ingest, &first).await;
    assert_eq!(status, 202, "{body}");
    // A retry with a new timestamp but the same key and body: replayed.
    let mut retry = first.clone();
    retry["headers"]["x-formbridge-timestamp"] = (NOW_SECS + 5).to_string().into();
    let (status, again, replayed) = send(&ingest, &retry).await;
    assert_eq!((status, replayed), (202, true), "{again}");
    assert_eq!(ids(&again), ids(&body));
    // The same key for another body.
    let mut other = event_with(br#"{"order":2}"#, "application/json");
    other["headers"]["Idempotency-Key"] = "order-1".into();
    let (status, refused, _) = send(&ingest, &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    // A key that is not printable ASCII.
    let mut bad = event_with(br#"{"order":3}"#, "application/json");
    bad["headers"]["idempotency-key"] = "tab\there".into();
    let (status, refused, _) = send(&ingest, &bad).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_idempotency_key");
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "published once");
}

#[tokio::test]
async fn a_request_the_bus_refused_may_be_retried() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 10);
    // Fill the bus.
    let batch = format!("[{}]", [r#"{"x":1}"#; 10].join(","));
    let (status, body, _) = send(&ingest, &event_with(batch.as_bytes(), "application/json")).await;
    assert_eq!(status, 202, "{body}");
    let event = fixture();
    let (status, body, _) = send(&ingest, &event).await;
    assert_eq!(status, 503, "{body}");
    // The key was released: once there is room, the retry is accepted.
    while rx.try_recv().is_ok() {}
    let (status, body, replayed) = send(&ingest, &event).await;
    assert_eq!((status, replayed), (202, false), "{body}");
    assert!(rx.try_recv().is_ok());
}

#[tokio::test]
async fn a_captured_request_sent_again_under_new_idempotency_keys_is_still_one() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    let mut first = None;
    for key in [
        None,
        Some("attacker-1"),
        Some("attacker-2"),
        Some("attacker-3"),
    ] {
        let mut event = fixture();
        if let Some(key) = key {
            event["headers"]["Idempotency-Key"] = key.into();
        }
        let (status, body, _) = send(&ingest, &event).await;
        assert_eq!(status, 202, "{body}");
        let first = first.get_or_insert_with(|| ids(&body));
        assert_eq!(&ids(&body), first);
    }
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err(), "published once");
}
