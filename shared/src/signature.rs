//! Signature scheme v1 (docs/protocol.md, section 1).
//!
//! A sender signs `"{timestamp}\n{tenant_id}\n{content_digest}"` with
//! HMAC-SHA256 under one of the tenant's signing secrets and sends:
//!
//! - `Content-Digest: sha-256=:<base64 SHA-256 of the raw body>:` (RFC 9530)
//! - `X-FormBridge-Timestamp: <unix seconds>`
//! - `X-FormBridge-Signature: v1=<hex>[, v1=<hex> ...]`
//!
//! The authorizer never sees the body, so verification is split: the
//! authorizer checks the signature over the headers ([`verify`]), ingest
//! checks the body against the signed digest ([`verify_content_digest`]).
//!
//! Everything here is pure: the current time is an argument. Work is bounded
//! by header length limits checked before any parsing, and MACs are compared
//! in constant time.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::secret::Secret;
use crate::tenant_id::TenantId;

/// Header carrying the body digest.
pub const CONTENT_DIGEST_HEADER: &str = "content-digest";
/// Header carrying the Unix timestamp the sender signed.
pub const TIMESTAMP_HEADER: &str = "x-formbridge-timestamp";
/// Header carrying one or more `v1=` signatures.
pub const SIGNATURE_HEADER: &str = "x-formbridge-signature";

/// Default replay window: requests more than this far from now are rejected.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(300);
/// Most signatures (of any version) one signature header may carry.
pub const MAX_SIGNATURES: usize = 8;
/// Longest signature header accepted before any parsing.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 1024;
/// Longest `Content-Digest` header accepted.
pub const MAX_DIGEST_HEADER_LEN: usize = 512;
/// Longest timestamp accepted (digits of an `i64` second count).
const MAX_TIMESTAMP_LEN: usize = 18;

type HmacSha256 = Hmac<Sha256>;

/// A signing secret prepared for HMAC: the keyed state is computed once when
/// the tenant record is loaded, not on every request.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl SigningKey {
    /// Prepares `secret` (its UTF-8 bytes are the HMAC key).
    pub fn new(secret: &Secret) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(secret.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { mac }
    }

    fn tag(&self, timestamp: &str, tenant: &TenantId, digest: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(timestamp.as_bytes());
        mac.update(b"\n");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(digest.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The `v1=<hex>` signature of a request.
    pub fn sign(&self, timestamp: &str, tenant: &TenantId, content_digest: &str) -> String {
        format!(
            "v1={}",
            hex::encode(self.tag(timestamp, tenant, content_digest))
        )
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The current Unix time in seconds, the `now` every check here takes.
pub fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// The `Content-Digest` header value for a body: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
    )
}

/// The three headers a sender attaches to a request. `Debug` hides the
/// signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `X-FormBridge-Timestamp`.
    pub timestamp: String,
    /// `Content-Digest`.
    pub content_digest: String,
    /// `X-FormBridge-Signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as a verifier receives them.
    pub fn as_request(&self) -> RequestHeaders<'_> {
        RequestHeaders {
            timestamp: &self.timestamp,
            content_digest: &self.content_digest,
            signature: &self.signature,
        }
    }
}

impl fmt::Debug for SignedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_request().fmt(f)
    }
}

/// Signs a request the way a sender must: digest the body, then sign the
/// timestamp, tenant and digest with `secret`.
pub fn sign_request(secret: &Secret, tenant: &TenantId, body: &[u8], now: i64) -> SignedHeaders {
    let timestamp = now.to_string();
    let content_digest = content_digest(body);
    let signature = SigningKey::new(secret).sign(&timestamp, tenant, &content_digest);
    SignedHeaders {
        timestamp,
        content_digest,
        signature,
    }
}

/// The signature headers of an incoming request, exactly as sent. `Debug`
/// hides the signature.
#[derive(Clone, Copy)]
pub struct RequestHeaders<'a> {
    /// `X-FormBridge-Timestamp`.
    pub timestamp: &'a str,
    /// `Content-Digest` (opaque here; ingest checks it against the body).
    pub content_digest: &'a str,
    /// `X-FormBridge-Signature`.
    pub signature: &'a str,
}

