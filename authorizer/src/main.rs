//! Lambda `bootstrap` for the authorizer: read config, build the store once,
//! serve invocations.

// The SDK and runtime futures nest deeper than the default layout limit.
#![recursion_limit = "256"]

use anyhow::Context as _;
use authorizer::{Authorizer, AuthorizerEvent, Config};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use shared::config::Env;
use shared::signature::unix_now;
use shared::store::SecretsManagerStore;
use shared::telemetry::{self, Metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    telemetry::init_logging(&env)?;
    let config = Config::from_env(&env).context("authorizer configuration")?;
    let sdk = shared::aws::sdk_config().await;
    let store = SecretsManagerStore::from_sdk_config(&sdk, config.tenant_secret_prefix.clone());
    let authorizer = Authorizer::new(store, &config, Metrics::stdout("authorizer"));
    let authorizer = &authorizer;
    // AuthorizerEvent deserialises from any JSON, so every event, even one
    // that is not an authorizer request, reaches the handler and is denied
    // there instead of failing in the runtime. The one failure is an
    // unreadable tenant record: API Gateway answers it 500, so the sender
    // retries.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<AuthorizerEvent>| async move {
            authorizer
                .handle(&event.payload, unix_now())
                .await
                .map_err(|e| Diagnostic {
                    error_type: "TenantStoreUnavailable".to_owned(),
                    error_message: e.to_string(),
                })
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
