//! Each submission accepted once across execution environments: ingest
//! with its keys in DynamoDB (moto's, through the real SDK), publishing to
//! an EventBridge bus whose rule feeds an SQS queue. Copies of one request
//! go to different `bootstrap` processes (each its own Lambda execution
//! environment, so memory cannot be what catches them) and to concurrent
//! handlers; the queue must hold one event, and every 2xx answer the same
//! submission IDs. Requests reach moto's DynamoDB one at a time
//! ([`one_at_a_time`]), as DynamoDB isolates them.

use std::process::{Child, Stdio};
use std::time::Instant;

use shared::idempotency::DynamoDbIdempotencyStore;
use shared::publish::EventBridgePublisher;
use testkit::{Answer, FakeRuntimeApi, HttpServer, MotoServer, Reply, one_at_a_time};

use super::*;

const BUS: &str = "form-bridge-test";
const TABLE: &str = "form-bridge-idempotency";

/// Moto with the stack's table and a bus routed to a queue; DynamoDB
/// through [`one_at_a_time`].
struct Stack {
    moto: MotoServer,
    queue: String,
    dynamodb: HttpServer,
}

async fn stack() -> Stack {
    let moto = MotoServer::start();
    let pattern = json!({"source": ["form-bridge"]}).to_string();
    let queue = moto.route_to_queue(BUS, "all", &pattern).await;
    moto.create_idempotency_table(TABLE).await;
    let dynamodb = one_at_a_time(&moto.endpoint());
    Stack {
        moto,
        queue,
        dynamodb,
    }
}

impl Stack {
    /// The events on the queue (waits up to 2 s for more than `expected`).
    async fn published(&self, expected: usize) -> Vec<Value> {
        self.moto
            .drain_queue(&self.queue, expected + 1)
            .await
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }
}

/// One answer: status, body, and whether it was marked replayed.
#[derive(Debug)]
struct Answered {
    status: u16,
    body: Value,
    replayed: bool,
}

fn answered(answer: &Answer, logs: &str) -> Answered {
    let Answer::Response(text) = answer else {
        panic!("runtime error reported: {answer:?}\n{logs}");
    };
    let response: Value = serde_json::from_str(text).unwrap();
    Answered {
        status: response["statusCode"].as_u64().unwrap() as u16,
        body: serde_json::from_str(response["body"].as_str().unwrap()).unwrap(),
        replayed: response["headers"]["idempotent-replayed"] == "true",
    }
}

/// What "accepted once" means for copies of one request: each answer is
/// a 202 or (while the first is in flight) a 409; exactly one 202 is the
/// first answer, the others are marked replayed; every 202 carries the
/// same submission IDs, those of the one event on the queue.
async fn assert_accepted_once(stack: &Stack, answers: &[Answered]) {
    let accepted: Vec<&Answered> = answers.iter().filter(|a| a.status == 202).collect();
    for a in answers {
        assert!(a.status == 202 || a.status == 409, "{a:?}");
        if a.status == 409 {
            assert_eq!(a.body["error"]["code"], "request_in_progress", "{a:?}");
        }
    }
    assert_eq!(
        accepted.iter().filter(|a| !a.replayed).count(),
        1,
        "exactly one first answer: {answers:?}"
    );
    let first = ids(&accepted[0].body);
    for a in &accepted {
        assert_eq!(ids(&a.body), first, "{answers:?}");
    }
    let events = stack.published(1).await;
    assert_eq!(events.len(), 1, "published once: {events:?}");
    assert_eq!(events[0]["detail"]["submission_id"], first[0].as_str());
}

/// How many calls of each kind reached DynamoDB: `(PutItem,
/// TransactWriteItems)`, the two ways a request claims its keys.
fn claim_calls(stack: &Stack) -> (usize, usize) {
    let count = |target: &str| {
        stack
            .dynamodb
            .requests()
            .iter()
            .filter(|r| r.header("x-amz-target") == Some(target))
            .count()
    };
    (
        count("DynamoDB_20120810.PutItem"),
        count("DynamoDB_20120810.TransactWriteItems"),
    )
}

