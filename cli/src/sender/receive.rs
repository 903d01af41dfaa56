//! A webhook receiver that verifies each delivery's Standard Webhooks
//! signature, counts deliveries by ID and prints each: the built-in
//! default destination of `formbridge serve` (so the run command shows the
//! whole path working) and `formbridge receive` (a destination for local
//! tenants and load tests, whose `GET /stats` tells whether every accepted
//! submission arrived exactly once, and `GET /stats/tenants` how long each
//! tenant's submissions took to arrive). `--delay-ms` makes it a slow
//! endpoint, for tests of what one slow tenant does to the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::net::TcpListener;
use tokio::sync::watch;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use shared::signature::unix_now;
use shared::tenant::WebhookSecret;
use shared::webhook::{self, DEFAULT_TOLERANCE_SECONDS};

use crate::http::{Body, Handler, empty_response, json_response, read_body};
use crate::output;

/// The largest delivery read: ingest's largest body plus the envelope.
const MAX_DELIVERY_BYTES: usize = 7 * 1024 * 1024;
/// How much of a payload a printed line shows.
const PRINTED_PAYLOAD_CHARS: usize = 300;
/// How long a stopping receiver lets requests in progress finish, on top
/// of its `--delay-ms`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Verifies deliveries signed with one `whsec_` secret, counts them by
/// `webhook-id` (to tell duplicates from new deliveries) and by tenant,
/// with each tenant's delivery lag, and prints each unless quiet.
pub struct Receiver {
    secret: WebhookSecret,
    quiet: bool,
    delay: Duration,
    seen: Mutex<Seen>,
    verified: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
}

/// The IDs received, and per tenant what arrived when.
#[derive(Default)]
struct Seen {
    ids: HashSet<Box<str>>,
    // Only verified deliveries add a tenant, so the map is as small as
    // the set of tenants that share the secret.
    tenants: HashMap<Box<str>, TenantLags>,
}

#[derive(Default)]
struct TenantLags {
    delivered: u64,
    duplicates: u64,
    /// The lag of each first delivery, in ms. Kept whole (4 bytes a
    /// delivery, next to the ID kept for duplicates) so the percentiles
    /// are exact.
    lags_ms: Vec<u32>,
}

/// What a receiver has seen, as `GET /stats` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Deliveries whose signature verified.
    pub verified: u64,
    /// Distinct `webhook-id`s among them.
    pub unique: u64,
    /// Verified deliveries of an ID already received.
    pub duplicates: u64,
    /// Deliveries refused (bad or missing signature).
    pub refused: u64,
}

/// One tenant's deliveries, as `GET /stats/tenants` answers (by tenant ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TenantCounts {
    /// Distinct `webhook-id`s received for the tenant.
    pub delivered: u64,
    /// Deliveries of an ID already received.
    pub duplicates: u64,
    /// How long its submissions took to arrive.
    pub lag_ms: Lag,
}

/// Delivery lag in milliseconds: the time a delivery arrived (before any
/// `--delay-ms`) minus its event's `timestamp` (the submission's
/// `received_at`), over the first delivery of each ID. All 0 when there is
/// none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lag {
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The largest.
    pub max: u64,
}

impl Lag {
    /// Nearest-rank percentiles of `lags`.
    fn of(lags: &[u32]) -> Self {
        let mut sorted = lags.to_vec();
        sorted.sort_unstable();
        let at = |q: f64| {
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted
                .get(rank.saturating_sub(1))
                .map_or(0, |&ms| u64::from(ms))
        };
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: sorted.last().map_or(0, |&ms| u64::from(ms)),
        }
    }
}

/// The parts of a delivered `form.submission` body the receiver reads to
/// count by tenant (docs/protocol.md, section 6).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: EnvelopeData<'a>,
}

#[derive(Deserialize)]
struct EnvelopeData<'a> {
    #[serde(borrow)]
    tenant_id: std::borrow::Cow<'a, str>,
}

/// The tenant and lag of a delivered body, when it is a `form.submission`
/// with a valid `timestamp`.
fn tenant_and_lag(body: &[u8], arrived: SystemTime) -> Option<(String, u32)> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    let sent = OffsetDateTime::parse(&envelope.timestamp, &Rfc3339).ok()?;
    // Before the epoch or in the future (another clock): a lag of 0.
    let lag = OffsetDateTime::from(arrived) - sent;
    let lag_ms = u32::try_from(lag.whole_milliseconds().max(0)).unwrap_or(u32::MAX);
    Some((envelope.data.tenant_id.into_owned(), lag_ms))
}

