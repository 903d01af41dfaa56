//! `formbridge dlq redrive`: dead-lettered events back to their delivery
//! queue.
//!
//! Each event goes to the queue of its tenant's routing as the tenant's
//! record says now, whichever dead-letter queue it sits in: the shared
//! dead-letter queue, a dedicated (or demoted) tenant's own, or the events
//! dead-letter queue (events EventBridge could not put on a queue). A
//! demoted tenant's dead letters go to the shared queue, a promoted one's
//! to its own; a tenant without a record keeps its dead letters where
//! they are (the connector could not deliver them).
//!
//! Each message is sent to its destination first and deleted from the
//! dead-letter queue only once sent, so a failure part-way leaves it where
//! it was; at worst an event is delivered twice, with the same
//! `webhook-id`. SQS's own `StartMessageMoveTask` cannot route events by
//! tenant, which the events dead-letter queue needs.
//!
//! A run handles each message once, by message ID: a message it leaves in
//! place stays hidden while the run goes on (for [`count_visibility`] of
//! the queue's size), and if it comes back anyway (SQS delivers a message
//! twice now and then, or another reader made it visible) it is neither
//! counted nor sent again. The run ends when a receive finds the queue
//! empty or brings only messages it has already handled, at `--max`, or
//! before the messages it holds would become visible again; then the ones
//! it left are made visible at once, for the queue's depth alarm and the
//! next run.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    SendMessageBatchRequestEntry,
};
use clap::{Args, Subcommand};
use serde::Deserialize;
use shared::Routing;
use shared::tenant_id::TenantId;

use super::dedicated::{self, queue_url};
use super::records::Records;
use super::stack::{self, Stack, StackArgs};
use super::{Clients, describe};
use crate::output;

/// `formbridge dlq`: dead-lettered events on a deployed stack.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    formbridge dlq redrive --stack form-bridge\n      \
        every dead-letter queue of the stack\n  \
    formbridge dlq redrive --stack form-bridge --from bigco\n      \
        a dedicated tenant's")]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Move dead-lettered events back to their delivery queue.
    #[command(after_help = "Examples:\n  \
        formbridge dlq redrive --stack form-bridge\n      \
            every dead-letter queue of the stack\n  \
        formbridge dlq redrive --stack form-bridge --from shared --max 100\n  \
        formbridge dlq redrive --stack form-bridge --from bigco\n      \
            a dedicated tenant's\n\n\
        Sources: shared (the shared queue's dead letters), events (events\n\
        EventBridge could not put on a queue) and the IDs of tenants with a\n\
        dead-letter queue of their own (dedicated, or demoted). Each event goes\n\
        to the queue of its tenant's current routing, so a demoted tenant's go\n\
        to the shared queue. Each message is sent before it is deleted,\n\
        so an interruption never loses one (at worst one is delivered twice,\n\
        with the same webhook-id). Fix the cause first, or the events come back.\n\
        Each message is counted once, and what is left is visible again when\n\
        the run ends. A run stops before the messages it holds would come\n\
        back (2 minutes, plus a second for each 20 in the queue).\n\
        Exit status: 0 when everything was moved, 1 when some messages were left\n\
        or the run stopped before the queue was empty.")]
    Redrive(RedriveArgs),
}

#[derive(Args)]
struct RedriveArgs {
    /// A dead-letter queue to redrive: shared, events or the ID of a tenant with its own (or tenant:ID); repeatable; default: all.
    #[arg(long, value_name = "QUEUE", value_parser = Source::parse)]
    from: Vec<Source>,
    /// Move at most this many messages from each queue.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    #[command(flatten)]
    stack: StackArgs,
}

