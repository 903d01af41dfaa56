//! Providers that sign a timestamp with the body: HMAC-SHA256(secret as
//! UTF-8, a string laid out from the timestamp, the body and, for HubSpot,
//! the method and URL), refused outside the tolerance either way.

use hmac::Mac;

use super::common::{self, Encoding, Tag, Tags, Unit};
use super::event_id::BodyId;
use super::{HmacSha256, Key, Request, SignRequest, Signed, SourceError, Verified, Verifier};
use crate::secret::Secret;

/// Where the timestamp and the signatures are.
#[derive(Debug)]
enum Scheme {
    /// A timestamp header, and a signature header holding `prefix` and one
    /// MAC.
    Headers {
        timestamp: &'static str,
        signature: &'static str,
        prefix: &'static str,
        encoding: Encoding,
        rule: &'static str,
    },
    /// One header `t=<ts>,v1=<hex>[,v1=<hex>...]`; other keys (Stripe's
    /// test-mode `v0`) are ignored, as the providers ask.
    Pairs { header: &'static str },
}

/// A piece of the signed string.
#[derive(Debug)]
enum Part {
    /// Literal text.
    Text(&'static str),
    /// The timestamp as received (canonical digits, so the same text every
    /// SDK signs).
    Timestamp,
    /// The raw body.
    Body,
    /// The HTTP method.
    Method,
    /// The public URL with HubSpot's 12 escapes decoded.
    HubSpotUri,
}

/// One provider of the family.
#[derive(Debug)]
pub(crate) struct Timestamped {
    scheme: Scheme,
    unit: Unit,
    signed: &'static [Part],
    tolerance_secs: i64,
    body_id: BodyId,
    /// A signed request that only checks the URL, answered with a value
    /// of its body instead of becoming a submission.
    challenge: Option<Challenge>,
}

/// A provider's URL check: a body whose `kind` field has the value
/// `is` is answered `{"<echo field>": <its value>}` with 200.
#[derive(Debug)]
pub(crate) struct Challenge {
    kind: BodyId,
    is: &'static str,
    /// The answer's field, and where its value is in the body.
    echo: (&'static str, BodyId),
}

/// Slack's Events API checks a new Request URL with a signed
/// `{"type":"url_verification","challenge":"..."}` and expects the
/// challenge back.
const SLACK_URL_VERIFICATION: Challenge = Challenge {
    kind: BodyId::Field(&[&["type"]]),
    is: "url_verification",
    echo: ("challenge", BodyId::Field(&[&["challenge"]])),
};

const PAIRS_RULE: &str = "t=<Unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]";

/// Webflow: `x-webflow-timestamp` (ms) and `x-webflow-signature: <hex>`
/// over `{ts}:{body}` (webflow/js-webflow-api `WebhooksClient.ts`). The
/// event ID is the body's `payload.id`.
pub(crate) const WEBFLOW: Timestamped = Timestamped {
    scheme: Scheme::Headers {
        timestamp: "x-webflow-timestamp",
        signature: "x-webflow-signature",
        prefix: "",
        encoding: Encoding::Hex,
        rule: "the hex of an HMAC-SHA256",
    },
    unit: Unit::Millis,
    signed: &[Part::Timestamp, Part::Text(":"), Part::Body],
    tolerance_secs: 300,
    body_id: BodyId::Field(&[&["payload", "id"]]),
    challenge: None,
};

/// Formspree: `Formspree-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`
/// (help centre, "Verify webhook signatures"). No event ID is documented.
pub(crate) const FORMSPREE: Timestamped = Timestamped {
    scheme: Scheme::Pairs {
        header: "formspree-signature",
    },
    unit: Unit::Seconds,
    signed: &[Part::Timestamp, Part::Text("."), Part::Body],
    tolerance_secs: 300,
    body_id: BodyId::None,
    challenge: None,
};

/// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...][,v0=...]` over
/// `{t}.{body}`, keyed with the whole `whsec_` string (stripe-go
/// `webhook/client.go`). Several `v1` during a secret roll. The event ID is
/// the body's `id`.
pub(crate) const STRIPE: Timestamped = Timestamped {
    scheme: Scheme::Pairs {
        header: "stripe-signature",
    },
    unit: Unit::Seconds,
    signed: &[Part::Timestamp, Part::Text("."), Part::Body],
    tolerance_secs: 300,
    body_id: BodyId::Field(&[&["id"]]),
    challenge: None,
};

/// Slack: `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=<hex>`
/// over `v0:{ts}:{body}` ("Verifying requests from Slack"). Events API
/// bodies carry `event_id`; slash commands carry none.
pub(crate) const SLACK: Timestamped = Timestamped {
    scheme: Scheme::Headers {
        timestamp: "x-slack-request-timestamp",
        signature: "x-slack-signature",
        prefix: "v0=",
        encoding: Encoding::Hex,
        rule: "v0= and the hex of an HMAC-SHA256",
    },
    unit: Unit::Seconds,
    signed: &[
        Part::Text("v0:"),
        Part::Timestamp,
        Part::Text(":"),
        Part::Body,
    ],
    tolerance_secs: 300,
    body_id: BodyId::Field(&[&["event_id"]]),
    challenge: Some(SLACK_URL_VERIFICATION),
};

/// HubSpot v3: `X-HubSpot-Request-Timestamp` (ms) and
/// `X-HubSpot-Signature-v3: <base64>` over method, URI, body and timestamp
/// with no separators ("Validating requests", v3). Bodies are batches whose
/// `eventId` is not unique and whose retries change, so the event ID is a
/// digest of the events' identities.
pub(crate) const HUBSPOT: Timestamped = Timestamped {
    scheme: Scheme::Headers {
        timestamp: "x-hubspot-request-timestamp",
        signature: "x-hubspot-signature-v3",
        prefix: "",
        encoding: Encoding::Base64,
        rule: "the base64 of an HMAC-SHA256",
    },
    unit: Unit::Millis,
    signed: &[Part::Method, Part::HubSpotUri, Part::Body, Part::Timestamp],
    tolerance_secs: 300,
    body_id: BodyId::HubSpotBatch,
    challenge: None,
};

impl Timestamped {
    fn feed(&self, mac: &mut HmacSha256, method: &str, url: &str, ts: &str, body: &[u8]) {
        for part in self.signed {
            match part {
                Part::Text(text) => mac.update(text.as_bytes()),
                Part::Timestamp => mac.update(ts.as_bytes()),
                Part::Body => mac.update(body),
                Part::Method => mac.update(method.as_bytes()),
                Part::HubSpotUri => feed_hubspot_uri(mac, url),
            }
        }
    }
}

impl Verifier for Timestamped {
    fn prepare(&self, secret: &Secret) -> Result<Key, &'static str> {
        common::mac_key(secret)
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        keys: &[Key],
        now: i64,
    ) -> Result<Verified<'a>, SourceError> {
        let mut tags = Tags::new();
        let (ts_header, ts_text, sig_header) = match self.scheme {
            Scheme::Headers {
                timestamp,
                signature,
                prefix,
                encoding,
                rule,
            } => {
                let value = request.header(signature)?;
                let ts = request.header(timestamp)?;
                let tag = common::single_tag(value, prefix, encoding, signature, rule)?;
                tags.push(tag);
                (timestamp, ts, signature)
            }
            Scheme::Pairs { header } => {
                let value = request.header(header)?;
                let ts = parse_pairs(value, header, &mut tags)?;
                (header, ts, header)
            }
        };
        let ts = common::timestamp(ts_text, ts_header, self.unit)?;
        common::within_tolerance(ts, self.unit, now, self.tolerance_secs, ts_header)?;
        let matched = common::any_matches(keys, &tags, |mac| {
            self.feed(mac, request.method, request.url, ts_text, request.body)
        });
        if !matched {
            return Err(SourceError::Mismatch(sig_header));
        }
        Ok(Verified::new(None, false, Some(ts)))
    }

