//! What every family shares: signature decoding, canonical timestamps, the
//! tolerance check and the constant-time match of keys against tags.

use base64::Engine as _;
use hmac::Mac;
use subtle::{Choice, ConstantTimeEq};

use super::{HmacSha256, Key, SourceError};

/// Most signatures one header may carry (entries of any version count).
pub const MAX_SIGNATURES: usize = 8;
/// Longest signature header parsed; longer is malformed before any work.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 1024;
/// Longest timestamp accepted: 18 digits always fit an `i64`.
const MAX_TIMESTAMP_LEN: usize = 18;

/// An HMAC-SHA256 tag.
pub(crate) type Tag = [u8; 32];

/// The decoded signatures of one request, without allocating.
pub(crate) struct Tags {
    tags: [Tag; MAX_SIGNATURES],
    len: usize,
}

impl Tags {
    pub(crate) fn new() -> Self {
        Self {
            tags: [[0; 32]; MAX_SIGNATURES],
            len: 0,
        }
    }

    /// Adds a tag; `false` when the header already had the most allowed.
    pub(crate) fn push(&mut self, tag: Tag) -> bool {
        match self.tags.get_mut(self.len) {
            Some(slot) => {
                *slot = tag;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_slice(&self) -> &[Tag] {
        &self.tags[..self.len]
    }
}

/// How a provider writes its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Hexadecimal, 64 digits (lowercase when signing).
    Hex,
    /// Standard base64 with padding, 44 characters.
    Base64,
}

impl Encoding {
    /// The tag `value` encodes, or `None` if it is not exactly one tag.
    pub(crate) fn decode(self, value: &str) -> Option<Tag> {
        let mut tag = [0u8; 32];
        match self {
            Self::Hex => hex::decode_to_slice(value, &mut tag).ok()?,
            Self::Base64 => {
                if value.len() != 44 {
                    return None;
                }
                let n = base64::engine::general_purpose::STANDARD
                    .decode_slice(value, &mut tag)
                    .ok()?;
                if n != tag.len() {
                    return None;
                }
            }
        }
        Some(tag)
    }

    pub(crate) fn encode(self, tag: &Tag) -> String {
        match self {
            Self::Hex => hex::encode(tag),
            Self::Base64 => base64::engine::general_purpose::STANDARD.encode(tag),
        }
    }
}

/// The unit of a provider's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn per_second(self) -> i64 {
        match self {
            Self::Seconds => 1,
            Self::Millis => 1000,
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Seconds => {
                "a Unix time in seconds: decimal digits, no sign, spaces or leading zeros"
            }
            Self::Millis => {
                "a Unix time in milliseconds: decimal digits, no sign, spaces or leading zeros"
            }
        }
    }

    /// `now` (Unix seconds) in this unit, as a sender writes it.
    pub(crate) fn format(self, now: i64) -> String {
        now.saturating_mul(self.per_second()).to_string()
    }
}

/// Parses a timestamp in its canonical form only: SDKs disagree on whether
/// they sign the header text or a re-formatted integer, and they agree only
/// when the text is plain digits without a leading zero.
pub(crate) fn timestamp(value: &str, header: &'static str, unit: Unit) -> Result<i64, SourceError> {
    let bytes = value.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.len() <= MAX_TIMESTAMP_LEN
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if !canonical {
        return Err(SourceError::MalformedTimestamp {
            header,
            rule: unit.rule(),
        });
    }
    value.parse().map_err(|_| SourceError::MalformedTimestamp {
        header,
        rule: unit.rule(),
    })
}

/// Refuses a timestamp further than `tolerance_secs` from `now` (Unix
/// seconds), either way.
pub(crate) fn within_tolerance(
    ts: i64,
    unit: Unit,
    now: i64,
    tolerance_secs: i64,
    header: &'static str,
) -> Result<(), SourceError> {
    let scale = unit.per_second();
    let now = now.saturating_mul(scale);
    let window = tolerance_secs.saturating_mul(scale);
    let age = now.saturating_sub(ts);
    if age > window {
        return Err(SourceError::Stale {
            header,
            age_secs: age / scale,
            window_secs: tolerance_secs,
        });
    }
    if age < window.saturating_neg() {
        return Err(SourceError::Future {
            header,
            ahead_secs: ts.saturating_sub(now) / scale,
            window_secs: tolerance_secs,
        });
    }
    Ok(())
}

