//! The `formbridge` command line, grouped by role. The roles never call
//! each other, except that the local gateway's built-in default delivers
//! to the sender tools' receiver.
//!
//! - [`gateway`]: `formbridge serve`, the whole pipeline in one process
//!   (the Lambdas' handlers behind an HTTP front, an in-process bus).
//! - [`sender`]: `sign`, `send` and `receive`, for people who send to
//!   Form-Bridge and people who receive from it.
//! - [`tenants`]: `tenants new` makes a record here; the other `tenants`
//!   subcommands and `dlq` work on a deployed stack through the AWS SDKs
//!   ([`aws`], behind the default-on `aws` cargo feature, so that a
//!   gateway-only build compiles none of those SDKs).
//!
//! Each command's arguments are declared beside the code that runs them;
//! `main.rs` only wires them. [`http`] is the small hyper server under the
//! gateway and the receiver, [`output`] what is printed for people (logs
//! go to stderr), [`runtime`] the tokio runtimes.

#[cfg(feature = "aws")]
pub mod aws;
pub mod gateway;
pub mod http;
pub mod output;
pub mod runtime;
pub mod sender;
pub mod tenants;