    fn body_event_id(&self, json: &str) -> Option<String> {
        self.body_id.find(json)
    }

    fn challenge(&self, json: &str) -> Option<(&'static str, String)> {
        let challenge = self.challenge.as_ref()?;
        if challenge.kind.find(json).as_deref() != Some(challenge.is) {
            return None;
        }
        let (field, at) = challenge.echo;
        at.find(json).map(|value| (field, value))
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
        let ts = self.unit.format(now);
        let tag: Tag = common::tag_of(&key, |mac| {
            self.feed(mac, request.method, request.url, &ts, request.body)
        });
        let headers = match self.scheme {
            Scheme::Headers {
                timestamp,
                signature,
                prefix,
                encoding,
                ..
            } => vec![
                (timestamp, ts),
                (signature, format!("{prefix}{}", encoding.encode(&tag))),
            ],
            Scheme::Pairs { header } => {
                vec![(header, format!("t={ts},v1={}", Encoding::Hex.encode(&tag)))]
            }
        };
        Ok(Signed {
            headers,
            query: None,
        })
    }
}

/// Reads `t=<ts>,v1=<hex>,...`: exactly one `t`, at least one `v1` (each
/// exactly one hex MAC), other keys skipped. Returns the timestamp text.
fn parse_pairs<'a>(
    value: &'a str,
    header: &'static str,
    tags: &mut Tags,
) -> Result<&'a str, SourceError> {
    let malformed = SourceError::MalformedHeader {
        header,
        rule: PAIRS_RULE,
    };
    if !common::bounded(value) {
        return Err(malformed);
    }
    let mut ts = None;
    for (i, entry) in value.split(',').enumerate() {
        // One `t` and up to MAX_SIGNATURES signatures of any scheme.
        if i > common::MAX_SIGNATURES {
            return Err(malformed);
        }
        let (key, val) = entry
            .trim_matches([' ', '\t'])
            .split_once('=')
            .ok_or(malformed)?;
        match key {
            "t" if ts.is_none() => ts = Some(val),
            "t" => return Err(malformed),
            "v1" => {
                let tag = Encoding::Hex.decode(val).ok_or(malformed)?;
                if !tags.push(tag) {
                    return Err(malformed);
                }
            }
            _ if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                return Err(malformed);
            }
            _ => {}
        }
    }
    match ts {
        Some(ts) if !tags.is_empty() => Ok(ts),
        _ => Err(malformed),
    }
}

