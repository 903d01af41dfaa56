//! `formbridge dlq redrive` when SQS fails (docs/fault-matrix.md): the
//! stack in moto, SQS behind a proxy that fails one operation (refused,
//! 5xx, an unreadable answer, an answer lost after the call took effect).
//! Whatever fails, no dead letter is lost: each is still in its
//! dead-letter queue, or already on its delivery queue, or both (moved
//! twice later, with the same `webhook-id`), and the command says it did
//! not finish.

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use testkit::faults::operation;
use testkit::{Fault, FaultServer, MotoServer};

use crate::harness::run;

const STACK: &str = "fb";
const SQS_JSON: &str = "application/x-amz-json-1.0";

/// moto with the stand-in stack, a shared tenant, and three of its events
/// in the shared dead-letter queue.
async fn deployed_with_dead_letters() -> (MotoServer, aws_sdk_sqs::Client) {
    let moto = MotoServer::start();
    let config = moto.loader().load().await;
    let template: Value = serde_json::from_str(&testkit::test_data(
        env!("CARGO_MANIFEST_DIR"),
        "moto-stack.json",
    ))
    .unwrap();
    aws_sdk_cloudformation::Client::new(&config)
        .create_stack()
        .stack_name(STACK)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    let (code, _, err) = formbridge(&moto, None, &["tenants", "create", "acme"]);
    assert_eq!(code, 0, "{err}");
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = url(&sqs, "fb-shared-dlq").await;
    for n in 0..3 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(dead_letter(n))
            .send()
            .await
            .unwrap();
    }
    (moto, sqs)
}

/// A dead-lettered EventBridge event of acme's, as a queue holds it.
fn dead_letter(n: usize) -> String {
    json!({"version": "0", "id": format!("ev-{n}"), "detail-type": "form.submission",
        "source": "form-bridge", "account": "123456789012", "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": {"version": "1", "submission_id": format!("sub-{n}"), "tenant_id": "acme",
            "routing": "shared", "received_at": "2026-11-23T10:00:00.000Z",
            "content_type": "application/json", "payload": {}}})
    .to_string()
}

/// Runs `formbridge` against the stack, SQS at `sqs` when given.
fn formbridge(moto: &MotoServer, sqs: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let env = moto.aws_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("FORMBRIDGE_STACK", STACK));
    if let Some(sqs) = sqs {
        env.push(("AWS_ENDPOINT_URL_SQS", sqs));
    }
    run(args, b"", &env)
}

