//! `formbridge serve`: the whole pipeline in one process.
//!
//! The authorizer, ingest and connector are the Lambdas' own handlers
//! (built from the same environment variables), joined by the in-process
//! bus ([`super::bus`]) in place of EventBridge and SQS, behind an HTTP
//! front that does what API Gateway does ([`super::front`]). The bus's
//! counts and its dead letters are served on a listener of their own
//! ([`super::operations`]), on loopback unless told otherwise; both
//! listeners cap their connections and time out slow ones
//! ([`super::connections`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use authorizer::Authorizer;
use connectors::{GuardRules, HttpDeliveryClient};
use ingest::Ingest;
use shared::config::Env;
use shared::idempotency::MemoryIdempotencyStore;
use shared::publish::RetryPolicy;
use shared::secret::Secret;
use shared::source::{PROVIDERS, Provider, SourceId};
use shared::store::{CachePolicy, CachedTenantStore, MemoryTenantStore};
use shared::telemetry::Metrics;
use shared::tenant::document::new_source_secret;
use shared::tenant::{NewTenant, TenantDocument};
use shared::{Isolation, TenantId, TenantRecord, TenantStatus};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::bus::{Bus, BusPublisher, Limits, Redelivery, Snapshot};
use super::connections::{self, Connections, Policy};
use super::dead_letters::DeadLetters;
use super::front::Gateway;
use super::operations::Operations;
use crate::output::{self, count};
use crate::sender::receive::Receiver;

/// The bus name ingest is configured with when `EVENT_BUS_NAME` is unset
/// (the local bus has no name; ingest requires one).
const LOCAL_BUS_NAME: &str = "form-bridge-local";
/// The demo tenant of the built-in default.
const DEMO_TENANT: &str = "demo";
/// What the gateway keeps of idempotency keys, the newest first: a key
/// counts one plus one per submission ID of its answer (about 100 bytes
/// each: 10 MB).
const IDEMPOTENCY_KEYS: usize = 100_000;
/// How long requests in progress may take to finish at shutdown.
const REQUEST_GRACE: Duration = Duration::from_secs(10);
/// Connections the operations listener holds at once: a few operators and
/// a monitor. Each may be reading one dead letter (up to 1 MiB).
const OPERATIONS_CONNECTIONS: usize = 16;
/// Open files kept for the gateway itself when fitting `--max-connections`
/// under the open-files limit (standard streams, the runtime, listeners,
/// the dead-letter file, the demo receiver). The operations listener's
/// connections and two per delivery slot (a connection and a spare in the
/// pool) are kept besides.
const RESERVED_FILES: usize = 64;

