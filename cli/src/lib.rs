//! The `formbridge` command line: the local gateway and the sender's and
//! operator's tools.
//!
//! - [`serve`] runs the whole pipeline in one process: the HTTP front
//!   ([`gateway`], API Gateway's part) calls the authorizer and ingest
//!   handlers, ingest publishes to the in-process [`bus`], and the bus
//!   feeds the connector's delivery code. With no tenants file it runs a
//!   demo tenant delivering to the built-in [`receiver`].
//! - [`sender`] signs bodies (contract section 1) and posts them.
//! - [`tenant`] makes new tenant records with fresh secrets.
//! - [`tenants`] operates tenants on a deployed stack (records in Secrets
//!   Manager, [`dedicated`] tenants' own rule, queues and event source
//!   mapping), and [`dlq`] redrives dead-lettered events; [`stack`] finds
//!   the stack's resources and [`aws`] holds the clients.
//!
//! [`http`] is the small hyper server under the gateway and the receiver;
//! [`output`] is what is printed for people (logs go to stderr).

pub mod aws;
pub mod bus;
pub mod dedicated;
pub mod dlq;
pub mod gateway;
pub mod http;
pub mod output;
pub mod receiver;
pub mod sender;
pub mod serve;
pub mod stack;
pub mod tenant;
pub mod tenants;
