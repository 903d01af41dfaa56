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
use shared::source::{Provider, SourceId};
use shared::store::CachePolicy;
use shared::tenant::{DocumentError, NewTenant, TenantDocument};
use shared::{Isolation, Routing, Secret, TenantId, TenantStatus};

use super::dedicated::{self, Names, ScaleChange, Scaling};
use super::quota;
use super::stack::{self, Stack};
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
    /// The API its requests go through: `shared` or `per_tenant` (`-`
    /// when unreadable).
    pub isolation: String,
    /// The destination's host (`-` for none).
    pub destination: String,
}

impl Summary {
    /// The heading of `list`'s columns.
    pub const HEADING: &'static str =
        "TENANT                   STATUS     ROUTING    ISOLATION  DESTINATION";
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:<10} {:<10} {:<10} {}",
            self.id, self.status, self.routing, self.isolation, self.destination
        )
    }
}

/// What [`Records::set_isolation`] did.
#[derive(Debug, Clone)]
pub struct IsolationChange {
    /// The record had another isolation, and now has the one asked for.
    pub changed: bool,
    /// The tenant's sources and their providers: their URLs move with it.
    pub sources: Vec<(SourceId, Provider)>,
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

/// Why [`Records::edit`] did not change a record.
#[derive(Debug)]
pub enum EditError {
    /// The change was refused (the record stays as it was).
    Refused(DocumentError),
    /// The record could not be read or stored.
    Store(anyhow::Error),
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
            let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
            let (scaling, _) = self.plan_path(&names, ScaleChange::to(scaling)).await?;
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

