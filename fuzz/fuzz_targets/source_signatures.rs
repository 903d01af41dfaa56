//! Sources' signature headers (docs/protocol.md, section 9): every
//! provider's verifier (Stripe-Signature, X-Hub-Signature-256,
//! X-Slack-Signature, webhook-signature, the token, ...), the event IDs
//! and challenges read from bodies, and the token's redaction.
//!
//! Input: one byte choosing the provider, then a request in the text
//! format of `fuzz::TextRequest` (`Name: value` lines, `:url`, `:query`,
//! `:method`, an empty line, the body); the source's secrets are the
//! fixture's.
//! Asserts: nothing panics; an error never quotes a secret; what a
//! verifier accepts has the documented shape (a printable delivery ID, a
//! timestamp inside the tolerance, the token itself); a request signed the
//! provider's way (`Provider::sign`) over the same method, URL and body
//! verifies; IDs read from bodies are printable; a token source's payload
//! after redaction holds no token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::Secret;
use shared::source::{self, PROVIDERS, SignRequest, SourceKeys};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let provider = PROVIDERS[usize::from(choice) % PROVIDERS.len()];
    let request = fuzz::TextRequest::parse(rest);
    // In the fixture, acme's source of each provider is named after it.
    let secrets: Vec<Secret> = fuzz::source_secrets("acme", provider.as_str())
        .into_iter()
        .map(Secret::new)
        .collect();
    let keys = SourceKeys::new(provider, &secrets).expect("the fixture's secrets are valid");
    let headers = |name: &str| request.header(name);
    let parts = source::Request {
        method: &request.method,
        url: &request.url,
        query: &request.query,
        headers: &headers,
        body: &request.body,
    };
    let token = provider.as_str() == "token";
    match keys.verify(&parts, fuzz::NOW) {
        Ok(verified) => {
            if let Some(id) = verified.delivery_id() {
                assert!(
                    (1..=255).contains(&id.len())
                        && id.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                    "{id:?}"
                );
            }
            if let Some(ts) = verified.signed_timestamp() {
                let seconds = (ts - fuzz::NOW).abs() <= 300;
                let millis = (ts - fuzz::NOW * 1000).abs() <= 300_000;
                assert!(seconds || millis, "timestamp {ts} outside the tolerance");
            }
            if token {
                let presented: Vec<_> = url::form_urlencoded::parse(request.query.as_bytes())
                    .filter(|(name, _)| name == "token")
                    .map(|(_, value)| value.into_owned())
                    .collect();
                assert!(
                    matches!(presented.as_slice(), [one] if secrets.iter().any(|s| s.expose() == one)),
                    "a token source verified without its token"
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            for secret in &secrets {
                assert!(!message.contains(secret.expose()), "a secret in an error");
            }
        }
    }

    // Signed the provider's way, the same request verifies.
    // A delivery ID as its callers give one (`formbridge send` refuses
    // any other): 1 to 255 printable ASCII characters.
    let delivery_id = request
        .header("x-fuzz-delivery-id")
        .filter(|id| (1..=255).contains(&id.len()) && id.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .unwrap_or("evt_fuzz_1");
    let sign = SignRequest {
        method: &request.method,
        url: &request.url,
        body: &request.body,
        delivery_id,
    };
    if let Ok(signed) = provider.sign(&secrets[0], &sign, fuzz::NOW) {
        let query = signed.query.clone().unwrap_or_default();
        let signed_header = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let parts = source::Request {
            query: &query,
            headers: &signed_header,
            ..parts
        };
        if let Err(e) = keys.verify(&parts, fuzz::NOW) {
            panic!("signed as {provider} but refused: {e}");
        }
    }

    if let Ok(text) = std::str::from_utf8(&request.body) {
        if let Some(id) = provider.body_event_id(text) {
            assert!(
                (1..=255).contains(&id.len()) && id.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{id:?}"
            );
        }
        if let Some((_, value)) = provider.challenge(text) {
            assert!((1..=255).contains(&value.len()), "{value:?}");
        }
        // What a verified token source's payload becomes: the token gone
        // in every spelling, or the body refused.
        let kept = match keys.redact_presented_secret(&request.query, text) {
            Ok(Some(redacted)) => Some(redacted),
            Ok(None) => Some(text.to_owned()),
            Err(_) => None,
        };
        if let Some(kept) = kept.filter(|_| token && keys.verify(&parts, fuzz::NOW).is_ok()) {
            for secret in &secrets {
                assert!(
                    !kept.contains(secret.expose()),
                    "the token left in the payload"
                );
                assert!(
                    fuzz::decoded_strings_lack(&kept, secret.expose()),
                    "the token left in the payload, spelt with escapes"
                );
            }
        }
    }
});
