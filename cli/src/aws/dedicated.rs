//! A dedicated tenant's own delivery path: a rule on the stack's bus that
//! matches only its events, its own queue and dead-letter queue, its own
//! event source mapping on the connector with its own maximum concurrency,
//! and alarms on its queue's age and its dead-letter queue's depth. A noisy
//! or failing tenant then fills and retries only its own queue.
//!
//! Names: queue `{prefix}{tenant}` and `{prefix}{tenant}_dlq`, where the
//! stack's prefix is `{stack}_t_`. Stack names and tenant IDs never contain
//! `_`, so no tenant's queue can be taken for another's or for another
//! stack's, and the connector's permission (`{stack}_t_*`) covers nothing
//! else.
//!
//! Every step converges (creates what is missing, sets what differs), so
//! running `tenants create --dedicated` again after a failure, or `tenants
//! resume` after a record was restored, completes the path.

use anyhow::{Context as _, anyhow, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use shared::tenant_id::TenantId;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use super::stack::{self, Stack};
use super::{Clients, describe, is_not_found};

/// SQS's longest queue name.
const MAX_QUEUE_NAME: usize = 80;
/// Six times the connector's 60 s timeout, as in `template.yaml`.
const VISIBILITY_TIMEOUT_SECONDS: &str = "360";
/// Dead letters are kept 14 days, SQS's longest.
const DEAD_LETTER_RETENTION_SECONDS: &str = "1209600";
/// Undelivered records are kept 14 days, as in the shared queue.
const RETENTION_SECONDS: &str = "1209600";
/// Events of up to 1 MiB, EventBridge's limit.
const MAX_MESSAGE_BYTES: &str = "1048576";
/// The dead-letter queue's suffix.
pub const DLQ_SUFFIX: &str = "_dlq";
/// The rule target's ID.
const TARGET_ID: &str = "queue";
/// The tag a demote puts on the tenant's rule: the Unix time from which
/// its record routes shared, so a re-run knows how long cached records
/// may still route events to the rule.
pub const SHARED_SINCE_TAG: &str = "form-bridge:shared-since";
/// The tag put on the tenant's queue when its rule is removed: the Unix
/// time of the removal, so a re-run knows how long events matched before
/// it may still arrive.
pub const RULE_REMOVED_TAG: &str = "form-bridge:rule-removed-at";
/// How long the queue is kept after its rule's removal. EventBridge puts a
/// matched event on its target within seconds, so an event matched just
/// before the removal has arrived by then (one whose delivery is being
/// retried, the queue failing, goes to the events dead-letter queue).
pub const SETTLE_SECONDS: i64 = 60;
/// EventBridge keeps retrying a target for 24 hours (185 attempts).
const TARGET_MAX_ATTEMPTS: i32 = 185;
const TARGET_MAX_AGE_SECONDS: i32 = 86_400;

/// How the connector reads a dedicated tenant's queue.
#[derive(Debug, Clone, Copy)]
pub struct Scaling {
    /// Records per invocation (1 to 10).
    pub batch_size: i32,
    /// Most concurrent invocations for this tenant (2 to 1000).
    pub max_concurrency: i32,
}

impl Scaling {
    /// `ScalingConfig` with this maximum concurrency.
    fn config(&self) -> aws_sdk_lambda::types::ScalingConfig {
        aws_sdk_lambda::types::ScalingConfig::builder()
            .maximum_concurrency(self.max_concurrency)
            .build()
    }
}

impl Default for Scaling {
    /// Full batches, and at most 5 invocations at once.
    fn default() -> Self {
        Self {
            batch_size: 10,
            max_concurrency: 5,
        }
    }
}

/// A change of a mapping's scale as a command asks for it: each field
/// given, or `None` to keep what the mapping has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleChange {
    /// Records per invocation.
    pub batch_size: Option<i32>,
    /// Most concurrent invocations.
    pub max_concurrency: Option<i32>,
}

impl ScaleChange {
    /// Both fields given.
    pub fn to(scaling: Scaling) -> Self {
        Self {
            batch_size: Some(scaling.batch_size),
            max_concurrency: Some(scaling.max_concurrency),
        }
    }

