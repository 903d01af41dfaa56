//! Single deliveries to real local HTTP servers.

use std::net::TcpListener;
use std::time::Instant;

use connectors::{DeliveryError, SendError};
use shared::breaker::State;
use testkit::{HttpServer, Reply};

use super::*;

fn ok_server() -> HttpServer {
    HttpServer::start(|_, _| Reply::json(200, "{}"))
}

#[tokio::test]
async fn a_delivery_is_signed_so_standard_webhooks_verifies_it() {
    let server = ok_server();
    let acme = record("acme", &format!("{}/hooks?k=1", server.url()))
        .header("Authorization", "Bearer t0ken")
        .header("X-Tenant-Tag", "blue");
    let (connector, metrics) = connector(&[acme.build()], &[]);
    let (event, id) = event("acme");

    let delivered = connector.deliver_event(&event, None).await.unwrap();

    assert_eq!(delivered, id);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks?k=1"));
    assert_eq!(r.header("webhook-id"), Some(id.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("form-bridge/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(r.header("x-tenant-tag"), Some("blue"));
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((ts - shared::signature::unix_now()).abs() < 60);

    // The official library accepts the signature over the exact bytes.
    assert!(r.webhook_verifies(DELIVERY_SECRET));
    let mut tampered = r.clone();
    tampered.body[10] ^= 1;
    assert!(!tampered.webhook_verifies(DELIVERY_SECRET));

    // The body is the documented envelope around the detail, unchanged.
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let sent: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(body["type"], "form.submission");
    assert_eq!(body["timestamp"], sent["detail"]["received_at"]);
    assert_eq!(body["data"], sent["detail"]);
    assert!(
        r.text().contains(r#""seats":12345678901234567890"#),
        "big numbers kept"
    );
    assert_eq!(reasons(&metrics), ["delivered"]);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_retryable() {
    let server = HttpServer::start(|_, n| match n {
        0 | 1 => Reply::json(500, "{}"),
        _ => Reply::json(204, ""),
    });
    let (connector, metrics) = connector(&[record("acme", &server.url()).build()], &[]);
    let (event, _) = event("acme");
    connector.deliver_event(&event, None).await.unwrap();
    assert_eq!(server.requests().len(), 3, "two 500s, then delivered");
    let line = &deliveries(&metrics)[0];
    assert_eq!(line["DeliveryAttempts"], 3.0);

    let failing = HttpServer::start(|_, _| Reply::json(503, "{}"));
    let (connector, metrics) = connector_for(&failing, &[("DELIVERY_ATTEMPTS", "2")]);
    let error = connector.deliver_event(&event, None).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Status(503)), "{error:?}");
    assert_eq!(error.class(), connectors::Class::Retryable);
    assert_eq!(
        failing.requests().len(),
        2,
        "DELIVERY_ATTEMPTS bounds retries"
    );
    assert_eq!(reasons(&metrics), ["http_5xx"]);
}

fn connector_for(server: &HttpServer, vars: &[(&str, &str)]) -> (TestConnector, CapturedMetrics) {
    connector(&[record("acme", &server.url()).build()], vars)
}

#[tokio::test]
async fn client_errors_are_permanent_and_never_retried() {
    for status in [400, 401, 404, 410, 422] {
        let server = HttpServer::start(move |_, _| Reply::json(status, "{}"));
        let (connector, metrics) = connector_for(&server, &[("BREAKER_FAILURE_THRESHOLD", "1")]);
        let error = deliver(&connector, "acme").await.unwrap_err();
        assert_eq!(error.class(), connectors::Class::Permanent, "{status}");
        assert_eq!(server.requests().len(), 1, "{status} is not retried");
        let expected = if status == 410 {
            "destination_gone"
        } else {
            "http_4xx"
        };
        assert_eq!(reasons(&metrics), [expected]);
        // A 4xx says nothing about the destination being down: with a
        // breaker that opens on the first failure, the next goes out too.
        deliver(&connector, "acme").await.unwrap_err();
        assert_eq!(server.requests().len(), 2, "{status} opened the breaker");
        let target_state = metrics
            .lines()
            .iter()
            .any(|l| l.get("BreakerTransitions").is_some());
        assert!(!target_state, "{status} moved the breaker");
    }
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_within_limits() {
    let server = HttpServer::start(|_, n| match n {
        0 => Reply::json(429, "{}").with_header("Retry-After", "1"),
        _ => Reply::json(200, "{}"),
    });
    let (connector, _) = connector_for(&server, &[]);
    let started = Instant::now();
    deliver(&connector, "acme").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(server.requests().len(), 2);

    // Asked to wait longer than the in-invocation limit (5 s): the queue
    // waits instead, without a second request now.
    let server = HttpServer::start(|_, _| Reply::json(429, "{}").with_header("Retry-After", "120"));
    let (connector, metrics) = connector_for(&server, &[]);
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(matches!(error, DeliveryError::Status(429)));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(reasons(&metrics), ["http_429"]);
}

#[tokio::test]
async fn a_slow_destination_times_out() {
    let server = HttpServer::start(|_, _| Reply::json(200, "{}").after(Duration::from_secs(3)));
    let slow = record("acme", &server.url()).timeout_ms(300).build();
    let (connector, metrics) = connector(&[slow], &[("DELIVERY_ATTEMPTS", "1")]);
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(
        matches!(error, DeliveryError::Send(SendError::Timeout(t)) if t == Duration::from_millis(300)),
        "{error:?}"
    );
    assert_eq!(reasons(&metrics), ["timeout"]);

    // DELIVERY_TIMEOUT_MS applies when the record sets none.
    let (connector, _) = connector_for(
        &server,
        &[("DELIVERY_ATTEMPTS", "1"), ("DELIVERY_TIMEOUT_MS", "200")],
    );
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(
        matches!(error, DeliveryError::Send(SendError::Timeout(t)) if t == Duration::from_millis(200))
    );
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (connector, metrics) = connector(
        &[record("acme", &format!("http://127.0.0.1:{port}/")).build()],
        &[("DELIVERY_ATTEMPTS", "2")],
    );
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(
        matches!(error, DeliveryError::Send(SendError::Connect(_))),
        "{error:?}"
    );
    assert_eq!(error.class(), connectors::Class::Retryable);
    assert_eq!(reasons(&metrics), ["connect_error"]);
    assert_eq!(deliveries(&metrics)[0]["DeliveryAttempts"], 2.0);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let private = ok_server();
    let location = format!("{}/internal", private.url());
    let redirecting =
        HttpServer::start(move |_, _| Reply::json(302, "").with_header("Location", &location));
    let (connector, metrics) = connector_for(&redirecting, &[]);
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(matches!(error, DeliveryError::Status(302)));
    assert_eq!(error.class(), connectors::Class::Permanent);
    assert_eq!(redirecting.requests().len(), 1);
    assert!(
        private.requests().is_empty(),
        "the redirect target was never called"
    );
    assert_eq!(reasons(&metrics), ["http_3xx"]);
}

#[tokio::test]
async fn the_guard_refuses_names_and_literals_that_reach_private_addresses() {
    let server = ok_server();
    let port = server.addr().port();
    let hosts = Hosts::system().with("hooks.tenant.test", &["127.0.0.1".parse().unwrap()]);
    let name = record("acme", &format!("http://hooks.tenant.test:{port}/")).build();
    let guarded_config = config(&[]);
    // Addresses checked, scheme not, so the plain-HTTP server could answer
    // if the address rule let it through.
    let addresses_only = GuardRules {
        https_only: false,
        public_only: true,
    };
    let (connector, metrics) = connector_with(
        std::slice::from_ref(&name),
        &guarded_config,
        addresses_only,
        hosts.clone(),
    );
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(
        matches!(
            error,
            DeliveryError::Send(SendError::NotAllowed(
                connectors::NotAllowed::NonPublicAddress
            ))
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), connectors::Class::Permanent);
    assert_eq!(reasons(&metrics), ["destination_not_allowed"]);
    assert!(server.requests().is_empty(), "nothing reached the server");

    // The same name with the guard lifted reaches it: the refusal above
    // came from the address, not from the name failing to resolve.
    let (open, _) = connector_with(&[name], &guarded_config, GuardRules::new(true), hosts);
    deliver(&open, "acme").await.unwrap();
    assert_eq!(server.requests().len(), 1);

    // With the full guard (the Lambda's default): https only, and localhost,
    // loopback and metadata literals refused before anything is sent.
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("https://[::1]:{port}/"),
        "https://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let (connector, metrics) = connector_with(
            &[record("acme", &url).build()],
            &guarded_config,
            guarded_config.client_options().rules,
            Hosts::system(),
        );
        let error = deliver(&connector, "acme").await.unwrap_err();
        assert_eq!(error.code(), "destination_not_allowed", "{url}: {error:?}");
        assert!(!error.to_string().contains("127.0.0.1"), "no URL in errors");
        assert_eq!(reasons(&metrics), ["destination_not_allowed"], "{url}");
        assert_eq!(
            deliveries(&metrics)[0]["DeliveryAttempts"],
            0.0,
            "nothing sent"
        );
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_open_breaker_fails_fast_without_a_request_and_spares_other_tenants() {
    let down = HttpServer::start(|_, _| Reply::json(500, "{}"));
    let up = ok_server();
    let vars = [
        ("DELIVERY_ATTEMPTS", "1"),
        ("BREAKER_FAILURE_THRESHOLD", "3"),
        ("BREAKER_COOL_DOWN_SECONDS", "1"),
    ];
    let (connector, metrics) = connector(
        &[
            record("acme", &down.url()).build(),
            record("globex", &up.url()).build(),
        ],
        &vars,
    );
    for _ in 0..3 {
        deliver(&connector, "acme").await.unwrap_err();
    }
    assert_eq!(down.requests().len(), 3);
    let error = deliver(&connector, "acme").await.unwrap_err();
    assert!(matches!(error, DeliveryError::BreakerOpen(_)), "{error:?}");
    assert_eq!(error.class(), connectors::Class::Retryable);
    assert_eq!(down.requests().len(), 3, "no request while open");
    // Another tenant's destination is not affected.
    deliver(&connector, "globex").await.unwrap();

    // After the cool-down one probe goes out; it fails and reopens.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    deliver(&connector, "acme").await.unwrap_err();
    assert_eq!(down.requests().len(), 4);
    deliver(&connector, "acme").await.unwrap_err();
    assert_eq!(down.requests().len(), 4);

    let states: Vec<String> = metrics
        .lines()
        .iter()
        .filter(|l| l.get("BreakerTransitions").is_some())
        .map(|l| {
            format!(
                "{}:{}",
                l["TenantId"].as_str().unwrap(),
                l["State"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(states, ["acme:open", "acme:half_open", "acme:open"]);
    assert_eq!(
        reasons(&metrics),
        [
            "http_5xx",
            "http_5xx",
            "http_5xx",
            "breaker_open",
            "delivered",
            "http_5xx",
            "breaker_open"
        ]
    );
}

#[tokio::test]
async fn a_recovered_destination_closes_its_breaker() {
    let server = HttpServer::start(|_, n| {
        if n < 2 {
            Reply::json(500, "{}")
        } else {
            Reply::json(200, "{}")
        }
    });
    let vars = [
        ("DELIVERY_ATTEMPTS", "1"),
        ("BREAKER_FAILURE_THRESHOLD", "2"),
        ("BREAKER_COOL_DOWN_SECONDS", "1"),
    ];
    let (connector, _) = connector_for(&server, &vars);
    for _ in 0..2 {
        deliver(&connector, "acme").await.unwrap_err();
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    deliver(&connector, "acme").await.unwrap();
    deliver(&connector, "acme").await.unwrap();
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn no_attempt_starts_past_the_deadline() {
    let server = ok_server();
    let (connector, metrics) = connector_for(&server, &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(600);
    let error = connector
        .deliver_event(&event("acme").0, Some(deadline))
        .await
        .unwrap_err();
    assert!(matches!(error, DeliveryError::NoTimeLeft), "{error:?}");
    assert!(server.requests().is_empty());
    assert_eq!(reasons(&metrics), ["deadline"]);

    // With time left, the attempt's timeout shrinks to fit it.
    let slow = HttpServer::start(|_, _| Reply::json(200, "{}").after(Duration::from_secs(5)));
    let (connector, _) = connector_for(&slow, &[]);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1_500);
    let error = connector
        .deliver_event(&event("acme").0, Some(deadline))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "ended before the deadline"
    );
    assert_eq!(error.code(), "timeout");
}

#[tokio::test]
async fn the_breaker_state_is_visible_per_destination() {
    let down = HttpServer::start(|_, _| Reply::json(503, "{}"));
    let (connector, _) = connector_for(
        &down,
        &[
            ("DELIVERY_ATTEMPTS", "1"),
            ("BREAKER_FAILURE_THRESHOLD", "1"),
        ],
    );
    deliver(&connector, "acme").await.unwrap_err();
    let record = TenantRecord::from_value(record("acme", &down.url()).build()).unwrap();
    let target = connectors::Target {
        tenant: &record.tenant_id,
        destination: record.destination.as_ref().unwrap(),
        id: "x",
    };
    assert_eq!(connector.deliverer().breaker_state(&target), State::Open);
}
