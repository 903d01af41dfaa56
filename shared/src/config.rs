//! Typed configuration from environment variables.
//!
//! Each binary defines its own `Config` and builds it with an [`Env`], which
//! reads through a lookup function: the process environment in `main`, a map
//! in tests. Every error names the variable and says what is wrong with it.
//! A variable set to the empty string counts as unset (templates often write
//! `""` to mean "use the default").

use std::collections::HashMap;
use std::time::Duration;

/// A missing or invalid environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {variable}: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    /// An error about `variable`.
    pub fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self {
            variable,
            reason: reason.into(),
        }
    }
}

/// A variable lookup: the value of a name, if set.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads configuration variables through a lookup function.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Env<'a> {
    /// Reads through `lookup`.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// Reads the process environment.
    pub fn process() -> Env<'static> {
        Env::new(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads a fixed map (tests).
    pub fn from_map(map: &'a HashMap<String, String>) -> Self {
        Env::new(move |name| map.get(name).cloned())
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// A string, or `default` when unset.
    pub fn string(&self, name: &'static str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    /// A string that must be set.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A whole number within `range`, or `default` when unset.
    pub fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let n: u64 = raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::new(name, format!("{raw:?} is not a whole number")))?;
        if !range.contains(&n) {
            return Err(ConfigError::new(
                name,
                format!("{n} is outside {}..={}", range.start(), range.end()),
            ));
        }
        Ok(n)
    }

    /// A duration given in whole seconds.
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// A duration given in whole milliseconds.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_millis)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, any case), or `default`.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::new(
                name,
                format!("{raw:?} is not true or false"),
            )),
        }
    }

    /// A Secrets Manager name prefix: the characters Secrets Manager allows
    /// in names (`A-Z a-z 0-9 / _ + = . @ -`), short enough to leave room
    /// for a tenant ID.
    pub fn secret_prefix(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let prefix = self.string(name, default);
        let valid = prefix.len() <= 512 - crate::tenant_id::MAX_TENANT_ID_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if valid {
            Ok(prefix)
        } else {
            Err(ConfigError::new(
                name,
                "must be at most 449 characters of A-Z a-z 0-9 / _ + = . @ -",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let map = env(&[("B", "")]);
        let e = Env::from_map(&map);
        assert_eq!(e.seconds("A", 300, 0..=3600), Ok(Duration::from_secs(300)));
        assert_eq!(e.number("B", 7, 0..=10), Ok(7));
        assert_eq!(e.string("C", "x"), "x");
        assert_eq!(e.flag("D", false), Ok(false));
    }

    #[test]
    fn values_are_parsed_and_checked() {
        let map = env(&[("S", "60"), ("M", "250"), ("F", "TRUE"), ("P", "tenants/")]);
        let e = Env::from_map(&map);
        assert_eq!(e.seconds("S", 1, 0..=3600), Ok(Duration::from_secs(60)));
        assert_eq!(e.millis("M", 1, 1..=1000), Ok(Duration::from_millis(250)));
        assert_eq!(e.flag("F", false), Ok(true));
        assert_eq!(e.secret_prefix("P", "x/").as_deref(), Ok("tenants/"));
    }

    #[test]
    fn errors_name_the_variable_and_the_problem() {
        let map = env(&[
            ("N", "ten"),
            ("R", "99999"),
            ("F", "maybe"),
            ("P", "bad prefix!"),
        ]);
        let e = Env::from_map(&map);
        let cases = [
            (
                e.number("N", 1, 0..=10).expect_err("nan"),
                "N",
                "not a whole number",
            ),
            (
                e.number("R", 1, 0..=10).expect_err("range"),
                "R",
                "outside 0..=10",
            ),
            (
                e.flag("F", true).expect_err("flag"),
                "F",
                "not true or false",
            ),
            (e.secret_prefix("P", "").expect_err("prefix"), "P", "A-Z"),
            (
                e.required("MISSING").expect_err("required"),
                "MISSING",
                "required",
            ),
        ];
        for (err, var, why) in cases {
            assert_eq!(err.variable, var);
            let text = err.to_string();
            assert!(text.contains(var) && text.contains(why), "{text}");
        }
    }
}
