//! `formbridge tenants`: `new` makes a record on this machine; with the
//! `aws` feature, the other subcommands operate on a deployed stack
//! ([`crate::aws::tenants`], and a tenant's sources in
//! [`crate::aws::sources`]).
//!
//! Also the arguments that name a source and read its secret
//! ([`SecretInput`]), which `tenants source` and `send --provider` share.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use shared::Secret;
use shared::source::{Provider, SourceId};
use shared::tenant::document::new_source_secret;
use shared::tenant::{DocumentError, MAX_RATE_LIMIT, NewTenant, TenantDocument};
use shared::{Isolation, Routing, TenantId};

use crate::output;

/// `formbridge tenants`: new records, and operations on a deployed stack.
#[derive(Args)]
#[cfg_attr(
    feature = "aws",
    command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants create acme --stack form-bridge \\\n      \
            --destination https://hooks.acme.example/forms\n  \
        formbridge tenants list --stack form-bridge\n  \
        formbridge tenants source add acme typeform-main --provider typeform \\\n      \
            --stack form-bridge\n\n\
        On a stack, AWS credentials and region come from the standard\n\
        environment (AWS_PROFILE, AWS_REGION, ...), and changes reach the\n\
        functions within their cache TTL (SECRET_CACHE_TTL_SECONDS).")
)]
#[cfg_attr(
    not(feature = "aws"),
    command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n\n\
        This build has no operations on a deployed stack (create, rotate,\n\
        suspend, resume, list, show, delete, promote, demote, scale, isolate,\n\
        share, source): they need the full build,\n\
        cargo install --locked --path cli")
)]
pub struct TenantsArgs {
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Print a new tenant record with freshly generated secrets (no AWS).
    #[command(after_help = "Examples:\n  \
        formbridge tenants new acme --destination https://hooks.acme.example/forms\n  \
        formbridge tenants new acme --destination http://127.0.0.1:8080/ > acme.json\n  \
        formbridge serve --tenants acme.json --allow-private-destinations\n  \
        formbridge tenants new acme --source typeform-main=typeform \\\n      \
            --source jotform=token > acme.json\n\n\
        The record is a tenants file by itself (formbridge serve --tenants takes\n\
        one record or an array of them), or the secret form-bridge/tenants/<ID>\n\
        in Secrets Manager. Give signing_secrets[0] to the sender and\n\
        destination.secret to the receiving endpoint; a source's secret\n\
        (sources.<SOURCE>.secrets[0]) goes to the form builder or provider that\n\
        posts to /v1/tenants/<ID>/sources/<SOURCE>. It holds secrets: store it\n\
        accordingly.")]
    New(NewArgs),
    #[cfg(feature = "aws")]
    #[command(flatten)]
    Stack(crate::aws::tenants::StackCommand),
}

#[derive(Args)]
struct NewArgs {
    /// The tenant ID: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    #[command(flatten)]
    record: RecordArgs,
    /// A source where a form builder or provider posts, with a generated secret: SOURCE=PROVIDER, such as typeform-main=typeform (repeatable).
    #[arg(long = "source", value_name = "SOURCE=PROVIDER", value_parser = parse_source_spec)]
    sources: Vec<(SourceId, Provider)>,
}

/// What a new record holds besides its secrets: the options `tenants new`
/// and `tenants create` share.
#[derive(Args)]
pub struct RecordArgs {
    /// Where the tenant's events are delivered (https and a public address; on this machine's gateway, http and loopback with --allow-private-destinations).
    #[arg(long, value_name = "URL")]
    pub destination: Option<String>,
    /// Requests per second allowed (burst: twice that). Default: not limited.
    #[arg(
        long,
        value_name = "RPS",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_RATE_LIMIT / 2))
    )]
    pub rate_limit: Option<u32>,
    /// The tenant's requests go through the isolated API (a stack's IsolatedApiUrl, deployed with EnableTenantIsolation=true), whose ingest function runs each tenant in execution environments of its own (Lambda tenant isolation mode); senders use its URL, signing is unchanged.
    #[arg(long)]
    pub isolated: bool,
}

impl RecordArgs {
    /// The record's contents with this routing.
    pub fn new_tenant(&self, routing: Routing) -> NewTenant<'_> {
        NewTenant {
            destination: self.destination.as_deref(),
            rate_limit: self.rate_limit,
            routing,
            isolation: if self.isolated {
                Isolation::PerTenant
            } else {
                Isolation::Shared
            },
        }
    }
}

/// A tenant ID argument, checked by clap.
pub fn parse_tenant_id(id: &str) -> Result<TenantId, String> {
    TenantId::parse(id).map_err(|e| e.to_string())
}

/// A source ID argument, checked by clap.
pub fn parse_source_id(id: &str) -> Result<SourceId, String> {
    SourceId::parse(id).map_err(|e| e.to_string().replace("tenant ID", "source ID"))
}

/// A provider argument, checked by clap; the error lists the providers.
pub fn parse_provider(name: &str) -> Result<Provider, String> {
    Provider::parse(name).map_err(|e| e.to_string())
}

/// `SOURCE=PROVIDER`, for `tenants new --source`.
fn parse_source_spec(spec: &str) -> Result<(SourceId, Provider), String> {
    let (id, provider) = spec
        .split_once('=')
        .ok_or("expected SOURCE=PROVIDER, such as typeform-main=typeform")?;
    Ok((parse_source_id(id)?, parse_provider(provider)?))
}

