//! `formbridge send`: sign a body and post it.

use std::process::ExitCode;
use std::time::Duration;

use shared::signature::{
    CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, SignedHeaders, TIMESTAMP_HEADER, unix_now,
};

use shared::idempotency::valid_header_key;

use super::{SendError, Signer};
use crate::output;

/// How long `send` waits for the API.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// `formbridge send`: sign a body and POST it; print the status and the
/// submission IDs.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    formbridge send --url http://127.0.0.1:3000 --tenant demo \\\n      \
        --secret \"$SECRET\" body.json\n  \
    echo '{\"email\":\"ada@example.com\"}' | \\\n      \
        formbridge send --url \"$API_URL\" --tenant acme -\n      \
        (the secret from FORMBRIDGE_SECRET)\n  \
    formbridge send --url http://127.0.0.1:3000 --tenant demo \\\n      \
        --content-type application/x-www-form-urlencoded form.txt\n\n\
    --url is the API's base URL; /v1/tenants/{tenant}/submissions is\n\
    appended unless it is already there. Exit status: 0 when accepted\n\
    (202), 1 when refused, 2 for a usage or connection error.")]
pub struct SendArgs {
    /// The API's base URL, such as http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    url: String,
    #[command(flatten)]
    signer: Signer,
    /// The body's media type.
    #[arg(long, value_name = "TYPE", default_value = "application/json")]
    content_type: String,
    /// Names the submission (for example your form's own submission ID): sending again with the same key, even signed again, is answered with the first answer and not accepted twice.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

impl SendArgs {
    /// Signs and posts the body, then prints the answer.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let url = submissions_url(&self.url, &self.signer.tenant)?;
        if let Some(key) = &self.idempotency_key
            && !valid_header_key(key)
        {
            return Err(SendError::IdempotencyKey.into());
        }
        let (body, headers) = self.signer.sign(unix_now())?;
        let answer = crate::runtime::current_thread()?.block_on(send(
            &url,
            &self.content_type,
            &headers,
            self.idempotency_key.as_deref(),
            body,
        ))?;
        Ok(report(&answer))
    }
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
    /// The answer is the first answer to the same request, again
    /// (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

/// Posts a signed body, with an `Idempotency-Key` when given.
pub async fn send(
    url: &reqwest::Url,
    content_type: &str,
    headers: &SignedHeaders,
    idempotency_key: Option<&str>,
    body: Vec<u8>,
) -> Result<Answer, SendError> {
    let http_error = |e: reqwest::Error| {
        if refused(&e) {
            SendError::Unreachable {
                url: url.to_string(),
            }
        } else {
            SendError::Http {
                url: url.to_string(),
                error: e.without_url().to_string(),
            }
        }
    };
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(http_error)?;
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(CONTENT_DIGEST_HEADER, &headers.content_digest)
        .header(TIMESTAMP_HEADER, &headers.timestamp)
        .header(SIGNATURE_HEADER, &headers.signature);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.body(body).send().await.map_err(http_error)?;
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v.as_bytes() == b"true");
    let body = response.text().await.map_err(http_error)?;
    Ok(Answer {
        status,
        body,
        replayed,
    })
}

/// Whether the connection was refused: nothing listens at the address
/// (other connect errors, DNS or TLS, keep their own message).
fn refused(error: &reqwest::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = e.source();
    }
    false
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

/// Prints the answer: the status, then the submission IDs one per line,
/// or the error with a hint.
fn report(answer: &Answer) -> ExitCode {
    /// What ingest answers (docs/protocol.md, section 2).
    #[derive(serde::Deserialize, Default)]
    struct Body {
        #[serde(default)]
        submission_ids: Vec<String>,
        error: Option<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: String,
        message: String,
    }
    let status = answer.status;
    let reason = status.canonical_reason().unwrap_or("");
    output::line(format_args!("{} {reason}", status.as_u16()));
    let body: Body = serde_json::from_str(&answer.body).unwrap_or_default();
    if status.is_success() {
        for id in &body.submission_ids {
            output::line(format_args!("{id}"));
        }
        if answer.replayed {
            eprintln!(
                "formbridge: accepted before: this is the first answer again; nothing new was published"
            );
        }
        return ExitCode::SUCCESS;
    }
    match body.error {
        Some(ErrorBody { code, message }) => eprintln!("formbridge: refused: {code}: {message}"),
        None => eprintln!("formbridge: refused: {}", answer.body.trim()),
    }
    if let Some(hint) = hint(status.as_u16()) {
        eprintln!("formbridge: hint: {hint}");
    }
    ExitCode::FAILURE
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
