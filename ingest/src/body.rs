//! Turning a verified body into submissions (docs/protocol.md, section 1).
//!
//! - `application/json`: an object is one submission; an array of 1 to
//!   [`MAX_BATCH`] objects is a batch. Payloads stay the exact JSON text
//!   received (borrowed from the body, not re-encoded), so large numbers,
//!   key order and escapes reach the tenant unchanged.
//! - `application/x-www-form-urlencoded`: one submission, an object of
//!   strings in first-seen key order; a repeated key becomes an array.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

/// The most submissions one request may carry.
pub const MAX_BATCH: usize = 100;
/// The deepest nesting of objects and arrays in one payload, itself
/// included. serde_json, like many parsers, refuses documents nested 128
/// levels deep, but does not apply that limit to values it only delimits, as
/// ingest does with payloads. So ingest checks, leaving room for the
/// envelopes a payload travels in (the event's `detail`, the delivery's
/// `data`): a tenant's receiver never gets a document its parser refuses.
pub const MAX_DEPTH: usize = 100;

/// The body formats ingest accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

impl ContentType {
    /// Reads a `Content-Type` header: the media type, any case, parameters
    /// such as `charset` ignored. `None` when it is neither supported type.
    pub fn parse(header: &str) -> Option<Self> {
        let media = header.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Some(Self::Form)
        } else {
            None
        }
    }

    /// The media type as written into events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// Why a body is not a valid submission (all 400s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Nothing to submit.
    #[error("the body is empty (or a form without fields)")]
    Empty,
    /// Not valid JSON. The message has serde_json's position, never content.
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    /// Valid JSON, but neither an object nor an array.
    #[error("the body must be a JSON object or an array of objects")]
    NotAnObject,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("a submission nests objects and arrays deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// An array element is not an object.
    #[error("batch item {0} is not a JSON object")]
    InvalidBatchItem(usize),
    /// `[]`.
    #[error("the batch is empty")]
    EmptyBatch,
    /// More than [`MAX_BATCH`] submissions.
    #[error("the batch has {0} submissions; at most {MAX_BATCH} are allowed")]
    BatchTooLarge(usize),
    /// A form field that is not UTF-8 once decoded.
    #[error("form field {0} is not UTF-8 text once percent-decoded")]
    MalformedForm(usize),
}

impl BodyError {
    /// A stable snake_case code for the error body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::MalformedJson(_) | Self::TooDeep => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::InvalidBatchItem(_) => "invalid_batch_item",
            Self::EmptyBatch => "empty_batch",
            Self::BatchTooLarge(_) => "batch_too_large",
            Self::MalformedForm(_) => "malformed_form",
        }
    }
}

/// The submissions in `body`, in order: each a JSON object's text.
pub fn submissions(
    content_type: ContentType,
    body: &[u8],
) -> Result<Vec<Cow<'_, RawValue>>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    match content_type {
        ContentType::Json => json(body),
        ContentType::Form => form(body).map(|payload| vec![Cow::Owned(payload)]),
    }
}

fn json(body: &[u8]) -> Result<Vec<Cow<'_, RawValue>>, BodyError> {
    let malformed = |e: serde_json::Error| BodyError::MalformedJson(e.to_string());
    let value: &RawValue = serde_json::from_slice(body).map_err(malformed)?;
    let within_depth = |payload: &RawValue| depth_within(payload.get().as_bytes(), MAX_DEPTH);
    match value.get().as_bytes().first() {
        Some(b'{') if within_depth(value) => Ok(vec![Cow::Borrowed(value)]),
        Some(b'{') => Err(BodyError::TooDeep),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(value.get()).map_err(malformed)?;
            if items.is_empty() {
                return Err(BodyError::EmptyBatch);
            }
            if items.len() > MAX_BATCH {
                return Err(BodyError::BatchTooLarge(items.len()));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    if !item.get().starts_with('{') {
                        Err(BodyError::InvalidBatchItem(i))
                    } else if !within_depth(item) {
                        Err(BodyError::TooDeep)
                    } else {
                        Ok(Cow::Borrowed(item))
                    }
                })
                .collect()
        }
        _ => Err(BodyError::NotAnObject),
    }
}

