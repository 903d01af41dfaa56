//! Runs the warm authorizer handler N times (default 10 000) on the test
//! fixture, for instruction counting with callgrind, which is repeatable
//! where wall-clock benchmarks on a shared machine are not:
//!
//! ```sh
//! cargo build --release -p authorizer --example handler_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/handler_loop 10000
//! ```
//!
//! Instructions per invocation = (total at N) - (total at 0), divided by N.
//! A second argument `deny` runs a forged signature instead (denied).

#![allow(clippy::unwrap_used)]

use authorizer::{Authorizer, AuthorizerEvent, Config};
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;

const NOW: i64 = 1_767_225_600;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryTenantStore::from_json(
        r#"[{"tenant_id":"acme","status":"active",
             "signing_secrets":["fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c"],
             "rate_limit":{"requests_per_second":1000000,"burst":1000000}}]"#,
    )
    .unwrap();
    let config = Config::from_env(&shared::config::Env::new(|_| None)).unwrap();
    let authorizer = Authorizer::new(
        store,
        &config,
        Metrics::to_writer("authorizer", std::io::sink()),
    );
    let mut event = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/authorizer-request.json"
    ))
    .unwrap();
    let deny = std::env::args().nth(2).as_deref() == Some("deny");
    if deny {
        let mut forged: serde_json::Value = serde_json::from_slice(&event).unwrap();
        forged["headers"]["x-formbridge-signature"] = format!("v1={}", "0".repeat(64)).into();
        event = serde_json::to_vec(&forged).unwrap();
    }
    let mut allowed = 0usize;
    rt.block_on(async {
        for _ in 0..n {
            let payload: AuthorizerEvent = serde_json::from_slice(&event).unwrap();
            let response = authorizer.handle(&payload, NOW).await;
            let out = serde_json::to_vec(&response).unwrap();
            allowed += usize::from(out.starts_with(br#"{"isAuthorized":true"#));
        }
    });
    assert_eq!(allowed, if deny { 0 } else { n });
}
