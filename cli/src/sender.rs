//! The sender's side: signing a body (contract section 1) and posting it.

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use shared::Secret;
use shared::signature::{
    CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, SignedHeaders, TIMESTAMP_HEADER, sign_request,
};
use shared::tenant_id::TenantId;

/// How long `send` waits for the API.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a body could not be signed or sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The tenant ID is invalid.
    #[error("--tenant: {0}")]
    TenantId(String),
    /// The body could not be read.
    #[error("cannot read the body from {source_name}: {error}")]
    Read {
        /// The file, or standard input.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The URL is not an http(s) URL.
    #[error("--url must be an http:// or https:// URL, such as http://127.0.0.1:3000")]
    Url,
    /// The URL is a submissions URL of another tenant.
    #[error(
        "--url is the submissions URL of another tenant than --tenant; pass the API's base URL"
    )]
    OtherTenant,
    /// The request could not be made or answered.
    #[error("cannot reach {url}: {error}")]
    Http {
        /// The submissions URL (the operator's own; no secret in it).
        url: String,
        /// Why, without the URL repeated.
        error: String,
    },
}

/// Reads the body to sign: a file, or standard input for `-`.
pub fn read_body(path: &Path) -> Result<Vec<u8>, SendError> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|error| SendError::Read {
                source_name: "standard input".to_owned(),
                error,
            })?;
        return Ok(body);
    }
    std::fs::read(path).map_err(|error| SendError::Read {
        source_name: path.display().to_string(),
        error,
    })
}

/// The three headers for `body`, signed with `secret` at `timestamp`.
pub fn sign(
    tenant: &str,
    secret: &str,
    body: &[u8],
    timestamp: i64,
) -> Result<SignedHeaders, SendError> {
    let tenant = TenantId::parse(tenant).map_err(|e| SendError::TenantId(e.to_string()))?;
    Ok(sign_request(
        &Secret::new(secret.to_owned()),
        &tenant,
        body,
        timestamp,
    ))
}

/// The headers as `sign` prints them, in the contract's names.
pub fn header_lines(headers: &SignedHeaders) -> [(&'static str, &str); 3] {
    [
        ("Content-Digest", &headers.content_digest),
        ("X-FormBridge-Timestamp", &headers.timestamp),
        ("X-FormBridge-Signature", &headers.signature),
    ]
}

/// The submissions URL for a tenant: `url` itself when it already ends in
/// `/submissions`, else `url` with `/v1/tenants/{tenant}/submissions`
/// appended (so both a gateway's base URL and a stage URL work).
pub fn submissions_url(url: &str, tenant: &str) -> Result<reqwest::Url, SendError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| SendError::Url)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SendError::Url);
    }
    if parsed.path().ends_with("/submissions") {
        let names_tenant = parsed
            .path()
            .ends_with(&format!("/v1/tenants/{tenant}/submissions"));
        return if names_tenant {
            Ok(parsed)
        } else {
            Err(SendError::OtherTenant)
        };
    }
    let mut full = parsed;
    let path = format!(
        "{}/v1/tenants/{tenant}/submissions",
        full.path().trim_end_matches('/')
    );
    full.set_path(&path);
    Ok(full)
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: reqwest::StatusCode,
    /// The body, as text.
    pub body: String,
}

/// Posts a signed body.
pub async fn send(
    url: &reqwest::Url,
    content_type: &str,
    headers: &SignedHeaders,
    body: Vec<u8>,
) -> Result<Answer, SendError> {
    let http_error = |e: reqwest::Error| SendError::Http {
        url: url.to_string(),
        error: e.without_url().to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(http_error)?;
    let response = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(CONTENT_DIGEST_HEADER, &headers.content_digest)
        .header(TIMESTAMP_HEADER, &headers.timestamp)
        .header(SIGNATURE_HEADER, &headers.signature)
        .body(body)
        .send()
        .await
        .map_err(http_error)?;
    let status = response.status();
    let body = response.text().await.map_err(http_error)?;
    Ok(Answer { status, body })
}

/// What to check after a refusal, by status.
pub fn hint(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "a signature header is missing, or the body is not the one signed",
        403 => {
            "refused by the authorizer: check --tenant and --secret, the clock (requests more than \
             5 minutes off are refused), that the tenant is active, and its rate limit"
        }
        404 => {
            "no such route: --url should be the gateway's base URL, such as http://127.0.0.1:3000"
        }
        413 => "the body is larger than the gateway accepts (MAX_BODY_BYTES)",
        415 => "use --content-type application/json or application/x-www-form-urlencoded",
        503 => "the gateway's queue is full or its bus is down: send it again shortly",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_published_test_vector() {
        let body = br#"{"email":"ada@example.com","message":"Hello"}"#;
        let headers = sign(
            "acme",
            "fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c",
            body,
            1_767_225_600,
        )
        .unwrap();
        assert_eq!(
            headers.content_digest,
            "sha-256=:kLZCCKh+RzacssrmVJu0nqgcAB6+8wBJdYBvr/uyQc8=:"
        );
        assert_eq!(
            headers.signature,
            "v1=92f42e07398400bf7b1ec50fb0219ba4006c5243c4cb965976ac8ad22d76693f"
        );
    }

    #[test]
    fn builds_submission_urls() {
        let url = |base| submissions_url(base, "acme").unwrap().to_string();
        assert_eq!(
            url("http://127.0.0.1:3000"),
            "http://127.0.0.1:3000/v1/tenants/acme/submissions"
        );
        assert_eq!(
            url("https://abc.execute-api.eu-west-1.amazonaws.com/prod/"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1/tenants/acme/submissions"
        );
        assert_eq!(
            url("http://h/v1/tenants/acme/submissions"),
            "http://h/v1/tenants/acme/submissions"
        );
        assert!(submissions_url("http://h/v1/tenants/other/submissions", "acme").is_err());
        assert!(submissions_url("ftp://h", "acme").is_err());
        assert!(submissions_url("127.0.0.1:3000", "acme").is_err());
    }
}