    /// The scale a mapping has after this change: each field as given,
    /// else as `current` has it, else the default (a new mapping, or one
    /// without that setting). The one place where a change and an
    /// existing mapping are merged, so `create`, `promote` and `scale`
    /// agree that what is not given is kept.
    pub fn applied_to(self, current: Option<&Mapping>) -> Scaling {
        let default = Scaling::default();
        Scaling {
            batch_size: self
                .batch_size
                .or(current.and_then(|m| m.batch_size))
                .unwrap_or(default.batch_size),
            max_concurrency: self
                .max_concurrency
                .or(current.and_then(|m| m.max_concurrency))
                .unwrap_or(default.max_concurrency),
        }
    }
}

/// The names of a dedicated tenant's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Its queue.
    pub queue: String,
    /// Its dead-letter queue.
    pub dead_letter_queue: String,
    /// Its rule on the stack's bus (rules are per bus, so the tenant ID).
    pub rule: String,
    /// Its dead-letter queue's depth alarm.
    pub depth_alarm: String,
    /// Its queue's age alarm.
    pub age_alarm: String,
}

impl Names {
    /// Names from the stack's queue prefix; refuses names SQS would.
    pub fn new(queue_prefix: &str, tenant: &TenantId) -> anyhow::Result<Self> {
        let queue = format!("{queue_prefix}{tenant}");
        let dead_letter_queue = format!("{queue}{DLQ_SUFFIX}");
        if dead_letter_queue.len() > MAX_QUEUE_NAME {
            bail!(
                "the queue name {dead_letter_queue} would be {} characters; SQS allows {MAX_QUEUE_NAME}: \
                 use a shorter tenant ID or deploy the stack under a shorter name",
                dead_letter_queue.len()
            );
        }
        Ok(Self {
            depth_alarm: format!("{dead_letter_queue}-depth"),
            age_alarm: format!("{queue}-age"),
            rule: tenant.to_string(),
            queue,
            dead_letter_queue,
        })
    }
}

/// What `ensure` made or found.
#[derive(Debug, Clone)]
pub struct Resources {
    /// Its names.
    pub names: Names,
    /// The queue's URL.
    pub queue_url: String,
    /// The event source mapping's ID.
    pub mapping: String,
}

/// Events left in a dedicated tenant's queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Waiting for delivery, in flight or delayed.
    pub queued: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
}