impl DlqArgs {
    /// Runs the command; exit status 1 when some messages were left.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let DlqCommand::Redrive(args) = self.command;
        crate::runtime::current_thread()?.block_on(async {
            let (aws, stack) = args.stack.resolve().await?;
            let results = redrive(&aws, &stack, &args.from, args.max).await?;
            let mut done = true;
            for r in &results {
                output::line(format_args!(
                    "{}: moved {}, left {}",
                    r.queue, r.moved, r.left
                ));
                for problem in &r.problems {
                    eprintln!("formbridge: {}: {problem}", r.queue);
                }
                done &= r.left == 0 && r.complete;
            }
            Ok(if done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        })
    }
}

/// How long a received message stays hidden while it is being moved (a
/// redrive or a count hides it longer in a large queue:
/// [`count_visibility`]).
pub const RECEIVE_VISIBILITY_SECONDS: i32 = 120;
/// SQS's largest batch.
const BATCH: i32 = 10;
/// SQS's limit on a batch's total size, with room for the request's own
/// bytes; a message larger than this is sent alone.
const BATCH_BYTES: usize = 1_000_000;

/// Which dead-letter queues to redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The shared dead-letter queue.
    Shared,
    /// The events dead-letter queue.
    Events,
    /// A dedicated tenant's dead-letter queue.
    Tenant(TenantId),
}

impl Source {
    /// `shared`, `events`, a tenant ID, or `tenant:ID` (for tenants named
    /// `shared` or `events`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "shared" => Ok(Self::Shared),
            "events" => Ok(Self::Events),
            other => {
                let id = other.strip_prefix("tenant:").unwrap_or(other);
                TenantId::parse(id)
                    .map(Self::Tenant)
                    .map_err(|e| format!("not shared, events or a tenant ID ({e})"))
            }
        }
    }
}

/// The outcome for one dead-letter queue.
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    /// The dead-letter queue's name.
    pub queue: String,
    /// Messages moved back for delivery.
    pub moved: u64,
    /// Messages left where they were (no queue to go to, or a failed send),
    /// each counted once.
    pub left: u64,
    /// Whether the run went through the queue: it found it empty, found
    /// only messages it had handled, or reached its limit; false when it
    /// stopped at its time bound with messages not yet received.
    pub complete: bool,
    /// Why messages were left, once per reason.
    pub problems: Vec<String>,
}

/// A received message.
struct Received {
    /// Its message ID: the same each time it is received.
    id: String,
    body: String,
    /// The receipt of its latest receive, the only one SQS accepts.
    receipt: String,
}

impl Received {
    fn from_sqs(message: aws_sdk_sqs::types::Message) -> Option<Self> {
        Some(Self {
            id: message.message_id?,
            body: message.body?,
            receipt: message.receipt_handle?,
        })
    }
}

/// Redrives `sources` (every dead-letter queue of the stack when empty),
/// at most `limit` messages from each.
pub async fn redrive(
    aws: &Clients,
    stack: &Stack,
    sources: &[Source],
    limit: Option<u64>,
) -> anyhow::Result<Vec<Redriven>> {
    let sources = if sources.is_empty() {
        every_source(aws, stack).await?
    } else {
        sources.to_vec()
    };
    let mut results = Vec::new();
    for source in sources {
        let (dlq, name, fallback) = match &source {
            Source::Shared => (
                stack.require(stack::SHARED_DLQ)?.to_owned(),
                "shared dead-letter queue".to_owned(),
                Fallback::Queue(stack.require(stack::SHARED_QUEUE)?.to_owned()),
            ),
            Source::Events => (
                stack.require(stack::EVENTS_DLQ)?.to_owned(),
                "events dead-letter queue".to_owned(),
                Fallback::None,
            ),
            Source::Tenant(id) => {
                let names = dedicated::Names::new(stack.require(stack::QUEUE_PREFIX)?, id)?;
                let url = queue_url(aws, &names.dead_letter_queue)
                    .await?
                    .with_context(|| {
                        format!(
                            "tenant {id} has no dead-letter queue {}",
                            names.dead_letter_queue
                        )
                    })?;
                (url, names.dead_letter_queue, Fallback::Tenant(id.clone()))
            }
        };
        let mut router = Router::new(aws, stack, fallback);
        results.push(drain(aws, &dlq, name, &mut router, limit).await?);
    }
    Ok(results)
}

