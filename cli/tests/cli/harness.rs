//! Drives the built `formbridge` binary: a gateway on a free port, its
//! output, signals, and signed requests like a real sender's.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::Secret;
use shared::signature::{sign_request, unix_now};
use shared::tenant_id::TenantId;
use testkit::TenantRecordBuilder;

/// The binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_formbridge");
/// The signing secret of every test tenant: the published test vector's.
pub(crate) const SIGNING_SECRET: &str = testkit::VECTOR.secret;
/// A delivery secret for test tenants.
pub(crate) const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How long any one condition is waited for before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// A directory of its own for one test.
pub(crate) fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "formbridge-cli-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An active tenant record signed with [`SIGNING_SECRET`], without a
/// destination.
pub(crate) fn record(id: &str) -> TenantRecordBuilder {
    TenantRecordBuilder::new(id).secret(SIGNING_SECRET)
}

/// An active tenant record delivering to `url` (no destination when
/// `None`).
pub(crate) fn tenant(id: &str, url: Option<&str>) -> Value {
    match url {
        Some(url) => record(id).destination(url, WEBHOOK_SECRET).build(),
        None => record(id).build(),
    }
}

/// Writes a tenants file into `dir`.
pub(crate) fn tenants_file(dir: &Path, records: &[Value]) -> PathBuf {
    let path = dir.join("tenants.json");
    std::fs::write(&path, Value::Array(records.to_vec()).to_string()).unwrap();
    path
}

/// Waits for `condition`, failing the test after [`PATIENCE`].
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `formbridge serve`.
pub(crate) struct Gateway {
    child: Option<Child>,
    pub(crate) url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Gateway {
    /// Starts `formbridge serve` with `args` and `env` on a free port and
    /// waits until it listens.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = testkit::free_port();
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .args(args)
            .env("FORMBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let gateway = Self::spawn(&mut command, port);
        gateway.wait_for_line("the gateway to listen", |l| l.contains("listening on"));
        gateway
    }

    /// Spawns `command`, a `formbridge serve` listening on `port` with its
    /// output piped, and collects its output; does not wait for it.
    pub(crate) fn spawn(command: &mut Command, port: u16) -> Self {
        let mut child = command.spawn().unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stdout);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let text = Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = err.read(&mut buffer) {
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
        }
    }

    /// Every line printed on stdout so far.
    /// The process ID (for its peak memory).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything written to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line matching `matches`; returns it.
    pub(crate) fn wait_for_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        wait_until(what, || {
            found = self.stdout().into_iter().find(|l| matches(l));
            found.is_some() || self.stderr().contains("formbridge: error:")
        });
        found.unwrap_or_else(|| panic!("{what}: the gateway failed: {}", self.stderr()))
    }

    /// The operations listener's URL (`--admin-listen`: the bus's counts
    /// and the dead letters), from the start-up lines.
    pub(crate) fn operations_url(&self) -> String {
        let line = self.wait_for_line("the operations line", |l| {
            l.contains("formbridge: operations on ")
        });
        let url = line.split("operations on ").nth(1).unwrap_or_default();
        url.split(':').take(3).collect::<Vec<_>>().join(":")
    }

    /// The submissions URL of a tenant.
    pub(crate) fn submissions(&self, tenant: &str) -> String {
        format!("{}/v1/tenants/{tenant}/submissions", self.url)
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        sigterm(child.id());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(started.elapsed() < PATIENCE, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A signed request as a sender makes it.
pub(crate) struct Submission {
    pub(crate) tenant: String,
    pub(crate) secret: String,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
    pub(crate) timestamp: i64,
}

impl Submission {
    /// A JSON body for `tenant`, signed now with [`SIGNING_SECRET`].
    pub(crate) fn json(tenant: &str, body: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            secret: SIGNING_SECRET.to_owned(),
            content_type: "application/json".to_owned(),
            body: body.as_bytes().to_vec(),
            timestamp: unix_now(),
        }
    }

    /// The request, signed.
    pub(crate) fn request(&self, client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let tenant =
            TenantId::parse(&self.tenant).unwrap_or_else(|_| TenantId::parse("x").unwrap());
        let headers = sign_request(
            &Secret::new(self.secret.clone()),
            &tenant,
            &self.body,
            self.timestamp,
        );
        client
            .post(url)
            .header("content-type", &self.content_type)
            .header("content-digest", headers.content_digest)
            .header("x-formbridge-timestamp", headers.timestamp)
            .header("x-formbridge-signature", headers.signature)
            .body(self.body.clone())
    }
}

/// Status and parsed JSON body of a response.
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The submission IDs of a 202 body.
pub(crate) fn ids(body: &Value) -> Vec<String> {
    body["submission_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("not a 202 body: {body}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// Runs the binary with `args` and `stdin`; returns status, stdout, stderr.
pub(crate) fn run(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that fails before reading its input closes the pipe.
    match std::io::Write::write_all(&mut input, stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `GET url`, its body parsed.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `GET url` until `done` holds for its body; returns that body.
pub(crate) async fn get_json_when(
    client: &reqwest::Client,
    url: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let body = get_json(client, url).await;
        if done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{url} never got there: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /healthz` on the operations listener until `done` holds for its
/// body (the bus counts a delivery just after the receiver has seen it);
/// returns that body.
pub(crate) async fn health_when(
    client: &reqwest::Client,
    gateway: &Gateway,
    done: impl Fn(&Value) -> bool,
) -> Value {
    get_json_when(
        client,
        &format!("{}/healthz", gateway.operations_url()),
        done,
    )
    .await
}

/// Sends SIGTERM to a process.
pub(crate) fn sigterm(pid: u32) {
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}
