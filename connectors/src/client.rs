//! Sending one signed delivery: the [`DeliveryClient`] trait and its
//! `reqwest` adapter.
//!
//! [`HttpDeliveryClient`] is one pooled client per process: rustls (AWS-LC),
//! HTTP/1.1 keep-alive and HTTP/2 (ALPN), a connect timeout and a total
//! timeout per request, no redirects, no proxies, no cookies, and the
//! [`guard`] in its resolver. It answers with the status and
//! `Retry-After`, or a [`SendError`] that says what went wrong without
//! saying where (URLs can hold tokens).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use reqwest::Url;

use crate::guard::{self, GuardRules, Hosts, NotAllowed, PublicOnlyResolver};

/// `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("form-bridge/", env!("CARGO_PKG_VERSION"));

/// Most response body bytes read (then the connection is dropped rather
/// than drained): receivers' answers are not used, only their status.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// One HTTP request to a destination.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    /// Where to `POST`.
    pub url: Url,
    /// Every header to send (values may be credentials).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Total time allowed, connecting included.
    pub timeout: Duration,
}

/// What the destination answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The status code.
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// Why no answer was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The guard refused the destination; nothing was sent.
    #[error(transparent)]
    NotAllowed(#[from] NotAllowed),
    /// No answer within the timeout.
    #[error("no answer within {}ms", .0.as_millis())]
    Timeout(Duration),
    /// No connection could be made (refused, unreachable, DNS, TLS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection failed after it was made.
    #[error("the request failed: {0}")]
    Transport(String),
}

/// Sends deliveries.
pub trait DeliveryClient: Send + Sync {
    /// Sends `request` once.
    fn send(
        &self,
        request: WebhookRequest,
    ) -> impl Future<Output = Result<WebhookResponse, SendError>> + Send;
}

/// How the HTTP client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The guard's rules.
    pub rules: GuardRules,
    /// Fixed host answers consulted before DNS (filtered like DNS's).
    pub hosts: Hosts,
    /// The longest a connection (TCP and TLS) may take.
    pub connect_timeout: Duration,
}

/// The `reqwest` adapter: one pooled client, built once.
#[derive(Debug, Clone)]
pub struct HttpDeliveryClient {
    client: reqwest::Client,
    rules: GuardRules,
}

impl HttpDeliveryClient {
    /// Builds the client. Fails only when TLS cannot be set up.
    pub fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        let resolver = PublicOnlyResolver::new(options.hosts, options.rules.public_only);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(options.rules.https_only)
            .connect_timeout(options.connect_timeout)
            // Shorter than the 60 s most servers and load balancers keep an
            // idle connection, so the pool rarely hands out a dead one.
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_keepalive(Duration::from_secs(30))
            .dns_resolver(Arc::new(resolver))
            .build()?;
        Ok(Self {
            client,
            rules: options.rules,
        })
    }
}

impl DeliveryClient for HttpDeliveryClient {
    async fn send(&self, request: WebhookRequest) -> Result<WebhookResponse, SendError> {
        guard::check(&request.url, self.rules)?;
        let timeout = request.timeout;
        let mut response = self
            .client
            .post(request.url)
            .headers(request.headers)
            .body(request.body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| classify(&e, timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read a small answer to the end so the connection goes back to the
        // pool; give up on a large one. Errors here do not change the
        // outcome: the status has arrived.
        let mut read = 0;
        while read <= MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Ok(WebhookResponse {
            status,
            retry_after,
        })
    }
}

/// Names what failed. reqwest's own messages include the URL, so only
/// the kinds and the innermost cause (an OS or TLS error) are kept.
fn classify(error: &reqwest::Error, timeout: Duration) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut innermost = None;
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<NotAllowed>() {
            return SendError::NotAllowed(*refused);
        }
        innermost = Some(e);
        source = e.source();
    }
    let cause = innermost
        .filter(|e| e.downcast_ref::<reqwest::Error>().is_none())
        .map_or_else(|| "unknown error".to_owned(), ToString::to_string);
    if error.is_timeout() {
        SendError::Timeout(timeout)
    } else if error.is_connect() {
        SendError::Connect(cause)
    } else {
        SendError::Transport(cause)
    }
}
