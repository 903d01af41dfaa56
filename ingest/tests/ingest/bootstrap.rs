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
    let statuses = statuses_and_bodies(&answers, &stdout);
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

/// Each answer's status and parsed body; a runtime error fails the test.
fn statuses_and_bodies(answers: &[Answer], stdout: &str) -> Vec<(u16, Value)> {
    answers
        .iter()
        .map(|a| match a {
            Answer::Response(body) => {
                let r: Value = serde_json::from_str(body).unwrap();
                let inner: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
                (r["statusCode"].as_u64().unwrap() as u16, inner)
            }
            Answer::Error(body) => panic!("runtime error reported: {body}\n{stdout}"),
        })
        .collect()
}

#[test]
fn a_missing_bus_name_fails_start_up_naming_the_variable() {
    testkit::assert_start_up_fails(env!("CARGO_BIN_EXE_ingest"), &[], "EVENT_BUS_NAME");
}

/// A Stripe delivery to acme's source `stripe-live`, signed now, as API
/// Gateway hands it to ingest after the source route's authorizer.
fn stripe_event(secret: &str, body: &str) -> Value {
    use shared::source::{Provider, SignRequest};
    let now = shared::signature::unix_now();
    let signed = Provider::parse("stripe")
        .unwrap()
        .sign(
            &shared::secret::Secret::new(secret),
            &SignRequest {
                method: "POST",
                url: "https://abcdef123.execute-api.us-east-1.amazonaws.com/v1/tenants/acme/sources/stripe-live",
                body: body.as_bytes(),
                delivery_id: "",
            },
            now,
        )
        .unwrap();
    testkit::on_source_route(fixture(), "acme", "stripe-live", signed.headers, body)
}

#[tokio::test]
async fn the_bootstrap_verifies_a_source_with_the_record_from_secrets_manager() {
    const SECRET: &str = "whsec_stripe_endpoint_secret_123";
    let moto = MotoServer::start();
    let record = testkit::TenantRecordBuilder::new("acme")
        .source("stripe-live", "stripe", &[SECRET])
        .json();
    moto.put_secret("form-bridge/tenants/acme", &record).await;
    let pattern = json!({"source": ["form-bridge"]}).to_string();
    let queue = moto.route_to_queue("bus-a", "all", &pattern).await;
    let body = r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"checkout.session.completed","data":{"object":{"customer_email":"ada@example.com"}}}"#;
    let valid = stripe_event(SECRET, body).to_string();
    let wrong_secret = stripe_event("whsec_someone_else", body).to_string();
    let events = [valid.clone(), valid.clone(), wrong_secret, valid];
    let runtime = FakeRuntimeApi::start(events);
    let (answers, stdout) = runtime.run(
        runtime
            .command(env!("CARGO_BIN_EXE_ingest"))
            .envs(moto.aws_env())
            .env("EVENT_BUS_NAME", "bus-a")
            .env("LOG_LEVEL", "debug"),
        4,
    );
    let answered = statuses_and_bodies(&answers, &stdout);
    assert_eq!(answered[0].0, 202, "{stdout}");
    assert_eq!(
        answered[1], answered[0],
        "a provider's retry: the first answer"
    );
    assert_eq!(answered[2].0, 401);
    assert_eq!(answered[2].1["error"]["code"], "invalid_signature");
    assert_eq!(answered[3], answered[0]);
    let messages = moto.drain_queue(&queue, 1).await;
    assert_eq!(messages.len(), 1, "one event for four deliveries");
    let event: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(
        event["detail"]["source"],
        json!({"id": "stripe-live", "provider": "stripe", "event_id": "evt_1NG8Du2eZvKYlo2CUI79vXWy"})
    );
    assert_eq!(
        event["detail"]["payload"]["data"]["object"]["customer_email"],
        "ada@example.com"
    );
    testkit::assert_json_logs(&stdout, &["ada@example.com", SECRET, "whsec_someone_else"]);
}

