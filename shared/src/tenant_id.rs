//! The tenant identifier, valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest accepted tenant ID (it becomes part of a DNS-safe secret name).
pub const MAX_TENANT_ID_LEN: usize = 63;

/// A tenant identifier: 1 to 63 characters of `[a-z0-9-]`, starting and
/// ending with a letter or digit (docs/protocol.md, section 1).
///
/// Only valid values can be constructed, so code holding a `TenantId` never
/// has to re-check it, and an invalid one is rejected before any secret
/// lookup.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(Box<str>);

/// Why a string is not a valid [`TenantId`]. Carries no part of the input, so
/// it is safe to log whatever the sender put in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// The string is empty.
    #[error("tenant ID is empty")]
    Empty,
    /// The string is longer than [`MAX_TENANT_ID_LEN`].
    #[error("tenant ID is longer than {MAX_TENANT_ID_LEN} characters")]
    TooLong,
    /// A character outside `[a-z0-9-]`.
    #[error("tenant ID may only contain a-z, 0-9 and '-'")]
    InvalidCharacter,
    /// Starts or ends with `-`.
    #[error("tenant ID must start and end with a letter or digit")]
    EdgeHyphen,
}

impl TenantId {
    /// Validates `s` as a tenant ID.
    pub fn parse(s: &str) -> Result<Self, TenantIdError> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if bytes.len() > MAX_TENANT_ID_LEN {
            return Err(TenantIdError::TooLong);
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return Err(TenantIdError::InvalidCharacter);
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err(TenantIdError::EdgeHyphen);
        }
        Ok(Self(s.into()))
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_examples() {
        for ok in ["acme", "a", "0", "acme-corp", "a1-b2-c3", &"a".repeat(63)] {
            assert_eq!(
                TenantId::parse(ok).map(|t| t.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        let cases = [
            ("", TenantIdError::Empty),
            (&*"a".repeat(64), TenantIdError::TooLong),
            ("Acme", TenantIdError::InvalidCharacter),
            ("ac_me", TenantIdError::InvalidCharacter),
            ("ac me", TenantIdError::InvalidCharacter),
            ("acme/../x", TenantIdError::InvalidCharacter),
            ("acmé", TenantIdError::InvalidCharacter),
            ("-acme", TenantIdError::EdgeHyphen),
            ("acme-", TenantIdError::EdgeHyphen),
            ("-", TenantIdError::EdgeHyphen),
        ];
        for (input, want) in cases {
            assert_eq!(TenantId::parse(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn deserializes_only_valid_ids() {
        let ok: TenantId = serde_json::from_str(r#""acme""#).expect("valid");
        assert_eq!(ok.as_str(), "acme");
        assert!(serde_json::from_str::<TenantId>(r#""ACME""#).is_err());
    }
}
