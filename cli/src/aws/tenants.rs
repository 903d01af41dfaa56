//! `formbridge tenants create|rotate|suspend|resume|list|show|delete`,
//! `promote|demote|scale`, `isolate|share`, and `source`
//! ([`super::sources`]): tenants on a deployed stack.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use shared::{Isolation, Routing, TenantId, TenantStatus};

use super::dedicated::{ScaleChange, Scaling};
use super::records::{
    Creation, Demotion, IsolationChange, RECOVERY_WINDOW_DAYS, Records, Rotation, Summary,
};
use super::stack::{self, Stack, StackArgs};
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
            --max-concurrency 20 --destination https://bigco.example/in\n  \
        formbridge tenants create regco --stack form-bridge --isolated \\\n      \
            --destination https://regco.example/in\n\n\
        Prints the record, secrets included: give signing_secrets[0] to the\n\
        sender and destination.secret to the receiving endpoint. A dedicated\n\
        tenant gets its own rule, queue, dead-letter queue, alarms and event\n\
        source mapping on the connector, created before its record so its\n\
        events always have a route; running create again completes a failed one.\n\
        An isolated tenant's requests go to the stack's isolated API\n\
        (IsolatedApiUrl, a stack deployed with EnableTenantIsolation=true;\n\
        refused without it), whose ingest runs each tenant in execution\n\
        environments of its own; its senders sign as on the shared API.")]
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
    /// List the stack's tenants: ID, status, routing, isolation, destination host.
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
        cached record can still accept its requests; its events in the shared\n\
        dead-letter queue must be redriven, and its own queues (a dedicated or\n\
        demoted tenant's) empty, unless --force. A dedicated tenant's rule goes\n\
        first; 60 s later its mapping, and anything then found on its queues\n\
        goes to the shared dead-letter queue.")]
    Delete(DeleteArgs),
    /// Give a shared tenant its own delivery path, then route its events there.
    #[command(after_help = "Examples:\n  \
        formbridge tenants promote slowco --stack form-bridge\n  \
        formbridge tenants promote slowco --stack form-bridge \\\n      \
            --max-concurrency 10 --batch-size 5\n\n\
        Creates the tenant's queue, dead-letter queue, rule and mapping (as\n\
        create --dedicated does), then switches its record to dedicated\n\
        routing. Events already on the shared queue stay there and are\n\
        delivered by the shared connector: nothing has to move. Refused when\n\
        the connector's mappings would need more concurrency than it can get.\n\
        Running it again after an interruption completes it.")]
    Promote(PromoteArgs),
    /// Route a dedicated tenant's events through the shared queue again, then remove its own path.
    #[command(after_help = "Examples:\n  \
        formbridge tenants demote bigco --stack form-bridge\n  \
        formbridge tenants demote bigco --stack form-bridge --no-wait\n\n\
        Switches the record to shared routing first. The tenant's rule stays\n\
        until no function can hold the old record (the cache TTL, plus 15\n\
        minutes while Secrets Manager fails, plus 15 s: about 20 minutes by\n\
        default); its queue stays 60 s after the rule's removal and until it\n\
        is empty, then the mapping goes, anything left on the queue moves to\n\
        the shared queue, and the queue goes. Its dead-letter queue is removed\n\
        when empty, else kept:\n\
        formbridge dlq redrive --from ID sends its events to the shared queue.\n\
        Without --no-wait it waits for each step; with it, run it again later:\n\
        every run continues from what exists.")]
    Demote(DemoteArgs),
    /// Change a dedicated tenant's mapping: most connector invocations at once, records per invocation.
    #[command(after_help = "Examples:\n  \
        formbridge tenants scale bigco --stack form-bridge --max-concurrency 20\n  \
        formbridge tenants scale bigco --stack form-bridge --batch-size 1\n\n\
        Refused when the connector's mappings together (the shared queue's\n\
        and every dedicated tenant's) would need more concurrency than the\n\
        connector can get: its reserved concurrency (the stack's\n\
        ConnectorReservedConcurrency), else the account's unreserved pool.")]
    Scale(ScaleArgs),
    /// Move a tenant to the isolated API, whose ingest runs each tenant in execution environments of its own.
    #[command(after_help = "Examples:\n  \
        formbridge tenants isolate regco --stack form-bridge\n\n\
        Sets the record's isolation to per_tenant and prints the isolated\n\
        API's URL (the stack's IsolatedApiUrl output; refused on a stack\n\
        deployed without EnableTenantIsolation=true). The tenant's senders and\n\
        providers must switch to it: once the functions' cache TTL\n\
        (SecretCacheTtlSeconds) has passed, the shared API denies its\n\
        requests. Signing, secrets, sources and routing are unchanged.\n\
        formbridge tenants share ID moves it back.")]
    Isolate(IsolationArgs),
    /// Move an isolated tenant back to the shared API.
    #[command(after_help = "Examples:\n  \
        formbridge tenants share regco --stack form-bridge\n\n\
        Removes the record's isolation (shared is the default) and prints the\n\
        shared API's URL (the stack's ApiUrl output). The tenant's senders and\n\
        providers must switch to it: once the functions' cache TTL\n\
        (SecretCacheTtlSeconds) has passed, the isolated API denies its\n\
        requests.")]
    Share(IsolationArgs),
    /// A tenant's sources, where hosted form builders and providers post: add, rotate, remove.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
            formbridge tenants source add acme typeform-main --provider typeform \\\n      \
                --stack form-bridge\n  \
            formbridge tenants source rotate acme typeform-main --stack form-bridge\n  \
            formbridge tenants source remove acme typeform-main --stack form-bridge\n\n\
            A source is where a form builder or provider posts for the tenant:\n\
            /v1/tenants/<ID>/sources/<SOURCE> on the stack's API, each request\n\
            verified as the provider signs it, with the source's secrets."
    )]
    Source(super::sources::SourceCommand),
}