/// Feeds `url` with the escapes HubSpot decodes before signing (and only
/// those, in either case of hex): `%3A : %2F / %3F ? %40 @ %21 ! %24 $
/// %27 ' %28 ( %29 ) %2A * %2C , %3B ;`. Others, such as `%20`, stay.
fn feed_hubspot_uri(mac: &mut HmacSha256, url: &str) {
    let bytes = url.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(decoded) = bytes.get(i + 1..i + 3).and_then(hubspot_escape)
        {
            mac.update(&bytes[start..i]);
            mac.update(&[decoded]);
            i += 3;
            start = i;
            continue;
        }
        i += 1;
    }
    mac.update(&bytes[start..]);
}

fn hubspot_escape(hex: &[u8]) -> Option<u8> {
    let pair = [
        hex[0].to_ascii_uppercase(),
        hex.get(1)?.to_ascii_uppercase(),
    ];
    Some(match &pair {
        b"3A" => b':',
        b"2F" => b'/',
        b"3F" => b'?',
        b"40" => b'@',
        b"21" => b'!',
        b"24" => b'$',
        b"27" => b'\'',
        b"28" => b'(',
        b"29" => b')',
        b"2A" => b'*',
        b"2C" => b',',
        b"3B" => b';',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TestRequest, verify};
    use super::*;

    /// Slack's published vector ("Verifying requests from Slack", also in
    /// python-slack-sdk `test_signature_verifier.py`).
    #[test]
    fn slack_published_vector() {
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let req = TestRequest::new(body)
            .header("X-Slack-Request-Timestamp", "1531420618")
            .header(
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            );
        let secret = ["8f742231b10e8888abcd99yyyzzz85a5"];
        assert!(verify(&req, "slack", &secret, 1_531_420_618).is_ok());
        assert!(matches!(
            verify(&req, "slack", &secret, 1_531_420_618 + 301),
            Err(SourceError::Stale { .. })
        ));
    }

    /// HubSpot/hubspot-api-python `tests/spec/utils/test_signature.py` (v3).
    /// The body is that test's string, which is not JSON.
    #[test]
    fn hubspot_sdk_vector() {
        let req = TestRequest::new(b"{'example_field':'example_value'}")
            .url("https://www.example.com/webhook_uri")
            .header("X-HubSpot-Request-Timestamp", "1693657560000")
            .header(
                "X-HubSpot-Signature-v3",
                "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=",
            );
        let secret = ["yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"];
        assert!(verify(&req, "hubspot", &secret, 1_693_657_560).is_ok());
        assert!(
            verify(
                &req.clone().method("PUT"),
                "hubspot",
                &secret,
                1_693_657_560
            )
            .is_err()
        );
        assert!(
            verify(
                &req.url("https://www.example.com/webhook_uri?a=1"),
                "hubspot",
                &secret,
                1_693_657_560
            )
            .is_err()
        );
    }

    /// Computed by us (Python's hmac) from HubSpot's documented steps, not
    /// published by HubSpot: the URL is signed with `%3A` decoded.
    #[test]
    fn hubspot_decodes_its_twelve_escapes_vector_computed_by_us() {
        let req = |url: &str| {
            TestRequest::new(br#"[{"eventId":1}]"#)
                .url(url)
                .header("x-hubspot-request-timestamp", "1693657560000")
                .header(
                    "x-hubspot-signature-v3",
                    "QhoiTz+CnTeeoa2EnUiUQchSLyfK4QfXmeEtYQ/RprM=",
                )
        };
        let secret = ["yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"];
        let base = "https://hooks.example.com/v1/tenants/acme/sources/hubspot-main?x=a";
        for url in [
            format!("{base}:b"),
            format!("{base}%3Ab"),
            format!("{base}%3ab"),
        ] {
            assert!(
                verify(&req(&url), "hubspot", &secret, 1_693_657_560).is_ok(),
                "{url}"
            );
        }
        // Other escapes are signed as sent.
        assert!(
            verify(
                &req(&format!("{base}%20b")),
                "hubspot",
                &secret,
                1_693_657_560
            )
            .is_err()
        );
    }

    #[test]
    fn hubspot_uri_decoding_is_exactly_the_table() {
        let signed = |url: &str| {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(b"k").expect("key");
            feed_hubspot_uri(&mut mac, url);
            mac.finalize().into_bytes()
        };
        let plain = |s: &str| {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(b"k").expect("key");
            mac.update(s.as_bytes());
            mac.finalize().into_bytes()
        };
        let encoded = "%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B%3a%2f%2a";
        assert_eq!(signed(encoded), plain(":/?@!$'()*,;:/*"));
        for kept in ["%20", "%2B", "%25", "%3", "%", "a%", "%%3A", "%3G", "%é"] {
            let expected = if kept == "%%3A" { "%:" } else { kept };
            assert_eq!(signed(kept), plain(expected), "{kept}");
        }
    }

    /// Computed by us from Stripe's documented scheme (the SDK tests sign
    /// dynamically with `whsec_test_secret`; Stripe publishes no vector).
    #[test]
    fn stripe_vector_computed_by_us() {
        let body = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
        let sig =
            "t=1614265330,v1=af4ead0627a34a8cca29808e8de9ada8e41a92e6237c63cef6eacf51d36cca34";
        let secret = ["whsec_test_secret"];
        let req = TestRequest::new(body).header("Stripe-Signature", sig);
        assert!(verify(&req, "stripe", &secret, 1_614_265_330).is_ok());
        // The key is the whole string, prefix included.
        assert!(verify(&req, "stripe", &["test_secret"], 1_614_265_330).is_err());
        // Test mode's v0 and a rolled secret's second v1 are accepted.
        let other = "v1=".to_owned() + &"0".repeat(64);
        let rolled = format!("t=1614265330,{other},v0=abc,v1={}", &sig[16..]);
        let req = TestRequest::new(body).header("stripe-signature", &rolled);
        assert!(verify(&req, "stripe", &secret, 1_614_265_330).is_ok());
        let stripe = super::super::Provider::parse("stripe").expect("known");
        assert_eq!(
            stripe
                .body_event_id(std::str::from_utf8(body).expect("utf-8"))
                .as_deref(),
            Some("evt_test_webhook")
        );
    }

    /// Computed by us from Formspree's documented scheme (none published).
    #[test]
    fn formspree_vector_computed_by_us() {
        let req = TestRequest::new(br#"{"form":"xyzabc","submission":{"email":"a@example.com"}}"#)
            .header(
                "Formspree-Signature",
                "t=1614265330,v1=e40b8acac129bf905b88740f9948734deb3b42e1e56efdaee228e30f5d79cf96",
            );
        assert!(verify(&req, "formspree", &["formspree-test-secret"], 1_614_265_330).is_ok());
    }

    /// Computed by us from Webflow's documented scheme (the docs' example
    /// omits the secret and body).
    #[test]
    fn webflow_vector_computed_by_us() {
        let body =
            br#"{"triggerType":"form_submission","payload":{"id":"6321ca84df3949bfc6752327"}}"#;
        let req = TestRequest::new(body)
            .header("x-webflow-timestamp", "1663849649733")
            .header(
                "x-webflow-signature",
                "fa6d12ba94a9a0c1966faae9b8b6195c101d209e254f698e8b41368a663a8031",
            );
        let secret = ["webflow-test-secret"];
        assert!(verify(&req, "webflow", &secret, 1_663_849_649).is_ok());
        // Milliseconds: 300 s is 300,000 of them.
        assert!(verify(&req, "webflow", &secret, 1_663_849_649 + 300).is_ok());
        assert!(matches!(
            verify(&req, "webflow", &secret, 1_663_849_649 + 302),
            Err(SourceError::Stale {
                header: "x-webflow-timestamp",
                ..
            })
        ));
        let webflow = super::super::Provider::parse("webflow").expect("known");
        assert_eq!(
            webflow
                .body_event_id(std::str::from_utf8(body).expect("utf-8"))
                .as_deref(),
            Some("6321ca84df3949bfc6752327")
        );
    }

    #[test]
    fn pairs_are_strict_about_t_and_v1() {
        let v1 = format!("v1={}", "a".repeat(64));
        let check = |header: &str| {
            let mut tags = Tags::new();
            parse_pairs(header, "stripe-signature", &mut tags).map(|ts| ts.to_owned())
        };
        assert_eq!(check(&format!("t=1,{v1}")).as_deref(), Ok("1"));
        assert_eq!(check(&format!("{v1}, t=1 ,v0=zz")).as_deref(), Ok("1"));
        let nine = [v1.as_str(); 9].join(",");
        for bad in [
            String::new(),
            "t=1".to_owned(),
            v1.clone(),
            format!("t=1,t=2,{v1}"),
            format!("t=1,{v1},v1=zz"),
            format!("t=1,{v1},"),
            format!("t=1,{v1},junk"),
            format!("t=1,{v1},=x"),
            format!("t=1,{nine}"),
            format!("t=1,{v1},v2={}", "a".repeat(1024)),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }
}
