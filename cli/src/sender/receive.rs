//! A webhook receiver that verifies each delivery's Standard Webhooks
//! signature, counts deliveries by ID and prints each: the built-in
//! default destination of `formbridge serve` (so the run command shows the
//! whole path working) and `formbridge receive` (a destination for local
//! tenants and load tests, whose `GET /stats` tells whether every accepted
//! submission arrived exactly once).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::net::TcpListener;
use tokio::sync::watch;

use serde::Serialize;

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

/// Verifies deliveries signed with one `whsec_` secret, counts them by
/// `webhook-id` (to tell duplicates from new deliveries) and prints each
/// unless quiet.
pub struct Receiver {
    secret: WebhookSecret,
    quiet: bool,
    seen: Mutex<HashSet<Box<str>>>,
    verified: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
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

impl Receiver {
    /// A receiver for deliveries signed with `secret`; `quiet` prints
    /// nothing per delivery (load tests).
    pub fn new(secret: WebhookSecret, quiet: bool) -> Self {
        Self {
            secret,
            quiet,
            seen: Mutex::new(HashSet::new()),
            verified: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// What it has seen so far.
    pub fn counts(&self) -> Counts {
        let unique = self.seen.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        Counts {
            verified: self.verified.load(Relaxed),
            unique,
            duplicates: self.duplicates.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
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
        let new = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.as_str().into());
        if !new {
            self.duplicates.fetch_add(1, Relaxed);
        }
        if !self.quiet {
            print_delivery(&id, &body, new);
        }
        empty_response(StatusCode::NO_CONTENT)
    }
}

impl Handler for Receiver {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/stats") => {
                let counts = serde_json::to_string(&self.counts()).unwrap_or_default();
                json_response(StatusCode::OK, counts)
            }
            (&Method::POST, _) => self.receive(request).await,
            _ => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                r#"{"error":"POST a delivery, or GET /stats"}"#,
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
        curl http://127.0.0.1:8080/stats for the counts\n\n\
    Deliveries with a valid Standard Webhooks signature are answered 204,\n\
    others 401. GET /stats: {\"verified\", \"unique\", \"duplicates\", \"refused\"}.")]
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
}

impl ReceiveArgs {
    /// Runs the receiver until Ctrl-C or SIGTERM.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let secret =
            WebhookSecret::parse(&self.secret).map_err(|why| anyhow::anyhow!("--secret {why}"))?;
        // One thread: a receiver is a test tool sharing the machine with
        // the gateway and the load generator; it needs little CPU.
        crate::runtime::current_thread()?
            .block_on(run(self.listen, Receiver::new(secret, self.quiet)))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Serves a receiver on `listen` until Ctrl-C or SIGTERM; returns its
/// counts.
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
    let server = tokio::spawn(crate::http::serve(
        listener,
        Arc::clone(&receiver),
        stopped,
        Duration::from_secs(5),
    ));
    crate::http::shutdown_signal().await;
    let _ = stop.send(true);
    let _ = server.await;
    let counts = receiver.counts();
    output::line(format_args!(
        "receiver: stopped. verified {} · unique {} · duplicates {} · refused {}",
        counts.verified, counts.unique, counts.duplicates, counts.refused
    ));
    Ok(counts)
}
