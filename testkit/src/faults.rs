//! Outside services failing the way networks and services fail, for the
//! fault matrix (docs/fault-matrix.md): a server, or a proxy in front of a
//! real one (moto), that decides request by request to answer, to pass the
//! request on, to lose the answer of a call that took effect, to cut an
//! answer short, to answer bytes that are not HTTP, or to hang up.
//!
//! Every answer carries `Connection: close` and the connection is closed
//! after it, so each request comes on a connection of its own: a client's
//! pool never hands out a connection this server has just closed, and a
//! test sees only the fault it asked for.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{RecordedRequest, Reply, read_request};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with a scripted reply (a status, possibly after a delay, or
    /// a hang-up without an answer).
    Reply(Reply),
    /// Pass the request to the upstream and its answer back (a proxy's
    /// normal case; without an upstream, a 502).
    Forward,
    /// Pass the request to the upstream, then hang up without its answer:
    /// the call took effect and the caller cannot know it.
    Lost,
    /// Send a complete head (status, headers, a `Content-Length` for all
    /// of `body`) and the first `sent` bytes of `body`, then hang up.
    Truncated {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The whole body the head announces.
        body: Vec<u8>,
        /// How much of it is sent.
        sent: usize,
    },
    /// Send these bytes, which are not an HTTP answer, then hang up.
    Garbage(Vec<u8>),
}

impl Fault {
    /// `status` with a JSON body in the given media type, at once.
    pub fn status(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self::Reply(Reply::json(status, body).with_header("Content-Type", content_type))
    }

    /// An answer that never comes (within any test): the request is read,
    /// then nothing is sent for ten minutes.
    pub fn hang() -> Self {
        Self::Reply(Reply::json(200, "{}").after(Duration::from_secs(600)))
    }

    /// A hang-up right after the request was read, without an answer.
    pub fn hang_up() -> Self {
        Self::Reply(Reply::Close)
    }

    /// A 200 whose JSON body stops halfway.
    pub fn truncated_json(content_type: &str, body: impl Into<String>) -> Self {
        let body = body.into().into_bytes();
        Self::Truncated {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            sent: body.len() / 2,
            body,
        }
    }
}

type Handler = dyn Fn(&RecordedRequest, usize) -> Fault + Send + Sync;

/// A server answering each request with the [`Fault`] a function of the
/// request and its position (0-based, across connections) gives; every
/// request is recorded.
pub struct FaultServer {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl FaultServer {
    /// A server of its own (no upstream: [`Fault::Forward`] and
    /// [`Fault::Lost`] answer 502) on a free loopback port.
    pub fn start(
        handler: impl Fn(&RecordedRequest, usize) -> Fault + Send + Sync + 'static,
    ) -> Self {
        Self::spawn(None, Arc::new(handler))
    }

    /// A proxy in front of `upstream` (`http://host:port`, a moto server
    /// say): [`Fault::Forward`] passes a request on, the others fail it.
    pub fn proxy(
        upstream: &str,
        handler: impl Fn(&RecordedRequest, usize) -> Fault + Send + Sync + 'static,
    ) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        Self::spawn(Some(upstream), Arc::new(handler))
    }

    fn spawn(upstream: Option<String>, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let upstream = Arc::new(upstream);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, recorded, upstream) = (
                    Arc::clone(&handler),
                    Arc::clone(&recorded),
                    Arc::clone(&upstream),
                );
                std::thread::spawn(move || {
                    serve(stream, &*handler, &recorded, upstream.as_deref());
                });
            }
        });
        Self { addr, requests }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests whose `X-Amz-Target` (an AWS JSON protocol's operation)
    /// ends with `operation`, such as `PutEvents` or `GetSecretValue`.
    pub fn calls_of(&self, operation: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.header("x-amz-target")
                    .is_some_and(|t| t.ends_with(operation))
            })
            .count()
    }
}

/// The AWS JSON protocol operation a request calls (`X-Amz-Target` after
/// its last `.`), or `""`.
pub fn operation(request: &RecordedRequest) -> &str {
    request
        .header("x-amz-target")
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    recorded: &Mutex<Vec<RecordedRequest>>,
    upstream: Option<&str>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let Some(request) = read_request(&mut BufReader::new(reader)) else {
        return;
    };
    let position = {
        let mut all = recorded.lock().unwrap_or_else(|e| e.into_inner());
        all.push(request.clone());
        all.len() - 1
    };
    let mut writer = stream;
    match handler(&request, position) {
        Fault::Reply(Reply::Close) => {}
        Fault::Reply(Reply::Respond {
            status,
            headers,
            body,
            delay,
        }) => {
            std::thread::sleep(delay);
            let _ = writer
                .write_all(&head(status, &headers, body.len()))
                .and_then(|()| writer.write_all(&body));
        }
        Fault::Forward => {
            let (status, headers, body) = match upstream.map(|u| forward(u, &request)) {
                Some(Ok(answer)) => answer,
                Some(Err(e)) => (502, Vec::new(), e.into_bytes()),
                None => (502, Vec::new(), b"no upstream".to_vec()),
            };
            let _ = writer
                .write_all(&head(status, &headers, body.len()))
                .and_then(|()| writer.write_all(&body));
        }
        Fault::Lost => {
            if let Some(upstream) = upstream {
                let _ = forward(upstream, &request);
            }
        }
        Fault::Truncated {
            status,
            headers,
            body,
            sent,
        } => {
            let _ = writer
                .write_all(&head(status, &headers, body.len()))
                .and_then(|()| writer.write_all(&body[..sent.min(body.len())]))
                .and_then(|()| writer.flush());
            // Let the client read what was sent before the hang-up.
            std::thread::sleep(Duration::from_millis(50));
        }
        Fault::Garbage(bytes) => {
            let _ = writer.write_all(&bytes).and_then(|()| writer.flush());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// A response head announcing `length` body bytes, on a connection that
/// closes after it.
fn head(status: u16, headers: &[(String, String)], length: usize) -> Vec<u8> {
    let mut head =
        format!("HTTP/1.1 {status} Status\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An answer as passed back: status, headers (without framing), body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends `request` to `upstream` on a connection of its own; returns its
/// answer, or why there is none.
fn forward(upstream: &str, request: &RecordedRequest) -> Result<Answer, String> {
    let framing = |name: &str| {
        ["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.path);
    for (name, value) in request.headers.iter().filter(|(n, _)| !framing(n)) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        request.body.len()
    ));
    let mut stream =
        TcpStream::connect(upstream).map_err(|e| format!("cannot reach {upstream}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&request.body))
        .and_then(|()| stream.read_to_end(&mut answer))
        .map_err(|e| format!("exchange with {upstream} failed: {e}"))?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{upstream} answered no HTTP head"))?;
    let text = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{upstream} answered no status"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| !framing(name))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok((status, headers, answer[end + 4..].to_vec()))
}
