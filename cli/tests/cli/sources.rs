//! Sources through `formbridge serve`: every provider's real-shaped
//! request, signed as the provider signs it, is accepted once and delivered
//! with its `source`; everything else is refused with nothing published.

use serde_json::Value;
use shared::secret::Secret;
use shared::signature::unix_now;
use shared::source::{PROVIDERS, Provider, SignRequest, SourceKeys};
use testkit::{HttpServer, Reply};

use crate::harness::{
    Gateway, WEBHOOK_SECRET, answer, health_when, ids, record, scratch_dir, tenants_file,
    wait_until,
};

/// A provider's source in the test tenant: its ID (the provider's name),
/// a secret the provider could have issued, a real-shaped body and the
/// event ID the delivery must carry (`None`: the provider gives none).
struct Case {
    provider: &'static str,
    secret: &'static str,
    content_type: &'static str,
    body: &'static str,
    event_id: Option<&'static str>,
}

/// The delivery ID sent by providers that send one in a header.
const DELIVERY_ID: &str = "msg_2b7e1516-28ae-d2a6";

const CASES: &[Case] = &[
    Case {
        provider: "typeform",
        secret: "typeform-webhook-secret",
        content_type: "application/json",
        body: r#"{"event_id":"01HWQ3A1B2C3","event_type":"form_response","form_response":{"form_id":"lT4Z3j","token":"a3a12ec67a1365927098a606107fac15","answers":[{"type":"email","email":"ada@example.com","field":{"id":"SMEUb7VJz92Q","type":"email"}}]}}"#,
        event_id: Some("01HWQ3A1B2C3"),
    },
    Case {
        provider: "tally",
        secret: "tally-signing-secret",
        content_type: "application/json",
        body: r#"{"eventId":"a4cb511e-d513-4fa5-baee-b815d718dfd1","eventType":"FORM_RESPONSE","createdAt":"2026-11-28T09:00:00.000Z","data":{"responseId":"2wgx4n","formId":"VwbNEw","fields":[{"key":"question_mVGEg3","label":"Email","type":"INPUT_EMAIL","value":"ada@example.com"}]}}"#,
        event_id: Some("a4cb511e-d513-4fa5-baee-b815d718dfd1"),
    },
    Case {
        provider: "webflow",
        secret: "webflow-form-secret",
        content_type: "application/json",
        body: r#"{"triggerType":"form_submission","payload":{"name":"Contact","siteId":"65427cf400e02b306eaa049c","data":{"Email":"ada@example.com"},"submittedAt":"2026-11-28T09:00:00.000Z","id":"6321a3b3b2d6c5e1f0a1b2c3"}}"#,
        event_id: Some("6321a3b3b2d6c5e1f0a1b2c3"),
    },
    Case {
        provider: "formspree",
        secret: "formspree-secret",
        content_type: "application/json",
        body: r#"{"form":"xqkrgnwz","submission":{"_date":"2026-11-28T09:00:00Z","email":"ada@example.com","message":"Hello"}}"#,
        event_id: None,
    },
    Case {
        provider: "stripe",
        secret: "whsec_stripe_endpoint_secret_123",
        content_type: "application/json",
        body: r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2024-06-20","type":"checkout.session.completed","data":{"object":{"id":"cs_test_a1","customer_email":"ada@example.com"}}}"#,
        event_id: Some("evt_1NG8Du2eZvKYlo2CUI79vXWy"),
    },
    Case {
        provider: "github",
        secret: "github-webhook-secret",
        content_type: "application/json",
        body: r#"{"action":"opened","issue":{"number":1347,"title":"Found a bug"},"repository":{"full_name":"octocat/Hello-World"}}"#,
        event_id: Some(DELIVERY_ID),
    },
    Case {
        provider: "shopify",
        secret: "shopify-client-secret",
        content_type: "application/json",
        body: r#"{"id":820982911946154508,"email":"jon@example.com","created_at":"2026-11-28T09:00:00-05:00"}"#,
        event_id: Some(DELIVERY_ID),
    },
    Case {
        provider: "slack",
        secret: "8f742231b10e8888abcd99yyyzzz85a5",
        content_type: "application/json",
        body: r#"{"token":"XXYYZZ","team_id":"T123ABC456","type":"event_callback","event_id":"Ev123ABC456","event_time":1764320400,"event":{"type":"message","text":"hello"}}"#,
        event_id: Some("Ev123ABC456"),
    },
    Case {
        provider: "hubspot",
        secret: "hubspot-app-client-secret",
        content_type: "application/json",
        body: r#"[{"eventId":1,"subscriptionId":2,"portalId":3,"appId":4,"occurredAt":1764320400000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123}]"#,
        // HubSpot's events carry no one ID: a digest of the fields that
        // identify them (see docs/sources/hubspot.md).
        event_id: Some("sha256:"),
    },
    Case {
        provider: "standard-webhooks",
        secret: WEBHOOK_SECRET,
        content_type: "application/json",
        body: r#"{"type":"user.created","timestamp":"2026-11-28T09:00:00Z","data":{"id":"u_1","email":"ada@example.com"}}"#,
        event_id: Some(DELIVERY_ID),
    },
    Case {
        provider: "token",
        secret: "tok_5d1e0b6a9c4f4e2b8a7d3c1f0e9b8a7d",
        content_type: "application/json",
        body: r#"{"formId":"vE8xp2","formName":"Contact","submissionId":"f3b1c2d4","submissionTime":"2026-11-28T09:00:00.000Z","questions":[{"id":"q1","name":"Email","type":"EmailInput","value":"ada@example.com"}]}"#,
        event_id: Some("f3b1c2d4"),
    },
];

