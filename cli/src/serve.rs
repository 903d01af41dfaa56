//! `formbridge serve`: the whole pipeline in one process.
//!
//! The authorizer, ingest and connector are the Lambdas' own handlers
//! (built from the same environment variables), joined by the in-process
//! bus ([`crate::bus`]) in place of EventBridge and SQS, behind an HTTP
//! front that does what API Gateway does ([`crate::gateway`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use authorizer::Authorizer;
use connectors::{GuardRules, HttpDeliveryClient};
use ingest::Ingest;
use shared::config::Env;
use shared::publish::{MemoryPublisher, RetryPolicy};
use shared::store::MemoryTenantStore;
use shared::telemetry::Metrics;
use shared::{TenantRecord, TenantStatus};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bus::{Bus, Redelivery, Snapshot};
use crate::gateway::Gateway;
use crate::output;
use crate::receiver::Receiver;

/// The bus name ingest is configured with when `EVENT_BUS_NAME` is unset
/// (the local bus has no name; ingest requires one).
const LOCAL_BUS_NAME: &str = "form-bridge-local";
/// The demo tenant of the built-in default.
const DEMO_TENANT: &str = "demo";
/// How long requests in progress may take to finish at shutdown.
const REQUEST_GRACE: Duration = Duration::from_secs(10);

/// `formbridge serve`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// The tenants file; `None` for the built-in demo tenant and receiver.
    pub tenants: Option<PathBuf>,
    /// Sets `ALLOW_PRIVATE_DESTINATIONS=true`.
    pub allow_private_destinations: bool,
    /// Events the queue holds (new ones and ones waiting to be retried).
    pub queue_capacity: usize,
    /// Receives before an event is dead-lettered.
    pub max_receives: u32,
    /// How long shutdown waits for accepted events to be delivered.
    pub shutdown_timeout: Duration,
    /// Where dead letters are appended, if anywhere.
    pub dead_letters: Option<PathBuf>,
    /// How often the progress line is printed; zero for never.
    pub progress_interval: Duration,
}

/// Runs the gateway until SIGTERM or Ctrl-C, then drains and returns the
/// final counts.
pub async fn run(options: Options) -> anyhow::Result<Snapshot> {
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

    let (publisher, queue) = MemoryPublisher::channel(options.queue_capacity);
    let client = HttpDeliveryClient::new(connector_config.client_options())
        .context("the delivery HTTP client")?;
    let connector = connectors::Connector::new(
        store.clone(),
        client,
        &connector_config,
        Metrics::off("connector"),
    );
    let redelivery = Redelivery {
        max_receives: options.max_receives.max(1),
        ..Redelivery::default()
    };
    let bus = Arc::new(Bus::new(
        connector,
        &publisher,
        connector_config.concurrency,
        redelivery,
        options.dead_letters.as_deref(),
    )?);
    let dispatcher = tokio::spawn(Arc::clone(&bus).run(queue));

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
        Ingest::new(publisher, &ingest_config, Metrics::off("ingest")).with_retry_policy(no_retry),
        Arc::clone(&bus),
        ingest_config.max_body_bytes,
    ));

    banner(
        address,
        &store,
        demo.as_ref(),
        &bus,
        connector_config.allow_private_destinations,
    );

    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(crate::http::serve(
        listener,
        gateway,
        stopped.clone(),
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
    let progress = tokio::spawn(progress(Arc::clone(&bus), options.progress_interval));

    crate::http::shutdown_signal().await;
    let before = bus.snapshot();
    output::line(format_args!(
        "formbridge: stopping: no new submissions; delivering the {} accepted and not yet delivered (up to {} s)",
        before.queue_depth + before.in_flight + before.retrying,
        options.shutdown_timeout.as_secs()
    ));
    let _ = stop.send(true);
    let _ = server.await;
    let last = bus.drain(options.shutdown_timeout, dispatcher).await;
    progress.abort();
    let _ = receiver_stop.send(true);
    if let Some(receiver_server) = receiver_server {
        let _ = receiver_server.await;
    }
    output::line(format_args!("formbridge: stopped. {}", summary(&last)));
    if last.dead_lettered > 0 {
        match bus.dead_letter_file() {
            Some(path) => output::line(format_args!(
                "formbridge: {} dead letters are in {}",
                last.dead_lettered,
                path.display()
            )),
            None => output::line(format_args!(
                "formbridge: {} events were dead-lettered; run with --dead-letters FILE to keep them after exit",
                last.dead_lettered
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
        let (json, record) = crate::tenant::new_record(DEMO_TENANT, Some(&receiver_url), None)?;
        let signing_secret = json["signing_secrets"][0]
            .as_str()
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
    store: &MemoryTenantStore,
    demo: Option<&Demo>,
    bus: &Bus,
    allow_private: bool,
) {
    let url = format!("http://{address}");
    output::line(format_args!("formbridge: local gateway listening on {url}"));
    output::line(format_args!(
        "formbridge: POST {url}/v1/tenants/{{tenant_id}}/submissions · GET {url}/healthz · GET {url}/v1/dead-letters"
    ));
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
        }
        None => {
            let ids: Vec<String> = store.tenant_ids().iter().map(ToString::to_string).collect();
            output::line(format_args!(
                "formbridge: {} tenants: {}",
                ids.len(),
                ids.join(", ")
            ));
        }
    }
    if allow_private && demo.is_none() {
        output::line(format_args!(
            "formbridge: private and plain-http destinations are allowed (local use only)"
        ));
    }
    if let Some(path) = bus.dead_letter_file() {
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
