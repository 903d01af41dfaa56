//! `formbridge sign`: print the three signature headers for a body.

use std::process::ExitCode;

use shared::signature::unix_now;

use super::{Signer, header_lines};
use crate::output;

/// `formbridge sign`: print the three signature headers for a body.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    formbridge sign --tenant acme --secret \"$SECRET\" body.json\n  \
    echo -n '{\"email\":\"ada@example.com\"}' | \\\n      \
        formbridge sign --tenant acme --secret \"$SECRET\" -\n  \
    formbridge sign --tenant acme --timestamp 1767225600 \\\n      \
        --secret fb_test_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c vector.json\n\n\
    The body is signed byte for byte: send exactly these bytes.")]
pub struct SignArgs {
    #[command(flatten)]
    signer: Signer,
    /// Unix time to sign at (default: now).
    #[arg(long, value_name = "N")]
    timestamp: Option<i64>,
}

impl SignArgs {
    /// Prints `Content-Digest`, `X-FormBridge-Timestamp` and
    /// `X-FormBridge-Signature`.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (_, headers) = self.signer.sign(self.timestamp.unwrap_or_else(unix_now))?;
        for (name, value) in header_lines(&headers) {
            output::line(format_args!("{name}: {value}"));
        }
        Ok(ExitCode::SUCCESS)
    }
}
