//! `Retry-After` (RFC 9110, section 10.2.3) as the connector reads a
//! tenant endpoint's answer, and the backoff it falls back to.
//!
//! Input: the header value; its first 12 bytes also give a base delay, a
//! cap and a retry number for the jitter functions.
//! Asserts: nothing panics; whole seconds read as exactly that many
//! seconds; a date never reads as more than the span from now to the
//! latest date the format can write; jittered waits stay under their cap.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shared::backoff::{equal_jitter, full_jitter, retry_after};

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let wait = retry_after(&value, fuzz::now());
    if let Ok(seconds) = value.trim().parse::<u64>() {
        assert_eq!(wait, Some(Duration::from_secs(seconds)));
    } else if let Some(wait) = wait {
        // An IMF-fixdate: at most year 9999, 8,000 years from now.
        assert!(
            wait <= Duration::from_secs(8_000 * 366 * 86_400),
            "{wait:?}"
        );
    }

    let mut bytes = [0u8; 12];
    for (slot, b) in bytes.iter_mut().zip(data) {
        *slot = *b;
    }
    let base = Duration::from_millis(u64::from(u32::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3],
    ])));
    let max = Duration::from_millis(u64::from(u32::from_le_bytes([
        bytes[4], bytes[5], bytes[6], bytes[7],
    ])));
    let retry = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    assert!(full_jitter(base, max, retry) <= max);
    assert!(equal_jitter(base, max, retry) <= max);
});
