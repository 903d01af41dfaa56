//! Standard Webhooks (and Svix, its origin): `webhook-id`,
//! `webhook-timestamp` (seconds) and `webhook-signature`, a space-separated
//! list of `v1,<base64 HMAC-SHA256>` over `{id}.{timestamp}.{body}`, keyed
//! with the base64-decoded part of the secret after an optional `whsec_`
//! (the specification, and its reference libraries). Svix senders (Clerk,
//! Resend, ...) send `svix-id`, `svix-timestamp` and `svix-signature`,
//! which the Svix library reads first; so does this.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::Mac;

use super::common::{self, Encoding, Tags, Unit};
use super::{HmacSha256, Key, Request, SignRequest, Signed, SourceError, Verified, Verifier};
use crate::secret::Secret;

/// The family has one member.
#[derive(Debug)]
pub(crate) struct StandardWebhooks {
    tolerance_secs: i64,
}

/// The only provider of the family; the tolerance is the libraries'.
pub(crate) const STANDARD_WEBHOOKS: StandardWebhooks = StandardWebhooks {
    tolerance_secs: 300,
};

/// A set of headers: id, timestamp, signature.
struct HeaderSet {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

/// Tried in order; the first whose id header is present is used whole.
const HEADER_SETS: [HeaderSet; 2] = [
    HeaderSet {
        id: "svix-id",
        timestamp: "svix-timestamp",
        signature: "svix-signature",
    },
    HeaderSet {
        id: "webhook-id",
        timestamp: "webhook-timestamp",
        signature: "webhook-signature",
    },
];

const SIGNATURE_RULE: &str = "a space-separated list of v1,<base64 HMAC-SHA256> entries";
const ID_RULE: &str = "1 to 255 printable ASCII characters";

/// Secrets are written with or without padding; the Python library adds
/// `==` before decoding, so both are accepted here.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn feed(mac: &mut HmacSha256, id: &str, ts: &str, body: &[u8]) {
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
}

impl Verifier for StandardWebhooks {
    fn prepare(&self, secret: &Secret) -> Result<Key, &'static str> {
        let text = secret.expose();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|_| "must be whsec_ followed by standard base64")?;
        if key.is_empty() {
            return Err("must be whsec_ followed by standard base64 of at least one byte");
        }
        Ok(Key::mac(&key))
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        keys: &[Key],
        now: i64,
    ) -> Result<Verified<'a>, SourceError> {
        let set = HEADER_SETS
            .iter()
            .find(|set| (request.headers)(set.id).is_some())
            .unwrap_or(&HEADER_SETS[1]);
        let id = request.header(set.id)?;
        let ts_text = request.header(set.timestamp)?;
        let value = request.header(set.signature)?;
        if !common::valid_id(id) {
            return Err(SourceError::MalformedHeader {
                header: set.id,
                rule: ID_RULE,
            });
        }
        let tags = parse_signatures(value, set.signature)?;
        let ts = common::timestamp(ts_text, set.timestamp, Unit::Seconds)?;
        common::within_tolerance(ts, Unit::Seconds, now, self.tolerance_secs, set.timestamp)?;
        if !common::any_matches(keys, &tags, |mac| feed(mac, id, ts_text, request.body)) {
            return Err(SourceError::Mismatch(set.signature));
        }
        Ok(Verified::new(Some(id), true, Some(ts)))
    }

    fn body_event_id(&self, _json: &str) -> Option<String> {
        // `webhook-id` is the key, and it is signed.
        None
    }

    fn tolerance_secs(&self) -> Option<i64> {
        Some(self.tolerance_secs)
    }

    fn sign(
        &self,
        secret: &Secret,
        request: &SignRequest<'_>,
        now: i64,
    ) -> Result<Signed, &'static str> {
        let key = self.prepare(secret)?;
        let ts = Unit::Seconds.format(now);
        let tag = common::tag_of(&key, |mac| {
            feed(mac, request.delivery_id, &ts, request.body)
        });
        Ok(Signed {
            headers: vec![
                ("webhook-id", request.delivery_id.to_owned()),
                ("webhook-timestamp", ts),
                (
                    "webhook-signature",
                    format!("v1,{}", Encoding::Base64.encode(&tag)),
                ),
            ],
            query: None,
        })
    }
}

