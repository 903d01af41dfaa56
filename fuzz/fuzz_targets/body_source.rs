//! A source's body (docs/protocol.md, section 9) as ingest reads it, by
//! its `Content-Type`: JSON (an object or an array), a URL-encoded form,
//! or `multipart/form-data` text fields (file parts refused).
//!
//! Input: `content-type\nbody`, read as it is. The same bytes are also read
//! as a list of fields (split at NUL: name, value, name, value, ...),
//! written as a form and as a multipart body by a plain encoder, and both
//! must read back as exactly those fields.
//! Asserts: nothing panics; a JSON payload is the body's text; a form's or
//! multipart payload is a JSON object of strings (or arrays of strings
//! for repeated names), which parses inside its envelopes; refusals are
//! 400 or 415 with a code; the round trips give back every field, in one
//! object, repeated names as arrays in the order sent.
#![no_main]

use std::collections::BTreeMap;

use ingest::body::{self, BodyError, ContentType, SourceFormat};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;

const BOUNDARY: &str = "FuzzBoundary7MA4YWxkTrZu0gW";

fuzz_target!(|data: &[u8]| {
    let [content_type, body] = fuzz::lines::<2>(data);
    let content_type = String::from_utf8_lossy(content_type);
    match body::source_payload(Some(&content_type), body) {
        Ok(payload) => {
            let text = payload.json.get();
            assert!(text.starts_with(['{', '[']), "{text:?}");
            let delivered = format!(r#"{{"data":{{"payload":{text}}}}}"#);
            serde_json::from_str::<IgnoredAny>(&delivered).expect("too deep for its envelopes");
            match payload.format {
                SourceFormat::Json => assert_eq!(text.as_bytes(), body.trim_ascii()),
                SourceFormat::Form | SourceFormat::Multipart => {
                    let value: Value = serde_json::from_str(text).expect("fields are JSON");
                    assert!(value.as_object().is_some_and(|o| !o.is_empty()), "{text}");
                }
            }
        }
        Err(e) => {
            assert!(matches!(e.status(), 400 | 415), "{e:?}");
            assert!(!e.code().is_empty());
        }
    }
    let _ = ContentType::parse(&content_type);

    round_trips(data);
});

/// Fields from the input, written by a plain encoder, read back.
fn round_trips(data: &[u8]) {
    let parts: Vec<String> = data
        .split(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let fields: Vec<(&str, &str)> = parts
        .chunks(2)
        .map(|pair| (pair[0].as_str(), pair.get(1).map_or("", String::as_str)))
        .take(body::MAX_PARTS)
        .collect();
    // `rawRequest` holding a JSON object is embedded, not a string: the
    // raw reading above covers it.
    if fields
        .iter()
        .any(|(name, _)| *name == body::RAW_REQUEST_FIELD)
    {
        return;
    }
    let mut expected: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in &fields {
        expected.entry(name).or_default().push(value);
    }
    let expected: serde_json::Map<String, Value> = expected
        .into_iter()
        .map(|(name, values)| {
            let value = match values.as_slice() {
                [one] => Value::from(*one),
                many => Value::from(many.to_vec()),
            };
            (name.to_owned(), value)
        })
        .collect();

    // As a form.
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &fields {
        form.append_pair(name, value);
    }
    let form = form.finish();
    check_fields(
        body::source_payload(Some("application/x-www-form-urlencoded"), form.as_bytes())
            .map(|p| p.json.get().to_owned()),
        &expected,
    );
    check_fields(
        body::submissions(ContentType::Form, form.as_bytes()).map(|p| p[0].get().to_owned()),
        &expected,
    );

    // As multipart, when the encoder can write the fields: names without
    // control characters, values without the delimiter.
    let delimiter = format!("\r\n--{BOUNDARY}");
    let writable = fields.iter().all(|(name, value)| {
        !name.chars().any(|c| c.is_ascii_control()) && !value.contains(&delimiter)
    });
    if writable {
        let mut multipart = String::new();
        for (name, value) in &fields {
            let name = name.replace('\\', "\\\\").replace('"', "\\\"");
            multipart.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        multipart.push_str(&format!("--{BOUNDARY}--\r\n"));
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        check_fields(
            body::source_payload(Some(&content_type), multipart.as_bytes())
                .map(|p| p.json.get().to_owned()),
            &expected,
        );
    }
}

fn check_fields(read: Result<String, BodyError>, expected: &serde_json::Map<String, Value>) {
    match read {
        Ok(text) => {
            let value: Value = serde_json::from_str(&text).expect("fields are JSON");
            assert_eq!(value.as_object(), Some(expected), "{text}");
        }
        Err(BodyError::Empty) => assert!(expected.is_empty()),
        Err(e) => panic!("fields written by a plain encoder refused: {e:?}"),
    }
}
