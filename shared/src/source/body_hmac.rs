//! Providers that sign the raw body alone: one header holding an optional
//! prefix and HMAC-SHA256(secret as UTF-8, body) in hex or base64. No
//! timestamp is signed, so a captured request stays valid: only idempotency
//! stops a replay.

use hmac::Mac;

use super::common::{self, Encoding, Tags};
use super::event_id::BodyId;
use super::{Key, Request, SignRequest, Signed, SourceError, Verified, Verifier};
use crate::secret::Secret;

/// One provider of the family.
#[derive(Debug)]
pub(crate) struct BodyHmac {
    /// The signature header, lowercase.
    header: &'static str,
    /// What precedes the MAC in the header (`sha256=`), or `""`.
    prefix: &'static str,
    /// The rule a malformed header breaks, for the error message.
    rule: &'static str,
    encoding: Encoding,
    /// Headers carrying a delivery ID, in order of preference (none signed).
    delivery_ids: &'static [&'static str],
    /// The header naming the event's type when the body does not (GitHub
    /// `X-GitHub-Event`, Shopify `X-Shopify-Topic`).
    event_type: Option<&'static str>,
    body_id: BodyId,
}

/// Typeform: `Typeform-Signature: sha256=<base64>` (developers' guide,
/// "Secure your webhooks"). The event ID is the body's `event_id`.
pub(crate) const TYPEFORM: BodyHmac = BodyHmac {
    header: "typeform-signature",
    prefix: "sha256=",
    rule: "sha256= and the base64 of an HMAC-SHA256",
    encoding: Encoding::Base64,
    delivery_ids: &[],
    event_type: None,
    body_id: BodyId::Field(&[&["event_id"]]),
};

