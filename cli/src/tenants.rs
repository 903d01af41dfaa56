//! Tenant operations on a deployed stack: records in Secrets Manager
//! (contract section 4) and, for dedicated tenants, their own resources.
//!
//! Records are read, changed as JSON and validated as every function will
//! read them before they are written, so fields this version does not know
//! are kept and an invalid record is never stored.

use std::fmt;

use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use shared::TenantRecord;
use shared::signature::unix_now;
use shared::tenant::{MAX_SIGNING_SECRETS, Routing, TenantStatus};
use shared::tenant_id::TenantId;

use crate::aws::{Clients, describe, is_not_found};
use crate::dedicated::{self, Scaling};
use crate::stack::Stack;
use crate::tenant;

/// What `redact` puts in place of a secret.
pub const REDACTED: &str = "<redacted>";
/// Days a deleted record can be restored (`aws secretsmanager restore-secret`).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;
/// The record field `suspend` sets to the Unix time intake stopped.
pub const SUSPENDED_AT: &str = "suspended_at";
/// Seconds a request authorized just before a suspension may still take
/// to publish (ingest's timeout).
const IN_FLIGHT_SECONDS: i64 = 15;
/// Records read at once by `list`.
const LIST_CONCURRENCY: usize = 8;

/// What `create` makes.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The tenant ID.
    pub id: String,
    /// Where its events go (https).
    pub destination: Option<String>,
    /// Its own requests-per-second limit.
    pub rate_limit: Option<u32>,
    /// Its own delivery path, read at this scale; `None` for shared routing.
    pub dedicated: Option<Scaling>,
}

/// One line of `list`.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The tenant ID.
    pub id: String,
    /// `active`, `suspended`, or why the record cannot be read.
    pub status: String,
    /// `shared` or `dedicated` (`-` when unreadable).
    pub routing: String,
    /// The destination's host (`-` for none).
    pub destination: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:<10} {:<10} {}",
            self.id, self.status, self.routing, self.destination
        )
    }
}

/// What `rotate` did.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// A new current secret; the previous ones stay valid.
    Added {
        /// The new signing secret, for the sender.
        secret: String,
        /// Secrets now active, the new one included.
        active: usize,
    },
    /// Every secret but the current one was removed.
    Expired {
        /// How many were removed.
        removed: usize,
    },
}

/// Tenant operations against one stack.
#[derive(Debug)]
pub struct Tenants<'a> {
    aws: &'a Clients,
    stack: &'a Stack,
}

impl<'a> Tenants<'a> {
    /// Operations with these clients on this stack.
    pub fn new(aws: &'a Clients, stack: &'a Stack) -> Self {
        Self { aws, stack }
    }

    fn secret_name(&self, id: &TenantId) -> String {
        format!("{}{id}", self.stack.secret_prefix())
    }

    /// Creates a tenant: dedicated resources first (so its events always
    /// have a route), then the record. Returns the record, secrets included.
    pub async fn create(&self, new: &NewTenant) -> anyhow::Result<Value> {
        let (mut record, _) =
            tenant::new_record(&new.id, new.destination.as_deref(), new.rate_limit)?;
        let id = parse_id(&new.id)?;
        let name = self.secret_name(&id);
        match self
            .aws
            .secrets
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
        {
            Ok(found) if found.deleted_date.is_some() => bail!(
                "tenant {id}'s record {name} is scheduled for deletion: restore it with \
                 `aws secretsmanager restore-secret --secret-id {name}`, or wait until it is gone"
            ),
            Ok(_) => {
                bail!("tenant {id} exists (secret {name}): use rotate, suspend, resume or delete")
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => bail!("cannot look up secret {name}: {}", describe(&e)),
        }
        if let Some(scaling) = new.dedicated {
            dedicated::ensure(self.aws, self.stack, &id, Some(scaling)).await?;
            record["routing"] = json!(Routing::Dedicated.as_str());
        }
        validate(&record)?;
        self.aws
            .secrets
            .create_secret()
            .name(&name)
            .description(format!("Form-Bridge tenant record for {id}"))
            .secret_string(record.to_string())
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("form-bridge:tenant")
                    .value(id.as_str())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow!("cannot create secret {name}: {}", describe(&e)))?;
        Ok(record)
    }

