//! What every Form-Bridge fuzz target shares: the fixed clock, the
//! fixture tenants (`tenants.json`, with one source per provider), the
//! secrets they hold (which no output may show), a runtime for the async
//! handlers, and the small text format the header-reading targets take
//! their input in.
//!
//! See docs/fuzzing.md for the targets, how to run them and what each
//! asserts.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use shared::store::MemoryTenantStore;

/// The time every target runs at: the published test vector's timestamp
/// (docs/protocol.md, section 1), so seeds signed at it stay fresh.
pub const NOW: i64 = 1_767_225_600;

/// [`NOW`] as a `SystemTime`.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW.unsigned_abs())
}

/// The fixture tenants as a tenants file.
pub const TENANTS_JSON: &str = include_str!("../tenants.json");

/// The test vector's signing secret (tenant `acme`'s current one).
pub const VECTOR_SECRET: &str = "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";

static TENANTS: LazyLock<MemoryTenantStore> = LazyLock::new(|| {
    MemoryTenantStore::from_json(TENANTS_JSON).expect("fuzz/tenants.json is a valid tenants file")
});

static TENANTS_VALUE: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(TENANTS_JSON).expect("fuzz/tenants.json is JSON"));

static SECRETS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut all = Vec::new();
    if let Value::Array(records) = &*TENANTS_VALUE {
        for record in records {
            all.extend(secrets_in(record));
        }
    }
    all
});

/// The fixture tenants, in memory (a cheap clone of one shared store).
pub fn tenants() -> MemoryTenantStore {
    TENANTS.clone()
}

/// Every secret the fixture tenants hold.
pub fn fixture_secrets() -> &'static [String] {
    &SECRETS
}

/// The fixture record of `tenant`, as JSON.
pub fn fixture_record(tenant: &str) -> Option<&'static Value> {
    TENANTS_VALUE
        .as_array()?
        .iter()
        .find(|r| r["tenant_id"] == tenant)
}

/// The secrets of the source `source` of `tenant` in the fixture.
pub fn source_secrets(tenant: &str, source: &str) -> Vec<&'static str> {
    fixture_record(tenant)
        .and_then(|r| r["sources"][source]["secrets"].as_array())
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The strings in a tenant record's secret fields (docs/protocol.md,
/// sections 4 and 9): `signing_secrets`, `destination.secret`,
/// `destination.headers` values and every source's `secrets`, wherever
/// they are strings.
pub fn secrets_in(record: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut strings = |v: &Value| match v {
        Value::String(s) => found.push(s.clone()),
        Value::Array(list) => {
            found.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
        }
        Value::Object(map) => {
            found.extend(map.values().filter_map(Value::as_str).map(str::to_owned));
        }
        _ => {}
    };
    strings(&record["signing_secrets"]);
    strings(&record["destination"]["secret"]);
    strings(&record["destination"]["headers"]);
    if let Some(sources) = record["sources"].as_object() {
        for source in sources.values() {
            strings(&source["secrets"]);
        }
    }
    found
}

/// Whether `s` reads the same raw, as a JSON string's content and in
/// `Debug`: then "the output does not contain `s`" is a plain substring
/// test. Secrets the targets check are of this kind and long enough not to
/// occur by chance.
pub fn plain(s: &str) -> bool {
    s.len() >= 16
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+/=".contains(&b))
}

/// A current-thread Tokio runtime with timers, built once per process.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a Tokio runtime")
    });
    RUNTIME.block_on(future)
}

/// The first `N` lines of `data` (split at `\n`; the last takes the rest,
/// newlines included), missing ones empty.
pub fn lines<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    let mut parts = data.splitn(N, |&b| b == b'\n');
    for slot in &mut out {
        match parts.next() {
            Some(part) => *slot = part,
            None => break,
        }
    }
    out
}

/// A request in the header-reading targets' text format: `Name: value`
/// lines, then an empty line, then the body. The pseudo-headers `:url`,
/// `:query` and `:method` set those parts (defaults: a source URL, no
/// query, `POST`).
#[derive(Debug, Default)]
pub struct TextRequest {
    /// Header names, lowercase, with their values, in order.
    pub headers: Vec<(String, String)>,
    /// The URL the sender called.
    pub url: String,
    /// The raw query string.
    pub query: String,
    /// The method.
    pub method: String,
    /// The body.
    pub body: Vec<u8>,
}

impl TextRequest {
    /// Reads `data` (header lines decoded lossily as UTF-8).
    pub fn parse(data: &[u8]) -> Self {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &[][..]),
        };
        let mut request = Self {
            url: "https://api.example/v1/tenants/acme/sources/fuzz".into(),
            method: "POST".into(),
            body: body.to_vec(),
            ..Self::default()
        };
        for line in head.split(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(line);
            // `:url: ...`: a pseudo-header's name starts with its colon.
            let (pseudo, line) = match line.strip_prefix(':') {
                Some(rest) => (true, rest),
                None => (false, &*line),
            };
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match (pseudo, name) {
                (true, "url") => request.url = value.to_owned(),
                (true, "query") => request.query = value.to_owned(),
                (true, "method") => request.method = value.to_owned(),
                (true, _) => {}
                (false, _) => request
                    .headers
                    .push((name.to_ascii_lowercase(), value.to_owned())),
            }
        }
        request
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether no string and no object key of JSON `text`, decoded, contains
/// `needle`. Text serde_json cannot read as a `Value` (a lone surrogate
/// escape, a number beyond f64) counts as lacking it: those are checked
/// raw only.
pub fn decoded_strings_lack(text: &str, needle: &str) -> bool {
    fn lacks(value: &Value, needle: &str) -> bool {
        match value {
            Value::String(s) => !s.contains(needle),
            Value::Array(items) => items.iter().all(|v| lacks(v, needle)),
            Value::Object(map) => map
                .iter()
                .all(|(key, v)| !key.contains(needle) && lacks(v, needle)),
            _ => true,
        }
    }
    serde_json::from_str::<Value>(text).map_or(true, |value| lacks(&value, needle))
}
