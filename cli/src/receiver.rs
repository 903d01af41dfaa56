//! A webhook receiver that verifies each delivery's Standard Webhooks
//! signature and prints it: the built-in default destination of
//! `formbridge serve`, so the run command shows the whole path working.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// Verifies deliveries signed with one `whsec_` secret and prints each.
pub struct Receiver {
    secret: WebhookSecret,
    verified: AtomicU64,
    refused: AtomicU64,
}

impl Receiver {
    /// A receiver for deliveries signed with `secret`.
    pub fn new(secret: WebhookSecret) -> Self {
        Self {
            secret,
            verified: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Deliveries verified and refused so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.verified.load(Relaxed), self.refused.load(Relaxed))
    }

    fn refuse(&self, status: StatusCode, why: &str) -> Response<Body> {
        self.refused.fetch_add(1, Relaxed);
        output::line(format_args!("receiver: refused a delivery: {why}"));
        json_response(status, &serde_json::json!({ "error": why }).to_string())
    }
}

impl Handler for Receiver {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::POST {
            return json_response(StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"POST only"}"#);
        }
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
        print_delivery(&id, &body);
        empty_response(StatusCode::NO_CONTENT)
    }
}

/// One line per delivery: ID, tenant and the start of the payload.
fn print_delivery(id: &str, body: &[u8]) {
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
                "receiver: delivered {id} for {} (signature verified): {shown}{more}",
                delivery.data.tenant_id
            ));
        }
        Err(_) => output::line(format_args!(
            "receiver: delivered {id} (signature verified), not a form.submission body"
        )),
    }
}
