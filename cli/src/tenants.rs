//! `formbridge tenants`: `new` makes a record on this machine; with the
//! `aws` feature, the other subcommands operate on a deployed stack
//! ([`crate::aws::tenants`]).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use shared::tenant::{MAX_RATE_LIMIT, NewTenant, TenantDocument};
use shared::{Routing, TenantId};

use crate::output;

/// `formbridge tenants`: new records, and operations on a deployed stack.
#[derive(Args)]
#[cfg_attr(
    feature = "aws",
    command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants create acme --stack form-bridge \\\n      \
            --destination https://hooks.acme.example/forms\n  \
        formbridge tenants list --stack form-bridge\n\n\
        On a stack, AWS credentials and region come from the standard\n\
        environment (AWS_PROFILE, AWS_REGION, ...), and changes reach the\n\
        functions within their cache TTL (SECRET_CACHE_TTL_SECONDS).")
)]
#[cfg_attr(
    not(feature = "aws"),
    command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n\n\
        This build has no operations on a deployed stack (create, rotate,\n\
        suspend, resume, list, show, delete, promote, demote, scale): they\n\
        need the full build, cargo install --locked --path cli")
)]
pub struct TenantsArgs {
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Print a new tenant record with freshly generated secrets (no AWS).
    #[command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants new acme --destination http://127.0.0.1:8080/ > acme.json\n  \
        formbridge serve --tenants acme.json --allow-private-destinations\n\n\
        The record is a tenants file by itself (formbridge serve --tenants takes\n\
        one record or an array of them), or the secret form-bridge/tenants/<ID>\n\
        in Secrets Manager. Give signing_secrets[0] to the sender and\n\
        destination.secret to the receiving endpoint. It holds secrets: store\n\
        it accordingly.")]
    New(NewArgs),
    #[cfg(feature = "aws")]
    #[command(flatten)]
    Stack(crate::aws::tenants::StackCommand),
}

#[derive(Args)]
struct NewArgs {
    /// The tenant ID: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    #[command(flatten)]
    record: RecordArgs,
}

/// What a new record holds besides its secrets: the options `tenants new`
/// and `tenants create` share.
#[derive(Args)]
pub struct RecordArgs {
    /// Where the tenant's events are delivered (https and a public address; on this machine's gateway, http and loopback with --allow-private-destinations).
    #[arg(long, value_name = "URL")]
    pub destination: Option<String>,
    /// Requests per second allowed (burst: twice that). Default: not limited.
    #[arg(
        long,
        value_name = "RPS",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RATE_LIMIT / 2))
    )]
    pub rate_limit: Option<u32>,
}

impl RecordArgs {
    /// The record's contents with this routing.
    pub fn new_tenant(&self, routing: Routing) -> NewTenant<'_> {
        NewTenant {
            destination: self.destination.as_deref(),
            rate_limit: self.rate_limit,
            routing,
        }
    }
}

/// A tenant ID argument, checked by clap.
pub fn parse_tenant_id(id: &str) -> Result<TenantId, String> {
    TenantId::parse(id).map_err(|e| e.to_string())
}

impl TenantsArgs {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            TenantsCommand::New(args) => args.run(),
            #[cfg(feature = "aws")]
            TenantsCommand::Stack(command) => command.run(),
        }
    }
}

impl NewArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let record = TenantDocument::new(&self.id, &self.record.new_tenant(Routing::Shared))?;
        output::line(format_args!("{}", record.to_pretty_json()));
        if self.record.destination.is_none() {
            eprintln!(
                "formbridge: note: no --destination, so the record has none and its events cannot be delivered yet"
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
