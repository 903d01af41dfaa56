//! Providers that cannot sign (Jotform, Fillout, Paperform): the URL the
//! tenant pastes carries `?token=<secret>`, and the query parameter must
//! equal one of the source's secrets. Paperform's help centre recommends
//! exactly this ("include it in the webhook URL's query string").
//!
//! Both sides are hashed with SHA-256 before the constant-time comparison,
//! so neither the token's bytes nor its length show in the timing.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::event_id::BodyId;
use super::{Key, Request, SignRequest, Signed, SourceError, Verified, Verifier};
use crate::secret::Secret;

/// The family has one member.
#[derive(Debug)]
pub(crate) struct Token {
    min_len: usize,
    body_id: BodyId,
}

/// Shortest token accepted as a secret (docs/protocol.md, section 9).
pub(crate) const MIN_TOKEN_LEN: usize = 32;

/// The event ID is the submission's: Jotform `submissionID` (a multipart
/// field), Fillout `submissionId` (its webhooks nest it as
/// `submission.submissionId`), Paperform `submission_id`.
pub(crate) const TOKEN: Token = Token {
    min_len: MIN_TOKEN_LEN,
    body_id: BodyId::Field(&[
        &["submissionID"],
        &["submissionId"],
        &["submission", "submissionId"],
        &["submission_id"],
    ]),
};

const PARAM: &str = "token";

/// The `token` query parameter as presented (percent-decoded): it must be
/// there exactly once.
pub(crate) fn presented(query: &str) -> Result<std::borrow::Cow<'_, str>, SourceError> {
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == PARAM {
            if found.is_some() {
                return Err(SourceError::MalformedToken);
            }
            found = Some(value);
        }
    }
    found.ok_or(SourceError::MissingToken)
}

/// The `token` parameter's value exactly as the query carries it (before
/// percent-decoding), when it is there.
pub(crate) fn presented_raw(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

impl Verifier for Token {
    fn prepare(&self, secret: &Secret) -> Result<Key, &'static str> {
        if secret.expose().len() < self.min_len {
            return Err("must be at least 32 characters");
        }
        Ok(Key::digest(secret.expose().as_bytes()))
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        keys: &[Key],
        _now: i64,
    ) -> Result<Verified<'a>, SourceError> {
        let token = presented(request.query)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut matched = Choice::from(0);
        for digest in keys.iter().filter_map(Key::as_digest) {
            matched |= digest.ct_eq(&presented);
        }
        if !bool::from(matched) {
            return Err(SourceError::TokenMismatch);
        }
        Ok(Verified::new(None, false, None))
    }

    fn body_event_id(&self, json: &str) -> Option<String> {
        self.body_id.find(json)
    }

    fn tolerance_secs(&self) -> Option<i64> {
        None
    }

    fn signs_body(&self) -> bool {
        false
    }

    fn sign(
        &self,
        secret: &Secret,
        _request: &SignRequest<'_>,
        _now: i64,
    ) -> Result<Signed, &'static str> {
        self.prepare(secret)?;
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(PARAM, secret.expose())
            .finish();
        Ok(Signed {
            headers: Vec::new(),
            query: Some(query),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TestRequest, verify};
    use super::super::{Provider, SecretError, SourceKeys};
    use super::*;

    const SECRET: &str = "tok_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";

    #[test]
    fn the_query_parameter_must_equal_a_secret() {
        let ok = TestRequest::new(b"{}").query(&format!("a=1&token={SECRET}&b=2"));
        assert_eq!(verify(&ok, "token", &[SECRET], 0), Ok((None, false)));
        let rotated = ["tok_new_00000000000000000000000000000000", SECRET];
        assert!(verify(&ok, "token", &rotated, 0).is_ok());
        for (query, err) in [
            ("", SourceError::MissingToken),
            ("tokens=x&Token=y", SourceError::MissingToken),
            (&format!("token={SECRET}x"), SourceError::TokenMismatch),
            (
                &format!("token={}", &SECRET[1..]),
                SourceError::TokenMismatch,
            ),
            ("token=", SourceError::TokenMismatch),
            (
                &format!("token={SECRET}&token={SECRET}"),
                SourceError::MalformedToken,
            ),
        ] {
            let req = TestRequest::new(b"{}").query(query);
            assert_eq!(verify(&req, "token", &[SECRET], 0), Err(err), "{query:?}");
        }
    }

    #[test]
    fn the_token_is_percent_decoded_once() {
        let secret = "tok with spaces & an ampersand, 32+ chars long";
        let signed = TOKEN
            .sign(
                &Secret::new(secret),
                &SignRequest {
                    method: "POST",
                    url: "",
                    body: b"",
                    delivery_id: "",
                },
                0,
            )
            .expect("sign");
        let query = signed.query.expect("query");
        assert!(!query.contains(' ') && !query.contains("&an"));
        let req = TestRequest::new(b"{}").query(&query);
        assert!(verify(&req, "token", &[secret], 0).is_ok());
    }

    #[test]
    fn short_tokens_are_refused_as_secrets() {
        let token = Provider::parse("token").expect("known");
        assert_eq!(
            SourceKeys::new(token, &[Secret::new(SECRET), Secret::new("short")]).map(|_| ()),
            Err(SecretError::Invalid {
                index: 1,
                provider: "token",
                rule: "must be at least 32 characters"
            })
        );
    }

    #[test]
    fn event_ids_of_jotform_fillout_and_paperform() {
        let token = Provider::parse("token").expect("known");
        for (body, id) in [
            (
                r#"{"formID":"1","submissionID":"5798546712345","rawRequest":"{}"}"#,
                "5798546712345",
            ),
            (r#"{"submissionId":"abc-123","questions":[]}"#, "abc-123"),
            (
                r#"{"formId":"vE8x","formName":"Contact","submission":{"submissionId":"s-42","questions":[]}}"#,
                "s-42",
            ),
            (r#"{"data":[],"submission_id":"sub_9"}"#, "sub_9"),
        ] {
            assert_eq!(token.body_event_id(body).as_deref(), Some(id), "{body}");
        }
        assert_eq!(token.body_event_id(r#"{"data":[]}"#), None);
    }
}