/// `formbridge serve`: run the whole pipeline (authorizer, ingest, bus,
/// connector) in one process.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    formbridge serve\n      \
        a demo tenant whose secret is printed, delivering to a built-in\n      \
        receiver that prints each delivery\n  \
    formbridge serve --tenants examples/tenants.json --allow-private-destinations\n      \
        your tenants (a JSON array of tenant records, or one record),\n      \
        delivering to endpoints on this machine\n  \
    formbridge serve --listen 0.0.0.0:8080 --admin-listen 127.0.0.1:8081 \\\n      \
        --tenants tenants.json --dead-letters dead.jsonl\n      \
        senders reach port 8080; the bus's counts and the dead letters are\n      \
        on 127.0.0.1:8081 only (GET /healthz, GET /v1/dead-letters)\n\n\
    The functions' environment variables apply (REPLAY_WINDOW_SECONDS,\n\
    MAX_BODY_BYTES, DELIVERY_TIMEOUT_MS, DELIVERY_ATTEMPTS,\n\
    DELIVERY_CONCURRENCY, BREAKER_*, LOG_LEVEL). Ctrl-C or SIGTERM: stop\n\
    accepting, deliver what was accepted, then exit.")]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "FORMBRIDGE_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    pub listen: SocketAddr,
    /// Address of the operational routes (GET /healthz with the bus's counts, GET /v1/dead-letters); the default is a free loopback port, printed at start.
    #[arg(
        long,
        value_name = "ADDR",
        env = "FORMBRIDGE_ADMIN_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub admin_listen: SocketAddr,
    /// Tenants file: a JSON array of tenant records, or one record. Without it: a demo tenant and a built-in receiver.
    #[arg(long, value_name = "FILE")]
    pub tenants: Option<PathBuf>,
    /// Allow loopback, private and plain-http destinations (sets ALLOW_PRIVATE_DESTINATIONS=true).
    #[arg(long)]
    pub allow_private_destinations: bool,
    /// Events accepted and not yet delivered or dead-lettered (queued, in flight, waiting to retry); beyond it, submissions get 503.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(10..=10_000_000))]
    pub queue_capacity: u32,
    /// The same for one tenant, so that a tenant whose endpoint is slow or down cannot fill the queue for the others (at most --queue-capacity).
    #[arg(long, value_name = "N", default_value_t = 2_500, value_parser = clap::value_parser!(u32).range(10..=10_000_000))]
    pub tenant_queue_capacity: u32,
    /// Times an event is received (delivery attempted) before it is dead-lettered.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_receives: u32,
    /// Seconds shutdown waits for accepted events to be delivered before dead-lettering the rest.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_timeout: u64,
    /// Append dead letters to this file, as JSON lines, created readable by its owner only (without it they are kept in an unnamed temporary file until exit); listed by GET /v1/dead-letters on --admin-listen.
    #[arg(long, value_name = "FILE")]
    pub dead_letters: Option<PathBuf>,
    /// Connections open at once on --listen; beyond it, new connections wait until one closes. Lowered to fit the open-files limit (ulimit -n).
    #[arg(long, value_name = "N", default_value_t = 1_024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Seconds a connection has to send a request's headers (from its start, or from the first byte of its next request).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub header_read_timeout: u64,
    /// Seconds a signed request's body has to arrive once its headers are in and the request is authorized; then 408 and the connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub body_read_timeout: u64,
    /// Seconds a kept-alive connection may wait for its next request (or a client take to read an answer) before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub idle_timeout: u64,
    /// Seconds between progress lines (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub progress_interval: u64,
}

