//! Structured logs and CloudWatch metrics.
//!
//! Logs are JSON lines (one object per event, fields flattened), so
//! CloudWatch Logs Insights can filter on `tenant_id`, `reason` and friends.
//! Metrics are CloudWatch Embedded Metric Format (EMF) lines on stdout:
//! CloudWatch extracts them from the function's log stream, so metrics cost
//! no SDK call and no extra latency.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{ConfigError, Env};

/// CloudWatch namespace for every Form-Bridge metric.
pub const METRICS_NAMESPACE: &str = "FormBridge";

/// The variable naming the stack a function belongs to (the template sets
/// it to `AWS::StackName`): every metric line carries it as the
/// [`STACK_DIMENSION`], so two stacks in one account and Region never add
/// up in one metric or set off each other's alarms.
pub const STACK_VARIABLE: &str = "STACK_NAME";

/// The dimension, in every dimension set, holding [`STACK_VARIABLE`]. One
/// stack gives it one value, so it adds no metric (custom metrics are
/// billed per name and set of dimension values); each further stack has
/// metrics of its own, as it should.
pub const STACK_DIMENSION: &str = "Stack";

/// The longest stack name accepted: CloudFormation's limit (128); a
/// CloudWatch dimension value may be up to 1,024.
const MAX_STACK_NAME_LEN: usize = 128;

/// [`STACK_VARIABLE`] from `env`: `None` when unset (metrics then carry no
/// stack dimension), an error naming the variable when it is not 1 to 128
/// visible ASCII characters.
pub fn stack_name(env: &Env<'_>) -> Result<Option<String>, ConfigError> {
    let name = env.string(STACK_VARIABLE, "");
    if name.is_empty() {
        return Ok(None);
    }
    if name.len() > MAX_STACK_NAME_LEN || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::new(
            STACK_VARIABLE,
            "must be the stack's name: 1 to 128 visible ASCII characters",
        ));
    }
    Ok(Some(name))
}

/// Form-Bridge's own crates; only these log below `info`.
const OWN_TARGETS: &[&str] = &["shared", "authorizer", "ingest", "connectors", "formbridge"];

/// Installs the JSON log subscriber of a function, and checks the other
/// telemetry variable, [`STACK_VARIABLE`] (which [`Metrics::stdout`]
/// reads), so that a bad value stops start-up. The level comes from
/// `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging controls) or `LOG_LEVEL`,
/// default `info`, and applies to Form-Bridge's own code. Dependencies are
/// capped at `info`: at `trace`, `lambda_runtime` logs every raw event,
/// signature headers included, and the AWS SDK logs responses, which for
/// Secrets Manager hold the secrets. Calling it twice keeps the first
/// subscriber.
pub fn init_logging(env: &Env<'_>) -> Result<(), ConfigError> {
    stack_name(env)?;
    let _already_set = tracing_subscriber::registry()
        .with(log_filter(log_level(env)?))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false)
                .with_writer(std::io::stdout),
        )
        .try_init();
    Ok(())
}

/// Installs a plain-text log subscriber on stderr, for the command line
/// (the local gateway), with the same levels as [`init_logging`]: stdout is
/// kept for what the command prints for people.
pub fn init_text_logging(env: &Env<'_>) -> Result<(), ConfigError> {
    let _already_set = tracing_subscriber::registry()
        .with(log_filter(log_level(env)?))
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr),
        )
        .try_init();
    Ok(())
}

fn log_filter(level: LevelFilter) -> Targets {
    OWN_TARGETS.iter().fold(
        Targets::new().with_default(level.min(LevelFilter::INFO)),
        |t, own| t.with_target(*own, level),
    )
}

