//! The submissions route's bodies (docs/protocol.md, section 1) as ingest
//! reads them: `application/json` (an object, or a batch of 1 to 100
//! objects) and `application/x-www-form-urlencoded`.
//!
//! Input: the body; each input is read both ways.
//! Asserts: nothing panics; a JSON payload is the received text itself (an
//! object's payload is the whole body, a batch item's a slice of it), an
//! object, and parses even inside the two envelopes it travels in (the
//! event's `detail`, the delivery's `data`), so no receiver refuses it for
//! its nesting; a form's payload is an object of strings or arrays of
//! strings; refusals are 400s or 415s with a code.
#![no_main]

use ingest::body::{self, ContentType, MAX_BATCH};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    match body::submissions(ContentType::Json, data) {
        Ok(payloads) => {
            assert!((1..=MAX_BATCH).contains(&payloads.len()));
            for payload in &payloads {
                let text = payload.get();
                assert!(text.starts_with('{'), "{text:?}");
                let start = text.as_ptr() as usize;
                let inside =
                    start >= range.start as usize && start + text.len() <= range.end as usize;
                assert!(inside, "a JSON payload is not the received text");
                in_envelopes(text);
            }
            if data.trim_ascii_start().starts_with(b"{") {
                assert_eq!(payloads.len(), 1);
                assert_eq!(payloads[0].get().as_bytes(), data.trim_ascii());
            }
        }
        Err(e) => refusal(&e),
    }
    match body::submissions(ContentType::Form, data) {
        Ok(payloads) => {
            assert_eq!(payloads.len(), 1);
            let text = payloads[0].get();
            let value: Value = serde_json::from_str(text).expect("a form's payload is JSON");
            let fields = value.as_object().expect("a form's payload is an object");
            assert!(!fields.is_empty());
            for value in fields.values() {
                let strings = match value {
                    Value::String(_) => true,
                    Value::Array(list) => list.len() > 1 && list.iter().all(Value::is_string),
                    _ => false,
                };
                assert!(strings, "{value:?}");
            }
            in_envelopes(text);
        }
        Err(e) => refusal(&e),
    }
});

/// The payload inside the event's `detail` inside the delivery's `data`
/// parses (serde_json refuses 128 levels of nesting, as many parsers do).
fn in_envelopes(payload: &str) {
    let delivered = format!(r#"{{"type":"form.submission","data":{{"payload":{payload}}}}}"#);
    serde_json::from_str::<IgnoredAny>(&delivered).expect("a payload too deep for its envelopes");
}

fn refusal(e: &body::BodyError) {
    assert!(matches!(e.status(), 400 | 415), "{e:?}");
    assert!(!e.code().is_empty() && !e.to_string().is_empty());
}
