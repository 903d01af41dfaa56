//! The `bootstrap` binary under a Lambda Runtime API stand-in, configured
//! only through environment variables, against moto.

use std::process::Command;

use serde_json::{Value, json};
use testkit::{Answer, FakeRuntimeApi, MotoServer, TenantRecordBuilder};

use super::*;

fn bootstrap(runtime: &FakeRuntimeApi, moto: &MotoServer, extra: &[(&str, &str)]) -> Command {
    let mut cmd = runtime.command(env!("CARGO_BIN_EXE_authorizer"));
    cmd.envs(moto.aws_env()).envs(extra.iter().copied());
    cmd
}

#[tokio::test]
async fn the_bootstrap_serves_invocations_and_never_returns_an_error() {
    let moto = MotoServer::start();
    let record = TenantRecordBuilder::new("acme").secret(ACME_SECRET).json();
    moto.put_secret("custom/acme", &record).await;

    let now = shared::signature::unix_now();
    let events = [
        signed_event("acme", ACME_SECRET, b"{\"a\":1}", now).to_string(),
        signed_event("acme", ACME_SECRET, b"{\"a\":1}", now - 3_600).to_string(),
        "{}".to_string(),
        "[1,2,3]".to_string(),
        "\"hello\"".to_string(),
    ];
    let signature = events_signature(&events[0]);
    let runtime = FakeRuntimeApi::start(events);
    // At the most verbose level nothing may print a signature or a secret.
    let extra = [("TENANT_SECRET_PREFIX", "custom/"), ("LOG_LEVEL", "trace")];
    let (answers, stdout) = runtime.run(&mut bootstrap(&runtime, &moto, &extra), 5);

    let parsed: Vec<Value> = answers
        .iter()
        .map(|a| match a {
            Answer::Response(body) => serde_json::from_str(body).unwrap(),
            Answer::Error(body) => panic!("runtime error reported: {body}"),
        })
        .collect();
    assert_eq!(
        parsed,
        vec![
            json!({"isAuthorized": true, "context": {"tenant_id": "acme", "routing": "shared"}}),
            json!({"isAuthorized": false}),
            json!({"isAuthorized": false}),
            json!({"isAuthorized": false}),
            json!({"isAuthorized": false}),
        ],
        "stdout:\n{stdout}"
    );
    // Logs and EMF metrics are JSON lines; no secret appears.
    assert!(stdout.contains(r#""reason":"stale_timestamp""#), "{stdout}");
    assert!(stdout.contains(r#""CloudWatchMetrics""#), "{stdout}");
    testkit::assert_json_logs(&stdout, &[ACME_SECRET, &signature[3..]]);
}

fn events_signature(event: &str) -> String {
    let v: Value = serde_json::from_str(event).unwrap();
    v["headers"]["x-formbridge-signature"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn invalid_configuration_fails_start_up_naming_the_variable() {
    testkit::assert_start_up_fails(
        env!("CARGO_BIN_EXE_authorizer"),
        &[("REPLAY_WINDOW_SECONDS", "five minutes")],
        "REPLAY_WINDOW_SECONDS",
    );
}
