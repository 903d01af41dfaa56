//! `formbridge send`: sign a body and post it, as a sender signs it
//! (docs/protocol.md, section 1) or, with `--provider`, as a form builder
//! or provider signs its webhooks to a tenant's source (section 9).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use shared::Secret;
use shared::idempotency::valid_header_key;
use shared::signature::{
    CONTENT_DIGEST_HEADER, SIGNATURE_HEADER, SignedHeaders, TIMESTAMP_HEADER, unix_now,
};
use shared::source::{Provider, SignRequest, SourceId};
use shared::tenant_id::TenantId;

use super::{SendError, read_body};
use crate::output;
use crate::tenants::{SecretInput, parse_provider, parse_source_id, source_path};

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
        --content-type application/x-www-form-urlencoded form.txt\n  \
    formbridge send --url http://127.0.0.1:3000 --tenant acme \\\n      \
        --provider typeform --source typeform-main \\\n      \
        --secret-file typeform-secret.txt response.json\n      \
        (signed as Typeform signs its webhooks, to a source)\n\n\
    --url is the API's base URL; /v1/tenants/{tenant}/submissions is\n\
    appended unless it is already there, or with --provider\n\
    /v1/tenants/{tenant}/sources/{source}. Exit status: 0 when accepted\n\
    (2xx), 1 when refused, 2 for a usage or connection error.")]
pub struct SendArgs {
    /// The API's base URL, such as http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    url: String,
    /// The tenant ID (the path segment).
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// The tenant's signing secret, or with --provider the source's (or set FORMBRIDGE_SECRET, which keeps it out of `ps`; --secret-stdin and --secret-file win over it).
    #[arg(
        long,
        value_name = "SECRET",
        env = "FORMBRIDGE_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    #[command(flatten)]
    secret_input: SecretInput,
    /// The body: a file, or - for standard input.
    #[arg(value_name = "FILE|-")]
    body: PathBuf,
    /// The body's media type.
    #[arg(long, value_name = "TYPE", default_value = "application/json")]
    content_type: String,
    /// Names the submission (for example your form's own submission ID): sending again with the same key, even signed again, is answered with the first answer and not accepted twice.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Sign as this provider signs its webhooks, and post to the source --source: typeform, tally, webflow, formspree, stripe, github, shopify, slack, hubspot, standard-webhooks or token (the secret in the URL's token parameter).
    #[arg(long, value_name = "PROVIDER", value_parser = parse_provider, requires = "source")]
    provider: Option<Provider>,
    /// With --provider: the tenant's source to post to.
    #[arg(long, value_name = "SOURCE", value_parser = parse_source_id, requires = "provider")]
    source: Option<SourceId>,
    /// With --provider: the delivery ID, for providers that send one in a header (GitHub, Shopify, Standard Webhooks); default a fresh random one. Give a previous one to send the same delivery again.
    #[arg(long, value_name = "ID", requires = "provider")]
    delivery_id: Option<String>,
}

impl SendArgs {
    /// Signs and posts the body, then prints the answer.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(key) = &self.idempotency_key
            && !valid_header_key(key)
        {
            return Err(SendError::IdempotencyKey.into());
        }
        if self.secret_input.secret_stdin && self.body == std::path::Path::new("-") {
            anyhow::bail!(
                "the body and --secret-stdin cannot both come from standard input: pass the body \
                 as a file, or the secret with --secret-file"
            );
        }
        let secret = match self.secret_input.read()? {
            Some(secret) => secret,
            None => match &self.secret {
                Some(secret) => Secret::new(secret.clone()),
                None => anyhow::bail!(
                    "a secret is needed: --secret-file FILE, --secret-stdin, or FORMBRIDGE_SECRET \
                     (--secret SECRET works too, but shows it to `ps`)"
                ),
            },
        };
        let request = match (self.provider, &self.source) {
            (Some(provider), Some(source)) => {
                let delivery_id = match &self.delivery_id {
                    Some(id) if valid_header_key(id) => id.clone(),
                    Some(_) => {
                        anyhow::bail!("--delivery-id must be 1 to 255 printable ASCII characters")
                    }
                    None => format!("{}", uuid::Uuid::new_v4()),
                };
                let body = read_body(&self.body)?;
                let url = source_url(&self.url, &self.tenant, source)?;
                provider_request(provider, &secret, url, body, &delivery_id, unix_now())?
            }
            _ => {
                let url = submissions_url(&self.url, &self.tenant)?;
                let body = read_body(&self.body)?;
                let headers = super::sign(&self.tenant, secret.expose(), &body, unix_now())?;
                Request::signed(url, &headers, body)
            }
        };
        if let Some(id) = &request.delivery_id {
            eprintln!(
                "formbridge: delivery ID {id} (--delivery-id {id} sends this delivery again)"
            );
        }
        let answer = crate::runtime::current_thread()?.block_on(send(
            request,
            &self.content_type,
            self.idempotency_key.as_deref(),
        ))?;
        Ok(report(&answer, self.provider.is_some()))
    }
}

