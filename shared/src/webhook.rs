//! Standard Webhooks signing of deliveries (contract section 6).
//!
//! `webhook-signature` is `v1,` and the standard base64 of
//! HMAC-SHA256(secret key, `"{webhook-id}.{webhook-timestamp}.{body}"`),
//! where the key is the base64-decoded part of the tenant's `whsec_`
//! secret. Receivers verify it with any Standard Webhooks library.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::tenant::WebhookSecret;

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
    fn covers_id_timestamp_and_body() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = sign(&secret, "a", 1, b"{}");
        assert_ne!(base, sign(&secret, "b", 1, b"{}"));
        assert_ne!(base, sign(&secret, "a", 2, b"{}"));
        assert_ne!(base, sign(&secret, "a", 1, b"{ }"));
    }
}