fn case(provider: &str) -> &'static Case {
    CASES.iter().find(|c| c.provider == provider).unwrap()
}

/// The tenant `acme` with one source per provider, named after it, and
/// `paused` (suspended) with a Stripe source.
fn gateway(receiver: &HttpServer) -> Gateway {
    let mut acme = record("acme").destination(&receiver.url(), WEBHOOK_SECRET);
    for c in CASES {
        acme = acme.source(c.provider, c.provider, &[c.secret]);
    }
    let paused = record("paused")
        .status("suspended")
        .destination(&receiver.url(), WEBHOOK_SECRET)
        .source("stripe", "stripe", &[case("stripe").secret])
        .build();
    let dir = scratch_dir();
    let tenants = tenants_file(&dir, &[acme.build(), paused]);
    Gateway::start(
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--allow-private-destinations",
        ],
        &[],
    )
}

/// A request to `tenant`'s `source`, signed as `provider` with `secret` at
/// `at` over `signed_body`, sending `body`.
struct Send<'a> {
    tenant: &'a str,
    source: &'a str,
    provider: &'a str,
    secret: &'a str,
    at: i64,
    signed_body: &'a str,
    body: &'a str,
    content_type: &'a str,
    without_header: Option<&'static str>,
}

impl<'a> Send<'a> {
    fn valid(c: &'a Case) -> Self {
        Self {
            tenant: "acme",
            source: c.provider,
            provider: c.provider,
            secret: c.secret,
            at: unix_now(),
            signed_body: c.body,
            body: c.body,
            content_type: c.content_type,
            without_header: None,
        }
    }