/// Creates (or completes) a dedicated tenant's resources. With `scaling`,
/// the event source mapping is created or updated to it; without, an
/// existing mapping is kept as it is and a missing one gets the defaults.
pub async fn ensure(
    aws: &Clients,
    stack: &Stack,
    tenant: &TenantId,
    scaling: Option<Scaling>,
) -> anyhow::Result<Resources> {
    let names = Names::new(stack.require(stack::QUEUE_PREFIX)?, tenant)?;
    let bus = stack.require(stack::BUS)?;
    let source = stack.event_source();
    let events_dlq = stack.require(stack::EVENTS_DLQ_ARN)?;
    let connector = stack.require(stack::CONNECTOR)?;
    let max_receives = stack.max_receive_count()?;

    let dlq_url = create_queue(
        aws,
        &names.dead_letter_queue,
        &[
            (
                QueueAttributeName::MessageRetentionPeriod,
                DEAD_LETTER_RETENTION_SECONDS.to_owned(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                MAX_MESSAGE_BYTES.to_owned(),
            ),
        ],
    )
    .await?;
    let dlq_arn = queue_arn(aws, &dlq_url).await?;
    // Same account and region, so the queue's ARN is known before it exists.
    let queue_arn = dlq_arn
        .strip_suffix(DLQ_SUFFIX)
        .context("dead-letter queue ARN without its suffix")?
        .to_owned();

    let pattern = json!({
        "source": [source],
        "detail-type": [shared::event::DETAIL_TYPE],
        "detail": {"tenant_id": [tenant.as_str()], "routing": ["dedicated"]},
    });
    let rule_arn = aws
        .events
        .put_rule()
        .name(&names.rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .description(format!("Form-Bridge: dedicated tenant {tenant}"))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot create rule {} on bus {bus}: {}",
                names.rule,
                describe(&e)
            )
        })?
        .rule_arn
        .context("PutRule answered without the rule's ARN")?;
    // The path is wanted again (a promote after a demote began): a demote
    // run later measures its wait from its own switch, not an older one.
    aws.events
        .untag_resource()
        .resource_arn(&rule_arn)
        .tag_keys(SHARED_SINCE_TAG)
        .send()
        .await
        .map_err(|e| anyhow!("cannot update rule {}'s tags: {}", names.rule, describe(&e)))?;

    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "tenant-rule",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    });
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives});
    let queue_url = create_queue(
        aws,
        &names.queue,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                VISIBILITY_TIMEOUT_SECONDS.to_owned(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                RETENTION_SECONDS.to_owned(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                MAX_MESSAGE_BYTES.to_owned(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (QueueAttributeName::Policy, policy.to_string()),
        ],
    )
    .await?;

    // The rule is wanted again: a later removal starts its own settling.
    aws.sqs
        .untag_queue()
        .queue_url(&queue_url)
        .tag_keys(RULE_REMOVED_TAG)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot update queue {}'s tags: {}",
                names.queue,
                describe(&e)
            )
        })?;

    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(TARGET_ID)
        .arn(&queue_arn)
        .retry_policy(
            aws_sdk_eventbridge::types::RetryPolicy::builder()
                .maximum_retry_attempts(TARGET_MAX_ATTEMPTS)
                .maximum_event_age_in_seconds(TARGET_MAX_AGE_SECONDS)
                .build(),
        )
        .dead_letter_config(
            aws_sdk_eventbridge::types::DeadLetterConfig::builder()
                .arn(events_dlq)
                .build(),
        )
        .build()
        .context("rule target")?;
    let answer = aws
        .events
        .put_targets()
        .rule(&names.rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot target rule {} at its queue: {}",
                names.rule,
                describe(&e)
            )
        })?;
    if answer.failed_entry_count > 0 {
        let why = answer
            .failed_entries()
            .first()
            .and_then(|f| f.error_message())
            .unwrap_or("no reason given");
        bail!("cannot target rule {} at its queue: {why}", names.rule);
    }

    let mapping = ensure_mapping(aws, connector, &queue_arn, scaling).await?;
    put_alarms(aws, stack, &names).await?;
    Ok(Resources {
        names,
        queue_url,
        mapping,
    })
}

/// The events still in a dedicated tenant's queues; zero for queues that
/// do not exist.
pub async fn pending(aws: &Clients, stack: &Stack, tenant: &TenantId) -> anyhow::Result<Pending> {
    let names = Names::new(stack.require(stack::QUEUE_PREFIX)?, tenant)?;
    Ok(Pending {
        queued: depth(aws, &names.queue).await?,
        dead_lettered: depth(aws, &names.dead_letter_queue).await?,
    })
}

/// Whether the tenant has a queue or a dead-letter queue of its own.
pub async fn exists(aws: &Clients, names: &Names) -> anyhow::Result<bool> {
    Ok(queue_url(aws, &names.queue).await?.is_some()
        || queue_url(aws, &names.dead_letter_queue).await?.is_some())
}

/// Removes a dedicated tenant's resources at once, whatever its queues
/// still hold (`delete --force`); those already gone are skipped. The rule
/// goes first, so no new event arrives.
pub async fn remove_all(aws: &Clients, stack: &Stack, names: &Names) -> anyhow::Result<()> {
    remove_rule(aws, stack, names).await?;
    remove_queue(aws, stack, names).await?;
    remove_dead_letter_queue(aws, names).await
}

/// Records on the tenant's queue, if it has one, that its rule is gone
/// since `at` (Unix seconds).
pub async fn mark_rule_removed(aws: &Clients, names: &Names, at: i64) -> anyhow::Result<()> {
    let Some(url) = queue_url(aws, &names.queue).await? else {
        return Ok(());
    };
    aws.sqs
        .tag_queue()
        .queue_url(&url)
        .tags(RULE_REMOVED_TAG, at.to_string())
        .send()
        .await
        .map_err(|e| anyhow!("cannot tag queue {}: {}", names.queue, describe(&e)))?;
    Ok(())
}