/// The shared and events dead-letter queues, then every dedicated one.
async fn every_source(aws: &Clients, stack: &Stack) -> anyhow::Result<Vec<Source>> {
    let mut sources = vec![Source::Shared, Source::Events];
    let prefix = stack.require(stack::QUEUE_PREFIX)?;
    let urls: Vec<String> = aws
        .sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| anyhow!("cannot list queues named {prefix}*: {}", describe(&e)))?;
    for url in urls {
        let name = url.rsplit('/').next().unwrap_or_default();
        let tenant = name
            .strip_prefix(prefix)
            .and_then(|n| n.strip_suffix(dedicated::DLQ_SUFFIX))
            .and_then(|id| TenantId::parse(id).ok());
        sources.extend(tenant.map(Source::Tenant));
    }
    Ok(sources)
}

/// What routing needs of a dead-lettered EventBridge event (the rest of
/// it is moved untouched).
#[derive(Deserialize)]
struct RoutedEvent<'a> {
    #[serde(borrow, default)]
    detail: RoutedDetail<'a>,
}

#[derive(Deserialize, Default)]
struct RoutedDetail<'a> {
    #[serde(borrow, default)]
    tenant_id: Option<std::borrow::Cow<'a, str>>,
}

/// The tenant ID of a dead-lettered event, if the message is one.
fn tenant_of(body: &str) -> Option<String> {
    let event: RoutedEvent<'_> = serde_json::from_str(body).ok()?;
    event.detail.tenant_id.map(std::borrow::Cow::into_owned)
}

/// Where a message that names no tenant goes.
enum Fallback {
    /// Nowhere: it is left, as not an event.
    None,
    /// By this tenant's routing (a tenant's own dead-letter queue).
    Tenant(TenantId),
    /// To this queue (the shared dead-letter queue's: the shared queue).
    Queue(String),
}

/// Where each message goes: the queue of its tenant's routing as the
/// tenant's record says now, whichever dead-letter queue it sits in (a
/// demoted tenant's dead letters go to the shared queue, a promoted
/// one's to its own).
struct Router<'a> {
    aws: &'a Clients,
    stack: &'a Stack,
    records: Records<'a>,
    fallback: Fallback,
    /// Each tenant's queue, or why it has none, looked up once per run.
    queues: HashMap<String, Result<String, String>>,
}

impl<'a> Router<'a> {
    fn new(aws: &'a Clients, stack: &'a Stack, fallback: Fallback) -> Self {
        Self {
            aws,
            stack,
            records: Records::new(aws, stack),
            fallback,
            queues: HashMap::new(),
        }
    }

    /// The queue URL for a message body, or why it has none.
    async fn route(&mut self, body: &str) -> Result<String, String> {
        let tenant = match (tenant_of(body), &self.fallback) {
            (Some(tenant), _) => tenant,
            (None, Fallback::Tenant(id)) => id.to_string(),
            (None, Fallback::Queue(url)) => return Ok(url.clone()),
            (None, Fallback::None) => return Err("a message that is not an event".to_owned()),
        };
        if let Some(known) = self.queues.get(&tenant) {
            return known.clone();
        }
        let found = self.queue_of(&tenant).await;
        self.queues.insert(tenant, found.clone());
        found
    }

    /// The queue of a tenant's current routing.
    async fn queue_of(&self, tenant: &str) -> Result<String, String> {
        let id = TenantId::parse(tenant)
            .map_err(|_| format!("an event of an invalid tenant ID {tenant:?}"))?;
        let record = self
            .records
            .read(&id)
            .await
            .map_err(|e| format!("{e:#}: its events are left where they are"))?;
        let shared = || {
            self.stack
                .require(stack::SHARED_QUEUE)
                .map(str::to_owned)
                .map_err(|e| e.to_string())
        };
        match record.routing() {
            Some(Routing::Shared) => shared(),
            Some(Routing::Dedicated) => {
                let prefix = self
                    .stack
                    .require(stack::QUEUE_PREFIX)
                    .map_err(|e| e.to_string())?;
                let names = dedicated::Names::new(prefix, &id).map_err(|e| e.to_string())?;
                queue_url(self.aws, &names.queue)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "dedicated tenant {id} has no queue {}: `formbridge tenants resume {id}{}` \
                             puts it back",
                            names.queue,
                            self.stack.options()
                        )
                    })
            }
            None => Err(format!(
                "tenant {id}'s record has an invalid routing: fix it, then redrive again"
            )),
        }
    }
}