impl Receiver {
    /// A receiver for deliveries signed with `secret`; `quiet` prints
    /// nothing per delivery (load tests).
    pub fn new(secret: WebhookSecret, quiet: bool) -> Self {
        Self {
            secret,
            quiet,
            delay: Duration::ZERO,
            seen: Mutex::new(Seen::default()),
            verified: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Answers each delivery `delay` after it arrived: a slow endpoint.
    /// Deliveries in progress at once wait side by side, not in turn.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What it has seen so far.
    pub fn counts(&self) -> Counts {
        let unique = self.seen().ids.len() as u64;
        Counts {
            verified: self.verified.load(Relaxed),
            unique,
            duplicates: self.duplicates.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
    }

    /// What it has seen so far, by tenant (deliveries whose body is a
    /// `form.submission` event).
    pub fn tenant_counts(&self) -> BTreeMap<String, TenantCounts> {
        self.seen()
            .tenants
            .iter()
            .map(|(tenant, seen)| {
                let counts = TenantCounts {
                    delivered: seen.delivered,
                    duplicates: seen.duplicates,
                    lag_ms: Lag::of(&seen.lags_ms),
                };
                (tenant.to_string(), counts)
            })
            .collect()
    }

    fn refuse(&self, status: StatusCode, why: &str) -> Response<Body> {
        self.refused.fetch_add(1, Relaxed);
        output::line(format_args!("receiver: refused a delivery: {why}"));
        json_response(status, serde_json::json!({ "error": why }).to_string())
    }

    async fn receive(&self, request: Request<Incoming>) -> Response<Body> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(id), Some(timestamp), Some(signature)) = (
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
        ) else {
            return self.refuse(StatusCode::BAD_REQUEST, "missing webhook-* headers");
        };
        let Ok(body) = read_body(request.into_body(), MAX_DELIVERY_BYTES).await else {
            return self.refuse(StatusCode::BAD_REQUEST, "the body could not be read");
        };
        let arrived = SystemTime::now();
        let verified = webhook::verify(
            &self.secret,
            &id,
            &timestamp,
            &signature,
            &body,
            unix_now(),
            DEFAULT_TOLERANCE_SECONDS,
        );
        if let Err(e) = verified {
            return self.refuse(StatusCode::UNAUTHORIZED, &e.to_string());
        }
        self.verified.fetch_add(1, Relaxed);
        let tenant_and_lag = tenant_and_lag(&body, arrived);
        let new = {
            let mut seen = self.seen();
            let new = seen.ids.insert(id.as_str().into());
            if let Some((tenant, lag_ms)) = tenant_and_lag {
                let lags = seen.tenants.entry(tenant.into()).or_default();
                if new {
                    lags.delivered += 1;
                    lags.lags_ms.push(lag_ms);
                } else {
                    lags.duplicates += 1;
                }
            }
            new
        };
        if !new {
            self.duplicates.fetch_add(1, Relaxed);
        }
        if !self.quiet {
            print_delivery(&id, &body, new);
        }
        self.answer_late(StatusCode::NO_CONTENT).await
    }

    /// An empty answer with `status`, after the receiver's delay.
    async fn answer_late(&self, status: StatusCode) -> Response<Body> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        empty_response(status)
    }
}

impl Handler for Receiver {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/stats") => {
                let counts = serde_json::to_string(&self.counts()).unwrap_or_default();
                json_response(StatusCode::OK, counts)
            }
            (&Method::GET, "/stats/tenants") => {
                let counts = serde_json::to_string(&self.tenant_counts()).unwrap_or_default();
                json_response(StatusCode::OK, counts)
            }
            (&Method::POST, _) => self.receive(request).await,
            _ => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"error":"POST a delivery, or GET /stats or /stats/tenants"}"#,
            ),
        }
    }
}

/// One line per delivery: ID, tenant and the start of the payload.
fn print_delivery(id: &str, body: &[u8], new: bool) {
    let again = if new { "" } else { " again (a duplicate)" };
    #[derive(serde::Deserialize)]
    struct Delivery<'a> {
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        #[serde(borrow)]
        tenant_id: &'a str,
        #[serde(borrow)]
        payload: &'a serde_json::value::RawValue,
    }
    match serde_json::from_slice::<Delivery<'_>>(body) {
        Ok(delivery) => {
            let payload = delivery.data.payload.get();
            let shown: String = payload.chars().take(PRINTED_PAYLOAD_CHARS).collect();
            let more = if shown.len() < payload.len() {
                "…"
            } else {
                ""
            };
            output::line(format_args!(
                "receiver: delivered {id}{again} for {} (signature verified): {shown}{more}",
                delivery.data.tenant_id
            ));
        }
        Err(_) => output::line(format_args!(
            "receiver: delivered {id}{again} (signature verified), not a form.submission body"
        )),
    }
}