    fn request(&self, client: &reqwest::Client, gateway: &Gateway) -> reqwest::RequestBuilder {
        let mut url = format!(
            "{}/v1/tenants/{}/sources/{}",
            gateway.url, self.tenant, self.source
        );
        let provider = Provider::parse(self.provider).unwrap();
        let signed = provider
            .sign(
                &Secret::new(self.secret),
                &SignRequest {
                    method: "POST",
                    url: &url,
                    body: self.signed_body.as_bytes(),
                    delivery_id: DELIVERY_ID,
                },
                self.at,
            )
            .unwrap();
        if let Some(query) = &signed.query
            && self.without_header != Some("token")
        {
            url = format!("{url}?{query}");
        }
        let mut request = client
            .post(url)
            .header("content-type", self.content_type)
            .body(self.body.to_owned());
        for (name, value) in &signed.headers {
            if Some(*name) != self.without_header {
                request = request.header(*name, value);
            }
        }
        // The headers naming the event's type, which are not signed.
        match self.provider {
            "github" => request.header("x-github-event", "issues"),
            "shopify" => request.header("x-shopify-topic", "orders/create"),
            _ => request,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_is_accepted_once_and_delivered_with_its_source() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    let mut delivered_ids = Vec::new();
    for c in CASES {
        let (status, body) = answer(Send::valid(c).request(&client, &gateway)).await;
        assert_eq!(status, 202, "{}: {body}", c.provider);
        let id = ids(&body).remove(0);
        // The same delivery again (a provider's retry): the first answer.
        let (status, again) = answer(Send::valid(c).request(&client, &gateway)).await;
        assert_eq!((status, &again), (202, &body), "{} replayed", c.provider);
        delivered_ids.push((c, id));
    }
    wait_until("one delivery per provider", || {
        receiver.requests().len() >= CASES.len()
    });
    let deliveries = receiver.requests();
    for (c, id) in delivered_ids {
        let delivery = deliveries
            .iter()
            .find(|d| d.header("webhook-id") == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{}: {id} not delivered", c.provider));
        assert!(delivery.webhook_verifies(WEBHOOK_SECRET), "{}", c.provider);
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        let data = &body["data"];
        assert_eq!(data["tenant_id"], "acme");
        assert_eq!(data["content_type"], c.content_type);
        assert_eq!(data["source"]["id"], c.provider);
        let event_type = match c.provider {
            "github" => Some("issues"),
            "shopify" => Some("orders/create"),
            _ => None,
        };
        assert_eq!(
            data["source"]["event_type"].as_str(),
            event_type,
            "{}",
            c.provider
        );
        assert_eq!(data["source"]["provider"], c.provider);
        let event_id = data["source"]["event_id"].as_str();
        match c.event_id {
            Some(prefix) => assert!(
                event_id.is_some_and(|id| id.starts_with(prefix)),
                "{}: {event_id:?}",
                c.provider
            ),
            None => assert_eq!(event_id, None, "{}", c.provider),
        }
        // The provider's body reaches the tenant byte for byte.
        assert!(
            delivery.text().contains(&format!("\"payload\":{}", c.body)),
            "{}: {}",
            c.provider,
            delivery.text()
        );
    }
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == CASES.len()).await;
    assert_eq!(
        health["bus"]["accepted"],
        CASES.len(),
        "replays publish nothing"
    );
    assert_eq!(PROVIDERS.len(), CASES.len(), "every provider has a case");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_is_refused_with_nothing_published() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    let mut refusals = 0;
    for c in CASES {
        let provider = Provider::parse(c.provider).unwrap();
        let tampered = c.body.replacen("ada", "eve", 1).replacen("1", "2", 1);
        let now = unix_now();
        let mut cases: Vec<(&str, Send<'_>, u16)> = vec![
            (
                "wrong secret",
                Send {
                    secret: if c.provider == "standard-webhooks" {
                        "whsec_dGhpcyBpcyBhIGRpZmZlcmVudCBrZXkhIQ=="
                    } else {
                        WEBHOOK_SECRET
                    },
                    ..Send::valid(c)
                },
                if provider.signs_body() { 401 } else { 403 },
            ),
            (
                "wrong provider",
                Send {
                    source: if c.provider == "github" {
                        "tally"
                    } else {
                        "github"
                    },
                    ..Send::valid(c)
                },
                401,
            ),
            (
                "unknown source",
                Send {
                    source: "nope",
                    ..Send::valid(c)
                },
                403,
            ),
            (
                "suspended tenant",
                Send {
                    tenant: "paused",
                    source: "stripe",
                    ..Send::valid(c)
                },
                403,
            ),
        ];
        if provider.signs_body() {
            cases.push((
                "tampered body",
                Send {
                    body: &tampered,
                    ..Send::valid(c)
                },
                401,
            ));
        }
        if provider.signs_timestamp() {
            for (what, at) in [("stale", now - 600), ("future", now + 600)] {
                cases.push((
                    what,
                    Send {
                        at,
                        ..Send::valid(c)
                    },
                    401,
                ));
            }
        }
        let signed = provider
            .sign(
                &Secret::new(c.secret),
                &SignRequest {
                    method: "POST",
                    url: "https://x",
                    body: b"{}",
                    delivery_id: DELIVERY_ID,
                },
                now,
            )
            .unwrap();
        // Each header verification needs (a delivery ID a provider does not
        // sign is optional).
        let keys = SourceKeys::new(provider, &[Secret::new(c.secret)]).unwrap();
        let needed = |without: &str| {
            let lookup = |name: &str| {
                signed
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name && *n != without)
                    .map(|(_, v)| v.as_str())
            };
            let request = shared::source::Request {
                method: "POST",
                url: "https://x",
                query: signed.query.as_deref().unwrap_or_default(),
                headers: &lookup,
                body: b"{}",
            };
            keys.verify(&request, now).is_err()
        };
        for (name, _) in signed.headers.iter().filter(|(name, _)| needed(name)) {
            cases.push((
                "missing header",
                Send {
                    without_header: Some(name),
                    ..Send::valid(c)
                },
                401,
            ));
        }
        if signed.query.is_some() {
            cases.push((
                "missing token",
                Send {
                    without_header: Some("token"),
                    ..Send::valid(c)
                },
                403,
            ));
        }
        for (what, send, expected) in cases {
            let (status, body) = answer(send.request(&client, &gateway)).await;
            assert_eq!(status, expected, "{} {what}: {body}", c.provider);
            if status == 401 {
                assert_eq!(body["error"]["code"], "invalid_signature", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(!message.contains(c.secret), "{message}");
            }
            refusals += 1;
        }
    }
    assert!(refusals > 60, "{refusals}");
    let health = health_when(&client, &gateway, |_| true).await;
    assert_eq!(health["bus"]["accepted"], 0, "nothing published: {health}");
    assert!(receiver.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_delivery_four_times_at_once_and_in_sequence_is_one_submission() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    // Slack (a timestamp and an event ID in the body) and Webflow (a
    // timestamp, no ID a sender could vary): each with and without an
    // Idempotency-Key.
    let mut accepted = 0;
    for (c, key) in [
        (case("slack"), None),
        (case("webflow"), None),
        (case("formspree"), Some("order-1234")),
    ] {
        let send = Send::valid(c);
        let request = || {
            let request = send.request(&client, &gateway);
            match key {
                Some(key) => request.header("idempotency-key", key),
                None => request,
            }
        };
        let mut at_once = tokio::task::JoinSet::new();
        for _ in 0..4 {
            at_once.spawn(answer(request()));
        }
        let mut answers = at_once.join_all().await;
        for _ in 0..4 {
            answers.push(answer(request()).await);
        }
        let first = answers
            .iter()
            .find(|(status, _)| *status == 202)
            .map(|(_, body)| ids(body))
            .unwrap_or_else(|| panic!("{}: none accepted: {answers:?}", c.provider));
        for (status, body) in &answers {
            match status {
                202 => assert_eq!(ids(body), first, "{}", c.provider),
                // Still being published when a copy arrived.
                409 => assert_eq!(body["error"]["code"], "request_in_progress"),
                _ => panic!("{}: {status} {body}", c.provider),
            }
        }
        accepted += 1;
    }
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == accepted).await;
    assert_eq!(
        health["bus"]["accepted"], accepted,
        "one event per delivery"
    );
    assert_eq!(receiver.requests().len(), accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jotform_multipart_post_reaches_the_tenant_as_structured_json() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    let token = case("token").secret;
    let url = format!(
        "{}/v1/tenants/acme/sources/token?token={token}",
        gateway.url
    );
    let raw_request = r#"{"slug":"submit\/241234567890","q3_name":{"first":"Ada","last":"Lovelace"},"q4_email":"ada@example.com"}"#;
    let form = [
        ("formID", "241234567890"),
        ("submissionID", "5912345678901234567"),
        ("rawRequest", raw_request),
        ("pretty", "Name:Ada Lovelace, Email:ada@example.com"),
        // Jotform echoes the webhook's URL, token and all.
        ("webhookURL", &url),
    ];
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    for (name, value) in form {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let multipart = format!("multipart/form-data; boundary={boundary}");
    let (status, answer_body) = answer(
        client
            .post(&url)
            .header("content-type", &multipart)
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, 202, "{answer_body}");
    // Jotform retries the same submission: the first answer.
    let (status, again) = answer(
        client
            .post(&url)
            .header("content-type", &multipart)
            .body(body),
    )
    .await;
    assert_eq!((status, &again), (202, &answer_body));

    // A file upload is refused: 415, nothing published.
    let upload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"q7_file\"; filename=\"cv.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\r\n--{boundary}--\r\n"
    );
    let (status, refused) = answer(
        client
            .post(&url)
            .header("content-type", &multipart)
            .body(upload),
    )
    .await;
    assert_eq!(status, 415, "{refused}");
    assert_eq!(refused["error"]["code"], "file_parts_not_accepted");

    wait_until("the delivery", || !receiver.requests().is_empty());
    let delivery = &receiver.requests()[0];
    let data: Value = serde_json::from_slice(&delivery.body).unwrap();
    let data = &data["data"];
    assert_eq!(data["content_type"], "multipart/form-data");
    assert_eq!(data["source"]["event_id"], "5912345678901234567");
    assert_eq!(data["payload"]["formID"], "241234567890");
    assert_eq!(data["payload"]["rawRequest"]["q3_name"]["last"], "Lovelace");
    assert_eq!(
        data["payload"]["pretty"],
        "Name:Ada Lovelace, Email:ada@example.com"
    );
    // The token never travels on: not to the bus, not to the tenant.
    assert!(!delivery.text().contains(token), "{}", delivery.text());
    assert_eq!(
        data["payload"]["webhookURL"],
        format!(
            "{}/v1/tenants/acme/sources/token?token=REDACTED",
            gateway.url
        )
    );
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 1).await;
    assert_eq!(health["bus"]["accepted"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slacks_signed_url_check_is_answered_with_its_challenge_and_publishes_nothing() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    let check = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let (status, body) = answer(
        Send {
            body: check,
            signed_body: check,
            ..Send::valid(case("slack"))
        }
        .request(&client, &gateway),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Unsigned, it is refused like anything else.
    let (status, _) = answer(
        Send {
            body: check,
            secret: "not-slacks-secret",
            signed_body: check,
            ..Send::valid(case("slack"))
        }
        .request(&client, &gateway),
    )
    .await;
    assert_eq!(status, 401);
    let health = health_when(&client, &gateway, |_| true).await;
    assert_eq!(health["bus"]["accepted"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_demo_has_a_source_per_provider_and_its_printed_command_works() {
    let gateway = Gateway::start(&[], &[]);
    let hint = gateway.wait_for_line("the source command", |l| l.contains("--provider typeform"));
    let args: Vec<&str> = hint.split_whitespace().collect();
    let start = args.iter().position(|a| *a == "send").unwrap();
    let body = br#"{"event_id":"e1","form_response":{}}"#;
    let (code, out, err) = crate::harness::run(&args[start..], body, &[]);
    assert_eq!(code, 0, "{err}");
    let id = out.lines().nth(1).unwrap().to_owned();
    gateway.wait_for_line("the delivery", |l| {
        l.contains(&format!("receiver: delivered {id} for demo"))
    });
    // Every provider has its source and printed secret: Stripe's works.
    let secret_line =
        gateway.wait_for_line("stripe's secret", |l| l.trim_start().starts_with("stripe "));
    let secret = secret_line.split_whitespace().nth(1).unwrap().to_owned();
    let client = reqwest::Client::new();
    let send = Send {
        tenant: "demo",
        secret: &secret,
        ..Send::valid(case("stripe"))
    };
    let (status, answer_body) = answer(send.request(&client, &gateway)).await;
    assert_eq!(status, 202, "{answer_body}");
    let lines = gateway.stdout();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("  ")).count() - 2,
        PROVIDERS.len(),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_resending_an_event_with_other_bytes_gets_the_first_answer() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    // HubSpot retries a batch with attemptNumber increased: the same
    // events, other bytes, signed again.
    let first = case("hubspot").body;
    let retry = first.replace(r#""attemptNumber":0"#, r#""attemptNumber":1"#);
    assert_ne!(first, retry);
    let (status, body) = answer(Send::valid(case("hubspot")).request(&client, &gateway)).await;
    assert_eq!(status, 202, "{body}");
    let (status, again) = answer(
        Send {
            body: &retry,
            signed_body: &retry,
            ..Send::valid(case("hubspot"))
        }
        .request(&client, &gateway),
    )
    .await;
    assert_eq!(
        (status, &again),
        (202, &body),
        "the retry is the same event"
    );
    // Through a tunnel (X-Forwarded-Proto: https), HubSpot signed the
    // https URL, which the gateway rebuilds from the header.
    let tunnelled = Send::valid(case("hubspot"));
    let url =
        format!("{}/v1/tenants/acme/sources/hubspot", gateway.url).replace("http://", "https://");
    let fresh = first.replace(r#""eventId":1"#, r#""eventId":7"#);
    let signed = Provider::parse("hubspot")
        .unwrap()
        .sign(
            &Secret::new(tunnelled.secret),
            &SignRequest {
                method: "POST",
                url: &url,
                body: fresh.as_bytes(),
                delivery_id: DELIVERY_ID,
            },
            unix_now(),
        )
        .unwrap();
    let mut request = client
        .post(format!("{}/v1/tenants/acme/sources/hubspot", gateway.url))
        .header("content-type", "application/json")
        .header("x-forwarded-proto", "https")
        .body(fresh.clone());
    for (name, value) in &signed.headers {
        request = request.header(*name, value);
    }
    let (status, tunnelled_answer) = answer(request).await;
    assert_eq!(status, 202, "{tunnelled_answer}");
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 2).await;
    assert_eq!(health["bus"]["accepted"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_bytes_under_another_content_type_are_the_same_delivery() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    for c in [case("stripe"), case("typeform"), case("github")] {
        let first = Send::valid(c);
        let (status, body) = answer(first.request(&client, &gateway)).await;
        assert_eq!(status, 202, "{body}");
        // The Content-Type is not signed: read as a form, the body has no
        // event ID, and it must still be the same delivery.
        for content_type in [
            "application/x-www-form-urlencoded",
            "application/vnd.api+json",
        ] {
            let again = Send {
                content_type,
                ..Send::valid(c)
            };
            let (status, answer_body) = answer(again.request(&client, &gateway)).await;
            assert_eq!(
                (status, &answer_body),
                (202, &body),
                "{} as {content_type}",
                c.provider
            );
        }
    }
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 3).await;
    assert_eq!(health["bus"]["accepted"], 3);
}

/// A request to acme's `provider` source signed over `body`, with
/// `delivery_id` and the event-type header set to `event_type`.
fn header_typed(
    client: &reqwest::Client,
    gateway: &Gateway,
    provider: &str,
    body: &str,
    delivery_id: &str,
    event_type: (&str, &str),
) -> reqwest::RequestBuilder {
    let url = format!("{}/v1/tenants/acme/sources/{provider}", gateway.url);
    let signed = Provider::parse(provider)
        .unwrap()
        .sign(
            &Secret::new(case(provider).secret),
            &SignRequest {
                method: "POST",
                url: &url,
                body: body.as_bytes(),
                delivery_id,
            },
            unix_now(),
        )
        .unwrap();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header(event_type.0, event_type.1)
        .body(body.to_owned());
    for (name, value) in &signed.headers {
        request = request.header(*name, value);
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_ids_and_what_was_signed_are_keys_and_topics_with_one_body_are_two_events() {
    let receiver = HttpServer::start(|_, _| Reply::json(204, ""));
    let gateway = gateway(&receiver);
    let client = reqwest::Client::new();
    let body = case("shopify").body;
    // Shopify sends orders/create and orders/updated for a new order, with
    // bodies that can be the same bytes: two events, both delivered.
    let topic = "x-shopify-topic";
    let (status, created) = answer(header_typed(
        &client,
        &gateway,
        "shopify",
        body,
        "e-1",
        (topic, "orders/create"),
    ))
    .await;
    assert_eq!(status, 202, "{created}");
    let (status, updated) = answer(header_typed(
        &client,
        &gateway,
        "shopify",
        body,
        "e-2",
        (topic, "orders/updated"),
    ))
    .await;
    assert_eq!(status, 202, "{updated}");
    assert_ne!(ids(&created), ids(&updated));
    // The same bytes under the same topic again (a retry) are the first.
    let (status, again) = answer(header_typed(
        &client,
        &gateway,
        "shopify",
        body,
        "e-1",
        (topic, "orders/create"),
    ))
    .await;
    assert_eq!((status, &again), (202, &created));

    // GitHub's delivery ID is not signed: a captured body sent again
    // under a new ID is the same delivery (what was signed is a key), and
    // the ID is a key too: a delivery ID seen before is its first answer.
    let event = ("x-github-event", "issues");
    let first = case("github").body;
    let (status, answered) = answer(header_typed(
        &client, &gateway, "github", first, "d-1", event,
    ))
    .await;
    assert_eq!(status, 202, "{answered}");
    let (status, again) = answer(header_typed(
        &client, &gateway, "github", first, "d-2", event,
    ))
    .await;
    assert_eq!((status, &again), (202, &answered));
    let other = first.replace("1347", "1348");
    let (status, other_answer) = answer(header_typed(
        &client, &gateway, "github", &other, "d-1", event,
    ))
    .await;
    assert_eq!((status, &other_answer), (202, &answered));
    let (status, new_delivery) = answer(header_typed(
        &client, &gateway, "github", &other, "d-3", event,
    ))
    .await;
    assert_eq!(status, 202, "{new_delivery}");
    assert_ne!(ids(&new_delivery), ids(&answered));
    let health = health_when(&client, &gateway, |h| h["bus"]["delivered"] == 4).await;
    assert_eq!(health["bus"]["accepted"], 4);
}
