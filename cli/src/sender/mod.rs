//! The sender's tools: `sign` and `send` (docs/protocol.md, section 1),
//! and `receive`, a verifying webhook receiver for local tenants and load
//! tests (the local gateway's built-in default delivers to one too).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use shared::Secret;
use shared::signature::{SignedHeaders, sign_request};
use shared::tenant_id::TenantId;

pub mod receive;
pub mod send;
pub mod sign;

pub use receive::ReceiveArgs;
pub use send::SendArgs;
pub use sign::SignArgs;

/// Who signs what: the options `sign` and `send` share.
#[derive(clap::Args)]
pub struct Signer {
    /// The tenant ID (the path segment).
    #[arg(long, value_name = "ID")]
    pub tenant: String,
    /// One of the tenant's signing secrets (or set FORMBRIDGE_SECRET, which keeps it out of `ps`).
    #[arg(
        long,
        value_name = "SECRET",
        env = "FORMBRIDGE_SECRET",
        hide_env_values = true
    )]
    pub secret: String,
    /// The body: a file, or - for standard input.
    #[arg(value_name = "FILE|-")]
    pub body: PathBuf,
}

impl Signer {
    /// The body's bytes and the three headers for it, signed at `timestamp`.
    pub fn sign(&self, timestamp: i64) -> Result<(Vec<u8>, SignedHeaders), SendError> {
        let body = read_body(&self.body)?;
        let headers = sign(&self.tenant, &self.secret, &body, timestamp)?;
        Ok((body, headers))
    }
}

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
    /// The idempotency key would be refused.
    #[error("--idempotency-key must be 1 to 255 printable ASCII characters")]
    IdempotencyKey,
    /// The URL is a submissions URL of another tenant.
    #[error(
        "--url is the submissions URL of another tenant than --tenant; pass the API's base URL"
    )]
    OtherTenant,
    /// The connection was refused: nothing listens at the URL's address.
    #[error(
        "cannot reach {url}: nothing accepts connections there; is the gateway running? \
         Start it with `formbridge serve`, or check --url"
    )]
    Unreachable {
        /// The URL, as `send::shown_url` shows it.
        url: String,
    },
    /// The request could not be made or answered.
    #[error("cannot reach {url}: {error}")]
    Http {
        /// The URL, as `send::shown_url` shows it (no user info, no query).
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

/// The headers as `sign` prints them, with their names on the wire.
pub fn header_lines(headers: &SignedHeaders) -> [(&'static str, &str); 3] {
    [
        ("Content-Digest", &headers.content_digest),
        ("X-FormBridge-Timestamp", &headers.timestamp),
        ("X-FormBridge-Signature", &headers.signature),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_published_test_vector() {
        let v = testkit::VECTOR;
        let headers = sign(v.tenant, v.secret, v.body, v.timestamp).unwrap();
        assert_eq!(headers.content_digest, v.content_digest);
        assert_eq!(headers.signature, v.signature);
    }
}
