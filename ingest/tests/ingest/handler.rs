//! The handler on real event JSON, with the in-memory bus.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::event::SubmissionId;
use shared::publish::RetryPolicy;

use super::*;

fn detail(entry: &BusEntry) -> Value {
    serde_json::from_str(&entry.detail).unwrap()
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<BusEntry>) -> Vec<BusEntry> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn the_fixture_becomes_the_contract_event() {
    let (ingest, mut rx, metrics) = memory_ingest(&config(), 100);
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 202, "{body}");
    let ids = ids(&body);
    assert_eq!(ids.len(), 1);
    let entries = drain(&mut rx);
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(&*entry.source, "form-bridge");
    assert_eq!(entry.detail_type, "form.submission");
    assert_eq!(entry.time, now());
    assert_eq!(detail(entry), fixture_detail(&ids[0]));
    // The payload is the exact text received.
    let body = std::str::from_utf8(testkit::VECTOR.body).unwrap();
    assert!(entry.detail.ends_with(&format!(r#""payload":{body}}}"#)));
    let id = SubmissionId::parse(&ids[0]).unwrap();
    assert_eq!(id.unix_millis(), NOW_SECS * 1000);

    let line = &metrics.lines()[0];
    assert_eq!(line["Submissions"], 1.0);
    assert_eq!(line["PublishCalls"], 1.0);
    assert_eq!(line["TenantId"], "acme");
}

#[tokio::test]
async fn a_batch_keeps_request_order_with_increasing_ids() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 1_000);
    let (status, body) = run(
        &ingest,
        &event_with(&batch_body(100, 10), "application/json"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let ids = ids(&body);
    assert_eq!(ids.len(), 100);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "sortable and increasing"
    );
    let entries = drain(&mut rx);
    let seen: Vec<(String, u64)> = entries
        .iter()
        .map(|e| {
            let d = detail(e);
            (
                d["submission_id"].as_str().unwrap().to_owned(),
                d["payload"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = ids.into_iter().zip(0..).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_form_is_one_submission_of_strings() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 10);
    let form = b"name=Ada+Lovelace&topic=a&topic=b&email=ada%40example.com";
    let (status, body) = run(
        &ingest,
        &event_with(form, "application/x-www-form-urlencoded; charset=utf-8"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let d = detail(&drain(&mut rx)[0]);
    assert_eq!(d["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(
        d["payload"],
        json!({"name": "Ada Lovelace", "topic": ["a", "b"], "email": "ada@example.com"})
    );
}

#[tokio::test]
async fn base64_bodies_are_decoded_before_the_digest_check() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 10);
    let body = "{\"name\":\"Zoë\"}".as_bytes();
    let (status, _) = run(&ingest, &base64_event_with(body, "application/json")).await;
    assert_eq!(status, 202);
    assert_eq!(
        detail(&drain(&mut rx)[0])["payload"],
        json!({"name": "Zoë"})
    );
}

#[tokio::test]
async fn the_tenant_comes_only_from_the_authorizer_context() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 10);
    let mut event = event_with(
        br#"{"tenant_id":"globex","routing":"dedicated"}"#,
        "application/json",
    );
    event["pathParameters"]["tenant_id"] = "globex".into();
    event["requestContext"]["authorizer"]["lambda"] =
        json!({"tenant_id": "umbrella", "routing": "dedicated"});
    let (status, _) = run(&ingest, &event).await;
    assert_eq!(status, 202);
    let d = detail(&drain(&mut rx)[0]);
    assert_eq!(d["tenant_id"], "umbrella");
    assert_eq!(d["routing"], "dedicated");
    assert_eq!(
        d["payload"]["tenant_id"], "globex",
        "the body is data, nothing more"
    );
}

/// Every rejection: status, code, a message, and nothing on the bus.
#[tokio::test]
async fn every_bad_request_gets_its_status_and_code_and_publishes_nothing() {
    let small = Config {
        max_body_bytes: 1_000,
        ..config()
    };
    let big = Config {
        max_body_bytes: 2_000_000,
        ..config()
    };
    let json = "application/json";
    let good = br#"{"a":1}"#;
    let mut cases: Vec<(&str, Config, Value, u16, &str)> = Vec::new();
    let mut case = |name, config: &Config, event: Value, status, code| {
        cases.push((name, config.clone(), event, status, code));
    };

    let mut e = event_with(good, json);
    e["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    case(
        "no authorizer",
        &config(),
        e,
        500,
        "missing_authorizer_context",
    );
    let mut e = event_with(good, json);
    e["requestContext"]["authorizer"]["lambda"] = json!({"tenant_id": "acme"});
    case(
        "no routing",
        &config(),
        e,
        500,
        "missing_authorizer_context",
    );
    let mut e = event_with(good, json);
    e["requestContext"]["authorizer"]["lambda"] =
        json!({"tenant_id": "Not Valid", "routing": "shared"});
    case(
        "invalid tenant in context",
        &config(),
        e,
        500,
        "missing_authorizer_context",
    );

    let mut e = event_with(good, json);
    e["body"] = r#"{"a":2}"#.into();
    case("tampered body", &config(), e, 401, "digest_mismatch");
    let mut e = event_with(good, json);
    e["headers"]["content-digest"] = "sha-256=:bm90IGEgZGlnZXN0:".into();
    case("short digest", &config(), e, 401, "malformed_digest");
    let mut e = event_with(good, json);
    e["headers"]["content-digest"] = "md5=:abc:".into();
    case("no sha-256 member", &config(), e, 401, "malformed_digest");
    let mut e = event_with(good, json);
    e["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-digest");
    case("no digest", &config(), e, 401, "missing_digest");

    case(
        "text/plain",
        &config(),
        event_with(good, "text/plain"),
        415,
        "unsupported_content_type",
    );
    let mut e = event_with(good, json);
    e["headers"].as_object_mut().unwrap().remove("content-type");
    case(
        "no content type",
        &config(),
        e,
        415,
        "unsupported_content_type",
    );

    case(
        "empty body",
        &config(),
        event_with(b"", json),
        400,
        "empty_body",
    );
    let mut e = event_with(b"", json);
    e.as_object_mut().unwrap().remove("body");
    case("no body", &config(), e, 400, "empty_body");
    case(
        "bad json",
        &config(),
        event_with(b"{\"a\":", json),
        400,
        "malformed_json",
    );
    case(
        "string",
        &config(),
        event_with(b"\"hi\"", json),
        400,
        "not_an_object",
    );
    case(
        "empty batch",
        &config(),
        event_with(b"[]", json),
        400,
        "empty_batch",
    );
    case(
        "batch of 101",
        &config(),
        event_with(&batch_body(101, 1), json),
        400,
        "batch_too_large",
    );
    case(
        "batch with a number",
        &config(),
        event_with(b"[{},2]", json),
        400,
        "invalid_batch_item",
    );
    let mut e = base64_event_with(good, json);
    e["body"] = "!!!not base64!!!".into();
    case("bad base64", &config(), e, 400, "malformed_body");
    let mut e = base64_event_with(b"\xff\xfe{}", json);
    e["headers"]["content-digest"] = shared::signature::content_digest(b"\xff\xfe{}").into();
    case("binary body", &config(), e, 400, "malformed_json");
    case(
        "bad form",
        &config(),
        event_with(b"a=%FF", "application/x-www-form-urlencoded"),
        400,
        "malformed_form",
    );

    case(
        "body over the limit",
        &small,
        event_with(&batch_body(1, 1_000), json),
        413,
        "body_too_large",
    );
    case(
        "base64 body over the limit",
        &small,
        base64_event_with(&batch_body(1, 1_000), json),
        413,
        "body_too_large",
    );
    case(
        "one event over 1 MiB",
        &big,
        event_with(&batch_body(1, 1_100_000), json),
        413,
        "event_too_large",
    );

    for (name, config, event, status, code) in cases {
        let (ingest, mut rx, metrics) = memory_ingest(&config, 100);
        let (got, body) = run(&ingest, &event).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() > 10, "{name}: {message}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{name}: {body}");
        assert!(drain(&mut rx).is_empty(), "{name}: nothing published");
        let line = &metrics.lines()[0];
        assert_eq!(
            (line["Rejections"].as_f64(), line["Reason"].as_str()),
            (Some(1.0), Some(code)),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_bus_is_a_503_that_says_a_retry_is_safe() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 10);
    let ingest = ingest.with_retry_policy(RetryPolicy {
        budget: Duration::from_millis(500),
        ..RetryPolicy::default()
    });
    let (status, _) = run(&ingest, &event_with(&batch_body(10, 1), "application/json")).await;
    assert_eq!(status, 202);
    let (status, body) = run(&ingest, &fixture()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "bus_unavailable");
    assert!(message(&body).contains("retrying the request is safe"));
    assert!(body["error"].get("published_submission_ids").is_none());
    assert_eq!(drain(&mut rx).len(), 10, "only the first request's");
    let (status, _) = run(&ingest, &fixture()).await;
    assert_eq!(status, 202, "room again once the queue drained");
}

/// `IngestEvent` reads what `aws_lambda_events` reads, on our fixture and
/// upstream's; our response is a valid proxy response.
#[test]
fn the_lean_event_agrees_with_aws_lambda_events() {
    for name in [
        "ingest-request.json",
        "upstream-apigw-v2-request-lambda-authorizer.json",
        "upstream-apigw-v2-request-no-authorizer.json",
    ] {
        let text = data(name);
        let full: ApiGatewayV2httpRequest = serde_json::from_str(&text).unwrap();
        let lean: IngestEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(lean.body, full.body, "{name}");
        assert_eq!(lean.is_base64_encoded, full.is_base64_encoded, "{name}");
        let header = |n: &str| full.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(lean.headers.content_type, header("content-type"), "{name}");
        assert_eq!(
            lean.headers.content_digest,
            header("content-digest"),
            "{name}"
        );
        assert_eq!(
            lean.request_context.request_id, full.request_context.request_id,
            "{name}"
        );
        let full_lambda = full
            .request_context
            .authorizer
            .map(|a| a.fields)
            .unwrap_or_default();
        let lean_lambda = lean.request_context.authorizer.and_then(|a| a.lambda);
        for (key, lean_value) in [
            (
                "tenant_id",
                lean_lambda.as_ref().and_then(|l| l.tenant_id.clone()),
            ),
            (
                "routing",
                lean_lambda.as_ref().and_then(|l| l.routing.clone()),
            ),
        ] {
            let full_value = full_lambda
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            assert_eq!(lean_value, full_value, "{name}: {key}");
        }
    }
    let response = Response::json(202, r#"{"submission_ids":[]}"#.into());
    let mut ours = serde_json::to_value(&response).unwrap();
    // The Rust type insists on `cookies`; API Gateway does not.
    ours["cookies"] = json!([]);
    let full: ApiGatewayV2httpResponse = serde_json::from_value(ours).unwrap();
    assert_eq!(full.status_code, 202);
    assert_eq!(
        full.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(
        full.body,
        Some(aws_lambda_events::encodings::Body::Text(
            response.body.clone()
        ))
    );
}

/// The isolated path's REST API (payload 1.0) proxy events: the lean view
/// reads what `aws_lambda_events` reads, on our fixture and the upstream
/// one, and the response is a valid REST proxy response.
#[test]
fn the_lean_event_agrees_with_aws_lambda_events_on_rest_events() {
    use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
    for name in ["rest-ingest-request.json", "upstream-apigw-request.json"] {
        let text = data(name);
        let full: ApiGatewayProxyRequest = serde_json::from_str(&text).unwrap();
        let lean: IngestEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(lean.body, full.body, "{name}");
        assert_eq!(lean.is_base64_encoded, full.is_base64_encoded, "{name}");
        let header = |n: &str| full.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(lean.headers.content_type, header("content-type"), "{name}");
        assert_eq!(
            lean.headers.content_digest,
            header("content-digest"),
            "{name}"
        );
        assert_eq!(
            lean.request_context.request_id, full.request_context.request_id,
            "{name}"
        );
        assert_eq!(
            lean.path(),
            full.request_context.path.unwrap_or_default(),
            "{name}"
        );
        assert_eq!(
            lean.path_parameters.tenant_id.as_deref(),
            full.path_parameters.get("tenant_id").map(String::as_str),
            "{name}"
        );
        let mut query: Vec<(String, String)> = full
            .multi_value_query_string_parameters
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut lean_query: Vec<(String, String)> =
            url::form_urlencoded::parse(lean.query().as_bytes())
                .into_owned()
                .collect();
        query.sort();
        lean_query.sort();
        assert_eq!(lean_query, query, "{name}");
        let fields = &full.request_context.authorizer.fields;
        let authorizer = lean.request_context.authorizer.as_ref();
        let (tenant, routing) = authorizer.map_or((None, None), |a| a.tenant_and_routing());
        let field = |key: &str| fields.get(key).and_then(Value::as_str);
        assert_eq!(tenant, field("tenant_id"), "{name}");
        assert_eq!(routing, field("routing"), "{name}");
        assert_eq!(
            authorizer.and_then(|a| a.source_id()),
            field("source_id"),
            "{name}"
        );
    }
    let response = Response::json(202, r#"{"submission_ids":[]}"#.into());
    let full: ApiGatewayProxyResponse =
        serde_json::from_value(serde_json::to_value(&response).unwrap()).unwrap();
    assert_eq!(full.status_code, 202);
    assert_eq!(
        full.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert!(!full.is_base64_encoded);
}

#[tokio::test]
async fn a_rest_event_from_the_isolated_api_is_the_same_submission() {
    let (ingest, mut rx, _) = memory_ingest(&config(), 100);
    let rest: Value = serde_json::from_str(&data("rest-ingest-request.json")).unwrap();
    let (status, body) = run(&ingest, &rest).await;
    assert_eq!(status, 202, "{body}");
    let entries = drain(&mut rx);
    assert_eq!(entries.len(), 1);
    assert_eq!(detail(&entries[0]), fixture_detail(&ids(&body)[0]));
}

/// Bodies are decoded with base64-simd (every REST API body is base64):
/// it accepts and refuses exactly what the base64 crate's strict standard
/// engine does, and decodes to the same bytes.
#[tokio::test]
async fn base64_bodies_are_decoded_as_strictly_as_the_standard_engine() {
    let (ingest, _rx, _) = memory_ingest(&config(), 100);
    let shapes = [
        "eyJhIjoxfQ==", // {"a":1}
        "eyJhIjoxfQ",   // padding left out
        "eyJhIjoxfQ=",  // padding short
        "eyJhIjoxfQ===",
        "eyJhIjoxfR==", // trailing bits set
        "eyJh Ijox fQ==",
        "eyJhIjoxfQ==\n",
        "eyJhIjox-Q==", // URL-safe alphabet
        "eyJhIjox_Q==",
        "e",
        "",
        "====",
        "eyJhIjoxfQ==eyJhIjoxfQ==",
    ];
    for shape in shapes {
        let mut event = fixture();
        event["body"] = shape.into();
        event["isBase64Encoded"] = true.into();
        let (status, body) = run(&ingest, &event).await;
        let refused = body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid base64"));
        let standard = base64::engine::general_purpose::STANDARD.decode(shape);
        assert_eq!(refused, standard.is_err(), "{shape:?}: {status} {body}");
        if let Ok(bytes) = standard {
            let simd = base64_simd::STANDARD.decode_to_vec(shape).unwrap();
            assert_eq!(simd, bytes, "{shape:?}");
        }
    }
}

#[test]
fn configuration_errors_name_the_variable() {
    use shared::config::Env;
    use std::collections::HashMap;
    let parse = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_env(&Env::from_map(&map))
    };
    let ok = parse(&[("EVENT_BUS_NAME", "bus")]).unwrap();
    assert_eq!(ok.event_source, "form-bridge");
    let shortest = parse(&[
        ("EVENT_BUS_NAME", "bus"),
        ("REPLAY_WINDOW_SECONDS", "60"),
        ("IDEMPOTENCY_TTL_SECONDS", "600"),
    ])
    .unwrap();
    assert_eq!(shortest.idempotency_ttl, Duration::from_secs(600));
    assert_eq!(ok.max_body_bytes, 262_144);
    for (pairs, variable) in [
        (&[][..], "EVENT_BUS_NAME"),
        (&[("EVENT_BUS_NAME", "my bus")][..], "EVENT_BUS_NAME"),
        (
            &[("EVENT_BUS_NAME", "b"), ("EVENT_SOURCE", "aws.events")][..],
            "EVENT_SOURCE",
        ),
        (
            &[("EVENT_BUS_NAME", "b"), ("MAX_BODY_BYTES", "0")][..],
            "MAX_BODY_BYTES",
        ),
        (
            &[("EVENT_BUS_NAME", "b"), ("MAX_BODY_BYTES", "7000000")][..],
            "MAX_BODY_BYTES",
        ),
        (
            &[("EVENT_BUS_NAME", "b"), ("MAX_BODY_BYTES", "1MB")][..],
            "MAX_BODY_BYTES",
        ),
        // A key must outlive twice the widest window a timestamp is
        // accepted in: a provider's 300 s, even when the authorizer's is
        // narrower.
        (
            &[
                ("EVENT_BUS_NAME", "b"),
                ("REPLAY_WINDOW_SECONDS", "60"),
                ("IDEMPOTENCY_TTL_SECONDS", "120"),
            ][..],
            "IDEMPOTENCY_TTL_SECONDS",
        ),
        (
            &[
                ("EVENT_BUS_NAME", "b"),
                ("REPLAY_WINDOW_SECONDS", "900"),
                ("IDEMPOTENCY_TTL_SECONDS", "1200"),
            ][..],
            "IDEMPOTENCY_TTL_SECONDS",
        ),
    ] {
        assert_eq!(parse(pairs).unwrap_err().variable, variable, "{pairs:?}");
    }
}
