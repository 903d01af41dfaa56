//! Tests every provider in the table the same way, through its own signing:
//! accepted when signed, refused when anything signed changes, and errors
//! that never print a secret or a signature. The published vectors are in
//! each family's file.

use proptest::prelude::*;

use super::*;

/// A request for tests, owning what a [`Request`] borrows.
#[derive(Debug, Clone)]
pub(crate) struct TestRequest {
    method: String,
    url: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl TestRequest {
    pub(crate) fn new(body: &[u8]) -> Self {
        Self {
            method: "POST".to_owned(),
            url: "https://hooks.example.com/v1/tenants/acme/sources/main".to_owned(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    /// Adds a header (names are matched case-insensitively, like HTTP).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn url(mut self, url: &str) -> Self {
        self.url = url.to_owned();
        self
    }

    pub(crate) fn method(mut self, method: &str) -> Self {
        self.method = method.to_owned();
        self
    }

    pub(crate) fn query(mut self, query: &str) -> Self {
        self.query = query.to_owned();
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn replace(self, name: &str, value: &str) -> Self {
        self.without(name).header(name, value)
    }

    fn with_signed(mut self, signed: &Signed) -> Self {
        for (name, value) in &signed.headers {
            self = self.replace(name, value);
        }
        if let Some(query) = &signed.query {
            self.query = query.clone();
        }
        self
    }

    /// Verifies with `keys`, keeping what [`Verified`] borrows as owned.
    fn check(&self, keys: &SourceKeys, now: i64) -> Result<(Option<String>, bool), SourceError> {
        let lookup = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let request = Request {
            method: &self.method,
            url: &self.url,
            query: &self.query,
            headers: &lookup,
            body: &self.body,
        };
        keys.verify(&request, now)
            .map(|v| (v.delivery_id().map(str::to_owned), v.delivery_id_signed()))
    }
}

/// Verifies `req` as `provider` with `secrets` at `now`: the delivery ID
/// and whether it is signed, or the error.
pub(crate) fn verify(
    req: &TestRequest,
    provider: &str,
    secrets: &[&str],
    now: i64,
) -> Result<(Option<String>, bool), SourceError> {
    let provider = Provider::parse(provider).expect("known provider");
    let secrets: Vec<_> = secrets.iter().map(|s| Secret::new(*s)).collect();
    let keys = SourceKeys::new(provider, &secrets).expect("valid secrets");
    req.check(&keys, now)
}

const NOW: i64 = 1_767_225_600;
const DELIVERY: &str = "d7a4c1b0-6f2e-4d8a-9b3c-1e5f7a9c2d4b";
const BODY: &[u8] = br#"{"id":"evt_1","event_id":"e1","eventId":"e1","payload":{"id":"p1"}}"#;

/// A secret each provider accepts, distinct per `n`.
fn secret(provider: Provider, n: u8) -> Secret {
    match provider.as_str() {
        "standard-webhooks" => Secret::new(format!(
            "whsec_{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [n; 24])
        )),
        "stripe" => Secret::new(format!("whsec_stripe_secret_{n:02}")),
        _ => Secret::new(format!(
            "{}-secret-{n:02}-0123456789abcdef0123",
            provider.as_str()
        )),
    }
}

fn sign(provider: Provider, secret: &Secret, body: &[u8], now: i64) -> TestRequest {
    let req = TestRequest::new(body);
    let signed = provider
        .sign(
            secret,
            &SignRequest {
                method: &req.method,
                url: &req.url,
                body,
                delivery_id: DELIVERY,
            },
            now,
        )
        .expect("sign");
    req.with_signed(&signed)
}

fn keys(provider: Provider, secrets: &[&Secret]) -> SourceKeys {
    let secrets: Vec<Secret> = secrets.iter().map(|s| (*s).clone()).collect();
    SourceKeys::new(provider, &secrets).expect("valid secrets")
}

/// The header whose value is the signature (the last one a provider sets),
/// or `None` for `token`.
fn signature_header(provider: Provider) -> Option<&'static str> {
    let signed = provider
        .sign(
            &secret(provider, 1),
            &SignRequest {
                method: "POST",
                url: "",
                body: b"",
                delivery_id: DELIVERY,
            },
            NOW,
        )
        .expect("sign");
    signed
        .headers
        .iter()
        .map(|(name, _)| *name)
        .find(|name| name.contains("sig") || name.contains("hmac"))
}

#[test]
fn the_table_names_every_provider_once_and_parses_back() {
    let names: Vec<_> = PROVIDERS.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "typeform",
            "tally",
            "webflow",
            "formspree",
            "stripe",
            "github",
            "shopify",
            "slack",
            "hubspot",
            "standard-webhooks",
            "token"
        ]
    );
    for p in PROVIDERS {
        assert_eq!(Provider::parse(p.as_str()), Ok(*p));
        assert_eq!(p.as_str().parse::<Provider>(), Ok(*p));
        let json = serde_json::to_string(p).expect("serialize");
        assert_eq!(serde_json::from_str::<Provider>(&json).expect("parse"), *p);
    }
    for unknown in ["", "Stripe", "svix", "github ", "jotform"] {
        assert_eq!(Provider::parse(unknown), Err(UnknownProvider));
    }
    let message = UnknownProvider.to_string();
    assert!(message.contains("standard-webhooks") && message.contains("token"));
    assert!(
        serde_json::from_str::<Provider>(r#""jotform""#)
            .expect_err("unknown")
            .to_string()
            .starts_with("unknown provider")
    );
}

#[test]
fn every_provider_accepts_what_it_signs_and_refuses_a_tampered_body() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let req = sign(p, &s, BODY, NOW);
        let keys = keys(p, &[&s]);
        assert!(req.check(&keys, NOW).is_ok(), "{p}");
        let mut tampered = req.clone();
        tampered.body = BODY.to_vec();
        tampered.body[10] ^= 1;
        let expected = if p.as_str() == "token" {
            // The body is not signed: a token proves the sender, not the bytes.
            Ok(())
        } else {
            Err(SourceError::Mismatch(signature_header(p).expect("signed")))
        };
        assert_eq!(tampered.check(&keys, NOW).map(|_| ()), expected, "{p}");
    }
}