/// The tenant's queue (its URL) and since when its rule is gone, as the
/// queue records it ([`RULE_REMOVED_TAG`]); `None` when it has no queue.
/// A queue without the record (a run stopped between the removal and the
/// tag) gets it now, which is never too early.
pub async fn rule_removed_since(
    aws: &Clients,
    names: &Names,
) -> anyhow::Result<Option<(String, i64)>> {
    let Some(url) = queue_url(aws, &names.queue).await? else {
        return Ok(None);
    };
    let tags = aws
        .sqs
        .list_queue_tags()
        .queue_url(&url)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read queue {}'s tags: {}", names.queue, describe(&e)))?;
    let recorded = tags
        .tags
        .as_ref()
        .and_then(|t| t.get(RULE_REMOVED_TAG))
        .and_then(|v| v.parse().ok());
    let since = match recorded {
        Some(since) => since,
        None => {
            let now = shared::signature::unix_now();
            mark_rule_removed(aws, names, now).await?;
            now
        }
    };
    Ok(Some((url, since)))
}

/// Deletes the connector's event source mappings from the tenant's queue,
/// so nothing but the caller receives from it any more.
pub async fn remove_mappings(aws: &Clients, stack: &Stack, url: &str) -> anyhow::Result<()> {
    let connector = stack.require(stack::CONNECTOR)?;
    let arn = queue_arn(aws, url).await?;
    for Mapping { uuid, .. } in mappings(aws, connector, &arn).await? {
        let deleted = aws
            .lambda
            .delete_event_source_mapping()
            .uuid(&uuid)
            .send()
            .await;
        unless_gone(deleted, || {
            format!("cannot delete event source mapping {uuid}")
        })?;
    }
    Ok(())
}

/// A dedicated tenant's rule on the bus, as a demote sees it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its ARN.
    pub arn: String,
    /// Since when (Unix seconds) the tenant's record routes shared, once a
    /// demote has recorded it ([`SHARED_SINCE_TAG`]).
    pub shared_since: Option<i64>,
}

/// The tenant's rule, or `None` when it has none.
pub async fn rule(aws: &Clients, stack: &Stack, names: &Names) -> anyhow::Result<Option<Rule>> {
    let bus = stack.require(stack::BUS)?;
    let found = aws
        .events
        .describe_rule()
        .name(&names.rule)
        .event_bus_name(bus)
        .send()
        .await;
    let arn = match found {
        Ok(rule) => rule
            .arn
            .with_context(|| format!("DescribeRule answered without rule {}'s ARN", names.rule))?,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => bail!("cannot read rule {}: {}", names.rule, describe(&e)),
    };
    let tags = aws
        .events
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read rule {}'s tags: {}", names.rule, describe(&e)))?;
    let shared_since = tags
        .tags()
        .iter()
        .find(|t| t.key() == SHARED_SINCE_TAG)
        .and_then(|t| t.value().parse().ok());
    Ok(Some(Rule { arn, shared_since }))
}

/// Records on the rule that the tenant's record routes shared since `at`.
pub async fn mark_shared_since(aws: &Clients, rule: &Rule, at: i64) -> anyhow::Result<()> {
    let tag = aws_sdk_eventbridge::types::Tag::builder()
        .key(SHARED_SINCE_TAG)
        .value(at.to_string())
        .build()
        .context("rule tag")?;
    aws.events
        .tag_resource()
        .resource_arn(&rule.arn)
        .tags(tag)
        .send()
        .await
        .map_err(|e| anyhow!("cannot tag rule {}: {}", rule.arn, describe(&e)))?;
    Ok(())
}

/// Removes the tenant's rule (its target first), if it exists.
pub async fn remove_rule(aws: &Clients, stack: &Stack, names: &Names) -> anyhow::Result<()> {
    let bus = stack.require(stack::BUS)?;
    let rule = &names.rule;
    let removed = aws
        .events
        .remove_targets()
        .rule(rule)
        .event_bus_name(bus)
        .ids(TARGET_ID)
        .send()
        .await;
    unless_gone(removed, || format!("cannot remove rule {rule}'s target"))?;
    let deleted = aws
        .events
        .delete_rule()
        .name(rule)
        .event_bus_name(bus)
        .send()
        .await;
    unless_gone(deleted, || format!("cannot delete rule {rule}"))
}

