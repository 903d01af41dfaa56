//! A stand-in for the Lambda Runtime API, so a test or a benchmark runs a
//! real `bootstrap` binary exactly as Lambda would: the binary polls for
//! events, the stand-in hands them out and records the answers.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http;

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `POST .../response` with this body.
    Response(String),
    /// `POST .../error` with this body.
    Error(String),
}

#[derive(Default)]
struct RuntimeState {
    /// Request ID, event, and the tenant ID the invocation carries.
    events: VecDeque<(String, String, Option<String>)>,
    answers: Vec<(String, Answer)>,
    init_error: Option<String>,
    first_poll: Option<Instant>,
}

/// A stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`): hands
/// out the queued events on `GET /invocation/next` (then holds the poll open,
/// as Lambda does between invocations) and records what the function posts
/// back.
pub struct FakeRuntimeApi {
    addr: String,
    state: Arc<(Mutex<RuntimeState>, Condvar)>,
}

impl FakeRuntimeApi {
    /// Starts serving `events` (JSON texts) on a loopback port.
    pub fn start(events: impl IntoIterator<Item = String>) -> Self {
        Self::start_for_tenants(events.into_iter().map(|event| (None, event)))
    }

    /// The same, each invocation carrying the tenant ID given with it
    /// (the `Lambda-Runtime-Aws-Tenant-Id` header of a function in tenant
    /// isolation mode), or none.
    pub fn start_for_tenants(events: impl IntoIterator<Item = (Option<String>, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind runtime API");
        let addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new((Mutex::new(RuntimeState::default()), Condvar::new()));
        {
            let mut s = state.0.lock().unwrap();
            for (i, (tenant, e)) in events.into_iter().enumerate() {
                s.events.push_back((format!("req-{i}"), e, tenant));
            }
        }
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        Self { addr, state }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The environment Lambda gives a custom runtime, pointed at this API.
    pub fn lambda_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.addr.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "formbridge-test"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/formbridge-test"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A command that starts the `bootstrap` at `exe` as Lambda does: with
    /// nothing but the Lambda environment pointing at this API (add the
    /// function's own variables), and no standard input.
    pub fn command(&self, exe: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(exe);
        cmd.env_clear().envs(self.lambda_env()).stdin(Stdio::null());
        cmd
    }

    /// Waits until `n` answers have been posted, or `limit` passes; returns
    /// them in the order of the events they answer.
    pub fn wait_for_answers(&self, n: usize, limit: Duration) -> Vec<Answer> {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + limit;
        let mut s = lock.lock().unwrap();
        while s.answers.len() < n && s.init_error.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = cvar.wait_timeout(s, left).unwrap().0;
        }
        let mut answers = s.answers.clone();
        answers.sort_by_key(|(id, _)| id.trim_start_matches("req-").parse::<usize>().unwrap_or(0));
        answers.into_iter().map(|(_, a)| a).collect()
    }

    /// Runs the bootstrap `command` (from [`FakeRuntimeApi::command`]) until
    /// it has answered `n` invocations (or 30 s pass), then kills it;
    /// returns the answers and everything it wrote to stdout.
    pub fn run(&self, command: &mut Command, n: usize) -> (Vec<Answer>, String) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bootstrap");
        // Read while it runs: a full pipe would block the function.
        let mut stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut text);
            text
        });
        let answers = self.wait_for_answers(n, Duration::from_secs(30));
        let _ = child.kill();
        let _ = child.wait();
        let stdout = reader.join().unwrap_or_default();
        (answers, String::from_utf8_lossy(&stdout).into_owned())
    }

    /// When the function first asked for an invocation (it was ready).
    pub fn first_poll(&self) -> Option<Instant> {
        self.state.0.lock().unwrap().first_poll
    }

    /// Waits for the first poll for an invocation.
    pub fn wait_first_poll(&self, limit: Duration) -> Option<Instant> {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + limit;
        let mut s = lock.lock().unwrap();
        while s.first_poll.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = cvar.wait_timeout(s, left).unwrap().0;
        }
        s.first_poll
    }
}

fn serve_connection(stream: TcpStream, state: &(Mutex<RuntimeState>, Condvar)) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    while let Some(request) = http::read_request(&mut reader) {
        let (method, path) = (request.method.as_str(), request.path.as_str());
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let (lock, cvar) = state;
        let reply = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let mut s = lock.lock().unwrap();
            s.first_poll.get_or_insert_with(Instant::now);
            cvar.notify_all();
            // Hold the poll while there is nothing to run, as Lambda does.
            while s.events.is_empty() {
                s = cvar.wait(s).unwrap();
            }
            let (id, event, tenant) = s.events.pop_front().unwrap();
            let tenant = tenant
                .map(|t| format!("Lambda-Runtime-Aws-Tenant-Id: {t}\r\n"))
                .unwrap_or_default();
            drop(s);
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Lambda-Runtime-Aws-Request-Id: {id}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:formbridge-test\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n\
                 {tenant}Content-Length: {}\r\n\r\n{event}",
                event.len()
            )
        } else if method == "POST" && path.contains("/runtime/invocation/") {
            let id = path.split('/').rev().nth(1).unwrap_or_default().to_string();
            let answer = if path.ends_with("/response") {
                Answer::Response(body)
            } else {
                Answer::Error(body)
            };
            let mut s = lock.lock().unwrap();
            s.answers.push((id, answer));
            cvar.notify_all();
            accepted()
        } else if method == "POST" && path.ends_with("/runtime/init/error") {
            let mut s = lock.lock().unwrap();
            s.init_error = Some(body);
            cvar.notify_all();
            accepted()
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn accepted() -> String {
    let body = r#"{"status":"OK"}"#;
    format!(
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Asserts that a bootstrap's stdout is JSON lines only (logs and EMF
/// metrics) and contains none of `never` (secrets, bodies).
pub fn assert_json_logs(stdout: &str, never: &[&str]) {
    for text in never {
        assert!(!stdout.contains(text), "{text:?} in logs:\n{stdout}");
    }
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}
