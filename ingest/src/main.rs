//! Lambda `bootstrap` for ingest: read config, build the publisher, the
//! idempotency store and the tenant records (for sources) once, serve
//! invocations.

// The SDK and runtime futures nest deeper than the default layout limit.
#![recursion_limit = "256"]

use std::convert::Infallible;
use std::time::SystemTime;

use anyhow::Context as _;
use ingest::{Config, Ingest, IngestEvent, TenantRecords};
use lambda_runtime::{LambdaEvent, service_fn};
use shared::config::Env;
use shared::idempotency::{DynamoDbIdempotencyStore, IdempotencyStore};
use shared::publish::{EventBridgePublisher, EventPublisher};
use shared::store::{CachePolicy, CachedTenantStore, SecretsManagerStore};
use shared::telemetry::{self, Metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = Env::process();
    telemetry::init_logging(&env)?;
    let config = Config::from_env(&env).context("ingest configuration")?;
    let sdk = shared::aws::sdk_config().await;
    let publisher = EventBridgePublisher::from_sdk_config(&sdk, config.event_bus_name.clone());
    // Sources' secrets are in tenant records: the same cached store as the
    // authorizer's and the connector's.
    let records = CachedTenantStore::new(
        SecretsManagerStore::from_sdk_config(&sdk, config.tenant_secret_prefix.clone()),
        CachePolicy::with_ttl(config.secret_cache_ttl),
    );
    let ingest =
        Ingest::new(publisher, &config, Metrics::stdout("ingest")).with_tenant_records(records);
    // With a table, every execution environment shares the keys; without
    // one (a stack always sets it), each keeps its own in memory.
    match &config.idempotency_table {
        Some(table) => {
            let store = DynamoDbIdempotencyStore::from_sdk_config(
                &sdk,
                table.clone(),
                config.idempotency_ttl,
            );
            serve(ingest.with_idempotency_store(store)).await
        }
        None => serve(ingest).await,
    }
}

/// Serves invocations with `ingest` until the runtime stops.
async fn serve<P: EventPublisher, K: IdempotencyStore, R: TenantRecords>(
    ingest: Ingest<P, K, R>,
) -> anyhow::Result<()> {
    let ingest = &ingest;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<IngestEvent>| async move {
            // A function in tenant isolation mode gets each invocation's
            // tenant from Lambda: the request must be that tenant's.
            let tenant = event.context.tenant_id.as_deref();
            Ok::<_, Infallible>(
                ingest
                    .handle_invocation(&event.payload, tenant, SystemTime::now())
                    .await,
            )
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
