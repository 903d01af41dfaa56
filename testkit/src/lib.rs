//! Test support for Form-Bridge, one module per tool: real local stand-ins
//! for what the functions talk to in AWS, and the fixtures every crate's
//! tests share.
//!
//! - [`moto`]: the moto AWS emulator as a child process on a free port
//!   ([`MotoServer`]), stopped when dropped (or earlier, to test an outage),
//!   and SDK config pointed at any endpoint ([`loader_for`]).
//! - [`runtime_api`]: the Lambda Runtime API that a `bootstrap` binary polls
//!   ([`FakeRuntimeApi`]), serving given events and collecting the
//!   [`Answer`]s, so a test runs the real binary exactly as Lambda would.
//! - [`cold_start`](mod@cold_start): cold starts of a `bootstrap` under that stand-in, timed
//!   and sized as Lambda sees them, and the criterion group the benches use.
//! - [`http`]: a scripted HTTP/1.1 server ([`HttpServer`]) that records
//!   requests and answers, stalls or hangs up as told: a misbehaving AWS
//!   endpoint or a tenant's webhook receiver.
//! - [`faults`]: a server, or a proxy in front of moto, that fails below
//!   HTTP as networks do ([`FaultServer`]): answers lost after the call took
//!   effect, answers cut short, bytes that are not HTTP, hang-ups.
//! - [`fixtures`]: data written once: the published test vector, a tenant
//!   record builder, `tests/data/` files, and the "bad configuration fails
//!   start-up" check every Lambda binary passes.
//!
//! Missing tools are a failure with a message, never a skip.

#![allow(clippy::unwrap_used, clippy::print_stdout, unreachable_pub)]

pub mod cold_start;
pub mod faults;
pub mod fixtures;
pub mod http;
pub mod moto;
pub mod runtime_api;

pub use cold_start::{ColdStart, bench_cold_starts, cold_start, cold_start_summary, peak_rss_kib};
pub use faults::{Fault, FaultServer};
pub use fixtures::{
    DELIVERY_SECRET, TenantRecordBuilder, TestVector, VECTOR, assert_start_up_fails,
    on_source_route, signing_secret, test_data,
};
pub use http::{HttpServer, RecordedRequest, Reply, free_port, one_at_a_time};
pub use moto::{MotoServer, loader_for, workspace_root};
pub use runtime_api::{Answer, FakeRuntimeApi, assert_json_logs};
