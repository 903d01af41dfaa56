//! Standard Webhooks signing of deliveries (docs/protocol.md, section 6).
//!
//! `webhook-signature` is `v1,` and the standard base64 of
//! HMAC-SHA256(secret key, `"{webhook-id}.{webhook-timestamp}.{body}"`),
//! where the key is the base64-decoded part of the tenant's `whsec_`
//! secret. Receivers verify it with any Standard Webhooks library.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::tenant::WebhookSecret;

/// How far a delivery's `webhook-timestamp` may be from the receiver's
/// clock, the Standard Webhooks default.
pub const DEFAULT_TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery failed verification. Never quotes a header or the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookVerifyError {
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    /// `webhook-timestamp` is further from now than the tolerance.
    #[error("webhook-timestamp is outside the tolerance")]
    OutsideTolerance,
    /// No `v1,` signature in `webhook-signature` matches.
    #[error("no v1 signature matches")]
    NoMatch,
}

/// Verifies one delivery as a Standard Webhooks receiver does:
/// `webhook-timestamp` within `tolerance_seconds` of `now`, and one of the
/// space-separated `v1,<base64>` entries of `webhook-signature` matching
/// (compared in constant time).
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), WebhookVerifyError> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| WebhookVerifyError::MalformedTimestamp)?;
    if now.abs_diff(ts) > tolerance_seconds.unsigned_abs() {
        return Err(WebhookVerifyError::OutsideTolerance);
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.key())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let engine = base64::engine::general_purpose::STANDARD;
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| engine.decode(b64).ok())
        .any(|tag| mac.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(WebhookVerifyError::NoMatch)
    }
}

/// The `webhook-signature` header value for one delivery: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.key())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 44);
    out.push_str("v1,");
    base64::engine::general_purpose::STANDARD.encode_string(tag, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verifies_the_test_vector_and_refuses_changes() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let now = 1_614_265_330;
        assert_eq!(verify(&secret, id, ts, good, body, now, 300), Ok(()));
        let rotated = format!("v1,bm90IGl0 {good}");
        assert_eq!(
            verify(&secret, id, ts, &rotated, body, now + 300, 300),
            Ok(())
        );
        assert_eq!(
            verify(&secret, id, ts, good, b"{}", now, 300),
            Err(WebhookVerifyError::NoMatch)
        );
        assert_eq!(
            verify(&secret, "msg_other", ts, good, body, now, 300),
            Err(WebhookVerifyError::NoMatch)
        );
        assert_eq!(
            verify(&secret, id, ts, "v2,abc", body, now, 300),
            Err(WebhookVerifyError::NoMatch)
        );
        assert_eq!(
            verify(&secret, id, ts, good, body, now + 301, 300),
            Err(WebhookVerifyError::OutsideTolerance)
        );
        assert_eq!(
            verify(&secret, id, "soon", good, body, now, 300),
            Err(WebhookVerifyError::MalformedTimestamp)
        );
    }

    #[test]
    fn covers_id_timestamp_and_body() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = sign(&secret, "a", 1, b"{}");
        assert_ne!(base, sign(&secret, "b", 1, b"{}"));
        assert_ne!(base, sign(&secret, "a", 2, b"{}"));
        assert_ne!(base, sign(&secret, "a", 1, b"{ }"));
    }
}