/// Removes the tenant's queue, its event source mappings (first, so the
/// connector stops reading it) and its age alarm, whatever the queue
/// still holds: callers move what is left first (or mean to discard it).
pub async fn remove_queue(aws: &Clients, stack: &Stack, names: &Names) -> anyhow::Result<()> {
    if let Some(url) = queue_url(aws, &names.queue).await? {
        remove_mappings(aws, stack, &url).await?;
        delete_queue(aws, &names.queue, &url).await?;
    }
    let deleted = aws
        .cloudwatch
        .delete_alarms()
        .alarm_names(&names.age_alarm)
        .send()
        .await;
    unless_gone(deleted, || {
        format!("cannot delete alarm {}", names.age_alarm)
    })
}

/// Removes the tenant's dead-letter queue and its depth alarm, whatever it
/// still holds: callers move what is left first (or mean to discard it).
pub async fn remove_dead_letter_queue(aws: &Clients, names: &Names) -> anyhow::Result<()> {
    if let Some(url) = queue_url(aws, &names.dead_letter_queue).await? {
        delete_queue(aws, &names.dead_letter_queue, &url).await?;
    }
    let deleted = aws
        .cloudwatch
        .delete_alarms()
        .alarm_names(&names.depth_alarm)
        .send()
        .await;
    unless_gone(deleted, || {
        format!("cannot delete alarm {}", names.depth_alarm)
    })
}

async fn delete_queue(aws: &Clients, name: &str, url: &str) -> anyhow::Result<()> {
    let deleted = aws.sqs.delete_queue().queue_url(url).send().await;
    unless_gone(deleted, || format!("cannot delete queue {name}"))
}

/// A dedicated tenant's event source mapping as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Its ID.
    pub uuid: String,
    /// Records per invocation.
    pub batch_size: Option<i32>,
    /// Most concurrent invocations (`None`: no maximum set).
    pub max_concurrency: Option<i32>,
}

/// The tenant's event source mapping on the connector, if its queue and
/// mapping exist.
pub async fn mapping(
    aws: &Clients,
    stack: &Stack,
    names: &Names,
) -> anyhow::Result<Option<Mapping>> {
    let connector = stack.require(stack::CONNECTOR)?;
    let Some(url) = queue_url(aws, &names.queue).await? else {
        return Ok(None);
    };
    let arn = queue_arn(aws, &url).await?;
    Ok(mappings(aws, connector, &arn).await?.into_iter().next())
}

impl Mapping {
    /// Whether it runs at exactly this scale.
    pub fn is_at(&self, scaling: Scaling) -> bool {
        self.batch_size == Some(scaling.batch_size)
            && self.max_concurrency == Some(scaling.max_concurrency)
    }
}

/// Sets a mapping's batch size and maximum concurrency.
pub async fn scale(aws: &Clients, uuid: &str, scaling: Scaling) -> anyhow::Result<()> {
    aws.lambda
        .update_event_source_mapping()
        .uuid(uuid)
        .batch_size(scaling.batch_size)
        .scaling_config(scaling.config())
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot update event source mapping {uuid}: {}",
                describe(&e)
            )
        })?;
    Ok(())
}

/// Success, or the thing was already gone; else the error, described.
fn unless_gone<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    what: impl FnOnce() -> String,
) -> anyhow::Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => bail!("{}: {}", what(), describe(&e)),
    }
}

/// Creates a queue with SQS-managed encryption and these attributes; if
/// it exists, sets them (a re-run converges).
async fn create_queue(
    aws: &Clients,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<String> {
    let mut wanted: std::collections::HashMap<QueueAttributeName, String> =
        attributes.iter().cloned().collect();
    wanted.insert(QueueAttributeName::SqsManagedSseEnabled, "true".to_owned());
    match aws
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(wanted.clone()))
        .send()
        .await
    {
        Ok(answer) => answer
            .queue_url
            .with_context(|| format!("CreateQueue answered without {name}'s URL")),
        Err(e) if e.code().is_some_and(|c| c.contains("QueueDeletedRecently")) => bail!(
            "queue {name} was deleted less than 60 seconds ago and SQS does not allow its name yet: \
             try again in a minute"
        ),
        Err(e)
            if e.code().is_some_and(|c| {
                c.contains("QueueAlreadyExists") || c.contains("QueueNameExists")
            }) =>
        {
            let url = queue_url(aws, name)
                .await?
                .with_context(|| format!("queue {name} exists but cannot be found"))?;
            aws.sqs
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(wanted))
                .send()
                .await
                .map_err(|e| anyhow!("cannot update queue {name}: {}", describe(&e)))?;
            Ok(url)
        }
        Err(e) => bail!("cannot create queue {name}: {}", describe(&e)),
    }
}

