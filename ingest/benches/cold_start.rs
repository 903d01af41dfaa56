//! Cold start of the ingest `bootstrap`, measured the way Lambda sees it:
//! from spawning the process (configured only by environment variables) to
//! its first poll of the Runtime API ("ready"). Each sample then serves one
//! real submission published through the AWS SDK to a moto bus, and the
//! process's peak RSS (VmHWM) is read before it is killed.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use testkit::{Answer, ColdStart, FakeRuntimeApi, MotoServer, cold_start, cold_start_summary};

fn one_cold_start(moto: &MotoServer) -> ColdStart {
    let event = include_str!("../tests/data/ingest-request.json").to_string();
    let runtime = FakeRuntimeApi::start([event]);
    let mut command = runtime.command(env!("CARGO_BIN_EXE_ingest"));
    command
        .envs(moto.aws_env())
        .env("EVENT_BUS_NAME", "bench-bus");
    let sample = cold_start(&runtime, &mut command);
    assert!(
        matches!(&sample.answer, Some(Answer::Response(r)) if r.contains(r#""statusCode":202"#)),
        "{sample:?}"
    );
    sample
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

    println!("{}", cold_start_summary("ingest_cold_start", &mut samples));
}

criterion_group!(benches, bench);
criterion_main!(benches);
