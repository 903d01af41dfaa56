//! The gateway's listeners: how many connections they hold at once, and
//! how long a connection may take to ask.
//!
//! - **A cap** ([`Connections`]): at most `max` connections are open; the
//!   next ones are not accepted until one closes, and wait in the kernel's
//!   accept queue (their clients see a slow connect, not an error). The cap
//!   is fitted under the process's open-files limit
//!   ([`fit_to_open_files`]), so that a flood of connections never leaves
//!   the gateway without descriptors for its deliveries, its dead-letter
//!   file or its operations listener.
//! - **A header read timeout**: a new connection has this long to send a
//!   request's headers, and so has a kept-alive one from the first byte of
//!   its next request.
//! - **An idle timeout**: a kept-alive connection waiting for its next
//!   request is closed after this long; so is one whose client stops
//!   reading its answer.
//!
//! The body read timeout is the front's ([`super::front`]): it answers 408.
//! hyper's own header timer also runs while a kept-alive connection waits,
//! so it would cut idle connections at the header timeout: it is off, and
//! a watchdog per connection keeps both clocks, from what the connection
//! reads and when its handler runs.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::http::{Handler, until_true};

/// How much a listener holds and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Connections open at once.
    pub max_connections: usize,
    /// From accept, or from the first byte of a kept-alive connection's
    /// next request, until the request's headers are in.
    pub header_read_timeout: Duration,
    /// A kept-alive connection waiting for its next request (or a client
    /// not reading its answer).
    pub idle_timeout: Duration,
}

/// A listener's connections: the cap and how many are open.
pub struct Connections {
    policy: Policy,
    permits: Arc<Semaphore>,
    /// Connections accepted and not yet closed (the accept loop may hold
    /// a permit while it waits for the next one).
    open: Arc<AtomicUsize>,
}

/// Open connections and the cap, for `GET /healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Connections open now.
    pub open: usize,
    /// The cap.
    pub limit: usize,
}

