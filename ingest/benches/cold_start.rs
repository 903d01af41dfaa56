//! Cold start of the ingest `bootstrap`, measured the way Lambda sees it:
//! from spawning the process (configured only by environment variables) to
//! its first poll of the Runtime API ("ready"). Each sample then serves one
//! real submission published through the AWS SDK to a moto bus, and the
//! process's peak RSS (VmHWM) is read before it is killed.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use testkit::{Answer, FakeRuntimeApi, MotoServer, peak_rss_kib};

struct Sample {
    ready: Duration,
    first_invocation: Duration,
    peak_rss_kib: u64,
}

fn one_cold_start(moto: &MotoServer) -> Sample {
    let runtime =
        FakeRuntimeApi::start([include_str!("../tests/data/ingest-request.json").to_string()]);
    let spawned = Instant::now();
    let mut child = runtime
        .command(env!("CARGO_BIN_EXE_ingest"))
        .envs(moto.aws_env())
        .env("EVENT_BUS_NAME", "bench-bus")
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
        matches!(&answers[..], [Answer::Response(r)] if r.contains(r#""statusCode":202"#)),
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
    let pattern = r#"{"source":["form-bridge"]}"#;
    rt.block_on(moto.route_to_queue("bench-bus", "all", pattern));

    let mut samples = Vec::new();
    let mut g = c.benchmark_group("ingest_cold_start");
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
        "ingest_cold_start: {} samples; first invocation (published to moto) median {:?}; \
         peak RSS {:.1}..{:.1} MiB",
        samples.len(),
        median_first,
        min_rss as f64 / 1024.0,
        max_rss as f64 / 1024.0
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
