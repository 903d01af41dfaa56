//! Tenant records on a deployed stack: Secrets Manager secrets named
//! `{prefix}{tenant}` (docs/protocol.md, section 4), read, changed and
//! validated through [`TenantDocument`] (which keeps fields this version
//! does not know, and refuses to make a record the functions would
//! refuse), and, for dedicated tenants, their own resources.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use connectors::GuardRules;
use futures_util::StreamExt as _;
use shared::signature::unix_now;
use shared::store::CachePolicy;
use shared::tenant::{DocumentError, NewTenant, TenantDocument};
use shared::{Routing, Secret, TenantId, TenantStatus};

use super::dedicated::{self, Scaling};
use super::stack::Stack;
use super::{Clients, describe, is_not_found};

/// Days a deleted record can be restored (`aws secretsmanager restore-secret`).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;
/// Seconds a request authorized just before a suspension may still take
/// to publish (ingest's timeout).
const IN_FLIGHT_SECONDS: i64 = 15;
/// Records read at once by `list`.
const LIST_CONCURRENCY: usize = 8;

/// What `create` makes.
#[derive(Debug, Clone)]
pub struct Creation<'a> {
    /// The tenant ID.
    pub id: TenantId,
    /// Its record's contents; with dedicated routing, `dedicated` is set.
    pub record: NewTenant<'a>,
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
        secret: Secret,
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
pub struct Records<'a> {
    aws: &'a Clients,
    stack: &'a Stack,
}

impl<'a> Records<'a> {
    /// Operations with these clients on this stack.
    pub fn new(aws: &'a Clients, stack: &'a Stack) -> Self {
        Self { aws, stack }
    }

    fn secret_name(&self, id: &TenantId) -> String {
        format!("{}{id}", self.stack.secret_prefix())
    }

    /// Creates a tenant: dedicated resources first (so its events always
    /// have a route), then the record. Returns the record, secrets included.
    pub async fn create(&self, new: &Creation<'_>) -> anyhow::Result<TenantDocument> {
        let id = &new.id;
        let record = TenantDocument::new(id, &new.record)?;
        // The deployed connector refuses plain http and private addresses
        // (by the URL's text here; names are checked when resolved).
        if let Some(url) = new.record.destination {
            let refused = reqwest::Url::parse(url)
                .map_err(|_| connectors::guard::NotAllowed::InvalidUrl)
                .and_then(|url| connectors::guard::check(&url, GuardRules::new(false)));
            if let Err(why) = refused {
                bail!(
                    "--destination: {why}; a deployed connector delivers to https and public addresses only"
                );
            }
        }
        let name = self.secret_name(id);
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
            dedicated::ensure(self.aws, self.stack, id, Some(scaling)).await?;
        }
        self.aws
            .secrets
            .create_secret()
            .name(&name)
            .description(format!("Form-Bridge tenant record for {id}"))
            .secret_string(record.to_json())
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

    /// Reads a tenant's record, valid or not (so that it can be shown).
    pub async fn read(&self, id: &TenantId) -> anyhow::Result<TenantDocument> {
        let name = self.secret_name(id);
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
        TenantDocument::from_json(text).map_err(|e| anyhow!("secret {name}: {e}"))
    }

    /// Stores a changed record (the document only holds valid edits).
    async fn write(&self, id: &TenantId, record: &TenantDocument) -> anyhow::Result<()> {
        let name = self.secret_name(id);
        self.aws
            .secrets
            .put_secret_value()
            .secret_id(&name)
            .secret_string(record.to_json())
            .send()
            .await
            .map_err(|e| anyhow!("cannot update secret {name}: {}", describe(&e)))?;
        Ok(())
    }

    /// Adds a new current signing secret, keeping the previous ones, or
    /// with `expire` removes every secret but the current one.
    pub async fn rotate(&self, id: &TenantId, expire: bool) -> anyhow::Result<Rotation> {
        let mut record = self.read(id).await?;
        let rotation = if expire {
            Rotation::Expired {
                removed: record.expire()?,
            }
        } else {
            let secret = match record.rotate() {
                Err(e @ DocumentError::TooManySecrets(_)) => bail!(
                    "tenant {id} {e}: once senders use the current one, run \
                     `formbridge tenants rotate {id} --expire{}`",
                    self.stack.options()
                ),
                other => other?,
            };
            Rotation::Added {
                secret: Secret::new(secret),
                active: record.validate()?.signing_keys.len(),
            }
        };
        self.write(id, &record).await?;
        Ok(rotation)
    }