/// How many messages in the dead-letter queue `dlq` are events of
/// `tenant`. SQS can only count by receiving: each message is received
/// (hidden meanwhile) until a long-polled receive finds none visible, then
/// every one is made visible again, whether the count succeeded or not. A
/// dead-letter queue has no receive limit, so this costs its messages
/// nothing.
///
/// The messages stay hidden for [`count_visibility`] of the queue's size,
/// long enough for the whole scan, so none comes back before the scan
/// ends (which would keep the receives from ever coming back empty); a
/// scan that nears it anyway stops with an error. Only a process killed
/// mid-scan leaves them hidden, for that long.
pub async fn count_tenant(aws: &Clients, dlq: &str, tenant: &TenantId) -> anyhow::Result<u64> {
    let visibility = count_visibility(queue_depth(aws, dlq).await?);
    // Each message's latest receipt (the only one SQS accepts).
    let mut held = HashMap::new();
    let counted = scan(aws, dlq, tenant, visibility, &mut held).await;
    let reset = reset_visibility(aws, dlq, held.values()).await;
    match (counted, reset) {
        (Ok(count), Ok(())) => Ok(count),
        (Ok(count), Err(e)) => {
            // The count is right; only a redrive is delayed.
            eprintln!("formbridge: warning: {e:#}");
            Ok(count)
        }
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(reset)) => Err(e.context(format!("{reset:#}"))),
    }
}

/// About how many messages are visible in the queue at `url`.
async fn queue_depth(aws: &Clients, url: &str) -> anyhow::Result<u64> {
    Ok(aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| anyhow!("cannot read {url}: {}", describe(&e)))?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0))
}

/// How long a run that holds messages for `visibility` seconds may go on:
/// until [`VISIBILITY_MARGIN`] before the first of them would come back.
fn hold_deadline(visibility: i32) -> Duration {
    Duration::from_secs(u64::try_from(visibility).unwrap_or(0)).saturating_sub(VISIBILITY_MARGIN)
}

/// Messages counted per second that [`count_visibility`] assumes: one
/// receive of 10 every half second, well below what a receive takes.
const COUNTED_PER_SECOND: u64 = 20;
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 43_200;
/// What a scan keeps in hand before its messages' visibility ends.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(30);

/// How long a count keeps a queue of about `size` messages hidden:
/// [`RECEIVE_VISIBILITY_SECONDS`] plus the scan's time at
/// `COUNTED_PER_SECOND`, at most SQS's 12 hours.
pub fn count_visibility(size: u64) -> i32 {
    let seconds = (RECEIVE_VISIBILITY_SECONDS as u64)
        .saturating_add(size / COUNTED_PER_SECOND)
        .min(MAX_VISIBILITY_SECONDS);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// Receives every visible message once, keeping its receipt in `held`;
/// the number of `tenant`'s events.
async fn scan(
    aws: &Clients,
    dlq: &str,
    tenant: &TenantId,
    visibility: i32,
    held: &mut HashMap<String, String>,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let deadline = hold_deadline(visibility);
    let mut count = 0;
    loop {
        if started.elapsed() >= deadline {
            bail!(
                "cannot count the messages of {dlq} ({} so far) within {visibility} s, before \
                 the first ones become visible again: try again (the queue may be growing), or \
                 redrive it first",
                held.len()
            );
        }
        // A long poll asks every SQS server: an empty answer means no
        // message is visible, so every one is held.
        let messages = aws
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(BATCH)
            .visibility_timeout(visibility)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow!("cannot receive from {dlq}: {}", describe(&e)))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(count);
        }
        for message in messages {
            let (Some(id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
                continue;
            };
            if held.insert(id, receipt).is_none()
                && message.body.as_deref().and_then(tenant_of).as_deref() == Some(tenant.as_str())
            {
                count += 1;
            }
        }
    }
}