/// Each of `copies` claimed all its keys in one call: one `PutItem` for
/// a single key, one transaction for two.
fn assert_one_claim_call_each(stack: &Stack, copies: usize, idempotency_key: Option<&str>) {
    let expected = match idempotency_key {
        None => (copies, 0),
        Some(_) => (0, copies),
    };
    assert_eq!(
        claim_calls(stack),
        expected,
        "(PutItem, TransactWriteItems)"
    );
}

/// A `bootstrap` as Lambda would start it, against `stack`, with
/// `extra` variables.
fn bootstrap(
    runtime: &FakeRuntimeApi,
    stack: &Stack,
    extra: &[(&str, &str)],
) -> std::process::Command {
    let mut command = runtime.command(env!("CARGO_BIN_EXE_ingest"));
    command
        .envs(stack.moto.aws_env())
        .env("AWS_ENDPOINT_URL_DYNAMODB", stack.dynamodb.url())
        .env("EVENT_BUS_NAME", BUS)
        .env("IDEMPOTENCY_TABLE", TABLE)
        .envs(extra.iter().copied());
    command
}

/// Runs `events` through `processes` bootstraps serving at once; returns
/// the answers in event order.
fn run_concurrently(stack: &Stack, events: Vec<String>, processes: usize) -> Vec<Answered> {
    let n = events.len();
    let runtime = FakeRuntimeApi::start(events);
    let mut children: Vec<Child> = (0..processes)
        .map(|_| {
            bootstrap(&runtime, stack, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let answers = runtime.wait_for_answers(n, Duration::from_secs(60));
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(answers.len(), n, "every copy answered");
    answers.iter().map(|a| answered(a, "")).collect()
}

/// Runs each event through a bootstrap of its own, one after the other.
fn run_in_sequence(stack: &Stack, events: &[String]) -> (Vec<Answered>, String) {
    let mut answers = Vec::new();
    let mut logs = String::new();
    for event in events {
        let runtime = FakeRuntimeApi::start([event.clone()]);
        let (got, stdout) = runtime.run(&mut bootstrap(&runtime, stack, &[]), 1);
        assert_eq!(got.len(), 1, "{stdout}");
        answers.push(answered(&got[0], &stdout));
        logs.push_str(&stdout);
    }
    (answers, logs)
}

/// The fixture, optionally with an `Idempotency-Key`, as event JSON.
fn request(body: &[u8], idempotency_key: Option<&str>) -> String {
    let mut event = event_with(body, "application/json");
    if let Some(key) = idempotency_key {
        event["headers"]["idempotency-key"] = key.into();
    }
    event.to_string()
}

#[tokio::test]
async fn copies_sent_in_sequence_to_fresh_environments_are_accepted_once() {
    for key in [None, Some("order-7")] {
        let stack = stack().await;
        let event = request(br#"{"email":"ada@example.com","n":7}"#, key);
        let (answers, logs) = run_in_sequence(&stack, &vec![event; 4]);
        assert_eq!(
            (answers[0].status, answers[0].replayed),
            (202, false),
            "{logs}"
        );
        for a in &answers[1..] {
            assert_eq!((a.status, a.replayed), (202, true), "{key:?}: {a:?}");
        }
        assert_accepted_once(&stack, &answers).await;
        // No key material or body reaches the logs.
        testkit::assert_json_logs(&logs, &["order-7", "ada@example.com"]);
    }
}

#[tokio::test]
async fn copies_sent_at_once_to_four_environments_are_accepted_once() {
    for key in [None, Some("order-8")] {
        let stack = stack().await;
        let event = request(br#"{"email":"ada@example.com","n":8}"#, key);
        let answers = run_concurrently(&stack, vec![event; 4], 4);
        assert_accepted_once(&stack, &answers).await;
        assert_one_claim_call_each(&stack, 4, key);
    }
}

/// Four environments' handlers (each with its own clients) given the same
/// request at the same moment: the race the table's conditional write
/// settles, which separate processes may or may not hit.
#[tokio::test]
async fn concurrent_handlers_sharing_the_table_publish_once() {
    let stack = stack().await;
    let sdk = shared::aws::configure(stack.moto.loader()).load().await;
    let dynamodb = shared::aws::configure(testkit::loader_for(&stack.dynamodb.url()))
        .load()
        .await;
    let environment = || {
        Ingest::new(
            EventBridgePublisher::from_sdk_config(&sdk, BUS),
            &config(),
            Metrics::to_writer("ingest", std::io::sink()),
        )
        .with_idempotency_store(DynamoDbIdempotencyStore::from_sdk_config(
            &dynamodb,
            TABLE,
            shared::idempotency::DEFAULT_TTL,
        ))
    };
    let environments = [environment(), environment(), environment(), environment()];
    for key in [None, Some("order-9")] {
        let event = raw(&serde_json::from_str(&request(
            format!(r#"{{"n":9,"key":{}}}"#, key.is_some()).as_bytes(),
            key,
        ))
        .unwrap());
        let send = |i: usize| {
            let event = &event;
            let environments = &environments;
            async move {
                let response = environments[i].handle(event, now()).await;
                let replayed = response.headers.idempotent_replayed == Some("true");
                let (status, body) = parts(&response);
                Answered {
                    status,
                    body,
                    replayed,
                }
            }
        };
        let (a, b, c, d) = tokio::join!(send(0), send(1), send(2), send(3));
        assert_accepted_once(&stack, &[a, b, c, d]).await;
    }
    // One call each to claim: a PutItem for the signed identity alone,
    // a transaction for it and the Idempotency-Key.
    assert_eq!(claim_calls(&stack), (4, 4), "(PutItem, TransactWriteItems)");
}

/// Points only DynamoDB at `server` (EventBridge stays on moto) and sends
/// one request; returns its answer, how long it took, and the logs.
fn with_dynamodb_at(stack: &Stack, server: &HttpServer) -> (Answered, Duration, String) {
    let runtime = FakeRuntimeApi::start([request(br#"{"n":1}"#, None)]);
    let url = server.url();
    let started = Instant::now();
    let (answers, logs) = runtime.run(
        &mut bootstrap(&runtime, stack, &[("AWS_ENDPOINT_URL_DYNAMODB", &url)]),
        1,
    );
    let took = started.elapsed();
    assert_eq!(answers.len(), 1, "no answer: {logs}");
    (answered(&answers[0], &logs), took, logs)
}

/// The store fails closed: a request whose key cannot be checked is not
/// accepted, since accepting it unchecked could deliver one submission
/// twice. The sender is told to retry, and nothing is published.
fn assert_unavailable(answer: &Answered, took: Duration, logs: &str) {
    assert_eq!(answer.status, 503, "{answer:?}\n{logs}");
    assert_eq!(answer.body["error"]["code"], "idempotency_unavailable");
    assert!(message(&answer.body).contains("retrying the request is safe"));
    // Generous: the client bounds a call at 2 s; a process start and
    // moto's first answers come on top.
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    assert!(logs.contains("idempotency store failed"), "{logs}");
}

#[tokio::test]
async fn a_failing_dynamodb_refuses_with_503_and_publishes_nothing() {
    let stack = stack().await;
    let server = HttpServer::start(|_, _| {
        Reply::json(
            500,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"fault injected"}"#,
        )
        .with_header("Content-Type", "application/x-amz-json-1.0")
    });
    let (answer, took, logs) = with_dynamodb_at(&stack, &server);
    assert_unavailable(&answer, took, &logs);
    assert!(
        server.requests().len() >= 2,
        "5xx answers are retried within the bound"
    );
    assert!(stack.published(0).await.is_empty(), "nothing published");
    eprintln!("failing DynamoDB: 503 after {took:?} (process start included)");
}

#[tokio::test]
async fn a_hanging_dynamodb_refuses_with_503_in_bounded_time() {
    let stack = stack().await;
    // Reads the request, then never answers (within the test).
    let server = HttpServer::start(|_, _| Reply::json(200, "{}").after(Duration::from_secs(600)));
    let (answer, took, logs) = with_dynamodb_at(&stack, &server);
    assert_unavailable(&answer, took, &logs);
    assert!(stack.published(0).await.is_empty(), "nothing published");
    eprintln!("hanging DynamoDB: 503 after {took:?} (process start included)");
}

#[test]
fn a_bad_table_name_fails_start_up_naming_the_variable() {
    testkit::assert_start_up_fails(
        env!("CARGO_BIN_EXE_ingest"),
        &[
            ("EVENT_BUS_NAME", "bus"),
            ("IDEMPOTENCY_TABLE", "no spaces allowed"),
        ],
        "IDEMPOTENCY_TABLE",
    );
}
