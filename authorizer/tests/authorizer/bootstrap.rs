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

/// Secrets Manager unreachable and nothing cached: the tenant's record
/// cannot be read, so the invocation fails (API Gateway then answers the
/// sender 500, which it retries) instead of denying (a 403 looks final to
/// a sender and would drop the submission). Other requests are still
/// answered: an event that is not an authorizer request is denied, and a
/// stale signature is denied before any lookup.
#[tokio::test]
async fn an_unreadable_record_fails_the_invocation_instead_of_denying() {
    let moto = MotoServer::start();
    let now = shared::signature::unix_now();
    let events = [
        signed_event("acme", ACME_SECRET, b"{}", now).to_string(),
        super::sources::source_event("acme", "stripe-live", "").to_string(),
        signed_event("acme", ACME_SECRET, b"{}", now - 3_600).to_string(),
        "{}".to_string(),
    ];
    let runtime = FakeRuntimeApi::start(events);
    let closed = format!("http://127.0.0.1:{}", testkit::free_port());
    let extra = [("AWS_ENDPOINT_URL", closed.as_str())];
    let (answers, stdout) = runtime.run(&mut bootstrap(&runtime, &moto, &extra), 4);

    for (i, answer) in answers[..2].iter().enumerate() {
        let Answer::Error(body) = answer else {
            panic!("event {i}: answered {answer:?} instead of failing\n{stdout}");
        };
        let error: Value = serde_json::from_str(body).unwrap();
        let message = error["errorMessage"].as_str().unwrap_or_default();
        assert!(message.contains("could not be read"), "{body}");
        assert!(!message.contains("127.0.0.1"), "{body}");
    }
    assert_eq!(
        answers[2..],
        [
            Answer::Response(r#"{"isAuthorized":false}"#.into()),
            Answer::Response(r#"{"isAuthorized":false}"#.into()),
        ],
        "{stdout}"
    );
    assert_eq!(
        stdout.matches(r#""reason":"store_unavailable""#).count(),
        2,
        "logged once each, at error: {stdout}"
    );
    testkit::assert_json_logs(&stdout, &[ACME_SECRET]);
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

#[tokio::test]
async fn a_flood_of_unknown_tenant_ids_never_locks_out_a_real_tenant() {
    let moto = MotoServer::start();
    let secret = |i: usize| format!("fb_test_real_{i}_secret_0000000000000000000");
    for i in 0..5 {
        let record = TenantRecordBuilder::new(&format!("real-{i}"))
            .secret(&secret(i))
            .json();
        moto.put_secret(&format!("form-bridge/tenants/real-{i}"), &record)
            .await;
    }
    // Names the directory must not take for tenants'.
    moto.put_secret("elsewhere/form-bridge/tenants/real-9", "{}")
        .await;
    moto.put_secret("form-bridge/tenants/Not_An_Id", "{}").await;

    // A brand-new process: 400 requests for IDs that do not exist, signed
    // with any secret, then the five real tenants, none of them cached.
    let now = shared::signature::unix_now();
    let junk_secret = "j".repeat(32);
    let mut events: Vec<String> = (0..400)
        .map(|i| signed_event(&format!("x{i:04}q"), &junk_secret, b"{}", now).to_string())
        .collect();
    events.extend(
        (0..5).map(|i| signed_event(&format!("real-{i}"), &secret(i), b"{}", now).to_string()),
    );
    let runtime = FakeRuntimeApi::start(events);
    let (answers, stdout) = runtime.run(&mut bootstrap(&runtime, &moto, &[]), 405);

    let allowed: Vec<bool> = answers
        .iter()
        .map(|a| matches!(a, Answer::Response(r) if r.contains(r#""isAuthorized":true"#)))
        .collect();
    assert_eq!(allowed.len(), 405, "stdout:\n{stdout}");
    assert!(!allowed[..400].iter().any(|a| *a));
    assert_eq!(allowed[400..], [true; 5], "stdout:\n{stdout}");
    // The flood did spend the budget for unknown IDs (else this test would
    // prove nothing), and the directory listed exactly the five tenants.
    assert!(
        stdout.contains(r#""reason":"lookup_throttled""#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#""tenants":5,"message":"tenant directory listed""#)
            || stdout.contains(r#""tenants":5"#),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_bootstrap_answers_the_rest_api_with_a_policy_and_each_tenant_on_its_own_api() {
    use super::rest::{ISOLATED_SECRET, rest_signed_at};
    let moto = MotoServer::start();
    let shared_record = TenantRecordBuilder::new("acme").secret(ACME_SECRET).json();
    let isolated = TenantRecordBuilder::new("initech")
        .secret(ISOLATED_SECRET)
        .field("isolation", json!("per_tenant"))
        .json();
    moto.put_secret("form-bridge/tenants/acme", &shared_record)
        .await;
    moto.put_secret("form-bridge/tenants/initech", &isolated)
        .await;
    let now = shared::signature::unix_now();
    let events = [
        rest_signed_at("initech", ISOLATED_SECRET, now),
        rest_signed_at("acme", ACME_SECRET, now),
        signed_event("initech", ISOLATED_SECRET, b"{}", now),
    ]
    .map(|e| e.to_string());
    let runtime = FakeRuntimeApi::start(events);
    let (answers, stdout) = runtime.run(&mut bootstrap(&runtime, &moto, &[]), 3);
    let parsed: Vec<Value> = answers
        .iter()
        .map(|a| match a {
            Answer::Response(body) => serde_json::from_str(body).unwrap(),
            Answer::Error(body) => panic!("runtime error reported: {body}"),
        })
        .collect();
    let statement = |answer: &Value| answer["policyDocument"]["Statement"][0]["Effect"].clone();
    assert_eq!(statement(&parsed[0]), "Allow", "{stdout}");
    assert_eq!(
        parsed[0]["context"],
        json!({"tenant_id": "initech", "routing": "shared"})
    );
    assert_eq!(
        statement(&parsed[1]),
        "Deny",
        "a shared tenant on the isolated API"
    );
    assert_eq!(
        parsed[2],
        json!({"isAuthorized": false}),
        "an isolated tenant on the shared API"
    );
    assert_eq!(
        stdout.matches(r#""reason":"wrong_api""#).count(),
        2,
        "{stdout}"
    );
    testkit::assert_json_logs(&stdout, &[ACME_SECRET, ISOLATED_SECRET]);
}
