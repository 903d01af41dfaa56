//! `formbridge tenants create|rotate|suspend|resume|list|show|delete`:
//! tenants on a deployed stack.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use shared::{Routing, TenantId, TenantStatus};

use super::dedicated::Scaling;
use super::records::{Creation, RECOVERY_WINDOW_DAYS, Records, Rotation};
use super::stack::{Stack, StackArgs};
use crate::output;
use crate::tenants::{RecordArgs, parse_tenant_id};

/// The `tenants` commands that operate on a deployed stack.
#[derive(Subcommand)]
pub enum StackCommand {
    /// Create a tenant on the stack: fresh secrets, its record, and with --dedicated its own delivery path.
    #[command(after_help = "Examples:\n  \
        formbridge tenants create acme --stack form-bridge \\\n      \
            --destination https://hooks.acme.example/forms\n  \
        formbridge tenants create bigco --stack form-bridge --dedicated \\\n      \
            --max-concurrency 20 --destination https://bigco.example/in\n\n\
        Prints the record, secrets included: give signing_secrets[0] to the\n\
        sender and destination.secret to the receiving endpoint. A dedicated\n\
        tenant gets its own rule, queue, dead-letter queue, alarms and event\n\
        source mapping on the connector, created before its record so its\n\
        events always have a route; running create again completes a failed one.")]
    Create(CreateArgs),
    /// Add a new current signing secret (the previous stay valid), or with --expire drop the previous ones.
    #[command(after_help = "Examples:\n  \
        formbridge tenants rotate acme --stack form-bridge\n      \
            prints the new secret\n  \
        formbridge tenants rotate acme --stack form-bridge --expire\n      \
            once the sender uses it\n\n\
        Between the two, requests signed with either secret are accepted.")]
    Rotate(RotateArgs),
    /// Deny every request of a tenant (accepted events are still delivered).
    Suspend(IdArgs),
    /// Accept a suspended tenant's requests again (and put back a dedicated tenant's missing resources).
    Resume(IdArgs),
    /// List the stack's tenants: ID, status, routing, destination host.
    List(ListArgs),
    /// Print a tenant's record: only fields known to be safe, the others hidden, unless --reveal.
    Show(ShowArgs),
    /// Delete a suspended tenant: its dedicated resources, then its record (restorable for 7 days).
    #[command(after_help = "Examples:\n  \
        formbridge tenants suspend acme --stack form-bridge\n  \
        formbridge tenants delete acme --stack form-bridge\n\n\
        A tenant must have been suspended for longer than the functions' cache\n\
        TTL (--secret-cache-ttl, output SecretCacheTtlSeconds) plus 15 minutes\n\
        (a record is still served while Secrets Manager fails) and 15 s, so no\n\
        cached record can still accept its requests, and a dedicated tenant's\n\
        queues must be empty, unless --force.")]
    Delete(DeleteArgs),
}

