//! The whole AWS path against moto: an event published to an EventBridge
//! bus, routed by a rule to SQS, received from the queue and delivered with
//! the tenant record from Secrets Manager, all through the real SDK.

use connectors::Output;
use shared::event::DETAIL_TYPE;
use shared::publish::{BusEntry, EventBridgePublisher, EventPublisher};
use shared::store::SecretsManagerStore;
use testkit::MotoServer;
use testkit::{HttpServer, Reply};

use super::*;

#[tokio::test]
async fn events_from_a_real_bus_and_queue_are_delivered_with_records_from_secrets_manager() {
    let moto = MotoServer::start();
    let pattern = json!({"detail-type": [DETAIL_TYPE], "detail": {"routing": ["shared"]}});
    let queue = moto
        .route_to_queue("bus", "shared", &pattern.to_string())
        .await;
    let server = HttpServer::start(|_, _| Reply::json(200, "{}"));
    moto.put_secret(
        "form-bridge/tenants/acme",
        &record("acme", &server.url()).header("X-Key", "k").json(),
    )
    .await;
    let sdk = moto.loader().load().await;

    let (event, id) = event("acme");
    let detail: Value = serde_json::from_str::<Value>(&event).unwrap()["detail"].clone();
    let publisher = EventBridgePublisher::from_sdk_config(&sdk, "bus");
    let entry = BusEntry {
        source: "form-bridge".into(),
        detail_type: DETAIL_TYPE,
        time: SystemTime::now(),
        detail: detail.to_string(),
    };
    let results = publisher.put_events(&[entry]).await.unwrap();
    assert!(results[0].is_ok());
    let bodies = moto.drain_queue(&queue, 1).await;
    assert_eq!(bodies.len(), 1);

    let config = config(&[("ALLOW_PRIVATE_DESTINATIONS", "true")]);
    let store = SecretsManagerStore::from_sdk_config(&sdk, config.tenant_secret_prefix.clone());
    let client = HttpDeliveryClient::new(config.client_options()).unwrap();
    let connector = Connector::new(
        store,
        client,
        &config,
        Metrics::to_writer("connector", std::io::sink()),
    );
    let mut with_unknown = bodies.clone();
    with_unknown.push(bodies[0].replace("\"acme\"", "\"nobody\""));
    let output = connector.handle(&sqs(&with_unknown), None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&output).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "m1"}]})
    );
    assert!(matches!(output, Output::Batch(_)));

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.header("webhook-id"), Some(id.as_str()));
    assert_eq!(r.header("x-key"), Some("k"));
    assert!(r.webhook_verifies(DELIVERY_SECRET));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["data"], detail);
}
