//! Operations on a deployed stack (`template.yaml`), through the AWS SDKs:
//! the `tenants` commands that work on Secrets Manager records and
//! dedicated tenants' resources, and `dlq redrive`. Built with the `aws`
//! cargo feature (on by default); the local gateway and the sender's tools
//! never call into it.
//!
//! - [`stack`]: the table of the stack's resource names, from which the
//!   flags and the output lookups are derived.
//! - [`tenants`]: the `tenants` subcommands on a stack; [`records`] keeps
//!   the records in Secrets Manager, [`sources`] a tenant's sources in its
//!   record (`tenants source`), and [`dedicated`] a dedicated tenant's
//!   own rule, queues, mapping and alarms.
//! - [`quota`]: what the connector's concurrency and the bus's rules
//!   allow before a command adds to them.
//! - [`dlq`]: `dlq redrive`.
//! - [`clients`]: the SDK clients and how their errors are described.

pub mod clients;
pub mod dedicated;
pub mod dlq;
pub mod quota;
pub mod records;
pub mod sources;
pub mod stack;
pub mod tenants;

pub use clients::{Clients, describe, is_not_found};
