//! `formbridge`: the command line. Parses arguments and runs a command from
//! the library; errors are printed with what to do, and the exit status is
//! non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use formbridge::receiver::{self, Receiver};
use formbridge::{output, sender, serve, tenant};
use shared::config::Env;
use shared::signature::unix_now;
use shared::tenant::WebhookSecret;

#[derive(Parser)]
#[command(
    name = "formbridge",
    version,
    about = "Form-Bridge: signed form-submission webhooks into AWS, delivered per tenant.",
    after_help = "Examples:\n  \
        formbridge serve                      run the whole pipeline locally with a demo tenant\n  \
        formbridge tenant new acme --destination https://hooks.acme.example/forms\n  \
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
    /// Tenant records.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
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
enum TenantCommand {
    /// Print a new tenant record with freshly generated secrets.
    #[command(after_help = "Examples:\n  \
        formbridge tenant new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenant new acme --destination https://hooks.acme.example/forms --rate-limit 100 > acme.json\n\n\
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
        Command::Tenant {
            command:
                TenantCommand::New {
                    id,
                    destination,
                    rate_limit,
                },
        } => {
            let (record, _) = tenant::new_record(&id, destination.as_deref(), rate_limit)?;
            output::line(format_args!("{}", serde_json::to_string_pretty(&record)?));
            if destination.is_none() {
                eprintln!(
                    "formbridge: note: no --destination, so the record has none and its events cannot be delivered yet"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
