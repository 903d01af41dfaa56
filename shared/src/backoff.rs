//! Waiting between retries: capped exponential backoff with full jitter,
//! and reading a server's `Retry-After`.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Full jitter: a random delay between zero and `base` doubled for each
/// retry after the first, capped at `max`. `retry` is 1-based.
///
/// Jitter spreads the retries of many callers that failed together, so
/// they do not return together (AWS Architecture Blog, "Exponential
/// Backoff And Jitter").
pub fn full_jitter(base: Duration, max: Duration, retry: u32) -> Duration {
    ceiling(base, max, retry).mul_f64(fastrand::f64())
}

/// Equal jitter: half of the capped exponential backoff, plus a random
/// part up to the other half. For waits that must not collapse to zero
/// (the local gateway's redeliveries, which count against a receive limit).
pub fn equal_jitter(base: Duration, max: Duration, retry: u32) -> Duration {
    let ceiling = ceiling(base, max, retry) / 2;
    ceiling + ceiling.mul_f64(fastrand::f64())
}

/// `base` doubled for each retry after the first, capped at `max`.
fn ceiling(base: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// IMF-fixdate, the HTTP date format (RFC 9110 section 5.6.7).
const HTTP_DATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Reads a `Retry-After` value (RFC 9110 section 10.2.3): whole seconds, or
/// an HTTP date taken relative to `now` (a date in the past is zero).
/// `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = time::PrimitiveDateTime::parse(value, HTTP_DATE)
        .ok()?
        .assume_utc();
    let now = OffsetDateTime::from(now);
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_is_capped_and_spread() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let mut seen = std::collections::BTreeSet::new();
        for retry in [1, 2, 3, 4, 10, 40, u32::MAX] {
            for _ in 0..50 {
                let d = full_jitter(base, max, retry);
                let cap = base
                    .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
                    .min(max);
                assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
                seen.insert(d);
            }
        }
        assert!(seen.len() > 100, "jittered");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:50:07 PST",
            "99999999999999999999999",
        ] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }
}
