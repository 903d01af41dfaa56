//! Signature scheme v1's headers (docs/protocol.md, section 1):
//! `X-FormBridge-Timestamp`, `Content-Digest` and `X-FormBridge-Signature`
//! as the authorizer checks them, the digest against a body as ingest
//! checks it, and the tenant ID in the path.
//!
//! Input: `timestamp\ndigest\nsignature\ntenant\nbody`.
//! Asserts: nothing panics; what is accepted has the documented shape (a
//! decimal timestamp inside the window, a printable digest, a signature
//! list holding the MAC of the test vector's secret when it verifies); a
//! digest accepted for a body is that body's SHA-256; whatever a sender
//! signs with `sign_request` verifies.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shared::signature::{
    self, DEFAULT_REPLAY_WINDOW, RequestHeaders, SigningKey, VerifyError, check_headers,
    content_digest, verify_content_digest,
};
use shared::{Secret, TenantId};

fuzz_target!(|data: &[u8]| {
    let [timestamp, digest, signature, tenant, body] = fuzz::lines::<5>(data);
    let timestamp = String::from_utf8_lossy(timestamp);
    let digest = String::from_utf8_lossy(digest);
    let signature = String::from_utf8_lossy(signature);
    let tenant = String::from_utf8_lossy(tenant);
    let headers = RequestHeaders {
        timestamp: &timestamp,
        content_digest: &digest,
        signature: &signature,
    };
    let key = SigningKey::new(&Secret::new(fuzz::VECTOR_SECRET));

    // The tenant ID grammar: 1 to 63 of [a-z0-9-], a letter or digit at
    // both ends.
    let tenant_id = TenantId::parse(&tenant).ok();
    if let Some(id) = &tenant_id {
        let s = id.as_str();
        assert!((1..=63).contains(&s.len()), "{s:?}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!s.starts_with('-') && !s.ends_with('-'), "{s:?}");
        assert_eq!(s, tenant);
    }

    match check_headers(headers, fuzz::NOW, DEFAULT_REPLAY_WINDOW) {
        Ok(fresh) => {
            assert!(!timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()));
            let ts: i64 = timestamp
                .parse()
                .expect("accepted timestamps are i64 seconds");
            assert!((ts - fuzz::NOW).abs() <= 300, "{ts} outside the window");
            assert!(!digest.is_empty() && digest.len() <= signature::MAX_DIGEST_HEADER_LEN);
            assert!(digest.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert!(signature.len() <= signature::MAX_SIGNATURE_HEADER_LEN);
            if let Some(id) = &tenant_id
                && fresh.verify(id, std::slice::from_ref(&key)).is_ok()
            {
                let expected = key.sign(&timestamp, id, &digest);
                let hex = &expected["v1=".len()..];
                assert!(
                    signature.to_ascii_lowercase().contains(hex),
                    "verified without the MAC in the header"
                );
            }
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            // Stale and future are about the window only: the widest
            // window accepts every well-formed timestamp.
            if matches!(e, VerifyError::Stale { .. } | VerifyError::Future { .. }) {
                let wide = check_headers(headers, fuzz::NOW, Duration::MAX);
                assert!(
                    !matches!(
                        wide,
                        Err(VerifyError::Stale { .. } | VerifyError::Future { .. })
                    ),
                    "{wide:?}"
                );
            }
        }
    }

    // The digest against the body, as ingest checks it.
    if verify_content_digest(&digest, body).is_ok() {
        let own = content_digest(body);
        let b64 = &own["sha-256=:".len()..own.len() - 1];
        assert!(digest.contains(b64), "a digest of other bytes accepted");
    }

    // What a sender signs verifies, and its digest matches its body.
    if let Some(id) = &tenant_id {
        let signed =
            signature::sign_request(&Secret::new(fuzz::VECTOR_SECRET), id, body, fuzz::NOW);
        signature::verify(
            signed.as_request(),
            id,
            &[key],
            fuzz::NOW,
            DEFAULT_REPLAY_WINDOW,
        )
        .expect("a request signed as documented verifies");
        verify_content_digest(&signed.content_digest, body).expect("its digest matches");
    }
});