impl fmt::Debug for RequestHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHeaders")
            .field("timestamp", &self.timestamp)
            .field("content_digest", &self.content_digest)
            .field("signature", &"[redacted]")
            .finish()
    }
}

/// Why a request's signature was not accepted. Never contains a secret or a
/// signature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The timestamp is not a decimal count of seconds.
    #[error("X-FormBridge-Timestamp is not a Unix time in whole seconds")]
    MalformedTimestamp,
    /// The timestamp is older than the replay window.
    #[error("timestamp is {age_secs} s old, outside the replay window")]
    Stale {
        /// How far in the past, in seconds.
        age_secs: i64,
    },
    /// The timestamp is further in the future than the replay window.
    #[error("timestamp is {ahead_secs} s in the future, outside the replay window")]
    Future {
        /// How far in the future, in seconds.
        ahead_secs: i64,
    },
    /// The `Content-Digest` header is empty, too long or not printable ASCII.
    #[error("Content-Digest is empty, too long or not printable ASCII")]
    MalformedDigest,
    /// The signature header is not a list of `v1=<64 hex>` values.
    #[error("X-FormBridge-Signature is not a list of v1=<hex> signatures")]
    MalformedSignature,
    /// No signature matches any active secret.
    #[error("no signature matches an active signing secret")]
    Mismatch,
}

impl VerifyError {
    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::Stale { .. } => "stale_timestamp",
            Self::Future { .. } => "future_timestamp",
            Self::MalformedDigest => "malformed_digest",
            Self::MalformedSignature => "malformed_signature",
            Self::Mismatch => "bad_signature",
        }
    }
}

/// A request whose headers are well-formed and fresh, ready to be checked
/// against the tenant's secrets. Produced by [`check_headers`], so the
/// cheap checks run before the tenant record is looked up.
pub struct FreshRequest<'a> {
    timestamp: &'a str,
    content_digest: &'a str,
    signatures: [[u8; 32]; MAX_SIGNATURES],
    count: usize,
}

impl fmt::Debug for FreshRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshRequest")
            .field("timestamp", &self.timestamp)
            .field("signatures", &self.count)
            .finish_non_exhaustive()
    }
}

/// Checks the headers' shape and the replay window; no secret is needed.
///
/// `now` is Unix seconds. A request is stale when `now - timestamp > window`
/// and from the future when `timestamp - now > window`.
pub fn check_headers<'a>(
    headers: RequestHeaders<'a>,
    now: i64,
    window: Duration,
) -> Result<FreshRequest<'a>, VerifyError> {
    let ts = parse_timestamp(headers.timestamp)?;
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let age = now.saturating_sub(ts);
    if age > window {
        return Err(VerifyError::Stale { age_secs: age });
    }
    if age < -window {
        return Err(VerifyError::Future {
            ahead_secs: ts.saturating_sub(now),
        });
    }
    let digest = headers.content_digest;
    if digest.is_empty()
        || digest.len() > MAX_DIGEST_HEADER_LEN
        || !digest.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(VerifyError::MalformedDigest);
    }
    let mut fresh = FreshRequest {
        timestamp: headers.timestamp,
        content_digest: digest,
        signatures: [[0; 32]; MAX_SIGNATURES],
        count: 0,
    };
    parse_signatures(headers.signature, &mut fresh)?;
    Ok(fresh)
}