    /// Reads a tenant's record, applies `change`, and stores the result
    /// when `change` succeeded and changed it. Returns what `change`
    /// returned.
    pub async fn edit<T>(
        &self,
        id: &TenantId,
        change: impl FnOnce(&mut TenantDocument) -> Result<T, DocumentError>,
    ) -> Result<T, EditError> {
        let mut record = self.read(id).await.map_err(EditError::Store)?;
        let before = record.clone();
        let done = change(&mut record).map_err(EditError::Refused)?;
        if record != before {
            self.write(id, &record).await.map_err(EditError::Store)?;
        }
        Ok(done)
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
        // while its rule or queue is missing would have no route. A missing
        // mapping comes back at the default scale, checked like a new one.
        if status == TenantStatus::Active && record.routing() == Some(Routing::Dedicated) {
            let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
            self.plan_path(&names, ScaleChange::default()).await?;
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
                        isolation: "-".into(),
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

    /// Deletes a tenant. It must be suspended, have no events in the
    /// shared dead-letter queue and, when it has queues of its own, have
    /// them empty, unless `force`. Its record can be restored for
    /// [`RECOVERY_WINDOW_DAYS`] unless `without_recovery`. Returns how many
    /// events found left in its own queues, once they were empty by their
    /// (approximate) counts, were moved to the shared dead-letter queue.
    pub async fn delete(
        &self,
        id: &TenantId,
        force: bool,
        without_recovery: bool,
    ) -> anyhow::Result<u64> {
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
        // A dedicated tenant may have some too, dead-lettered before its
        // promotion.
        if !force {
            self.check_no_dead_letters(id).await?;
        }
        // A demoted tenant may still have its old queues (a demote under
        // way, or a dead-letter queue kept for its dead letters).
        let leftovers = match self.stack.get(stack::QUEUE_PREFIX) {
            Some(prefix) => dedicated::exists(self.aws, &Names::new(prefix, id)?).await?,
            None => false,
        };
        let mut moved = 0;
        if record.routing() == Some(Routing::Dedicated) || leftovers {
            let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
            if force {
                dedicated::remove_all(self.aws, self.stack, &names).await?;
            } else {
                moved = self.remove_path(id, &names).await?;
            }
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
        Ok(moved)
    }

    /// Removes a suspended tenant's own path for `delete`, losing nothing:
    /// the rule first (the record, suspended long enough, routes nothing
    /// there any more), then, while the queues hold events by their counts,
    /// nothing more (a re-run goes on); [`dedicated::SETTLE_SECONDS`] after
    /// the rule's removal, the mapping; what is still on either queue then
    /// goes to the shared dead-letter queue, where a deleted tenant's
    /// events go (restoring the record makes them deliverable by a
    /// redrive); then the queues. Returns how many were moved.
    async fn remove_path(&self, id: &TenantId, names: &Names) -> anyhow::Result<u64> {
        if dedicated::rule(self.aws, self.stack, names)
            .await?
            .is_some()
        {
            dedicated::remove_rule(self.aws, self.stack, names).await?;
            dedicated::mark_rule_removed(self.aws, names, unix_now()).await?;
        }
        let pending = dedicated::pending(self.aws, self.stack, id).await?;
        if pending != dedicated::Pending::default() {
            bail!(
                "tenant {id}'s queue still holds {} and its dead-letter queue {}: \
                 wait for delivery or redrive them (`formbridge dlq redrive{}`), then delete \
                 it again; --force deletes them",
                crate::output::count(pending.queued, "event"),
                crate::output::count(pending.dead_lettered, "event"),
                self.stack.options()
            );
        }
        let shared_dlq = self.stack.require(stack::SHARED_DLQ)?;
        let mut moved = 0;
        if let Some((url, removed)) = dedicated::rule_removed_since(self.aws, names).await? {
            let left = removed
                .saturating_add(dedicated::SETTLE_SECONDS)
                .saturating_sub(unix_now());
            if left > 0 {
                eprintln!(
                    "formbridge: waiting {left} s for events matched by {id}'s rule before its \
                     removal (interrupting is safe: delete it again)"
                );
                tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
            }
            dedicated::remove_mappings(self.aws, self.stack, &url).await?;
            moved += super::dlq::move_all(self.aws, &url, &names.queue, shared_dlq).await?;
            let queued = dedicated::depth(self.aws, &names.queue).await?;
            if queued > 0 {
                bail!(
                    "tenant {id}'s queue still holds {} not visible yet (a connector invocation \
                     finishing); {moved} moved to the shared dead-letter queue: delete it again \
                     in a few minutes",
                    crate::output::count(queued, "event")
                );
            }
        }
        if let Some(url) = dedicated::queue_url(self.aws, &names.dead_letter_queue).await? {
            moved +=
                super::dlq::move_all(self.aws, &url, &names.dead_letter_queue, shared_dlq).await?;
        }
        dedicated::remove_queue(self.aws, self.stack, names).await?;
        dedicated::remove_dead_letter_queue(self.aws, names).await?;
        Ok(moved)
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
        let left = since
            .saturating_add(cache_wait(self.stack)?)
            .saturating_sub(unix_now());
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

    /// Refuses to delete a tenant whose events wait in the shared
    /// dead-letter queue: once its record is gone they cannot be
    /// delivered, and a redrive leaves them where they are.
    async fn check_no_dead_letters(&self, id: &TenantId) -> anyhow::Result<()> {
        let dlq = self.stack.require(stack::SHARED_DLQ)?;
        let count = super::dlq::count_tenant(self.aws, dlq, id).await?;
        if count > 0 {
            bail!(
                "tenant {id} has {} in the shared dead-letter queue: redrive them first \
                 (`formbridge dlq redrive --from shared{}`; they are delivered while its record \
                 exists), or pass --force to delete it anyway (they then stay in the dead-letter \
                 queue, which a redrive leaves them in, until its 14-day retention ends)",
                crate::output::count(count, "event"),
                self.stack.options()
            );
        }
        Ok(())
    }

    /// Before a dedicated path is created or completed: the scale its
    /// mapping will have (`change` applied to the existing mapping, if
    /// any), refused when the connector cannot run it, and the rule-quota
    /// warning when the rule is new. Returns that scale and whether the
    /// mapping is new or changes. The concurrency is checked only for a
    /// new mapping or a new maximum: an existing one is already in the sum.
    async fn plan_path(
        &self,
        names: &Names,
        change: ScaleChange,
    ) -> anyhow::Result<(Scaling, bool)> {
        let existing = dedicated::mapping(self.aws, self.stack, names).await?;
        let scaling = change.applied_to(existing.as_ref());
        let changes = existing.as_ref().is_none_or(|m| !m.is_at(scaling));
        let more = existing.is_none_or(|m| m.max_concurrency != Some(scaling.max_concurrency));
        if more {
            quota::check_concurrency(self.aws, self.stack, &names.queue, scaling.max_concurrency)
                .await?;
        }
        let adding = dedicated::rule(self.aws, self.stack, names)
            .await?
            .is_none();
        quota::warn_if_rules_near_quota(self.aws, self.stack, adding).await;
        Ok((scaling, changes))
    }

    /// Moves a tenant to dedicated routing: its own path first (created,
    /// or completed, and scaled as `change` asks: what it does not give,
    /// an existing mapping keeps), then its record. Events already on the
    /// shared queue, and those routed there by records still cached, are
    /// delivered by the shared mapping: nothing has to move.
    pub async fn promote(&self, id: &TenantId, change: ScaleChange) -> anyhow::Result<Promotion> {
        let mut record = self.read(id).await?;
        record
            .validate()
            .map_err(|e| anyhow!("tenant {id}'s record cannot be used ({e}): fix it first"))?;
        let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
        let (scaling, changes) = self.plan_path(&names, change).await?;
        let resources =
            dedicated::ensure(self.aws, self.stack, id, changes.then_some(scaling)).await?;
        let already = record.routing() == Some(Routing::Dedicated);
        if !already {
            record.set_routing(Routing::Dedicated)?;
            self.write(id, &record).await?;
        }
        Ok(Promotion {
            already,
            queue: resources.names.queue,
            scaling,
        })
    }

    /// Moves a tenant back to shared routing, as far as can be done now:
    /// the record first (after making sure its dedicated path is whole, for
    /// the records still cached), then, once no cached record can route to
    /// it, the rule; [`dedicated::SETTLE_SECONDS`] after that (events
    /// matched before have arrived), once the connector has emptied the
    /// queue, the mapping; then what is still on the queue moves to the
    /// shared queue and the queue goes; the dead-letter queue only when
    /// empty (its dead letters can still be redriven, to the shared queue).
    /// Each run continues from what exists.
    ///
    /// A promote may land while a demote is under way. Only a demote's
    /// first run (`may_switch`) switches a dedicated record; a later run of
    /// the same command that finds it dedicated again stops, and so does
    /// a run that finds it so just before removing the rule, the mapping
    /// or a queue: removing them would leave a dedicated record whose
    /// events (accepted, 202) match no rule or reach no queue.
    pub async fn demote(&self, id: &TenantId, may_switch: bool) -> anyhow::Result<Demoted> {
        let mut record = self.read(id).await?;
        let switched = match record.routing() {
            Some(Routing::Shared) => false,
            Some(Routing::Dedicated) if !may_switch => return Err(self.promoted_again(id)),
            Some(Routing::Dedicated) => {
                // Records still cached route the tenant's events here until
                // the rule goes, so the path is completed first. A missing
                // mapping is put back without the concurrency check: it
                // lives only until this demote removes it, and refusing
                // would leave those events on a queue nothing reads (or
                // block the demote that gives the concurrency back).
                dedicated::ensure(self.aws, self.stack, id, None).await?;
                record.set_routing(Routing::Shared)?;
                self.write(id, &record).await?;
                true
            }
            None => bail!("tenant {id}'s record has an invalid routing: fix it first"),
        };
        let mut demoted = Demoted {
            switched,
            moved: 0,
            moved_dead_letters: 0,
            state: Demotion::CachesExpire { seconds: 0 },
        };
        let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
        if let Some(rule) = dedicated::rule(self.aws, self.stack, &names).await? {
            let since = match rule.shared_since {
                Some(since) if !switched => since,
                // Unknown (a run stopped before it recorded it): from now,
                // which is never too early.
                _ => {
                    let now = unix_now();
                    dedicated::mark_shared_since(self.aws, &rule, now).await?;
                    now
                }
            };
            let left = since
                .saturating_add(cache_wait(self.stack)?)
                .saturating_sub(unix_now());
            if left > 0 {
                demoted.state = Demotion::CachesExpire { seconds: left };
                return Ok(demoted);
            }
            self.check_still_shared(id).await?;
            dedicated::remove_rule(self.aws, self.stack, &names).await?;
            dedicated::mark_rule_removed(self.aws, &names, unix_now()).await?;
        }
        if let Some((url, removed)) = dedicated::rule_removed_since(self.aws, &names).await? {
            let left = removed
                .saturating_add(dedicated::SETTLE_SECONDS)
                .saturating_sub(unix_now());
            if left > 0 {
                demoted.state = Demotion::Settling { seconds: left };
                return Ok(demoted);
            }
            // The connector delivers what its mapping can; the counts are
            // approximate, so what they miss is moved below.
            if dedicated::mapping(self.aws, self.stack, &names)
                .await?
                .is_some()
            {
                let queued = dedicated::depth(self.aws, &names.queue).await?;
                if queued > 0 {
                    demoted.state = Demotion::Draining { queued };
                    return Ok(demoted);
                }
                self.check_still_shared(id).await?;
                dedicated::remove_mappings(self.aws, self.stack, &url).await?;
            }
            let shared = self.stack.require(stack::SHARED_QUEUE)?;
            demoted.moved = super::dlq::move_all(self.aws, &url, &names.queue, shared).await?;
            // Messages a finishing invocation still holds are not visible:
            // they are moved by a later run, once they are.
            let queued = dedicated::depth(self.aws, &names.queue).await?;
            if queued > 0 {
                demoted.state = Demotion::Draining { queued };
                return Ok(demoted);
            }
            self.check_still_shared(id).await?;
            dedicated::remove_queue(self.aws, self.stack, &names).await?;
        }
        let dead_lettered = dedicated::depth(self.aws, &names.dead_letter_queue).await?;
        if dead_lettered == 0 {
            // The count is approximate: dead letters it missed go to the
            // shared dead-letter queue (alarmed, redriven by routing).
            if let Some(url) = dedicated::queue_url(self.aws, &names.dead_letter_queue).await? {
                let shared_dlq = self.stack.require(stack::SHARED_DLQ)?;
                demoted.moved_dead_letters =
                    super::dlq::move_all(self.aws, &url, &names.dead_letter_queue, shared_dlq)
                        .await?;
            }
            self.check_still_shared(id).await?;
            dedicated::remove_dead_letter_queue(self.aws, &names).await?;
        }
        demoted.state = Demotion::Done {
            dead_lettered,
            dead_letter_queue: names.dead_letter_queue,
        };
        Ok(demoted)
    }

    /// Reads the record again, right before a demote removes part of the
    /// path: a promote since then must keep it.
    async fn check_still_shared(&self, id: &TenantId) -> anyhow::Result<()> {
        match self.read(id).await?.routing() {
            Some(Routing::Dedicated) => Err(self.promoted_again(id)),
            _ => Ok(()),
        }
    }

    fn promoted_again(&self, id: &TenantId) -> anyhow::Error {
        anyhow!(
            "tenant {id} was promoted again while this demote was under way (its record routes \
             dedicated): stopped, leaving its dedicated path in place for its events; to demote \
             it, run `formbridge tenants demote {id}{}` again",
            self.stack.options()
        )
    }

    /// Moves a tenant to the API of `isolation` by setting its record's
    /// `isolation`; nothing else changes (its routing, secrets and sources
    /// stay). The record must be one the functions accept.
    pub async fn set_isolation(
        &self,
        id: &TenantId,
        isolation: Isolation,
    ) -> anyhow::Result<IsolationChange> {
        let edited = self
            .edit(id, |record| {
                let changed = record.set_isolation(isolation)?;
                let sources = record
                    .validate()?
                    .sources
                    .into_iter()
                    .map(|(id, keys)| (id, keys.provider()))
                    .collect();
                Ok(IsolationChange { changed, sources })
            })
            .await;
        match edited {
            Ok(change) => Ok(change),
            Err(EditError::Refused(e)) => {
                bail!("tenant {id}'s record cannot be used ({e}): fix it first")
            }
            Err(EditError::Store(e)) => Err(e),
        }
    }

    /// Changes a dedicated tenant's mapping: its maximum concurrency and
    /// batch size, each kept when not given. Returns the scale before and
    /// after.
    pub async fn scale(
        &self,
        id: &TenantId,
        change: ScaleChange,
    ) -> anyhow::Result<(dedicated::Mapping, Scaling)> {
        let record = self.read(id).await?;
        if record.routing() != Some(Routing::Dedicated) {
            bail!(
                "tenant {id} has shared routing: its events go through the shared queue, whose \
                 mapping the stack sets (ConnectorMaxConcurrency, ConnectorBatchSize); to give it \
                 its own, run `formbridge tenants promote {id}{}`",
                self.stack.options()
            );
        }
        let names = Names::new(self.stack.require(stack::QUEUE_PREFIX)?, id)?;
        let Some(mapping) = dedicated::mapping(self.aws, self.stack, &names).await? else {
            bail!(
                "tenant {id} has no event source mapping on the connector (or no queue {}): \
                 `formbridge tenants resume {id}{}` puts its path back",
                names.queue,
                self.stack.options()
            );
        };
        let after = change.applied_to(Some(&mapping));
        quota::check_concurrency(self.aws, self.stack, &names.queue, after.max_concurrency).await?;
        dedicated::scale(self.aws, &mapping.uuid, after).await?;
        Ok((mapping, after))
    }
}

/// What `promote` did.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The record already had dedicated routing (the path was completed).
    pub already: bool,
    /// The tenant's queue.
    pub queue: String,
    /// Its mapping's scale.
    pub scaling: Scaling,
}

/// What one `demote` run did, and where the demote stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demoted {
    /// This run switched the record to shared routing.
    pub switched: bool,
    /// Events this run moved from the tenant's queue to the shared queue
    /// (left there after its mapping was removed).
    pub moved: u64,
    /// Dead letters this run moved from the tenant's dead-letter queue to
    /// the shared one (missed by the approximate count before its removal).
    pub moved_dead_letters: u64,
    /// Where it stands.
    pub state: Demotion,
}

/// Where a demote stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Demotion {
    /// Functions may still route the tenant's events to its rule from a
    /// cached record for this many seconds: the rule stays until then.
    CachesExpire {
        /// Seconds left.
        seconds: i64,
    },
    /// The rule is gone, but events EventBridge matched before its removal
    /// may still arrive for this many seconds: the queue stays until then.
    Settling {
        /// Seconds left.
        seconds: i64,
    },
    /// The rule is gone; the queue still holds events (its mapping
    /// delivering them, or, once the mapping is gone, messages not visible
    /// yet that a later run moves to the shared queue).
    Draining {
        /// Events waiting, in flight or delayed.
        queued: u64,
    },
    /// The rule, mapping and queue are gone; so is the dead-letter queue,
    /// unless it holds dead letters.
    Done {
        /// Dead letters kept (0: the dead-letter queue was removed).
        dead_lettered: u64,
        /// Its name.
        dead_letter_queue: String,
    },
}

/// How long after a record changes a function may still act on the
/// previous one: the functions' cache TTL, the time a record is still
/// served while Secrets Manager fails (`stale_if_error`), and ingest's
/// timeout for requests authorized just before. `delete` waits this long
/// after a suspension, `demote` after the switch to shared routing.
pub fn cache_wait(stack: &Stack) -> anyhow::Result<i64> {
    let ttl = Duration::from_secs(stack.cache_ttl()?);
    let served = ttl + CachePolicy::with_ttl(ttl).stale_if_error;
    Ok(i64::try_from(served.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(IN_FLIGHT_SECONDS))
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
        isolation: record
            .isolation()
            .map_or_else(|| "-".to_owned(), |i| i.as_str().to_owned()),
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
            [
                "acme",
                "suspended",
                "shared",
                "shared",
                "hooks.acme.example"
            ]
        );
    }

    #[test]
    fn summaries_line_up_under_the_heading_and_show_the_isolation() {
        let record = TenantDocument::from_value(json!({"isolation": "per_tenant"})).unwrap();
        let line = summary("acme".into(), &record).to_string();
        let column = |text: &str, word: &str| text.find(word).unwrap();
        assert_eq!(
            column(Summary::HEADING, "ISOLATION"),
            column(&line, "per_tenant"),
            "{line}"
        );
        assert_eq!(
            column(Summary::HEADING, "DESTINATION"),
            column(&line, "per_tenant") + 11
        );
        let odd = TenantDocument::from_value(json!({"isolation": "dedicated"})).unwrap();
        let fields: Vec<String> = summary("x".into(), &odd)
            .to_string()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(fields[3], "-");
    }
}