#[test]
fn every_provider_refuses_a_wrong_secret_and_accepts_a_rotated_one() {
    for &p in PROVIDERS {
        let (old, new) = (secret(p, 1), secret(p, 2));
        let req = sign(p, &old, BODY, NOW);
        let wrong = req.check(&keys(p, &[&new]), NOW);
        assert!(
            matches!(
                wrong,
                Err(SourceError::Mismatch(_) | SourceError::TokenMismatch)
            ),
            "{p}: {wrong:?}"
        );
        // During a rotation the old secret stays valid after the new one.
        assert!(req.check(&keys(p, &[&new, &old]), NOW).is_ok(), "{p}");
        assert!(req.check(&keys(p, &[&old, &new]), NOW).is_ok(), "{p}");
    }
}

#[test]
fn timestamped_providers_refuse_stale_and_future_requests() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let keys = keys(p, &[&s]);
        let old = sign(p, &s, BODY, NOW - 301);
        let ahead = sign(p, &s, BODY, NOW + 301);
        let edge_old = sign(p, &s, BODY, NOW - 300);
        let edge_ahead = sign(p, &s, BODY, NOW + 300);
        assert!(edge_old.check(&keys, NOW).is_ok(), "{p}");
        assert!(edge_ahead.check(&keys, NOW).is_ok(), "{p}");
        if p.signs_timestamp() {
            assert!(
                matches!(
                    old.check(&keys, NOW),
                    Err(SourceError::Stale {
                        age_secs: 301,
                        window_secs: 300,
                        ..
                    })
                ),
                "{p}"
            );
            assert!(
                matches!(
                    ahead.check(&keys, NOW),
                    Err(SourceError::Future {
                        ahead_secs: 301,
                        window_secs: 300,
                        ..
                    })
                ),
                "{p}"
            );
        } else {
            // Nothing signed says when: only idempotency stops a replay.
            assert!(old.check(&keys, NOW).is_ok(), "{p}");
            assert!(ahead.check(&keys, NOW).is_ok(), "{p}");
        }
    }
}

#[test]
fn a_changed_timestamp_does_not_verify() {
    for &p in PROVIDERS.iter().filter(|p| p.signs_timestamp()) {
        let s = secret(p, 1);
        let keys = keys(p, &[&s]);
        let req = sign(p, &s, BODY, NOW);
        let later = sign(p, &s, BODY, NOW + 1);
        // Move the new timestamp onto the old signature.
        let mut moved = req.clone();
        for (name, value) in &later.headers {
            if name.contains("timestamp") {
                moved = moved.replace(name, value);
            }
        }
        if let Some(header) = ["stripe-signature", "formspree-signature"]
            .into_iter()
            .find(|h| later.headers.iter().any(|(n, _)| n == h))
        {
            let value = &req
                .headers
                .iter()
                .find(|(n, _)| n == header)
                .expect("header")
                .1;
            let t = (NOW + 1).to_string();
            moved = moved.replace(header, &value.replacen(&NOW.to_string(), &t, 1));
        }
        assert!(
            matches!(moved.check(&keys, NOW), Err(SourceError::Mismatch(_))),
            "{p}"
        );
    }
}