/// Reads `v1,<base64>` entries separated by single spaces; other versions
/// (`v1a`, ed25519) are skipped, at least one `v1` is required, and each
/// `v1` must be exactly one MAC.
fn parse_signatures(value: &str, header: &'static str) -> Result<Tags, SourceError> {
    let malformed = SourceError::MalformedHeader {
        header,
        rule: SIGNATURE_RULE,
    };
    if !common::bounded(value) {
        return Err(malformed);
    }
    let mut tags = Tags::new();
    for (i, entry) in value.split(' ').enumerate() {
        if i >= common::MAX_SIGNATURES {
            return Err(malformed);
        }
        let (version, sig) = entry.split_once(',').ok_or(malformed)?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed);
        }
        if version == "v1" {
            tags.push(Encoding::Base64.decode(sig).ok_or(malformed)?);
        }
    }
    if tags.is_empty() {
        return Err(malformed);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TestRequest, verify};
    use super::*;

    fn request(secret_sig: &str, id: &str, ts: &str, body: &[u8]) -> TestRequest {
        TestRequest::new(body)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", secret_sig)
    }

    /// The vector every reference library tests ("sign function works":
    /// JavaScript `webhook.test.ts`, Go `TestWebhookSign`, Python
    /// `test_sign_function`).
    #[test]
    fn published_vector() {
        let req = request(
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
        let (id, signed) = verify(&req, "standard-webhooks", &secret, 1_614_265_330).expect("ok");
        assert_eq!(id.as_deref(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
        assert!(signed);
        // The prefix is optional, and the key is the decoded bytes.
        assert!(
            verify(
                &req,
                "standard-webhooks",
                &["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                1_614_265_330
            )
            .is_ok()
        );
    }

    /// The Rust library's `test_sign` vector.
    #[test]
    fn rust_library_vector() {
        let req = request(
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        let secret = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"];
        assert!(verify(&req, "standard-webhooks", &secret, 1_649_367_553).is_ok());
    }

    #[test]
    fn svix_headers_are_read_first() {
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let svix = TestRequest::new(br#"{"test": 2432232314}"#)
            .header("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
            .header("svix-timestamp", "1614265330")
            .header("svix-signature", good);
        assert!(verify(&svix, "standard-webhooks", &secret, 1_614_265_330).is_ok());
        // With svix-id present, a missing svix-signature is not filled from
        // the webhook-* set.
        let mixed = TestRequest::new(br#"{"test": 2432232314}"#)
            .header("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
            .header("svix-timestamp", "1614265330")
            .header("webhook-signature", good);
        assert_eq!(
            verify(&mixed, "standard-webhooks", &secret, 1_614_265_330),
            Err(SourceError::MissingHeader("svix-signature"))
        );
    }

    /// The libraries' negative cases: an invalid, truncated or empty `v1`,
    /// and an unknown version alone.
    #[test]
    fn library_negative_cases() {
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
        for bad in [
            "v1,dawfeoifkpqwoekfpqoekf",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",
            "v1,",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "",
        ] {
            let req = request(
                bad,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                br#"{"test": 2432232314}"#,
            );
            assert!(
                matches!(
                    verify(&req, "standard-webhooks", &secret, 1_614_265_330),
                    Err(SourceError::MalformedHeader {
                        header: "webhook-signature",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn skips_v1a_and_accepts_any_v1() {
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let other = format!("v1,{}", Encoding::Base64.encode(&[1; 32]));
        let v1a = format!("v1a,{}", "A".repeat(86) + "==");
        let list = format!("{v1a} {other} {good}");
        let req = request(
            &list,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert!(verify(&req, "standard-webhooks", &secret, 1_614_265_330).is_ok());
    }

    #[test]
    fn secrets_must_decode() {
        for bad in ["whsec_", "whsec_not base64!", "whsec_%%%%"] {
            assert!(
                STANDARD_WEBHOOKS.prepare(&Secret::new(bad)).is_err(),
                "{bad:?}"
            );
        }
        // Unpadded is accepted, as the Python library accepts it.
        assert!(
            STANDARD_WEBHOOKS
                .prepare(&Secret::new("whsec_AAAAAA"))
                .is_ok()
        );
    }

    #[test]
    fn id_must_be_printable_ascii() {
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"];
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        for bad in ["", "msg\u{1}", &"m".repeat(256)] {
            let req = request(good, bad, "1614265330", br#"{"test": 2432232314}"#);
            assert_eq!(
                verify(&req, "standard-webhooks", &secret, 1_614_265_330),
                Err(SourceError::MalformedHeader {
                    header: "webhook-id",
                    rule: ID_RULE
                }),
                "{bad:?}"
            );
        }
    }
}