/// `tenants create`.
#[derive(Args)]
pub struct CreateArgs {
    /// The tenant ID: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    #[command(flatten)]
    record: RecordArgs,
    /// Deliver through the tenant's own queue and connector mapping instead of the shared ones.
    #[arg(long)]
    dedicated: bool,
    /// Dedicated: records per connector invocation.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "dedicated", value_parser = clap::value_parser!(i32).range(1..=10))]
    batch_size: i32,
    /// Dedicated: most connector invocations at once for this tenant.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "dedicated", value_parser = clap::value_parser!(i32).range(2..=1000))]
    max_concurrency: i32,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants rotate`.
#[derive(Args)]
pub struct RotateArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Remove every signing secret but the current one instead of adding one.
    #[arg(long)]
    expire: bool,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants suspend` and `resume`.
#[derive(Args)]
pub struct IdArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Print the whole record, secrets included.
    #[arg(long)]
    reveal: bool,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants delete`.
#[derive(Args)]
pub struct DeleteArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Delete an active tenant, and a dedicated tenant's undelivered events.
    #[arg(long)]
    force: bool,
    /// Delete the record at once instead of after a 7-day recovery window.
    #[arg(long)]
    without_recovery: bool,
    #[command(flatten)]
    stack: StackArgs,
}

impl StackCommand {
    /// Runs the command against the stack.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        crate::runtime::current_thread()?.block_on(self.run_async())
    }

    fn stack_args(&mut self) -> StackArgs {
        let stack = match self {
            Self::Create(a) => &mut a.stack,
            Self::Rotate(a) => &mut a.stack,
            Self::Suspend(a) | Self::Resume(a) => &mut a.stack,
            Self::List(a) => &mut a.stack,
            Self::Show(a) => &mut a.stack,
            Self::Delete(a) => &mut a.stack,
        };
        std::mem::take(stack)
    }

    async fn run_async(mut self) -> anyhow::Result<ExitCode> {
        let (aws, stack) = self.stack_args().resolve().await?;
        let records = Records::new(&aws, &stack);
        match self {
            Self::Create(args) => create(&records, &stack, args).await?,
            Self::Rotate(RotateArgs { id, expire, .. }) => {
                match records.rotate(&id, expire).await? {
                    Rotation::Added { secret, active } => {
                        output::line(format_args!("{}", secret.expose()));
                        eprintln!(
                            "formbridge: tenant {id} now has {}, this one first. The \
                             functions accept it within their cache TTL ({} s): give it to the \
                             sender after that, and once the sender uses it, run \
                             formbridge tenants rotate {id} --expire{}",
                            output::count(active as u64, "active signing secret"),
                            stack.cache_ttl()?,
                            stack.options()
                        );
                    }
                    Rotation::Expired { removed } => output::line(format_args!(
                        "tenant {id}: {} removed; only the current one is accepted",
                        output::count(removed as u64, "previous signing secret")
                    )),
                }
            }
            Self::Suspend(IdArgs { id, .. }) => {
                set_status(&records, &stack, &id, TenantStatus::Suspended).await?;
            }
            Self::Resume(IdArgs { id, .. }) => {
                set_status(&records, &stack, &id, TenantStatus::Active).await?;
            }
            Self::List(_) => {
                output::line(format_args!(
                    "{:<24} {:<10} {:<10} DESTINATION",
                    "TENANT", "STATUS", "ROUTING"
                ));
                for summary in records.list().await? {
                    output::line(format_args!("{summary}"));
                }
            }
            Self::Show(ShowArgs { id, reveal, .. }) => {
                let record = records.read(&id).await?;
                let shown = if reveal {
                    record.to_pretty_json()
                } else {
                    serde_json::to_string_pretty(&record.redacted())?
                };
                output::line(format_args!("{shown}"));
            }
            Self::Delete(DeleteArgs {
                id,
                force,
                without_recovery,
                ..
            }) => {
                records.delete(&id, force, without_recovery).await?;
                output::line(format_args!("tenant {id}: deleted"));
                if !without_recovery {
                    eprintln!(
                        "formbridge: its record can be restored for {RECOVERY_WINDOW_DAYS} days: \
                         aws secretsmanager restore-secret --secret-id {}{id}",
                        stack.secret_prefix()
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

async fn create(records: &Records<'_>, stack: &Stack, args: CreateArgs) -> anyhow::Result<()> {
    let id = args.id;
    let routing = if args.dedicated {
        Routing::Dedicated
    } else {
        Routing::Shared
    };
    let record = records
        .create(&Creation {
            id: id.clone(),
            record: args.record.new_tenant(routing),
            dedicated: args.dedicated.then_some(Scaling {
                batch_size: args.batch_size,
                max_concurrency: args.max_concurrency,
            }),
        })
        .await?;
    output::line(format_args!("{}", record.to_pretty_json()));
    eprintln!(
        "formbridge: created tenant {id} ({routing} routing): give signing_secrets[0] to the sender{}",
        if args.record.destination.is_some() {
            " and destination.secret to the receiving endpoint"
        } else {
            "; it has no destination yet, so its events cannot be delivered"
        }
    );
    if let Some(url) = stack.api_url() {
        eprintln!(
            "formbridge: try it: FORMBRIDGE_SECRET=... formbridge send --url {url} --tenant {id} body.json"
        );
    }
    Ok(())
}

/// Suspends or resumes a tenant and says so.
async fn set_status(
    records: &Records<'_>,
    stack: &Stack,
    id: &TenantId,
    status: TenantStatus,
) -> anyhow::Result<()> {
    let changed = records.set_status(id, status).await?;
    output::line(format_args!(
        "tenant {id}: {}{status}",
        if changed { "now " } else { "already " }
    ));
    if changed {
        eprintln!(
            "formbridge: the functions see the change within their cache TTL ({} s)",
            stack.cache_ttl()?
        );
    }
    Ok(())
}
