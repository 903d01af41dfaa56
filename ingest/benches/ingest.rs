//! The warm ingest handler end to end in-process: event JSON bytes in
//! (deserialised as the runtime does), digest check, body parsing, IDs,
//! event details, the in-memory bus (its queue drained as the local
//! gateway's workers do), EMF line, response JSON bytes out.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ingest::{Config, Ingest, IngestEvent};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use shared::publish::{self, BusEntry, MemoryPublisher, RetryPolicy};
use shared::signature::{content_digest, verify_content_digest};
use shared::telemetry::Metrics;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(testkit::VECTOR.timestamp as u64)
}

/// The fixture carrying `body`, as the runtime receives it.
fn event(body: &[u8]) -> Vec<u8> {
    let mut event: Value =
        serde_json::from_str(include_str!("../tests/data/ingest-request.json")).unwrap();
    event["body"] = String::from_utf8(body.to_vec()).unwrap().into();
    event["headers"]["content-digest"] = content_digest(body).into();
    serde_json::to_vec(&event).unwrap()
}

/// The same request as the isolated REST API hands it to ingest: payload
/// 1.0, the body base64 (the API's binary media types are `*/*`), the
/// authorizer's flat context.
fn rest_event(body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let mut event: Value =
        serde_json::from_str(include_str!("../tests/data/rest-ingest-request.json")).unwrap();
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    event["headers"]["Content-Digest"] = content_digest(body).into();
    serde_json::to_vec(&event).unwrap()
}

/// A form-like JSON submission of exactly `bytes` bytes (at least ~110).
fn submission(bytes: usize) -> Value {
    let with = |message: String| {
        json!({"name": "Ada Lovelace", "email": "ada@example.com",
               "company": "Analytical Engines Ltd", "subscribe": true, "message": message})
    };
    let bare = with(String::new()).to_string().len();
    with("x".repeat(bytes.saturating_sub(bare)))
}

/// A Jotform webhook body of exactly `bytes` bytes (at least ~700): its
/// fields as multipart/form-data, answers in `rawRequest`. With its
/// `Content-Type`.
fn jotform_multipart(bytes: usize) -> (String, Vec<u8>) {
    let boundary = "------------------------3c8b9a1f2e4d5c6b";
    let body = |message: &str| {
        let raw_request = json!({"slug": "submit/241234567890123", "submitSource": "form",
            "q3_fullName": {"first": "Ada", "last": "Lovelace"}, "q4_email": "ada@example.com",
            "q5_message": message, "event_id": "1717000000000_241234567890123_abc1234"})
        .to_string();
        let fields = [
            ("formID", "241234567890123"),
            ("submissionID", "5912345678901234567"),
            ("formTitle", "Contact us"),
            ("type", "WEB"),
            ("rawRequest", &raw_request),
            ("pretty", "Full Name:Ada Lovelace, E-mail:ada@example.com"),
            ("ip", "203.0.113.7"),
        ];
        let mut body = String::new();
        for (name, value) in fields {
            body += &format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            );
        }
        body + &format!("--{boundary}--\r\n")
    };
    let bare = body("").len();
    let content_type = format!("multipart/form-data; boundary={boundary}");
    (
        content_type,
        body(&"x".repeat(bytes.saturating_sub(bare))).into_bytes(),
    )
}

/// The secret of acme's Stripe source in the source route bench.
const STRIPE_SECRET: &str = "whsec_bench_stripe_secret";

