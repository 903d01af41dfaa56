//! New tenant records with freshly generated secrets.

use base64::Engine as _;
use serde_json::{Value, json};
use shared::TenantRecord;
use shared::tenant_id::TenantId;

/// Random bytes in a signing secret (256 bits, as HMAC-SHA256's key size).
const SIGNING_SECRET_BYTES: usize = 32;
/// Random bytes in a `whsec_` delivery secret.
const WEBHOOK_SECRET_BYTES: usize = 32;

/// Why a record could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NewTenantError {
    /// The ID is not a valid tenant ID.
    #[error("{0}")]
    TenantId(String),
    /// The options make an invalid record (a bad destination URL).
    #[error("{0}")]
    Record(String),
    /// The operating system's random source failed.
    #[error("cannot read the system's random source: {0}")]
    Random(getrandom::Error),
}

/// `count` bytes from the operating system's CSPRNG.
fn random(count: usize) -> Result<Vec<u8>, NewTenantError> {
    let mut bytes = vec![0; count];
    getrandom::fill(&mut bytes).map_err(NewTenantError::Random)?;
    Ok(bytes)
}

/// A new signing secret: `fb_` and 43 characters of URL-safe base64.
pub fn signing_secret() -> Result<String, NewTenantError> {
    let random = random(SIGNING_SECRET_BYTES)?;
    Ok(format!(
        "fb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    ))
}

/// A new Standard Webhooks delivery secret: `whsec_` and standard base64.
pub fn webhook_secret() -> Result<String, NewTenantError> {
    let random = random(WEBHOOK_SECRET_BYTES)?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    ))
}

/// A new active tenant record (contract section 4) with a fresh signing
/// secret and, with a destination, a fresh delivery secret. The record is
/// validated as every function will read it.
pub fn new_record(
    id: &str,
    destination: Option<&str>,
    rate_limit: Option<u32>,
) -> Result<(Value, TenantRecord), NewTenantError> {
    let id = TenantId::parse(id).map_err(|e| NewTenantError::TenantId(e.to_string()))?;
    let mut record = json!({
        "tenant_id": id,
        "status": "active",
        "signing_secrets": [signing_secret()?],
        "routing": "shared",
    });
    if let Some(rps) = rate_limit {
        record["rate_limit"] =
            json!({ "requests_per_second": rps, "burst": rps.saturating_mul(2) });
    }
    if let Some(url) = destination {
        record["destination"] = json!({ "url": url, "secret": webhook_secret()? });
    }
    let parsed = TenantRecord::from_value(record.clone())
        .map_err(|e| NewTenantError::Record(e.to_string()))?;
    Ok((record, parsed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_and_secrets_fresh() {
        let (a, parsed) =
            new_record("acme", Some("https://hooks.acme.example/forms"), Some(50)).unwrap();
        let (b, _) = new_record("acme", Some("https://hooks.acme.example/forms"), None).unwrap();
        assert_eq!(parsed.tenant_id.as_str(), "acme");
        assert_ne!(a["signing_secrets"][0], b["signing_secrets"][0]);
        assert_ne!(a["destination"]["secret"], b["destination"]["secret"]);
        assert_eq!(a["signing_secrets"][0].as_str().unwrap().len(), 46);
        assert_eq!(a["rate_limit"]["burst"], 100);
        assert!(b.get("rate_limit").is_none());
    }

    #[test]
    fn bad_ids_and_destinations_are_refused() {
        assert!(matches!(
            new_record("Acme!", None, None),
            Err(NewTenantError::TenantId(_))
        ));
        assert!(matches!(
            new_record("acme", Some("ftp://example.com"), None),
            Err(NewTenantError::Record(_))
        ));
    }
}
