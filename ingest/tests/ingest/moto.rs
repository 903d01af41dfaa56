//! The EventBridge adapter through the real SDK against moto: a bus with
//! rules routing shared and dedicated submissions to SQS queues.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_eventbridge::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_eventbridge::config::retry::RetryConfig;
use aws_sdk_eventbridge::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_eventbridge::error::BoxError;
use shared::publish::EventBridgePublisher;
use testkit::MotoServer;

use super::*;

const BUS: &str = "form-bridge-test";

/// Counts the HTTP requests the SDK actually sends.
#[derive(Debug, Clone, Default)]
struct CountCalls(Arc<AtomicUsize>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl CountCalls {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

struct Bus {
    moto: MotoServer,
    shared_queue: String,
    dedicated_queue: String,
    calls: CountCalls,
    publisher: EventBridgePublisher,
}

async fn bus() -> Bus {
    let moto = MotoServer::start();
    let pattern = |routing: &str| {
        json!({"source": ["form-bridge"], "detail-type": ["form.submission"], "detail": {"routing": [routing]}})
            .to_string()
    };
    let shared_queue = moto.route_to_queue(BUS, "shared", &pattern("shared")).await;
    let dedicated_queue = moto
        .route_to_queue(BUS, "dedicated", &pattern("dedicated"))
        .await;
    let sdk = shared::aws::configure(moto.loader()).load().await;
    let calls = CountCalls::default();
    let config = aws_sdk_eventbridge::config::Builder::from(&sdk)
        .retry_config(RetryConfig::disabled())
        .interceptor(calls.clone())
        .build();
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::from_conf(config), BUS);
    Bus {
        moto,
        shared_queue,
        dedicated_queue,
        calls,
        publisher,
    }
}

fn ingest(bus: &Bus, config: &Config) -> Ingest<EventBridgePublisher> {
    Ingest::new(
        bus.publisher.clone(),
        config,
        Metrics::to_writer("ingest", std::io::sink()),
    )
}

#[tokio::test]
async fn an_accepted_submission_arrives_on_the_queue_field_by_field() {
    let bus = bus().await;
    let (status, body) = run(&ingest(&bus, &config()), &fixture()).await;
    assert_eq!(status, 202, "{body}");
    let id = &ids(&body)[0];
    let messages = bus.moto.drain_queue(&bus.shared_queue, 1).await;
    assert_eq!(messages.len(), 1);
    let event: Value = serde_json::from_str(&messages[0]).unwrap();
    assert_eq!(event["source"], "form-bridge");
    assert_eq!(event["detail-type"], "form.submission");
    assert_eq!(event["time"], "2026-01-01T00:00:00Z");
    assert_eq!(event["detail"], fixture_detail(id));
    assert!(
        bus.moto
            .drain_queue(&bus.dedicated_queue, 1)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn dedicated_tenants_reach_only_their_rule() {
    let bus = bus().await;
    let mut event = fixture();
    event["requestContext"]["authorizer"]["lambda"]["routing"] = "dedicated".into();
    let (status, _) = run(&ingest(&bus, &config()), &event).await;
    assert_eq!(status, 202);
    let messages = bus.moto.drain_queue(&bus.dedicated_queue, 1).await;
    assert_eq!(messages.len(), 1);
    assert!(bus.moto.drain_queue(&bus.shared_queue, 1).await.is_empty());
}

#[tokio::test]
async fn putevents_calls_are_packed_ten_at_a_time() {
    let bus = bus().await;
    let ingest = ingest(&bus, &config());
    let mut all_ids = HashSet::new();
    for (n, calls) in [(1, 1), (10, 1), (11, 2), (100, 10)] {
        let (status, body) =
            run(&ingest, &event_with(&batch_body(n, 20), "application/json")).await;
        assert_eq!(status, 202, "{n}: {body}");
        assert_eq!(bus.calls.take(), calls, "{n} submissions");
        all_ids.extend(ids(&body));
    }
    let messages = bus.moto.drain_queue(&bus.shared_queue, 122).await;
    let delivered: Vec<String> = messages
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_str(m).unwrap();
            v["detail"]["submission_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(delivered.len(), 122, "every submission exactly once");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), all_ids);
}

#[tokio::test]
async fn a_large_batch_is_split_by_size() {
    let bus = bus().await;
    let config = Config {
        max_body_bytes: 4 * 1024 * 1024,
        ..config()
    };
    // Twelve ~200 kB submissions: five fit in 1 MiB, so 5 + 5 + 2.
    let (status, body) = run(
        &ingest(&bus, &config),
        &event_with(&batch_body(12, 200_000), "application/json"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(bus.calls.take(), 3);
    let messages = bus.moto.drain_queue(&bus.shared_queue, 12).await;
    assert_eq!(messages.len(), 12);
}
