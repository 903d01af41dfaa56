//! Shared AWS SDK settings.
//!
//! Every function builds its SDK clients from one [`aws_config::SdkConfig`]
//! made here, so timeouts and retries are the same everywhere and the
//! standard variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials) are
//! honoured, which is how the functions run against a local emulator.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader};

/// Applies Form-Bridge's timeouts and retries to a loader: connect in 1 s,
/// each attempt in 2 s, three attempts, 5 s in all, well inside API
/// Gateway's 30 s and a function's own timeout.
pub fn configure(loader: ConfigLoader) -> ConfigLoader {
    loader
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
}

/// Loads the SDK configuration from the environment, with [`configure`]'s
/// settings.
pub async fn sdk_config() -> aws_config::SdkConfig {
    configure(aws_config::defaults(BehaviorVersion::latest()))
        .load()
        .await
}
