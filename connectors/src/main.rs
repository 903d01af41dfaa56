//! Lambda `bootstrap` for the connector: read config, build the store and
//! the HTTP client once, serve invocations.

// The SDK and runtime futures nest deeper than the default layout limit.
#![recursion_limit = "256"]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use connectors::{Config, Connector, ConnectorEvent, HttpDeliveryClient};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use shared::config::Env;
use shared::store::SecretsManagerStore;
use shared::telemetry::{self, Metrics};
use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    telemetry::init_logging(&env)?;
    let config = Config::from_env(&env).context("connector configuration")?;
    let sdk = shared::aws::sdk_config().await;
    let store = SecretsManagerStore::from_sdk_config(&sdk, config.tenant_secret_prefix.clone());
    let client = HttpDeliveryClient::new(config.client_options()).context("HTTP client")?;
    let connector = Connector::new(store, client, &config, Metrics::stdout("connector"));
    let connector = &connector;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ConnectorEvent>| async move {
            let deadline = deadline(event.context.deadline);
            connector
                .handle(&event.payload, Some(deadline))
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.code().to_owned(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}

/// The invocation's deadline (milliseconds since the epoch) on the
/// monotonic clock.
fn deadline(epoch_millis: u64) -> Instant {
    let deadline = UNIX_EPOCH + Duration::from_millis(epoch_millis);
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}
