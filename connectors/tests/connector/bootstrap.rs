//! The `connector` binary under a Lambda Runtime API stand-in, configured
//! only through environment variables, with tenants in moto.

use testkit::{Answer, FakeRuntimeApi, MotoServer};
use testkit::{HttpServer, Reply};

use super::*;

#[tokio::test]
async fn the_bootstrap_delivers_and_reports_batch_item_failures() {
    let moto = MotoServer::start();
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let url = format!("{}/hook?token=query-t0ken", server.url());
    let acme = record("acme", &url).header("Authorization", "Bearer s3cr3t-t0ken");
    moto.put_secret("form-bridge/tenants/acme", &acme.json())
        .await;
    let gone = HttpServer::start(|_, _| Reply::json(410, "{}"));
    let gone_url = format!("{}/old?token=query-t0ken", gone.url());
    moto.put_secret(
        "form-bridge/tenants/gone",
        &record("gone", &gone_url).json(),
    )
    .await;
    let batch = sqs_json(&[
        event("acme").0,
        event("nobody").0,
        "garbage".to_string(),
        event("gone").0,
    ]);
    let events = [
        batch.to_string(),
        data("eventbridge-event.json"),
        "[]".to_string(),
    ];
    let runtime = FakeRuntimeApi::start(events);
    let (answers, stdout) = runtime.run(
        runtime
            .command(env!("CARGO_BIN_EXE_connector"))
            .envs(moto.aws_env())
            .env("ALLOW_PRIVATE_DESTINATIONS", "true")
            .env("LOG_LEVEL", "trace"),
        3,
    );
    assert_eq!(answers.len(), 3, "{stdout}");
    match &answers[0] {
        Answer::Response(body) => assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"batchItemFailures": [
                {"itemIdentifier": "m1"},
                {"itemIdentifier": "m2"},
                {"itemIdentifier": "m3"}
            ]}),
            "{stdout}"
        ),
        Answer::Error(e) => panic!("{e}\n{stdout}"),
    }
    match &answers[1] {
        Answer::Response(body) => assert!(body.contains("019b76da-a800-7000-8000-000000000001")),
        Answer::Error(e) => panic!("{e}\n{stdout}"),
    }
    match &answers[2] {
        Answer::Error(e) => assert!(e.contains("not_an_event"), "{e}"),
        Answer::Response(r) => panic!("a non-event was answered: {r}"),
    }
    assert_eq!(server.requests().len(), 2);
    assert_eq!(gone.requests().len(), 1);
    // The 410 is logged as a request to disable the destination.
    let gone_line = stdout
        .lines()
        .find(|l| l.contains("destination_gone") && l.contains("410 Gone"))
        .unwrap_or_else(|| panic!("no 410 log line:\n{stdout}"));
    assert!(gone_line.contains(r#""tenant_id":"gone""#), "{gone_line}");
    // Logs and metrics are JSON lines; no secret, header value or payload.
    assert!(stdout.contains(r#""Deliveries""#), "{stdout}");
    testkit::assert_json_logs(
        &stdout,
        &[
            "s3cr3t-t0ken",
            "query-t0ken",
            DELIVERY_SECRET,
            "ada@example.com",
            &testkit::signing_secret("acme"),
            &testkit::signing_secret("gone"),
        ],
    );
}

#[test]
fn a_bad_variable_fails_start_up_naming_it() {
    testkit::assert_start_up_fails(
        env!("CARGO_BIN_EXE_connector"),
        &[("DELIVERY_TIMEOUT_MS", "soon")],
        "DELIVERY_TIMEOUT_MS",
    );
}