impl ServeArgs {
    /// Runs the gateway on all cores until SIGTERM or Ctrl-C, with text
    /// logs on stderr.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        shared::telemetry::init_text_logging(&Env::process())?;
        crate::runtime::multi_thread()?.block_on(run(self))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs the gateway until SIGTERM or Ctrl-C, then drains and returns the
/// final counts.
pub async fn run(options: ServeArgs) -> anyhow::Result<Snapshot> {
    // The functions' own variables, with the local bus's name as a default
    // and `--allow-private-destinations` as a shortcut.
    let env = Env::new(|name| {
        if name == "ALLOW_PRIVATE_DESTINATIONS" && options.allow_private_destinations {
            return Some("true".to_owned());
        }
        let value = std::env::var(name).ok().filter(|v| !v.is_empty());
        if name == "EVENT_BUS_NAME" {
            return value.or_else(|| Some(LOCAL_BUS_NAME.to_owned()));
        }
        value
    });
    let authorizer_config =
        authorizer::Config::from_env(&env).context("authorizer configuration")?;
    let ingest_config = ingest::Config::from_env(&env).context("ingest configuration")?;
    let mut connector_config =
        connectors::Config::from_env(&env).context("connector configuration")?;

    let listener = TcpListener::bind(options.listen).await.with_context(|| {
        format!(
            "cannot listen on {}: is another formbridge serve running? Choose another address with --listen",
            options.listen
        )
    })?;
    let address = listener.local_addr().context("the listening address")?;
    let admin_listener = TcpListener::bind(options.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--admin-listen, the operational routes): choose another address, or 127.0.0.1:0 for any free port",
                options.admin_listen
            )
        })?;
    let admin_address = admin_listener
        .local_addr()
        .context("the operations listener's address")?;

    let (store, demo) = match &options.tenants {
        Some(path) => {
            let store = MemoryTenantStore::from_file(path).context("--tenants")?;
            (store, None)
        }
        None => {
            let demo = Demo::start().await?;
            // The only destination is the gateway's own receiver.
            connector_config.allow_private_destinations = true;
            let store = MemoryTenantStore::new();
            store.upsert(demo.record.clone());
            (store, Some(demo))
        }
    };
    let rules = GuardRules::new(connector_config.allow_private_destinations);
    warn_about_tenants(&store, rules);

    let client = HttpDeliveryClient::new(connector_config.client_options())
        .context("the delivery HTTP client")?;
    let connector = connectors::Connector::new(
        store.clone(),
        client,
        &connector_config,
        Metrics::off("connector"),
    );
    let redelivery = Redelivery {
        max_receives: options.max_receives,
        ..Redelivery::default()
    };
    let limits = Limits {
        capacity: options.queue_capacity as usize,
        tenant_capacity: options.tenant_queue_capacity.min(options.queue_capacity) as usize,
        concurrency: connector_config.concurrency,
        per_destination: connector_config.per_destination,
    };
    // The bus appends dead letters to this file; the operations listener
    // indexes it, so that no payload is kept in memory for listing.
    let (dead_letters, shared_file) = DeadLetters::open(options.dead_letters.as_deref())?;
    let bus = Arc::new(Bus::new(
        connector,
        limits,
        redelivery,
        Some(dead_letters.path()),
    )?);
    dead_letters.unlink_temporary();
    let dead_letters = Arc::new(dead_letters);
    let publisher = BusPublisher::new(Arc::clone(&bus));
    let dispatcher = tokio::spawn(Arc::clone(&bus).run());

    // A full queue answers 503 at once: waiting would only hold the
    // client's connection while the queue stays full.
    let no_retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let gateway = Arc::new(Gateway::new(
        Authorizer::new(
            store.clone(),
            &authorizer_config,
            Metrics::off("authorizer"),
        ),
        Ingest::new(publisher, &ingest_config, Metrics::off("ingest"))
            .with_retry_policy(no_retry)
            .with_idempotency_store(MemoryIdempotencyStore::new(
                ingest_config.idempotency_ttl,
                IDEMPOTENCY_KEYS,
            ))
            .with_tenant_records(CachedTenantStore::new(
                store.clone(),
                CachePolicy::with_ttl(authorizer_config.secret_cache_ttl),
            )),
        ingest_config.max_body_bytes,
        Duration::from_secs(options.body_read_timeout),
    ));

    let timeouts = Policy {
        max_connections: OPERATIONS_CONNECTIONS,
        header_read_timeout: Duration::from_secs(options.header_read_timeout),
        idle_timeout: Duration::from_secs(options.idle_timeout),
    };
    let requested = options.max_connections as usize;
    let reserve = RESERVED_FILES + OPERATIONS_CONNECTIONS + 2 * connector_config.concurrency.max(1);
    let (max_connections, open_files) = connections::fit_to_open_files(requested, reserve);
    let gateway_connections = Arc::new(Connections::new(Policy {
        max_connections,
        ..timeouts
    }));
    let operations_connections = Arc::new(Connections::new(timeouts));
    let operations = Arc::new(Operations::new(
        Arc::clone(&bus),
        Arc::clone(&dead_letters),
        Arc::clone(&gateway_connections),
        Arc::clone(&operations_connections),
    ));

    banner(
        address,
        admin_address,
        &store,
        demo.as_ref(),
        &dead_letters,
        connector_config.allow_private_destinations,
    );
    if let Some(warning) = shared_file {
        output::line(format_args!("formbridge: warning: {warning}"));
    }
    if let Some(limit) = open_files {
        output::line(format_args!(
            "formbridge: note: at most {max_connections} connections at once, not {requested}: the open-files limit is {limit} (raise it with ulimit -n)"
        ));
    }

    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(connections::serve(
        listener,
        gateway,
        gateway_connections,
        stopped,
        REQUEST_GRACE,
    ));
    // The operations listener stays up while the bus drains, so that its
    // progress can be watched.
    let (operations_stop, operations_stopped) = watch::channel(false);
    let operations_server = tokio::spawn(connections::serve(
        admin_listener,
        operations,
        operations_connections,
        operations_stopped,
        REQUEST_GRACE,
    ));
    let (receiver_stop, receiver_stopped) = watch::channel(false);
    let receiver_server = demo.map(|demo| {
        tokio::spawn(crate::http::serve(
            demo.listener,
            demo.receiver,
            receiver_stopped,
            REQUEST_GRACE,
        ))
    });
    let progress = tokio::spawn(progress(
        Arc::clone(&bus),
        Duration::from_secs(options.progress_interval),
    ));

    crate::http::shutdown_signal().await;
    let before = bus.snapshot();
    output::line(format_args!(
        "formbridge: stopping: no new submissions; delivering the {} accepted and not yet delivered (up to {} s)",
        before.queue_depth + before.in_flight + before.retrying,
        options.shutdown_timeout
    ));
    let _ = stop.send(true);
    let _ = server.await;
    let shutdown_timeout = Duration::from_secs(options.shutdown_timeout);
    let last = bus.drain(shutdown_timeout, dispatcher).await;
    progress.abort();
    let _ = operations_stop.send(true);
    let _ = operations_server.await;
    let _ = receiver_stop.send(true);
    if let Some(receiver_server) = receiver_server {
        let _ = receiver_server.await;
    }
    output::line(format_args!("formbridge: stopped. {}", summary(&last)));
    if last.dead_lettered > 0 {
        match dead_letters.file() {
            Some(path) => output::line(format_args!(
                "formbridge: {} {} in {}",
                count(last.dead_lettered, "dead letter"),
                if last.dead_lettered == 1 { "is" } else { "are" },
                path.display()
            )),
            None => output::line(format_args!(
                "formbridge: {} dead-lettered; run with --dead-letters FILE to keep them after exit",
                count(last.dead_lettered, "event")
            )),
        }
    }
    Ok(last)
}

