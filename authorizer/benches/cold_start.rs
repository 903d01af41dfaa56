//! Cold start of the authorizer `bootstrap`, measured the way Lambda sees it:
//! from spawning the process (configured only by environment variables, as
//! Lambda does) to its first poll of the Runtime API for an invocation
//! ("ready"). Each sample then serves one real, allowed invocation whose
//! tenant record comes from a moto server through the AWS SDK, and the
//! process's peak RSS (VmHWM) is read before it is killed.
//!
//! Needs moto: run `scripts/test` once (it installs it into `.venv`).

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use criterion::{Criterion, criterion_group, criterion_main};
use testkit::{
    Answer, ColdStart, FakeRuntimeApi, MotoServer, TenantRecordBuilder, VECTOR, bench_cold_starts,
    cold_start,
};

fn signed_event() -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../tests/data/authorizer-request.json")).unwrap();
    let tenant = shared::TenantId::parse("acme").unwrap();
    let h = shared::signature::sign_request(
        &shared::Secret::new(VECTOR.secret),
        &tenant,
        b"{}",
        shared::signature::unix_now(),
    );
    event["headers"]["x-formbridge-timestamp"] = h.timestamp.into();
    event["headers"]["content-digest"] = h.content_digest.into();
    event["headers"]["x-formbridge-signature"] = h.signature.into();
    event.to_string()
}

fn one_cold_start(moto: &MotoServer) -> ColdStart {
    let runtime = FakeRuntimeApi::start([signed_event()]);
    let mut command = runtime.command(env!("CARGO_BIN_EXE_authorizer"));
    let sample = cold_start(&runtime, command.envs(moto.aws_env()));
    assert!(
        matches!(&sample.answer, Some(Answer::Response(r)) if r.contains(r#""isAuthorized":true"#)),
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
    let record = TenantRecordBuilder::new("acme")
        .secret(VECTOR.secret)
        .json();
    rt.block_on(moto.put_secret("form-bridge/tenants/acme", &record));

    bench_cold_starts(c, "authorizer_cold_start", || one_cold_start(&moto));
}

criterion_group!(benches, bench);
criterion_main!(benches);
