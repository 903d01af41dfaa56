//! The connector when what it calls fails (docs/fault-matrix.md): the
//! tenant's endpoint hanging up, cutting its answer short or answering
//! something that is not HTTP, a destination name that does not resolve,
//! and Secrets Manager failing or hanging while a batch waits on it. Each
//! test asserts what the queue is told (delivered, or retry later) and what
//! the endpoint saw.

use std::time::Instant;

use connectors::{Class, DeliveryError, SendError};
use shared::store::SecretsManagerStore;
use testkit::{Fault, FaultServer, HttpServer, Reply};

use super::*;

const SM_JSON: &str = "application/x-amz-json-1.1";

/// An endpoint that took the request and then failed to answer it (hung
/// up, or answered after the attempt's timeout): the delivery is retried
/// with the same `webhook-id` and body, so the endpoint may see it twice;
/// a receiver deduplicates by `webhook-id` (Standard Webhooks).
#[tokio::test]
async fn an_endpoint_that_does_not_answer_gets_the_same_webhook_id_again() {
    let cases: [(&str, Reply); 2] = [
        ("hang-up before any answer", Reply::Close),
        (
            "slow (answers after the timeout)",
            Reply::json(200, "{}").after(Duration::from_secs(2)),
        ),
    ];
    for (name, first) in cases {
        let server = HttpServer::start(move |_, n| {
            if n == 0 {
                first.clone()
            } else {
                Reply::json(204, "")
            }
        });
        let acme = record("acme", &server.url()).timeout_ms(500).build();
        let (connector, metrics) = connector(&[acme], &[]);
        let (event, id) = event("acme");
        let delivered = connector.deliver_event(&event, None).await;
        assert_eq!(delivered.unwrap(), id, "{name}");
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "{name}: retried once");
        for r in &requests {
            assert_eq!(r.header("webhook-id"), Some(id.as_str()), "{name}");
            assert!(r.webhook_verifies(DELIVERY_SECRET), "{name}");
        }
        assert_eq!(requests[0].body, requests[1].body, "{name}: the same bytes");
        assert_eq!(deliveries(&metrics)[0]["DeliveryAttempts"], 2.0, "{name}");
    }
}

/// The answer breaks after its status line: a 2xx is delivered (the
/// status is all the connector reads), a 5xx retried; an answer that is
/// not HTTP at all, or a hang-up, is a retryable transport error. Every
/// retryable failure leaves the record to the queue (SQS receives it
/// again, then dead-letters it after `maxReceiveCount`).
#[tokio::test]
async fn answers_cut_short_or_not_http_are_classified_by_what_arrived() {
    let cut = |status: u16| Fault::Truncated {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"received": true, "padding": "................"}"#.to_vec(),
        sent: 10,
    };
    let cases: Vec<(&str, Fault, Option<&str>)> = vec![
        ("2xx cut mid-body", cut(200), None),
        ("5xx cut mid-body", cut(503), Some("http_5xx")),
        (
            "not HTTP",
            Fault::Garbage(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
            Some("transport_error"),
        ),
        (
            "hang-up before any answer",
            Fault::hang_up(),
            Some("transport_error"),
        ),
    ];
    for (name, fault, expected) in cases {
        let server = FaultServer::start(move |_, _| fault.clone());
        let (connector, metrics) = connector(
            &[record("acme", &server.url()).build()],
            &[("DELIVERY_ATTEMPTS", "1")],
        );
        let (event, _) = event("acme");
        let output = connector.handle(&sqs(&[event]), None).await.unwrap();
        let failed = serde_json::to_value(&output).unwrap()["batchItemFailures"].clone();
        match expected {
            None => {
                assert_eq!(failed, json!([]), "{name}");
                assert_eq!(reasons(&metrics), ["delivered"], "{name}");
            }
            Some(code) => {
                assert_eq!(failed, json!([{"itemIdentifier": "m0"}]), "{name}");
                assert_eq!(reasons(&metrics), [code], "{name}");
                let line = deliveries(&metrics).pop().unwrap();
                assert_eq!(line["Outcome"], "retryable", "{name}");
            }
        }
        assert_eq!(server.requests().len(), 1, "{name}");
    }
}

/// A destination name that does not resolve (`.invalid` never does, RFC
/// 6761) is a retryable connection error, with the guard on as in the
/// Lambda, and the error names neither the host nor the URL.
#[tokio::test]
async fn a_name_that_does_not_resolve_is_retryable_and_not_named() {
    let url = "https://hooks.form-bridge-fault-matrix.invalid/in?token=t0ken";
    let config = config(&[("DELIVERY_ATTEMPTS", "2")]);
    let (connector, metrics) = connector_with(
        &[record("acme", url).build()],
        &config,
        config.client_options().rules,
        Hosts::system(),
    );
    let started = Instant::now();
    let error = deliver(&connector, "acme").await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(error, DeliveryError::Send(SendError::Connect(_))),
        "{error:?}"
    );
    assert_eq!(error.class(), Class::Retryable);
    assert_eq!(reasons(&metrics), ["connect_error"]);
    let text = error.to_string();
    assert!(
        !text.contains("fault-matrix") && !text.contains("t0ken"),
        "{text}"
    );
    assert!(took < Duration::from_secs(30), "resolved after {took:?}");
}

/// A connector reading records from the Secrets Manager at `endpoint`,
/// delivering to local servers.
async fn connector_over_secrets_manager(
    endpoint: &str,
) -> (
    Connector<SecretsManagerStore, HttpDeliveryClient>,
    CapturedMetrics,
) {
    let config = config(&[("ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let sdk = shared::aws::configure(testkit::loader_for(endpoint))
        .load()
        .await;
    let store = SecretsManagerStore::from_sdk_config(&sdk, config.tenant_secret_prefix.clone());
    let client = HttpDeliveryClient::new(config.client_options()).unwrap();
    let (metrics, captured) = Metrics::in_memory("connector");
    (Connector::new(store, client, &config, metrics), captured)
}

/// The tenant's record cannot be read and none is cached: the record is
/// reported failed (`store_unavailable`, retryable), nothing is sent, and
/// the queue receives it again later; the others of the batch are not
/// held back. A Secrets Manager that never answers is cut off by the
/// invocation's deadline (`deadline`), so the batch still answers in time
/// and no delivered record is received again.
#[tokio::test]
async fn a_record_that_cannot_be_read_is_left_to_the_queue() {
    let failing = FaultServer::start(|_, _| {
        Fault::status(
            500,
            SM_JSON,
            r#"{"__type":"InternalServiceError","message":"injected"}"#,
        )
    });
    let endpoint = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let (connector, metrics) = connector_over_secrets_manager(&failing.url()).await;
    let (first, _) = event("acme");
    let output = connector.handle(&sqs(&[first]), None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "m0"}]})
    );
    assert_eq!(reasons(&metrics), ["store_unavailable"]);
    assert_eq!(deliveries(&metrics)[0]["Outcome"], "retryable");
    assert!(endpoint.requests().is_empty());

    let hanging = FaultServer::start(|_, _| Fault::hang());
    let (connector, metrics) = connector_over_secrets_manager(&hanging.url()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let started = Instant::now();
    let (second, _) = event("acme");
    let output = connector
        .handle(&sqs(&[second]), Some(deadline))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "m0"}]})
    );
    assert_eq!(reasons(&metrics), ["deadline"]);
    assert!(
        took < Duration::from_millis(1_500),
        "answered after {took:?}"
    );
}