/// A queue's URL, or `None` when there is no such queue.
pub async fn queue_url(aws: &Clients, name: &str) -> anyhow::Result<Option<String>> {
    match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(answer) => Ok(answer.queue_url),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => bail!("cannot look up queue {name}: {}", describe(&e)),
    }
}

async fn queue_arn(aws: &Clients, url: &str) -> anyhow::Result<String> {
    attributes(aws, url, &[QueueAttributeName::QueueArn])
        .await?
        .remove(&QueueAttributeName::QueueArn)
        .with_context(|| format!("queue {url} has no ARN"))
}

async fn attributes(
    aws: &Clients,
    url: &str,
    names: &[QueueAttributeName],
) -> anyhow::Result<std::collections::HashMap<QueueAttributeName, String>> {
    Ok(aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .set_attribute_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| anyhow!("cannot read queue {url}: {}", describe(&e)))?
        .attributes
        .unwrap_or_default())
}

/// Messages waiting, in flight and delayed in the queue `name`.
pub async fn depth(aws: &Clients, name: &str) -> anyhow::Result<u64> {
    let Some(url) = queue_url(aws, name).await? else {
        return Ok(0);
    };
    let counts = attributes(
        aws,
        &url,
        &[
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ],
    )
    .await?;
    Ok(counts.values().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// The live event source mappings from `queue_arn` to the connector.
async fn mappings(aws: &Clients, connector: &str, queue_arn: &str) -> anyhow::Result<Vec<Mapping>> {
    let answer = aws
        .lambda
        .list_event_source_mappings()
        .function_name(connector)
        .event_source_arn(queue_arn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot list {connector}'s event source mappings: {}",
                describe(&e)
            )
        })?;
    Ok(live_mappings(answer.event_source_mappings()))
}

/// The mappings that are not being deleted: one that is deleting cannot
/// be updated and will be gone, so it does not count as the tenant's
/// mapping (a `create` right after a `delete` makes a new one).
fn live_mappings(
    mappings: &[aws_sdk_lambda::types::EventSourceMappingConfiguration],
) -> Vec<Mapping> {
    mappings
        .iter()
        .filter(|m| is_live(m))
        .filter_map(|m| {
            Some(Mapping {
                uuid: m.uuid()?.to_owned(),
                batch_size: m.batch_size(),
                max_concurrency: m.scaling_config().and_then(|c| c.maximum_concurrency()),
            })
        })
        .collect()
}

/// Whether a mapping is not being deleted (see `live_mappings`).
pub fn is_live(mapping: &aws_sdk_lambda::types::EventSourceMappingConfiguration) -> bool {
    mapping.state() != Some("Deleting")
}

async fn ensure_mapping(
    aws: &Clients,
    connector: &str,
    queue_arn: &str,
    scaling: Option<Scaling>,
) -> anyhow::Result<String> {
    if let Some(Mapping { uuid, .. }) = mappings(aws, connector, queue_arn)
        .await?
        .into_iter()
        .next()
    {
        if let Some(scaling) = scaling {
            aws.lambda
                .update_event_source_mapping()
                .uuid(&uuid)
                .enabled(true)
                .batch_size(scaling.batch_size)
                .scaling_config(scaling.config())
                .function_response_types(
                    aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
                )
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "cannot update event source mapping {uuid}: {}",
                        describe(&e)
                    )
                })?;
        }
        return Ok(uuid);
    }
    let scaling = scaling.unwrap_or_default();
    aws.lambda
        .create_event_source_mapping()
        .function_name(connector)
        .event_source_arn(queue_arn)
        .batch_size(scaling.batch_size)
        .maximum_batching_window_in_seconds(0)
        .scaling_config(scaling.config())
        .function_response_types(
            aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
        )
        .send()
        .await
        .map_err(|e| anyhow!("cannot connect the queue to {connector}: {}", describe(&e)))?
        .uuid
        .context("CreateEventSourceMapping answered without an ID")
}