    /// Sets a tenant's status; returns whether it changed.
    pub async fn set_status(&self, id: &TenantId, status: TenantStatus) -> anyhow::Result<bool> {
        let mut record = self.read(id).await?;
        let before = record.clone();
        let changed = record.set_status(status, unix_now())?;
        // A dedicated tenant's path is completed before it may submit again
        // (after a restored record, or a failed create): an event accepted
        // while its rule or queue is missing would have no route.
        if status == TenantStatus::Active && record.routing() == Some(Routing::Dedicated) {
            dedicated::ensure(self.aws, self.stack, id, None).await?;
        }
        if record != before {
            self.write(id, &record).await?;
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
        let ids: Vec<TenantId> = names
            .iter()
            .filter_map(|n| TenantId::parse(n.strip_prefix(prefix)?).ok())
            .collect();
        let mut summaries: Vec<Summary> = futures_util::stream::iter(ids)
            .map(|id| async move {
                match self.read(&id).await {
                    Ok(record) => summary(id.to_string(), &record),
                    Err(e) => Summary {
                        id: id.to_string(),
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
        id: &TenantId,
        force: bool,
        without_recovery: bool,
    ) -> anyhow::Result<()> {
        let mut record = self.read(id).await?;
        if force {
            if record.status() != Some(TenantStatus::Suspended) {
                // Stop intake before anything is removed.
                record.set_status(TenantStatus::Suspended, unix_now())?;
                self.write(id, &record).await?;
            }
        } else {
            self.check_intake_stopped(id, &record)?;
        }
        if record.routing() == Some(Routing::Dedicated) {
            let pending = dedicated::pending(self.aws, self.stack, id).await?;
            if !force && pending != dedicated::Pending::default() {
                bail!(
                    "tenant {id}'s queue still holds {} and its dead-letter queue {}: \
                     wait for delivery or redrive them (`formbridge dlq redrive{}`); \
                     --force deletes them",
                    crate::output::count(pending.queued, "event"),
                    crate::output::count(pending.dead_lettered, "event"),
                    self.stack.options()
                );
            }
            dedicated::remove(self.aws, self.stack, id, force).await?;
        }
        let name = self.secret_name(id);
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

    /// A tenant may be deleted once it is suspended and no function can
    /// still hold its active record (the cache TTL, the stale-if-error
    /// window, and ingest's timeout for requests authorized just before):
    /// only then can no new event arrive.
    fn check_intake_stopped(&self, id: &TenantId, record: &TenantDocument) -> anyhow::Result<()> {
        if record.status() != Some(TenantStatus::Suspended) {
            bail!(
                "tenant {id} is active: suspend it first (`formbridge tenants suspend {id}{}`), \
                 let its accepted events be delivered, then delete it; or pass --force",
                self.stack.options()
            );
        }
        let Some(since) = record.suspended_at() else {
            bail!(
                "tenant {id} was suspended without a time: run `formbridge tenants suspend {id}{}` \
                 again, and delete it once the functions' caches have expired; or pass --force",
                self.stack.options()
            );
        };
        // What the functions' own cache allows: a record is served for its
        // TTL and, while Secrets Manager fails, for `stale_if_error` more.
        let ttl = Duration::from_secs(self.stack.cache_ttl()?);
        let served = ttl + CachePolicy::with_ttl(ttl).stale_if_error;
        let wait = i64::try_from(served.as_secs())
            .unwrap_or(i64::MAX)
            .saturating_add(IN_FLIGHT_SECONDS);
        let left = since.saturating_add(wait).saturating_sub(unix_now());
        if left > 0 {
            bail!(
                "tenant {id} was suspended {}s ago; the functions may still accept its requests \
                 from cached records for {left}s more (SECRET_CACHE_TTL_SECONDS, plus the time a \
                 record is still served while Secrets Manager fails, plus in-flight requests): \
                 delete it then, or pass --force",
                unix_now().saturating_sub(since)
            );
        }
        Ok(())
    }
}

fn summary(id: String, record: &TenantDocument) -> Summary {
    Summary {
        id,
        status: record
            .status()
            .map_or("invalid", TenantStatus::as_str)
            .to_owned(),
        routing: record
            .routing()
            .map_or_else(|| "-".to_owned(), |r| r.as_str().to_owned()),
        destination: record.destination_host().unwrap_or_else(|| "-".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_show_the_destination_host_only() {
        let record = TenantDocument::from_value(json!({"status": "suspended",
            "destination": {"url": "https://hooks.acme.example/x?token=secret"}}))
        .unwrap();
        let s = summary("acme".into(), &record);
        assert_eq!(
            s.to_string().split_whitespace().collect::<Vec<_>>(),
            ["acme", "suspended", "shared", "hooks.acme.example"]
        );
    }
}