fn log_level(env: &Env<'_>) -> Result<LevelFilter, ConfigError> {
    for var in ["AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL"] {
        let raw = env.string(var, "");
        if raw.is_empty() {
            continue;
        }
        return match raw.to_ascii_lowercase().as_str() {
            "trace" => Ok(LevelFilter::TRACE),
            "debug" => Ok(LevelFilter::DEBUG),
            "info" => Ok(LevelFilter::INFO),
            "warn" => Ok(LevelFilter::WARN),
            "error" | "fatal" => Ok(LevelFilter::ERROR),
            "off" => Ok(LevelFilter::OFF),
            _ => Err(ConfigError::new(
                if var == "LOG_LEVEL" {
                    "LOG_LEVEL"
                } else {
                    "AWS_LAMBDA_LOG_LEVEL"
                },
                format!("{raw:?} is not one of trace, debug, info, warn, error, off"),
            )),
        };
    }
    Ok(LevelFilter::INFO)
}

/// Where metric lines go.
#[derive(Clone)]
enum Sink {
    Off,
    Stdout,
    Memory(Arc<Mutex<Vec<String>>>),
    Writer(Arc<Mutex<dyn std::io::Write + Send>>),
}

/// Writes EMF metric lines for one function (the `Function` dimension) of
/// one stack (the [`STACK_DIMENSION`], when known).
#[derive(Clone)]
pub struct Metrics {
    function: &'static str,
    stack: Option<Arc<str>>,
    sink: Sink,
}

/// Lines captured by [`Metrics::in_memory`].
#[derive(Clone, Default)]
pub struct CapturedMetrics(Arc<Mutex<Vec<String>>>);

impl CapturedMetrics {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// One dimension of a metric: name and value. Values must be low-cardinality
/// and never secret (tenant IDs, decision and reason codes).
pub type Dimension<'a> = (&'static str, &'a str);

impl Metrics {
    /// Metrics for `function` (the `Function` dimension), written to stdout:
    /// a Lambda function's. The stack comes from [`STACK_VARIABLE`] in the
    /// process environment, which [`init_logging`] has checked; a value it
    /// would refuse is left out rather than written.
    pub fn stdout(function: &'static str) -> Self {
        let stack = stack_name(&Env::process()).ok().flatten();
        Self {
            function,
            stack: stack.map(Arc::from),
            sink: Sink::Stdout,
        }
    }

    /// No metrics: nothing is formatted or written (the local gateway,
    /// which keeps its own counters).
    pub fn off(function: &'static str) -> Self {
        Self {
            function,
            stack: None,
            sink: Sink::Off,
        }
    }

    /// Metrics written to any writer (a file, or `io::sink()` to discard).
    pub fn to_writer(function: &'static str, writer: impl std::io::Write + Send + 'static) -> Self {
        Self {
            function,
            stack: None,
            sink: Sink::Writer(Arc::new(Mutex::new(writer))),
        }
    }

    /// Metrics kept in memory (tests, and the local gateway's summary).
    pub fn in_memory(function: &'static str) -> (Self, CapturedMetrics) {
        let captured = CapturedMetrics::default();
        let metrics = Self {
            function,
            stack: None,
            sink: Sink::Memory(Arc::clone(&captured.0)),
        };
        (metrics, captured)
    }

    /// The same metrics for the stack `stack`: every line carries it as the
    /// [`STACK_DIMENSION`], in every dimension set.
    #[must_use]
    pub fn with_stack(mut self, stack: &str) -> Self {
        self.stack = Some(Arc::from(stack));
        self
    }