impl FreshRequest<'_> {
    /// Whether any `v1` signature matches any key, in constant time with
    /// respect to the MAC values: every pair is compared.
    pub fn verify(&self, tenant: &TenantId, keys: &[SigningKey]) -> Result<(), VerifyError> {
        let mut matched = Choice::from(0);
        for key in keys {
            let tag = key.tag(self.timestamp, tenant, self.content_digest);
            for sig in &self.signatures[..self.count] {
                matched |= tag.ct_eq(sig);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// Verifies a request's signature headers in one step: shape, replay window,
/// then the MAC against every active key.
pub fn verify(
    headers: RequestHeaders<'_>,
    tenant: &TenantId,
    keys: &[SigningKey],
    now: i64,
    window: Duration,
) -> Result<(), VerifyError> {
    check_headers(headers, now, window)?.verify(tenant, keys)
}

fn parse_timestamp(s: &str) -> Result<i64, VerifyError> {
    if s.is_empty() || s.len() > MAX_TIMESTAMP_LEN || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    s.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

/// Parses `v1=<hex>` entries separated by commas with optional spaces.
/// Entries of other versions are skipped (so a sender can add `v2=` later),
/// but count towards [`MAX_SIGNATURES`]; at least one `v1` is required.
fn parse_signatures(header: &str, out: &mut FreshRequest<'_>) -> Result<(), VerifyError> {
    if header.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(VerifyError::MalformedSignature);
    }
    for (i, entry) in header.split(',').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(VerifyError::MalformedSignature);
        }
        let entry = entry.trim_matches([' ', '\t']);
        let (version, value) = entry
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature)?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(VerifyError::MalformedSignature);
        }
        if version != "v1" {
            continue;
        }
        let slot = &mut out.signatures[out.count];
        hex::decode_to_slice(value, slot).map_err(|_| VerifyError::MalformedSignature)?;
        out.count += 1;
    }
    if out.count == 0 {
        return Err(VerifyError::MalformedSignature);
    }
    Ok(())
}

/// Why a body does not match its `Content-Digest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header is not an RFC 9530 dictionary with a valid `sha-256` member.
    #[error("Content-Digest must be sha-256=:<base64 of the SHA-256 of the body>:")]
    Malformed,
    /// The body's SHA-256 differs from the signed digest.
    #[error("body does not match Content-Digest")]
    Mismatch,
}