/// `tenants promote`.
#[derive(Args)]
pub struct PromoteArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Records per connector invocation (default 10, or an existing mapping's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=10))]
    batch_size: Option<i32>,
    /// Most connector invocations at once for this tenant (default 5, or an existing mapping's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(2..=1000))]
    max_concurrency: Option<i32>,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants demote`.
#[derive(Args)]
pub struct DemoteArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Do what can be done now and say what is left, instead of waiting for it.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants scale`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("scale").required(true).multiple(true))]
pub struct ScaleArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// Most connector invocations at once for this tenant.
    #[arg(long, value_name = "N", group = "scale", value_parser = clap::value_parser!(i32).range(2..=1000))]
    max_concurrency: Option<i32>,
    /// Records per connector invocation.
    #[arg(long, value_name = "N", group = "scale", value_parser = clap::value_parser!(i32).range(1..=10))]
    batch_size: Option<i32>,
    #[command(flatten)]
    stack: StackArgs,
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

/// `tenants isolate` and `share`.
#[derive(Args)]
pub struct IsolationArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
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
    /// Skip the checks: delete an active tenant and the events left in its own queues, and leave its dead letters in the shared one.
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
            Self::Promote(a) => &mut a.stack,
            Self::Demote(a) => &mut a.stack,
            Self::Scale(a) => &mut a.stack,
            Self::Isolate(a) | Self::Share(a) => &mut a.stack,
            Self::Source(command) => return command.stack_args(),
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
                output::line(format_args!("{}", Summary::HEADING));
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
                let moved = records.delete(&id, force, without_recovery).await?;
                output::line(format_args!("tenant {id}: deleted"));
                if moved > 0 {
                    eprintln!(
                        "formbridge: {} found in its own queues after they had emptied (by \
                         their approximate counts) went to the shared dead-letter queue: they \
                         stay there, undeliverable without a record, until restoring the \
                         record and `formbridge dlq redrive --from shared{}`",
                        output::count(moved, "event"),
                        stack.options()
                    );
                }
                if !without_recovery {
                    eprintln!(
                        "formbridge: its record can be restored for {RECOVERY_WINDOW_DAYS} days: \
                         aws secretsmanager restore-secret --secret-id {}{id}",
                        stack.secret_prefix()
                    );
                }
            }
            Self::Source(command) => command.run(&records, &stack).await?,
            Self::Isolate(IsolationArgs { id, .. }) => {
                set_isolation(&records, &stack, &id, Isolation::PerTenant).await?;
            }
            Self::Share(IsolationArgs { id, .. }) => {
                set_isolation(&records, &stack, &id, Isolation::Shared).await?;
            }
            Self::Promote(args) => promote(&records, &stack, args).await?,
            Self::Demote(args) => demote(&records, &stack, args).await?,
            Self::Scale(ScaleArgs {
                id,
                max_concurrency,
                batch_size,
                ..
            }) => {
                let change = ScaleChange {
                    batch_size,
                    max_concurrency,
                };
                let (before, after) = records.scale(&id, change).await?;
                let max = before
                    .max_concurrency
                    .map_or_else(|| "none".to_owned(), |n| n.to_string());
                let batch = before
                    .batch_size
                    .map_or_else(|| "unset".to_owned(), |n| n.to_string());
                output::line(format_args!(
                    "tenant {id}: max concurrency {max} -> {}, batch size {batch} -> {}",
                    after.max_concurrency, after.batch_size
                ));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

async fn promote(records: &Records<'_>, stack: &Stack, args: PromoteArgs) -> anyhow::Result<()> {
    let id = args.id;
    let change = ScaleChange {
        batch_size: args.batch_size,
        max_concurrency: args.max_concurrency,
    };
    let promoted = records.promote(&id, change).await?;
    output::line(format_args!(
        "tenant {id}: {}dedicated routing (queue {}, max concurrency {}, batch size {})",
        if promoted.already { "already " } else { "now " },
        promoted.queue,
        promoted.scaling.max_concurrency,
        promoted.scaling.batch_size
    ));
    if !promoted.already {
        eprintln!(
            "formbridge: the functions route {id}'s new events to its own queue within their \
             cache TTL ({} s). Its events already on the shared queue, and those routed there \
             until then, are delivered by the shared connector as before: nothing has to move.",
            stack.cache_ttl()?
        );
    }
    Ok(())
}

/// How often a waiting demote looks at the queue again.
const DEMOTE_POLL: std::time::Duration = std::time::Duration::from_secs(5);

async fn demote(records: &Records<'_>, stack: &Stack, args: DemoteArgs) -> anyhow::Result<()> {
    let id = args.id;
    let again = format!("formbridge tenants demote {id}{}", stack.options());
    let mut said = None;
    let mut first = true;
    loop {
        // Only the first run may switch the record: finding it dedicated
        // later means a promote landed meanwhile, which the demote leaves.
        let run = records.demote(&id, first).await?;
        first = false;
        if run.switched {
            output::line(format_args!("tenant {id}: now shared routing"));
        }
        if run.moved > 0 {
            output::line(format_args!(
                "tenant {id}: moved {} left on its queue to the shared queue",
                output::count(run.moved, "event")
            ));
        }
        if run.moved_dead_letters > 0 {
            output::line(format_args!(
                "tenant {id}: moved {} left in its dead-letter queue to the shared one",
                output::count(run.moved_dead_letters, "event")
            ));
            eprintln!(
                "formbridge: redrive them once the cause is fixed (`formbridge dlq redrive \
                 --from shared{}`: they go to the shared queue)",
                stack.options()
            );
        }
        let wait = match run.state {
            Demotion::Done {
                dead_lettered: 0, ..
            } => {
                output::line(format_args!(
                    "tenant {id}: shared routing; no dedicated path left"
                ));
                return Ok(());
            }
            Demotion::Done {
                dead_lettered,
                dead_letter_queue,
            } => {
                output::line(format_args!(
                    "tenant {id}: shared routing; its dead-letter queue {dead_letter_queue} is \
                     kept with {}",
                    output::count(dead_lettered, "event")
                ));
                eprintln!(
                    "formbridge: redrive them once the cause is fixed (`formbridge dlq redrive \
                     --from {id}{}`: they go to the shared queue), then run `{again}` to remove it",
                    stack.options()
                );
                return Ok(());
            }
            Demotion::CachesExpire { seconds } => {
                let wait = u64::try_from(seconds).unwrap_or(0);
                if args.no_wait {
                    output::line(format_args!(
                        "tenant {id}: shared routing; its rule stays {wait} s more, while \
                         cached records may still route events to it"
                    ));
                    eprintln!("formbridge: run `{again}` after that to go on");
                    return Ok(());
                }
                eprintln!(
                    "formbridge: waiting {wait} s, until no function can hold {id}'s old record \
                     and route an event to its rule (interrupting is safe: `{again}` goes on)"
                );
                std::time::Duration::from_secs(wait)
            }
            Demotion::Settling { seconds } => {
                let wait = u64::try_from(seconds).unwrap_or(0);
                if args.no_wait {
                    output::line(format_args!(
                        "tenant {id}: shared routing; its rule is removed, and its queue stays \
                         {wait} s more, for events matched before"
                    ));
                    eprintln!("formbridge: run `{again}` after that to go on");
                    return Ok(());
                }
                eprintln!(
                    "formbridge: waiting {wait} s for events matched by {id}'s rule before its \
                     removal (interrupting is safe: `{again}` goes on)"
                );
                std::time::Duration::from_secs(wait)
            }
            Demotion::Draining { queued } => {
                if args.no_wait {
                    output::line(format_args!(
                        "tenant {id}: shared routing; its queue still holds {}",
                        output::count(queued, "event")
                    ));
                    eprintln!(
                        "formbridge: the connector delivers them (once its mapping is removed, a \
                         run moves what is left to the shared queue); run `{again}` later"
                    );
                    return Ok(());
                }
                if said != Some(queued) {
                    eprintln!(
                        "formbridge: waiting for the {} left in {id}'s queue (delivered by the \
                         connector, or moved to the shared queue once its mapping is removed; \
                         interrupting is safe: `{again}` goes on)",
                        output::count(queued, "event")
                    );
                    said = Some(queued);
                }
                DEMOTE_POLL
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn create(records: &Records<'_>, stack: &Stack, args: CreateArgs) -> anyhow::Result<()> {
    let id = args.id;
    let routing = if args.dedicated {
        Routing::Dedicated
    } else {
        Routing::Shared
    };
    let new = args.record.new_tenant(routing);
    // Before anything is made: an isolated tenant on a stack without the
    // isolated API would be denied on both APIs.
    if new.isolation == Isolation::PerTenant {
        stack.require_isolated_api_url()?;
    }
    let record = records
        .create(&Creation {
            id: id.clone(),
            record: new.clone(),
            dedicated: args.dedicated.then_some(Scaling {
                batch_size: args.batch_size,
                max_concurrency: args.max_concurrency,
            }),
        })
        .await?;
    output::line(format_args!("{}", record.to_pretty_json()));
    let isolation = new.isolation;
    eprintln!(
        "formbridge: created tenant {id} ({routing} routing{}): give signing_secrets[0] to the sender{}",
        match isolation {
            Isolation::Shared => "",
            Isolation::PerTenant => ", isolated",
        },
        if args.record.destination.is_some() {
            " and destination.secret to the receiving endpoint"
        } else {
            "; it has no destination yet, so its events cannot be delivered"
        }
    );
    if let Some(url) = stack.api_url_for(isolation) {
        if isolation == Isolation::PerTenant {
            eprintln!(
                "formbridge: its senders post to the isolated API, {}/v1/tenants/{id}/submissions \
                 (signed as on the shared API, which denies its requests)",
                url.trim_end_matches('/')
            );
        }
        eprintln!(
            "formbridge: try it: FORMBRIDGE_SECRET=... formbridge send --url {url} --tenant {id} body.json"
        );
    }
    Ok(())
}

/// Moves a tenant to the API of `isolation` and says what its senders
/// and providers must do.
async fn set_isolation(
    records: &Records<'_>,
    stack: &Stack,
    id: &TenantId,
    isolation: Isolation,
) -> anyhow::Result<()> {
    // Refused before the record is read: a tenant isolated on a stack
    // without the isolated API would be denied on both.
    let url = match isolation {
        Isolation::PerTenant => Some(stack.require_isolated_api_url()?),
        Isolation::Shared => stack.api_url(),
    };
    let IsolationChange { changed, sources } = records.set_isolation(id, isolation).await?;
    let (now, api) = match isolation {
        Isolation::PerTenant => ("isolated", "the isolated API"),
        Isolation::Shared => ("shared", "the shared API"),
    };
    let state = if changed { "now" } else { "already" };
    match url {
        Some(url) => output::line(format_args!(
            "tenant {id}: {state} {now}: its requests go to {api}, {url}"
        )),
        None => output::line(format_args!(
            "tenant {id}: {state} {now}: its requests go to {api} (the stack's {} output)",
            stack::API_URL.output
        )),
    }
    if !changed {
        return Ok(());
    }
    let base = url.unwrap_or_default().trim_end_matches('/');
    eprintln!(
        "formbridge: switch {id}'s senders to {base}/v1/tenants/{id}/submissions (signing and \
         secrets are unchanged){}",
        if sources.is_empty() {
            ""
        } else {
            ", and its providers to their sources' new URLs:"
        }
    );
    for (source, provider) in &sources {
        eprintln!(
            "  {base}{}{}",
            crate::tenants::source_path(id, source),
            if crate::tenants::secret_in_url(*provider)? {
                "?token=<its token, unchanged>"
            } else {
                ""
            }
        );
    }
    let old = match isolation {
        Isolation::PerTenant => "the shared API",
        Isolation::Shared => "the isolated API",
    };
    eprintln!(
        "formbridge: once the functions' cache TTL ({} s) has passed, {old} denies {id}'s \
         requests (403); until then a function may still hold the old record, and accept them \
         there or deny them on {api}",
        stack.cache_ttl()?
    );
    if url.is_none() {
        eprintln!(
            "formbridge: note: no API URL (the stack's {} output, or {} URL): put the API's base \
             URL in front of the paths",
            stack::API_URL.output,
            stack::API_URL.flag
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