/// The built-in default: a demo tenant delivering to a receiver on a free
/// loopback port.
struct Demo {
    record: TenantRecord,
    signing_secret: String,
    /// One source per provider, named after it, with its secret.
    sources: Vec<(Provider, Secret)>,
    receiver_url: String,
    listener: TcpListener,
    receiver: Arc<Receiver>,
}

impl Demo {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on a loopback port for the built-in receiver")?;
        let receiver_url = format!("http://{}/", listener.local_addr()?);
        let demo = TenantId::parse(DEMO_TENANT).context("the demo tenant's ID")?;
        let mut document = TenantDocument::new(
            &demo,
            &NewTenant {
                destination: Some(&receiver_url),
                ..NewTenant::default()
            },
        )?;
        // Every provider can be tried at once: `send --provider P --source P`.
        let mut sources = Vec::with_capacity(PROVIDERS.len());
        for provider in PROVIDERS {
            let secret = new_source_secret()?;
            let id =
                SourceId::parse(provider.as_str()).context("a provider's name as a source ID")?;
            document.add_source(&id, *provider, &secret)?;
            sources.push((*provider, secret));
        }
        let record = document.validate()?;
        let signing_secret = document
            .current_signing_secret()
            .context("the demo record")?
            .to_owned();
        let secret = record
            .destination
            .as_ref()
            .map(|d| d.secret.clone())
            .context("the demo record has a destination")?;
        Ok(Self {
            record,
            signing_secret,
            sources,
            receiver_url,
            listener,
            receiver: Arc::new(Receiver::new(secret, false)),
        })
    }
}

/// Start-up warnings a person can act on: tenants that cannot receive.
fn warn_about_tenants(store: &MemoryTenantStore, rules: GuardRules) {
    for id in store.tenant_ids() {
        let Some(record) = store.get(&id) else {
            continue;
        };
        match &record.destination {
            None => output::line(format_args!(
                "formbridge: warning: tenant {id} has no destination; its submissions will be dead-lettered"
            )),
            Some(destination) => {
                let refused = reqwest::Url::parse(&destination.url)
                    .ok()
                    .and_then(|url| connectors::guard::check(&url, rules).err());
                if let Some(why) = refused {
                    output::line(format_args!(
                        "formbridge: warning: tenant {id}'s destination will be refused ({why}); for local endpoints start with --allow-private-destinations"
                    ));
                }
            }
        }
        if record.status == TenantStatus::Suspended {
            output::line(format_args!(
                "formbridge: note: tenant {id} is suspended; its submissions are refused (403)"
            ));
        }
    }
}