#[test]
fn every_header_a_provider_requires_is_reported_missing_by_name() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let keys = keys(p, &[&s]);
        let req = sign(p, &s, BODY, NOW);
        for (name, _) in &req.headers {
            let optional = ["x-github-delivery", "x-shopify-event-id"].contains(&name.as_str());
            let result = req.clone().without(name).check(&keys, NOW);
            if optional {
                assert_eq!(result, Ok((None, false)), "{p}: {name}");
            } else {
                // Standard Webhooks reads the whole set of the id it finds.
                assert_eq!(
                    result,
                    Err(SourceError::MissingHeader(static_name(name))),
                    "{p}: {name}"
                );
            }
        }
        if p.as_str() == "token" {
            let mut no_query = req.clone();
            no_query.query.clear();
            assert_eq!(no_query.check(&keys, NOW), Err(SourceError::MissingToken));
        }
    }
}

/// The table's own `&'static` spelling of a header name, as errors carry it.
fn static_name(name: &str) -> &'static str {
    PROVIDERS
        .iter()
        .flat_map(|p| {
            p.sign(
                &secret(*p, 1),
                &SignRequest {
                    method: "POST",
                    url: "",
                    body: b"",
                    delivery_id: "x",
                },
                NOW,
            )
            .expect("sign")
            .headers
        })
        .map(|(n, _)| n)
        .find(|n| *n == name)
        .expect("a header some provider sends")
}

#[test]
fn header_names_match_in_any_case() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let mut req = sign(p, &s, BODY, NOW);
        for (name, _) in &mut req.headers {
            *name = name.to_ascii_uppercase();
        }
        assert!(req.check(&keys(p, &[&s]), NOW).is_ok(), "{p}");
    }
}

#[test]
fn malformed_signature_headers_are_refused_before_any_mac() {
    for &p in PROVIDERS {
        let Some(header) = signature_header(p) else {
            continue;
        };
        let s = secret(p, 1);
        let keys = keys(p, &[&s]);
        let req = sign(p, &s, BODY, NOW);
        let good = req
            .headers
            .iter()
            .find(|(n, _)| n == header)
            .expect("signed")
            .1
            .clone();
        for bad in [
            String::new(),
            "garbage".to_owned(),
            good[..good.len() - 2].to_owned(),
            format!("{good}{good}"),
            "x".repeat(MAX_SIGNATURE_HEADER_LEN + 1),
        ] {
            let result = req.clone().replace(header, &bad).check(&keys, NOW);
            assert!(
                matches!(result, Err(SourceError::MalformedHeader { header: h, .. }) if h == header),
                "{p}: {bad:?} gave {result:?}"
            );
        }
    }
}

#[test]
fn malformed_timestamps_are_refused() {
    for &p in PROVIDERS.iter().filter(|p| p.signs_timestamp()) {
        let s = secret(p, 1);
        let keys = keys(p, &[&s]);
        let req = sign(p, &s, BODY, NOW);
        let (name, value) = req
            .headers
            .iter()
            .find(|(n, v)| n.contains("timestamp") || v.starts_with("t="))
            .expect("a timestamp")
            .clone();
        let ts = if value.starts_with("t=") {
            NOW.to_string()
        } else {
            value.clone()
        };
        for bad in [
            format!("0{ts}"),
            format!("+{ts}"),
            format!("{ts}.0"),
            format!(" {ts}"),
            "-1".to_owned(),
        ] {
            let replaced = value.replacen(&ts, &bad, 1);
            let result = req.clone().replace(&name, &replaced).check(&keys, NOW);
            assert!(
                matches!(
                    result,
                    Err(SourceError::MalformedTimestamp { .. }
                        | SourceError::MalformedHeader { .. })
                ),
                "{p}: {replaced:?} gave {result:?}"
            );
        }
    }
}

