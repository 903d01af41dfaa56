//! `sign`, `send`, `receive`, `tenants new` and the command line's errors.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use shared::source::{Provider, SourceKeys};
use shared::store::MemoryTenantStore;
use shared::tenant::WebhookSecret;
use testkit::{HttpServer, RecordedRequest, Reply, TenantRecordBuilder, VECTOR};

use crate::harness::{
    BINARY, Gateway, SIGNING_SECRET, WEBHOOK_SECRET, get_json, get_json_when, run, scratch_dir,
    sigterm, tenant, tenants_file, wait_until,
};

#[test]
fn sign_prints_the_published_test_vector() {
    let dir = scratch_dir();
    let file = dir.join("vector.json");
    std::fs::write(&file, VECTOR.body).unwrap();
    let timestamp = VECTOR.timestamp.to_string();
    let expected = format!(
        "Content-Digest: {}\nX-FormBridge-Timestamp: {timestamp}\nX-FormBridge-Signature: {}\n",
        VECTOR.content_digest, VECTOR.signature
    );
    let from_file = run(
        &[
            "sign",
            "--tenant",
            VECTOR.tenant,
            "--secret",
            VECTOR.secret,
            "--timestamp",
            &timestamp,
            file.to_str().unwrap(),
        ],
        b"",
        &[],
    );
    assert_eq!(from_file, (0, expected.clone(), String::new()));
    // From standard input, with the secret from the environment.
    let from_stdin = run(
        &[
            "sign",
            "--tenant",
            VECTOR.tenant,
            "--timestamp",
            &timestamp,
            "-",
        ],
        VECTOR.body,
        &[("FORMBRIDGE_SECRET", VECTOR.secret)],
    );
    assert_eq!(from_stdin, (0, expected, String::new()));
}

