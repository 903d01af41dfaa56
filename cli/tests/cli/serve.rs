//! `formbridge serve` end to end: submissions in over HTTP, deliveries out
//! to real local receivers.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{HttpServer, RecordedRequest, Reply};

use crate::harness::{
    Gateway, SIGNING_SECRET, Submission, WEBHOOK_SECRET, answer, get_json, get_json_when,
    health_when, ids, record, run, scratch_dir, sigterm, tenant, tenants_file, wait_until,
};

/// Checks a delivery as a receiver using the official Standard Webhooks
/// library would; returns its body.
fn verified(request: &RecordedRequest) -> Value {
    assert!(
        request.webhook_verifies(WEBHOOK_SECRET),
        "{}",
        request.text()
    );
    serde_json::from_slice(&request.body).unwrap()
}

fn gateway_for(receiver: &HttpServer, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("acme", Some(&receiver.url()))]);
    let mut args = vec![
        "--tenants",
        tenants.to_str().unwrap(),
        "--allow-private-destinations",
    ];
    args.extend_from_slice(extra);
    Gateway::start(&args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_reach_the_receiver_signed_and_unchanged() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway_for(&receiver, &[], &[]);
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");

    let single = r#"{"email":"ada@example.com","n":12345678901234567890}"#;
    let (status, body) = answer(Submission::json("acme", single).request(&client, &url)).await;
    assert_eq!(status, 202, "{body}");
    let mut expected: Vec<(String, String)> = vec![(ids(&body)[0].clone(), single.to_owned())];

    let batch = r#"[{"a":1},{"b":"two"},{"c":[3]}]"#;
    let (status, body) = answer(Submission::json("acme", batch).request(&client, &url)).await;
    assert_eq!(status, 202, "{body}");
    for (id, payload) in
        ids(&body)
            .into_iter()
            .zip([r#"{"a":1}"#, r#"{"b":"two"}"#, r#"{"c":[3]}"#])
    {
        expected.push((id, payload.to_owned()));
    }

    let mut form = Submission::json("acme", "name=Ada+Lovelace&tag=a&tag=b");
    form.content_type = "application/x-www-form-urlencoded".to_owned();
    let (status, body) = answer(form.request(&client, &url)).await;
    assert_eq!(status, 202, "{body}");
    expected.push((
        ids(&body)[0].clone(),
        r#"{"name":"Ada Lovelace","tag":["a","b"]}"#.to_owned(),
    ));

    wait_until("5 deliveries", || receiver.requests().len() >= 5);
    let deliveries = receiver.requests();
    assert_eq!(deliveries.len(), 5);
    for (id, payload) in expected {
        let delivery = deliveries
            .iter()
            .find(|d| d.header("webhook-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not delivered"));
        let body = verified(delivery);
        assert_eq!(body["type"], "form.submission");
        assert_eq!(body["data"]["submission_id"], id);
        assert_eq!(body["data"]["tenant_id"], "acme");
        assert_eq!(body["timestamp"], body["data"]["received_at"]);
        // The payload's JSON text reaches the tenant byte for byte.
        assert!(
            delivery.text().contains(&format!("\"payload\":{payload}")),
            "{}",
            delivery.text()
        );
        assert_eq!(delivery.header("content-type"), Some("application/json"));
    }
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 5).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["bus"]["accepted"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_the_deployed_status_and_body() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let suspended = record("paused").status("suspended").build();
    let limited = record("limited").rate_limit(1, 1).build();
    let tenants = tenants_file(
        &dir,
        &[tenant("acme", Some(&receiver.url())), suspended, limited],
    );
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[("MAX_BODY_BYTES", "2048")],
    );
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let ok = || Submission::json("acme", r#"{"a":1}"#);

    // API Gateway's identity sources: a missing header never reaches the
    // authorizer.
    for missing in [
        "content-digest",
        "x-formbridge-timestamp",
        "x-formbridge-signature",
    ] {
        let request = ok().request(&client, &url).build().unwrap();
        let mut request = request;
        request.headers_mut().remove(missing);
        let response = client.execute(request).await.unwrap();
        assert_eq!(response.status(), 401, "{missing}");
        assert_eq!(
            response.text().await.unwrap(),
            r#"{"message":"Unauthorized"}"#
        );
    }

    let forbidden = |submission: Submission, url: String| {
        let client = client.clone();
        async move {
            let (status, body) = answer(submission.request(&client, &url)).await;
            (status, body)
        }
    };
    let mut bad_secret = ok();
    bad_secret.secret = "fb_not_the_secret_0000000000000000000000".to_owned();
    let mut stale = ok();
    stale.timestamp -= 301;
    let mut future = ok();
    future.timestamp += 301;
    let cases = [
        ("bad signature", bad_secret, url.clone()),
        ("stale", stale, url.clone()),
        ("future", future, url.clone()),
        (
            "unknown tenant",
            Submission::json("nobody", "{}"),
            gateway.submissions("nobody"),
        ),
        (
            "suspended",
            Submission::json("paused", "{}"),
            gateway.submissions("paused"),
        ),
        (
            "invalid tenant id",
            Submission::json("acme", "{}"),
            gateway.submissions("ACME"),
        ),
    ];
    for (what, submission, url) in cases {
        assert_eq!(
            forbidden(submission, url).await,
            (403, json!({"message": "Forbidden"})),
            "{what}"
        );
    }
    // Rate limit of 1 request per second, burst 1: the first is accepted
    // and one of the next few, sent at once, is refused (a loaded machine
    // may space two requests a second apart, never five).
    let limited_url = gateway.submissions("limited");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let request = Submission::json("limited", "{}").request(&client, &limited_url);
        statuses.push(answer(request).await.0);
    }
    assert_eq!(statuses[0], 202, "{statuses:?}");
    assert!(statuses[1..].contains(&403), "{statuses:?}");

    // Ingest's refusals, with its error bodies.
    let mut tampered = ok().request(&client, &url).build().unwrap();
    *tampered.body_mut() = Some(r#"{"a":2}"#.into());
    let response = client.execute(tampered).await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "digest_mismatch");

    let mut form_typed = Submission::json("acme", "{}");
    form_typed.content_type = "text/plain".to_owned();
    let too_many = format!("[{}]", ["{}"; 101].join(","));
    let cases = [
        (Submission::json("acme", "not json"), 400, "malformed_json"),
        (Submission::json("acme", "[]"), 400, "empty_batch"),
        (Submission::json("acme", &too_many), 400, "batch_too_large"),
        (Submission::json("acme", "42"), 400, "not_an_object"),
        (Submission::json("acme", ""), 400, "empty_body"),
        (form_typed, 415, "unsupported_content_type"),
        (
            Submission::json("acme", &format!(r#"{{"a":"{}"}}"#, "x".repeat(3000))),
            413,
            "body_too_large",
        ),
    ];
    for (submission, status, code) in cases {
        let (got, body) = answer(submission.request(&client, &url)).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(body["error"]["message"].is_string());
    }
    // Bytes that are not UTF-8 are passed base64-encoded, as API Gateway
    // does, and refused as JSON by ingest.
    let mut binary = Submission::json("acme", "");
    binary.body = vec![0xff, 0xfe, b'{', b'}'];
    let (status, body) = answer(binary.request(&client, &url)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_json"))
    );

    for (method, path) in [
        ("GET", "/v1/tenants/acme/submissions"),
        ("POST", "/v1/tenants/acme"),
        ("GET", "/"),
    ] {
        let response = client
            .request(method.parse().unwrap(), format!("{}{path}", gateway.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    // Only the rate-limited tenant's first request was accepted.
    let health: Value = get_json(&client, &format!("{}/healthz", gateway.operations_url())).await;
    assert_eq!(health["bus"]["accepted"], 1);
    assert!(receiver.requests().is_empty());
    // Denials are logged with their reason; no secret or signature is.
    let logs = gateway.stderr();
    assert!(logs.contains("reason=\"bad_signature\""), "{logs}");
    assert!(
        !logs.contains(SIGNING_SECRET) && !logs.contains("v1="),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_concurrent_submissions_are_delivered_exactly_once() {
    let receiver = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let gateway = gateway_for(&receiver, &[], &[]);
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let sends = (0..400).map(|i| {
        let request = Submission::json("acme", &format!(r#"{{"i":{i}}}"#)).request(&client, &url);
        tokio::spawn(answer(request))
    });
    let mut accepted = HashSet::new();
    for send in sends.collect::<Vec<_>>() {
        let (status, body) = send.await.unwrap();
        assert_eq!(status, 202, "{body}");
        assert!(accepted.insert(ids(&body)[0].clone()));
    }
    wait_until("400 deliveries", || receiver.requests().len() >= 400);
    std::thread::sleep(Duration::from_millis(300)); // any duplicate would show by now
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 400, "no duplicates");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_everything_accepted_first() {
    // A slow receiver: 40 deliveries, 4 at a time, take about 2 s.
    let receiver = HttpServer::start(|_, _| Reply::json(204, "").after(Duration::from_millis(200)));
    let mut gateway = gateway_for(&receiver, &[], &[("DELIVERY_CONCURRENCY", "4")]);
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let mut accepted = HashSet::new();
    for i in 0..4 {
        let batch = format!(
            "[{}]",
            (0..10)
                .map(|j| format!(r#"{{"n":{}}}"#, i * 10 + j))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (status, body) = answer(Submission::json("acme", &batch).request(&client, &url)).await;
        assert_eq!(status, 202);
        accepted.extend(ids(&body));
    }
    assert!(
        receiver.requests().len() < 40,
        "the test needs deliveries still pending"
    );
    let status = gateway.terminate();
    assert!(status.success(), "{status:?}: {}", gateway.stderr());
    let delivered: HashSet<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(delivered, accepted);
    let out = gateway.stdout().join("\n");
    assert!(out.contains("stopping: no new submissions"), "{out}");
    assert!(
        out.contains("stopped. accepted 40 · delivered 40 ·"),
        "{out}"
    );
    // No longer accepting.
    assert!(
        client
            .get(format!("{}/healthz", gateway.url))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_shutdown_keeps_what_it_could_not_deliver() {
    // A receiver that does not answer within the delivery timeout.
    let receiver = HttpServer::start(|_, _| Reply::json(204, "").after(Duration::from_secs(5)));
    let dir = scratch_dir();
    let dead_letters = dir.join("dead.jsonl");
    let mut gateway = gateway_for(
        &receiver,
        &[
            "--queue-capacity",
            "10",
            "--shutdown-timeout",
            "1",
            "--dead-letters",
            dead_letters.to_str().unwrap(),
        ],
        &[
            ("DELIVERY_CONCURRENCY", "1"),
            ("DELIVERY_TIMEOUT_MS", "3000"),
        ],
    );
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let batch = format!("[{}]", [r#"{"x":1}"#; 10].join(","));
    let (status, body) = answer(Submission::json("acme", &batch).request(&client, &url)).await;
    assert_eq!(status, 202, "{body}");
    let accepted: HashSet<String> = ids(&body).into_iter().collect();
    wait_until("the first delivery to start", || {
        !receiver.requests().is_empty()
    });
    // 1 in flight and 9 queued: the bus holds 10 accepted and undelivered
    // events, and takes no more until one is done.
    let more = batch.replace("\"x\"", "\"more\"");
    let (status, body) = answer(Submission::json("acme", &more).request(&client, &url)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "bus_unavailable");
    let response = Submission::json("acme", r#"{"z":1}"#)
        .request(&client, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    // Shutdown after 1 s: everything not delivered is dead-lettered to the
    // file, none of it lost.
    assert!(gateway.terminate().success());
    let letters: Vec<Value> = std::fs::read_to_string(&dead_letters)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kept: HashSet<String> = letters
        .iter()
        .map(|l| {
            l["event"]["detail"]["submission_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kept.len(), letters.len());
    assert_eq!(
        kept, accepted,
        "every accepted event is in the dead-letter file"
    );
    assert!(letters.iter().all(|l| l["reason"] == "shutdown_timeout"));
    let out = gateway.stdout().join("\n");
    assert!(out.contains("dead-lettered 10"), "{out}");
    assert!(
        out.contains(&format!(
            "10 dead letters are in {}",
            dead_letters.display()
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_then_dead_lettered_for_inspection() {
    // /gone answers 400 (permanent); /down 503 (retryable); /flaky fails twice.
    let receiver = HttpServer::start(|request, _| match request.path.as_str() {
        "/gone" => Reply::json(400, "{}"),
        "/down" => Reply::json(503, "{}"),
        _ => Reply::json(204, ""),
    });
    let flaky = HttpServer::start(|_, n| Reply::json(if n < 2 { 500 } else { 204 }, ""));
    let dir = scratch_dir();
    let tenants = tenants_file(
        &dir,
        &[
            tenant("gone", Some(&format!("{}/gone", receiver.url()))),
            tenant("down", Some(&format!("{}/down", receiver.url()))),
            tenant("flaky", Some(&flaky.url())),
            tenant("nowhere", None),
        ],
    );
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
            "--max-receives",
            "3",
        ],
        &[("DELIVERY_ATTEMPTS", "1")],
    );
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for tenant in ["gone", "down", "flaky", "nowhere"] {
        let (status, body) =
            answer(Submission::json(tenant, "{}").request(&client, &gateway.submissions(tenant)))
                .await;
        assert_eq!(status, 202, "{body}");
        sent.push(ids(&body)[0].clone());
    }
    let dead_letters = format!("{}/v1/dead-letters", gateway.operations_url());
    let listed = get_json_when(&client, &dead_letters, |l| l["total"] == 3).await;
    assert_eq!(listed["total"], 3, "{listed}");
    let by_tenant = |t: &str| {
        listed["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["tenant_id"] == t)
            .unwrap_or_else(|| panic!("{t} not dead-lettered: {listed}"))
            .clone()
    };
    let gone = by_tenant("gone");
    assert_eq!(
        (
            gone["reason"].as_str(),
            gone["class"].as_str(),
            gone["receives"].as_u64()
        ),
        (Some("http_4xx"), Some("permanent"), Some(1))
    );
    assert_eq!(gone["submission_id"], sent[0]);
    // The listing summarises; the dead letter whole is fetched by its ID.
    assert!(gone.get("event").is_none(), "{gone}");
    let whole = get_json(&client, &format!("{dead_letters}/{}", sent[0])).await;
    assert_eq!(whole["event"]["detail"]["submission_id"], sent[0]);
    assert_eq!(whole["reason"], "http_4xx");
    let down = by_tenant("down");
    assert_eq!(
        (
            down["reason"].as_str(),
            down["class"].as_str(),
            down["receives"].as_u64()
        ),
        (Some("http_5xx"), Some("retryable"), Some(3))
    );
    let nowhere = by_tenant("nowhere");
    assert_eq!(nowhere["reason"], "no_destination");
    // The flaky destination got it on the third receive.
    wait_until("the flaky delivery", || flaky.requests().len() >= 3);
    assert_eq!(
        flaky.requests()[2].header("webhook-id"),
        Some(sent[2].as_str())
    );
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|r| r.path == "/down")
            .count(),
        3,
        "one request per receive with DELIVERY_ATTEMPTS=1"
    );
    let out = gateway.stdout().join("\n");
    assert!(out.contains("tenant nowhere has no destination"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_allowed() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("acme", Some(&receiver.url()))]);
    let gateway = Gateway::start(&["--tenants", tenants.to_str().unwrap()], &[]);
    let out = gateway.wait_for_line("a warning", |l| {
        l.contains("warning: tenant acme's destination")
    });
    assert!(out.contains("--allow-private-destinations"), "{out}");
    let client = reqwest::Client::new();
    let (status, _) =
        answer(Submission::json("acme", "{}").request(&client, &gateway.submissions("acme"))).await;
    assert_eq!(status, 202);
    let dead_letters = format!("{}/v1/dead-letters", gateway.operations_url());
    let listed = get_json_when(&client, &dead_letters, |l| l["total"] == 1).await;
    assert_eq!(
        listed["dead_letters"][0]["reason"], "destination_not_allowed",
        "{listed}"
    );
    assert!(receiver.requests().is_empty());
}

#[test]
fn starts_with_no_arguments_on_a_demo_tenant_and_its_own_receiver() {
    let gateway = Gateway::start(&[], &[]);
    let hint = gateway.wait_for_line("the send command", |l| l.contains("formbridge send --url"));
    // Run the printed command as a person would (with our binary).
    let args: Vec<&str> = hint.split_whitespace().collect();
    let start = args.iter().position(|a| *a == "send").unwrap();
    let body = testkit::VECTOR.body;
    let (code, out, err) = run(&args[start..], body, &[]);
    assert_eq!(code, 0, "{err}");
    let id = out.lines().nth(1).unwrap().to_owned();
    assert_eq!(out.lines().next(), Some("202 Accepted"));
    let line = gateway.wait_for_line("the receiver's line", |l| l.contains(&id));
    assert_eq!(
        line,
        format!(
            "receiver: delivered {id} for demo (signature verified): {}",
            std::str::from_utf8(body).unwrap()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formbridge_receive_verifies_and_counts_deliveries() {
    let port = testkit::free_port();
    let receiver_url = format!("http://127.0.0.1:{port}");
    let receiver = std::process::Command::new(crate::harness::BINARY)
        .args(["receive", "--listen", &format!("127.0.0.1:{port}")])
        .env("FORMBRIDGE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    wait_until("the receiver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = scratch_dir();
    let tenants = tenants_file(
        &dir,
        &[tenant("acme", Some(&format!("{receiver_url}/hooks")))],
    );
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    );
    let (status, body) = answer(
        Submission::json("acme", r#"[{"a":1},{"b":2},{"c":3}]"#)
            .request(&client, &gateway.submissions("acme")),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let stats = format!("{receiver_url}/stats");
    let counts = get_json_when(&client, &stats, |c| c["verified"] == 3).await;
    assert_eq!(
        counts,
        json!({"verified": 3, "unique": 3, "duplicates": 0, "refused": 0})
    );
    // A forged delivery is refused.
    let forged = client
        .post(&receiver_url)
        .header("webhook-id", "msg_1")
        .header(
            "webhook-timestamp",
            shared::signature::unix_now().to_string(),
        )
        .header("webhook-signature", "v1,bm90IHRoZSBzaWduYXR1cmU=")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(get_json(&client, &stats).await["refused"], 1);
    sigterm(receiver.id());
    let out = receiver.wait_with_output().unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();
    for id in ids(&body) {
        assert!(
            out.contains(&format!(
                "receiver: delivered {id} for acme (signature verified)"
            )),
            "{out}"
        );
    }
    assert!(
        out.contains("receiver: refused a delivery: no v1 signature matches"),
        "{out}"
    );
    assert!(
        out.contains("receiver: stopped. verified 3 · unique 3 · duplicates 0 · refused 1"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_is_delivered_without_further_traffic_at_concurrency_one() {
    // The only event fails once; nothing else arrives to wake the bus.
    let receiver = HttpServer::start(|_, n| Reply::json(if n == 0 { 503 } else { 204 }, ""));
    let gateway = gateway_for(
        &receiver,
        &[],
        &[("DELIVERY_CONCURRENCY", "1"), ("DELIVERY_ATTEMPTS", "1")],
    );
    let client = reqwest::Client::new();
    let (status, body) =
        answer(Submission::json("acme", "{}").request(&client, &gateway.submissions("acme"))).await;
    assert_eq!(status, 202, "{body}");
    wait_until("the second receive", || receiver.requests().len() >= 2);
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 1).await;
    assert_eq!(health["bus"]["retrying"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_retrying_until_delivered() {
    // Fails three times, then recovers while the gateway is shutting down.
    let receiver = HttpServer::start(|_, n| Reply::json(if n < 3 { 503 } else { 204 }, ""));
    let mut gateway = gateway_for(
        &receiver,
        &["--max-receives", "5"],
        &[("DELIVERY_ATTEMPTS", "1")],
    );
    let client = reqwest::Client::new();
    let (status, body) =
        answer(Submission::json("acme", "{}").request(&client, &gateway.submissions("acme"))).await;
    assert_eq!(status, 202, "{body}");
    wait_until("the first failure", || !receiver.requests().is_empty());
    assert!(gateway.terminate().success());
    assert_eq!(receiver.requests().len(), 4);
    let out = gateway.stdout().join("\n");
    assert!(
        out.contains("stopped. accepted 1 · delivered 1 · retrying 0 · dead-lettered 0"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_tenant_ids_never_locks_out_a_real_tenant() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let real: Vec<String> = (0..12).map(|i| format!("real-{i}")).collect();
    let records: Vec<Value> = real
        .iter()
        .map(|id| tenant(id, Some(&receiver.url())))
        .collect();
    let tenants = tenants_file(&dir, &records);
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    );
    let client = reqwest::Client::new();

    // 1,200 requests for IDs that do not exist, fresh and well formed but
    // signed with a secret no tenant has, eight at a time: far more than
    // the budget for unknown IDs (bursts of 20, then 10 per second).
    let flood = {
        let client = client.clone();
        let base = gateway.url.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for chunk in (0..1_200).collect::<Vec<_>>().chunks(8) {
                let mut sent = tokio::task::JoinSet::new();
                for i in chunk {
                    let id = format!("x{i:05}q");
                    let url = format!("{base}/v1/tenants/{id}/submissions");
                    let request = Submission::json(&id, "{}").request(&client, &url);
                    sent.spawn(async move { answer(request).await.0 });
                }
                statuses.extend(sent.join_all().await);
            }
            statuses
        })
    };
    // Meanwhile each real tenant sends its first submission: uncached.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut accepted = 0;
    for id in &real {
        let (status, body) =
            answer(Submission::json(id, "{}").request(&client, &gateway.submissions(id))).await;
        assert_eq!(status, 202, "{id}: {body}");
        accepted += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses = flood.await.unwrap();
    assert_eq!(accepted, 12);
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    // The flood did exhaust the budget (else this proves nothing).
    let logs = gateway.stderr();
    assert!(logs.contains("lookup_throttled"), "{logs}");
    wait_until("12 deliveries", || receiver.requests().len() >= 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_holding_a_backlog_does_not_delay_another_tenant() {
    // slowco's endpoint answers 2xx after 5 s: it never opens a breaker.
    let slow = HttpServer::start(|_, _| Reply::json(204, "").after(Duration::from_secs(5)));
    let fast = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let tenants = tenants_file(
        &dir,
        &[
            tenant("slowco", Some(&slow.url())),
            tenant("fastco", Some(&fast.url())),
        ],
    );
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
            "--shutdown-timeout",
            "0",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let batch = format!("[{}]", [r#"{"x":1}"#; 100].join(","));
    let (status, body) =
        answer(Submission::json("slowco", &batch).request(&client, &gateway.submissions("slowco")))
            .await;
    assert_eq!(status, 202, "{body}");
    // Alone, slowco may use every slot but a reserve: 24 of 32, no more.
    wait_until("slowco's deliveries to start", || {
        slow.requests().len() >= 24
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(slow.requests().len(), 24);

    let sent = std::time::Instant::now();
    let (status, body) = answer(
        Submission::json("fastco", r#"{"y":1}"#).request(&client, &gateway.submissions("fastco")),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    wait_until("fastco's delivery", || fast.requests().len() == 1);
    let took = sent.elapsed();
    // Before fair scheduling it waited behind slowco's backlog (10 s and
    // more); now it takes a free slot at once.
    assert!(
        took < Duration::from_secs(1),
        "fastco delivered after {took:?}"
    );
    // Once fastco's delivery has ended, only slowco's are in flight.
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 1).await;
    assert_eq!(health["bus"]["in_flight"], 24, "{health}");
    assert_eq!(health["bus"]["queue_depth"], 76, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_share_is_full_gets_503_and_the_others_do_not() {
    let down = HttpServer::start(|_, _| Reply::json(503, "{}"));
    let up = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let tenants = tenants_file(
        &dir,
        &[
            tenant("downco", Some(&down.url())),
            tenant("upco", Some(&up.url())),
        ],
    );
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
            "--queue-capacity",
            "100",
            "--tenant-queue-capacity",
            "30",
            "--shutdown-timeout",
            "0",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    // Ten different submissions per request: a request sent again would
    // be the same submission, answered again and not queued twice.
    let batch = |round: usize| {
        let items: Vec<String> = (0..10)
            .map(|i| format!(r#"{{"x":{round},"i":{i}}}"#))
            .collect();
        format!("[{}]", items.join(","))
    };
    let down_url = gateway.submissions("downco");
    for round in 0..3 {
        let (status, body) =
            answer(Submission::json("downco", &batch(round)).request(&client, &down_url)).await;
        assert_eq!(status, 202, "{body}");
    }
    // Its 30 events wait to be retried: its share is full...
    let (status, body) =
        answer(Submission::json("downco", r#"{"x":2}"#).request(&client, &down_url)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "bus_unavailable");
    // ...and only its share.
    let up_url = gateway.submissions("upco");
    for round in 1..=5 {
        let (status, body) =
            answer(Submission::json("upco", &batch(round)).request(&client, &up_url)).await;
        assert_eq!(status, 202, "{body}");
        wait_until("upco's deliveries", || up.requests().len() >= 10 * round);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_request_four_times_is_delivered_once() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway_for(&receiver, &[], &[]);
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let submission = Submission::json("acme", r#"{"email":"ada@example.com"}"#);

    // In sequence: the first answer, then the same answer marked replayed.
    let mut answers = Vec::new();
    for _ in 0..4 {
        let response = submission.request(&client, &url).send().await.unwrap();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        answers.push((status, replayed, ids(&body)));
    }
    assert_eq!((answers[0].0, answers[0].1), (202, false));
    for (status, replayed, submission_ids) in &answers[1..] {
        assert_eq!((*status, *replayed), (202, true));
        assert_eq!(submission_ids, &answers[0].2);
    }
    // Concurrently, another request four times: 202 with one answer, or
    // 409 while the first is in progress.
    let other = Submission::json("acme", r#"{"email":"grace@example.com"}"#);
    let mut sent = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = other.request(&client, &url);
        sent.spawn(async move { answer(request).await });
    }
    let results = sent.join_all().await;
    let accepted: Vec<Vec<String>> = results
        .iter()
        .filter(|(status, body)| {
            assert!(*status == 202 || *status == 409, "{status} {body}");
            *status == 202
        })
        .map(|(_, body)| ids(body))
        .collect();
    assert!(!accepted.is_empty());
    assert!(accepted.iter().all(|i| i == &accepted[0]));

    // One delivery each.
    wait_until("2 deliveries", || receiver.requests().len() >= 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    assert!(delivered.contains(&answers[0].2[0]));
    assert!(delivered.contains(&accepted[0][0]));
}

/// The second defect reported with replays: the same signed bytes sent
/// once more with another `Content-Type` (which is not signed) were read
/// as a form and accepted as another submission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_bytes_under_another_content_type_are_the_first_submission() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway_for(&receiver, &[], &[]);
    let client = reqwest::Client::new();
    let url = gateway.submissions("acme");
    let mut submission = Submission::json("acme", r#"{"email":"ada@example.com"}"#);
    let (status, first) = answer(submission.request(&client, &url)).await;
    assert_eq!(status, 202, "{first}");
    submission.content_type = "application/x-www-form-urlencoded".to_owned();
    let (status, again) = answer(submission.request(&client, &url)).await;
    assert_eq!((status, &again), (202, &first));
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 1).await;
    assert_eq!(health["bus"]["accepted"], 1);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_tenant_is_served_on_the_same_routes_as_the_others() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    // The record as the command line makes it, isolated, with a source.
    let (code, out, err) = run(
        &[
            "tenants",
            "new",
            "iso",
            "--isolated",
            "--destination",
            &receiver.url(),
            "--source",
            "jot=token",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("isolated"), "{err}");
    let iso: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(iso["isolation"], "per_tenant");
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("acme", Some(&receiver.url())), iso.clone()]);
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    );
    let said = gateway.wait_for_line("the isolated tenants", |l| l.contains("isolated"));
    assert!(
        said.contains("iso") && !said.contains("acme") && said.contains("same URLs"),
        "{said}"
    );
    let client = reqwest::Client::new();

    // Signed as on any API, to the usual route: accepted, and delivered.
    let mut signed = Submission::json("iso", r#"{"email":"ada@example.com"}"#);
    signed.secret = iso["signing_secrets"][0].as_str().unwrap().to_owned();
    let (status, body) = answer(signed.request(&client, &gateway.submissions("iso"))).await;
    assert_eq!(status, 202, "{body}");
    let submission = ids(&body)[0].clone();
    // Its source too.
    let token = iso["sources"]["jot"]["secrets"][0].as_str().unwrap();
    let (status, body) = answer(
        client
            .post(format!(
                "{}/v1/tenants/iso/sources/jot?token={token}",
                gateway.url
            ))
            .header("content-type", "application/json")
            .body(r#"{"submissionID":"s-1","q1":"yes"}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // A wrong secret is still refused, and the shared tenant is served.
    signed.secret = SIGNING_SECRET.to_owned();
    let (status, _) = answer(signed.request(&client, &gateway.submissions("iso"))).await;
    assert_eq!(status, 403);
    let (status, body) = answer(
        Submission::json("acme", r#"{"a":1}"#).request(&client, &gateway.submissions("acme")),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    wait_until("3 deliveries", || receiver.requests().len() >= 3);
    let whsec = iso["destination"]["secret"].as_str().unwrap();
    let delivered: Vec<Value> = receiver
        .requests()
        .iter()
        .filter(|r| r.webhook_verifies(whsec))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(delivered.len(), 2, "iso's two, signed with its secret");
    assert!(
        delivered
            .iter()
            .any(|d| d["data"]["submission_id"] == submission.as_str()
                && d["data"]["tenant_id"] == "iso")
    );
    assert!(
        delivered
            .iter()
            .any(|d| d["data"]["source"]["id"] == "jot" && d["data"]["payload"]["q1"] == "yes")
    );
}

// ---- Hostile operators and clients: dead letters, connections, timeouts.

/// A `formbridge serve` started here rather than by the harness: under
/// `ulimit -n NOFILE` when given, waited for until its operations listener
/// is up.
fn serve_limited(nofile: Option<u32>, args: &[&str]) -> Gateway {
    let port = testkit::free_port();
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{limit}exec \"$0\" serve \"$@\""))
        .arg(crate::harness::BINARY)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("LOG_LEVEL", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let served = Gateway::spawn(&mut command, port);
    served.operations_url();
    served
}

/// A gateway's peak memory so far.
fn peak_rss_mib(gateway: &Gateway) -> u64 {
    testkit::cold_start::peak_rss_kib(gateway.pid()).unwrap() / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("nowhere", None)]);
    let file = dir.join("dead.jsonl");
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--dead-letters",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let (status, _) = answer(
        Submission::json("nowhere", r#"{"card":"4111"}"#)
            .request(&client, &gateway.submissions("nowhere")),
    )
    .await;
    assert_eq!(status, 202);
    wait_until("the dead letter", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("4111"))
    });
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the dead-letter file holds payloads: {mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_as_summaries_in_bounded_memory() {
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("nowhere", None)]);
    let served = serve_limited(None, &["--tenants", tenants.to_str().unwrap()]);
    let client = reqwest::Client::new();
    let url = format!("{}/v1/tenants/nowhere/submissions", served.url);
    // 100 dead letters of 256 KiB each (just under MAX_BODY_BYTES).
    let pad = "x".repeat(262_000);
    for i in 0..100 {
        let body = format!(r#"{{"i":{i},"pad":"{pad}"}}"#);
        let (status, answer_body) =
            answer(Submission::json("nowhere", &body).request(&client, &url)).await;
        assert_eq!(status, 202, "{answer_body}");
    }
    let listing = format!("{}/v1/dead-letters", served.operations_url());
    get_json_when(&client, &listing, |l| l["total"] == 100).await;
    let before = peak_rss_mib(&served);
    // Eight listings at once, five times over.
    let mut sizes = Vec::new();
    for _ in 0..5 {
        let lists = (0..8).map(|_| {
            let (client, listing) = (client.clone(), listing.clone());
            tokio::spawn(async move {
                let response = client.get(&listing).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap().len()
            })
        });
        for list in lists.collect::<Vec<_>>() {
            sizes.push(list.await.unwrap());
        }
    }
    let after = peak_rss_mib(&served);
    eprintln!("peak RSS {before} MiB before the listings, {after} MiB after");
    assert!(
        after < before + 32,
        "peak RSS {before} MiB before the listings, {after} MiB after"
    );
    assert!(
        sizes.iter().all(|s| *s < 1 << 20),
        "listings of {sizes:?} bytes"
    );
    // Pages of summaries: IDs, tenant, reason, time and size, no payload.
    let listed = get_json(&client, &format!("{listing}?limit=40")).await;
    let page = listed["dead_letters"].as_array().unwrap();
    assert_eq!((page.len(), listed["next"].as_u64()), (40, Some(40)));
    let first = &page[0];
    assert_eq!(first["tenant_id"], "nowhere");
    assert_eq!(first["reason"], "no_destination");
    assert!(first["size"].as_u64().unwrap() > 262_000, "{first}");
    assert!(first["dead_lettered_at"].is_string(), "{first}");
    assert!(first.get("event").is_none(), "no payload in a listing");
    let last = get_json(&client, &format!("{listing}?after=80&limit=40")).await;
    assert_eq!(last["dead_letters"].as_array().unwrap().len(), 20);
    assert_eq!(last["next"], Value::Null);
    // One dead letter whole, by its ID, when asked for.
    let id = first["submission_id"].as_str().unwrap();
    let whole = get_json(&client, &format!("{listing}/{id}")).await;
    assert_eq!(whole["event"]["detail"]["payload"]["pad"], pad);
    let unknown = client.get(format!("{listing}/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let too_many = client
        .get(format!("{listing}?limit=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), 400);
    // Nothing of it where senders post.
    let public = client
        .get(format!("{}/v1/dead-letters", served.url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let health = get_json(&client, &format!("{}/healthz", served.url)).await;
    assert_eq!(health, json!({"status": "ok"}));
}

/// A request's headers, signed for `body`, as raw HTTP/1.1.
fn raw_signed_head(host: &str, tenant: &str, body: &[u8]) -> String {
    let signed = shared::signature::sign_request(
        &shared::Secret::new(SIGNING_SECRET.to_owned()),
        &shared::tenant_id::TenantId::parse(tenant).unwrap(),
        body,
        shared::signature::unix_now(),
    );
    format!(
        "POST /v1/tenants/{tenant}/submissions HTTP/1.1\r\nhost: {host}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\
         content-digest: {}\r\nx-formbridge-timestamp: {}\r\n\
         x-formbridge-signature: {}\r\n\r\n",
        body.len(),
        signed.content_digest,
        signed.timestamp,
        signed.signature
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_answered_408_within_the_body_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway_for(&receiver, &["--body-read-timeout", "1"], &[]);
    let host = gateway.url.trim_start_matches("http://").to_owned();
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(998));
    assert_eq!(body.len(), 1_008);
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(raw_signed_head(&host, "acme", body.as_bytes()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    // Generous: the answer is due after the configured second.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the connection is still held after 20 s");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"body_timeout""#), "{text}");
    assert!(receiver.requests().is_empty());
    // The gateway still takes the whole request.
    let client = reqwest::Client::new();
    let (status, _) =
        answer(Submission::json("acme", &body).request(&client, &gateway.submissions("acme")))
            .await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_open_files_limit_do_not_starve_the_health_check() {
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("nowhere", None)]);
    let served = serve_limited(
        Some(128),
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--header-read-timeout",
            "2",
        ],
    );
    let host = served.url.trim_start_matches("http://").to_owned();
    // 150 connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(tokio::net::TcpStream::connect(&host).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = client
        .get(format!("{}/healthz", served.operations_url()))
        .send()
        .await;
    let health = health.expect("/healthz answers while 150 connections idle");
    assert_eq!(health.status(), 200);
    let health: Value = serde_json::from_str(&health.text().await.unwrap()).unwrap();
    let (open, limit) = (
        health["connections"]["gateway"]["open"].as_u64().unwrap(),
        health["connections"]["gateway"]["limit"].as_u64().unwrap(),
    );
    assert!(limit < 128 && open <= limit, "{health}");
    let out = served.stdout().join("\n");
    assert!(
        out.contains(&format!("at most {limit} connections")),
        "{out}"
    );
    // The idle ones are closed after the header timeout; a sender that
    // waited in the queue is then served.
    let (status, body) = answer(Submission::json("nowhere", "{}").request(
        &client,
        &format!("{}/v1/tenants/nowhere/submissions", served.url),
    ))
    .await;
    assert_eq!(status, 202, "{body}");
    let storms = served.stderr().matches("Too many open files").count();
    assert_eq!(storms, 0, "{}", served.stderr());
    drop(idle);
}
