//! Publishing events to the bus: the [`EventPublisher`] trait (one PutEvents
//! call), its EventBridge and in-memory adapters, and [`publish`], which
//! packs entries into calls and retries only what failed.
//!
//! Guarantees [`publish`] keeps:
//! - no call carries more than [`MAX_ENTRIES_PER_CALL`] entries or more than
//!   [`MAX_CALL_BYTES`] as EventBridge counts them ([`BusEntry::size`]);
//! - calls keep the entries' order; an entry is sent again only after the
//!   bus said it failed, so each ends published exactly once or reported
//!   failed, never both (property-tested under random failures);
//! - an entry that alone is over the limit fails the whole request before
//!   anything is sent;
//! - only retryable failures are retried, with capped exponential backoff
//!   and full jitter, within [`RetryPolicy::budget`]; a call whose answer
//!   was lost (sent, then a timeout or a hang-up) is never sent again, since
//!   it may have been published.

#[cfg(feature = "aws")]
mod eventbridge;
mod memory;

use std::borrow::Cow;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use tokio::time::Instant;

#[cfg(feature = "aws")]
pub use eventbridge::EventBridgePublisher;
pub use memory::MemoryPublisher;

/// PutEvents takes at most this many entries per call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// PutEvents takes at most this many bytes per call (1 MiB), counted as in
/// [`BusEntry::size`].
pub const MAX_CALL_BYTES: usize = 1_048_576;
/// The largest entry published: what the queues behind the bus can still
/// hold once EventBridge wraps it. An SQS message holds 1 MiB, body and
/// attributes; EventBridge's envelope (739 bytes at most) and the
/// dead-letter queue's attributes (2,048 bytes allowed) take some of it,
/// so 8 KiB are kept for them. A larger event would reach the archive and
/// no queue (docs/deploying.md, "The largest body").
pub const MAX_ENTRY_BYTES: usize = MAX_CALL_BYTES - 8_192;
/// What a `Time` field adds to an entry's size.
pub const TIME_BYTES: usize = 14;
/// Calls of one request in flight at once.
pub const MAX_CONCURRENT_CALLS: usize = 4;

/// One PutEvents entry. The bus name belongs to the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// `Source`.
    pub source: Arc<str>,
    /// `DetailType`.
    pub detail_type: &'static str,
    /// `Time`: when the submission was received.
    pub time: SystemTime,
    /// `Detail`: a JSON object.
    pub detail: String,
}

impl BusEntry {
    /// The entry's size as EventBridge computes it: `Time` (14 bytes) plus
    /// the UTF-8 lengths of `Source`, `DetailType` and `Detail`.
    pub fn size(&self) -> usize {
        TIME_BYTES + self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// Why one entry of a call was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The bus's error code for the entry, such as `ThrottlingException`.
    pub code: String,
    /// Whether sending the entry again may succeed.
    pub retryable: bool,
}

/// Error codes of failed entries that are worth sending again.
pub fn is_retryable_entry_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException" | "InternalFailure" | "InternalException" | "ServiceUnavailable"
    )
}

/// Why a whole call failed. Messages carry the bus's code and message,
/// never entry contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Nothing was published and trying again may work: throttling, a
    /// server error, a connection that could not be made.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// Nothing was published and trying again cannot help: permissions, a
    /// missing bus, a request the bus considers invalid.
    #[error("event bus refused the request: {0}")]
    Refused(String),
    /// The call was sent but its answer was lost (a timeout, an unreadable
    /// or inconsistent answer): the entries may or may not be on the bus.
    #[error("event bus answer lost: {0}")]
    Unknown(String),
}

impl PublishError {
    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "bus_unavailable",
            Self::Refused(_) => "bus_refused",
            Self::Unknown(_) => "bus_outcome_unknown",
        }
    }
}

/// Sends events to a bus: one PutEvents call per [`put_events`] call.
///
/// [`put_events`]: EventPublisher::put_events
pub trait EventPublisher: Send + Sync {
    /// Publishes up to [`MAX_ENTRIES_PER_CALL`] entries (at most
    /// [`MAX_CALL_BYTES`]) in one call. `Ok` holds one result per entry, in
    /// order.
    fn put_events(
        &self,
        entries: &[BusEntry],
    ) -> impl Future<Output = Result<Vec<Result<(), EntryFailure>>, PublishError>> + Send;
}

/// How [`publish`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls per group of entries, the first included.
    pub max_attempts: u32,
    /// Backoff before the first retry, doubled for each further one.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// No retry starts after this much time since [`publish`] began.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// Up to 5 attempts, backoff 50 ms doubling to at most 1 s, full
    /// jitter, no retry after 5 s: well inside API Gateway's 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            budget: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random delay up to the capped exponential backoff for
    /// retry number `retry` (1-based).
    fn backoff(&self, retry: u32) -> Duration {
        crate::backoff::full_jitter(self.base_delay, self.max_delay, retry)
    }
}

/// Why an entry was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// The bus rejected the entry (or kept rejecting it until retries ran
    /// out).
    Entry(EntryFailure),
    /// The call carrying the entry failed.
    Call(PublishError),
}

impl EntryError {
    /// Whether the entry may be on the bus after all.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Call(PublishError::Unknown(_)))
    }

    /// A short code for logs: the bus's entry code or the call error's code.
    pub fn code(&self) -> &str {
        match self {
            Self::Entry(f) => &f.code,
            Self::Call(e) => e.code(),
        }
    }
}