/// The dead-letter queue's depth alarm and the queue's age alarm, to the
/// stack's alarm topic.
async fn put_alarms(aws: &Clients, stack: &Stack, names: &Names) -> anyhow::Result<()> {
    // Whole seconds up to 14 days: exact as an f64.
    let age = stack.queue_age_alarm()? as f64;
    let alarms = [
        (
            &names.depth_alarm,
            &names.dead_letter_queue,
            "ApproximateNumberOfMessagesVisible",
            60,
            1.0,
            "undelivered events; fix the cause, then formbridge dlq redrive",
        ),
        (
            &names.age_alarm,
            &names.queue,
            "ApproximateAgeOfOldestMessage",
            300,
            age,
            "the oldest event has waited too long (a stalled connector or a failing destination)",
        ),
    ];
    let topic = stack.get(stack::ALARM_TOPIC).map(|t| vec![t.to_owned()]);
    for (alarm, queue, metric, period, threshold, what) in alarms {
        aws.cloudwatch
            .put_metric_alarm()
            .alarm_name(alarm)
            .alarm_description(format!("Form-Bridge {queue}: {what}"))
            .namespace("AWS/SQS")
            .metric_name(metric)
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("QueueName")
                    .value(queue)
                    .build(),
            )
            .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .period(period)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold,
            )
            .treat_missing_data("notBreaching")
            .set_alarm_actions(topic.clone())
            .set_ok_actions(topic.clone())
            .send()
            .await
            .map_err(|e| anyhow!("cannot create alarm {alarm}: {}", describe(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mappings_being_deleted_do_not_count() {
        use aws_sdk_lambda::types::EventSourceMappingConfiguration as Mapping;
        let mapping = |uuid: &str, state: &str| Mapping::builder().uuid(uuid).state(state).build();
        let found = live_mappings(&[
            mapping("old", "Deleting"),
            mapping("new", "Creating"),
            mapping("on", "Enabled"),
        ]);
        let uuids: Vec<&str> = found.iter().map(|m| m.uuid.as_str()).collect();
        assert_eq!(uuids, ["new", "on"]);
    }

    #[test]
    fn a_change_keeps_what_it_does_not_give() {
        let current = super::Mapping {
            uuid: "m".into(),
            batch_size: Some(3),
            max_concurrency: Some(20),
        };
        let batch_only = ScaleChange {
            batch_size: Some(5),
            max_concurrency: None,
        };
        let after = batch_only.applied_to(Some(&current));
        assert_eq!((after.batch_size, after.max_concurrency), (5, 20));
        assert!(!current.is_at(after));
        // Nothing given: the mapping as it is.
        assert!(current.is_at(ScaleChange::default().applied_to(Some(&current))));
        // No mapping, or one without a maximum: the defaults fill in.
        let new = batch_only.applied_to(None);
        assert_eq!((new.batch_size, new.max_concurrency), (5, 5));
        let unbounded = super::Mapping {
            max_concurrency: None,
            ..current.clone()
        };
        assert_eq!(
            ScaleChange::default()
                .applied_to(Some(&unbounded))
                .max_concurrency,
            5
        );
        let both = Scaling {
            batch_size: 1,
            max_concurrency: 2,
        };
        let set = ScaleChange::to(both).applied_to(Some(&current));
        assert_eq!((set.batch_size, set.max_concurrency), (1, 2));
    }

    #[test]
    fn names_follow_the_stack_prefix_and_fit_sqs() {
        let id = TenantId::parse("acme").unwrap();
        let names = Names::new("form-bridge_t_", &id).unwrap();
        assert_eq!(names.queue, "form-bridge_t_acme");
        assert_eq!(names.dead_letter_queue, "form-bridge_t_acme_dlq");
        assert_eq!(names.rule, "acme");
        // Tenant "acme-dlq" cannot collide with acme's dead-letter queue.
        let other = Names::new("form-bridge_t_", &TenantId::parse("acme-dlq").unwrap()).unwrap();
        assert_ne!(other.queue, names.dead_letter_queue);
        let long = TenantId::parse(&"a".repeat(63)).unwrap();
        let error = Names::new("form-bridge_t_", &long).unwrap_err().to_string();
        assert!(error.contains("SQS allows 80"), "{error}");
        assert!(Names::new("fb_t_", &long).is_ok());
    }
}
