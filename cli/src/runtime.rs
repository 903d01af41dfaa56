//! The tokio runtimes the commands run on.

use anyhow::Context as _;
use tokio::runtime::{Builder, Runtime};

/// One worker per core: the local gateway.
pub fn multi_thread() -> anyhow::Result<Runtime> {
    build(Builder::new_multi_thread())
}

/// The current thread only: tools that make a few requests, and the
/// receiver (a test tool that shares the machine with what it measures).
pub fn current_thread() -> anyhow::Result<Runtime> {
    build(Builder::new_current_thread())
}

fn build(mut builder: Builder) -> anyhow::Result<Runtime> {
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