/// The path a source's requests are posted to, under the API's base URL.
pub fn source_path(tenant: &TenantId, source: &SourceId) -> String {
    format!("/v1/tenants/{tenant}/sources/{source}")
}

/// The query a source's requests carry its secret in (`token=...`, for
/// providers that put it in the URL), or `None`.
pub fn source_query(provider: Provider, secret: &Secret) -> anyhow::Result<Option<String>> {
    let request = shared::source::SignRequest {
        method: "POST",
        url: "",
        body: b"",
        delivery_id: "",
    };
    Ok(provider.sign(secret, &request, 0)?.query)
}

/// Whether a provider's requests carry the source's secret in the URL
/// (`token`), so that a URL printed without it must say so.
pub fn secret_in_url(provider: Provider) -> anyhow::Result<bool> {
    // Any secret of the generated shape suits every provider; only whether
    // a query comes out is used, never the secret.
    Ok(source_query(provider, &new_source_secret()?)?.is_some())
}

/// Where a source's secret comes from, besides a generated one: never an
/// argument's value, which `ps` and shell history would keep.
#[derive(Args, Debug, Clone, Default)]
pub struct SecretInput {
    /// Read the secret from standard input (one line; a final newline is dropped).
    #[arg(long, conflicts_with = "secret_file")]
    pub secret_stdin: bool,
    /// Read the secret from a file (one line; a final newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

/// The most bytes read for a secret: far more than any provider issues.
const MAX_SECRET_BYTES: u64 = 4096;

impl SecretInput {
    /// The secret, when one is given. Errors name the flag and the rule,
    /// never what was read.
    pub fn read(&self) -> anyhow::Result<Option<Secret>> {
        let (flag, bytes) = if self.secret_stdin {
            (
                "--secret-stdin",
                read_limited(std::io::stdin().lock(), "standard input")?,
            )
        } else if let Some(path) = &self.secret_file {
            let file = std::fs::File::open(path)
                .with_context(|| format!("--secret-file: cannot open {}", path.display()))?;
            (
                "--secret-file",
                read_limited(file, &path.display().to_string())?,
            )
        } else {
            return Ok(None);
        };
        secret_from(flag, bytes).map(Some)
    }
}

fn read_limited(reader: impl std::io::Read, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the secret from {name}"))?;
    Ok(bytes)
}

/// One line of text, its final line break dropped.
fn secret_from(flag: &str, mut bytes: Vec<u8>) -> anyhow::Result<Secret> {
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        bail!("{flag}: the secret is longer than {MAX_SECRET_BYTES} bytes");
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("{flag}: the secret is not UTF-8 text");
    };
    if text.is_empty() {
        bail!("{flag}: the secret is empty");
    }
    if text.contains(['\n', '\r']) {
        bail!("{flag}: the secret must be one line");
    }
    Ok(Secret::new(text))
}

/// The secret a new or rotated source gets: the one given, else a fresh
/// one where the receiver chooses it. Returns it and whether it was
/// generated.
pub fn source_secret(input: &SecretInput, provider: Provider) -> anyhow::Result<(Secret, bool)> {
    if let Some(secret) = input.read()? {
        return Ok((secret, false));
    }
    if provider.receiver_chooses_secret() {
        return Ok((new_source_secret()?, true));
    }
    bail!(
        "{provider} issues the secret of its webhooks: copy it from {provider}'s settings and \
         pass it with --secret-stdin or --secret-file FILE (never as an argument)"
    )
}

impl TenantsArgs {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            TenantsCommand::New(args) => args.run(),
            #[cfg(feature = "aws")]
            TenantsCommand::Stack(command) => command.run(),
        }
    }
}

impl NewArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let id = &self.id;
        let mut record = TenantDocument::new(id, &self.record.new_tenant(Routing::Shared))?;
        let mut in_url = Vec::new();
        for (source, provider) in &self.sources {
            let secret = new_source_secret()?;
            match record.add_source(source, *provider, &secret) {
                Err(DocumentError::SourceExists(_)) => {
                    bail!("--source {source} is given twice")
                }
                Err(e) => bail!("--source {source}: {e}"),
                Ok(()) => in_url.push(source_query(*provider, &secret)?.is_some()),
            }
        }
        output::line(format_args!("{}", record.to_pretty_json()));
        if self.record.destination.is_none() {
            eprintln!(
                "formbridge: note: no --destination, so the record has none and its events cannot be delivered yet"
            );
        }
        if self.record.isolated {
            eprintln!(
                "formbridge: note: isolated (\"isolation\": \"per_tenant\"): on a stack, its \
                 requests go to the isolated API (the stack's IsolatedApiUrl) and the shared API \
                 denies them; formbridge serve takes them on its usual URLs"
            );
        }
        for ((source, provider), in_url) in self.sources.iter().zip(in_url) {
            eprintln!(
                "formbridge: source {source} ({provider}) posts to {}{}; its secret is \
                 sources.{source}.secrets[0]{}",
                source_path(id, source),
                if in_url { "?token=<its secret>" } else { "" },
                if provider.receiver_chooses_secret() {
                    ""
                } else {
                    ", generated to try it here (formbridge send --provider): for real \
                     deliveries, put the one the provider issues in its place"
                }
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
