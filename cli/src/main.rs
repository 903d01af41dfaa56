//! `formbridge`: the command line. Parses arguments and runs a command from
//! the library; errors are printed with what to do, and the exit status is
//! non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use formbridge::aws::Clients;
use formbridge::dedicated::Scaling;
use formbridge::receiver::{self, Receiver};
use formbridge::stack::{self, Stack};
use formbridge::tenants::{self, NewTenant, Rotation, Tenants};
use formbridge::{dlq, output, sender, serve, tenant};
use shared::config::Env;
use shared::signature::unix_now;
use shared::tenant::{TenantStatus, WebhookSecret};

#[derive(Parser)]
#[command(
    name = "formbridge",
    version,
    about = "Form-Bridge: signed form-submission webhooks into AWS, delivered per tenant.",
    after_help = "Examples:\n  \
        formbridge serve                      run the whole pipeline locally with a demo tenant\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants --stack form-bridge create acme --destination https://hooks.acme.example/forms\n  \
        formbridge send --url http://127.0.0.1:3000 --tenant demo --secret fb_... body.json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline (authorizer, ingest, bus, connector) in one process.
    #[command(after_help = "Examples:\n  \
        formbridge serve\n      \
            a demo tenant whose secret is printed, delivering to a built-in receiver that prints each delivery\n  \
        formbridge serve --tenants tenants.json --allow-private-destinations\n      \
            your tenants (a JSON array of tenant records), delivering to endpoints on this machine\n  \
        formbridge serve --listen 0.0.0.0:8080 --tenants tenants.json --dead-letters dead.jsonl\n\n\
        The functions' environment variables apply (REPLAY_WINDOW_SECONDS, MAX_BODY_BYTES,\n\
        DELIVERY_TIMEOUT_MS, DELIVERY_ATTEMPTS, DELIVERY_CONCURRENCY, BREAKER_*, LOG_LEVEL).\n\
        Ctrl-C or SIGTERM: stop accepting, deliver what was accepted, then exit.")]
    Serve(ServeArgs),
    /// Print the three signature headers for a body.
    #[command(after_help = "Examples:\n  \
        formbridge sign --tenant acme --secret \"$SECRET\" body.json\n  \
        echo -n '{\"email\":\"ada@example.com\"}' | formbridge sign --tenant acme --secret \"$SECRET\" -\n  \
        formbridge sign --tenant acme --secret fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c --timestamp 1767225600 vector.json\n\n\
        The body is signed byte for byte: send exactly these bytes.")]
    Sign(SignArgs),
    /// Sign a body and POST it; print the status and submission IDs.
    #[command(after_help = "Examples:\n  \
        formbridge send --url http://127.0.0.1:3000 --tenant demo --secret \"$SECRET\" body.json\n  \
        echo '{\"email\":\"ada@example.com\"}' | formbridge send --url \"$API_URL\" --tenant acme -\n      \
            (the secret from FORMBRIDGE_SECRET)\n  \
        formbridge send --url http://127.0.0.1:3000 --tenant demo --content-type application/x-www-form-urlencoded form.txt\n\n\
        --url is the API's base URL; /v1/tenants/{tenant}/submissions is appended unless it is already there.\n\
        Exit status: 0 when accepted (202), 1 when refused, 2 for a usage or connection error.")]
    Send(SendArgs),
    /// Run a webhook receiver that verifies, counts and prints deliveries.
    #[command(after_help = "Examples:\n  \
        formbridge receive --listen 127.0.0.1:8080 --secret whsec_...\n      \
            then give a tenant the destination http://127.0.0.1:8080/ and the same whsec_ secret,\n      \
            and start formbridge serve with --allow-private-destinations\n  \
        formbridge receive --listen 127.0.0.1:8080 --quiet    (load tests)\n      \
            the secret from FORMBRIDGE_WEBHOOK_SECRET; curl http://127.0.0.1:8080/stats for counts\n\n\
        Deliveries with a valid Standard Webhooks signature are answered 204, others 401.\n\
        GET /stats: {\"verified\", \"unique\", \"duplicates\", \"refused\"}.")]
    Receive(ReceiveArgs),
    /// Tenants: new records, and operations on a deployed stack.
    #[command(alias = "tenant")]
    Tenants(TenantsArgs),
    /// Dead-lettered events on a deployed stack.
    Dlq(DlqArgs),
}