#[test]
fn several_signatures_in_one_header_where_providers_send_them() {
    let (old, new) = (
        Secret::new("whsec_stripe_old"),
        Secret::new("whsec_stripe_new"),
    );
    let stripe = Provider::parse("stripe").expect("known");
    let a = sign(stripe, &old, BODY, NOW);
    let b = sign(stripe, &new, BODY, NOW);
    let sig = |r: &TestRequest| r.headers[0].1.split_once(",v1=").expect("v1").1.to_owned();
    let both = format!(
        "t={NOW},v1={},v0={},v1={}",
        sig(&a),
        "0".repeat(64),
        sig(&b)
    );
    let req = a.replace("stripe-signature", &both);
    assert!(req.check(&keys(stripe, &[&new]), NOW).is_ok());
    assert!(req.check(&keys(stripe, &[&old]), NOW).is_ok());
    assert!(matches!(
        req.check(&keys(stripe, &[&Secret::new("whsec_other")]), NOW),
        Err(SourceError::Mismatch("stripe-signature"))
    ));

    let sw = Provider::parse("standard-webhooks").expect("known");
    let (old, new) = (secret(sw, 1), secret(sw, 2));
    let a = sign(sw, &old, BODY, NOW);
    let b = sign(sw, &new, BODY, NOW);
    let get = |r: &TestRequest| {
        r.headers
            .iter()
            .find(|(n, _)| n == "webhook-signature")
            .expect("sig")
            .1
            .clone()
    };
    let list = format!("{} v1a,{} {}", get(&a), "A".repeat(86) + "==", get(&b));
    let req = a.replace("webhook-signature", &list);
    assert!(req.check(&keys(sw, &[&new]), NOW).is_ok());
    assert!(req.check(&keys(sw, &[&old]), NOW).is_ok());
}

#[test]
fn delivery_ids_come_from_headers_and_say_whether_signed() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let got = sign(p, &s, BODY, NOW)
            .check(&keys(p, &[&s]), NOW)
            .expect("ok");
        let expected = match p.as_str() {
            "github" | "shopify" => (Some(DELIVERY.to_owned()), false),
            "standard-webhooks" => (Some(DELIVERY.to_owned()), true),
            _ => (None, false),
        };
        assert_eq!(got, expected, "{p}");
    }
    // A malformed unsigned ID is not used (the caller falls back).
    let github = Provider::parse("github").expect("known");
    let s = secret(github, 1);
    let req = sign(github, &s, BODY, NOW).replace("x-github-delivery", "bad\u{7}id");
    assert_eq!(req.check(&keys(github, &[&s]), NOW), Ok((None, false)));
}