impl Connections {
    /// Connections under `policy` (a cap of at least 1).
    pub fn new(policy: Policy) -> Self {
        let policy = Policy {
            max_connections: policy.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            ..policy
        };
        Self {
            permits: Arc::new(Semaphore::new(policy.max_connections)),
            policy,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Open connections and the cap.
    pub fn counts(&self) -> Counts {
        Counts {
            open: self.open.load(Relaxed),
            limit: self.policy.max_connections,
        }
    }
}

/// The cap to use under the process's open-files limit: `requested`, or
/// fewer so that `reserve` descriptors stay for everything else (never
/// below a quarter of the limit). Returns the cap and the limit when it
/// lowered the cap. Linux only (`/proc/self/limits`); elsewhere the cap is
/// `requested`.
pub fn fit_to_open_files(requested: usize, reserve: usize) -> (usize, Option<u64>) {
    let Some(limit) = open_files_limit() else {
        return (requested, None);
    };
    let room = usize::try_from(limit).unwrap_or(usize::MAX);
    let fitted = room.saturating_sub(reserve).max(room / 4).max(1);
    if fitted < requested {
        (fitted, Some(limit))
    } else {
        (requested, None)
    }
}

/// The soft limit on open files, when the system says and it is finite.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `handler` on `listener` under `connections`' cap and timeouts
/// until `stop` turns true; then stops accepting, lets requests in
/// progress finish (for up to `grace`) and returns.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    connections: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let policy = connections.policy;
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // The watchdog keeps the header and idle clocks (see the module's
    // documentation).
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let mut accept_errors = Throttled::new(Duration::from_secs(10));
    let mut at_cap = Throttled::new(Duration::from_secs(60));
    loop {
        let permit = match Arc::clone(&connections.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if let Some(more) = at_cap.ready() {
                    warn!(
                        limit = policy.max_connections,
                        times = more + 1,
                        "at the connection limit: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&connections.permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = until_true(&mut stop) => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, typically: wait, do not spin,
                    // and say so once in a while, not for every attempt.
                    if let Some(more) = accept_errors.ready() {
                        warn!(error = %e, times = more + 1, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_true(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let open = Open::new(permit, &connections.open);
        let activity = Arc::new(Activity::new());
        let handler = Arc::clone(&handler);
        let in_handler = Arc::clone(&activity);
        let service = service_fn(move |request| {
            let handler = Arc::clone(&handler);
            let activity = Arc::clone(&in_handler);
            async move {
                activity.enter(Phase::Busy);
                let response = handler.handle(request).await;
                activity.enter(Phase::Idle);
                Ok::<_, Infallible>(response)
            }
        });
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            let _open = open;
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    debug!(error = %e, "connection ended with an error");
                },
                phase = watchdog(&activity, policy) => match phase {
                    Phase::Head => debug!("closed a connection: no request headers within the header read timeout"),
                    _ => debug!("closed an idle connection"),
                },
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("requests still in progress after {grace:?}; no longer waiting for them");
    }
}

/// An open connection's place under the cap, given back when it closes.
struct Open {
    _permit: OwnedSemaphorePermit,
    open: Arc<AtomicUsize>,
}

impl Open {
    fn new(permit: OwnedSemaphorePermit, open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Relaxed);
        Self {
            _permit: permit,
            open: Arc::clone(open),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's headers (a new connection, or a kept-alive
    /// one since the first byte of its next request).
    Head = 0,
    /// Its handler is running (the body is read there, under its own
    /// timeout).
    Busy = 1,
    /// Kept alive, waiting for the next request, or writing an answer.
    Idle = 2,
}

/// A connection's phase and since when, shared by its reads, its handler
/// and its watchdog: one word, `milliseconds << 2 | phase`.
struct Activity {
    started: Instant,
    state: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            state: AtomicU64::new(Phase::Head as u64),
        }
    }

    fn enter(&self, phase: Phase) {
        let since = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX >> 2);
        self.state.store(since << 2 | phase as u64, Relaxed);
    }

    fn load(&self) -> (Phase, u64) {
        let state = self.state.load(Relaxed);
        let phase = match state & 3 {
            0 => Phase::Head,
            1 => Phase::Busy,
            _ => Phase::Idle,
        };
        (phase, state >> 2)
    }

    /// Bytes arrived: on an idle connection, a request has begun.
    fn read_some(&self) {
        if self.load().0 == Phase::Idle {
            self.enter(Phase::Head);
        }
    }
}

/// Waits until the connection has been in one phase past its timeout;
/// returns that phase. A connection whose handler runs is never cut here.
async fn watchdog(activity: &Activity, policy: Policy) -> Phase {
    loop {
        let (phase, since) = activity.load();
        let limit = match phase {
            Phase::Head => policy.header_read_timeout,
            Phase::Idle => policy.idle_timeout,
            Phase::Busy => {
                tokio::time::sleep(policy.header_read_timeout.min(policy.idle_timeout)).await;
                continue;
            }
        };
        tokio::time::sleep_until(activity.started + Duration::from_millis(since) + limit).await;
        if activity.load() == (phase, since) {
            return phase;
        }
    }
}

/// A stream that tells its [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A warning said at most once per period, with how many were held back.
struct Throttled {
    period: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttled {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(held back since the last one)` when a warning may be said now.
    fn ready(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + self.period) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::{Request, Response, StatusCode};
    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::http::{Body, json_response};

    struct Ok200;

    impl Handler for Ok200 {
        async fn handle(&self, _: Request<Incoming>) -> Response<Body> {
            json_response(StatusCode::OK, "{}")
        }
    }

    const POLICY: Policy = Policy {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
    };

    async fn start(policy: Policy) -> (String, Arc<Connections>, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(Connections::new(policy));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            Arc::new(Ok200),
            Arc::clone(&connections),
            stopped,
            Duration::from_secs(1),
        ));
        (address, connections, stop)
    }

    async fn get(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    /// Waits (a millisecond at a time, in paused time) until `condition`.
    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..1_000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("never happened");
    }

    /// Reads until the server closes; true when it did.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buffer = [0; 1024];
        matches!(stream.read(&mut buffer).await, Ok(0) | Err(_))
    }

    #[tokio::test(start_paused = true)]
    async fn silent_connections_are_closed_after_the_header_timeout_and_idle_ones_after_the_idle_timeout()
     {
        let (address, connections, _stop) = start(POLICY).await;
        let mut silent = TcpStream::connect(&address).await.unwrap();
        let mut kept = TcpStream::connect(&address).await.unwrap();
        assert!(get(&mut kept).await.starts_with("HTTP/1.1 200"));
        let started = Instant::now();
        assert!(closed(&mut silent).await);
        assert_eq!(started.elapsed().as_secs(), 5);
        // The kept-alive one outlives the header timeout...
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(get(&mut kept).await.starts_with("HTTP/1.1 200"));
        // ...and is closed when idle for 20 s.
        let idle_from = Instant::now();
        assert!(closed(&mut kept).await);
        assert_eq!(idle_from.elapsed().as_secs(), 20);
        until(|| connections.counts().open == 0).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_begun_on_a_kept_alive_connection_has_the_header_timeout() {
        let (address, _, _stop) = start(POLICY).await;
        let mut kept = TcpStream::connect(&address).await.unwrap();
        assert!(get(&mut kept).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_secs(15)).await;
        kept.write_all(b"GET / HT").await.unwrap();
        let started = Instant::now();
        assert!(closed(&mut kept).await);
        assert_eq!(started.elapsed().as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_cap_connections_wait_until_one_closes() {
        let (address, connections, _stop) = start(POLICY).await;
        let mut first = TcpStream::connect(&address).await.unwrap();
        let _second = TcpStream::connect(&address).await.unwrap();
        // Accepted by the kernel, not by the gateway.
        let mut third = TcpStream::connect(&address).await.unwrap();
        until(|| connections.counts().open == 2).await;
        assert_eq!(connections.counts(), Counts { open: 2, limit: 2 });
        assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
        // The second is cut at its header timeout; the third is taken then.
        let answer = get(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[test]
    fn the_cap_fits_under_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            128                  524288               files\n";
        assert_eq!(parse_open_files_limit(limits), Some(128));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn warnings_are_throttled() {
        let mut throttled = Throttled::new(Duration::from_secs(3600));
        assert_eq!(throttled.ready(), Some(0));
        assert_eq!(throttled.ready(), None);
        assert_eq!(throttled.ready(), None);
        assert_eq!(throttled.held_back, 2);
    }
}