/// Where the deployed stack's resources are: the stack's outputs, each
/// overridable by its flag.
#[derive(clap::Args)]
#[command(next_help_heading = "Stack (deployed with template.yaml)")]
struct StackArgs {
    /// The CloudFormation stack whose outputs name the resources.
    #[arg(long, value_name = "NAME", env = "FORMBRIDGE_STACK", global = true)]
    stack: Option<String>,
    /// Secrets Manager prefix of tenant records [default: output TenantSecretPrefix, else form-bridge/tenants/].
    #[arg(long, value_name = "PREFIX", global = true)]
    secret_prefix: Option<String>,
    /// The event bus [default: output EventBusName].
    #[arg(long, value_name = "NAME", global = true, hide_short_help = true)]
    bus: Option<String>,
    /// The events' source [default: output EventSource, else form-bridge].
    #[arg(long, value_name = "SOURCE", global = true, hide_short_help = true)]
    event_source: Option<String>,
    /// The connector function [default: output ConnectorFunctionName].
    #[arg(long, value_name = "NAME", global = true, hide_short_help = true)]
    connector_function: Option<String>,
    /// Name prefix of dedicated tenants' queues [default: output DedicatedQueuePrefix].
    #[arg(long, value_name = "PREFIX", global = true, hide_short_help = true)]
    queue_prefix: Option<String>,
    /// Receives before a record is dead-lettered [default: output MaxReceiveCount, else 5].
    #[arg(long, value_name = "N", global = true, hide_short_help = true)]
    max_receive_count: Option<String>,
    /// The shared queue [default: output SharedQueueUrl].
    #[arg(long, value_name = "URL", global = true, hide_short_help = true)]
    shared_queue_url: Option<String>,
    /// The shared dead-letter queue [default: output SharedDeadLetterQueueUrl].
    #[arg(long, value_name = "URL", global = true, hide_short_help = true)]
    shared_dlq_url: Option<String>,
    /// The events dead-letter queue [default: output EventTargetDeadLetterQueueUrl].
    #[arg(long, value_name = "URL", global = true, hide_short_help = true)]
    events_dlq_url: Option<String>,
    /// The events dead-letter queue's ARN [default: output EventTargetDeadLetterQueueArn].
    #[arg(long, value_name = "ARN", global = true, hide_short_help = true)]
    events_dlq_arn: Option<String>,
    /// SNS topic for dedicated tenants' alarms [default: output AlarmTopicArn].
    #[arg(long, value_name = "ARN", global = true, hide_short_help = true)]
    alarm_topic_arn: Option<String>,
}