/// Whether valid JSON `text` nests arrays and objects at most `max` deep.
fn depth_within(text: &[u8], max: usize) -> bool {
    // Cheap first (this loop vectorises): with at most `max` opening
    // brackets anywhere, strings included, the nesting cannot exceed it.
    if text.iter().filter(|&&b| b == b'{' || b == b'[').count() <= max {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn form(body: &[u8]) -> Result<Box<RawValue>, BodyError> {
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let pairs = body.split(|&b| b == b'&').filter(|p| !p.is_empty());
    for (n, pair) in pairs.enumerate() {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let key = decode(key).ok_or(BodyError::MalformedForm(n))?;
        let value = decode(value).ok_or(BodyError::MalformedForm(n))?;
        match index.get(&key) {
            Some(&i) => fields[i].1.push(value),
            None => {
                index.insert(key.clone(), fields.len());
                fields.push((key, vec![value]));
            }
        }
    }
    if fields.is_empty() {
        return Err(BodyError::Empty);
    }
    let mut out = String::with_capacity(body.len() + 2 + 8 * fields.len());
    out.push('{');
    for (i, (key, values)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, key);
        out.push(':');
        if let [one] = values.as_slice() {
            push_json_string(&mut out, one);
        } else {
            out.push('[');
            for (j, v) in values.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_json_string(&mut out, v);
            }
            out.push(']');
        }
    }
    out.push('}');
    // Built from escaped strings only, so this is always valid JSON.
    RawValue::from_string(out).map_err(|_| BodyError::MalformedForm(0))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then
/// percent-decoding; the result must be UTF-8. A `%` not followed by two
/// hex digits stays as it is, as browsers and servers treat it.
fn decode(raw: &[u8]) -> Option<String> {
    let plus_as_space: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).ok()
}