/// A request ready to post: where, what to attach, the body. (No
/// `Debug`: the query may hold a token.)
pub struct Request {
    /// The URL, without a query that holds a secret.
    pub url: reqwest::Url,
    /// Appended to the URL as its query when sent (a `token` source's
    /// token); never shown.
    pub secret_query: Option<String>,
    /// Headers to attach besides `Content-Type` and `Idempotency-Key`.
    pub headers: Vec<(&'static str, String)>,
    /// The delivery ID a provider's header carries, when it sends one.
    pub delivery_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A submission signed with a tenant's signing secret.
    pub fn signed(url: reqwest::Url, headers: &SignedHeaders, body: Vec<u8>) -> Self {
        Self {
            url,
            secret_query: None,
            headers: vec![
                (CONTENT_DIGEST_HEADER, headers.content_digest.clone()),
                (TIMESTAMP_HEADER, headers.timestamp.clone()),
                (SIGNATURE_HEADER, headers.signature.clone()),
            ],
            delivery_id: None,
            body,
        }
    }
}

/// Why a request to a source could not be made. Never quotes the secret
/// or the URL's query.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// As for any request.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The URL has a query or fragment.
    #[error(
        "--url must be the API's base URL, without a query (a token source's token comes from the \
         secret, never from the URL)"
    )]
    UrlQuery,
    /// The secret is not one the provider could have issued.
    #[error("--provider {provider}: {error}")]
    Secret {
        /// The provider.
        provider: Provider,
        /// Which rule the secret breaks.
        error: shared::source::SecretError,
    },
}

/// A body signed as `provider` signs its webhooks, with `secret`, at
/// `now`, to the source URL `url` (which HubSpot signs);
/// `delivery_id` goes in the provider's delivery header if it has one.
pub fn provider_request(
    provider: Provider,
    secret: &Secret,
    url: reqwest::Url,
    body: Vec<u8>,
    delivery_id: &str,
    now: i64,
) -> Result<Request, SourceError> {
    let signed = provider
        .sign(
            secret,
            &SignRequest {
                method: "POST",
                url: url.as_str(),
                body: &body,
                delivery_id,
            },
            now,
        )
        .map_err(|e| SourceError::Secret { provider, error: e })?;
    let sends_id = signed.headers.iter().any(|(_, value)| value == delivery_id);
    Ok(Request {
        url,
        secret_query: signed.query,
        headers: signed.headers,
        delivery_id: sends_id.then(|| delivery_id.to_owned()),
        body,
    })
}

/// A source's URL: `url` itself when it already ends in
/// `/v1/tenants/{tenant}/sources/{source}`, else `url` with that appended.
/// A query is refused: a token is sent from the secret, never taken from
/// an argument.
pub fn source_url(url: &str, tenant: &str, source: &SourceId) -> Result<reqwest::Url, SourceError> {
    let tenant = TenantId::parse(tenant).map_err(|e| SendError::TenantId(e.to_string()))?;
    let parsed = reqwest::Url::parse(url).map_err(|_| SendError::Url)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SendError::Url.into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(SourceError::UrlQuery);
    }
    let path = source_path(&tenant, source);
    if parsed.path().ends_with(&path) {
        return Ok(parsed);
    }
    let mut full = parsed;
    let joined = format!("{}{path}", full.path().trim_end_matches('/'));
    full.set_path(&joined);
    Ok(full)
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

/// Posts a request, with an `Idempotency-Key` when given. Errors name
/// the URL as [`shown_url`] shows it.
pub async fn send(
    request: Request,
    content_type: &str,
    idempotency_key: Option<&str>,
) -> Result<Answer, SendError> {
    let shown = shown_url(&request.url);
    let http_error = |e: reqwest::Error| {
        if refused(&e) {
            SendError::Unreachable { url: shown.clone() }
        } else {
            SendError::Http {
                url: shown.clone(),
                error: e.without_url().to_string(),
            }
        }
    };
    let client = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(http_error)?;
    let mut url = request.url;
    if let Some(query) = &request.secret_query {
        url.set_query(Some(query));
    }
    let mut builder = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, content_type);
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    if let Some(key) = idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    let response = builder
        .body(request.body)
        .send()
        .await
        .map_err(http_error)?;
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