/// Makes the held messages visible again.
async fn reset_visibility<'a>(
    aws: &Clients,
    dlq: &str,
    receipts: impl Iterator<Item = &'a String>,
) -> anyhow::Result<()> {
    let receipts: Vec<&String> = receipts.collect();
    let mut failed = 0;
    for (n, chunk) in receipts.chunks(BATCH as usize).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("{n}-{i}"))
                    .receipt_handle(*receipt)
                    .visibility_timeout(0)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .context("visibility entry")?;
        match aws
            .sqs
            .change_message_visibility_batch()
            .queue_url(dlq)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(answer) => failed += answer.failed.len(),
            Err(_) => failed += chunk.len(),
        }
    }
    if failed > 0 {
        bail!(
            "{} of {dlq} could not be made visible again: they are hidden until their \
             visibility timeout ends (a redrive meanwhile leaves them)",
            output::count(failed as u64, "message")
        );
    }
    Ok(())
}

/// Redrives the dead-letter queue `dlq`: every message once, at most
/// `limit` (see the module's documentation for when a run ends). The
/// messages it leaves are made visible again before it returns, whatever
/// happened.
async fn drain(
    aws: &Clients,
    dlq: &str,
    name: String,
    router: &mut Router<'_>,
    limit: Option<u64>,
) -> anyhow::Result<Redriven> {
    let mut result = Redriven {
        queue: name,
        ..Redriven::default()
    };
    // The receipts of the messages left in place, by message ID.
    let mut held = HashMap::new();
    let drained = drain_held(aws, dlq, router, limit, &mut result, &mut held).await;
    let reset = reset_visibility(aws, dlq, held.values()).await;
    drained?;
    if let Err(e) = reset {
        result.problems.push(format!("{e:#}"));
    }
    Ok(result)
}

/// The loop of [`drain`]: each message received is handled once, by its
/// ID; those left in place are kept in `held` with their latest receipt.
async fn drain_held(
    aws: &Clients,
    dlq: &str,
    router: &mut Router<'_>,
    limit: Option<u64>,
    result: &mut Redriven,
    held: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let visibility = count_visibility(queue_depth(aws, dlq).await?);
    let deadline = hold_deadline(visibility);
    let started = Instant::now();
    let mut seen = HashSet::new();
    loop {
        let handled = result.moved + result.left;
        let want = limit.map_or(BATCH, |l| {
            l.saturating_sub(handled).min(BATCH as u64) as i32
        });
        if want == 0 {
            break;
        }
        if started.elapsed() >= deadline {
            result.problems.push(format!(
                "stopped after {} s, before the messages it holds become visible again; \
                 run it again for the rest",
                started.elapsed().as_secs()
            ));
            return Ok(());
        }
        let messages = aws
            .sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(want)
            .visibility_timeout(visibility)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow!("cannot receive from {}: {}", result.queue, describe(&e)))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let mut fresh = Vec::new();
        for message in messages.into_iter().filter_map(Received::from_sqs) {
            if seen.insert(message.id.clone()) {
                fresh.push(message);
            } else if let Some(receipt) = held.get_mut(&message.id) {
                *receipt = message.receipt;
            }
        }
        // Only messages it has handled: they came back (their visibility
        // ran out, or SQS delivered one twice), and nothing new is left
        // that this run could reach.
        if fresh.is_empty() {
            break;
        }
        // Group by destination queue.
        let mut batches: HashMap<String, Vec<Received>> = HashMap::new();
        for message in fresh {
            match router.route(&message.body).await {
                Ok(url) => batches.entry(url).or_default().push(message),
                Err(why) => {
                    result.leave(why);
                    held.insert(message.id, message.receipt);
                }
            }
        }
        for (url, batch) in batches
            .into_iter()
            .flat_map(|(url, all)| by_size(all).into_iter().map(move |b| (url.clone(), b)))
        {
            let sent = send(aws, &url, &batch, result).await;
            for (i, message) in batch.iter().enumerate() {
                if !sent.contains(&i) {
                    held.insert(message.id.clone(), message.receipt.clone());
                }
            }
            if sent.is_empty() {
                continue;
            }
            let failed = delete_moved(aws, dlq, &batch, &sent)
                .await
                .map_err(|e| anyhow!("cannot delete moved messages from {}: {e}", result.queue))?;
            // A message sent but not deleted reappears and would be moved
            // again by a later run: report it rather than hide a possible
            // duplicate.
            if let Some((count, code)) = failed {
                result.problems.push(format!(
                    "{} could not be deleted and may be moved again ({code})",
                    output::count(count as u64, "moved message"),
                ));
            }
            result.moved += sent.len() as u64;
        }
    }
    result.complete = true;
    Ok(())
}

