//! The EventBridge adapter.

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::retry::RetryConfig;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_eventbridge::operation::put_events::PutEventsError;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::{BusEntry, EntryFailure, EventPublisher, PublishError, is_retryable_entry_code};

/// Publishes to one EventBridge bus with PutEvents.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus_name: String,
}

impl EventBridgePublisher {
    /// A publisher to `bus_name` (a name or ARN) through `client`.
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    /// A publisher with a client built from `sdk` (see
    /// [`crate::aws::sdk_config`]), with the SDK's own retries off:
    /// [`super::publish`] retries, and only what is safe to send again.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        let config = aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        Self::new(Client::from_conf(config), bus_name)
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn put_events(
        &self,
        entries: &[BusEntry],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        let request: Vec<PutEventsRequestEntry> = entries
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(&*e.source)
                    .detail_type(e.detail_type)
                    .time(DateTime::from(e.time))
                    .detail(e.detail.clone())
                    .build()
            })
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(request))
            .send()
            .await
            .map_err(classify)?;
        Ok(output
            .entries()
            .iter()
            .map(|r| match (r.error_code(), r.event_id()) {
                (None, Some(_)) => Ok(()),
                (Some(code), _) => Err(EntryFailure {
                    code: code.to_owned(),
                    retryable: is_retryable_entry_code(code),
                }),
                (None, None) => Err(EntryFailure {
                    code: "MissingEventId".to_owned(),
                    retryable: false,
                }),
            })
            .collect())
    }
}

/// Sorts an SDK failure by what it means for the entries.
fn classify(error: SdkError<PutEventsError>) -> PublishError {
    match &error {
        SdkError::ServiceError(e) => {
            let code = e.err().code().unwrap_or("Unknown");
            let message = format!(
                "{} {code}: {}",
                e.raw().status().as_u16(),
                e.err().message().unwrap_or("no message")
            );
            if e.raw().status().is_server_error()
                || e.raw().status().as_u16() == 429
                || matches!(
                    code,
                    "ThrottlingException"
                        | "InternalException"
                        | "InternalFailure"
                        | "ServiceUnavailable"
                )
            {
                PublishError::Unavailable(message)
            } else {
                PublishError::Refused(message)
            }
        }
        // No answer arrived. A connection that could not be made or broke is
        // almost always a request the bus never read; a timeout may not be.
        SdkError::DispatchFailure(e) if e.is_user() => {
            PublishError::Refused("request could not be sent".to_owned())
        }
        SdkError::DispatchFailure(e) if e.is_timeout() => {
            PublishError::Unknown("timed out connecting or sending".to_owned())
        }
        SdkError::DispatchFailure(_) => {
            PublishError::Unavailable("could not connect to the event bus".to_owned())
        }
        SdkError::TimeoutError(_) => {
            PublishError::Unknown("no answer within the attempt timeout".to_owned())
        }
        SdkError::ResponseError(_) => PublishError::Unknown("unreadable answer".to_owned()),
        SdkError::ConstructionFailure(_) => {
            PublishError::Refused("request could not be built".to_owned())
        }
        _ => PublishError::Unknown("unexpected SDK error".to_owned()),
    }
}