/// The fixture as a REST API (payload 1.0) proxy event for `path_tenant`,
/// whose authorizer let `context_tenant` through.
fn rest_event(path_tenant: &str, context_tenant: &str) -> Value {
    let http = fixture();
    json!({
        "resource": "/v1/tenants/{tenant_id}/submissions",
        "path": format!("/v1/tenants/{path_tenant}/submissions"),
        "httpMethod": "POST",
        "headers": http["headers"],
        "multiValueHeaders": {},
        "queryStringParameters": null,
        "pathParameters": {"tenant_id": path_tenant},
        "requestContext": {
            "resourcePath": "/v1/tenants/{tenant_id}/submissions",
            "httpMethod": "POST",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "domainName": "abcdef123.execute-api.us-east-1.amazonaws.com",
            "stage": "v1",
            "authorizer": {
                "principalId": context_tenant,
                "tenant_id": context_tenant,
                "routing": "shared",
                "integrationLatency": 2
            }
        },
        "body": http["body"],
        "isBase64Encoded": false
    })
}

#[tokio::test]
async fn in_tenant_isolation_mode_a_request_is_processed_only_in_its_tenants_environment() {
    let moto = MotoServer::start();
    let pattern = json!({"source": ["form-bridge"]}).to_string();
    let queue = moto.route_to_queue("bus-a", "all", &pattern).await;
    let acme = Some("acme".to_owned());
    let events = [
        // The isolated path: a REST event, the invocation carrying acme.
        (acme.clone(), rest_event("acme", "acme")),
        // Another tenant's request reaching acme's environment.
        (acme.clone(), rest_event("globex", "globex")),
        // The path and the authorizer disagree.
        (acme.clone(), rest_event("globex", "acme")),
        (acme.clone(), rest_event("acme", "globex")),
        // An invocation for globex carrying acme's request.
        (Some("globex".to_owned()), rest_event("acme", "acme")),
        // The shared path: no tenant in the invocation, the HTTP API event.
        (None, fixture()),
    ]
    .map(|(tenant, event)| (tenant, event.to_string()));
    let runtime = FakeRuntimeApi::start_for_tenants(events);
    let (answers, stdout) = runtime.run(
        runtime
            .command(env!("CARGO_BIN_EXE_ingest"))
            .envs(moto.aws_env())
            .env("EVENT_BUS_NAME", "bus-a"),
        6,
    );
    let answered = statuses_and_bodies(&answers, &stdout);
    assert_eq!(answered[0].0, 202, "{:?}\n{stdout}", answered[0]);
    for (i, (status, body)) in answered.iter().enumerate().take(5).skip(1) {
        assert_eq!(*status, 500, "event {i}: {body}");
        assert_eq!(body["error"]["code"], "tenant_mismatch", "event {i}");
    }
    // The REST event and the HTTP one carry the same signed request: the
    // second is its replay.
    assert_eq!(answered[5], answered[0]);
    let messages = moto.drain_queue(&queue, 1).await;
    assert_eq!(messages.len(), 1, "nothing published for a mismatch");
    // Refused at error, naming the reason.
    assert_eq!(
        stdout.matches(r#""reason":"tenant_mismatch""#).count(),
        4,
        "{stdout}"
    );
}

/// A provider's delivery to `tenant`'s `source` as the isolated REST API
/// hands it to ingest: the body base64 (the API's binary media types are
/// `*/*`), header names as sent, the path as called with its stage, the
/// query decoded into `multiValueQueryStringParameters`, and the REST
/// authorizer's flat context.
fn rest_source_event(
    tenant: &str,
    source: &str,
    headers: &[(&str, String)],
    body: &str,
    query: Value,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
        .chain([("Content-Type".to_owned(), "application/json".into())])
        .collect();
    let multi: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.clone(), json!([value])))
        .collect();
    json!({
        "resource": "/v1/tenants/{tenant_id}/sources/{source_id}",
        "path": format!("/v1/tenants/{tenant}/sources/{source}"),
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": query,
        "pathParameters": {"tenant_id": tenant, "source_id": source},
        "requestContext": {
            "resourcePath": "/v1/tenants/{tenant_id}/sources/{source_id}",
            "httpMethod": "POST",
            "path": format!("/isolated/v1/tenants/{tenant}/sources/{source}"),
            "stage": "isolated",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "authorizer": {
                "principalId": tenant,
                "tenant_id": tenant,
                "routing": "shared",
                "source_id": source,
                "integrationLatency": 3
            }
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

#[tokio::test]
async fn the_isolated_path_verifies_sources_from_rest_events() {
    use shared::source::{Provider, SignRequest};
    const HUBSPOT_SECRET: &str = "hubspot-app-client-secret-0123456789";
    const TOKEN: &str = "tok0123456789abcdef0123456789abcdefABCD";
    let moto = MotoServer::start();
    let record = testkit::TenantRecordBuilder::new("initech")
        .field("isolation", json!("per_tenant"))
        .source("hubspot-main", "hubspot", &[HUBSPOT_SECRET])
        .source("jotform", "token", &[TOKEN])
        .json();
    moto.put_secret("form-bridge/tenants/initech", &record)
        .await;
    let pattern = json!({"source": ["form-bridge"]}).to_string();
    let queue = moto.route_to_queue("bus-a", "all", &pattern).await;
    // HubSpot signs the URL as called: the stage is part of it.
    let hubspot = |url: &str| {
        let body = r#"[{"eventId":1001,"subscriptionType":"contact.creation","objectId":7}]"#;
        let signed = Provider::parse("hubspot")
            .unwrap()
            .sign(
                &shared::secret::Secret::new(HUBSPOT_SECRET),
                &SignRequest {
                    method: "POST",
                    url,
                    body: body.as_bytes(),
                    delivery_id: "",
                },
                shared::signature::unix_now(),
            )
            .unwrap();
        let headers: Vec<(&str, String)> = signed.headers.into_iter().collect();
        rest_source_event("initech", "hubspot-main", &headers, body, Value::Null)
    };
    let called = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/isolated/v1/tenants/initech/sources/hubspot-main";
    let without_stage = called.replace("/isolated", "");
    // Jotform echoes the webhook URL, token and all, in the body.
    let jotform_body =
        format!(r#"{{"name":"Ada","webhookURL":"https://x.example/s?token={TOKEN}"}}"#);
    let jotform = rest_source_event(
        "initech",
        "jotform",
        &[],
        &jotform_body,
        json!({"token": [TOKEN]}),
    );
    let initech = Some("initech".to_owned());
    let events = [
        (initech.clone(), hubspot(called)),
        (initech.clone(), hubspot(&without_stage)),
        (initech.clone(), jotform),
    ]
    .map(|(tenant, event)| (tenant, event.to_string()));
    let runtime = FakeRuntimeApi::start_for_tenants(events);
    let (answers, stdout) = runtime.run(
        runtime
            .command(env!("CARGO_BIN_EXE_ingest"))
            .envs(moto.aws_env())
            .env("EVENT_BUS_NAME", "bus-a"),
        3,
    );
    let answered = statuses_and_bodies(&answers, &stdout);
    assert_eq!(answered[0].0, 202, "{:?}\n{stdout}", answered[0]);
    assert_eq!(answered[1].0, 401, "{:?}", answered[1]);
    assert_eq!(answered[1].1["error"]["code"], "invalid_signature");
    assert_eq!(answered[2].0, 202, "{:?}\n{stdout}", answered[2]);
    let messages = moto.drain_queue(&queue, 2).await;
    assert_eq!(messages.len(), 2);
    let sources: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap()["detail"]["source"]["id"].clone())
        .collect();
    assert!(sources.contains(&json!("hubspot-main")) && sources.contains(&json!("jotform")));
    for text in messages.iter().chain([&stdout]) {
        assert!(!text.contains(TOKEN), "the token reached {text}");
    }
}