/// Moves every message of the queue `from` (named `name`, for errors) to
/// the queue `to`, until a long-polled receive finds none visible; returns
/// how many. Each is sent, then deleted, so an interruption between the
/// two leaves it in both (delivered twice, with the same submission ID),
/// never in neither. A message that cannot be sent stays where it was,
/// visible again after [`RECEIVE_VISIBILITY_SECONDS`], and the error says
/// so. Only for a queue nothing else reads any more: a consumer's
/// in-flight messages are not visible, so they are not moved.
pub async fn move_all(aws: &Clients, from: &str, name: &str, to: &str) -> anyhow::Result<u64> {
    let mut moved = 0;
    loop {
        let messages = aws
            .sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(BATCH)
            .visibility_timeout(RECEIVE_VISIBILITY_SECONDS)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow!("cannot receive from {name}: {}", describe(&e)))?
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return Ok(moved);
        }
        let messages: Vec<Received> = messages
            .into_iter()
            .filter_map(Received::from_sqs)
            .collect();
        for batch in by_size(messages) {
            let mut outcome = Redriven {
                queue: name.to_owned(),
                ..Redriven::default()
            };
            let sent = send(aws, to, &batch, &mut outcome).await;
            if !sent.is_empty() {
                let failed = delete_moved(aws, from, &batch, &sent).await.map_err(|e| {
                    anyhow!(
                        "cannot delete messages moved from {name} (they may be moved again): {e}"
                    )
                })?;
                if let Some((count, code)) = failed {
                    bail!(
                        "{} moved from {name} could not be deleted there and may be moved again ({code})",
                        output::count(count as u64, "message"),
                    );
                }
                moved += sent.len() as u64;
            }
            if outcome.left > 0 {
                bail!(
                    "{} of {name} could not be moved ({}); {} moved before. They are visible \
                     again after {RECEIVE_VISIBILITY_SECONDS} s: run the command again",
                    output::count(outcome.left, "message"),
                    outcome.problems.join("; "),
                    moved
                );
            }
        }
    }
}

/// Deletes from the queue at `url` the messages of `batch` at the indexes
/// `sent`, which were moved elsewhere. Returns how many could not be
/// deleted and the first one's code, if any; the error is the service's,
/// described.
async fn delete_moved(
    aws: &Clients,
    url: &str,
    batch: &[Received],
    sent: &[usize],
) -> Result<Option<(usize, String)>, String> {
    let entries = sent
        .iter()
        .filter_map(|&i| batch.get(i).map(|m| (i, m)))
        .map(|(i, message)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(&message.receipt)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let deleted = aws
        .sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(deleted
        .failed
        .first()
        .map(|first| (deleted.failed.len(), first.code.clone())))
}

/// Splits messages into batches whose bodies add up to at most
/// [`BATCH_BYTES`] (a larger message alone).
fn by_size(messages: Vec<Received>) -> Vec<Vec<Received>> {
    let mut batches: Vec<Vec<Received>> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let size = message.body.len();
        match batches.last_mut() {
            Some(batch) if bytes + size <= BATCH_BYTES => {
                bytes += size;
                batch.push(message);
            }
            _ => {
                bytes = size;
                batches.push(vec![message]);
            }
        }
    }
    batches
}

