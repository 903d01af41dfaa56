//! AWS clients for the operations on a stack (`tenants`, `dlq`), built from
//! the standard environment (`AWS_REGION`, `AWS_PROFILE`, credentials,
//! `AWS_ENDPOINT_URL` for an emulator).

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// One client per service, sharing one configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Tenant records.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Delivery and dead-letter queues.
    pub sqs: aws_sdk_sqs::Client,
    /// The bus and dedicated tenants' rules.
    pub events: aws_sdk_eventbridge::Client,
    /// Dedicated tenants' event source mappings on the connector.
    pub lambda: aws_sdk_lambda::Client,
    /// Dedicated tenants' dead-letter alarms.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The stack's outputs.
    pub cloudformation: aws_sdk_cloudformation::Client,
}

impl Clients {
    /// Clients configured from the environment, with Form-Bridge's
    /// timeouts and retries.
    pub async fn from_env() -> Self {
        let config = shared::aws::sdk_config().await;
        Self {
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
        }
    }
}

/// An SDK error in one line: the service's code and message when AWS
/// answered with one, the HTTP status when it answered something else,
/// else the chain of causes (no credentials, no network). AWS never echoes
/// a secret's value in an error.
pub fn describe<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message(), error.raw_response()) {
        (Some(code), Some(message), _) => format!("{code}: {message}"),
        (Some(code), None, _) => code.to_owned(),
        (None, _, Some(raw)) => format!(
            "unexpected answer (HTTP {}) from the service",
            raw.status().as_u16()
        ),
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// Whether an SDK error is the service saying the thing does not exist.
pub fn is_not_found<E: ProvideErrorMetadata>(error: &E) -> bool {
    matches!(
        error.code(),
        Some(
            "ResourceNotFoundException"
                | "ResourceNotFound"
                | "AWS.SimpleQueueService.NonExistentQueue"
                | "QueueDoesNotExist"
        )
    )
}