/// `formbridge receive`: a webhook receiver that verifies, counts and
/// prints deliveries.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    formbridge receive --listen 127.0.0.1:8080 --secret whsec_...\n      \
        then give a tenant the destination http://127.0.0.1:8080/ and the\n      \
        same whsec_ secret, and start formbridge serve with\n      \
        --allow-private-destinations\n  \
    formbridge receive --listen 127.0.0.1:8080 --quiet\n      \
        for load tests: the secret from FORMBRIDGE_WEBHOOK_SECRET;\n      \
        curl http://127.0.0.1:8080/stats for the counts\n  \
    formbridge receive --listen 127.0.0.1:8081 --quiet --delay-ms 5000\n      \
        a slow endpoint: each delivery answered 5 s after it arrived\n\n\
    Deliveries with a valid Standard Webhooks signature are answered 204\n\
    (after --delay-ms), others 401 at once.\n\
    GET /stats: {\"verified\", \"unique\", \"duplicates\", \"refused\"}.\n\
    GET /stats/tenants: for each tenant ID, {\"delivered\", \"duplicates\",\n\
    \"lag_ms\": {\"p50\", \"p99\", \"max\"}}, where a delivery's lag is when\n\
    it arrived (before the delay) minus its event's timestamp; also printed\n\
    at exit.")]
pub struct ReceiveArgs {
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
    /// Answer each verified delivery this many milliseconds after it arrived (a slow endpoint); deliveries wait side by side.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    delay_ms: u64,
}

impl ReceiveArgs {
    /// Runs the receiver until Ctrl-C or SIGTERM.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let secret =
            WebhookSecret::parse(&self.secret).map_err(|why| anyhow::anyhow!("--secret {why}"))?;
        // One thread: a receiver is a test tool sharing the machine with
        // the gateway and the load generator; it needs little CPU.
        let receiver =
            Receiver::new(secret, self.quiet).with_delay(Duration::from_millis(self.delay_ms));
        crate::runtime::current_thread()?.block_on(run(self.listen, receiver))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Serves a receiver on `listen` until Ctrl-C or SIGTERM; prints and
/// returns its counts.
pub async fn run(listen: SocketAddr, receiver: Receiver) -> anyhow::Result<Counts> {
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen}: choose another address with --listen")
    })?;
    let address = listener.local_addr().context("the listening address")?;
    output::line(format_args!(
        "receiver: listening on http://{address}; GET http://{address}/stats for counts"
    ));
    let receiver = Arc::new(receiver);
    let (stop, stopped) = watch::channel(false);
    // Deliveries already waiting out the delay are still answered.
    let server = tokio::spawn(crate::http::serve(
        listener,
        Arc::clone(&receiver),
        stopped,
        SHUTDOWN_GRACE + receiver.delay,
    ));
    crate::http::shutdown_signal().await;
    let _ = stop.send(true);
    let _ = server.await;
    let counts = receiver.counts();
    output::line(format_args!(
        "receiver: stopped. verified {} · unique {} · duplicates {} · refused {}",
        counts.verified, counts.unique, counts.duplicates, counts.refused
    ));
    for (tenant, c) in receiver.tenant_counts() {
        output::line(format_args!(
            "receiver: tenant {tenant}: delivered {} · duplicates {} · lag ms p50 {} · p99 {} · max {}",
            c.delivered, c.duplicates, c.lag_ms.p50, c.lag_ms.p99, c.lag_ms.max
        ));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_percentiles_are_nearest_rank() {
        let lags: Vec<u32> = (1..=200).rev().collect();
        assert_eq!(
            Lag::of(&lags),
            Lag {
                p50: 100,
                p99: 198,
                max: 200
            }
        );
        assert_eq!(
            Lag::of(&[7]),
            Lag {
                p50: 7,
                p99: 7,
                max: 7
            }
        );
        assert_eq!(Lag::of(&[]), Lag::default());
    }

    #[test]
    fn lag_is_arrival_minus_the_event_timestamp_and_never_negative() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_225_600_250);
        let body = format!(
            r#"{{"type":"form.submission","timestamp":"{}","data":{{"tenant_id":"acme","payload":{{}}}}}}"#,
            shared::event::received_at(sent)
        );
        let arrived = sent + Duration::from_millis(1_234);
        assert_eq!(
            tenant_and_lag(body.as_bytes(), arrived),
            Some(("acme".to_owned(), 1_234))
        );
        let earlier = sent - Duration::from_secs(1);
        assert_eq!(
            tenant_and_lag(body.as_bytes(), earlier),
            Some(("acme".to_owned(), 0))
        );
        assert_eq!(tenant_and_lag(b"{}", arrived), None);
        let bad_time = br#"{"timestamp":"yesterday","data":{"tenant_id":"acme"}}"#;
        assert_eq!(tenant_and_lag(bad_time, arrived), None);
    }
}