fn push_json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly what JSON requires; it cannot fail on a str.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(content_type: ContentType, body: &[u8]) -> Result<Vec<String>, BodyError> {
        submissions(content_type, body).map(|v| v.iter().map(|r| r.get().to_owned()).collect())
    }

    #[test]
    fn content_types_ignore_case_and_parameters() {
        assert_eq!(
            ContentType::parse("application/json"),
            Some(ContentType::Json)
        );
        assert_eq!(
            ContentType::parse("Application/JSON; charset=utf-8"),
            Some(ContentType::Json)
        );
        assert_eq!(
            ContentType::parse("application/x-www-form-urlencoded;charset=UTF-8"),
            Some(ContentType::Form)
        );
        for other in [
            "text/plain",
            "application/jsonx",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert_eq!(ContentType::parse(other), None, "{other}");
        }
    }

    #[test]
    fn an_object_is_one_submission_kept_as_sent() {
        let body = br#" {"b": 1, "a": 12345678901234567890123.5, "s": "\u00e9"} "#;
        assert_eq!(
            texts(ContentType::Json, body),
            Ok(vec![
                r#"{"b": 1, "a": 12345678901234567890123.5, "s": "\u00e9"}"#.to_owned()
            ])
        );
    }

    #[test]
    fn an_array_of_objects_is_a_batch_in_order() {
        let body = br#"[{"n":1}, {"n":2},{"n":3}]"#;
        assert_eq!(
            texts(ContentType::Json, body),
            Ok(vec![
                r#"{"n":1}"#.into(),
                r#"{"n":2}"#.into(),
                r#"{"n":3}"#.into()
            ])
        );
        let hundred = format!("[{}]", vec!["{}"; 100].join(","));
        assert_eq!(
            texts(ContentType::Json, hundred.as_bytes()).map(|v| v.len()),
            Ok(100)
        );
    }

    #[test]
    fn bad_json_bodies_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty_body"),
            (b"  \n", "empty_body"),
            (b"{", "malformed_json"),
            (b"{\"a\":1} trailing", "malformed_json"),
            (b"\xff\xfe{}", "malformed_json"),
            (b"{\"a\":\"\xc3\x28\"}", "malformed_json"),
            (b"\"text\"", "not_an_object"),
            (b"42", "not_an_object"),
            (b"null", "not_an_object"),
            (b"[]", "empty_batch"),
            (b"[{}, 1]", "invalid_batch_item"),
            (b"[[{}]]", "invalid_batch_item"),
        ];
        for (body, code) in cases {
            let err = submissions(ContentType::Json, body).expect_err("invalid");
            assert_eq!(err.code(), *code, "{}", String::from_utf8_lossy(body));
        }
        let over = format!("[{}]", vec!["{}"; 101].join(","));
        assert_eq!(
            submissions(ContentType::Json, over.as_bytes()).expect_err("too many"),
            BodyError::BatchTooLarge(101)
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // `nested(n)` is an object holding n arrays: n + 1 levels.
        let nested = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        for n in [MAX_DEPTH, 100_000] {
            let result = submissions(ContentType::Json, nested(n).as_bytes()).map(|v| v.len());
            assert_eq!(result, Err(BodyError::TooDeep), "{n}");
        }
        let deepest = nested(MAX_DEPTH - 1);
        assert_eq!(
            submissions(ContentType::Json, deepest.as_bytes()).map(|v| v.len()),
            Ok(1)
        );
        // Each batch item gets the same depth as a single submission.
        let batch = format!("[{deepest},{deepest}]");
        assert_eq!(
            submissions(ContentType::Json, batch.as_bytes()).map(|v| v.len()),
            Ok(2)
        );
        let batch = format!("[{deepest},{}]", nested(MAX_DEPTH));
        assert_eq!(
            submissions(ContentType::Json, batch.as_bytes()).map(|v| v.len()),
            Err(BodyError::TooDeep)
        );
        // Brackets inside strings do not count.
        let in_string = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert_eq!(
            submissions(ContentType::Json, in_string.as_bytes()).map(|v| v.len()),
            Ok(1)
        );
        // What is accepted still parses once wrapped as a delivery.
        let items = submissions(ContentType::Json, deepest.as_bytes()).expect("accepted");
        let delivery = format!("{{\"data\":{{\"payload\":{}}}}}", items[0].get());
        assert!(serde_json::from_str::<serde_json::Value>(&delivery).is_ok());
    }

    #[test]
    fn json_errors_never_quote_the_body() {
        let err =
            submissions(ContentType::Json, b"{\"card\": 4111111111111111x}").expect_err("bad");
        assert!(!err.to_string().contains("4111"), "{err}");
    }

    #[test]
    fn forms_become_objects_of_strings() {
        let body = b"name=Ada+Lovelace&email=ada%40example.com&topic=a&topic=b&empty=&flag&caf%C3%A9=%E2%9C%93&pct=100%";
        assert_eq!(
            texts(ContentType::Form, body),
            Ok(vec![
                r#"{"name":"Ada Lovelace","email":"ada@example.com","topic":["a","b"],"empty":"","flag":"","café":"✓","pct":"100%"}"#
                    .into()
            ])
        );
        assert_eq!(
            texts(ContentType::Form, b"q=%22quoted%22%5C%0A"),
            Ok(vec![r#"{"q":"\"quoted\"\\\n"}"#.into()])
        );
    }

    #[test]
    fn bad_forms_are_named() {
        assert_eq!(
            submissions(ContentType::Form, b"")
                .expect_err("empty")
                .code(),
            "empty_body"
        );
        assert_eq!(
            submissions(ContentType::Form, b"ok=1&bad=%FF").expect_err("not utf-8"),
            BodyError::MalformedForm(1)
        );
        assert_eq!(
            submissions(ContentType::Form, b"k=\xff").expect_err("raw non-utf-8"),
            BodyError::MalformedForm(0)
        );
    }
}
