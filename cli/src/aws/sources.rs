//! `formbridge tenants source add|rotate|remove`: the sources of a tenant
//! on a deployed stack, where hosted form builders and providers post
//! (`/v1/tenants/{tenant_id}/sources/{source_id}`, docs/protocol.md,
//! section 9). The record is changed through
//! [`TenantDocument`](shared::tenant::TenantDocument), which
//! keeps what it does not know and refuses a record the functions would
//! refuse.
//!
//! A secret is printed once, when it is new: a generated one, and a
//! `token` source's URL (which holds its token). Nothing else prints one.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use shared::source::{Provider, SourceId};
use shared::tenant::document::SourceRotation;
use shared::tenant::{DocumentError, MAX_SOURCE_SECRETS, MAX_SOURCES};
use shared::{Isolation, Secret, TenantId};

use super::records::{EditError, Records};
use super::stack::{self, Stack, StackArgs};
use crate::output;
use crate::tenants::{
    SecretInput, parse_provider, parse_source_id, parse_tenant_id, source_path, source_query,
    source_secret,
};

/// `tenants source`: a tenant's sources on a deployed stack.
#[derive(Subcommand)]
pub enum SourceCommand {
    /// Add a source for a form builder or provider; print its URL (and a new secret, once).
    #[command(after_help = "Examples:\n  \
        formbridge tenants source add acme typeform-main --provider typeform \\\n      \
            --stack form-bridge\n      \
            generates the secret; prints the URL and the secret for Typeform\n  \
        formbridge tenants source add acme jotform --provider token \\\n      \
            --stack form-bridge\n      \
            prints the URL with its token, for Jotform, Fillout or Paperform\n  \
        pbpaste | formbridge tenants source add acme stripe --provider stripe \\\n      \
            --secret-stdin --stack form-bridge\n      \
            Stripe issues the secret: pass it on standard input or in a file\n\n\
        A secret is never taken as an argument, and shown only once, when it\n\
        is generated (typeform, tally, github, token). Requests are accepted\n\
        within the functions' cache TTL (SecretCacheTtlSeconds).")]
    Add(AddArgs),
    /// Put a new secret first (the previous ones stay valid), or with --expire drop the previous ones.
    #[command(after_help = "Examples:\n  \
        formbridge tenants source rotate acme typeform-main --stack form-bridge\n      \
            prints the new generated secret\n  \
        formbridge tenants source rotate acme stripe --secret-file whsec.txt \\\n      \
            --stack form-bridge\n  \
        formbridge tenants source rotate acme typeform-main --expire \\\n      \
            --stack form-bridge\n      \
            once the provider uses the new one\n\n\
        Between the two, requests signed with either secret are accepted. A\n\
        source keeps at most 4 secrets: a rotation beyond that drops the\n\
        oldest, and says so.")]
    Rotate(RotateArgs),
    /// Remove a source: its requests are refused once the functions' caches expire.
    #[command(after_help = "Examples:\n  \
        formbridge tenants source remove acme typeform-main --stack form-bridge")]
    Remove(RemoveArgs),
}