/// Sends a batch; returns the indexes that were sent.
async fn send(aws: &Clients, url: &str, batch: &[Received], result: &mut Redriven) -> Vec<usize> {
    let entries: Result<Vec<_>, _> = batch
        .iter()
        .enumerate()
        .map(|(i, message)| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&message.body)
                .build()
        })
        .collect();
    let answer = match entries {
        Ok(entries) => {
            // Never sent again by the SDK: a send whose answer was lost may
            // have taken effect, and a retry would put each message on the
            // queue once more. The messages stay in the dead-letter queue
            // (they are deleted only after a send's answer says so), so the
            // next redrive moves them, at worst one delivered twice.
            aws.sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .customize()
                .config_override(
                    aws_sdk_sqs::config::Builder::default()
                        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
        }
        Err(e) => {
            result.left += batch.len() as u64;
            result.problems.push(format!("cannot build a batch: {e}"));
            return Vec::new();
        }
    };
    match answer {
        Ok(answer) => {
            for failed in &answer.failed {
                result.leave(format!("a send failed ({})", failed.code));
            }
            answer
                .successful
                .iter()
                .filter_map(|s| s.id.parse().ok())
                .collect()
        }
        Err(e) => {
            result.left += batch.len() as u64;
            result
                .problems
                .push(format!("cannot send to {url}: {}", describe(&e)));
            Vec::new()
        }
    }
}

impl Redriven {
    fn leave(&mut self, why: String) {
        self.left += 1;
        if !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_sqs_size_limit() {
        let message = |kib: usize| Received {
            id: String::new(),
            body: "x".repeat(kib * 1024),
            receipt: String::new(),
        };
        let sizes =
            |batches: Vec<Vec<Received>>| -> Vec<usize> { batches.iter().map(Vec::len).collect() };
        assert_eq!(sizes(by_size((0..10).map(|_| message(1)).collect())), [10]);
        // 300 KiB each: three fit in 1 MB, the fourth starts a new batch.
        assert_eq!(
            sizes(by_size((0..5).map(|_| message(300)).collect())),
            [3, 2]
        );
        // A message over the budget goes alone.
        assert_eq!(
            sizes(by_size(vec![message(1), message(1000), message(1)])),
            [1, 1, 1]
        );
    }

    #[test]
    fn a_count_hides_messages_long_enough_for_its_scan() {
        assert_eq!(count_visibility(0), RECEIVE_VISIBILITY_SECONDS);
        // 100,000 messages at 20 a second: 5,000 s more.
        assert_eq!(count_visibility(100_000), 120 + 5_000);
        assert_eq!(count_visibility(u64::MAX), 43_200);
    }

    #[test]
    fn a_run_ends_before_what_it_holds_comes_back() {
        assert_eq!(hold_deadline(120), Duration::from_secs(90));
        assert_eq!(hold_deadline(43_200), Duration::from_secs(43_170));
        assert_eq!(hold_deadline(10), Duration::ZERO);
        assert_eq!(hold_deadline(-1), Duration::ZERO);
    }

    #[test]
    fn sources_parse() {
        assert_eq!(Source::parse("shared").ok(), Some(Source::Shared));
        assert_eq!(Source::parse("events").ok(), Some(Source::Events));
        let shared_tenant = Source::parse("tenant:shared").ok();
        assert!(matches!(shared_tenant, Some(Source::Tenant(id)) if id.as_str() == "shared"));
        assert!(Source::parse("Nope!").is_err());
    }
}
