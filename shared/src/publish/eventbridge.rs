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
        output
            .entries()
            .iter()
            .map(|r| match (r.error_code(), r.event_id()) {
                (Some(code), _) => Ok(Err(EntryFailure {
                    code: code.to_owned(),
                    retryable: is_retryable_entry_code(code),
                })),
                (None, Some(_)) => Ok(Ok(())),
                (None, None) => Err(PublishError::Unknown(
                    "an entry came back with neither EventId nor ErrorCode".to_owned(),
                )),
            })
            .collect()
    }
}

/// Sorts an SDK failure by what it means for the entries. The line is
/// drawn at whether the bus answered: an answer saying the call failed
/// (throttling, a 5xx, which AWS documents as retryable) or no connection at
/// all means nothing was published and the same entries may be sent again;
/// no answer to a call that was sent (a timeout, a hang-up, an unreadable
/// answer) means they may have been published and are not sent again.
fn classify(error: SdkError<PutEventsError>) -> PublishError {
    match &error {
        // A success status whose body could not be read (cut short,
        // corrupted, a middlebox's page): the bus took the call, so the
        // entries may be on it.
        SdkError::ServiceError(e) if e.raw().status().is_success() => {
            PublishError::Unknown(format!("unreadable {} answer", e.raw().status().as_u16()))
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status();
            let code = e.err().code().unwrap_or("Unknown");
            let message = format!(
                "{} {code}: {}",
                status.as_u16(),
                e.err().message().unwrap_or("no message")
            );
            if status.is_server_error() || status.as_u16() == 429 || is_retryable_entry_code(code) {
                PublishError::Unavailable(message)
            } else {
                PublishError::Refused(message)
            }
        }
        SdkError::DispatchFailure(e) if e.is_user() => {
            PublishError::Refused("request could not be sent".to_owned())
        }
        // Only a connect timeout is configured, so a dispatch timeout is a
        // connection that was never made.
        SdkError::DispatchFailure(e) if e.is_timeout() || never_connected(&error) => {
            PublishError::Unavailable("could not connect to the event bus".to_owned())
        }
        SdkError::DispatchFailure(_) => {
            PublishError::Unknown("the connection broke before the answer".to_owned())
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

/// Whether an I/O error in the chain says the connection was never
/// established (so no request bytes were sent).
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::{
        AddrNotAvailable, ConnectionRefused, HostUnreachable, NetworkUnreachable,
    };
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            )
        {
            return true;
        }
        next = e.source();
    }
    false
}
