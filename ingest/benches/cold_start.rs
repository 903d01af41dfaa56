//! Cold start of the ingest `bootstrap`, measured the way Lambda sees it:
//! from spawning the process (configured only by environment variables,
//! as the stack configures it: an idempotency table) to its first poll of
//! the Runtime API ("ready"). Each sample then serves one real submission,
//! its key claimed and completed in moto's DynamoDB and the event published
//! through the AWS SDK to a moto bus, and the process's peak RSS (VmHWM) is
//! read before it is killed.
//!
//! `ingest_cold_start_isolated` does the same on the isolated path: the REST
//! API's event in an invocation that carries its tenant.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use criterion::{Criterion, criterion_group, criterion_main};
use testkit::{Answer, ColdStart, FakeRuntimeApi, MotoServer, bench_cold_starts, cold_start};

/// One cold start serving `event`, in an invocation carrying `tenant` (the
/// isolated path's tenant isolation mode) or none (the shared path).
fn one_cold_start(moto: &MotoServer, tenant: Option<&str>, event: &str) -> ColdStart {
    let runtime =
        FakeRuntimeApi::start_for_tenants([(tenant.map(str::to_owned), event.to_owned())]);
    let mut command = runtime.command(env!("CARGO_BIN_EXE_ingest"));
    command
        .envs(moto.aws_env())
        .env("EVENT_BUS_NAME", "bench-bus")
        .env("IDEMPOTENCY_TABLE", "bench-idempotency");
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
    rt.block_on(moto.create_idempotency_table("bench-idempotency"));

    let http = include_str!("../tests/data/ingest-request.json");
    let rest = include_str!("../tests/data/rest-ingest-request.json");
    bench_cold_starts(c, "ingest_cold_start", || one_cold_start(&moto, None, http));
    bench_cold_starts(c, "ingest_cold_start_isolated", || {
        one_cold_start(&moto, Some("acme"), rest)
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
