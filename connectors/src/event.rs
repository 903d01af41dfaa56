//! What the connector is invoked with, read without copying the events.
//!
//! - An SQS event (`{"Records": [...]}`) whose record bodies are
//!   EventBridge events as an SQS target receives them.
//! - A single EventBridge event, from an asynchronous invoke.
//!
//! [`Submission::parse`] reads one EventBridge event and checks it is a
//! Form-Bridge submission (docs/protocol.md, section 5); the delivery body embeds
//! its `detail` as the exact JSON text received.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::event::{
    DETAIL_TYPE, DETAIL_VERSION, MAX_SUBMISSION_ID_LEN, SubmissionDetail, valid_submission_id,
};

/// The invocation's payload, kept as JSON text until it is read.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct ConnectorEvent(Box<RawValue>);

impl ConnectorEvent {
    /// Wraps a payload (tests and the local gateway).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json).map(Self)
    }

    /// Which kind of invocation this is; `None` when it is neither.
    pub fn input(&self) -> Option<Input<'_>> {
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(rename = "Records")]
            records: Option<Vec<SqsRecord>>,
            #[serde(rename = "detail-type")]
            detail_type: Option<serde::de::IgnoredAny>,
        }
        let envelope: Envelope = serde_json::from_str(self.0.get()).ok()?;
        match envelope {
            Envelope {
                records: Some(records),
                ..
            } => Some(Input::Batch(records)),
            Envelope {
                detail_type: Some(_),
                ..
            } => Some(Input::Direct(self.0.get())),
            _ => None,
        }
    }
}

/// A kind of invocation.
#[derive(Debug)]
pub enum Input<'a> {
    /// An SQS batch.
    Batch(Vec<SqsRecord>),
    /// One EventBridge event's JSON text.
    Direct(&'a str),
}

/// The parts of an SQS record the connector uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SqsRecord {
    /// Named in `batchItemFailures` when the record is not delivered.
    #[serde(rename = "messageId")]
    pub message_id: String,
    /// The EventBridge event, as JSON text.
    pub body: String,
}

/// The connector's answer to an SQS batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    /// The records not delivered, in batch order.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One record not delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    /// The record's `messageId`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// A submission event, borrowed from its JSON text.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The parsed detail.
    pub detail: SubmissionDetail<'a>,
    /// The detail's exact JSON text.
    pub raw_detail: &'a RawValue,
}

impl<'a> Submission<'a> {
    /// Reads an EventBridge event. The error says what is wrong, never
    /// what the payload holds.
    pub fn parse(json: &'a str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct BusEvent<'a> {
            #[serde(rename = "detail-type", borrow)]
            detail_type: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            detail: &'a RawValue,
        }
        let event: BusEvent<'a> =
            serde_json::from_str(json).map_err(|e| describe("not an EventBridge event", &e))?;
        if event.detail_type != DETAIL_TYPE {
            return Err(format!("detail-type is not {DETAIL_TYPE:?}"));
        }
        let detail: SubmissionDetail<'a> = serde_json::from_str(event.detail.get())
            .map_err(|e| describe("detail is not a submission", &e))?;
        if detail.version != DETAIL_VERSION {
            return Err(format!("detail version is not {DETAIL_VERSION:?}"));
        }
        // A submission is an object; a source's body may also be an array.
        if !detail.payload.get().trim_start().starts_with(['{', '[']) {
            return Err("payload is not a JSON object or array".into());
        }
        // Opaque: any ID in the grammar, not only the UUIDv7s ingest emits.
        if !valid_submission_id(&detail.submission_id) {
            return Err(format!(
                "submission_id is not 1 to {MAX_SUBMISSION_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ));
        }
        Ok(Self {
            detail,
            raw_detail: event.detail,
        })
    }

    /// The delivery body:
    /// `{"type":"form.submission","timestamp":<received_at>,"data":<detail>}`.
    pub fn body(&self) -> Bytes {
        let detail = self.raw_detail.get();
        let mut body = Vec::with_capacity(detail.len() + self.detail.received_at.len() + 64);
        body.extend_from_slice(br#"{"type":"form.submission","timestamp":"#);
        // received_at is plain ASCII; serde_json escapes it anyway.
        if serde_json::to_writer(&mut body, &*self.detail.received_at).is_err() {
            body.extend_from_slice(b"null");
        }
        body.extend_from_slice(br#","data":"#);
        body.extend_from_slice(detail.as_bytes());
        body.push(b'}');
        Bytes::from(body)
    }
}

/// What is wrong and where, without serde_json's message, which can quote
/// the input.
fn describe(what: &str, e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "missing or invalid field",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{what} (line {}, column {}: {kind})", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(submission_id: &str, payload: &str) -> String {
        format!(
            r#"{{"detail-type":"form.submission","detail":{{"version":"1","submission_id":"{submission_id}","tenant_id":"acme","routing":"shared","received_at":"2026-01-01T00:00:00.000Z","content_type":"application/json","payload":{payload},"source":{{"id":"hubspot","provider":"hubspot"}}}}}}"#
        )
    }

    #[test]
    fn submission_ids_are_opaque_and_source_payloads_may_be_arrays() {
        for (id, payload) in [
            ("evt_1NG8Du2eZvKYlo2CUI79vXWy", r#"{"a":1}"#),
            ("019b7751-0000-7000-8000-000000000000", r#"[{"eventId":1}]"#),
            ("a.b:c-d_e", " [] "),
            // A ULID, a UUIDv4 and a producer's own ID: what the review's
            // dead-lettered events carried.
            ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "{}"),
            ("f47ac10b-58cc-4372-a567-0e02b3c479d5", "{}"),
            ("order-2026-000017", "{}"),
        ] {
            let json = event(id, payload);
            let submission = Submission::parse(&json).expect(id);
            assert_eq!(submission.detail.submission_id, id);
            assert_eq!(
                submission.detail.source.as_ref().map(|s| &*s.provider),
                Some("hubspot")
            );
        }
    }

    #[test]
    fn ids_outside_the_grammar_and_scalar_payloads_are_refused() {
        for (id, payload, why) in [
            ("has space", "{}", "submission_id"),
            ("", "{}", "submission_id"),
            (&"x".repeat(129), "{}", "submission_id"),
            ("ok", "\"text\"", "payload"),
            ("ok", "12", "payload"),
        ] {
            let json = event(id, payload);
            let error = Submission::parse(&json).expect_err(id);
            assert!(error.contains(why), "{error}");
        }
    }
}