/// A URL as messages show it: without user info, query or fragment,
/// any of which may hold a credential (`--url
/// 'https://user:password@host/?token=...'`). The path stays: it is the
/// API's stage and the tenant's route, which say where the request went.
/// reqwest's own errors are shown `without_url` for the same reason.
pub fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have user info (no host), which
    // then have none to hide.
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
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

/// What to check after a refusal of a source request, by status.
pub fn provider_hint(status: u16) -> Option<&'static str> {
    Some(match status {
        401 | 403 => {
            "refused: check --tenant, --source (the tenant's record must have it, with this \
             provider), --provider, the secret (the source's current or a previous one), that \
             the tenant is active, and, for providers that sign a timestamp, the clock"
        }
        404 => {
            "no such route: --url should be the gateway's base URL, such as http://127.0.0.1:3000"
        }
        _ => return hint(status),
    })
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
/// or the error with a hint (for a source request with `to_source`).
fn report(answer: &Answer, to_source: bool) -> ExitCode {
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
    let hint = if to_source { provider_hint } else { hint };
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
    #[test]
    fn shown_urls_keep_the_route_and_drop_credentials() {
        let shown = |url| shown_url(&reqwest::Url::parse(url).unwrap());
        assert_eq!(
            shown("http://user:PASS@127.0.0.1:1/v1/tenants/a/submissions?token=Q#f"),
            "http://127.0.0.1:1/v1/tenants/a/submissions"
        );
        assert_eq!(shown("https://user@h/prod/"), "https://h/prod/");
        assert_eq!(shown("http://h:8080"), "http://h:8080/");
    }

    fn source(id: &str) -> SourceId {
        SourceId::parse(id).unwrap()
    }

    #[test]
    fn builds_source_urls_and_refuses_a_query() {
        let url = |base| source_url(base, "acme", &source("tf")).unwrap().to_string();
        assert_eq!(
            url("http://127.0.0.1:3000"),
            "http://127.0.0.1:3000/v1/tenants/acme/sources/tf"
        );
        assert_eq!(
            url("https://abc.execute-api.eu-west-1.amazonaws.com/prod/"),
            "https://abc.execute-api.eu-west-1.amazonaws.com/prod/v1/tenants/acme/sources/tf"
        );
        assert_eq!(
            url("http://h/v1/tenants/acme/sources/tf"),
            "http://h/v1/tenants/acme/sources/tf"
        );
        let error = source_url(
            "http://h/v1/tenants/acme/sources/tf?token=t0ken-value",
            "acme",
            &source("tf"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("without a query") && !error.contains("t0ken"),
            "{error}"
        );
        assert!(source_url("ftp://h", "acme", &source("tf")).is_err());
        assert!(source_url("http://h", "Acme!", &source("tf")).is_err());
    }

    #[test]
    fn provider_requests_carry_the_providers_headers_and_a_token_only_in_the_query() {
        let url = || source_url("http://h", "acme", &source("s")).unwrap();
        let github = Provider::parse("github").unwrap();
        let request = provider_request(
            github,
            &Secret::new("It's a Secret to Everybody"),
            url(),
            b"Hello, World!".to_vec(),
            "d-1",
            0,
        )
        .unwrap();
        assert_eq!(
            request.headers,
            [
                (
                    "x-hub-signature-256",
                    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                        .to_owned()
                ),
                ("x-github-delivery", "d-1".to_owned())
            ]
        );
        assert_eq!(request.delivery_id.as_deref(), Some("d-1"));
        assert!(request.secret_query.is_none());

        // Typeform sends no delivery ID.
        let typeform = Provider::parse("typeform").unwrap();
        let request =
            provider_request(typeform, &Secret::new("s"), url(), b"{}".to_vec(), "d-1", 0).unwrap();
        assert_eq!(request.delivery_id, None);

        let token = Provider::parse("token").unwrap();
        let secret = "tok_4f6d2a9c1e8b7d3f5a0c2e4b6d8f1a3c";
        let request =
            provider_request(token, &Secret::new(secret), url(), b"{}".to_vec(), "d-1", 0).unwrap();
        assert_eq!(
            request.secret_query.as_deref(),
            Some(format!("token={secret}").as_str())
        );
        assert!(request.headers.is_empty());
        assert_eq!(request.url.query(), None);

        let error = provider_request(
            token,
            &Secret::new("short-token-value"),
            url(),
            Vec::new(),
            "d",
            0,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("--provider token: secret 0 of a token source"),
            "{error}"
        );
        assert!(!error.contains("short-token-value"), "{error}");
    }
}