    /// Counts one occurrence of `metric`. `dimensions` are the values;
    /// `sets` lists which combinations of them CloudWatch aggregates by
    /// (`Function`, and the stack when known, are added to every set).
    pub fn count(&self, metric: &str, dimensions: &[Dimension<'_>], sets: &[&[&str]]) {
        self.emit(&[Measure::count(metric, 1)], dimensions, sets);
    }

    /// Writes several measures with the same dimensions as one EMF line.
    pub fn emit(&self, measures: &[Measure<'_>], dimensions: &[Dimension<'_>], sets: &[&[&str]]) {
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let line = self.emf_line(measures, dimensions, sets);
        match &self.sink {
            Sink::Off => {}
            Sink::Stdout => {
                // A metric that cannot be written must not fail the request.
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Sink::Memory(lines) => lines.lock().unwrap_or_else(|e| e.into_inner()).push(line),
            Sink::Writer(w) => {
                let _ = w
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .write_all(line.as_bytes());
            }
        }
    }

    fn emf_line(
        &self,
        measures: &[Measure<'_>],
        dimensions: &[Dimension<'_>],
        sets: &[&[&str]],
    ) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            r#"{{"_aws":{{"Timestamp":{ms},"CloudWatchMetrics":[{{"Namespace":"{METRICS_NAMESPACE}","Dimensions":["#
        );
        for (i, set) in sets.iter().enumerate() {
            s.push_str(if i == 0 {
                "[\"Function\""
            } else {
                ",[\"Function\""
            });
            if self.stack.is_some() {
                s.push_str(",\"");
                s.push_str(STACK_DIMENSION);
                s.push('"');
            }
            for name in *set {
                s.push(',');
                push_json_str(&mut s, name);
            }
            s.push(']');
        }
        s.push_str(r#"],"Metrics":["#);
        for (i, m) in measures.iter().enumerate() {
            s.push_str(if i == 0 {
                r#"{"Name":"#
            } else {
                r#",{"Name":"#
            });
            push_json_str(&mut s, m.name);
            let _ = write!(s, r#","Unit":"{}"}}"#, m.unit.as_str());
        }
        s.push_str(r#"]}]},"Function":"#);
        push_json_str(&mut s, self.function);
        if let Some(stack) = &self.stack {
            s.push_str(",\"");
            s.push_str(STACK_DIMENSION);
            s.push_str("\":");
            push_json_str(&mut s, stack);
        }
        for (name, value) in dimensions {
            s.push(',');
            push_json_str(&mut s, name);
            s.push(':');
            push_json_str(&mut s, value);
        }
        for m in measures {
            s.push(',');
            push_json_str(&mut s, m.name);
            let value = if m.value.is_finite() { m.value } else { 0.0 };
            let _ = write!(s, ":{value}");
        }
        s.push_str("}\n");
        s
    }
}

/// A CloudWatch metric unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One value of an EMF line: metric name, value and unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure<'a> {
    /// The metric name.
    pub name: &'a str,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

impl<'a> Measure<'a> {
    /// `n` of `name`.
    pub fn count(name: &'a str, n: u32) -> Self {
        Self {
            name,
            value: f64::from(n),
            unit: Unit::Count,
        }
    }

    /// A duration, in milliseconds with microsecond precision.
    pub fn millis(name: &'a str, duration: std::time::Duration) -> Self {
        Self {
            name,
            value: (duration.as_micros() as f64) / 1000.0,
            unit: Unit::Milliseconds,
        }
    }
}

/// Appends `s` as a JSON string. Names, codes and tenant IDs need no
/// escaping, so they are copied as they are; anything else goes through
/// serde_json.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn emf_lines_are_valid_and_complete() {
        let (m, captured) = Metrics::in_memory("authorizer");
        m.count(
            "Authorizations",
            &[
                ("Decision", "deny"),
                ("Reason", "bad\"sig"),
                ("TenantId", "acme"),
            ],
            &[
                &["Decision"],
                &["Decision", "Reason"],
                &["TenantId", "Decision"],
            ],
        );
        let lines = captured.lines();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        let cw = &l["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "FormBridge");
        assert_eq!(cw["Metrics"][0]["Name"], "Authorizations");
        assert_eq!(
            cw["Dimensions"][1],
            serde_json::json!(["Function", "Decision", "Reason"])
        );
        assert!(l["_aws"]["Timestamp"].as_u64().expect("ms") > 1_600_000_000_000);
        assert_eq!(l["Function"], "authorizer");
        assert_eq!(l["Reason"], "bad\"sig");
        assert_eq!(l["Authorizations"], 1);
        // Every dimension named in a set is present at the top level, or
        // CloudWatch drops the metric.
        for set in cw["Dimensions"].as_array().expect("sets") {
            for d in set.as_array().expect("set") {
                assert!(l.get(d.as_str().expect("name")).is_some(), "{d}");
            }
        }
    }

    #[test]
    fn every_set_of_a_stacks_line_names_the_stack() {
        let (m, captured) = Metrics::in_memory("authorizer");
        let m = m.with_stack("form-bridge-prod");
        m.count(
            "Authorizations",
            &[("Decision", "deny"), ("Reason", "expired")],
            &[&["Decision"], &["Decision", "Reason"]],
        );
        m.count("Authorizations", &[], &[&[]]);
        for l in captured.lines() {
            assert_eq!(l["Stack"], "form-bridge-prod", "{l}");
            let sets = l["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .expect("sets")
                .clone();
            assert!(!sets.is_empty());
            for set in sets {
                let names: Vec<&str> = set
                    .as_array()
                    .expect("set")
                    .iter()
                    .filter_map(|d| d.as_str())
                    .collect();
                assert_eq!(names[..2], ["Function", "Stack"], "{l}");
            }
        }
        // Without a stack (unset), no dimension names one.
        let (m, captured) = Metrics::in_memory("ingest");
        m.count("Submissions", &[], &[&[]]);
        let l = &captured.lines()[0];
        assert!(l.get("Stack").is_none(), "{l}");
        assert_eq!(
            l["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function"]])
        );
    }

    #[test]
    fn the_stack_name_is_checked_at_start_up() {
        let map = |v: &str| -> HashMap<String, String> {
            [(STACK_VARIABLE.to_string(), v.to_string())].into()
        };
        let env = map("form-bridge");
        assert_eq!(
            stack_name(&Env::from_map(&env)),
            Ok(Some("form-bridge".to_owned()))
        );
        assert_eq!(stack_name(&Env::from_map(&HashMap::new())), Ok(None));
        assert_eq!(stack_name(&Env::from_map(&map(""))), Ok(None));
        for bad in ["two words", &"x".repeat(129), "caf\u{e9}"] {
            let env = map(bad);
            let err = stack_name(&Env::from_map(&env)).expect_err(bad);
            assert_eq!(err.variable, "STACK_NAME");
            let env = map(bad);
            assert!(init_logging(&Env::from_map(&env)).is_err(), "{bad}");
        }
    }

    #[test]
    fn several_measures_share_one_line() {
        let (m, captured) = Metrics::in_memory("ingest");
        m.emit(
            &[
                Measure::count("Submissions", 3),
                Measure::millis("PublishLatency", std::time::Duration::from_micros(12_345)),
            ],
            &[("TenantId", "acme")],
            &[&["TenantId"]],
        );
        let l = &captured.lines()[0];
        let cw = &l["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Metrics"][1]["Unit"], "Milliseconds");
        assert_eq!(l["Submissions"], 3.0);
        assert_eq!(l["PublishLatency"], 12.345);
    }

    #[test]
    fn dependencies_never_log_below_info() {
        let f = log_filter(LevelFilter::TRACE);
        assert!(f.would_enable("authorizer", &tracing::Level::TRACE));
        assert!(f.would_enable("shared::store::cache", &tracing::Level::DEBUG));
        assert!(!f.would_enable(
            "lambda_runtime::layers::api_response",
            &tracing::Level::TRACE
        ));
        assert!(!f.would_enable("aws_smithy_runtime", &tracing::Level::DEBUG));
        assert!(f.would_enable("aws_smithy_runtime", &tracing::Level::INFO));
        let quiet = log_filter(LevelFilter::WARN);
        assert!(!quiet.would_enable("lambda_runtime", &tracing::Level::INFO));
        assert!(!quiet.would_enable("authorizer", &tracing::Level::INFO));
    }

    #[test]
    fn log_level_comes_from_lambda_then_log_level() {
        let m: HashMap<String, String> =
            [("AWS_LAMBDA_LOG_LEVEL".to_string(), "DEBUG".to_string())].into();
        assert_eq!(log_level(&Env::from_map(&m)), Ok(LevelFilter::DEBUG));
        let m: HashMap<String, String> = [("LOG_LEVEL".to_string(), "loud".to_string())].into();
        let err = log_level(&Env::from_map(&m)).expect_err("invalid");
        assert_eq!(err.variable, "LOG_LEVEL");
        assert_eq!(
            log_level(&Env::from_map(&HashMap::new())),
            Ok(LevelFilter::INFO)
        );
    }
}