/// Tally: `Tally-Signature: <base64>` (help centre, "Webhooks"). The event
/// ID is the body's `eventId`.
pub(crate) const TALLY: BodyHmac = BodyHmac {
    header: "tally-signature",
    prefix: "",
    rule: "the base64 of an HMAC-SHA256",
    encoding: Encoding::Base64,
    delivery_ids: &[],
    event_type: None,
    body_id: BodyId::Field(&[&["eventId"]]),
};

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` ("Validating webhook
/// deliveries"). `X-GitHub-Delivery` stays the same on a redelivery.
pub(crate) const GITHUB: BodyHmac = BodyHmac {
    header: "x-hub-signature-256",
    prefix: "sha256=",
    rule: "sha256= and the hex of an HMAC-SHA256",
    encoding: Encoding::Hex,
    delivery_ids: &["x-github-delivery"],
    event_type: Some("x-github-event"),
    body_id: BodyId::None,
};

/// Shopify: `X-Shopify-Hmac-Sha256: <base64>` (shopify-api-js
/// `hmac-validator.ts`). Duplicates share `X-Shopify-Event-Id`, which is
/// optional; `X-Shopify-Webhook-Id` is the fallback.
pub(crate) const SHOPIFY: BodyHmac = BodyHmac {
    header: "x-shopify-hmac-sha256",
    prefix: "",
    rule: "the base64 of an HMAC-SHA256",
    encoding: Encoding::Base64,
    delivery_ids: &["x-shopify-event-id", "x-shopify-webhook-id"],
    event_type: Some("x-shopify-topic"),
    body_id: BodyId::None,
};

impl Verifier for BodyHmac {
    fn prepare(&self, secret: &Secret) -> Result<Key, &'static str> {
        common::mac_key(secret)
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        keys: &[Key],
        _now: i64,
    ) -> Result<Verified<'a>, SourceError> {
        let value = request.header(self.header)?;
        let tag = common::single_tag(value, self.prefix, self.encoding, self.header, self.rule)?;
        let mut tags = Tags::new();
        tags.push(tag);
        if !common::any_matches(keys, &tags, |mac| mac.update(request.body)) {
            return Err(SourceError::Mismatch(self.header));
        }
        let delivery_id = self
            .delivery_ids
            .iter()
            .find_map(|name| (request.headers)(name).filter(|id| common::valid_id(id)));
        let event_type = self.event_type.and_then(|name| (request.headers)(name));
        Ok(Verified::new(delivery_id, false, None).with_event_type(event_type))
    }

    fn body_event_id(&self, json: &str) -> Option<String> {
        self.body_id.find(json)
    }

    fn tolerance_secs(&self) -> Option<i64> {
        None
    }

    fn sign(
        &self,
        secret: &Secret,
        request: &SignRequest<'_>,
        _now: i64,
    ) -> Result<Signed, &'static str> {
        let key = self.prepare(secret)?;
        let tag = common::tag_of(&key, |mac| mac.update(request.body));
        let mut headers = vec![(
            self.header,
            format!("{}{}", self.prefix, self.encoding.encode(&tag)),
        )];
        if let Some(name) = self.delivery_ids.first() {
            headers.push((name, request.delivery_id.to_owned()));
        }
        Ok(Signed {
            headers,
            query: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TestRequest, verify};
    use super::*;

    /// GitHub's published vector ("Testing the webhook payload validation",
    /// docs `validating-webhook-deliveries.md`).
    #[test]
    fn github_published_vector() {
        let req = TestRequest::new(b"Hello, World!").header(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        );
        assert!(verify(&req, "github", &["It's a Secret to Everybody"], 0).is_ok());
        assert_eq!(
            verify(&req, "github", &["It's a Secret to Everybody!"], 0),
            Err(SourceError::Mismatch("x-hub-signature-256"))
        );
    }

    /// octokit/webhooks-methods.js `test/verify.test.ts`.
    #[test]
    fn github_octokit_vector() {
        let req = TestRequest::new(br#"{"foo":"bar"}"#).header(
            "x-hub-signature-256",
            "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
        );
        assert!(verify(&req, "github", &["mysecret"], 0).is_ok());
    }

    /// Shopify/shopify-api-js `lib/webhooks/__tests__/validate.test.ts`,
    /// with the secret from `lib/__tests__/test-config.ts`.
    #[test]
    fn shopify_sdk_vector() {
        let req = TestRequest::new(br#"{"foo": "bar"}"#)
            .header(
                "X-Shopify-Hmac-Sha256",
                "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
            )
            .header(
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            );
        let verified = verify(&req, "shopify", &["test_secret_key"], 0).expect("valid");
        assert_eq!(
            verified.0.as_deref(),
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
        );
        let with_event = req.header("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5");
        let verified = verify(&with_event, "shopify", &["test_secret_key"], 0).expect("valid");
        assert_eq!(
            verified.0.as_deref(),
            Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
        );
    }

    /// Computed by us from Typeform's documented algorithm (Python's hmac),
    /// not published by Typeform: it checks the reading, not the provider.
    #[test]
    fn typeform_vector_computed_by_us() {
        let body = br#"{"event_id":"01E1FT3ZBHA2WA9AZSA2KPJ6RJ","event_type":"form_response"}"#;
        let req = TestRequest::new(body).header(
            "Typeform-Signature",
            "sha256=Wkeht3XZBg31c5oLzxemjZYsavo0f/nz5y3A3dq4c0k=",
        );
        assert!(verify(&req, "typeform", &["typeform-test-secret"], 0).is_ok());
        let typeform = super::super::Provider::parse("typeform").expect("known");
        assert_eq!(
            typeform
                .body_event_id(std::str::from_utf8(body).expect("utf-8"))
                .as_deref(),
            Some("01E1FT3ZBHA2WA9AZSA2KPJ6RJ")
        );
    }

    /// Computed by us from Tally's documented algorithm, not published by
    /// Tally.
    #[test]
    fn tally_vector_computed_by_us() {
        let body =
            br#"{"eventId":"a4cb511e-d513-4fa5-baee-b815d718dfd1","eventType":"FORM_RESPONSE"}"#;
        let req = TestRequest::new(body).header(
            "Tally-Signature",
            "To7Ve9xVKNDR9riYQUg6ELU4u/YFltK3jykDmmHG/pE=",
        );
        assert!(verify(&req, "tally", &["tally-test-secret"], 0).is_ok());
        let tally = super::super::Provider::parse("tally").expect("known");
        assert_eq!(
            tally
                .body_event_id(std::str::from_utf8(body).expect("utf-8"))
                .as_deref(),
            Some("a4cb511e-d513-4fa5-baee-b815d718dfd1")
        );
    }

    #[test]
    fn prefix_and_encoding_are_exact() {
        let hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secret = ["It's a Secret to Everybody"];
        for bad in [
            hex.to_owned(),
            format!("sha1={hex}"),
            format!("SHA256={hex}"),
            format!("sha256= {hex}"),
            format!("sha256={hex} "),
            format!("sha256={}", &hex[1..]),
            "sha256=".to_owned(),
        ] {
            let req = TestRequest::new(b"Hello, World!").header("x-hub-signature-256", &bad);
            assert_eq!(
                verify(&req, "github", &secret, 0),
                Err(SourceError::MalformedHeader {
                    header: "x-hub-signature-256",
                    rule: "sha256= and the hex of an HMAC-SHA256"
                }),
                "{bad:?}"
            );
        }
        // A Shopify signature without its padding is not the same string.
        let req = TestRequest::new(br#"{"foo": "bar"}"#).header(
            "x-shopify-hmac-sha256",
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g",
        );
        assert!(matches!(
            verify(&req, "shopify", &["test_secret_key"], 0),
            Err(SourceError::MalformedHeader { .. })
        ));
    }
}