/// An entry over [`MAX_ENTRY_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event {index} is {size} bytes; events of at most {MAX_ENTRY_BYTES} fit the queues")]
pub struct EntryTooLarge {
    /// Its position in the request.
    pub index: usize,
    /// Its size as EventBridge counts it.
    pub size: usize,
}

/// What [`publish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// PutEvents calls made, retries included.
    pub calls: u32,
    /// Entries sent again after a failure.
    pub retried_entries: u32,
    /// Entries not published, by position, in order. Empty: all published.
    pub failed: Vec<(usize, EntryError)>,
}

/// Splits entries into calls, in order: a call ends when the next entry
/// would make it exceed [`MAX_ENTRIES_PER_CALL`] or [`MAX_CALL_BYTES`]. An
/// entry over [`MAX_ENTRY_BYTES`] is refused.
pub fn plan_calls(entries: &[BusEntry]) -> Result<Vec<Range<usize>>, EntryTooLarge> {
    let mut calls = Vec::with_capacity(entries.len().div_ceil(MAX_ENTRIES_PER_CALL));
    let (mut start, mut bytes) = (0, 0);
    for (index, entry) in entries.iter().enumerate() {
        let size = entry.size();
        if size > MAX_ENTRY_BYTES {
            return Err(EntryTooLarge { index, size });
        }
        if index - start == MAX_ENTRIES_PER_CALL || bytes + size > MAX_CALL_BYTES {
            calls.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < entries.len() {
        calls.push(start..entries.len());
    }
    Ok(calls)
}

/// Publishes every entry: packs them into calls ([`plan_calls`]), sends up
/// to [`MAX_CONCURRENT_CALLS`] at once, and retries failed entries alone
/// under `policy`. Nothing is sent when an entry is too large.
pub async fn publish<P: EventPublisher>(
    publisher: &P,
    entries: &[BusEntry],
    policy: &RetryPolicy,
) -> Result<PublishReport, EntryTooLarge> {
    let calls = plan_calls(entries)?;
    let deadline = Instant::now() + policy.budget;
    if let [range] = calls.as_slice() {
        // The common case, one call, without the concurrency machinery.
        let mut group = publish_group(publisher, entries, range.clone(), policy, deadline).await;
        group.failed.sort_by_key(|(index, _)| *index);
        return Ok(PublishReport {
            calls: group.calls,
            retried_entries: group.retried_entries,
            failed: group.failed,
        });
    }
    let mut groups: Vec<GroupReport> = futures_util::stream::iter(
        calls
            .into_iter()
            .map(|range| publish_group(publisher, entries, range, policy, deadline)),
    )
    .buffer_unordered(MAX_CONCURRENT_CALLS)
    .collect()
    .await;
    let mut report = PublishReport::default();
    for group in &mut groups {
        report.calls += group.calls;
        report.retried_entries += group.retried_entries;
        report.failed.append(&mut group.failed);
    }
    report.failed.sort_by_key(|(index, _)| *index);
    Ok(report)
}

#[derive(Default)]
struct GroupReport {
    calls: u32,
    retried_entries: u32,
    failed: Vec<(usize, EntryError)>,
}

/// One planned call and its retries.
async fn publish_group<P: EventPublisher>(
    publisher: &P,
    entries: &[BusEntry],
    range: Range<usize>,
    policy: &RetryPolicy,
    deadline: Instant,
) -> GroupReport {
    let mut report = GroupReport::default();
    let mut pending: Vec<usize> = range.clone().collect();
    loop {
        // The first call sends the planned slice as it is; retries send the
        // failed subset, which always fits one call.
        let batch: Cow<'_, [BusEntry]> = if pending.len() == range.len() {
            Cow::Borrowed(&entries[range.clone()])
        } else {
            Cow::Owned(pending.iter().map(|&i| entries[i].clone()).collect())
        };
        report.calls += 1;
        let last_error = match publisher.put_events(&batch).await {
            Ok(results) if results.len() == pending.len() => {
                let mut still = Vec::new();
                let mut last = None;
                for (&index, result) in pending.iter().zip(results) {
                    match result {
                        Ok(()) => {}
                        Err(f) if f.retryable => {
                            still.push(index);
                            last = Some(EntryError::Entry(f));
                        }
                        Err(f) => report.failed.push((index, EntryError::Entry(f))),
                    }
                }
                pending = still;
                match last {
                    Some(error) => error,
                    None => return report,
                }
            }
            Ok(results) => {
                let lost = PublishError::Unknown(format!(
                    "the answer has {} results for {} entries",
                    results.len(),
                    pending.len()
                ));
                return fail_all(report, &pending, &EntryError::Call(lost));
            }
            Err(e @ PublishError::Unavailable(_)) => EntryError::Call(e),
            Err(e) => return fail_all(report, &pending, &EntryError::Call(e)),
        };
        if report.calls >= policy.max_attempts {
            return fail_all(report, &pending, &last_error);
        }
        let delay = policy.backoff(report.calls);
        if Instant::now() + delay > deadline {
            return fail_all(report, &pending, &last_error);
        }
        tokio::time::sleep(delay).await;
        report.retried_entries += u32::try_from(pending.len()).unwrap_or(u32::MAX);
    }
}

fn fail_all(mut report: GroupReport, pending: &[usize], error: &EntryError) -> GroupReport {
    report
        .failed
        .extend(pending.iter().map(|&index| (index, error.clone())));
    report
}

#[cfg(test)]
mod tests;