/// `tenants source add`.
#[derive(Args)]
pub struct AddArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// The source ID, the URL's last segment: 1 to 63 of a-z, 0-9 and -, starting and ending with a letter or digit.
    #[arg(value_parser = parse_source_id)]
    source: SourceId,
    /// How the source's requests are verified: typeform, tally, webflow, formspree, stripe, github, shopify, slack, hubspot, standard-webhooks or token.
    #[arg(long, value_name = "PROVIDER", value_parser = parse_provider)]
    provider: Provider,
    #[command(flatten)]
    secret: SecretInput,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants source rotate`.
#[derive(Args)]
pub struct RotateArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// The source ID.
    #[arg(value_parser = parse_source_id)]
    source: SourceId,
    /// Remove every secret of the source but the current one instead of adding one.
    #[arg(long, conflicts_with_all = ["secret_stdin", "secret_file"])]
    expire: bool,
    #[command(flatten)]
    secret: SecretInput,
    #[command(flatten)]
    stack: StackArgs,
}

/// `tenants source remove`.
#[derive(Args)]
pub struct RemoveArgs {
    /// The tenant ID.
    #[arg(value_parser = parse_tenant_id)]
    id: TenantId,
    /// The source ID.
    #[arg(value_parser = parse_source_id)]
    source: SourceId,
    #[command(flatten)]
    stack: StackArgs,
}

impl SourceCommand {
    /// The stack options, taken out to resolve them.
    pub(super) fn stack_args(&mut self) -> StackArgs {
        let stack = match self {
            Self::Add(a) => &mut a.stack,
            Self::Rotate(a) => &mut a.stack,
            Self::Remove(a) => &mut a.stack,
        };
        std::mem::take(stack)
    }

    /// Runs the command against the stack's records.
    pub(super) async fn run(self, records: &Records<'_>, stack: &Stack) -> anyhow::Result<()> {
        match self {
            Self::Add(args) => add(records, stack, args).await,
            Self::Rotate(args) if args.expire => {
                expire(records, stack, &args.id, &args.source).await
            }
            Self::Rotate(args) => rotate(records, stack, args).await,
            Self::Remove(args) => remove(records, stack, &args.id, &args.source).await,
        }
    }
}

/// A source's URL under the base URL of the tenant's API (the shared
/// `ApiUrl`, or an isolated tenant's `IsolatedApiUrl`), with the query
/// that carries its secret for providers that put it there; and whether
/// it has one. Without that URL (no output, no flag), the path.
fn source_url(
    stack: &Stack,
    tenant: Isolation,
    id: &TenantId,
    source: &SourceId,
    provider: Provider,
    secret: &Secret,
) -> anyhow::Result<(String, bool)> {
    let base = stack
        .api_url_for(tenant)
        .unwrap_or_default()
        .trim_end_matches('/');
    let url = format!("{base}{}", source_path(id, source));
    Ok(match source_query(provider, secret)? {
        Some(query) => (format!("{url}?{query}"), true),
        None => (url, false),
    })
}

/// Says where the URL's base is missing, when it is.
fn note_missing_api_url(stack: &Stack, tenant: Isolation) {
    if stack.api_url_for(tenant).is_none() {
        let name = stack::api_url_name(tenant);
        let api = match tenant {
            Isolation::Shared => "API",
            Isolation::PerTenant => "isolated API",
        };
        eprintln!(
            "formbridge: note: no {api} URL (the stack's {} output, or {} URL): put the {api}'s \
             base URL in front of the path",
            name.output, name.flag
        );
    }
}

/// The document error of a source edit, said for this tenant and source.
fn refused(error: DocumentError, id: &TenantId, source: &SourceId, stack: &Stack) -> anyhow::Error {
    let options = stack.options();
    match error {
        DocumentError::SourceExists(_) => anyhow!(
            "tenant {id} already has a source {source}: `formbridge tenants source rotate {id} \
             {source}{options}` gives it a new secret, `formbridge tenants source remove {id} \
             {source}{options}` removes it"
        ),
        DocumentError::NoSource(_) => anyhow!(
            "tenant {id} has no source {source} (`formbridge tenants show {id}{options}` lists \
             its sources)"
        ),
        DocumentError::TooManySources => anyhow!(
            "tenant {id} already has {MAX_SOURCES} sources, the most a record may hold: remove \
             one it no longer uses first"
        ),
        other => anyhow!("tenant {id}: {other}"),
    }
}

async fn add(records: &Records<'_>, stack: &Stack, args: AddArgs) -> anyhow::Result<()> {
    let AddArgs {
        id,
        source,
        provider,
        secret,
        ..
    } = args;
    let (secret, generated) = source_secret(&secret, provider)?;
    let isolation = records
        .edit(&id, |record| {
            record.add_source(&source, provider, &secret)?;
            Ok(record.isolation().unwrap_or_default())
        })
        .await
        .map_err(|e| edit_error(e, &id, &source, stack))?;
    let (url, secret_in_url) = source_url(stack, isolation, &id, &source, provider, &secret)?;
    output::line(format_args!("url: {url}"));
    if generated && !secret_in_url {
        output::line(format_args!("secret: {}", secret.expose()));
    }
    note_missing_api_url(stack, isolation);
    let ttl = stack.cache_ttl()?;
    eprintln!(
        "formbridge: tenant {id} has a new source {source} ({provider}); the functions accept its \
         requests within their cache TTL ({ttl} s)"
    );
    if secret_in_url {
        eprintln!(
            "formbridge: the URL holds the source's token and is shown only this once: give it \
             to the form builder as its webhook URL (method POST), and keep it like a password"
        );
    } else if generated {
        eprintln!(
            "formbridge: the secret was generated and is shown only this once: paste it, and the \
             URL, into {provider}'s webhook settings"
        );
    } else {
        eprintln!("formbridge: give the URL to {provider} as its webhook URL");
    }
    Ok(())
}

async fn rotate(records: &Records<'_>, stack: &Stack, args: RotateArgs) -> anyhow::Result<()> {
    let RotateArgs {
        id, source, secret, ..
    } = args;
    // The provider decides whether a secret can be generated: read it first.
    let provider = records
        .read(&id)
        .await?
        .source_provider(&source)
        .map_err(|e| refused(e, &id, &source, stack))?;
    let (secret, generated) = source_secret(&secret, provider)?;
    let (rotation, isolation): (SourceRotation, Isolation) = records
        .edit(&id, |record| {
            let rotation = record.rotate_source(&source, &secret)?;
            Ok((rotation, record.isolation().unwrap_or_default()))
        })
        .await
        .map_err(|e| edit_error(e, &id, &source, stack))?;
    let (url, secret_in_url) =
        source_url(stack, isolation, &id, &source, rotation.provider, &secret)?;
    if secret_in_url {
        output::line(format_args!("url: {url}"));
        note_missing_api_url(stack, isolation);
    } else if generated {
        output::line(format_args!("secret: {}", secret.expose()));
    } else {
        output::line(format_args!(
            "tenant {id}: source {source} has {}, the new one first",
            output::count(rotation.secrets as u64, "active secret")
        ));
    }
    if rotation.dropped > 0 {
        eprintln!(
            "formbridge: dropped the oldest {} (a source keeps at most {MAX_SOURCE_SECRETS})",
            output::count(rotation.dropped as u64, "secret")
        );
    }
    let previous = match rotation.secrets - 1 {
        1 => "the previous one keeps working".to_owned(),
        n => format!("the {n} previous ones keep working"),
    };
    let expire = format!(
        "formbridge tenants source rotate {id} {source} --expire{}",
        stack.options()
    );
    let ttl = stack.cache_ttl()?;
    let provider = rotation.provider;
    if secret_in_url || generated {
        let (what, who) = if secret_in_url {
            (
                "the new URL (its token)",
                "the form builder's webhook".to_owned(),
            )
        } else {
            ("the new secret", format!("{provider}'s webhook"))
        };
        eprintln!(
            "formbridge: {what} is shown only this once, and {previous}. The functions accept it \
             within their cache TTL ({ttl} s): switch {who} to it after that, and once it uses \
             it, run `{expire}`"
        );
    } else {
        eprintln!(
            "formbridge: the new secret is first, and {previous}; the functions accept it within \
             their cache TTL ({ttl} s). Once {provider} no longer signs with the previous one, \
             run `{expire}`"
        );
    }
    Ok(())
}

async fn expire(
    records: &Records<'_>,
    stack: &Stack,
    id: &TenantId,
    source: &SourceId,
) -> anyhow::Result<()> {
    let removed = records
        .edit(id, |record| record.expire_source(source))
        .await
        .map_err(|e| edit_error(e, id, source, stack))?;
    output::line(format_args!(
        "tenant {id}: source {source}: {} removed; only the current one is accepted",
        output::count(removed as u64, "previous secret")
    ));
    Ok(())
}

async fn remove(
    records: &Records<'_>,
    stack: &Stack,
    id: &TenantId,
    source: &SourceId,
) -> anyhow::Result<()> {
    let provider = records
        .edit(id, |record| record.remove_source(source))
        .await
        .map_err(|e| edit_error(e, id, source, stack))?;
    output::line(format_args!(
        "tenant {id}: source {source} ({provider}) removed"
    ));
    eprintln!(
        "formbridge: the functions refuse its requests once their cache TTL ({} s) has passed",
        stack.cache_ttl()?
    );
    Ok(())
}

/// A failed edit: a document error said for this tenant and source, any
/// other (reading or writing the secret) as it is.
fn edit_error(error: EditError, id: &TenantId, source: &SourceId, stack: &Stack) -> anyhow::Error {
    match error {
        EditError::Refused(e) => refused(e, id, source, stack),
        EditError::Store(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_errors_name_the_command_that_helps() {
        let id = TenantId::parse("acme").expect("id");
        let source = SourceId::parse("tf").expect("source");
        let stack = Stack::default();
        let text = |e| refused(e, &id, &source, &stack).to_string();
        assert!(
            text(DocumentError::SourceExists(source.clone()))
                .contains("formbridge tenants source rotate acme tf")
        );
        assert!(
            text(DocumentError::NoSource(source.clone())).contains("formbridge tenants show acme")
        );
        assert!(text(DocumentError::TooManySources).contains("50 sources"));
    }
}