#[test]
fn body_event_ids_per_provider() {
    let body = std::str::from_utf8(BODY).expect("utf-8");
    for &p in PROVIDERS {
        let expected = match p.as_str() {
            "stripe" => Some("evt_1"),
            "typeform" | "slack" => Some("e1"),
            "tally" => Some("e1"),
            "webflow" => Some("p1"),
            _ => None,
        };
        assert_eq!(p.body_event_id(body).as_deref(), expected, "{p}");
    }
    let stripe = Provider::parse("stripe").expect("known");
    let long = format!(r#"{{"id":"{}"}}"#, "a".repeat(256));
    assert_eq!(stripe.body_event_id(&long), None);
}

#[test]
fn secrets_are_checked_without_being_quoted() {
    for &p in PROVIDERS {
        assert_eq!(
            SourceKeys::new(p, &[]).map(|_| ()),
            Err(SecretError::NoSecrets)
        );
        let err = SourceKeys::new(p, &[secret(p, 1), Secret::new("")]).expect_err("empty");
        assert_eq!(err.code(), "invalid_secret");
        assert!(err.to_string().starts_with("secret 1 of a "), "{err}");
    }
    let sw = Provider::parse("standard-webhooks").expect("known");
    let err = SourceKeys::new(sw, &[Secret::new("whsec_hunter2!!")]).expect_err("not base64");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn errors_and_debug_output_never_contain_a_secret_or_signature() {
    for &p in PROVIDERS {
        let s = secret(p, 1);
        let wrong = secret(p, 2);
        let req = sign(p, &s, BODY, NOW);
        let keys_right = keys(p, &[&s]);
        let keys_wrong = keys(p, &[&wrong]);
        let mut outputs = vec![
            format!("{keys_right:?}"),
            format!("{:?}", Key::mac(s.expose().as_bytes())),
        ];
        let signed = p
            .sign(
                &s,
                &SignRequest {
                    method: "POST",
                    url: "",
                    body: BODY,
                    delivery_id: DELIVERY,
                },
                NOW,
            )
            .expect("sign");
        outputs.push(format!("{signed:?}"));
        let mut cases = vec![
            req.check(&keys_wrong, NOW),
            req.check(&keys_right, NOW + 10_000),
            req.check(&keys_right, NOW - 10_000),
        ];
        for (name, value) in &req.headers {
            cases.push(
                req.clone()
                    .replace(name, &format!("{value}x"))
                    .check(&keys_right, NOW),
            );
            cases.push(req.clone().without(name).check(&keys_right, NOW));
        }
        for err in cases.into_iter().filter_map(Result::err) {
            outputs.push(err.to_string());
            outputs.push(format!("{err:?}"));
        }
        let lookup = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let request = Request {
            method: "POST",
            url: &req.url,
            query: &req.query,
            headers: &lookup,
            body: &req.body,
        };
        outputs.push(format!("{request:?}"));
        if let Ok(verified) = keys_right.verify(&request, NOW) {
            outputs.push(format!("{verified:?}"));
        }
        let mut forbidden = vec![s.expose().to_owned(), wrong.expose().to_owned()];
        for (_, value) in &req.headers {
            if value.len() >= 40 {
                forbidden.push(value.clone());
                // The MAC alone, after any prefix.
                forbidden.push(
                    value
                        .rsplit(['=', ','])
                        .find(|t| t.len() >= 40)
                        .unwrap_or(value)
                        .to_owned(),
                );
            }
        }
        if let Some(query) = &signed.query {
            forbidden.push(query.clone());
        }
        for output in &outputs {
            for f in &forbidden {
                assert!(
                    !output.contains(f.as_str()),
                    "{p}: {output:?} contains a secret or signature"
                );
            }
        }
    }
}

#[test]
fn every_error_has_a_distinct_code() {
    let errors = [
        SourceError::MissingHeader("h"),
        SourceError::MalformedHeader {
            header: "h",
            rule: "r",
        },
        SourceError::MalformedTimestamp {
            header: "h",
            rule: "r",
        },
        SourceError::Stale {
            header: "h",
            age_secs: 1,
            window_secs: 1,
        },
        SourceError::Future {
            header: "h",
            ahead_secs: 1,
            window_secs: 1,
        },
        SourceError::Mismatch("h"),
        SourceError::MissingToken,
        SourceError::MalformedToken,
        SourceError::TokenMismatch,
    ];
    let mut codes: Vec<_> = errors.iter().map(SourceError::code).collect();
    assert!(
        codes
            .iter()
            .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever a sender puts in the headers, the query and the body, every
    /// provider answers with a result, never a panic, and never accepts
    /// without the secret.
    #[test]
    fn arbitrary_input_never_panics_or_verifies(
        values in proptest::collection::vec(".{0,80}|[0-9]{0,20}|(t=[0-9]{1,12},v1=[0-9a-f]{0,70})|(v1,[A-Za-z0-9+/=]{0,50})( v1,[A-Za-z0-9+/=]{0,50})?", 6),
        query in ".{0,60}|token=.{0,40}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
    ) {
        for &p in PROVIDERS {
            let s = secret(p, 1);
            let keys = keys(p, &[&s]);
            let template = sign(p, &s, &body, NOW);
            let mut req = TestRequest::new(&body).query(&query).url(&query);
            for ((name, _), value) in template.headers.iter().zip(values.iter().cycle()) {
                req = req.header(name, value);
            }
            let result = req.check(&keys, now);
            prop_assert!(result.is_err(), "{} accepted arbitrary input", p);
            let _ = p.body_event_id(&String::from_utf8_lossy(&body));
        }
    }
}

#[test]
fn the_signed_timestamp_does_not_depend_on_how_the_header_is_written() {
    let provider = Provider::parse("stripe").expect("known");
    let secret = Secret::new("whsec_test_secret");
    let keys = SourceKeys::new(provider, std::slice::from_ref(&secret)).expect("valid");
    let body = br#"{"id":"evt_1","object":"event"}"#;
    let now = 1_767_225_600;
    let signed = provider
        .sign(
            &secret,
            &SignRequest {
                method: "POST",
                url: "https://hooks.example.com/x",
                body,
                delivery_id: "d1",
            },
            now,
        )
        .expect("signs");
    let header = &signed.headers[0].1;
    let reworded = format!("{header},v1={}", "0".repeat(64));
    let mut seen = Vec::new();
    for value in [header.clone(), reworded] {
        let lookup = |name: &str| (name == "stripe-signature").then_some(value.as_str());
        let request = Request {
            method: "POST",
            url: "https://hooks.example.com/x",
            query: "",
            headers: &lookup,
            body,
        };
        let verified = keys.verify(&request, now + 5).expect("verifies");
        seen.push(verified.signed_timestamp());
    }
    assert_eq!(seen, [Some(now), Some(now)]);
}

#[test]
fn a_token_presented_in_the_url_is_redacted_from_the_payload_in_every_spelling() {
    let token = "tok/with+odd&chars_00000000000000000000";
    let keys = SourceKeys::new(
        Provider::parse("token").expect("known"),
        &[Secret::new(token)],
    )
    .expect("valid");
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let escaped_slash = token.replace('/', "\\/");
    let percent: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let payload = format!(
        r#"{{"a":"{token}","b":"https://x/?token={percent}","c":"{escaped_slash}","n":1}}"#
    );
    let redacted = keys
        .redact_presented_secret(&query, &payload)
        .expect("JSON")
        .expect("found");
    assert_eq!(
        redacted,
        r#"{"a":"REDACTED","b":"https://x/?token=REDACTED","c":"REDACTED","n":1}"#
    );
    // A token typed into the URL with escapes of its own (%74 for t, %2f
    // for /): the body echoes the URL as it was typed.
    let typed = "%74ok%2fwith%2Bodd%26chars_00000000000000000000";
    let redacted = keys
        .redact_presented_secret(
            &format!("token={typed}"),
            &format!(r#"{{"webhookURL":"https://x/?token={typed}"}}"#),
        )
        .expect("JSON")
        .expect("found");
    assert_eq!(redacted, r#"{"webhookURL":"https://x/?token=REDACTED"}"#);
    // Nothing to remove: no copy; another provider's secret is not in the URL.
    assert_eq!(keys.redact_presented_secret(&query, r#"{"a":1}"#), Ok(None));
    let typeform = SourceKeys::new(
        Provider::parse("typeform").expect("known"),
        &[Secret::new(token)],
    )
    .expect("valid");
    assert_eq!(typeform.redact_presented_secret(&query, &payload), Ok(None));
    // A token written outside a string cannot be removed: refused.
    let digits = "12345678901234567890123456789012345";
    let keys = SourceKeys::new(
        Provider::parse("token").expect("known"),
        &[Secret::new(digits)],
    )
    .expect("valid");
    assert_eq!(
        keys.redact_presented_secret(&format!("token={digits}"), &format!(r#"{{"n":{digits}}}"#)),
        Err(TokenInBody)
    );
}

/// Found while writing the fuzz targets' check that no event holds the
/// token once its strings are decoded (fuzz/fuzz_targets/ingest_event.rs):
/// a token spelt with a JSON escape inside a string passed redaction, and
/// a receiver decoding the event read the token.
#[test]
fn a_token_spelt_with_json_escapes_in_the_payload_is_refused() {
    let token = "tok_fuzz_token_secret_00000000000000000000";
    let keys = SourceKeys::new(
        Provider::parse("token").expect("known"),
        &[Secret::new(token)],
    )
    .expect("valid");
    let query = format!("token={token}");
    let escaped = format!("\\u0074{}", &token[1..]);
    for payload in [
        format!(r#"{{"q1":"{escaped}"}}"#),
        format!(r#"{{"rawRequest":{{"url":"https:\/\/x\/?token={escaped}"}}}}"#),
        format!(r#"{{"{escaped}":1}}"#),
        // The plain spelling beside it is redacted; the escaped one stays.
        format!(r#"["{token}","{escaped}"]"#),
    ] {
        assert_eq!(
            keys.redact_presented_secret(&query, &payload),
            Err(TokenInBody),
            "{payload}"
        );
    }
    // Escapes that do not spell the token change nothing.
    let payload = r#"{"a":"caf\u00e9 \/ \"q\"","b":"tok_other"}"#;
    assert_eq!(keys.redact_presented_secret(&query, payload), Ok(None));
}

#[test]
fn no_provider_accepts_a_timestamp_further_than_the_widest_window() {
    for provider in PROVIDERS {
        if let Some(secs) = provider.tolerance_secs() {
            assert!(
                u64::try_from(secs).is_ok_and(|s| s <= MAX_TOLERANCE_SECS),
                "{provider}: {secs}"
            );
        }
    }
}