/// Checks `body` against a `Content-Digest` header in constant time.
///
/// The header is an RFC 9530 dictionary; its `sha-256` member is required and
/// other algorithms are ignored.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<(), DigestError> {
    if header.len() > MAX_DIGEST_HEADER_LEN {
        return Err(DigestError::Malformed);
    }
    let mut expected = None;
    for member in header.split(',') {
        let (key, value) = member
            .trim_matches([' ', '\t'])
            .split_once('=')
            .ok_or(DigestError::Malformed)?;
        if key != "sha-256" {
            continue;
        }
        let b64 = value
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .ok_or(DigestError::Malformed)?;
        let mut digest = [0u8; 32];
        let n = base64::engine::general_purpose::STANDARD
            .decode_slice(b64, &mut digest)
            .map_err(|_| DigestError::Malformed)?;
        if n != digest.len() {
            return Err(DigestError::Malformed);
        }
        expected = Some(digest);
    }
    let expected = expected.ok_or(DigestError::Malformed)?;
    let actual: [u8; 32] = Sha256::digest(body).into();
    if bool::from(actual.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(DigestError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector (docs/protocol.md, section 1).
    const VECTOR_SECRET: &str = "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";
    const VECTOR_TENANT: &str = "acme";
    const VECTOR_TIMESTAMP: i64 = 1_767_225_600;
    const VECTOR_BODY: &[u8] = br#"{"email":"ada@example.com","message":"Hello"}"#;
    const WINDOW: Duration = DEFAULT_REPLAY_WINDOW;

    fn tenant() -> TenantId {
        TenantId::parse(VECTOR_TENANT).expect("valid")
    }

    fn key(s: &str) -> SigningKey {
        SigningKey::new(&Secret::new(s))
    }

    fn signed() -> SignedHeaders {
        sign_request(
            &Secret::new(VECTOR_SECRET),
            &tenant(),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
        )
    }

    fn headers(h: &SignedHeaders) -> RequestHeaders<'_> {
        h.as_request()
    }

    #[test]
    fn published_test_vector() {
        let h = signed();
        assert_eq!(h.timestamp, "1767225600");
        assert_eq!(
            h.content_digest,
            "sha-256=:kLZCCKh+RzacssrmVJu0nqgcAB6+8wBJdYBvr/uyQc8=:"
        );
        assert_eq!(
            h.signature,
            "v1=92f42e07398400bf7b1ec50fb0219ba4006c5243c4cb965976ac8ad22d76693f"
        );
    }

    #[test]
    fn accepts_a_fresh_signed_request_within_the_window() {
        let h = signed();
        for now in [
            VECTOR_TIMESTAMP - 300,
            VECTOR_TIMESTAMP,
            VECTOR_TIMESTAMP + 300,
        ] {
            assert_eq!(
                verify(headers(&h), &tenant(), &[key(VECTOR_SECRET)], now, WINDOW),
                Ok(())
            );
        }
    }

    #[test]
    fn rejects_stale_and_future_timestamps_distinctly() {
        let h = signed();
        let keys = [key(VECTOR_SECRET)];
        assert_eq!(
            verify(
                headers(&h),
                &tenant(),
                &keys,
                VECTOR_TIMESTAMP + 301,
                WINDOW
            ),
            Err(VerifyError::Stale { age_secs: 301 })
        );
        assert_eq!(
            verify(
                headers(&h),
                &tenant(),
                &keys,
                VECTOR_TIMESTAMP - 301,
                WINDOW
            ),
            Err(VerifyError::Future { ahead_secs: 301 })
        );
        let narrow = Duration::from_secs(10);
        assert!(verify(headers(&h), &tenant(), &keys, VECTOR_TIMESTAMP + 11, narrow).is_err());
    }

    #[test]
    fn any_v1_signature_against_any_active_secret() {
        let old = "fb_test_previous_secret_0000000000000000";
        let h = sign_request(&Secret::new(old), &tenant(), VECTOR_BODY, VECTOR_TIMESTAMP);
        let other = signed().signature;
        let combined = format!("v2=abc, {} ,{}", other, h.signature);
        let req = RequestHeaders {
            signature: &combined,
            ..headers(&h)
        };
        let keys = [key(VECTOR_SECRET), key(old)];
        assert_eq!(
            verify(req, &tenant(), &keys, VECTOR_TIMESTAMP, WINDOW),
            Ok(())
        );
        // Rotated out: only the old secret signed, and it is no longer active.
        assert_eq!(
            verify(headers(&h), &tenant(), &keys[..1], VECTOR_TIMESTAMP, WINDOW),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn signature_covers_timestamp_tenant_and_digest() {
        let h = signed();
        let keys = [key(VECTOR_SECRET)];
        let other_tenant = TenantId::parse("acme2").expect("valid");
        assert_eq!(
            verify(headers(&h), &other_tenant, &keys, VECTOR_TIMESTAMP, WINDOW),
            Err(VerifyError::Mismatch)
        );
        let ts = (VECTOR_TIMESTAMP + 1).to_string();
        let moved = RequestHeaders {
            timestamp: &ts,
            ..headers(&h)
        };
        assert_eq!(
            verify(moved, &tenant(), &keys, VECTOR_TIMESTAMP, WINDOW),
            Err(VerifyError::Mismatch)
        );
        let digest = content_digest(b"{}");
        let swapped = RequestHeaders {
            content_digest: &digest,
            ..headers(&h)
        };
        assert_eq!(
            verify(swapped, &tenant(), &keys, VECTOR_TIMESTAMP, WINDOW),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_rejected_with_their_own_error() {
        let h = signed();
        let keys = [key(VECTOR_SECRET)];
        let check = |ts: &str, digest: &str, sig: &str| {
            verify(
                RequestHeaders {
                    timestamp: ts,
                    content_digest: digest,
                    signature: sig,
                },
                &tenant(),
                &keys,
                VECTOR_TIMESTAMP,
                WINDOW,
            )
        };
        let ts = h.timestamp.as_str();
        let d = h.content_digest.as_str();
        let s = h.signature.as_str();
        for bad_ts in [
            "",
            "-1",
            "+1767225600",
            "1767225600.0",
            " 1767225600",
            "9".repeat(40).as_str(),
        ] {
            assert_eq!(
                check(bad_ts, d, s),
                Err(VerifyError::MalformedTimestamp),
                "{bad_ts:?}"
            );
        }
        for bad_digest in [
            "",
            "sha-256=:\u{7f}:",
            &"a".repeat(MAX_DIGEST_HEADER_LEN + 1),
        ] {
            assert_eq!(check(ts, bad_digest, s), Err(VerifyError::MalformedDigest));
        }
        let too_many = [s; MAX_SIGNATURES + 1].join(",");
        let too_long = format!("{s},v2={}", "a".repeat(MAX_SIGNATURE_HEADER_LEN));
        for bad_sig in [
            "",
            "v1",
            "v1=",
            "v1=zz",
            &s[..s.len() - 1],
            &format!("{s}00"),
            &format!("{s},"),
            "v2=abcd",
            &format!("=abc,{s}"),
            &too_many,
            &too_long,
        ] {
            assert_eq!(
                check(ts, d, bad_sig),
                Err(VerifyError::MalformedSignature),
                "{bad_sig:?}"
            );
        }
        // The maximum is accepted.
        let max = [s; MAX_SIGNATURES].join(", ");
        assert_eq!(check(ts, d, &max), Ok(()));
    }

    #[test]
    fn extreme_clock_values_do_not_overflow() {
        let h = signed();
        let keys = [key(VECTOR_SECRET)];
        let huge = "999999999999999999";
        let req = RequestHeaders {
            timestamp: huge,
            ..headers(&h)
        };
        // An unbounded window accepts any time and goes on to the MAC.
        assert!(matches!(
            verify(req, &tenant(), &keys, 0, Duration::MAX),
            Err(VerifyError::Mismatch)
        ));
        assert!(matches!(
            verify(req, &tenant(), &keys, i64::MIN, WINDOW),
            Err(VerifyError::Future { .. })
        ));
        assert!(matches!(
            verify(headers(&h), &tenant(), &keys, i64::MAX, WINDOW),
            Err(VerifyError::Stale { .. })
        ));
    }

    #[test]
    fn content_digest_round_trip_and_rejections() {
        let body = VECTOR_BODY;
        let header = content_digest(body);
        assert_eq!(verify_content_digest(&header, body), Ok(()));
        assert_eq!(
            verify_content_digest(&format!("sha-512=:AAAA:, {header}"), body),
            Ok(())
        );
        assert_eq!(
            verify_content_digest(&header, b"{\"email\":\"mallory\"}"),
            Err(DigestError::Mismatch)
        );
        for bad in [
            "",
            "sha-256",
            "sha-256=abc",
            "sha-256=:not base64:",
            "sha-256=:AAAA:",
            "sha-512=:AAAA:",
            &header[..header.len() - 1],
            &format!("{header}{}", " ".repeat(MAX_DIGEST_HEADER_LEN)),
        ] {
            assert_eq!(
                verify_content_digest(bad, body),
                Err(DigestError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_and_keys_never_print_secrets_or_signatures() {
        let h = signed();
        let k = key(VECTOR_SECRET);
        assert_eq!(format!("{k:?}"), "[redacted]");
        let hex_sig = &h.signature[3..];
        let fresh = check_headers(headers(&h), VECTOR_TIMESTAMP, WINDOW).expect("fresh");
        for debug in [
            format!("{h:?}"),
            format!("{:?}", headers(&h)),
            format!("{fresh:?}"),
        ] {
            assert!(!debug.contains(hex_sig), "{debug}");
        }
        let err = verify(
            headers(&h),
            &tenant(),
            &[key("x".repeat(32).as_str())],
            VECTOR_TIMESTAMP,
            WINDOW,
        )
        .expect_err("mismatch");
        assert!(!err.to_string().contains(hex_sig) && !format!("{err:?}").contains(hex_sig));
    }
}
