//! Cold start of the authorizer `bootstrap`, measured the way Lambda sees it:
//! from spawning the process (configured only by environment variables, as
//! Lambda does) to its first poll of the Runtime API for an invocation
//! ("ready"). Each sample then serves one real, allowed invocation whose
//! tenant record comes from a moto server through the AWS SDK, and the
//! process's peak RSS (VmHWM) is read before it is killed.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use testkit::{Answer, FakeRuntimeApi, MotoServer, peak_rss_kib};

const SECRET: &str = "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";

fn signed_event() -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../tests/data/authorizer-request.json")).unwrap();
    let tenant = shared::TenantId::parse("acme").unwrap();
    let h = shared::signature::sign_request(
        &shared::Secret::new(SECRET),
        &tenant,
        b"{}",
        shared::signature::unix_now(),
    );
    event["headers"]["x-formbridge-timestamp"] = h.timestamp.into();
    event["headers"]["content-digest"] = h.content_digest.into();
    event["headers"]["x-formbridge-signature"] = h.signature.into();
    event.to_string()
}

struct Sample {
    ready: Duration,
    first_invocation: Duration,
    peak_rss_kib: u64,
}

fn one_cold_start(moto: &MotoServer) -> Sample {
    let runtime = FakeRuntimeApi::start([signed_event()]);
    let spawned = Instant::now();
    let mut child = runtime
        .command(env!("CARGO_BIN_EXE_authorizer"))
        .envs(moto.aws_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = runtime
        .wait_first_poll(Duration::from_secs(10))
        .expect("bootstrap polled");
    let answers = runtime.wait_for_answers(1, Duration::from_secs(10));
    let answered = Instant::now();
    assert!(
        matches!(&answers[..], [Answer::Response(r)] if r.contains(r#""isAuthorized":true"#)),
        "{answers:?}"
    );
    let peak_rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    Sample {
        ready: ready - spawned,
        first_invocation: answered - ready,
        peak_rss_kib,
    }
}

fn bench(c: &mut Criterion) {
    let moto = MotoServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = json!({"tenant_id": "acme", "status": "active", "signing_secrets": [SECRET]});
    rt.block_on(moto.put_secret("form-bridge/tenants/acme", &record.to_string()));

    let mut samples = Vec::new();
    let mut g = c.benchmark_group("authorizer_cold_start");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("spawn_to_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = one_cold_start(&moto);
                total += s.ready;
                samples.push(s);
            }
            total
        })
    });
    g.finish();

    samples.sort_by_key(|s| s.first_invocation);
    let median_first = samples[samples.len() / 2].first_invocation;
    let max_rss = samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
    let min_rss = samples.iter().map(|s| s.peak_rss_kib).min().unwrap_or(0);
    println!(
        "authorizer_cold_start: {} samples; first invocation (record fetched from moto) median {:?}; \
         peak RSS {:.1}..{:.1} MiB",
        samples.len(),
        median_first,
        min_rss as f64 / 1024.0,
        max_rss as f64 / 1024.0
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