/// Whether any key's MAC over what `feed` writes equals any tag. Every key
/// is computed and every pair compared, so the time taken does not depend
/// on which (if any) matched.
pub(crate) fn any_matches(keys: &[Key], tags: &Tags, feed: impl Fn(&mut HmacSha256)) -> bool {
    let mut matched = Choice::from(0);
    for mac in keys.iter().filter_map(Key::as_mac) {
        let mut mac = mac.clone();
        feed(&mut mac);
        let tag: Tag = mac.finalize().into_bytes().into();
        for presented in tags.as_slice() {
            matched |= tag.ct_eq(presented);
        }
    }
    bool::from(matched)
}

/// The MAC of what `feed` writes, under `key` (for signing).
pub(crate) fn tag_of(key: &Key, feed: impl Fn(&mut HmacSha256)) -> Tag {
    let mut mac = match key.as_mac() {
        Some(mac) => mac.clone(),
        None => unreachable!("signing families prepare MAC keys"),
    };
    feed(&mut mac);
    mac.finalize().into_bytes().into()
}

/// Whether `id` can serve as an idempotency key: 1 to 255 printable ASCII
/// characters, as an `Idempotency-Key` header must be.
pub(crate) fn valid_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Whether a header is short enough to parse.
pub(crate) fn bounded(value: &str) -> bool {
    value.len() <= MAX_SIGNATURE_HEADER_LEN
}

/// A secret used as an HMAC key as its UTF-8 bytes: any but an empty one.
pub(crate) fn mac_key(secret: &crate::secret::Secret) -> Result<Key, &'static str> {
    if secret.expose().is_empty() {
        return Err("must not be empty");
    }
    Ok(Key::mac(secret.expose().as_bytes()))
}

/// The one MAC in a signature header of the shape `{prefix}{encoded MAC}`,
/// or [`SourceError::MalformedHeader`] naming `header` and `rule`.
pub(crate) fn single_tag(
    value: &str,
    prefix: &str,
    encoding: Encoding,
    header: &'static str,
    rule: &'static str,
) -> Result<Tag, SourceError> {
    value
        .strip_prefix(prefix)
        .filter(|_| bounded(value))
        .and_then(|encoded| encoding.decode(encoded))
        .ok_or(SourceError::MalformedHeader { header, rule })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_must_be_canonical_digits() {
        for ok in ["0", "1", "1614265330", "999999999999999999"] {
            assert!(timestamp(ok, "t", Unit::Seconds).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "01614265330",
            "+1614265330",
            "-1",
            " 1614265330",
            "1614265330 ",
            "1614265330.0",
            "1e9",
            "٣",
            "9999999999999999999",
        ] {
            assert!(
                matches!(
                    timestamp(bad, "t", Unit::Seconds),
                    Err(SourceError::MalformedTimestamp { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tolerance_is_checked_both_ways_and_in_the_unit() {
        let h = "t";
        assert!(within_tolerance(1000, Unit::Seconds, 1300, 300, h).is_ok());
        assert!(within_tolerance(1000, Unit::Seconds, 700, 300, h).is_ok());
        assert_eq!(
            within_tolerance(1000, Unit::Seconds, 1301, 300, h),
            Err(SourceError::Stale {
                header: h,
                age_secs: 301,
                window_secs: 300
            })
        );
        assert_eq!(
            within_tolerance(1000, Unit::Seconds, 699, 300, h),
            Err(SourceError::Future {
                header: h,
                ahead_secs: 301,
                window_secs: 300
            })
        );
        assert!(within_tolerance(1_000_000, Unit::Millis, 1300, 300, h).is_ok());
        assert!(within_tolerance(1_000_000, Unit::Millis, 1301, 300, h).is_err());
        assert!(within_tolerance(1_000_000, Unit::Millis, 699, 300, h).is_err());
        // Extreme clocks saturate rather than overflow.
        assert!(within_tolerance(i64::MAX, Unit::Millis, i64::MIN, 300, h).is_err());
        assert!(within_tolerance(0, Unit::Millis, i64::MAX, 300, h).is_err());
    }

    #[test]
    fn tags_decode_only_at_their_exact_length() {
        let tag = [7u8; 32];
        for enc in [Encoding::Hex, Encoding::Base64] {
            let text = enc.encode(&tag);
            assert_eq!(enc.decode(&text), Some(tag));
            assert_eq!(enc.decode(&text[1..]), None);
            assert_eq!(enc.decode(&format!("{text}A")), None);
            assert_eq!(enc.decode(""), None);
        }
        assert_eq!(Encoding::Base64.decode(&"A".repeat(44)), None);
    }

    #[test]
    fn ids_are_printable_ascii_up_to_255() {
        assert!(valid_id("evt_1") && valid_id(&"a".repeat(255)));
        assert!(!valid_id("") && !valid_id(&"a".repeat(256)));
        assert!(!valid_id("a\nb") && !valid_id("é"));
    }
}
