//! Cold start of the `connector` bootstrap, measured the way Lambda sees
//! it: from spawning the process (configured only by environment
//! variables) to its first poll of the Runtime API ("ready"). Each sample
//! then handles one SQS batch with one record: the tenant record read from
//! moto's Secrets Manager through the SDK, and one signed delivery to a
//! local endpoint. The process's peak RSS (VmHWM) is read before it is
//! killed.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use criterion::{Criterion, criterion_group, criterion_main};
use testkit::{
    Answer, ColdStart, DELIVERY_SECRET, FakeRuntimeApi, HttpServer, MotoServer, Reply,
    TenantRecordBuilder, bench_cold_starts, cold_start,
};

fn one_cold_start(moto: &MotoServer) -> ColdStart {
    let event = include_str!("../tests/data/sqs-event.json").to_string();
    let runtime = FakeRuntimeApi::start([event]);
    let mut command = runtime.command(env!("CARGO_BIN_EXE_connector"));
    command
        .envs(moto.aws_env())
        .env("ALLOW_PRIVATE_DESTINATIONS", "true");
    let sample = cold_start(&runtime, &mut command);
    assert!(
        matches!(&sample.answer, Some(Answer::Response(r)) if r == r#"{"batchItemFailures":[]}"#),
        "{sample:?}"
    );
    sample
}

fn bench(c: &mut Criterion) {
    let moto = MotoServer::start();
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    let record = TenantRecordBuilder::new("acme")
        .destination(&server.url(), DELIVERY_SECRET)
        .json();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(moto.put_secret("form-bridge/tenants/acme", &record));

    bench_cold_starts(c, "connector_cold_start", || one_cold_start(&moto));
    println!("deliveries received: {}", server.requests().len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
