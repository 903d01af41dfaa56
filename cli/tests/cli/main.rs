//! Black-box tests of the `formbridge` binary: the local gateway driven over
//! HTTP like a real sender, with real local receivers, and the sender's and
//! operator's commands.

#![allow(clippy::unwrap_used)]

mod harness;
mod operations;
mod serve;
mod tools;
