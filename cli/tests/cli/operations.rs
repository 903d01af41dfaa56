//! `formbridge tenants` and `formbridge dlq` against a stack in moto,
//! through the real AWS SDK: the stack's outputs name the resources as
//! `template.yaml`'s do (`tests/data/moto-stack.json`).

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use shared::store::{SecretsManagerStore, TenantStore as _};
use shared::tenant_id::TenantId;
use testkit::MotoServer;

use crate::harness::run;

const STACK: &str = "fb";
const PREFIX: &str = "fb/tenants/";

/// moto with the stand-in stack deployed.
struct Deployed {
    moto: MotoServer,
    config: aws_config::SdkConfig,
}

impl Deployed {
    async fn start() -> Self {
        let moto = MotoServer::start();
        let config = moto.loader().load().await;
        aws_sdk_cloudformation::Client::new(&config)
            .create_stack()
            .stack_name(STACK)
            .template_body(testkit::test_data(
                env!("CARGO_MANIFEST_DIR"),
                "moto-stack.json",
            ))
            .send()
            .await
            .unwrap();
        Self { moto, config }
    }

    /// Runs `formbridge` with the emulator's environment and
    /// `FORMBRIDGE_STACK` set.
    fn formbridge(&self, args: &[&str]) -> (i32, String, String) {
        let env = self.moto.aws_env();
        let mut env: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("FORMBRIDGE_STACK", STACK));
        run(args, b"", &env)
    }

    /// Like `formbridge`, failing the test unless it exits 0.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.formbridge(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    }

    fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config)
    }

    async fn record(&self, id: &str) -> Value {
        let answer = aws_sdk_secretsmanager::Client::new(&self.config)
            .get_secret_value()
            .secret_id(format!("{PREFIX}{id}"))
            .send()
            .await
            .unwrap();
        serde_json::from_str(answer.secret_string().unwrap()).unwrap()
    }

    /// Moves a suspension an hour into the past, as if the functions'
    /// caches had long expired.
    async fn age_suspension(&self, id: &str) {
        let mut record = self.record(id).await;
        record["suspended_at"] = json!(record["suspended_at"].as_i64().unwrap() - 3600);
        aws_sdk_secretsmanager::Client::new(&self.config)
            .put_secret_value()
            .secret_id(format!("{PREFIX}{id}"))
            .secret_string(record.to_string())
            .send()
            .await
            .unwrap();
    }

    async fn queue_url(&self, name: &str) -> Option<String> {
        self.sqs()
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .ok()
            .and_then(|a| a.queue_url)
    }

    async fn send_messages(&self, queue: &str, bodies: &[String]) {
        let url = self.queue_url(queue).await.unwrap();
        for body in bodies {
            self.sqs()
                .send_message()
                .queue_url(&url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
    }

    async fn bodies(&self, queue: &str, n: usize) -> Vec<String> {
        let url = self.queue_url(queue).await.unwrap();
        self.moto.drain_queue(&url, n).await
    }

    async fn publish(&self, tenant: &str, routing: &str) {
        let detail = json!({"version": "1", "submission_id": format!("{tenant}-1"), "tenant_id": tenant,
            "routing": routing, "received_at": "2026-11-23T10:00:00.000Z", "content_type": "application/json",
            "payload": {}});
        let answer = self
            .events()
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name("fb-bus")
                    .source("form-bridge")
                    .detail_type("form.submission")
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.failed_entry_count, 0);
    }
}

