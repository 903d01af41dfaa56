//! Turning a verified body into payloads.
//!
//! The submissions route (docs/protocol.md, section 1), [`submissions`]:
//!
//! - `application/json`: an object is one submission; an array of 1 to
//!   [`MAX_BATCH`] objects is a batch. Payloads stay the exact JSON text
//!   received (borrowed from the body, not re-encoded), so large numbers,
//!   key order and escapes reach the tenant unchanged.
//! - `application/x-www-form-urlencoded`: one submission, an object of
//!   strings in first-seen key order; a repeated key becomes an array.
//!
//! A source route (docs/protocol.md, section 9), [`source_payload`]: each
//! delivery is one submission whose payload is the provider's body as JSON,
//! an object or an array; forms and `multipart/form-data` text fields
//! become an object of fields, and file parts are refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

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

/// The most parts one `multipart/form-data` body may have.
pub const MAX_PARTS: usize = 1_000;
/// The most bytes of headers one multipart part may have (each header's
/// name and value, plus 4 for the `: ` and the line break).
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// The multipart field that is embedded as JSON when it holds a JSON
/// object: Jotform puts the submission's answers there as JSON text.
pub const RAW_REQUEST_FIELD: &str = "rawRequest";
/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;
/// The most characters of a field name an error message quotes.
const QUOTED_NAME_CHARS: usize = 64;

/// How a source's body was sent, and so how it became the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// `application/json` or a `+json` type: the body is the payload.
    Json,
    /// `application/x-www-form-urlencoded`: an object of its fields.
    Form,
    /// `multipart/form-data`: an object of its text fields.
    Multipart,
}

impl SourceFormat {
    /// The media type written as the event's `content_type`: the format's
    /// own, without parameters (a `+json` type is written
    /// `application/json`, as its payload is plain JSON like any other).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Form => "application/x-www-form-urlencoded",
            Self::Multipart => "multipart/form-data",
        }
    }
}

/// The payload of one source delivery.
#[derive(Debug)]
pub struct SourcePayload<'a> {
    /// The payload's JSON text, an object or an array. Borrowed from the
    /// body when the body is that JSON text (then byte for byte as sent);
    /// built for forms.
    pub json: Cow<'a, RawValue>,
    /// How the body was sent.
    pub format: SourceFormat,
}

impl SourcePayload<'_> {
    /// The media type to record as the event's `content_type`.
    pub fn content_type(&self) -> &'static str {
        self.format.as_str()
    }
}

/// Why a body is not a valid submission. All are 400s except those
/// [`BodyError::status`] says otherwise.
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
    /// Valid JSON that strict parsers refuse (see [`strict_json`]). Says
    /// what and where, never the text.
    #[error("the body is JSON that strict parsers refuse (RFC 7493): {0}")]
    NotStrictJson(NotStrict),
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
    /// A source's body that is valid JSON but neither an object nor an
    /// array.
    #[error("the body must be a JSON object or array")]
    NotObjectOrArray,
    /// A source's `Content-Type` that is missing or none of the three
    /// accepted (415).
    #[error(
        "Content-Type must be application/json, application/x-www-form-urlencoded or multipart/form-data"
    )]
    UnsupportedContentType,
    /// A `multipart/form-data` body (or its `Content-Type`) that does not
    /// parse. The message says what is wrong and where, never a value.
    #[error("the multipart/form-data body is malformed: {0}")]
    MalformedMultipart(String),
    /// More than [`MAX_PARTS`] parts.
    #[error("the multipart/form-data body has more than {MAX_PARTS} parts")]
    TooManyParts,
    /// A multipart part with a file name: files are not accepted (415).
    #[error(
        "file uploads are not accepted: part {index} (field {field}) is a file; send its fields as text"
    )]
    FilePart {
        /// The part's position, from 0.
        index: usize,
        /// Its field name, quoted and cut to 64 characters.
        field: String,
    },
}

impl BodyError {
    /// A stable snake_case code for the error body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::MalformedJson(_) | Self::TooDeep | Self::NotStrictJson(_) => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::InvalidBatchItem(_) => "invalid_batch_item",
            Self::EmptyBatch => "empty_batch",
            Self::BatchTooLarge(_) => "batch_too_large",
            Self::MalformedForm(_) => "malformed_form",
            Self::NotObjectOrArray => "not_an_object",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::MalformedMultipart(_) => "malformed_multipart",
            Self::TooManyParts => "too_many_parts",
            Self::FilePart { .. } => "file_parts_not_accepted",
        }
    }

    /// The HTTP status (docs/protocol.md, section 2): 415 for a media type
    /// or a part ingest does not take, 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedContentType | Self::FilePart { .. } => 415,
            _ => 400,
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
    strict_json(body).map_err(BodyError::NotStrictJson)?;
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

/// What valid JSON holds that a strict parser refuses, and where (line
/// and column, from 1, of the escape's backslash or the number's first
/// character), as [`BodyError::NotStrictJson`] says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStrict {
    /// Which rule the text breaks.
    pub kind: NotStrictKind,
    /// The line, from 1.
    pub line: usize,
    /// The column (in bytes), from 1.
    pub column: usize,
}

/// The rules of [`strict_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStrictKind {
    /// A `\u` escape of half a UTF-16 surrogate pair without its other
    /// half: a high one not followed by a low one, or a low one alone.
    LoneSurrogate,
    /// A number whose nearest binary64 value is infinite.
    NumberOutOfRange,
}

impl std::fmt::Display for NotStrict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            NotStrictKind::LoneSurrogate => {
                "a string holds a lone surrogate escape (half of a UTF-16 pair, without the other half)"
            }
            NotStrictKind::NumberOutOfRange => "a number is beyond the range of a 64-bit float",
        };
        write!(f, "{what} at line {} column {}", self.line, self.column)
    }
}