impl StackArgs {
    /// The AWS clients and the stack's names (its outputs read when
    /// `--stack` is given).
    async fn resolve(self) -> anyhow::Result<(Clients, Stack)> {
        let aws = Clients::from_env().await;
        let flags = Stack::from_flags([
            (stack::SECRET_PREFIX.flag, self.secret_prefix),
            (stack::BUS.flag, self.bus),
            (stack::EVENT_SOURCE.flag, self.event_source),
            (stack::CONNECTOR.flag, self.connector_function),
            (stack::QUEUE_PREFIX.flag, self.queue_prefix),
            (stack::MAX_RECEIVES.flag, self.max_receive_count),
            (stack::SHARED_QUEUE.flag, self.shared_queue_url),
            (stack::SHARED_DLQ.flag, self.shared_dlq_url),
            (stack::EVENTS_DLQ.flag, self.events_dlq_url),
            (stack::EVENTS_DLQ_ARN.flag, self.events_dlq_arn),
            (stack::ALARM_TOPIC.flag, self.alarm_topic_arn),
        ]);
        let stack = match self.stack.filter(|s| !s.is_empty()) {
            Some(name) => flags.with_outputs(&aws.cloudformation, &name).await?,
            None => flags,
        };
        Ok((aws, stack))
    }
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    formbridge tenants new acme --destination https://hooks.acme.example/forms     (a record, printed)\n  \
    formbridge tenants --stack form-bridge create acme --destination https://hooks.acme.example/forms\n  \
    formbridge tenants --stack form-bridge create bigco --dedicated --max-concurrency 20 --destination https://bigco.example/in\n  \
    formbridge tenants --stack form-bridge list\n\n\
    AWS credentials and region come from the standard environment (AWS_PROFILE, AWS_REGION, ...).\n\
    Changes reach the functions within their cache TTL (SECRET_CACHE_TTL_SECONDS, 300 s by default).")]
struct TenantsArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    formbridge dlq --stack form-bridge redrive                every dead-letter queue of the stack\n  \
    formbridge dlq --stack form-bridge redrive --from shared --max 100\n  \
    formbridge dlq --stack form-bridge redrive --from bigco   a dedicated tenant's dead-letter queue")]
struct DlqArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Move dead-lettered events back to their delivery queue.
    #[command(after_help = "Examples:\n  \
        formbridge dlq --stack form-bridge redrive\n  \
        formbridge dlq --stack form-bridge redrive --from events --from bigco --max 500\n\n\
        Sources: shared (the shared queue's dead letters), events (events EventBridge could not\n\
        put on a queue; each goes back by its routing) and dedicated tenants' IDs. Each message is\n\
        sent before it is deleted, so an interruption never loses one (at worst one is delivered\n\
        twice, with the same webhook-id). Fix the cause first, or the events come back.\n\
        Exit status: 0 when everything was moved, 1 when some messages were left.")]
    Redrive {
        /// A dead-letter queue to redrive: shared, events or a dedicated tenant's ID (or tenant:ID); repeatable; default: all.
        #[arg(long, value_name = "QUEUE")]
        from: Vec<String>,
        /// Move at most this many messages from each queue.
        #[arg(long, value_name = "N")]
        max: Option<u64>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "FORMBRIDGE_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    listen: SocketAddr,
    /// Tenants file: a JSON array of tenant records. Without it: a demo tenant and a built-in receiver.
    #[arg(long, value_name = "FILE")]
    tenants: Option<PathBuf>,
    /// Allow loopback, private and plain-http destinations (sets ALLOW_PRIVATE_DESTINATIONS=true).
    #[arg(long)]
    allow_private_destinations: bool,
    /// Events the in-process queue holds, waiting retries included; when full, submissions get 503.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(10..=10_000_000))]
    queue_capacity: u32,
    /// Times an event is received (delivery attempted) before it is dead-lettered.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_receives: u32,
    /// Seconds shutdown waits for accepted events to be delivered before dead-lettering the rest.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    shutdown_timeout: u64,
    /// Append dead letters to this file, as JSON lines (they are also listed by GET /v1/dead-letters).
    #[arg(long, value_name = "FILE")]
    dead_letters: Option<PathBuf>,
    /// Seconds between progress lines (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    progress_interval: u64,
}

#[derive(clap::Args)]
struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The destination's whsec_ secret (or set FORMBRIDGE_WEBHOOK_SECRET).
    #[arg(
        long,
        value_name = "WHSEC",
        env = "FORMBRIDGE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    secret: String,
    /// Print nothing per delivery, only the counts at exit.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct Signer {
    /// The tenant ID (the path segment).
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// One of the tenant's signing secrets (or set FORMBRIDGE_SECRET, which keeps it out of `ps`).
    #[arg(
        long,
        value_name = "SECRET",
        env = "FORMBRIDGE_SECRET",
        hide_env_values = true
    )]
    secret: String,
    /// The body: a file, or - for standard input.
    #[arg(value_name = "FILE|-")]
    body: PathBuf,
}

#[derive(clap::Args)]
struct SignArgs {
    #[command(flatten)]
    signer: Signer,
    /// Unix time to sign at (default: now).
    #[arg(long, value_name = "N")]
    timestamp: Option<i64>,
}