/// A dead-lettered EventBridge event, as a queue holds it.
fn event(tenant: &str, routing: &str) -> String {
    json!({"version": "0", "id": format!("ev-{tenant}"), "detail-type": "form.submission", "source": "form-bridge",
        "account": "123456789012", "time": "2026-11-23T10:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"version": "1", "submission_id": format!("sub-{tenant}"), "tenant_id": tenant, "routing": routing,
            "received_at": "2026-11-23T10:00:00.000Z", "content_type": "application/json", "payload": {}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_lifecycle_on_a_stack() {
    let stack = Deployed::start().await;

    let created = stack.ok(&[
        "tenants",
        "create",
        "acme",
        "--destination",
        "https://hooks.acme.example/forms?token=t0ken",
        "--rate-limit",
        "50",
    ]);
    let record: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(record["routing"], "shared");
    assert_eq!(record["rate_limit"]["requests_per_second"], 50);
    assert_eq!(
        stack.record("acme").await,
        record,
        "printed record = stored record"
    );
    let first = record["signing_secrets"][0].as_str().unwrap().to_owned();
    // The functions read it through the same store they use in Lambda.
    let store = SecretsManagerStore::from_sdk_config(&stack.config, PREFIX);
    let loaded = store
        .fetch(&TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    assert_eq!(loaded.unwrap().signing_keys.len(), 1);

    let (code, _, err) = stack.formbridge(&["tenants", "create", "acme"]);
    assert_eq!(code, 2);
    assert!(err.contains("tenant acme exists"), "{err}");

    let list = stack.ok(&["tenants", "list"]);
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row,
        ["acme", "active", "shared", "hooks.acme.example"],
        "{list}"
    );
    assert!(!list.contains("t0ken"));

    let shown = stack.ok(&["tenants", "show", "acme"]);
    for secret in [first.as_str(), "whsec_", "t0ken"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    assert!(
        shown.contains("https://hooks.acme.example/<redacted>"),
        "{shown}"
    );
    let revealed: Value =
        serde_json::from_str(&stack.ok(&["tenants", "show", "acme", "--reveal"])).unwrap();
    assert_eq!(revealed, record);

    // Rotation: the new secret first, the previous kept until --expire.
    let new = stack.ok(&["tenants", "rotate", "acme"]);
    let new = new.trim();
    assert!(new.starts_with("fb_") && new != first);
    assert_eq!(
        stack.record("acme").await["signing_secrets"],
        json!([new, first])
    );
    let expired = stack.ok(&["tenants", "rotate", "acme", "--expire"]);
    assert!(expired.contains("1 previous"), "{expired}");
    let after = stack.record("acme").await;
    assert_eq!(after["signing_secrets"], json!([new]));
    assert_eq!(
        after["destination"], record["destination"],
        "the rest is kept"
    );
    // At most five at once.
    for _ in 0..4 {
        stack.ok(&["tenants", "rotate", "acme"]);
    }
    let (code, _, err) = stack.formbridge(&["tenants", "rotate", "acme"]);
    assert_eq!(code, 2);
    assert!(err.contains("already has 5 signing secrets"), "{err}");
    stack.ok(&["tenants", "rotate", "acme", "--expire"]);

    // Suspend and resume; delete only once suspended.
    assert_eq!(
        stack.ok(&["tenants", "suspend", "acme"]),
        "tenant acme: now suspended\n"
    );
    assert_eq!(
        stack.ok(&["tenants", "suspend", "acme"]),
        "tenant acme: already suspended\n"
    );
    assert_eq!(stack.record("acme").await["status"], "suspended");
    stack.ok(&["tenants", "resume", "acme"]);
    assert_eq!(stack.record("acme").await["status"], "active");
    let (code, _, err) = stack.formbridge(&["tenants", "delete", "acme"]);
    assert_eq!(code, 2);
    assert!(err.contains("suspend it first"), "{err}");
    // Not until the functions' caches can no longer hold an active record.
    stack.ok(&["tenants", "suspend", "acme"]);
    let (code, _, err) = stack.formbridge(&["tenants", "delete", "acme"]);
    assert_eq!(code, 2);
    // 300 s of cache TTL (the stack's output), 15 minutes a function keeps
    // serving a record while Secrets Manager fails, and 15 s in flight,
    // minus however long the two commands took.
    let more: u64 = err
        .split("for ")
        .nth(1)
        .and_then(|rest| rest.split("s more").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!((1190..=1215).contains(&more), "{err}");
    stack.age_suspension("acme").await;
    let (code, out, err) = stack.formbridge(&["tenants", "delete", "acme"]);
    assert_eq!((code, out.as_str()), (0, "tenant acme: deleted\n"), "{err}");
    assert!(
        err.contains("restore-secret --secret-id fb/tenants/acme"),
        "{err}"
    );
    let list = stack.ok(&["tenants", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    let (code, _, err) = stack.formbridge(&["tenants", "create", "acme"]);
    assert_eq!(code, 2);
    assert!(err.contains("scheduled for deletion"), "{err}");

    // Errors name the problem and never carry a secret.
    let (code, _, err) = stack.formbridge(&["tenants", "show", "nobody"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no tenant nobody (no secret fb/tenants/nobody)"),
        "{err}"
    );
    let (code, _, err) = stack.formbridge(&["tenants", "create", "Bad_ID"]);
    assert_eq!(code, 2);
    assert!(err.contains("tenant"), "{err}");
    let (code, out, err) = stack.formbridge(&["tenants", "rotate", "acme"]);
    assert_eq!(code, 2);
    assert!(!out.contains("fb_") && !err.contains("fb_"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dedicated_tenants_get_their_own_path_and_delete_removes_it() {
    let stack = Deployed::start().await;
    stack.ok(&[
        "tenants",
        "create",
        "acme",
        "--destination",
        "https://hooks.acme.example/",
    ]);
    let created = stack.ok(&[
        "tenants",
        "create",
        "bigco",
        "--dedicated",
        "--max-concurrency",
        "7",
        "--batch-size",
        "5",
        "--destination",
        "https://bigco.example/in",
    ]);
    let record: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(record["routing"], "dedicated");

    // Its queue, dead-letter queue, rule, target, mapping and alarm.
    let queue = stack
        .queue_url("fb_t_bigco")
        .await
        .expect("the tenant's queue");
    assert!(
        stack.queue_url("fb_t_bigco_dlq").await.is_some(),
        "its dead-letter queue"
    );
    let attributes = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "360");
    let redrive: Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert!(
        redrive["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(":fb_t_bigco_dlq")
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    let policy = &attributes[&QueueAttributeName::Policy];
    assert!(
        policy.contains("events.amazonaws.com") && policy.contains("rule/fb-bus/bigco"),
        "{policy}"
    );
    let rule = stack
        .events()
        .describe_rule()
        .name("bigco")
        .event_bus_name("fb-bus")
        .send()
        .await
        .unwrap();
    let pattern: Value = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
    assert_eq!(
        pattern["detail"],
        json!({"tenant_id": ["bigco"], "routing": ["dedicated"]})
    );
    let targets = stack
        .events()
        .list_targets_by_rule()
        .rule("bigco")
        .event_bus_name("fb-bus")
        .send()
        .await
        .unwrap();
    let target = &targets.targets()[0];
    assert!(target.arn().ends_with(":fb_t_bigco"));
    assert_eq!(
        target.retry_policy().unwrap().maximum_retry_attempts(),
        Some(185)
    );
    assert!(
        target
            .dead_letter_config()
            .unwrap()
            .arn()
            .unwrap()
            .ends_with(":fb-events-dlq")
    );
    let lambda = aws_sdk_lambda::Client::new(&stack.config);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name("fb-connector")
        .send()
        .await
        .unwrap();
    let mapping = &mappings.event_source_mappings()[0];
    assert!(mapping.event_source_arn().unwrap().ends_with(":fb_t_bigco"));
    assert_eq!(mapping.batch_size(), Some(5));
    assert_eq!(
        mapping.scaling_config().unwrap().maximum_concurrency(),
        Some(7)
    );
    assert_eq!(
        mapping.function_response_types(),
        [aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures]
    );
    let alarms = aws_sdk_cloudwatch::Client::new(&stack.config)
        .describe_alarms()
        .alarm_names("fb_t_bigco_dlq-depth")
        .alarm_names("fb_t_bigco-age")
        .send()
        .await
        .unwrap();
    let alarms = alarms.metric_alarms();
    assert_eq!(alarms.len(), 2);
    assert!(
        alarms
            .iter()
            .all(|a| a.alarm_actions()[0].contains(":sns:"))
    );
    let age = alarms
        .iter()
        .find(|a| a.alarm_name() == Some("fb_t_bigco-age"))
        .unwrap();
    assert_eq!(age.metric_name(), Some("ApproximateAgeOfOldestMessage"));
    assert_eq!(age.threshold(), Some(3600.0));

    // Its events go to its own queue; a shared tenant's do not.
    stack.publish("bigco", "dedicated").await;
    stack.publish("acme", "shared").await;
    let bodies = stack.bodies("fb_t_bigco", 2).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains("bigco-1"), "{bodies:?}");
    let shared = stack.bodies("fb-shared", 2).await;
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(shared[0].contains("acme-1"), "{shared:?}");

    // Deleting refuses while events wait, and removes everything after.
    stack.ok(&["tenants", "suspend", "bigco"]);
    stack.age_suspension("bigco").await;
    stack
        .send_messages("fb_t_bigco", &[event("bigco", "dedicated")])
        .await;
    let (code, _, err) = stack.formbridge(&["tenants", "delete", "bigco"]);
    assert_eq!(code, 2);
    assert!(err.contains("queue still holds 1 event and"), "{err}");
    assert_eq!(stack.bodies("fb_t_bigco", 1).await.len(), 1);
    stack.ok(&["tenants", "delete", "bigco", "--without-recovery"]);
    assert!(stack.queue_url("fb_t_bigco").await.is_none());
    assert!(stack.queue_url("fb_t_bigco_dlq").await.is_none());
    assert!(
        stack
            .events()
            .describe_rule()
            .name("bigco")
            .event_bus_name("fb-bus")
            .send()
            .await
            .is_err()
    );
    let mappings = lambda
        .list_event_source_mappings()
        .function_name("fb-connector")
        .send()
        .await
        .unwrap();
    assert!(mappings.event_source_mappings().is_empty());
    let alarms = aws_sdk_cloudwatch::Client::new(&stack.config)
        .describe_alarms()
        .alarm_names("fb_t_bigco_dlq-depth")
        .alarm_names("fb_t_bigco-age")
        .send()
        .await
        .unwrap();
    assert!(alarms.metric_alarms().is_empty());
    // The shared tenant is untouched; the name can be used again at once.
    assert_eq!(stack.record("acme").await["status"], "active");
    stack.ok(&["tenants", "create", "bigco", "--dedicated"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_redrive_moves_each_event_back_to_its_queue() {
    let stack = Deployed::start().await;
    stack.ok(&["tenants", "create", "bigco", "--dedicated"]);
    stack
        .send_messages(
            "fb-shared-dlq",
            &[event("acme", "shared"), event("acme", "shared")],
        )
        .await;
    stack
        .send_messages("fb_t_bigco_dlq", &[event("bigco", "dedicated")])
        .await;
    stack
        .send_messages(
            "fb-events-dlq",
            &[
                event("acme", "shared"),
                event("bigco", "dedicated"),
                event("gone", "dedicated"),
                "not an event".to_owned(),
            ],
        )
        .await;

    let (code, out, err) = stack.formbridge(&["dlq", "redrive"]);
    assert_eq!(code, 1, "two events had nowhere to go: {out}{err}");
    assert_eq!(
        out,
        "shared dead-letter queue: moved 2, left 0\n\
         events dead-letter queue: moved 2, left 2\n\
         fb_t_bigco_dlq: moved 1, left 0\n"
    );
    assert!(
        err.contains(r#"dedicated tenant "gone" has no queue"#),
        "{err}"
    );
    assert!(err.contains("not an event"), "{err}");
    let shared = stack.bodies("fb-shared", 4).await;
    assert_eq!(shared.len(), 3, "{shared:?}");
    let dedicated = stack.bodies("fb_t_bigco", 3).await;
    assert_eq!(dedicated.len(), 2, "{dedicated:?}");
    assert!(dedicated.iter().all(|b| b.contains("sub-bigco")));

    // One source, at most N.
    stack
        .send_messages(
            "fb-shared-dlq",
            &[
                event("a", "shared"),
                event("b", "shared"),
                event("c", "shared"),
            ],
        )
        .await;
    let out = stack.ok(&["dlq", "redrive", "--from", "shared", "--max", "2"]);
    assert_eq!(out, "shared dead-letter queue: moved 2, left 0\n");
    assert_eq!(stack.bodies("fb-shared", 3).await.len(), 2);
    let (code, _, err) = stack.formbridge(&["dlq", "redrive", "--from", "Nope!"]);
    assert_eq!(code, 2);
    assert!(err.contains("not shared, events or a tenant ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn names_come_from_flags_without_a_stack_and_errors_say_which() {
    let moto = MotoServer::start();
    let env = moto.aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // A shared tenant needs only the secret prefix.
    let (code, out, err) = run(
        &["tenants", "create", "solo", "--secret-prefix", "x/"],
        b"",
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""tenant_id": "solo""#));
    assert!(err.contains("no destination"), "{err}");
    // A deployed connector would refuse these destinations: so does create.
    for url in [
        "http://hooks.example/",
        "https://10.0.0.1/",
        "https://[::1]/in",
    ] {
        let args = [
            "tenants",
            "create",
            "priv",
            "--destination",
            url,
            "--secret-prefix",
            "x/",
        ];
        let (code, _, err) = run(&args, b"", &env);
        assert_eq!(code, 2, "{url}: {err}");
        assert!(
            err.contains("--destination: the destination"),
            "{url}: {err}"
        );
    }
    let (code, out, _) = run(&["tenants", "list", "--secret-prefix", "x/"], b"", &env);
    assert_eq!(code, 0);
    assert!(out.contains("solo"), "{out}");
    // A dedicated one needs the stack.
    let (code, _, err) = run(
        &[
            "tenants",
            "create",
            "duo",
            "--dedicated",
            "--secret-prefix",
            "x/",
        ],
        b"",
        &env,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--queue-prefix is needed: pass --stack NAME"),
        "{err}"
    );
    // An unknown stack, and an emulator that is not there.
    let (code, _, err) = run(&["tenants", "list", "--stack", "nope"], b"", &env);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read stack nope"), "{err}");
    let (code, _, err) = run(
        &["tenants", "list"],
        b"",
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot list secrets under form-bridge/tenants/"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_dedicated_create_completes_when_run_again_and_resume_repairs_the_path() {
    let stack = Deployed::start().await;
    // The event source mapping cannot be made (no such function): the
    // queues and rule exist, the record does not.
    let (code, _, err) = stack.formbridge(&[
        "tenants",
        "create",
        "bigco",
        "--dedicated",
        "--connector-function",
        "missing-function",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot connect the queue to missing-function"),
        "{err}"
    );
    assert!(stack.queue_url("fb_t_bigco").await.is_some());
    let (code, _, err) = stack.formbridge(&["tenants", "show", "bigco"]);
    assert_eq!(code, 2, "no record yet: {err}");

    // The same command again completes it; the second run with other
    // scaling updates the mapping instead of adding one.
    stack.ok(&[
        "tenants",
        "create",
        "bigco",
        "--dedicated",
        "--max-concurrency",
        "3",
    ]);
    let lambda = aws_sdk_lambda::Client::new(&stack.config);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name("fb-connector")
        .send()
        .await
        .unwrap();
    assert_eq!(mappings.event_source_mappings().len(), 1);
    assert_eq!(
        mappings.event_source_mappings()[0]
            .scaling_config()
            .unwrap()
            .maximum_concurrency(),
        Some(3)
    );

    // A rule lost (say, the record restored after a delete): resume puts
    // the path back.
    stack
        .events()
        .remove_targets()
        .rule("bigco")
        .event_bus_name("fb-bus")
        .ids("queue")
        .send()
        .await
        .unwrap();
    stack
        .events()
        .delete_rule()
        .name("bigco")
        .event_bus_name("fb-bus")
        .send()
        .await
        .unwrap();
    assert_eq!(
        stack.ok(&["tenants", "resume", "bigco"]),
        "tenant bigco: already active\n"
    );
    stack.publish("bigco", "dedicated").await;
    assert_eq!(stack.bodies("fb_t_bigco", 1).await.len(), 1);
    let mappings = lambda
        .list_event_source_mappings()
        .function_name("fb-connector")
        .send()
        .await
        .unwrap();
    assert_eq!(
        mappings.event_source_mappings().len(),
        1,
        "kept, not duplicated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn show_never_prints_a_secret_whatever_the_records_shape() {
    let moto = MotoServer::start();
    let env = moto.aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let secret = "fb_the_secret_value_that_must_not_print_01";
    let shapes = [
        // The signing secrets as one string instead of a list.
        json!({"tenant_id": "a1", "status": "active", "signing_secrets": secret}),
        // A misspelt field name.
        json!({"tenant_id": "a2", "status": "active", "signing_secret": [secret]}),
        // The destination as a URL string.
        json!({"tenant_id": "a3", "status": "active", "signing_secrets": [secret],
               "destination": format!("https://hooks.example/{secret}")}),
        // Destination headers as an array.
        json!({"tenant_id": "a4", "status": "active", "signing_secrets": [secret],
               "destination": {"url": "https://hooks.example/", "secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
                               "headers": [["Authorization", secret]]}}),
        // A field this version does not know, and a secret in a known one.
        json!({"tenant_id": "a5", "status": secret, "signing_secrets": [secret],
               "api_key": secret, "destination": {"url": format!("https://h.example/?t={secret}")}}),
    ];
    for shape in &shapes {
        let id = shape["tenant_id"].as_str().unwrap();
        moto.put_secret(&format!("x/{id}"), &shape.to_string())
            .await;
        let (code, out, err) = run(&["tenants", "show", id, "--secret-prefix", "x/"], b"", &env);
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains("the_secret_value") && !err.contains("the_secret_value"),
            "{out}{err}"
        );
        let shown: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(shown["tenant_id"], id, "{out}");
        // Every field is still named, its value hidden.
        for name in shape.as_object().unwrap().keys() {
            assert!(shown.get(name).is_some(), "{name} missing from {out}");
        }
        let (code, out, _) = run(
            &["tenants", "show", id, "--reveal", "--secret-prefix", "x/"],
            b"",
            &env,
        );
        assert_eq!(code, 0);
        assert!(out.contains("the_secret_value"), "--reveal shows it: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_rebuilds_a_dedicated_path_before_the_tenant_may_submit() {
    let stack = Deployed::start().await;
    stack.ok(&["tenants", "create", "bigco", "--dedicated"]);
    stack.ok(&["tenants", "suspend", "bigco"]);
    // Its queue is gone (removed by hand, or the record was restored).
    let url = stack.queue_url("fb_t_bigco").await.unwrap();
    stack
        .sqs()
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .unwrap();
    // A resume that cannot complete the path leaves the tenant suspended:
    // accepted events would have no queue to go to.
    let (code, _, err) = stack.formbridge(&[
        "tenants",
        "resume",
        "bigco",
        "--connector-function",
        "no-such-function",
    ]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(stack.record("bigco").await["status"], "suspended");
    // One that can rebuilds it first, then resumes.
    stack.ok(&["tenants", "resume", "bigco"]);
    assert!(stack.queue_url("fb_t_bigco").await.is_some());
    assert_eq!(stack.record("bigco").await["status"], "active");
}
