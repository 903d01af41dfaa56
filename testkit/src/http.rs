//! A scripted HTTP/1.1 server on a loopback port, and free ports for the
//! servers a test starts itself.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target.
    pub path: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first header called `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the official Standard Webhooks library accepts this request
    /// as a delivery signed with `secret` (`whsec_...`).
    pub fn webhook_verifies(&self, secret: &str) -> bool {
        let mut headers = http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if let Some(value) = self.header(name).and_then(|v| v.parse().ok()) {
                headers.insert(name, value);
            }
        }
        standardwebhooks::Webhook::new(secret)
            .and_then(|webhook| webhook.verify(&self.body, &headers))
            .is_ok()
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer after `delay`.
    Respond {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
        /// Wait this long first.
        delay: Duration,
    },
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// `status` with a JSON body, at once.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer, after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        match self {
            Self::Respond {
                status,
                headers,
                body,
                ..
            } => Self::Respond {
                status,
                headers,
                body,
                delay,
            },
            other => other,
        }
    }

    /// Adds a header to the answer.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

type Handler = dyn Fn(&RecordedRequest, usize) -> Reply + Send + Sync;

/// A server whose answers come from a function of the request and its
/// position (0-based, across connections). Every request is recorded.
pub struct HttpServer {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl HttpServer {
    /// Starts on a free loopback port; serves until the process ends.
    pub fn start(
        handler: impl Fn(&RecordedRequest, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || serve(stream, &*handler, &recorded));
            }
        });
        Self { addr, requests }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, recorded: &Mutex<Vec<RecordedRequest>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let position = {
            let mut all = recorded.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        };
        match handler(&request, position) {
            Reply::Close => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Respond {
                status,
                headers,
                body,
                delay,
            } => {
                std::thread::sleep(delay);
                let mut head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body).
pub(crate) fn read_request(r: &mut impl BufRead) -> Option<RecordedRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let (name, value) = (name.trim(), value.trim());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
        headers.push((name.to_string(), value.to_string()));
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some(RecordedRequest {
        method,
        path,
        headers,
        body,
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port on loopback")
        .port()
}

/// A proxy to `endpoint` (`http://host:port`) that passes one request at a
/// time. Moto serves each request on a thread of its own and isolates none:
/// a DynamoDB transaction copies the table, checks and writes item by item,
/// and on a failed condition puts its copy back, dropping what another
/// request wrote meanwhile. DynamoDB isolates every call, transactions
/// included; through this proxy moto's table answers as DynamoDB's does,
/// while calls from several clients still interleave call by call.
pub fn one_at_a_time(endpoint: &str) -> HttpServer {
    let upstream = endpoint.trim_start_matches("http://").to_owned();
    let one = Mutex::new(());
    HttpServer::start(move |request, _| {
        let _one = one.lock().unwrap_or_else(|e| e.into_inner());
        forward(&upstream, request)
    })
}

/// Sends `request` to `upstream` on a connection of its own and returns
/// the answer as it came.
fn forward(upstream: &str, request: &RecordedRequest) -> Reply {
    use std::io::Read;
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
    let mut stream = TcpStream::connect(upstream)
        .unwrap_or_else(|e| panic!("the proxy cannot reach {upstream}: {e}"));
    let mut answer = Vec::new();
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&request.body))
        .and_then(|()| stream.read_to_end(&mut answer));
    if let Err(e) = sent {
        panic!("the proxy's exchange with {upstream} failed: {e}");
    }
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("{upstream} answered no HTTP head");
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{upstream} answered no status"));
    Reply::Respond {
        status,
        headers: lines
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| !framing(name))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect(),
        body: answer[end + 4..].to_vec(),
        delay: Duration::ZERO,
    }
}