/// A Stripe delivery of about `bytes` bytes of body, event `evt_bench_{n}`,
/// signed at `now()`, as API Gateway hands it to ingest on the source
/// route.
fn stripe_event(n: u64, bytes: usize) -> Vec<u8> {
    use shared::source::{Provider, SignRequest};
    let body = json!({"id": format!("evt_bench_{n}"), "object": "event",
        "type": "checkout.session.completed", "data": {"object": submission(bytes - 120)}})
    .to_string();
    let url =
        "https://abcdef123.execute-api.us-east-1.amazonaws.com/v1/tenants/acme/sources/stripe";
    let signed = Provider::parse("stripe")
        .unwrap()
        .sign(
            &shared::secret::Secret::new(STRIPE_SECRET),
            &SignRequest {
                method: "POST",
                url,
                body: body.as_bytes(),
                delivery_id: "",
            },
            testkit::VECTOR.timestamp,
        )
        .unwrap();
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/data/ingest-request.json")).unwrap();
    let event = testkit::on_source_route(fixture, "acme", "stripe", signed.headers, &body);
    serde_json::to_vec(&event).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let config = Config {
        event_bus_name: "bench".into(),
        event_source: "form-bridge".into(),
        max_body_bytes: 262_144,
        idempotency_ttl: shared::idempotency::DEFAULT_TTL,
        idempotency_table: None,
        tenant_secret_prefix: "form-bridge/tenants/".into(),
        secret_cache_ttl: std::time::Duration::from_secs(300),
    };
    let (publisher, mut rx) = MemoryPublisher::channel(1_024);
    let ingest = Ingest::new(
        publisher,
        &config,
        Metrics::to_writer("ingest", std::io::sink()),
    );

    let one = serde_json::to_vec(&submission(1024)).unwrap();
    assert_eq!(one.len(), 1024);
    let ten = serde_json::to_vec(&vec![submission(1024); 10]).unwrap();
    let cases = [("1KiB", event(&one), 1), ("batch_10x1KiB", event(&ten), 10)];

    // Each request is a new one (its own idempotency key, as a sender's
    // timestamp and body would give it): the full path, key kept in memory.
    let mut request = 0u64;
    let mut invoke = async |bytes: &[u8], expected: usize| {
        let mut payload: IngestEvent = serde_json::from_slice(bytes).unwrap();
        request += 1;
        payload.headers.timestamp = Some(request.to_string());
        let response = ingest.handle(&payload, now()).await;
        for _ in 0..expected {
            black_box(rx.try_recv().unwrap());
        }
        serde_json::to_vec(&response).unwrap()
    };
    for (_, bytes, n) in &cases {
        let out = rt.block_on(invoke(bytes, *n));
        assert!(String::from_utf8_lossy(&out).contains(r#""statusCode":202"#));
    }
    let mut g = c.benchmark_group("ingest_handler");
    for (name, bytes, n) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| rt.block_on(invoke(black_box(bytes), *n)))
        });
    }

    // The isolated path: the same 1 KiB submission as a REST event, in an
    // invocation carrying the tenant (tenant isolation mode), as the
    // bootstrap serves it.
    let rest = rest_event(&one);
    let mut invoke_rest = async |bytes: &[u8]| {
        let mut payload: IngestEvent = serde_json::from_slice(bytes).unwrap();
        request += 1;
        payload.headers.timestamp = Some(request.to_string());
        let response = ingest
            .handle_invocation(&payload, Some("acme"), now())
            .await;
        black_box(rx.try_recv().unwrap());
        serde_json::to_vec(&response).unwrap()
    };
    let out = rt.block_on(invoke_rest(&rest));
    assert!(String::from_utf8_lossy(&out).contains(r#""statusCode":202"#));
    g.bench_function("1KiB_rest_isolated", |b| {
        b.iter(|| rt.block_on(invoke_rest(black_box(&rest))))
    });

    // A source route: a 1 KiB Stripe event, a new event ID each time (the
    // full path: the record from the cache, the provider's signature over
    // the body, the payload, both keys claimed and completed, the event).
    let (publisher, mut source_rx) = MemoryPublisher::channel(1_024);
    let record = testkit::TenantRecordBuilder::new("acme")
        .source("stripe", "stripe", &[STRIPE_SECRET])
        .json();
    let store = shared::store::MemoryTenantStore::from_json(&format!("[{record}]")).unwrap();
    let records = shared::store::CachedTenantStore::new(
        store,
        shared::store::CachePolicy::with_ttl(Duration::from_secs(300)),
    );
    let source_ingest = Ingest::new(
        publisher,
        &config,
        Metrics::to_writer("ingest", std::io::sink()),
    )
    .with_tenant_records(records);
    let mut n = 0u64;
    let mut next_stripe_event = || {
        n += 1;
        stripe_event(n, 1024)
    };
    let check = rt.block_on(source_ingest.handle(
        &serde_json::from_slice(&next_stripe_event()).unwrap(),
        now(),
    ));
    assert_eq!(check.status_code, 202, "{}", check.body);
    source_rx.try_recv().unwrap();
    g.bench_function("source_stripe_1KiB", |b| {
        b.iter_batched(
            &mut next_stripe_event,
            |bytes| {
                rt.block_on(async {
                    let payload: IngestEvent = serde_json::from_slice(&bytes).unwrap();
                    let response = source_ingest.handle(&payload, now()).await;
                    black_box(source_rx.try_recv().unwrap());
                    serde_json::to_vec(&response).unwrap()
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    // Where the handler's time goes.
    let mut g = c.benchmark_group("ingest_parts");
    let event_1k = &cases[0].1;
    g.bench_function("parse_event", |b| {
        b.iter(|| serde_json::from_slice::<IngestEvent>(black_box(event_1k)).unwrap())
    });
    g.bench_function("parse_body", |b| {
        b.iter(|| ingest::body::submissions(ingest::ContentType::Json, black_box(&one)).unwrap())
    });
    // A source's body: the same JSON, and a Jotform-shaped multipart body.
    g.bench_function("source_json_1KiB", |b| {
        b.iter(|| ingest::body::source_payload(Some("application/json"), black_box(&one)).unwrap())
    });
    let (multipart_type, multipart) = jotform_multipart(1024);
    assert_eq!(multipart.len(), 1024);
    g.bench_function("source_multipart_1KiB", |b| {
        b.iter(|| {
            ingest::body::source_payload(Some(&multipart_type), black_box(&multipart)).unwrap()
        })
    });
    let ids = shared::event::SubmissionIds::new();
    g.bench_function("submission_id", |b| b.iter(|| ids.next(black_box(now()))));
    let metrics = Metrics::to_writer("ingest", std::io::sink());
    g.bench_function("emf_line", |b| {
        b.iter(|| {
            metrics.emit(
                &[
                    shared::telemetry::Measure::count("Submissions", 1),
                    shared::telemetry::Measure::count("PublishCalls", 1),
                    shared::telemetry::Measure::count("PublishRetries", 0),
                    shared::telemetry::Measure::millis("PublishLatency", Duration::from_micros(3)),
                ],
                &[("TenantId", "acme")],
                &[&[], &["TenantId"]],
            )
        })
    });
    g.finish();

    // The digest check against one bare SHA-256 pass over the same bytes.
    let mut g = c.benchmark_group("digest");
    for size in [1024usize, 65_536, 262_144] {
        let body = vec![b'a'; size];
        let header = content_digest(&body);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("verify_content_digest", size),
            &body,
            |b, body| {
                b.iter(|| verify_content_digest(black_box(&header), black_box(body)).unwrap())
            },
        );
        g.bench_with_input(BenchmarkId::new("sha256_only", size), &body, |b, body| {
            b.iter(|| Sha256::digest(black_box(body)))
        });
    }
    g.finish();

    // Publishing 1,000 submissions: how many PutEvents calls, how long.
    let entries: Vec<BusEntry> = (0..1_000)
        .map(|i| BusEntry {
            source: "form-bridge".into(),
            detail_type: "form.submission",
            time: now(),
            detail: json!({"n": i, "payload": submission(1024)}).to_string(),
        })
        .collect();
    let (bus, mut queue) = MemoryPublisher::channel(1_000);
    let policy = RetryPolicy::default();
    let report = rt
        .block_on(publish::publish(&bus, &entries, &policy))
        .unwrap();
    println!("publish 1000 submissions: {} PutEvents calls", report.calls);
    assert_eq!(report.calls, 100);
    let mut g = c.benchmark_group("publish");
    g.bench_function("1000_submissions_in_memory", |b| {
        b.iter(|| {
            let report = rt
                .block_on(publish::publish(&bus, &entries, &policy))
                .unwrap();
            while queue.try_recv().is_ok() {}
            report
        })
    });
    g.bench_function("plan_calls_1000", |b| {
        b.iter(|| publish::plan_calls(black_box(&entries)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
