//! Test support for Form-Bridge: real local stand-ins for what the functions
//! talk to in AWS.
//!
//! - [`MotoServer`]: the moto AWS emulator as a child process on a free port,
//!   stopped when dropped (or earlier, to test an outage).
//! - [`FakeRuntimeApi`]: the Lambda Runtime API that a `bootstrap` binary
//!   polls, serving given events and collecting the answers, so a test or a
//!   benchmark runs the real binary exactly as Lambda would.
//!
//! - [`HttpServer`]: a scripted HTTP/1.1 server that records requests and
//!   answers, stalls or hangs up as told: a misbehaving AWS endpoint or a
//!   tenant's webhook receiver.
//!
//! Missing tools are a failure with a message, never a skip.

#![allow(clippy::unwrap_used, clippy::print_stdout, unreachable_pub)]

mod http;

pub use http::{HttpServer, RecordedRequest, Reply};

use std::collections::VecDeque;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The workspace root (where `.venv` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the workspace")
        .to_path_buf()
}

/// An SDK config loader pointed at `endpoint` with dummy credentials.
pub fn loader_for(endpoint: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
}

/// A fixture from a crate's `tests/data/` (pass `env!("CARGO_MANIFEST_DIR")`).
pub fn test_data(crate_dir: &str, name: &str) -> String {
    let path = Path::new(crate_dir).join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port on loopback")
        .port()
}

/// A moto server (AWS emulator) running as a child process.
pub struct MotoServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers.
    ///
    /// Panics with instructions when moto is not installed: run
    /// `scripts/test`, which installs it into `.venv`, or point
    /// `FORMBRIDGE_MOTO_SERVER` at a `moto_server` executable.
    pub fn start() -> Self {
        let exe = std::env::var_os("FORMBRIDGE_MOTO_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".venv/bin/moto_server"));
        assert!(
            exe.exists(),
            "moto_server not found at {}. Run scripts/test (it installs moto into .venv), \
             or set FORMBRIDGE_MOTO_SERVER to a moto_server executable.",
            exe.display()
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("formbridge-moto-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("create moto log file");
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("dup log file"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let mut server = Self {
            child: Some(child),
            port,
            log,
        };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                // Connected is not enough: ask for a page so the app is loaded.
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let req = format!(
                    "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "moto_server exited ({status}) before it was ready:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < limit,
                "moto_server did not answer on port {} within {limit:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for a child process to use this emulator through the
    /// standard AWS variables.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint().as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// An SDK config loader pointed at this emulator with dummy credentials.
    pub fn loader(&self) -> aws_config::ConfigLoader {
        loader_for(&self.endpoint())
    }

    /// Creates an EventBridge bus (unless it exists) and a rule on it that
    /// sends events matching `pattern` to a new SQS queue; returns the
    /// queue's URL.
    pub async fn route_to_queue(&self, bus: &str, rule: &str, pattern: &str) -> String {
        let config = self.loader().load().await;
        let events = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let exists = events.describe_event_bus().name(bus).send().await.is_ok();
        if !exists {
            events.create_event_bus().name(bus).send().await.unwrap();
        }
        let url = sqs
            .create_queue()
            .queue_name(format!("{rule}-queue"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        url
    }

    /// Receives (and deletes) message bodies from a queue until `n` have
    /// arrived or the queue stays empty for two seconds.
    pub async fn drain_queue(&self, queue_url: &str, n: usize) -> Vec<String> {
        let config = self.loader().load().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let mut bodies = Vec::new();
        let mut idle = 0;
        while bodies.len() < n && idle < 20 {
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                idle += 1;
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            for m in messages {
                bodies.push(m.body.unwrap_or_default());
                if let Some(handle) = m.receipt_handle {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        bodies
    }

    /// Stores a secret (a tenant record's JSON, say) in the emulator.
    pub async fn put_secret(&self, name: &str, secret_string: &str) {
        let config = self.loader().load().await;
        aws_sdk_secretsmanager::Client::new(&config)
            .create_secret()
            .name(name)
            .secret_string(secret_string)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create secret {name} in moto: {e:?}"));
    }

    /// Stops the server now, as an outage would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

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
    events: VecDeque<(String, String)>,
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind runtime API");
        let addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new((Mutex::new(RuntimeState::default()), Condvar::new()));
        {
            let mut s = state.0.lock().unwrap();
            for (i, e) in events.into_iter().enumerate() {
                s.events.push_back((format!("req-{i}"), e));
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
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bootstrap");
        let answers = self.wait_for_answers(n, Duration::from_secs(30));
        let mut child = child;
        let _ = child.kill();
        let output = child.wait_with_output().expect("bootstrap output");
        (
            answers,
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
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
            let (id, event) = s.events.pop_front().unwrap();
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
                 Content-Length: {}\r\n\r\n{event}",
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

/// What one cold start of a `bootstrap` cost.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// From spawning the process to its first poll for an invocation.
    pub ready: Duration,
    /// From that poll to the answer to the first invocation.
    pub first_invocation: Duration,
    /// Peak resident memory (`VmHWM`) after answering.
    pub peak_rss_kib: u64,
    /// The answer to the first invocation.
    pub answer: Option<Answer>,
}

/// Cold-starts a `bootstrap` the way Lambda does: spawns `command` (from
/// [`FakeRuntimeApi::command`] on `runtime`, which holds at least one
/// event), times it to ready and through the first invocation, reads its
/// peak RSS, and kills it.
pub fn cold_start(runtime: &FakeRuntimeApi, command: &mut Command) -> ColdStart {
    let spawned = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bootstrap");
    let ready = runtime
        .wait_first_poll(Duration::from_secs(10))
        .expect("bootstrap polled");
    let answer = runtime
        .wait_for_answers(1, Duration::from_secs(10))
        .into_iter()
        .next();
    let answered = Instant::now();
    let peak_rss_kib = peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    ColdStart {
        ready: ready - spawned,
        first_invocation: answered - ready,
        peak_rss_kib,
        answer,
    }
}

/// One line about many cold starts: count, median first invocation, RSS.
pub fn cold_start_summary(name: &str, samples: &mut [ColdStart]) -> String {
    samples.sort_by_key(|s| s.first_invocation);
    let median = samples
        .get(samples.len() / 2)
        .map_or(Duration::ZERO, |s| s.first_invocation);
    let rss = |f: fn(u64, u64) -> u64| {
        samples
            .iter()
            .map(|s| s.peak_rss_kib)
            .reduce(f)
            .unwrap_or(0)
    };
    format!(
        "{name}: {} samples; first invocation median {median:?}; peak RSS {:.1}..{:.1} MiB",
        samples.len(),
        rss(u64::min) as f64 / 1024.0,
        rss(u64::max) as f64 / 1024.0
    )
}

/// Benchmarks cold starts as criterion group `name` (`spawn_to_ready`:
/// process spawn to first poll), taking each sample from `one`, then prints
/// [`cold_start_summary`] of every sample.
pub fn bench_cold_starts(
    c: &mut criterion::Criterion,
    name: &str,
    mut one: impl FnMut() -> ColdStart,
) {
    let mut samples = Vec::new();
    let mut g = c.benchmark_group(name);
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("spawn_to_ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let s = one();
                total += s.ready;
                samples.push(s);
            }
            total
        })
    });
    g.finish();
    println!("{}", cold_start_summary(name, &mut samples));
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

/// Peak resident memory of a running process, from `/proc/<pid>/status`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