fn banner(
    address: SocketAddr,
    admin_address: SocketAddr,
    store: &MemoryTenantStore,
    demo: Option<&Demo>,
    dead_letters: &DeadLetters,
    allow_private: bool,
) {
    let url = format!("http://{address}");
    output::line(format_args!("formbridge: local gateway listening on {url}"));
    output::line(format_args!(
        "formbridge: POST {url}/v1/tenants/{{tenant_id}}/submissions · POST {url}/v1/tenants/{{tenant_id}}/sources/{{source_id}} · GET {url}/healthz"
    ));
    let admin = format!("http://{admin_address}");
    output::line(format_args!(
        "formbridge: operations on {admin}: GET {admin}/healthz (the bus's counts) · GET {admin}/v1/dead-letters · GET {admin}/v1/dead-letters/{{submission_id}}"
    ));
    if !admin_address.ip().is_loopback() {
        output::line(format_args!(
            "formbridge: warning: the operational routes, dead letters and their payloads included, are served on {admin_address} to anyone who can reach it; the default is a loopback port"
        ));
    }
    match demo {
        Some(demo) => {
            output::line(format_args!(
                "formbridge: built-in demo tenant \"{DEMO_TENANT}\", signing secret {}",
                demo.signing_secret
            ));
            output::line(format_args!(
                "formbridge: deliveries go to the built-in receiver at {}, which verifies and prints each one",
                demo.receiver_url
            ));
            output::line(format_args!("formbridge: try it from another terminal:"));
            output::line(format_args!(
                "  echo '{{\"email\":\"ada@example.com\",\"message\":\"Hello\"}}' | {} send --url {url} --tenant {DEMO_TENANT} --secret {} -",
                this_program(),
                demo.signing_secret
            ));
            output::line(format_args!(
                "formbridge: and one source per provider, at {url}/v1/tenants/{DEMO_TENANT}/sources/<provider>, secrets:"
            ));
            for (provider, secret) in &demo.sources {
                output::line(format_args!(
                    "  {:<18} {}",
                    provider.as_str(),
                    secret.expose()
                ));
            }
            output::line(format_args!(
                "  echo '{{\"event_id\":\"e1\",\"form_response\":{{}}}}' | {} send --url {url} --tenant {DEMO_TENANT} --provider typeform --source typeform --secret {} -",
                this_program(),
                demo.sources
                    .iter()
                    .find(|(p, _)| p.as_str() == "typeform")
                    .map_or("", |(_, s)| s.expose())
            ));
        }
        None => {
            let ids: Vec<String> = store.tenant_ids().iter().map(ToString::to_string).collect();
            output::line(format_args!(
                "formbridge: {}: {}",
                count(ids.len() as u64, "tenant"),
                ids.join(", ")
            ));
            let isolated: Vec<String> = store
                .tenant_ids()
                .into_iter()
                .filter(|id| {
                    store
                        .get(id)
                        .is_some_and(|r| r.isolation == Isolation::PerTenant)
                })
                .map(|id| id.to_string())
                .collect();
            if !isolated.is_empty() {
                // On AWS they have an API of their own; one process has no
                // execution environments to keep apart.
                output::line(format_args!(
                    "formbridge: isolated (per_tenant): {}; served here on the same URLs as the others (on a stack, only through the isolated API)",
                    isolated.join(", ")
                ));
            }
        }
    }
    if allow_private && demo.is_none() {
        output::line(format_args!(
            "formbridge: private and plain-http destinations are allowed (local use only)"
        ));
    }
    if let Some(path) = dead_letters.file() {
        output::line(format_args!(
            "formbridge: dead letters are appended to {}",
            path.display()
        ));
    }
    output::line(format_args!(
        "formbridge: Ctrl-C stops after delivering what was accepted"
    ));
}

/// How this program was started (`target/release/formbridge` under `cargo
/// run`), so the printed command works as it is pasted.
fn this_program() -> String {
    std::env::args()
        .next()
        .filter(|arg0| arg0.contains('/'))
        .unwrap_or_else(|| "formbridge".to_owned())
}

fn summary(s: &Snapshot) -> String {
    format!(
        "accepted {} · delivered {} · retrying {} · dead-lettered {} · queue {} · in flight {}",
        s.accepted, s.delivered, s.retrying, s.dead_lettered, s.queue_depth, s.in_flight
    )
}

/// Prints the counts every `interval`, when they changed.
async fn progress(bus: Arc<Bus>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let mut last = Snapshot::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = bus.snapshot();
        if now != last {
            output::line(format_args!("formbridge: {}", summary(&now)));
            last = now;
        }
    }
}
