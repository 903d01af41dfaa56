//! The `bootstrap` binary under a Lambda Runtime API stand-in, configured
//! only through environment variables, against moto.

use testkit::{Answer, FakeRuntimeApi, MotoServer};

use super::*;

#[tokio::test]
async fn the_bootstrap_publishes_and_answers_every_event() {
    let moto = MotoServer::start();
    let pattern = json!({"source": ["custom-source"]}).to_string();
    let queue = moto.route_to_queue("bus-a", "all", &pattern).await;
    let mut tampered = fixture();
    tampered["body"] = r#"{"email":"eve@example.com","message":"Hello"}"#.into();
    let events = [
        fixture().to_string(),
        tampered.to_string(),
        "{}".to_string(),
    ];
    let runtime = FakeRuntimeApi::start(events);
    let (answers, stdout) = runtime.run(
        runtime
            .command(env!("CARGO_BIN_EXE_ingest"))
            .envs(moto.aws_env())
            .env("EVENT_BUS_NAME", "bus-a")
            .env("EVENT_SOURCE", "custom-source")
            .env("LOG_LEVEL", "trace"),
        3,
    );
    let statuses: Vec<(u16, Value)> = answers
        .iter()
        .map(|a| match a {
            Answer::Response(body) => {
                let r: Value = serde_json::from_str(body).unwrap();
                let inner: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
                (r["statusCode"].as_u64().unwrap() as u16, inner)
            }
            Answer::Error(body) => panic!("runtime error reported: {body}\n{stdout}"),
        })
        .collect();
    assert_eq!(statuses[0].0, 202, "{stdout}");
    assert_eq!(statuses[1].1["error"]["code"], "digest_mismatch");
    assert_eq!(statuses[2].1["error"]["code"], "missing_authorizer_context");
    let messages = moto.drain_queue(&queue, 1).await;
    assert_eq!(messages.len(), 1);
    let event: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(
        event["detail"]["submission_id"],
        statuses[0].1["submission_ids"][0]
    );
    // Logs and metrics are JSON lines; bodies never reach them.
    assert!(stdout.contains(r#""PublishLatency""#), "{stdout}");
    testkit::assert_json_logs(&stdout, &["ada@example.com", "eve@example.com"]);
}

#[test]
fn a_missing_bus_name_fails_start_up_naming_the_variable() {
    testkit::assert_start_up_fails(env!("CARGO_BIN_EXE_ingest"), &[], "EVENT_BUS_NAME");
}