async fn url(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Messages in a queue, visible or being moved (received, not deleted).
async fn held(sqs: &aws_sdk_sqs::Client, name: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url(sqs, name).await)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|name| {
        attributes
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// SQS behind a proxy that answers `operation_name` with `fault` and
/// passes everything else to moto.
fn failing(moto: &MotoServer, operation_name: &'static str, fault: Fault) -> FaultServer {
    FaultServer::proxy(&moto.endpoint(), move |request, _| {
        if operation(request) == operation_name {
            fault.clone()
        } else {
            Fault::Forward
        }
    })
}

fn throttled() -> Fault {
    Fault::status(
        400,
        SQS_JSON,
        r#"{"__type":"com.amazonaws.sqs#ThrottlingException","message":"Rate exceeded"}"#,
    )
}

/// An operation and how it fails.
type FailedCall = (&'static str, Fault);

fn server_error() -> Fault {
    Fault::status(
        500,
        SQS_JSON,
        r#"{"__type":"com.amazonaws.sqs#InternalError","message":"injected"}"#,
    )
}

/// Every fault (refused, 5xx, throttled, never answering, unreadable) of
/// the call it hits, and where the three dead letters are afterwards: (in the
/// dead-letter queue, on the delivery queue). Each ends with the command
/// failing and every dead letter in at least one queue.
#[tokio::test(flavor = "multi_thread")]
async fn a_redrive_that_sqs_fails_loses_no_dead_letter() {
    let refused = format!("http://127.0.0.1:{}", testkit::free_port());
    let cases: Vec<(&str, Option<FailedCall>, (u64, u64))> = vec![
        // Nothing can be received: nothing moves.
        ("SQS down (connection refused)", None, (3, 0)),
        (
            "ReceiveMessage 5xx",
            Some(("ReceiveMessage", server_error())),
            (3, 0),
        ),
        (
            "ReceiveMessage throttled",
            Some(("ReceiveMessage", throttled())),
            (3, 0),
        ),
        (
            "ReceiveMessage slow",
            Some(("ReceiveMessage", Fault::hang())),
            (3, 0),
        ),
        (
            "ReceiveMessage unreadable",
            Some((
                "ReceiveMessage",
                Fault::status(200, SQS_JSON, "<html>gateway</html>"),
            )),
            (3, 0),
        ),
        // Not sent: left in the dead-letter queue, told.
        (
            "SendMessageBatch 5xx",
            Some(("SendMessageBatch", server_error())),
            (3, 0),
        ),
        (
            "SendMessageBatch throttled",
            Some(("SendMessageBatch", throttled())),
            (3, 0),
        ),
        (
            "SendMessageBatch slow",
            Some(("SendMessageBatch", Fault::hang())),
            (3, 0),
        ),
        // Sent, not deleted: in both queues.
        (
            "DeleteMessageBatch 5xx",
            Some(("DeleteMessageBatch", server_error())),
            (3, 3),
        ),
    ];
    for (name, fault, (in_dlq, moved)) in cases {
        let (moto, sqs) = deployed_with_dead_letters().await;
        let proxy = fault.map(|(operation_name, fault)| failing(&moto, operation_name, fault));
        let sqs_endpoint = proxy
            .as_ref()
            .map_or_else(|| refused.clone(), FaultServer::url);
        let (code, out, err) = formbridge(
            &moto,
            Some(&sqs_endpoint),
            &["dlq", "redrive", "--from", "shared"],
        );
        assert_ne!(
            code, 0,
            "{name}: the command says it did not finish: {out}{err}"
        );
        assert_eq!(
            held(&sqs, "fb-shared-dlq").await,
            in_dlq,
            "{name}: {out}{err}"
        );
        assert_eq!(held(&sqs, "fb-shared").await, moved, "{name}: {out}{err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        eprintln!("dlq redrive, {name}: exit {code}\n{out}{err}");
    }
}

/// The send took effect but its answer was lost: every dead letter stays
/// in the dead-letter queue (the command cannot know it was sent) and is
/// on the delivery queue too, so it is delivered, and moved again by the
/// next redrive: the same `webhook-id` more than once, never lost. The
/// SDK's standard retries send the batch again after each lost answer,
/// so each dead letter is on the delivery queue once per attempt (3).
#[tokio::test(flavor = "multi_thread")]
async fn a_send_whose_answer_is_lost_leaves_each_dead_letter_in_both_queues() {
    let (moto, sqs) = deployed_with_dead_letters().await;
    let proxy = failing(&moto, "SendMessageBatch", Fault::Lost);
    let (code, out, err) = formbridge(
        &moto,
        Some(&proxy.url()),
        &["dlq", "redrive", "--from", "shared"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(held(&sqs, "fb-shared-dlq").await, 3, "{out}{err}");
    let moved = held(&sqs, "fb-shared").await;
    assert!(moved >= 3, "{moved} on the delivery queue: {out}{err}");
    eprintln!(
        "dlq redrive, SendMessageBatch answer lost: {} send(s), {moved} copies of 3 dead letters",
        proxy.calls_of("SendMessageBatch")
    );
}

/// What the command's help promises ("at worst one is delivered twice"):
/// a send whose answer is lost is not sent again by the SDK, so each dead
/// letter is on the delivery queue once (and once more after the next
/// redrive). Failed before the SDK's retries were turned off for the send:
/// they sent the batch three times.
#[tokio::test(flavor = "multi_thread")]
async fn a_send_whose_answer_is_lost_is_not_sent_again() {
    let (moto, sqs) = deployed_with_dead_letters().await;
    let proxy = failing(&moto, "SendMessageBatch", Fault::Lost);
    let (_, out, err) = formbridge(
        &moto,
        Some(&proxy.url()),
        &["dlq", "redrive", "--from", "shared"],
    );
    assert_eq!(held(&sqs, "fb-shared").await, 3, "{out}{err}");
}