/// Checks valid JSON `text` (serde_json has parsed it) for what I-JSON
/// (RFC 7493, sections 2.1 and 2.2) rules out: a lone surrogate escape,
/// such as `"\ud800"`, and a number that overflows a binary64, such as
/// `1e999`. serde_json refuses both (into a `String`, an `f64` or a
/// `Value`); Go's encoding/json refuses the number and turns the escape
/// into U+FFFD, so the tenant would not get what was sent either.
/// serde_json's `RawValue` checks neither: it only delimits values,
/// decoding no escape and no number. Refusing them here tells the sender,
/// instead of the tenant's receiver failing on each delivery (the payload
/// is delivered byte for byte, so it would get the same text).
///
/// One pass, cheaper than a second parse: string content (most of a body)
/// is skipped 8 bytes at a time up to the next quote or backslash, each
/// `\u` escape is read, and a number is parsed as an `f64` only when it is
/// long enough, or has an exponent, to overflow. Underflow (`1e-400` is 0)
/// and precision beyond binary64 are accepted, as strict parsers accept
/// them; so are noncharacters and duplicate member names, which they
/// accept too.
fn strict_json(text: &[u8]) -> Result<(), NotStrict> {
    let refused = |kind, offset| Err(NotStrict::at(text, kind, offset));
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => {
                // To the closing quote, reading each escape on the way.
                i += 1;
                loop {
                    i = next_quote_or_backslash(text, i);
                    match text.get(i) {
                        Some(b'\\') if text.get(i + 1) == Some(&b'u') => {
                            let unit = |at: usize| hex4(text.get(at..at + 4));
                            match unit(i + 2) {
                                Some(0xd800..=0xdbff)
                                    if text.get(i + 6..i + 8) == Some(b"\\u")
                                        && matches!(unit(i + 8), Some(0xdc00..=0xdfff)) =>
                                {
                                    i += 12;
                                }
                                Some(0xd800..=0xdfff) => {
                                    return refused(NotStrictKind::LoneSurrogate, i);
                                }
                                _ => i += 6,
                            }
                        }
                        Some(b'\\') => i += 2,
                        _ => break,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let len = text[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(text.len() - i);
                let number = &text[i..i + len];
                // Without an exponent a number under 1e308 has at most 308
                // digits before its point: only longer ones, or exponents,
                // can overflow.
                let may_overflow = len > 308 || number.iter().any(|&b| b | 0x20 == b'e');
                if may_overflow && !finite(number) {
                    return refused(NotStrictKind::NumberOutOfRange, i);
                }
                i += len;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index of the first `"` or `\` at or after `from`, or `text.len()`.
/// Most strings in a form are short: up to [`SHORT_STRING_WORDS`] words
/// of 8 bytes are tested in place (the zero-byte test of each XOR, whose
/// lowest set bit is exact, as serde_json skips string content); a longer
/// string is searched with memchr's vector search, which costs more to
/// start than a word test but less per byte.
fn next_quote_or_backslash(text: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    for _ in 0..SHORT_STRING_WORDS {
        let Some(Ok(word)) = text.get(from..from + 8).map(<[u8; 8]>::try_from) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return from + (found.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    text.get(from..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
        .map_or(text.len(), |at| from + at)
}

/// How many words of a string [`next_quote_or_backslash`] tests before
/// it searches.
const SHORT_STRING_WORDS: usize = 4;

impl NotStrict {
    /// The rule broken at byte `offset` of `text`, with its line and
    /// column.
    fn at(text: &[u8], kind: NotStrictKind, offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        Self {
            kind,
            line: 1 + memchr::memchr_iter(b'\n', before).count(),
            column: 1 + offset - line_start,
        }
    }
}

/// The four hex digits of a `\u` escape as a UTF-16 code unit.
fn hex4(digits: Option<&[u8]>) -> Option<u16> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// Whether a JSON number's nearest binary64 is finite (Rust's `f64`
/// parsing rounds correctly, as Go's `strconv.ParseFloat` does). Within
/// about one unit in the last place of `f64::MAX` serde_json's default
/// (not `float_roundtrip`) parsing is not exact: it refuses some numbers
/// that round to `f64::MAX` (`1.7976931348623158e308`, or `f64::MAX`
/// written out in full) and accepts some above it; no rule on the number
/// can match that band, so the exact one is kept.
fn finite(number: &[u8]) -> bool {
    std::str::from_utf8(number)
        .ok()
        .and_then(|n| n.parse::<f64>().ok())
        .is_none_or(f64::is_finite)
}

fn form(body: &[u8]) -> Result<Box<RawValue>, BodyError> {
    let mut fields = Fields::default();
    let pairs = body.split(|&b| b == b'&').filter(|p| !p.is_empty());
    for (n, pair) in pairs.enumerate() {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let key = decode(key).ok_or(BodyError::MalformedForm(n))?;
        let value = decode(value).ok_or(BodyError::MalformedForm(n))?;
        fields.push(Cow::Owned(key), FieldValue::Text(Cow::Owned(value)));
    }
    // Built from escaped strings only, so nothing but `Empty` can fail.
    fields.into_json(body.len()).map_err(|e| match e {
        BodyError::Empty => e,
        _ => BodyError::MalformedForm(0),
    })
}

/// The fields of a form in first-seen order, a repeated name's values
/// together in the order sent.
#[derive(Default)]
struct Fields<'b> {
    list: Vec<(Cow<'b, str>, Vec<FieldValue<'b>>)>,
    index: HashMap<Cow<'b, str>, usize>,
}

/// One field value, borrowed from the body where it can be.
enum FieldValue<'b> {
    /// Text, written as a JSON string.
    Text(Cow<'b, str>),
    /// Valid JSON text, written as it is.
    Json(&'b str),
}

impl<'b> Fields<'b> {
    fn push(&mut self, name: Cow<'b, str>, value: FieldValue<'b>) {
        match self.index.get(&name) {
            Some(&i) => self.list[i].1.push(value),
            None => {
                self.index.insert(name.clone(), self.list.len());
                self.list.push((name, vec![value]));
            }
        }
    }

    /// The object of fields: a name sent once has its value, a repeated
    /// one an array of its values. [`BodyError::Empty`] without fields;
    /// otherwise an error only if a `Json` value was not valid JSON.
    fn into_json(self, size_hint: usize) -> Result<Box<RawValue>, BodyError> {
        if self.list.is_empty() {
            return Err(BodyError::Empty);
        }
        let mut out = String::with_capacity(size_hint + 2 + 8 * self.list.len());
        out.push('{');
        for (i, (name, values)) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, name);
            out.push(':');
            if let [one] = values.as_slice() {
                one.write(&mut out);
            } else {
                out.push('[');
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    v.write(&mut out);
                }
                out.push(']');
            }
        }
        out.push('}');
        RawValue::from_string(out).map_err(|e| BodyError::MalformedJson(e.to_string()))
    }
}

impl FieldValue<'_> {
    fn write(&self, out: &mut String) {
        match self {
            Self::Text(text) => push_json_string(out, text),
            Self::Json(json) => out.push_str(json),
        }
    }
}

/// The payload of one source delivery (docs/protocol.md, section 9): the
/// provider's body as JSON, and the media type to record for it.
///
/// `content_type` is the request's `Content-Type` header; `body` the raw
/// body, already bounded and verified. By media type (any case, with
/// parameters):
///
/// - `application/json` or `application/*+json`: the body itself, any JSON
///   object or array, byte for byte as sent (borrowed, not re-encoded);
///   nested at most [`MAX_DEPTH`] deep. Other JSON values, invalid JSON and
///   invalid UTF-8 are 400s.
/// - `application/x-www-form-urlencoded`: an object of its fields, as
///   [`submissions`] reads a form: strings in first-seen order, a repeated
///   name becoming an array of its values.
/// - `multipart/form-data` (the `boundary` parameter is required): an
///   object of its text fields, by the same rule. A field named
///   [`RAW_REQUEST_FIELD`] (`rawRequest`) whose value is a JSON object is
///   embedded as that object, its text as sent (so a Jotform submission's
///   answers reach the tenant structured, next to Jotform's `formID`,
///   `submissionID` and `pretty` strings); any other value of it, and every
///   other field, stays a string. A part with a file name (`filename` or
///   `filename*`) is refused with [`BodyError::FilePart`] (415). Bounded:
///   at most [`MAX_PARTS`] parts and [`MAX_PART_HEADER_BYTES`] of headers
///   per part; every part needs a name and UTF-8 text; a missing boundary,
///   delimiter or closing delimiter is a 400.
///
/// Anything else, or no `Content-Type`, is
/// [`BodyError::UnsupportedContentType`] (415); an empty (or whitespace)
/// body, a form without fields or a multipart body without parts is
/// [`BodyError::Empty`]. No input panics.
pub fn source_payload<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<SourcePayload<'a>, BodyError> {
    let media = SourceMedia::parse(content_type.ok_or(BodyError::UnsupportedContentType)?)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let (json, format) = match media {
        SourceMedia::Json => (source_json(body)?, SourceFormat::Json),
        SourceMedia::Form => (Cow::Owned(form(body)?), SourceFormat::Form),
        SourceMedia::Multipart(boundary) => (
            Cow::Owned(multipart(&boundary, body)?),
            SourceFormat::Multipart,
        ),
    };
    Ok(SourcePayload { json, format })
}

/// A source's `Content-Type`, read.
enum SourceMedia {
    Json,
    Form,
    /// With its boundary.
    Multipart(Vec<u8>),
}

impl SourceMedia {
    fn parse(header: &str) -> Result<Self, BodyError> {
        let media = header.split(';').next().unwrap_or_default().trim();
        let is = |name: &str| media.eq_ignore_ascii_case(name);
        let plus_json = media.len() > "application/+json".len()
            && media
                .get(.."application/".len())
                .is_some_and(|t| t.eq_ignore_ascii_case("application/"))
            && media
                .get(media.len() - "+json".len()..)
                .is_some_and(|t| t.eq_ignore_ascii_case("+json"));
        if is("application/json") || plus_json {
            Ok(Self::Json)
        } else if is("application/x-www-form-urlencoded") {
            Ok(Self::Form)
        } else if is("multipart/form-data") {
            boundary(header).map(Self::Multipart)
        } else {
            Err(BodyError::UnsupportedContentType)
        }
    }
}

/// A source's JSON body: any object or array, as sent.
fn source_json(body: &[u8]) -> Result<Cow<'_, RawValue>, BodyError> {
    let value: &RawValue =
        serde_json::from_slice(body).map_err(|e| BodyError::MalformedJson(e.to_string()))?;
    strict_json(body).map_err(BodyError::NotStrictJson)?;
    match value.get().as_bytes().first() {
        Some(b'{' | b'[') if depth_within(value.get().as_bytes(), MAX_DEPTH) => {
            Ok(Cow::Borrowed(value))
        }
        Some(b'{' | b'[') => Err(BodyError::TooDeep),
        _ => Err(BodyError::NotObjectOrArray),
    }
}

/// The `boundary` parameter of a `multipart/form-data` `Content-Type`,
/// quoted or not: 1 to 70 of the characters RFC 2046 allows, not ending
/// with a space.
fn boundary(header: &str) -> Result<Vec<u8>, BodyError> {
    let malformed = |what: &str| BodyError::MalformedMultipart(what.to_owned());
    let (_, params) = split_params(header.as_bytes());
    let mut found = None;
    for param in params {
        let (name, value) =
            param.map_err(|_| malformed("the Content-Type's parameters do not parse"))?;
        if name.eq_ignore_ascii_case(b"boundary") && found.is_none() {
            found = Some(value);
        }
    }
    let boundary = found.ok_or_else(|| {
        malformed("the Content-Type has no boundary parameter (multipart/form-data; boundary=...)")
    })?;
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b);
    if boundary.is_empty()
        || boundary.len() > MAX_BOUNDARY_LEN
        || !boundary.iter().all(allowed)
        || boundary.ends_with(b" ")
    {
        return Err(malformed(
            "the boundary must be 1 to 70 letters, digits or '()+_,-./:=? (not ending with a space)",
        ));
    }
    Ok(boundary.into_owned())
}

/// What ends a part's headers.
static BLANK_LINE: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));

/// The object of a `multipart/form-data` body's text fields (see
/// [`source_payload`] for the rules), read strictly as RFC 2046, section
/// 5.1.1 and RFC 7578 write it: an optional preamble, then parts, each
/// after a `--BOUNDARY` line (optional spaces, then CRLF), with header
/// lines, a blank line and the content up to the next CRLF `--BOUNDARY`;
/// the body ends with `--BOUNDARY--` (anything after it is ignored).
///
/// Written here rather than taken from a crate: the body is already whole
/// and bounded in memory, so this reads it in place, each field borrowed
/// from it, with one searcher for the delimiter. multer (the maintained
/// choice) is asynchronous over a stream; fed this body as one chunk it was
/// 2.4 times slower on a 1 KiB Jotform body (allocations per part, a new
/// searcher per search), and its Content-Disposition reading is
/// case-sensitive and misses `filename*`, so it needed this file's own
/// header reading anyway.
fn multipart(boundary: &[u8], body: &[u8]) -> Result<Box<RawValue>, BodyError> {
    let malformed = |what: String| BodyError::MalformedMultipart(what);
    let mut delimiter = b"\r\n--".to_vec();
    delimiter.extend_from_slice(boundary);
    let next_delimiter = memchr::memmem::Finder::new(&delimiter);
    // Just after the first `--BOUNDARY`: at the start, or after a preamble.
    let mut at = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        next_delimiter.find(body).map(|i| i + delimiter.len()).ok_or_else(|| {
            malformed("no --BOUNDARY line starts a part (is the boundary in Content-Type the one the body uses?)".to_owned())
        })?
    };
    let mut fields = Fields::default();
    let mut index = 0;
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            break;
        }
        if rest.is_empty() {
            return Err(malformed(
                "the body ends without its closing --BOUNDARY--".to_owned(),
            ));
        }
        if index == MAX_PARTS {
            return Err(BodyError::TooManyParts);
        }
        let padding = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let Some(part) = rest[padding..].strip_prefix(b"\r\n") else {
            return Err(malformed(format!(
                "the --BOUNDARY line before part {index} does not end with CRLF"
            )));
        };
        let (headers, content) = if let Some(content) = part.strip_prefix(b"\r\n") {
            (&part[..0], content)
        } else {
            let window = &part[..part.len().min(MAX_PART_HEADER_BYTES + 4)];
            match BLANK_LINE.find(window) {
                Some(end) => (&part[..end], &part[end + 4..]),
                None if part.len() > window.len() => {
                    return Err(malformed(format!(
                        "part {index} has more than {MAX_PART_HEADER_BYTES} bytes of headers"
                    )));
                }
                None => {
                    return Err(malformed(format!(
                        "part {index} has no blank line after its headers"
                    )));
                }
            }
        };
        let Some(len) = next_delimiter.find(content) else {
            return Err(malformed(format!(
                "part {index} is not followed by a --BOUNDARY line; the body must end with --BOUNDARY--"
            )));
        };
        at = body.len() - content.len() + len + delimiter.len();
        let name = part_name(index, headers)?;
        let text = std::str::from_utf8(&content[..len]).map_err(|_| {
            malformed(format!(
                "part {index} (field {}) is not UTF-8 text",
                quoted(&name)
            ))
        })?;
        let value = match embedded_json(&name, text) {
            Some(json) => FieldValue::Json(json),
            None => FieldValue::Text(Cow::Borrowed(text)),
        };
        fields.push(name, value);
        index += 1;
    }
    fields.into_json(body.len())
}

/// A `rawRequest` value's JSON object text (without surrounding
/// whitespace), if that is what it holds, nested so that it stays within
/// [`MAX_DEPTH`] once embedded (in the payload, and in an array if the
/// field is repeated), and [`strict_json`]. Anything else stays text, as
/// any other field's value: a valid JSON string the tenant can read,
/// rather than a delivery refused whole for one field the sender (a form
/// builder, which cannot be asked to change) wrote.
fn embedded_json<'t>(name: &str, text: &'t str) -> Option<&'t str> {
    if name != RAW_REQUEST_FIELD {
        return None;
    }
    let value: &RawValue = serde_json::from_str(text).ok()?;
    let json = value.get();
    (json.starts_with('{')
        && depth_within(json.as_bytes(), MAX_DEPTH - 2)
        && strict_json(json.as_bytes()).is_ok())
    .then_some(json)
}

/// A text part's field name, from its header lines (`Name: value`, CRLF
/// between them): the `name` of its one `Content-Disposition: form-data`
/// header. A part with a file name is a [`BodyError::FilePart`].
fn part_name(index: usize, headers: &[u8]) -> Result<Cow<'_, str>, BodyError> {
    let malformed = |what: &str| BodyError::MalformedMultipart(format!("part {index} {what}"));
    let mut disposition = None;
    let mut lines = headers.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next().filter(|_| !headers.is_empty()) {
        // Every line but the last ends with the CR of its CRLF.
        let line = match (lines.peek(), line.strip_suffix(b"\r")) {
            (Some(_), Some(line)) => line,
            (None, None) => line,
            _ => return Err(malformed("has a header line not ended by CRLF")),
        };
        let colon = line.iter().position(|&b| b == b':');
        let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
        let Some((name, value)) = colon
            .map(|c| (&line[..c], line[c + 1..].trim_ascii()))
            .filter(|(name, _)| !name.is_empty() && name.iter().all(token))
        else {
            return Err(malformed("has a header line that is not Name: value"));
        };
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(malformed("has a control character in a header"));
        }
        if name.eq_ignore_ascii_case(b"content-disposition") && disposition.replace(value).is_some()
        {
            return Err(malformed("has more than one Content-Disposition header"));
        }
    }
    let disposition = disposition.ok_or_else(|| malformed("has no Content-Disposition header"))?;
    let (kind, params) = split_params(disposition);
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return Err(malformed(
            "is not form-data (Content-Disposition: form-data; name=...)",
        ));
    }
    let mut name = None;
    let mut file = false;
    for param in params {
        let (param, value) =
            param.map_err(|_| malformed("has a malformed Content-Disposition header"))?;
        if param.eq_ignore_ascii_case(b"name") {
            name.get_or_insert(value);
        } else if param.eq_ignore_ascii_case(b"filename")
            || param.eq_ignore_ascii_case(b"filename*")
        {
            file = true;
        }
    }
    let name = name.map(|name| match name {
        Cow::Borrowed(name) => std::str::from_utf8(name).map(Cow::Borrowed).ok(),
        Cow::Owned(name) => String::from_utf8(name).map(Cow::Owned).ok(),
    });
    if file {
        let field = match &name {
            Some(Some(name)) => quoted(name),
            _ => "without a name".to_owned(),
        };
        return Err(BodyError::FilePart { index, field });
    }
    match name {
        Some(Some(name)) => Ok(name),
        Some(None) => Err(malformed("has a field name that is not UTF-8")),
        None => Err(malformed(
            "has no field name (Content-Disposition: form-data; name=...)",
        )),
    }
}

/// A header value such as `form-data; name="a"; filename=b`: its type
/// (trimmed), and its parameters.
fn split_params(value: &[u8]) -> (&[u8], Params<'_>) {
    let split = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    (
        value[..split].trim_ascii(),
        Params {
            rest: &value[split..],
        },
    )
}

/// The parameters of a header value, in order: each `name=value` or
/// `name="quoted"` (a backslash escaping the next byte), `;` between them.
/// A parameter without `=` or a quoted value not closed is an error, and
/// the last item.
struct Params<'v> {
    rest: &'v [u8],
}

/// A header's parameters do not parse.
struct MalformedParams;

/// One parameter: its name as sent, and its value (unquoted).
type Param<'v> = (&'v [u8], Cow<'v, [u8]>);

impl<'v> Iterator for Params<'v> {
    type Item = Result<Param<'v>, MalformedParams>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.read();
        if !matches!(item, Some(Ok(_))) {
            self.rest = &[];
        }
        item
    }
}

impl<'v> Params<'v> {
    fn read(&mut self) -> Option<Result<Param<'v>, MalformedParams>> {
        let rest = self.rest;
        let start = rest
            .iter()
            .position(|&b| b != b';' && !b.is_ascii_whitespace())?;
        let rest = &rest[start..];
        let Some(eq) = rest.iter().position(|&b| b == b'=' || b == b';') else {
            return Some(Err(MalformedParams));
        };
        if rest[eq] != b'=' {
            return Some(Err(MalformedParams));
        }
        let name = rest[..eq].trim_ascii();
        let rest = rest[eq + 1..].trim_ascii_start();
        let value = if let Some(quoted) = rest.strip_prefix(b"\"") {
            let Some(end) = quoted.iter().position(|&b| b == b'"' || b == b'\\') else {
                return Some(Err(MalformedParams));
            };
            if quoted[end] == b'"' {
                self.rest = &quoted[end + 1..];
                Cow::Borrowed(&quoted[..end])
            } else {
                let mut value = quoted[..end].to_vec();
                let mut i = end;
                loop {
                    match quoted.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') => match quoted.get(i + 1) {
                            Some(&escaped) => {
                                value.push(escaped);
                                i += 2;
                            }
                            None => return Some(Err(MalformedParams)),
                        },
                        Some(&b) => {
                            value.push(b);
                            i += 1;
                        }
                        None => return Some(Err(MalformedParams)),
                    }
                }
                self.rest = &quoted[i + 1..];
                Cow::Owned(value)
            }
        } else {
            let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
            self.rest = &rest[end..];
            Cow::Borrowed(rest[..end].trim_ascii())
        };
        Some(Ok((name, value)))
    }
}

/// A field name for an error message: quoted, escaped, cut short.
fn quoted(name: &str) -> String {
    let cut: String = name.chars().take(QUOTED_NAME_CHARS).collect();
    format!("{cut:?}")
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

/// Appends `s` as a JSON string, escaped as serde_json escapes it (the
/// short escapes, `\u00XX` for other control characters), without a copy
/// of `s` per call.
fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both ends are character boundaries.
        out.push_str(&s[start..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let all_ascii: String = (0u8..0x80).map(char::from).collect();
        for s in [all_ascii.as_str(), "", "é ✓ \u{2028} 😀", "\"\\\"", "plain"] {
            let mut out = String::new();
            push_json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).expect("a string"), "{s:?}");
        }
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

    // Source routes.

    /// A Jotform webhook's boundary, as PHP's curl writes it.
    const JOTFORM_BOUNDARY: &str = "------------------------3c8b9a1f2e4d5c6b";

    /// The answers Jotform puts in `rawRequest`, as PHP's json_encode
    /// writes them (escaped slashes, `\u` escapes).
    const RAW_REQUEST: &str = r#"{"slug":"submit\/241234567890123","jsExecutionTracker":"build-date-1717000000000","submitSource":"form","submitDate":"1717000000000","buildDate":"1717000000000","uploadServerUrl":"https:\/\/upload.jotform.com\/upload","eventObserver":"1","q3_fullName":{"first":"Ada","last":"Lovelace"},"q4_email":"ada@example.com","q5_message":"Hello \u00e9","q6_amount":12345678901234567890123,"event_id":"1717000000000_241234567890123_abc1234","timeToSubmit":"12","path":"\/submit\/241234567890123"}"#;

    /// A multipart body of `parts` (Content-Disposition parameters, value).
    fn multipart_body(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (disposition, value) in parts {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    fn multipart_type(boundary: &str) -> String {
        format!("multipart/form-data; boundary={boundary}")
    }

    /// A real-shaped Jotform webhook body (fields in Jotform's order).
    fn jotform_body() -> Vec<u8> {
        let fields: &[(&str, &str)] = &[
            ("action", ""),
            (
                "webhookURL",
                "https://api.example.com/v1/tenants/acme/sources/jotform-contact?token=x",
            ),
            ("username", "acme"),
            ("formID", "241234567890123"),
            ("type", "WEB"),
            ("customParams", ""),
            ("product", ""),
            ("formTitle", "Contact us"),
            ("customTitle", ""),
            ("submissionID", "5912345678901234567"),
            ("event", ""),
            ("documentID", ""),
            ("teamID", ""),
            ("subject", ""),
            ("isSilent", ""),
            ("customBody", ""),
            ("rawRequest", RAW_REQUEST),
            ("fromTable", ""),
            ("appID", ""),
            (
                "pretty",
                "Full Name:Ada Lovelace, E-mail:ada@example.com, Message:Hello é",
            ),
            ("unread", ""),
            ("parent", ""),
            ("ip", "203.0.113.7"),
        ];
        let parts: Vec<(String, &[u8])> = fields
            .iter()
            .map(|(name, value)| (format!("name=\"{name}\""), value.as_bytes()))
            .collect();
        let parts: Vec<(&str, &[u8])> = parts.iter().map(|(d, v)| (d.as_str(), *v)).collect();
        multipart_body(JOTFORM_BOUNDARY, &parts)
    }

    fn source(content_type: &str, body: &[u8]) -> Result<(String, &'static str), BodyError> {
        source_payload(Some(content_type), body)
            .map(|p| (p.json.get().to_owned(), p.content_type()))
    }

    fn source_err(content_type: Option<&str>, body: &[u8]) -> BodyError {
        source_payload(content_type, body).expect_err("refused")
    }

    fn provider(name: &str) -> shared::source::Provider {
        shared::source::Provider::parse(name).expect("known provider")
    }

    #[test]
    fn source_content_types_choose_the_format() {
        let cases: &[(&str, &[u8], SourceFormat)] = &[
            ("application/json", b"{}", SourceFormat::Json),
            ("Application/JSON; charset=utf-8", b"{}", SourceFormat::Json),
            ("application/vnd.api+json", b"[]", SourceFormat::Json),
            (
                "application/cloudevents+JSON;charset=UTF-8",
                b"{}",
                SourceFormat::Json,
            ),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                b"a=1",
                SourceFormat::Form,
            ),
            (
                "multipart/form-data; boundary=b",
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
                SourceFormat::Multipart,
            ),
            (
                "Multipart/Form-Data; charset=utf-8; boundary=\"b c\"",
                b"--b c\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b c--",
                SourceFormat::Multipart,
            ),
        ];
        for (content_type, body, format) in cases {
            let payload = source_payload(Some(content_type), body).expect(content_type);
            assert_eq!(payload.format, *format, "{content_type}");
            assert_eq!(payload.content_type(), format.as_str());
        }
        for other in [
            "",
            "text/plain",
            "application/jsonx",
            "application/+json",
            "text/foo+json",
            "multipart/mixed; boundary=b",
            "application/octet-stream",
        ] {
            let err = source_err(Some(other), b"{}");
            assert_eq!(err, BodyError::UnsupportedContentType, "{other}");
            assert_eq!(
                (err.code(), err.status()),
                ("unsupported_content_type", 415)
            );
        }
        assert_eq!(source_err(None, b"{}"), BodyError::UnsupportedContentType);
        // The media type is judged before the body: an empty body of a
        // type ingest does not take is still a 415.
        assert_eq!(
            source_err(Some("text/plain"), b""),
            BodyError::UnsupportedContentType
        );
    }

    #[test]
    fn a_typeform_object_is_the_payload_as_sent() {
        let body = br#" {"event_id":"01HVZK8Q1S1XJ7W3","event_type":"form_response","form_response":{"form_id":"lT4Z3j","token":"a3a12ec67a1365927098a606107fac15","submitted_at":"2018-01-18T18:17:02Z","answers":[{"type":"text","text":"Lorem \u00e9 \"ipsum\"","field":{"id":"DlXFaesGBpoF","type":"long_text"}},{"type":"number","number":12345678901234567890123.50}]}}
"#;
        let payload = source_payload(Some("application/json"), body).expect("accepted");
        assert!(matches!(payload.json, Cow::Borrowed(_)), "not copied");
        assert_eq!(payload.json.get().as_bytes(), body.trim_ascii());
        assert_eq!(payload.content_type(), "application/json");
        assert_eq!(
            provider("typeform")
                .body_event_id(payload.json.get())
                .as_deref(),
            Some("01HVZK8Q1S1XJ7W3")
        );
    }

    #[test]
    fn a_tally_object_is_the_payload_as_sent() {
        let body = br#"{"eventId":"a4cb511e-d513-4fa5-baee-b815d718dfd1","eventType":"FORM_RESPONSE","createdAt":"2023-06-28T15:00:21.889Z","data":{"responseId":"2wgx4n","submissionId":"2wgx4n","respondentId":"dwQKYm","formId":"VwbNEw","formName":"Contact","createdAt":"2023-06-28T15:00:21.000Z","fields":[{"key":"question_mVGEg3","label":"Name","type":"INPUT_TEXT","value":"Ada"},{"key":"question_nPv0a1","label":"Topics","type":"CHECKBOXES","value":["a","b"]}]}}"#;
        assert_eq!(
            source("application/json; charset=utf-8", body),
            Ok((
                String::from_utf8_lossy(body).into_owned(),
                "application/json"
            ))
        );
        let payload = source_payload(Some("application/json"), body).expect("accepted");
        assert_eq!(
            provider("tally")
                .body_event_id(payload.json.get())
                .as_deref(),
            Some("a4cb511e-d513-4fa5-baee-b815d718dfd1")
        );
    }

    #[test]
    fn a_hubspot_array_is_the_payload_as_sent() {
        let body = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"appId":54321,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW"},{"eventId":2,"subscriptionId":12345,"portalId":62515,"appId":54321,"occurredAt":1564113600001,"subscriptionType":"contact.propertyChange","attemptNumber":0,"objectId":124,"propertyName":"email","propertyValue":"ada@example.com","changeSource":"CRM"}]"#;
        let payload = source_payload(Some("application/json"), body).expect("accepted");
        assert!(matches!(payload.json, Cow::Borrowed(_)), "not copied");
        assert_eq!(payload.json.get().as_bytes(), &body[..]);
        assert!(
            provider("hubspot")
                .body_event_id(payload.json.get())
                .is_some_and(|id| id.starts_with("sha256:"))
        );
        // Any array: a source's payload is the provider's body, whatever
        // its elements.
        for array in [&b"[]"[..], b"[1, \"two\", null]", b"[[{}]]"] {
            assert_eq!(
                source("application/json", array).map(|(json, _)| json),
                Ok(String::from_utf8_lossy(array).into_owned())
            );
        }
    }

    #[test]
    fn bad_source_json_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty_body"),
            (b" \r\n", "empty_body"),
            (b"42", "not_an_object"),
            (b"\"text\"", "not_an_object"),
            (b"null", "not_an_object"),
            (b"true", "not_an_object"),
            (b"{", "malformed_json"),
            (b"[1,]", "malformed_json"),
            (b"{} {}", "malformed_json"),
            (b"\xef\xbb\xbf{}", "malformed_json"),
            (b"{\"a\":\"\xc3\x28\"}", "malformed_json"),
            (b"\xff", "malformed_json"),
        ];
        for (body, code) in cases {
            let err = source_err(Some("application/json"), body);
            assert_eq!(
                (err.code(), err.status()),
                (*code, 400),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            source_err(Some("application/json"), b"42").to_string(),
            "the body must be a JSON object or array"
        );
        let err = source_err(Some("application/json"), b"{\"card\": 4111111111111111x}");
        assert!(!err.to_string().contains("4111"), "{err}");
    }

    #[test]
    fn source_json_nesting_is_bounded_like_submissions() {
        let nested = |n: usize| format!("[{}{}]", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(source("application/json", nested(MAX_DEPTH).as_bytes()).is_ok());
        for n in [MAX_DEPTH + 1, 100_000] {
            assert_eq!(
                source_err(Some("application/json"), nested(n).as_bytes()),
                BodyError::TooDeep,
                "{n}"
            );
        }
    }

    #[test]
    fn a_formspree_form_is_an_object_of_fields_as_submissions_reads_it() {
        let body = b"name=Ada+Lovelace&email=ada%40example.com&message=Hello%2C+world%21%0A%E2%9C%93&_subject=New+submission&topics=a&topics=b";
        let expected = r#"{"name":"Ada Lovelace","email":"ada@example.com","message":"Hello, world!\n✓","_subject":"New submission","topics":["a","b"]}"#;
        assert_eq!(
            source("application/x-www-form-urlencoded", body),
            Ok((expected.to_owned(), "application/x-www-form-urlencoded"))
        );
        let submitted = submissions(ContentType::Form, body).expect("a submission");
        assert_eq!(submitted[0].get(), expected);
        let form = "application/x-www-form-urlencoded";
        assert_eq!(source_err(Some(form), b"&&"), BodyError::Empty);
        assert_eq!(
            source_err(Some(form), b"a=%FF"),
            BodyError::MalformedForm(0)
        );
    }

    #[test]
    fn a_jotform_multipart_body_is_an_object_with_its_answers_structured() {
        let body = jotform_body();
        let (json, content_type) =
            source(&multipart_type(JOTFORM_BOUNDARY), &body).expect("accepted");
        assert_eq!(content_type, "multipart/form-data");
        // The answers are embedded as the JSON text Jotform sent, not
        // re-encoded: escapes and large numbers reach the tenant unchanged.
        assert!(
            json.contains(&format!(r#","rawRequest":{RAW_REQUEST},"#)),
            "{json}"
        );
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        let object = value.as_object().expect("an object");
        let names: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(names.len(), 23);
        assert!(json.starts_with(r#"{"action":"","webhookURL":"https://api.example.com/v1/tenants/acme/sources/jotform-contact?token=x","username":"acme","formID":"241234567890123","type":"WEB","#), "{json}");
        assert_eq!(value["submissionID"], "5912345678901234567");
        assert_eq!(value["rawRequest"]["q3_fullName"]["last"], "Lovelace");
        assert_eq!(value["rawRequest"]["q5_message"], "Hello é");
        assert_eq!(
            value["pretty"],
            "Full Name:Ada Lovelace, E-mail:ada@example.com, Message:Hello é"
        );
        assert!(json.ends_with(r#""ip":"203.0.113.7"}"#), "{json}");
        // The token provider's event ID is Jotform's submission ID.
        assert_eq!(
            provider("token").body_event_id(&json).as_deref(),
            Some("5912345678901234567")
        );
    }

    #[test]
    fn only_a_raw_request_holding_an_object_is_embedded() {
        let boundary = "X";
        let deep_object = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH - 3),
            "]".repeat(MAX_DEPTH - 3)
        );
        let too_deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH - 2),
            "]".repeat(MAX_DEPTH - 2)
        );
        let cases: &[(&str, String)] = &[
            (" {\"a\": 1}\n", r#"{"rawRequest":{"a": 1}}"#.to_owned()),
            ("[1]", r#"{"rawRequest":"[1]"}"#.to_owned()),
            ("\"s\"", r#"{"rawRequest":"\"s\""}"#.to_owned()),
            ("{\"a\":", r#"{"rawRequest":"{\"a\":"}"#.to_owned()),
            ("", r#"{"rawRequest":""}"#.to_owned()),
            (&deep_object, format!(r#"{{"rawRequest":{deep_object}}}"#)),
            (
                &too_deep,
                format!(
                    r#"{{"rawRequest":{}}}"#,
                    serde_json::to_string(&too_deep).expect("a string")
                ),
            ),
        ];
        for (value, expected) in cases {
            let body = multipart_body(boundary, &[("name=\"rawRequest\"", value.as_bytes())]);
            assert_eq!(
                source(&multipart_type(boundary), &body).map(|(json, _)| json),
                Ok(expected.clone()),
                "{value}"
            );
        }
        // Other fields holding JSON stay strings; the name is exact.
        let body = multipart_body(
            boundary,
            &[("name=\"answers\"", b"{}"), ("name=\"rawrequest\"", b"{}")],
        );
        assert_eq!(
            source(&multipart_type(boundary), &body).map(|(json, _)| json),
            Ok(r#"{"answers":"{}","rawrequest":"{}"}"#.to_owned())
        );
        // Repeated, each within bounds once in its array.
        let body = multipart_body(
            boundary,
            &[
                ("name=rawRequest", deep_object.as_bytes()),
                ("name=rawRequest", b"{}"),
            ],
        );
        let (json, _) = source(&multipart_type(boundary), &body).expect("accepted");
        assert_eq!(json, format!(r#"{{"rawRequest":[{deep_object},{{}}]}}"#));
        assert!(depth_within(json.as_bytes(), MAX_DEPTH));
    }

    #[test]
    fn multipart_fields_follow_the_form_rules() {
        let body = multipart_body(
            "b",
            &[
                ("name=\"topic\"", b"a"),
                (
                    "name=\"message\"",
                    "line 1\r\nline 2 \"quoted\" ✓".as_bytes(),
                ),
                ("name=\"topic\"", b"b"),
                ("name=\"empty\"", b""),
                ("name=\"caf\\\"\u{e9}\"", b"x"),
                ("NAME=upper; extra=ignored", b"y"),
                ("name=\"--b\"", b"--b is fine inside a line"),
            ],
        );
        assert_eq!(
            source("multipart/form-data; boundary=b", &body).map(|(json, _)| json),
            Ok(r#"{"topic":["a","b"],"message":"line 1\r\nline 2 \"quoted\" ✓","empty":"","caf\"é":"x","upper":"y","--b":"--b is fine inside a line"}"#.to_owned())
        );
        // A part may carry other headers; a preamble, spaces after a
        // boundary and an epilogue are allowed (RFC 2046) and ignored.
        let body = b"preamble\r\n--b \t\r\nContent-Type: text/plain; charset=utf-8\r\nX-Other:\r\nContent-Disposition:form-data;name=\"a\" ; x=\"\\\\\"\r\n\r\n1\r\n--b--\r\nepilogue";
        assert_eq!(
            source("multipart/form-data; boundary=b", body).map(|(json, _)| json),
            Ok(r#"{"a":"1"}"#.to_owned())
        );
    }

    #[test]
    fn file_parts_are_refused_with_415() {
        let cases: &[(&str, &str)] = &[
            ("name=\"cv\"; filename=\"cv.pdf\"", "\"cv\""),
            ("name=\"cv\"; filename=\"\"", "\"cv\""),
            ("name=cv; FILENAME=cv.pdf", "\"cv\""),
            (
                "name=\"cv\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                "\"cv\"",
            ),
            ("filename=\"a.txt\"", "without a name"),
        ];
        for (disposition, field) in cases {
            let body = multipart_body(
                "b",
                &[("name=\"ok\"", b"1"), (disposition, b"%PDF-1.7 ...")],
            );
            let err = source_err(Some("multipart/form-data; boundary=b"), &body);
            assert_eq!(
                err,
                BodyError::FilePart {
                    index: 1,
                    field: (*field).to_owned()
                },
                "{disposition}"
            );
            assert_eq!((err.code(), err.status()), ("file_parts_not_accepted", 415));
            assert!(
                err.to_string()
                    .starts_with("file uploads are not accepted: part 1 (field "),
                "{err}"
            );
        }
        // A long field name is cut in the message.
        let name = "n".repeat(500);
        let body = multipart_body("b", &[(&format!("name={name}; filename=x"), b"")]);
        let err = source_err(Some("multipart/form-data; boundary=b"), &body);
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn malformed_multipart_is_a_400_that_says_what() {
        let form = "multipart/form-data; boundary=b";
        let ok_part = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n";
        let with = |tail: &[u8]| [&ok_part[..], tail].concat();
        // A second part after `ok_part`, with these header lines.
        let second = |headers: &[u8]| with(&[b"--b\r\n", headers, b"\r\n\r\n2\r\n--b--"].concat());
        let long_boundary = format!("multipart/form-data; boundary={}", "b".repeat(71));
        let long_header = format!(
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Long: {}\r\n\r\n1\r\n--b--",
            "v".repeat(MAX_PART_HEADER_BYTES)
        );
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("multipart/form-data", with(b"--b--"), "no boundary parameter"),
            ("multipart/form-data; boundary=", with(b"--b--"), "1 to 70"),
            (&long_boundary, with(b"--b--"), "1 to 70"),
            ("multipart/form-data; boundary=\"a@b\"", with(b"--b--"), "1 to 70"),
            ("multipart/form-data; boundary=\"b \"", with(b"--b--"), "not ending with a space"),
            ("multipart/form-data; boundary=\"b", with(b"--b--"), "parameters do not parse"),
            (form, b"just text".to_vec(), "no --BOUNDARY line starts a part"),
            (form, b"--c\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--c--".to_vec(), "no --BOUNDARY line starts a part"),
            (form, b"--b\nContent-Disposition: form-data; name=a\n\n1\n--b--\n".to_vec(), "the --BOUNDARY line before part 0 does not end with CRLF"),
            (form, with(b"--bx\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--"), "the --BOUNDARY line before part 1 does not end with CRLF"),
            (form, with(b""), "part 0 is not followed by a --BOUNDARY line"),
            (form, ok_part[..ok_part.len() - 2].to_vec(), "part 0 is not followed by a --BOUNDARY line"),
            (form, with(b"--b"), "the body ends without its closing --BOUNDARY--"),
            (form, b"--b\r\nContent-Disposition: form-data; name=a\r\n1\r\n--b--".to_vec(), "part 0 has no blank line after its headers"),
            (form, long_header.into_bytes(), "part 0 has more than 8192 bytes of headers"),
            (form, second(b"Content-Disposition: form-data"), "part 1 has no field name"),
            (form, second(b"Content-Type: text/plain"), "part 1 has no Content-Disposition"),
            (form, with(b"--b\r\n\r\n2\r\n--b--"), "part 1 has no Content-Disposition"),
            (form, second(b"Content-Disposition: attachment; name=x"), "part 1 is not form-data"),
            (form, second(b"Content-Disposition: form-data; name=\"x"), "part 1 has a malformed Content-Disposition"),
            (form, second(b"Content-Disposition: form-data; name"), "part 1 has a malformed Content-Disposition"),
            (form, second(b"Content-Disposition: form-data; name=x\r\ncontent-disposition: form-data; name=y"), "part 1 has more than one Content-Disposition"),
            (form, second(b"Content-Disposition: form-data; name=\"\xff\""), "part 1 has a field name that is not UTF-8"),
            (form, second(b"Content-Disposition: form-data; name=\"x\ry\""), "part 1 has a control character in a header"),
            (form, second(b"Content-Disposition: form-data; name=x\nX-A: 1"), "part 1 has a header line not ended by CRLF"),
            (form, second(b"Content-Disposition: form-data; name=x\r\n folded"), "part 1 has a header line that is not Name: value"),
            (form, second(b"Bad Header Line"), "part 1 has a header line that is not Name: value"),
            (form, with(b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\xc3\x28\r\n--b--"), "part 1 (field \"x\") is not UTF-8 text"),
        ];
        for (content_type, body, says) in &cases {
            let err = source_err(Some(content_type), body);
            let shown = String::from_utf8_lossy(body);
            assert_eq!(
                (err.code(), err.status()),
                ("malformed_multipart", 400),
                "{content_type} {shown}"
            );
            assert!(err.to_string().contains(says), "{err} / {says}");
        }
        // No part at all is an empty body, as a form without fields is.
        assert_eq!(source_err(Some(form), b"--b--\r\n"), BodyError::Empty);
        assert_eq!(source_err(Some(form), b"\r\n"), BodyError::Empty);
    }

    #[test]
    fn multipart_parts_are_bounded() {
        let parts = |n: usize| {
            let mut body = Vec::new();
            for i in 0..n {
                body.extend_from_slice(
                    format!("--b\r\nContent-Disposition: form-data; name=f{i}\r\n\r\n{i}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(b"--b--");
            body
        };
        let (json, _) =
            source("multipart/form-data; boundary=b", &parts(MAX_PARTS)).expect("at the bound");
        assert!(json.ends_with(r#""f999":"999"}"#));
        let err = source_err(
            Some("multipart/form-data; boundary=b"),
            &parts(MAX_PARTS + 1),
        );
        assert_eq!(
            (err, "too_many_parts"),
            (BodyError::TooManyParts, BodyError::TooManyParts.code())
        );
    }

    /// Valid JSON (RFC 8259) that strict parsers refuse (I-JSON, RFC
    /// 7493; serde_json into a `String` or `f64`, Go): what each holds,
    /// and where.
    const NOT_STRICT: &[(&str, &str, &str)] = &[
        (r#"{"a":"\ud800"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":"\udc00"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":"\udfff\ud800"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":"x\uDBFFy"}"#, "surrogate", "line 1 column 8"),
        (r#"{"a":"\ud800\u0041"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":"\ud800\\udc00"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":"\\\udbff"}"#, "surrogate", "line 1 column 9"),
        (r#"{"\uDBFF":1}"#, "surrogate", "line 1 column 3"),
        (
            r#"{"a":"\ud83d\ude00\ude00"}"#,
            "surrogate",
            "line 1 column 19",
        ),
        (r#"{"a":"\ud83d\"\ude00"}"#, "surrogate", "line 1 column 7"),
        (r#"{"a":1e999999}"#, "number", "line 1 column 6"),
        (r#"{"a":-1e400}"#, "number", "line 1 column 6"),
        (r#"{"a":1E309}"#, "number", "line 1 column 6"),
        (r#"{"a":1.8e+308}"#, "number", "line 1 column 6"),
        (r#"{"a":0.001e312}"#, "number", "line 1 column 6"),
        (r#"{"a":[1,2,1e+400]}"#, "number", "line 1 column 11"),
        (
            "{\"a\":0.5,\n\"e\":\"1e999\",\n  \"c\":-2e999}",
            "number",
            "line 3 column 7",
        ),
        (
            r#"[{"a":1},{"b":"\udfff"}]"#,
            "surrogate",
            "line 1 column 16",
        ),
    ];

    /// Valid JSON strict parsers accept: kept byte for byte.
    const STRICT: &[&str] = &[
        r#"{"a":"\ud83d\ude00","b":"\uD83D\uDE00x","c":"\u00e9\ud800\udc00"}"#,
        r#"{"a":"\\ud800","b":"\\\\udfff","c":"\\\ud83d\ude00","d":"\"\\"}"#,
        r#"{"a":1.7976931348623157e308,"b":-1.7976931348623157e308}"#,
        r#"{"a":1e-999999,"b":-0.0e-400,"c":4.9e-324,"d":123456789012345678901234567890e-10}"#,
        r#"{"a":"1e999999","b":"-1e400","e":true,"f":false,"n":null,"x":1e308}"#,
        r#"[{"a":1E+2},{"b":-0.5e-3}]"#,
    ];

    /// `n` nines: an integer of `n` digits.
    fn nines(n: usize) -> String {
        "9".repeat(n)
    }

    #[test]
    fn json_strict_parsers_refuse_is_refused_with_where() {
        let long = format!(r#"{{"a":{}}}"#, nines(309));
        let mut cases: Vec<(&str, &str, &str)> = NOT_STRICT.to_vec();
        cases.push((&long, "number", "line 1 column 6"));
        for (body, what, at) in cases {
            // A strict parser refuses it too.
            assert!(
                serde_json::from_str::<serde_json::Value>(body).is_err(),
                "{body}"
            );
            let errors = [
                submissions(ContentType::Json, body.as_bytes()).expect_err(body),
                source_err(Some("application/json"), body.as_bytes()),
            ];
            for err in errors {
                assert_eq!(
                    (err.code(), err.status()),
                    ("malformed_json", 400),
                    "{body}"
                );
                let message = err.to_string();
                assert!(
                    message.contains(what) && message.ends_with(at),
                    "{body}: {message}"
                );
                for quoted in ["\\u", "ud", "uD", "99", "e4", "E3", "e3", "e+"] {
                    assert!(!message.contains(quoted), "{body}: {message}");
                }
            }
        }
    }

    #[test]
    fn json_strict_parsers_accept_is_kept_as_sent() {
        let long = format!(r#"{{"a":{},"b":-{}.5}}"#, nines(308), nines(300));
        let mut cases = STRICT.to_vec();
        cases.push(&long);
        for body in cases {
            assert!(
                serde_json::from_str::<serde_json::Value>(body).is_ok(),
                "{body}"
            );
            let texts = texts(ContentType::Json, body.as_bytes()).expect(body);
            assert_eq!(
                texts.concat(),
                body.replace("},{", "}{").trim_matches(['[', ']'])
            );
            let (json, _) = source("application/json", body.as_bytes()).expect(body);
            assert_eq!(json, body);
        }
    }

    #[test]
    fn a_raw_request_strict_parsers_refuse_stays_text() {
        for (value, _, _) in NOT_STRICT.iter().filter(|(v, _, _)| v.starts_with('{')) {
            let body = multipart_body("b", &[("name=rawRequest", value.as_bytes())]);
            let (json, _) = source(&multipart_type("b"), &body).expect(value);
            assert_eq!(
                json,
                format!(
                    r#"{{"rawRequest":{}}}"#,
                    serde_json::to_string(value).expect("text")
                ),
                "{value}"
            );
        }
        let body = multipart_body("b", &[("name=rawRequest", STRICT[0].as_bytes())]);
        let (json, _) = source(&multipart_type("b"), &body).expect("embedded");
        assert_eq!(json, format!(r#"{{"rawRequest":{}}}"#, STRICT[0]));
    }

    #[test]
    fn strictness_agrees_with_serde_json_on_random_escapes_and_numbers() {
        let escapes = [
            r"\ud800", r"\udbff", r"\udc00", r"\udfff", r"\ud83d", r"\ude00", r"\u0041", r"\\",
            r#"\""#, "u", "d800", "x", r"\n", "é",
        ];
        let numbers = [
            "1e308", "1e309", "-1e400", "1e-400", "0.1e309", "10e307", "1E+999", "-0", "12.5e2",
        ];
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let mut body = String::from("{\"k\":[");
            for i in 0..rng.below(5) {
                if i > 0 {
                    body.push(',');
                }
                if rng.below(3) == 0 {
                    body.push_str(numbers[rng.below(numbers.len())]);
                } else {
                    body.push('"');
                    for _ in 0..rng.below(5) {
                        body.push_str(escapes[rng.below(escapes.len())]);
                    }
                    body.push('"');
                }
            }
            body.push_str("]}");
            let strict = serde_json::from_str::<serde_json::Value>(&body).is_ok();
            let ours = submissions(ContentType::Json, body.as_bytes());
            assert_eq!(ours.is_ok(), strict, "{body}: {ours:?}");
        }
    }

    /// A small deterministic generator, so a failure can be replayed.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn garbage_never_panics() {
        let types = [
            "application/json".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
            multipart_type(JOTFORM_BOUNDARY),
            "multipart/form-data; boundary=b".to_owned(),
        ];
        let check = |body: &[u8]| {
            for content_type in &types {
                if let Ok(payload) = source_payload(Some(content_type), body) {
                    // Whatever is accepted is a JSON object or array.
                    let value: serde_json::Value =
                        serde_json::from_str(payload.json.get()).expect("valid JSON");
                    assert!(value.is_object() || value.is_array());
                }
            }
        };
        // Every cut and every single-byte change of a real body.
        let jotform = jotform_body();
        for at in 0..=jotform.len() {
            check(&jotform[..at]);
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for at in 0..jotform.len() {
            let mut changed = jotform.clone();
            changed[at] = rng.next() as u8;
            check(&changed);
        }
        // Bodies stitched from the pieces that matter to the parsers.
        let pieces: &[&[u8]] = &[
            b"--b",
            b"--",
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"\t",
            b"Content-Disposition: form-data",
            b"; name=",
            b"; filename=",
            b"; filename*=",
            b"\"",
            b"\\",
            b";",
            b":",
            b"=",
            b"&",
            b"%",
            b"%FF",
            b"+",
            b"{",
            b"}",
            b"[",
            b"]",
            b"rawRequest",
            b"\xff",
            b"\xc3",
            b"x",
            b"Content-Type: text/plain",
            b"0",
            b"null",
            b",",
        ];
        for _ in 0..20_000 {
            let len = rng.below(40);
            let body: Vec<u8> = (0..len)
                .flat_map(|_| pieces[rng.below(pieces.len())].iter().copied())
                .collect();
            check(&body);
        }
        for _ in 0..2_000 {
            let len = rng.below(300);
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check(&body);
        }
    }
}
