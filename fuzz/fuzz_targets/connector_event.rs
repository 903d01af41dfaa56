//! The connector's event reader and batch logic (docs/protocol.md,
//! sections 5 and 6): any bytes as the Lambda payload (an SQS batch of
//! EventBridge events, or one EventBridge event), then `Connector::handle`
//! delivering to the fixture tenants through an in-memory client that
//! answers 200.
//!
//! Input: the invocation's JSON (seeds: the SQS and EventBridge fixtures).
//! Asserts: nothing panics; `batchItemFailures` lists exactly the records
//! that are not a submission for a tenant with a destination, in batch
//! order, and every other record was delivered once; a direct event is
//! delivered exactly when it is one; every delivery is the documented
//! body around the detail's exact text, signed so that a Standard
//! Webhooks receiver verifies it.
#![no_main]

use std::sync::Mutex;

use connectors::{
    Config, Connector, ConnectorEvent, DeliveryClient, Input, Output, SendError, Submission,
    WebhookRequest, client::WebhookResponse,
};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use shared::config::Env;
use shared::telemetry::Metrics;
use shared::tenant::WebhookSecret;

/// Records every request and answers 200.
#[derive(Default)]
struct Receiver(Mutex<Vec<WebhookRequest>>);

impl DeliveryClient for &Receiver {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, SendError> {
        self.0.lock().expect("not poisoned").push(request);
        Ok(WebhookResponse {
            status: 200,
            retry_after: None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = ConnectorEvent::from_json(text) else {
        return;
    };
    let config = Config::from_env(&Env::new(|_| None)).expect("the default configuration");
    let receiver = Receiver::default();
    let connector = Connector::new(
        fuzz::tenants(),
        &receiver,
        &config,
        Metrics::off("connector"),
    );
    let outcome = fuzz::block_on(connector.handle(&event, None));

    // Which events a destination takes: submissions for acme, the only
    // fixture tenant with one.
    let deliverable =
        |json: &str| Submission::parse(json).is_ok_and(|s| s.detail.tenant_id.as_str() == "acme");
    let expected_deliveries = match (event.input(), &outcome) {
        (Some(Input::Batch(records)), Ok(Output::Batch(response))) => {
            let expected: Vec<&str> = records
                .iter()
                .filter(|r| !deliverable(&r.body))
                .map(|r| r.message_id.as_str())
                .collect();
            let failed: Vec<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            assert_eq!(
                failed, expected,
                "batchItemFailures is not exactly the undelivered records"
            );
            records.iter().filter(|r| deliverable(&r.body)).count()
        }
        (Some(Input::Direct(json)), Ok(Output::Delivered { delivered })) => {
            let submission = Submission::parse(json).expect("delivered a submission");
            assert!(deliverable(json));
            assert_eq!(*delivered, submission.detail.submission_id);
            1
        }
        (Some(Input::Direct(json)), Err(_)) => {
            assert!(!deliverable(json), "a deliverable event not delivered");
            0
        }
        (None, Err(connectors::HandlerError::NotAnEvent)) => 0,
        (input, outcome) => panic!("{input:?} answered {outcome:?}"),
    };

    let sent = receiver.0.lock().expect("not poisoned");
    assert_eq!(
        sent.len(),
        expected_deliveries,
        "each deliverable record sent once"
    );
    let secret = WebhookSecret::parse("whsec_ng92kwaaHpqmcSvHrvdxunLgtGKdZvCIHJL9a3IZxJE=")
        .expect("the fixture's destination secret");
    for request in sent.iter() {
        serde_json::from_slice::<IgnoredAny>(&request.body).expect("deliveries are JSON");
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .expect("Standard Webhooks headers")
        };
        let timestamp = header("webhook-timestamp");
        let now: i64 = timestamp.parse().expect("a decimal timestamp");
        shared::webhook::verify(
            &secret,
            header("webhook-id"),
            timestamp,
            header("webhook-signature"),
            &request.body,
            now,
            0,
        )
        .expect("deliveries verify as Standard Webhooks");
    }
});