    /// Reads a tenant's record as JSON.
    pub async fn read(&self, id: &str) -> anyhow::Result<Value> {
        let id = parse_id(id)?;
        let name = self.secret_name(&id);
        let answer = match self
            .aws
            .secrets
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) if is_not_found(&e) => bail!("no tenant {id} (no secret {name})"),
            Err(e) => bail!("cannot read secret {name}: {}", describe(&e)),
        };
        let text = answer
            .secret_string()
            .with_context(|| format!("secret {name} has no SecretString"))?;
        // serde's message could quote part of the text, which holds secrets.
        serde_json::from_str(text).map_err(|e| {
            anyhow!(
                "secret {name} is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }

    /// Validates and stores a changed record.
    async fn write(&self, id: &str, record: &Value) -> anyhow::Result<()> {
        validate(record)?;
        let name = self.secret_name(&parse_id(id)?);
        self.aws
            .secrets
            .put_secret_value()
            .secret_id(&name)
            .secret_string(record.to_string())
            .send()
            .await
            .map_err(|e| anyhow!("cannot update secret {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// Adds a new current signing secret, keeping the previous ones, or
    /// with `expire` removes every secret but the current one.
    pub async fn rotate(&self, id: &str, expire: bool) -> anyhow::Result<Rotation> {
        let mut record = self.read(id).await?;
        let secrets = record
            .get_mut("signing_secrets")
            .and_then(Value::as_array_mut)
            .context("the record has no signing_secrets list")?;
        let rotation = if expire {
            let removed = secrets.len().saturating_sub(1);
            secrets.truncate(1);
            Rotation::Expired { removed }
        } else {
            if secrets.len() >= MAX_SIGNING_SECRETS {
                bail!(
                    "tenant {id} already has {} signing secrets, the most allowed: \
                     once senders use the current one, run `formbridge tenants rotate {id} --expire`",
                    secrets.len()
                );
            }
            let secret = tenant::signing_secret()?;
            secrets.insert(0, json!(secret));
            Rotation::Added {
                secret,
                active: secrets.len(),
            }
        };
        self.write(id, &record).await?;
        Ok(rotation)
    }

    /// Sets a tenant's status; returns whether it changed.
    pub async fn set_status(&self, id: &str, status: TenantStatus) -> anyhow::Result<bool> {
        let mut record = self.read(id).await?;
        let changed = match status {
            TenantStatus::Suspended => {
                let changed = record["status"] != "suspended";
                // When intake stopped, for `delete` (functions ignore
                // fields they do not know). Kept if already suspended.
                if changed || record.get(SUSPENDED_AT).is_none() {
                    record[SUSPENDED_AT] = json!(unix_now());
                }
                record["status"] = json!("suspended");
                changed
            }
            TenantStatus::Active => {
                let changed = record["status"] != "active";
                record["status"] = json!("active");
                if let Some(fields) = record.as_object_mut() {
                    fields.remove(SUSPENDED_AT);
                }
                changed
            }
        };
        if changed || status == TenantStatus::Suspended {
            self.write(id, &record).await?;
        }
        // A dedicated tenant's path is completed on resume: after a restored
        // record, or a failed create, its events must have a route.
        if status == TenantStatus::Active && record["routing"] == "dedicated" {
            dedicated::ensure(self.aws, self.stack, &parse_id(id)?, None).await?;
        }
        Ok(changed)
    }

    /// Every tenant under the prefix, sorted by ID, each record read.
    pub async fn list(&self) -> anyhow::Result<Vec<Summary>> {
        let prefix = self.stack.secret_prefix();
        let mut pages = self
            .aws
            .secrets
            .list_secrets()
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(prefix)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| anyhow!("cannot list secrets under {prefix}: {}", describe(&e)))?;
            names.extend(
                page.secret_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| s.name),
            );
        }
        let ids: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix))
            .filter(|id| TenantId::parse(id).is_ok())
            .map(str::to_owned)
            .collect();
        let mut summaries: Vec<Summary> = futures_util::stream::iter(ids)
            .map(|id| async move {
                match self.read(&id).await {
                    Ok(record) => summary(id, &record),
                    Err(e) => Summary {
                        id,
                        status: format!("unreadable: {e}"),
                        routing: "-".into(),
                        destination: "-".into(),
                    },
                }
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        summaries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(summaries)
    }

    /// Deletes a tenant. It must be suspended and, when dedicated, its
    /// queues empty, unless `force`. Its record can be restored for
    /// [`RECOVERY_WINDOW_DAYS`] unless `without_recovery`.
    pub async fn delete(
        &self,
        id: &str,
        force: bool,
        without_recovery: bool,
    ) -> anyhow::Result<()> {
        let mut record = self.read(id).await?;
        let tenant = parse_id(id)?;
        if force {
            if record["status"] != "suspended" {
                // Stop intake before anything is removed.
                record["status"] = json!("suspended");
                self.write(id, &record).await?;
            }
        } else {
            self.check_intake_stopped(id, &record)?;
        }
        if record["routing"] == "dedicated" {
            let pending = dedicated::pending(self.aws, self.stack, &tenant).await?;
            if !force && pending != dedicated::Pending::default() {
                bail!(
                    "tenant {id}'s queue still holds {} events and its dead-letter queue {}: \
                     wait for delivery or redrive them (`formbridge dlq redrive`); \
                     --force deletes them",
                    pending.queued,
                    pending.dead_lettered
                );
            }
            dedicated::remove(self.aws, self.stack, &tenant, force).await?;
        }
        let name = self.secret_name(&tenant);
        let request = self.aws.secrets.delete_secret().secret_id(&name);
        let request = if without_recovery {
            request.force_delete_without_recovery(true)
        } else {
            request.recovery_window_in_days(RECOVERY_WINDOW_DAYS)
        };
        request
            .send()
            .await
            .map_err(|e| anyhow!("cannot delete secret {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// A tenant may be deleted once it is suspended and the functions'
    /// caches have seen it (their TTL, plus ingest's timeout for requests
    /// authorized just before): only then can no new event arrive.
    fn check_intake_stopped(&self, id: &str, record: &Value) -> anyhow::Result<()> {
        if record["status"] != "suspended" {
            bail!(
                "tenant {id} is active: suspend it first (`formbridge tenants suspend {id}`), \
                 let its accepted events be delivered, then delete it; or pass --force"
            );
        }
        let Some(since) = record[SUSPENDED_AT].as_i64() else {
            bail!(
                "tenant {id} was suspended without a time: run `formbridge tenants suspend {id}` \
                 again, and delete it once the functions' caches have expired; or pass --force"
            );
        };
        let wait = i64::try_from(self.stack.cache_ttl()?)
            .unwrap_or(i64::MAX)
            .saturating_add(IN_FLIGHT_SECONDS);
        let left = since.saturating_add(wait).saturating_sub(unix_now());
        if left > 0 {
            bail!(
                "tenant {id} was suspended {}s ago; the functions may still accept its requests \
                 from cached records for {left}s more (SECRET_CACHE_TTL_SECONDS plus in-flight \
                 requests): delete it then, or pass --force",
                unix_now().saturating_sub(since)
            );
        }
        Ok(())
    }
}

/// A record with every secret replaced by [`REDACTED`]: signing secrets,
/// the delivery secret, destination header values, and the destination
/// URL beyond its scheme and host.
pub fn redact(mut record: Value) -> Value {
    if let Some(secrets) = record
        .get_mut("signing_secrets")
        .and_then(Value::as_array_mut)
    {
        secrets.iter_mut().for_each(|s| *s = json!(REDACTED));
    }
    if let Some(destination) = record.get_mut("destination").and_then(Value::as_object_mut) {
        // Hook URLs often carry a token in their query or user info.
        if let Some(url) = destination.get("url").and_then(Value::as_str) {
            let shown = redact_url(url);
            destination.insert("url".into(), json!(shown));
        }
        if destination.contains_key("secret") {
            destination.insert("secret".into(), json!(REDACTED));
        }
        if let Some(headers) = destination
            .get_mut("headers")
            .and_then(Value::as_object_mut)
        {
            headers.values_mut().for_each(|v| *v = json!(REDACTED));
        }
    }
    record
}

/// A URL shown as its scheme, host and port only: hook URLs often carry
/// a credential in the path (Slack, Discord), the query or the user info.
fn redact_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return REDACTED.to_owned();
    };
    let origin = parsed.origin().ascii_serialization();
    let bare = parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.password().is_none()
        && parsed.username().is_empty();
    if bare {
        format!("{origin}/")
    } else {
        format!("{origin}/{REDACTED}")
    }
}

fn summary(id: String, record: &Value) -> Summary {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let destination = record["destination"]["url"]
        .as_str()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "-".into());
    Summary {
        id,
        status: text(&record["status"]),
        routing: record["routing"].as_str().unwrap_or("shared").to_owned(),
        destination,
    }
}

fn parse_id(id: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(id).map_err(|e| anyhow!("{e}"))
}

/// The record as every function will read it, or why not.
fn validate(record: &Value) -> anyhow::Result<TenantRecord> {
    TenantRecord::from_value(record.clone()).map_err(|e| anyhow!("invalid tenant record: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_secret_and_keeps_the_rest() {
        let record = json!({
            "tenant_id": "acme", "status": "active", "routing": "shared",
            "signing_secrets": ["fb_current_secret_0123456789abcdef0123", "fb_previous_secret_0123456789abcdef012"],
            "destination": {"url": "https://user:pa55@hooks.acme.example/forms?token=t0k", "secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
                             "headers": {"Authorization": "Bearer token-123"}, "timeout_ms": 5000},
            "future_field": {"kept": true},
        });
        let shown = redact(record).to_string();
        for secret in [
            "fb_current",
            "fb_previous",
            "whsec_",
            "Bearer",
            "pa55",
            "t0k",
            "forms",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "https://hooks.acme.example/<redacted>",
            "Authorization",
            "5000",
            "future_field",
        ] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
    }

    #[test]
    fn summaries_show_the_destination_host_only() {
        let s = summary(
            "acme".into(),
            &json!({"status": "suspended", "destination": {"url": "https://hooks.acme.example/x?token=secret"}}),
        );
        assert_eq!(
            s.to_string().split_whitespace().collect::<Vec<_>>(),
            ["acme", "suspended", "shared", "hooks.acme.example"]
        );
    }
}
