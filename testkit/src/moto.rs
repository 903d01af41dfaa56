//! The moto AWS emulator as a child process: started on a free loopback
//! port, stopped when dropped (or earlier, to test an outage), with helpers
//! that set up what the functions expect to find in an account (a bus routed
//! to a queue, tenant records in Secrets Manager).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http::free_port;

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

    /// Creates an idempotency table as the stack does (partition key `pk`,
    /// binary; on demand).
    pub async fn create_idempotency_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let config = self.loader().load().await;
        let pk = AttributeDefinition::builder()
            .attribute_name("pk")
            .attribute_type(ScalarAttributeType::B)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let key = KeySchemaElement::builder()
            .attribute_name("pk")
            .key_type(KeyType::Hash)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        aws_sdk_dynamodb::Client::new(&config)
            .create_table()
            .table_name(name)
            .attribute_definitions(pk)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {name} in moto: {e:?}"));
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
