//! The operations listener (`--admin-listen`, a loopback port by default):
//! what an operator reads, served apart from the address senders reach,
//! so that exposing the gateway (`--listen 0.0.0.0:8080`, a tunnel for a
//! provider's webhooks) exposes no payload, and a flood of connections
//! there leaves the health check answering here.
//!
//! - `GET /healthz`: the bus's counts and both listeners' connections;
//! - `GET /v1/dead-letters?after=SEQ&limit=N`: a page of dead-letter
//!   summaries, oldest first, never a payload ([`DeadLetters::page`]);
//! - `GET /v1/dead-letters/{submission_id}`: that dead letter whole.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tracing::error;

use super::bus::{Bus, Snapshot};
use super::connections::{Connections, Counts};
use super::dead_letters::{DeadLetters, INDEXED, Query};
use crate::http::{Body, Handler, json_response};

/// The operational routes.
pub struct Operations {
    bus: Arc<Bus>,
    dead_letters: Arc<DeadLetters>,
    gateway: Arc<Connections>,
    operations: Arc<Connections>,
}

/// `GET /healthz` on the operations listener.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    bus: Snapshot,
    connections: ConnectionCounts,
}

/// Both listeners' connections.
#[derive(Debug, Serialize)]
struct ConnectionCounts {
    gateway: Counts,
    operations: Counts,
}

impl Operations {
    /// The routes over the bus, its dead letters, and the connections of
    /// the gateway's listener and of this one.
    pub fn new(
        bus: Arc<Bus>,
        dead_letters: Arc<DeadLetters>,
        gateway: Arc<Connections>,
        operations: Arc<Connections>,
    ) -> Self {
        Self {
            bus,
            dead_letters,
            gateway,
            operations,
        }
    }

    fn health(&self) -> Response<Body> {
        let health = Health {
            status: "ok",
            bus: self.bus.snapshot(),
            connections: ConnectionCounts {
                gateway: self.gateway.counts(),
                operations: self.operations.counts(),
            },
        };
        json(StatusCode::OK, &health)
    }

    async fn list(&self, query: &str) -> Response<Body> {
        let query = match Query::parse(query) {
            Ok(query) => query,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, "bad_query", &e.to_string()),
        };
        let dead_letters = Arc::clone(&self.dead_letters);
        // Reading what the bus appended since the last listing is file I/O:
        // off the runtime's workers.
        let page =
            tokio::task::spawn_blocking(move || serde_json::to_vec(&dead_letters.page(query)))
                .await;
        match page {
            Ok(Ok(body)) => json_response(StatusCode::OK, body),
            // A panic while indexing, or a path that is not text: neither
            // happens; say so rather than guess.
            _ => unreadable(),
        }
    }

    async fn letter(&self, submission_id: &str) -> Response<Body> {
        let dead_letters = Arc::clone(&self.dead_letters);
        let id = submission_id.to_owned();
        let letter = tokio::task::spawn_blocking(move || dead_letters.letter(&id))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match letter {
            Ok(Some(letter)) => json_response(StatusCode::OK, letter),
            Ok(None) => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "no dead letter with this submission ID among this run's newest {INDEXED}"
                ),
            ),
            Err(e) => {
                error!(error = %e, "cannot read the dead-letter file");
                unreadable()
            }
        }
    }
}

fn unreadable() -> Response<Body> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "dead_letter_file_unreadable",
        "cannot read the dead-letter file; see the gateway's log",
    )
}

impl Handler for Operations {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() == Method::GET {
            let path = request.uri().path();
            if path == "/healthz" {
                return self.health();
            }
            if path == "/v1/dead-letters" {
                return self.list(request.uri().query().unwrap_or_default()).await;
            }
            if let Some(id) = path.strip_prefix("/v1/dead-letters/")
                && !id.is_empty()
                && !id.contains('/')
            {
                return self.letter(id).await;
            }
        }
        json_response(StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#)
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(status, body),
        // Strings and numbers only: cannot fail.
        Err(_) => json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}"),
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    json_response(status, body.to_string())
}
