//! The local gateway, `formbridge serve`: the whole pipeline in one
//! process, with no AWS account.
//!
//! - [`serve`]: the command: it builds the Lambdas' own handlers from the
//!   functions' environment variables and runs them until Ctrl-C.
//! - [`front`]: the HTTP front, API Gateway's part: identity headers,
//!   the authorizer's payload 2.0 event, ingest's proxy event.
//! - [`bus`]: EventBridge, the rule, SQS and its dead-letter queue in
//!   memory, feeding the connector's delivery code.
//! - [`operations`]: the operator's routes (the bus's counts, the dead
//!   letters), on a listener of their own, loopback by default;
//!   [`dead_letters`] indexes the dead-letter file for them.
//! - [`connections`]: both listeners' connection cap and timeouts.

pub mod bus;
pub mod connections;
pub mod dead_letters;
pub mod front;
pub mod operations;
pub mod serve;

pub use serve::ServeArgs;
