//! Runs the warm authorizer handler N times (default 10 000) on the test
//! fixture, for instruction counting with callgrind, which is repeatable
//! where wall-clock benchmarks on a shared machine are not:
//!
//! ```sh
//! cargo build --release -p authorizer --example handler_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     "$(scripts/target-dir)/release/examples/handler_loop" 10000
//! ```
//!
//! Instructions per invocation = (total at N) - (total at 0), divided by N.
//! A second argument `deny` runs a forged signature instead (denied), and
//! `rest` the isolated REST API's event (allowed, answered with a policy).

#![allow(clippy::unwrap_used)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;

use authorizer::AuthorizerEvent;
use support::NOW;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let authorizer = support::warm_authorizer();
    let mode = std::env::args().nth(2);
    let deny = mode.as_deref() == Some("deny");
    let event = match mode.as_deref() {
        Some("deny") => support::forged_event(),
        Some("rest") => support::rest_event(),
        _ => support::signed_event(),
    };
    let mut allowed = 0usize;
    rt.block_on(async {
        for _ in 0..n {
            let payload: AuthorizerEvent = serde_json::from_slice(&event).unwrap();
            let response = authorizer.handle(&payload, NOW).await.unwrap();
            black_box(serde_json::to_vec(&response).unwrap());
            allowed += usize::from(response.is_authorized());
        }
    });
    assert_eq!(allowed, if deny { 0 } else { n });
}