#[derive(clap::Args)]
struct SendArgs {
    /// The API's base URL, such as http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    url: String,
    #[command(flatten)]
    signer: Signer,
    /// The body's media type.
    #[arg(long, value_name = "TYPE", default_value = "application/json")]
    content_type: String,
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Print a new tenant record with freshly generated secrets (no AWS).
    #[command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms --rate-limit 100 > acme.json\n\n\
        The record is ready for a tenants file (as an element of its array) or for Secrets Manager\n\
        as the secret form-bridge/tenants/<ID>. Give signing_secrets[0] to the sender and\n\
        destination.secret to the receiving endpoint. It holds secrets: store it accordingly.")]
    New {
        /// The tenant ID: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
        id: String,
        /// Where the tenant's events are delivered (https; http only for local use).
        #[arg(long, value_name = "URL")]
        destination: Option<String>,
        /// Requests per second allowed (burst: twice that). Default: not limited.
        #[arg(long, value_name = "RPS", value_parser = clap::value_parser!(u32).range(1..=500_000))]
        rate_limit: Option<u32>,
    },
    #[command(flatten)]
    Stack(StackTenantsCommand),
}

/// The `tenants` commands that operate on a deployed stack.
#[derive(Subcommand)]
enum StackTenantsCommand {
    /// Create a tenant on the stack: fresh secrets, its record, and with --dedicated its own delivery path.
    #[command(after_help = "Examples:\n  \
        formbridge tenants --stack form-bridge create acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants --stack form-bridge create bigco --dedicated --max-concurrency 20 --destination https://bigco.example/in\n\n\
        Prints the record, secrets included: give signing_secrets[0] to the sender and\n\
        destination.secret to the receiving endpoint. A dedicated tenant gets its own rule, queue,\n\
        dead-letter queue, alarm and event source mapping on the connector, created before its\n\
        record so its events always have a route; running create again completes a failed one.")]
    Create {
        /// The tenant ID: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
        id: String,
        /// Where the tenant's events are delivered (https, public addresses only).
        #[arg(long, value_name = "URL")]
        destination: Option<String>,
        /// Requests per second allowed (burst: twice that). Default: not limited.
        #[arg(long, value_name = "RPS", value_parser = clap::value_parser!(u32).range(1..=500_000))]
        rate_limit: Option<u32>,
        /// Deliver through the tenant's own queue and connector mapping instead of the shared ones.
        #[arg(long)]
        dedicated: bool,
        /// Dedicated: records per connector invocation.
        #[arg(long, value_name = "N", default_value_t = 10, requires = "dedicated", value_parser = clap::value_parser!(i32).range(1..=10))]
        batch_size: i32,
        /// Dedicated: most connector invocations at once for this tenant.
        #[arg(long, value_name = "N", default_value_t = 5, requires = "dedicated", value_parser = clap::value_parser!(i32).range(2..=1000))]
        max_concurrency: i32,
    },
    /// Add a new current signing secret (the previous stay valid), or with --expire drop the previous ones.
    #[command(after_help = "Examples:\n  \
        formbridge tenants --stack form-bridge rotate acme            prints the new secret\n  \
        formbridge tenants --stack form-bridge rotate acme --expire   once the sender uses it\n\n\
        Between the two, requests signed with either secret are accepted.")]
    Rotate {
        /// The tenant ID.
        id: String,
        /// Remove every signing secret but the current one instead of adding one.
        #[arg(long)]
        expire: bool,
    },
    /// Deny every request of a tenant (accepted events are still delivered).
    Suspend {
        /// The tenant ID.
        id: String,
    },
    /// Accept a suspended tenant's requests again (and put back a dedicated tenant's missing resources).
    Resume {
        /// The tenant ID.
        id: String,
    },
    /// List the stack's tenants: ID, status, routing, destination host.
    List,
    /// Print a tenant's record, secrets redacted unless --reveal.
    Show {
        /// The tenant ID.
        id: String,
        /// Print the secrets too.
        #[arg(long)]
        reveal: bool,
    },
    /// Delete a suspended tenant: its dedicated resources, then its record (restorable for 7 days).
    #[command(after_help = "Examples:\n  \
        formbridge tenants --stack form-bridge suspend acme\n  \
        formbridge tenants --stack form-bridge delete acme\n\n\
        A tenant must have been suspended for longer than the functions' cache TTL\n\
        (SECRET_CACHE_TTL_SECONDS, output SecretCacheTtlSeconds) plus 15 s, so no cached record can\n\
        still accept its requests, and a dedicated tenant's queues must be empty, unless --force.")]
    Delete {
        /// The tenant ID.
        id: String,
        /// Delete an active tenant, and a dedicated tenant's undelivered events.
        #[arg(long)]
        force: bool,
        /// Delete the record at once instead of after a 7-day recovery window.
        #[arg(long)]
        without_recovery: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("formbridge: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            shared::telemetry::init_text_logging(&Env::process())?;
            let options = serve::Options {
                listen: args.listen,
                tenants: args.tenants,
                allow_private_destinations: args.allow_private_destinations,
                queue_capacity: args.queue_capacity as usize,
                max_receives: args.max_receives,
                shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
                dead_letters: args.dead_letters,
                progress_interval: Duration::from_secs(args.progress_interval),
            };
            runtime(true)?.block_on(serve::run(options))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Receive(args) => {
            let secret = WebhookSecret::parse(&args.secret)
                .map_err(|why| anyhow::anyhow!("--secret {why}"))?;
            // One thread: a receiver is a test tool sharing the machine with
            // the gateway and the load generator; it needs little CPU.
            runtime(false)?.block_on(receiver::run(
                args.listen,
                Receiver::new(secret, args.quiet),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign(args) => {
            let body = sender::read_body(&args.signer.body)?;
            let timestamp = args.timestamp.unwrap_or_else(unix_now);
            let headers = sender::sign(&args.signer.tenant, &args.signer.secret, &body, timestamp)?;
            for (name, value) in sender::header_lines(&headers) {
                output::line(format_args!("{name}: {value}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Send(args) => {
            let url = sender::submissions_url(&args.url, &args.signer.tenant)?;
            let body = sender::read_body(&args.signer.body)?;
            let headers =
                sender::sign(&args.signer.tenant, &args.signer.secret, &body, unix_now())?;
            let answer =
                runtime(false)?.block_on(sender::send(&url, &args.content_type, &headers, body))?;
            Ok(report(&answer))
        }
        Command::Tenants(TenantsArgs {
            command:
                TenantsCommand::New {
                    id,
                    destination,
                    rate_limit,
                },
            ..
        }) => {
            let (record, _) = tenant::new_record(&id, destination.as_deref(), rate_limit)?;
            output::line(format_args!("{}", serde_json::to_string_pretty(&record)?));
            if destination.is_none() {
                eprintln!(
                    "formbridge: note: no --destination, so the record has none and its events cannot be delivered yet"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tenants(TenantsArgs {
            stack,
            command: TenantsCommand::Stack(command),
        }) => runtime(false)?.block_on(async {
            let (aws, stack) = stack.resolve().await?;
            tenants_command(&Tenants::new(&aws, &stack), &stack, command).await
        }),
        Command::Dlq(DlqArgs {
            stack,
            command: DlqCommand::Redrive { from, max },
        }) => {
            let sources = from
                .iter()
                .map(|s| dlq::Source::parse(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            runtime(false)?.block_on(async {
                let (aws, stack) = stack.resolve().await?;
                let results = dlq::redrive(&aws, &stack, &sources, max).await?;
                let mut left = 0;
                for r in &results {
                    output::line(format_args!(
                        "{}: moved {}, left {}",
                        r.queue, r.moved, r.left
                    ));
                    for problem in &r.problems {
                        eprintln!("formbridge: {}: {problem}", r.queue);
                    }
                    left += r.left;
                }
                Ok(if left == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            })
        }
    }
}

/// Runs a `tenants` command other than `new` against the stack.
async fn tenants_command(
    tenants: &Tenants<'_>,
    stack: &Stack,
    command: StackTenantsCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        StackTenantsCommand::Create {
            id,
            destination,
            rate_limit,
            dedicated,
            batch_size,
            max_concurrency,
        } => {
            let record = tenants
                .create(&NewTenant {
                    id: id.clone(),
                    destination: destination.clone(),
                    rate_limit,
                    dedicated: dedicated.then_some(Scaling {
                        batch_size,
                        max_concurrency,
                    }),
                })
                .await?;
            output::line(format_args!("{}", serde_json::to_string_pretty(&record)?));
            eprintln!(
                "formbridge: created tenant {id} ({} routing): give signing_secrets[0] to the sender{}",
                record["routing"].as_str().unwrap_or("shared"),
                if destination.is_some() {
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
        }
        StackTenantsCommand::Rotate { id, expire } => match tenants.rotate(&id, expire).await? {
            Rotation::Added { secret, active } => {
                output::line(format_args!("{secret}"));
                eprintln!(
                    "formbridge: tenant {id} now has {active} active signing secrets, this one first. \
                     The functions accept it within their cache TTL (SECRET_CACHE_TTL_SECONDS, 300 s \
                     by default): give it to the sender after that, and once the sender uses it, \
                     run formbridge tenants rotate {id} --expire"
                );
            }
            Rotation::Expired { removed } => output::line(format_args!(
                "tenant {id}: {removed} previous signing secrets removed; only the current one is accepted"
            )),
        },
        StackTenantsCommand::Suspend { id } => {
            set_status(tenants, &id, TenantStatus::Suspended).await?
        }
        StackTenantsCommand::Resume { id } => {
            set_status(tenants, &id, TenantStatus::Active).await?
        }
        StackTenantsCommand::List => {
            output::line(format_args!(
                "{:<24} {:<10} {:<10} DESTINATION",
                "TENANT", "STATUS", "ROUTING"
            ));
            for summary in tenants.list().await? {
                output::line(format_args!("{summary}"));
            }
        }
        StackTenantsCommand::Show { id, reveal } => {
            let record = tenants.read(&id).await?;
            let record = if reveal {
                record
            } else {
                tenants::redact(record)
            };
            output::line(format_args!("{}", serde_json::to_string_pretty(&record)?));
        }
        StackTenantsCommand::Delete {
            id,
            force,
            without_recovery,
        } => {
            tenants.delete(&id, force, without_recovery).await?;
            output::line(format_args!("tenant {id}: deleted"));
            if !without_recovery {
                eprintln!(
                    "formbridge: its record can be restored for {} days: aws secretsmanager restore-secret --secret-id {}{id}",
                    tenants::RECOVERY_WINDOW_DAYS,
                    stack.secret_prefix()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Suspends or resumes a tenant and says so.
async fn set_status(tenants: &Tenants<'_>, id: &str, status: TenantStatus) -> anyhow::Result<()> {
    let changed = tenants.set_status(id, status).await?;
    let word = match status {
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
    };
    output::line(format_args!(
        "tenant {id}: {}{word}",
        if changed { "now " } else { "already " }
    ));
    if changed {
        eprintln!(
            "formbridge: the functions see the change within their cache TTL (SECRET_CACHE_TTL_SECONDS, 300 s by default)"
        );
    }
    Ok(())
}

/// A tokio runtime: one worker per core, or the current thread only.
fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints `send`'s answer: the status, then the submission IDs one per
/// line, or the error with a hint.
fn report(answer: &sender::Answer) -> ExitCode {
    let status = answer.status;
    let reason = status.canonical_reason().unwrap_or("");
    output::line(format_args!("{} {reason}", status.as_u16()));
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    if status.is_success() {
        for id in body["submission_ids"].as_array().into_iter().flatten() {
            output::line(format_args!("{}", id.as_str().unwrap_or_default()));
        }
        return ExitCode::SUCCESS;
    }
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => eprintln!("formbridge: refused: {code}: {message}"),
        _ => eprintln!("formbridge: refused: {}", answer.body.trim()),
    }
    if let Some(hint) = sender::hint(status.as_u16()) {
        eprintln!("formbridge: hint: {hint}");
    }
    ExitCode::FAILURE
}
