//! Black-box tests of the `formbridge` binary: the local gateway driven over
//! HTTP like a real sender, with real local receivers, and the sender's and
//! operator's commands.

#![allow(clippy::unwrap_used)]

// `formbridge dlq` when SQS fails (docs/fault-matrix.md).
#[cfg(feature = "aws")]
mod fault_matrix;
mod harness;
// The operations on a stack exist only with the `aws` feature.
#[cfg(feature = "aws")]
mod operations;
mod serve;
mod sources;
mod tools;