#[test]
fn sign_and_send_errors_say_what_to_do() {
    let (code, _, err) = run(
        &["sign", "--tenant", "Acme!", "--secret", SIGNING_SECRET, "-"],
        b"{}",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--tenant"), "{err}");
    let (code, _, err) = run(
        &[
            "sign",
            "--tenant",
            "acme",
            "--secret",
            SIGNING_SECRET,
            "/nonexistent/body.json",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read the body from /nonexistent/body.json"),
        "{err}"
    );
    let (code, _, err) = run(&["sign", "--tenant", "acme", "-"], b"{}", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--secret"), "{err}");
    let (code, _, err) = run(
        &[
            "send",
            "--url",
            "localhost:3000",
            "--tenant",
            "acme",
            "--secret",
            "x",
            "-",
        ],
        b"{}",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--url must be an http:// or https:// URL"),
        "{err}"
    );
    let port = testkit::free_port();
    let (code, _, err) = run(
        &[
            "send",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--tenant",
            "acme",
            "--secret",
            "x",
            "-",
        ],
        b"{}",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.contains("is the gateway running?"), "{err}");
    assert!(!err.contains("x-formbridge"), "{err}");
}

#[test]
fn send_never_echoes_the_urls_user_info_or_query() {
    let dir = scratch_dir();
    let body = dir.join("body.json");
    std::fs::write(&body, "{}").unwrap();
    let shown_without_secrets = |url: &str, extra: &[&str], expected: &str| {
        let mut args = vec![
            "send",
            "--url",
            url,
            "--tenant",
            "acme",
            "--secret",
            SIGNING_SECRET,
        ];
        args.extend_from_slice(extra);
        args.push(body.to_str().unwrap());
        let (code, out, err) = run(&args, b"", &[]);
        assert_eq!((code, out.as_str()), (2, ""), "{err}");
        assert!(err.contains(&format!("cannot reach {expected}")), "{err}");
        for secret in ["user:", "PASS", "token=", "Q1uery", "frag"] {
            assert!(!err.contains(secret), "{secret} in: {err}");
        }
    };
    // Nothing listens there.
    let port = testkit::free_port();
    shown_without_secrets(
        &format!("http://user:PASS@127.0.0.1:{port}/?token=Q1uery"),
        &[],
        &format!("http://127.0.0.1:{port}/v1/tenants/acme/submissions: nothing accepts"),
    );
    // The connection is accepted, then closed before an answer: reqwest's
    // own error, which would name the URL.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    shown_without_secrets(
        &format!("http://user:PASS@127.0.0.1:{port}/stage?token=Q1uery#frag"),
        &[],
        &format!("http://127.0.0.1:{port}/stage/v1/tenants/acme/submissions: "),
    );
    // A source's URL (a query is refused there, user info is not).
    shown_without_secrets(
        &format!("http://user:PASS@127.0.0.1:{port}"),
        &["--provider", "github", "--source", "gh"],
        &format!("http://127.0.0.1:{port}/v1/tenants/acme/sources/gh: "),
    );
}

#[test]
fn send_prints_the_status_and_ids_and_fails_on_refusal() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[tenant("acme", Some(&receiver.url()))]);
    let gateway = Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    );
    let send = |secret: &str, body: &[u8]| {
        run(
            &[
                "send",
                "--url",
                &gateway.url,
                "--tenant",
                "acme",
                "--secret",
                secret,
                "-",
            ],
            body,
            &[],
        )
    };
    let (code, out, _) = send(SIGNING_SECRET, br#"[{"a":1},{"b":2}]"#);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "202 Accepted");
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1] < lines[2],
        "IDs in request order sort by time: {out}"
    );
    let (code, out, err) = send("fb_wrong_secret_but_long_enough_000000000", b"{}");
    assert_eq!((code, out.as_str()), (1, "403 Forbidden\n"));
    assert!(err.contains("hint: refused by the authorizer"), "{err}");
    let (code, out, err) = send(SIGNING_SECRET, b"not json");
    assert_eq!((code, out.as_str()), (1, "400 Bad Request\n"));
    assert!(err.contains("refused: malformed_json:"), "{err}");
    // An Idempotency-Key makes a send again (signed again) the same
    // submission: the first answer, said to be replayed.
    let keyed = |body: &[u8]| {
        run(
            &[
                "send",
                "--url",
                &gateway.url,
                "--tenant",
                "acme",
                "--secret",
                SIGNING_SECRET,
                "--idempotency-key",
                "order-1842",
                "-",
            ],
            body,
            &[],
        )
    };
    let (code, first, err) = keyed(br#"{"order":1842}"#);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("accepted before"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(1_100)); // a new timestamp
    let (code, again, err) = keyed(br#"{"order":1842}"#);
    assert_eq!((code, &again), (0, &first));
    assert!(
        err.contains("accepted before: this is the first answer again"),
        "{err}"
    );
    let (code, out, err) = keyed(br#"{"order":1843}"#);
    assert_eq!((code, out.as_str()), (1, "422 Unprocessable Entity\n"));
    assert!(err.contains("refused: idempotency_key_reused:"), "{err}");
}

#[test]
fn tenant_new_prints_a_record_the_gateway_loads() {
    let (code, out, err) = run(
        &[
            "tenant",
            "new",
            "acme",
            "--destination",
            "https://hooks.acme.example/forms",
            "--rate-limit",
            "100",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["tenant_id"], "acme");
    assert_eq!(record["status"], "active");
    assert!(record["signing_secrets"][0].as_str().unwrap().len() >= 32);
    assert!(
        record["destination"]["secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(record["rate_limit"]["requests_per_second"], 100);
    MemoryTenantStore::from_json(&format!("[{out}]")).unwrap();
    // As printed, it is a tenants file by itself.
    let dir = scratch_dir();
    let file = dir.join("acme.json");
    std::fs::write(&file, &out).unwrap();
    let mut gateway = Gateway::start(&["--tenants", file.to_str().unwrap()], &[]);
    gateway.wait_for_line("the tenant list", |l| l.contains("1 tenant: acme"));
    assert!(gateway.terminate().success());
    let (_, again, _) = run(&["tenant", "new", "acme"], b"", &[]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_ne!(again["signing_secrets"][0], record["signing_secrets"][0]);
    assert!(again.get("destination").is_none());

    let (code, _, err) = run(&["tenant", "new", "-bad-"], b"", &[]);
    assert_eq!(code, 2);
    assert!(err.contains("tenant"), "{err}");
    let (code, _, err) = run(
        &[
            "tenant",
            "new",
            "acme",
            "--destination",
            "hooks.acme.example",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("destination"), "{err}");
    assert!(!err.contains("fb_"), "no secret in errors: {err}");
}

#[test]
fn tenant_new_adds_sources_with_generated_secrets() {
    let (code, out, err) = run(
        &[
            "tenants",
            "new",
            "acme",
            "--source",
            "typeform-main=typeform",
            "--source",
            "jotform=token",
            "--source",
            "stripe=stripe",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sources = &record["sources"];
    let mut seen = Vec::new();
    for (id, provider) in [
        ("typeform-main", "typeform"),
        ("jotform", "token"),
        ("stripe", "stripe"),
    ] {
        assert_eq!(sources[id]["provider"], provider, "{out}");
        let secret = sources[id]["secrets"][0].as_str().unwrap();
        assert!(secret.len() >= 32, "{out}");
        assert!(!err.contains(secret), "a secret on stderr: {err}");
        seen.push(secret.to_owned());
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "each source its own secret");
    // The gateway reads it as it is, sources included.
    MemoryTenantStore::from_json(&format!("[{out}]")).unwrap();
    let record = shared::TenantRecord::from_json(&out).unwrap();
    assert_eq!(record.sources.len(), 3);
    assert!(
        err.contains(
            "source jotform (token) posts to /v1/tenants/acme/sources/jotform?token=<its secret>"
        ),
        "{err}"
    );
    assert!(
        err.contains("source stripe (stripe)") && err.contains("put the one the provider issues"),
        "{err}"
    );

    for (spec, want) in [
        ("typeform-main", "SOURCE=PROVIDER"),
        ("tf=typo", "unknown provider; expected one of typeform"),
        ("Bad_ID=token", "source ID"),
    ] {
        let (code, _, err) = run(&["tenants", "new", "acme", "--source", spec], b"", &[]);
        assert_eq!(code, 2, "{spec}");
        assert!(err.contains(want), "{spec}: {err}");
    }
    let (code, out, err) = run(
        &[
            "tenants", "new", "acme", "--source", "a=github", "--source", "a=token",
        ],
        b"",
        &[],
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("--source a is given twice"), "{err}");
}

/// Verifies a recorded request as a source of `provider` with `secret`
/// (the verifier the gateway and ingest use), at `now`.
fn verify_as(
    recorded: &RecordedRequest,
    server: &HttpServer,
    provider: &str,
    secret: &str,
) -> Result<Option<String>, shared::source::SourceError> {
    let keys = SourceKeys::new(
        Provider::parse(provider).unwrap(),
        &[shared::Secret::new(secret)],
    )
    .unwrap();
    let url = format!("{}{}", server.url(), recorded.path);
    let query = recorded.path.split_once('?').map_or("", |(_, q)| q);
    let lookup = |name: &str| recorded.header(name);
    let request = shared::source::Request {
        method: &recorded.method,
        url: &url,
        query,
        headers: &lookup,
        body: &recorded.body,
    };
    keys.verify(&request, shared::signature::unix_now())
        .map(|verified| verified.delivery_id().map(str::to_owned))
}

#[test]
fn send_with_a_provider_signs_as_the_provider_and_posts_to_the_source() {
    let server = HttpServer::start(|_, _| Reply::json(202, r#"{"submission_ids":["sub_1"]}"#));
    let dir = scratch_dir();
    let body = dir.join("body.json");
    std::fs::write(
        &body,
        r#"{"event_id":"01J","form_response":{"answers":[]}}"#,
    )
    .unwrap();
    let secret_file = dir.join("secret.txt");
    let server_url = server.url();
    let send = |provider: &str, source: &str, secret: &str, extra: &[&str]| {
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let mut args = vec![
            "send",
            "--url",
            &server_url,
            "--tenant",
            "acme",
            "--provider",
            provider,
            "--source",
            source,
            "--secret-file",
            secret_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(body.to_str().unwrap());
        run(&args, b"", &[])
    };

    // Typeform: Typeform-Signature over the body, no delivery ID.
    let typeform = "typeform-secret-chosen-by-the-receiver";
    let (code, out, err) = send("typeform", "typeform-main", typeform, &[]);
    assert_eq!((code, out.as_str()), (0, "202 Accepted\nsub_1\n"), "{err}");
    assert!(!err.contains("delivery ID"), "{err}");
    let request = server.requests().pop().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/tenants/acme/sources/typeform-main");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("typeform-signature")
            .unwrap()
            .starts_with("sha256=")
    );
    assert_eq!(request.body, std::fs::read(&body).unwrap());
    assert_eq!(verify_as(&request, &server, "typeform", typeform), Ok(None));
    assert!(verify_as(&request, &server, "typeform", "another-secret").is_err());

    // GitHub: a fresh delivery ID each time, said on stderr; --delivery-id
    // repeats one.
    let github = "github-secret-chosen-by-the-receiver";
    let (code, _, err) = send("github", "gh", github, &[]);
    assert_eq!(code, 0, "{err}");
    let first = server.requests().pop().unwrap();
    let id = verify_as(&first, &server, "github", github)
        .unwrap()
        .unwrap();
    assert!(
        err.contains(&format!("delivery ID {id} (--delivery-id {id} sends")),
        "{err}"
    );
    send("github", "gh", github, &[]);
    let second = server.requests().pop().unwrap();
    assert_ne!(second.header("x-github-delivery"), Some(id.as_str()));
    let (code, _, err) = send("github", "gh", github, &["--delivery-id", &id]);
    assert_eq!(code, 0, "{err}");
    let again = server.requests().pop().unwrap();
    assert_eq!(
        verify_as(&again, &server, "github", github),
        Ok(Some(id.clone()))
    );

    // Stripe (a timestamp in the signature), the secret from the
    // environment as for a signing secret.
    let stripe = "whsec_stripe_issued_secret_value_0001";
    let (code, _, err) = run(
        &[
            "send",
            "--url",
            &server.url(),
            "--tenant",
            "acme",
            "--provider",
            "stripe",
            "--source",
            "stripe",
            body.to_str().unwrap(),
        ],
        b"",
        &[("FORMBRIDGE_SECRET", stripe)],
    );
    assert_eq!(code, 0, "{err}");
    let request = server.requests().pop().unwrap();
    assert!(
        request
            .header("stripe-signature")
            .unwrap()
            .starts_with("t=")
    );
    assert_eq!(verify_as(&request, &server, "stripe", stripe), Ok(None));

    // HubSpot signs the URL too; Standard Webhooks the delivery ID.
    let (code, _, err) = send("hubspot", "hs", "hubspot-client-secret", &[]);
    assert_eq!(code, 0, "{err}");
    let request = server.requests().pop().unwrap();
    assert!(verify_as(&request, &server, "hubspot", "hubspot-client-secret").is_ok());
    let svix = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (code, _, err) = send(
        "standard-webhooks",
        "svix",
        svix,
        &["--delivery-id", "msg_1"],
    );
    assert_eq!(code, 0, "{err}");
    let request = server.requests().pop().unwrap();
    assert_eq!(
        verify_as(&request, &server, "standard-webhooks", svix),
        Ok(Some("msg_1".to_owned()))
    );

    // A token source: the secret in the `token` query parameter only.
    let token = "tok_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";
    let (code, _, err) = send("token", "jotform", token, &[]);
    assert_eq!(code, 0, "{err}");
    let request = server.requests().pop().unwrap();
    assert_eq!(
        request.path,
        format!("/v1/tenants/acme/sources/jotform?token={token}")
    );
    assert_eq!(verify_as(&request, &server, "token", token), Ok(None));
    assert!(!err.contains(token), "{err}");
}

#[test]
fn send_with_a_provider_never_echoes_the_secret_or_the_token() {
    let dir = scratch_dir();
    let body = dir.join("body.json");
    std::fs::write(&body, "{}").unwrap();
    let token = "tok_never_printed_4f6d2a9c1e8b7d3f5a0c2e";
    // Nothing listens: the error names the URL without its query.
    let port = testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let base = ["send", "--url", &url, "--tenant", "acme"];
    let with = |extra: &[&str], stdin: &[u8]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&args, stdin, &[])
    };
    let (code, out, err) = with(
        &[
            "--provider",
            "token",
            "--source",
            "jf",
            "--secret-stdin",
            body.to_str().unwrap(),
        ],
        token.as_bytes(),
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains(&format!("cannot reach {url}/v1/tenants/acme/sources/jf:")),
        "{err}"
    );
    assert!(
        !err.contains("never_printed") && !err.contains("token="),
        "{err}"
    );
    // A token too short for the provider: the rule, not the value.
    let (code, _, err) = with(
        &[
            "--provider",
            "token",
            "--source",
            "jf",
            "--secret-stdin",
            body.to_str().unwrap(),
        ],
        b"short-never-printed",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--provider token: secret 0 of a token source"),
        "{err}"
    );
    assert!(!err.contains("never-printed"), "{err}");
    // A URL with a query is refused without quoting it.
    let (code, _, err) = run(
        &[
            "send",
            "--url",
            &format!("{url}/v1/tenants/acme/sources/jf?token={token}"),
            "--tenant",
            "acme",
            "--provider",
            "token",
            "--source",
            "jf",
            "--secret",
            token,
            body.to_str().unwrap(),
        ],
        b"",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("without a query") && !err.contains("never_printed"),
        "{err}"
    );
    // The body and the secret cannot both be standard input; --provider
    // and --source go together; --delivery-id needs --provider.
    let (code, _, err) = with(
        &[
            "--provider",
            "github",
            "--source",
            "gh",
            "--secret-stdin",
            "-",
        ],
        b"{}",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot both come from standard input"),
        "{err}"
    );
    let (code, _, err) = with(&["--provider", "github", "--secret", "s", "-"], b"{}");
    assert_eq!(code, 2);
    assert!(err.contains("--source"), "{err}");
    let (code, _, err) = with(&["--source", "gh", "--secret", "s", "-"], b"{}");
    assert_eq!(code, 2);
    assert!(err.contains("--provider"), "{err}");
    let (code, _, err) = with(
        &["--provider", "typo", "--source", "gh", "--secret", "s", "-"],
        b"{}",
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown provider; expected one of"), "{err}");
    // No secret at all: where to put one.
    let (code, _, err) = with(&["-"], b"{}");
    assert_eq!(code, 2);
    assert!(
        err.contains("a secret is needed: --secret-file FILE"),
        "{err}"
    );
}

#[test]
fn a_record_from_tenants_new_with_sources_takes_send_with_a_provider_through_serve() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let (code, out, err) = run(
        &[
            "tenants",
            "new",
            "acme",
            "--destination",
            &receiver.url(),
            "--source",
            "typeform-main=typeform",
            "--source",
            "jotform=token",
            "--source",
            "gh=github",
        ],
        b"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dir = scratch_dir();
    let file = dir.join("acme.json");
    std::fs::write(&file, &out).unwrap();
    let gateway = Gateway::start(
        &[
            "--tenants",
            file.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    );
    let body = dir.join("body.json");
    std::fs::write(
        &body,
        r#"{"event_id":"01HWQ3A1B2C3","form_response":{"answers":[]}}"#,
    )
    .unwrap();
    let secret_file = dir.join("secret.txt");
    let send = |source: &str, provider: &str, extra: &[&str]| {
        let secret = record["sources"][source]["secrets"][0].as_str().unwrap();
        std::fs::write(&secret_file, secret).unwrap();
        let mut args = vec![
            "send",
            "--url",
            &gateway.url,
            "--tenant",
            "acme",
            "--provider",
            provider,
            "--source",
            source,
            "--secret-file",
            secret_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(body.to_str().unwrap());
        run(&args, b"", &[])
    };
    let mut accepted = Vec::new();
    for (source, provider) in [
        ("typeform-main", "typeform"),
        ("jotform", "token"),
        ("gh", "github"),
    ] {
        let (code, out, err) = send(source, provider, &[]);
        assert_eq!(code, 0, "{provider}: {out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!((lines.len(), lines[0]), (2, "202 Accepted"), "{out}");
        accepted.push((source, provider, lines[1].to_owned(), err));
    }
    // GitHub's delivery sent again with its delivery ID: the first answer.
    let (_, _, id, err) = &accepted[2];
    let delivery = err
        .split("delivery ID ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{err}"));
    let (code, again, err) = send("gh", "github", &["--delivery-id", delivery]);
    assert_eq!(
        (code, again.as_str()),
        (0, format!("202 Accepted\n{id}\n").as_str())
    );
    assert!(err.contains("accepted before"), "{err}");

    wait_until("three deliveries", || receiver.requests().len() >= 3);
    for (source, provider, id, _) in &accepted {
        let delivery = receiver
            .requests()
            .into_iter()
            .find(|d| d.header("webhook-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{provider}: {id} not delivered"));
        let event: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(event["data"]["source"]["id"], *source);
        assert_eq!(event["data"]["source"]["provider"], *provider);
    }
    let token = record["sources"]["jotform"]["secrets"][0].as_str().unwrap();
    let logs = gateway.stderr() + &gateway.stdout().join("\n");
    assert!(!logs.contains(token), "the token in the gateway's output");
    assert_eq!(receiver.requests().len(), 3, "the replay was not delivered");
}

#[test]
fn every_command_has_help_with_examples_and_stack_options_only_on_a_stack() {
    // (command, whether it works on a deployed stack)
    for (args, on_a_stack) in [
        (&["--help"][..], false),
        (&["serve", "--help"], false),
        (&["sign", "--help"], false),
        (&["send", "--help"], false),
        (&["receive", "--help"], false),
        (&["tenant", "new", "--help"], false),
        (&["tenants", "--help"], false),
        (&["tenants", "new", "--help"], false),
        (&["tenants", "create", "--help"], true),
        (&["tenants", "rotate", "--help"], true),
        (&["tenants", "delete", "--help"], true),
        (&["tenants", "source", "add", "--help"], true),
        (&["tenants", "source", "rotate", "--help"], true),
        (&["tenants", "source", "remove", "--help"], true),
        (&["dlq", "--help"], false),
        (&["dlq", "redrive", "--help"], true),
    ] {
        // The gateway-only build has no commands on a stack.
        let stack_command = args.contains(&"dlq") || on_a_stack;
        if stack_command && !cfg!(feature = "aws") {
            let (code, _, _) = run(args, b"", &[]);
            assert_eq!(code, 2, "{args:?} exists without the aws feature");
            continue;
        }
        let (code, out, _) = run(args, b"", &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Examples:"), "{args:?}: {out}");
        let lists_stack_options = out.contains("--stack <NAME>");
        assert_eq!(lists_stack_options, on_a_stack, "{args:?}: {out}");
    }
}

#[test]
fn serve_refuses_bad_tenants_files_and_busy_ports() {
    let dir = scratch_dir();
    let run_serve = |args: &[&str], listen: &str| {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        run(&full, b"", &[("FORMBRIDGE_LISTEN", listen)])
    };
    let free = format!("127.0.0.1:{}", testkit::free_port());
    let (code, _, err) = run_serve(&["--tenants", "/nonexistent/tenants.json"], &free);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read tenants file /nonexistent/tenants.json"),
        "{err}"
    );
    let bad = dir.join("bad.json");
    let short_secret = TenantRecordBuilder::new("acme").secret("s3cr3t-value");
    std::fs::write(&bad, format!("[{}]", short_secret.json())).unwrap();
    let (code, _, err) = run_serve(&["--tenants", bad.to_str().unwrap()], &free);
    assert_eq!(code, 2);
    assert!(
        err.contains("record 0") && err.contains("signing_secrets"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-value"), "no secret in errors: {err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let (code, _, err) = run_serve(&[], &busy);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("cannot listen on {busy}")), "{err}");
    let (code, _, err) = run(
        &["serve"],
        b"",
        &[("FORMBRIDGE_LISTEN", &free), ("DELIVERY_ATTEMPTS", "lots")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("DELIVERY_ATTEMPTS"), "{err}");
}

/// A delivery to `receiver` as the connector sends it: a `form.submission`
/// for `tenant` received at `received_at`, signed with [`WEBHOOK_SECRET`].
fn delivery(
    client: &reqwest::Client,
    receiver: &str,
    id: &str,
    tenant: &str,
    received_at: SystemTime,
) -> reqwest::RequestBuilder {
    let body = json!({
        "type": "form.submission",
        "timestamp": shared::event::received_at(received_at),
        "data": {"tenant_id": tenant, "submission_id": id, "payload": {"a": 1}},
    })
    .to_string();
    let now = shared::signature::unix_now();
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    client
        .post(receiver)
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            shared::webhook::sign(&secret, id, now, body.as_bytes()),
        )
        .body(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_answers_late_side_by_side_and_reports_each_tenants_lag() {
    let port = testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let receiver = Command::new(BINARY)
        .args(["receive", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--quiet", "--delay-ms", "1000"])
        .env("FORMBRIDGE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the receiver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let client = reqwest::Client::new();
    // acme's submissions were received 3 s before they are delivered;
    // beta's carry a timestamp from another clock, an hour ahead.
    let three_seconds_ago = SystemTime::now() - Duration::from_secs(3);
    let an_hour_ahead = SystemTime::now() + Duration::from_secs(3600);
    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..20 {
        let (tenant, at) = if i < 18 {
            ("acme", three_seconds_ago)
        } else {
            ("beta", an_hour_ahead)
        };
        let request = delivery(&client, &url, &format!("msg_{i}"), tenant, at);
        sent.push(tokio::spawn(request.send()));
    }
    for answer in sent {
        assert_eq!(answer.await.unwrap().unwrap().status(), 204);
    }
    // Each was answered a second after it arrived; one after the other
    // would have taken 20 s.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "not side by side: {elapsed:?}"
    );
    // A duplicate, and a verified body that is not a submission event.
    let again = delivery(&client, &url, "msg_0", "acme", three_seconds_ago);
    assert_eq!(again.send().await.unwrap().status(), 204);
    let secret = WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    let now = shared::signature::unix_now();
    let other = client
        .post(&url)
        .header("webhook-id", "msg_other")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            shared::webhook::sign(&secret, "msg_other", now, b"{}"),
        )
        .body("{}");
    assert_eq!(other.send().await.unwrap().status(), 204);

    let counts = get_json(&client, &format!("{url}/stats")).await;
    assert_eq!(
        counts,
        json!({"verified": 22, "unique": 21, "duplicates": 1, "refused": 0})
    );
    let tenants = get_json(&client, &format!("{url}/stats/tenants")).await;
    let acme = &tenants["acme"];
    assert_eq!(acme["delivered"], 18, "{tenants}");
    assert_eq!(acme["duplicates"], 1, "{tenants}");
    let lag = |q: &str| acme["lag_ms"][q].as_u64().unwrap();
    assert!(lag("p50") >= 3_000, "{tenants}");
    assert!(lag("max") < 60_000, "{tenants}");
    assert!(
        lag("p50") <= lag("p99") && lag("p99") <= lag("max"),
        "{tenants}"
    );
    assert_eq!(
        tenants["beta"],
        json!({"delivered": 2, "duplicates": 0, "lag_ms": {"p50": 0, "p99": 0, "max": 0}})
    );
    assert_eq!(tenants.as_object().unwrap().len(), 2, "{tenants}");

    // Stopped while a delivery waits out the delay, it still answers it.
    let waiting = tokio::spawn(delivery(&client, &url, "msg_last", "beta", an_hour_ahead).send());
    get_json_when(&client, &format!("{url}/stats"), |c| c["verified"] == 23).await;
    sigterm(receiver.id());
    assert_eq!(waiting.await.unwrap().unwrap().status(), 204);
    let out = receiver.wait_with_output().unwrap();
    assert!(out.status.success());
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.contains("receiver: stopped. verified 23 · unique 22 · duplicates 1 · refused 0"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "receiver: tenant acme: delivered 18 · duplicates 1 · lag ms p50 {} · p99 {} · max {}",
            lag("p50"),
            lag("p99"),
            lag("max")
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "receiver: tenant beta: delivered 3 · duplicates 0 · lag ms p50 0 · p99 0 · max 0"
        ),
        "{out}"
    );
}

#[test]
fn receive_refuses_a_delay_that_is_not_a_number_of_milliseconds() {
    for bad in ["soon", "-1", "600001"] {
        let (code, _, err) = run(
            &["receive", &format!("--delay-ms={bad}")],
            b"",
            &[("FORMBRIDGE_WEBHOOK_SECRET", WEBHOOK_SECRET)],
        );
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains("--delay-ms"), "{bad}: {err}");
        assert!(!err.contains(WEBHOOK_SECRET), "no secret in errors: {err}");
    }
}
