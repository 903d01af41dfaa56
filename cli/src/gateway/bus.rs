//! The in-process bus: EventBridge, the rule, SQS and its dead-letter queue
//! on one machine.
//!
//! Ingest publishes into the bounded queue of a [`MemoryPublisher`]. The
//! dispatcher takes events off it as delivery slots (`DELIVERY_CONCURRENCY`)
//! free up and hands each, as the EventBridge event an SQS record would
//! carry, to [`Connector::deliver_event`]: the Lambda's own code, with its
//! tenant cache, breakers, signing and in-invocation retries. What happens
//! next is what SQS would do:
//!
//! - delivered: done;
//! - a permanent failure: dead-lettered at once (the Lambda leaves that to
//!   the queue's receive limit; locally nobody is redeploying the endpoint);
//! - a retryable failure: received again after a growing delay (the
//!   visibility timeout), up to `max_receives`, then dead-lettered.
//!
//! An event waiting to be received again holds a slot of the queue, so
//! events waiting for a failing destination count against the same bound
//! as new submissions: memory stays bounded, and intake answers 503 rather
//! than growing. Dead letters are kept for `GET /v1/dead-letters` and, with
//! `--dead-letters FILE`, appended to that file as JSON lines.
//!
//! Shutdown ([`Bus::drain`]): retries waiting on a delay are tried at once
//! and then every second at most, queued events are still delivered, and
//! whatever is not done by the deadline is dead-lettered: nothing accepted
//! is dropped.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use connectors::{Class, Connector, DeliveryError, HttpDeliveryClient};
use serde::Serialize;
use serde_json::value::RawValue;
use shared::event::received_at;
use shared::publish::{BusEntry, MemoryPublisher};
use shared::store::MemoryTenantStore;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::{error, info, warn};

/// The connector as the local gateway runs it.
pub type LocalConnector = Connector<MemoryTenantStore, HttpDeliveryClient>;

/// Dead letters kept in memory for `GET /v1/dead-letters` (the newest).
const DEAD_LETTERS_IN_MEMORY: usize = 1_000;
/// The longest wait between receives once shutdown has begun.
const SHUTDOWN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often a draining dispatcher checks whether everything is done.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// When a failed event is received again: like SQS's visibility timeout,
/// growing with each receive, and its receive limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redelivery {
    /// Receives before an event is dead-lettered (SQS `maxReceiveCount`).
    pub max_receives: u32,
    /// Delay before the second receive; doubled for each further one.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for Redelivery {
    /// 8 receives, 1 s doubling to 60 s: about two minutes for a
    /// destination to come back before its events are dead-lettered.
    fn default() -> Self {
        Self {
            max_receives: 8,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl Redelivery {
    /// The delay after receive number `receives` (1-based): half fixed,
    /// half random, so a burst that failed together is spread out.
    fn delay(&self, receives: u32) -> Duration {
        shared::backoff::equal_jitter(self.first_delay, self.max_delay, receives)
    }
}

/// Counts for the progress line and `GET /healthz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Events put on the queue since start.
    pub accepted: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Events dead-lettered.
    pub dead_lettered: u64,
    /// Events waiting to be received again after a retryable failure.
    pub retrying: u64,
    /// Deliveries in progress.
    pub in_flight: u64,
    /// Events on the queue, not yet taken.
    pub queue_depth: u64,
}

/// Where the bus is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    /// Shutting down: no more waiting between receives.
    Draining,
    /// The shutdown deadline passed: stop and dead-letter the rest.
    Expired,
}

/// One event dead-lettered, as listed by `GET /v1/dead-letters` and written
/// to the dead-letter file.
#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    submission_id: Option<&'a str>,
    tenant_id: Option<&'a str>,
    /// The last failure's reason code (the connector's), or
    /// `shutdown_timeout`.
    reason: &'a str,
    /// Whether the failure was permanent, retryable, or the shutdown.
    class: &'a str,
    /// Times the event was received (delivery attempted, with the
    /// connector's own retries inside each).
    receives: u32,
    dead_lettered_at: String,
    /// The EventBridge event, as an SQS dead-letter queue would hold it.
    event: &'a RawValue,
}

/// The dead-letter queue: the newest in memory, all in the file if any.
struct DeadLetters {
    recent: Mutex<VecDeque<Box<RawValue>>>,
    file: Option<(PathBuf, Mutex<File>)>,
}

/// The bus between ingest and the connector.
pub struct Bus {
    connector: LocalConnector,
    /// The publisher's queue: for depth, and for slots held by waiting
    /// redeliveries.
    queue: mpsc::Sender<BusEntry>,
    slots: Arc<Semaphore>,
    redelivery: Redelivery,
    /// Events taken off the queue and not yet delivered or dead-lettered,
    /// by key: what the shutdown deadline dead-letters.
    outstanding: Mutex<HashMap<u64, Arc<String>>>,
    next_key: AtomicU64,
    taken: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    retrying: AtomicUsize,
    held_slots: AtomicUsize,
    in_flight: AtomicUsize,
    phase: watch::Sender<Phase>,
    drained: Notify,
    dead_letters: DeadLetters,
}

impl Bus {
    /// A bus delivering through `connector`, `concurrency` at a time, from
    /// `publisher`'s queue. Dead letters are appended to `dead_letter_file`
    /// when given (created if missing).
    pub fn new(
        connector: LocalConnector,
        publisher: &MemoryPublisher,
        concurrency: usize,
        redelivery: Redelivery,
        dead_letter_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let file = match dead_letter_file {
            None => None,
            Some(path) => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| {
                        format!("cannot open the dead-letter file {}", path.display())
                    })?;
                Some((path.to_owned(), Mutex::new(file)))
            }
        };
        Ok(Self {
            connector,
            queue: publisher.sender().clone(),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            redelivery,
            outstanding: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retrying: AtomicUsize::new(0),
            held_slots: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            phase: watch::Sender::new(Phase::Running),
            drained: Notify::new(),
            dead_letters: DeadLetters {
                recent: Mutex::new(VecDeque::new()),
                file,
            },
        })
    }

    /// The current counts.
    pub fn snapshot(&self) -> Snapshot {
        let depth = (self.queue.max_capacity() - self.queue.capacity())
            .saturating_sub(self.held_slots.load(Relaxed)) as u64;
        let taken = self.taken.load(Relaxed);
        Snapshot {
            accepted: taken + depth,
            delivered: self.delivered.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            retrying: self.retrying.load(Relaxed) as u64,
            in_flight: self.in_flight.load(Relaxed) as u64,
            queue_depth: depth,
        }
    }

    /// The dead-letter file, when there is one.
    pub fn dead_letter_file(&self) -> Option<&Path> {
        self.dead_letters
            .file
            .as_ref()
            .map(|(path, _)| path.as_path())
    }

    /// `GET /v1/dead-letters`: the count, the file, and the newest dead
    /// letters (oldest first).
    pub fn dead_letters_json(&self) -> String {
        let file = serde_json::to_string(&self.dead_letter_file()).unwrap_or_default();
        let recent = lock(&self.dead_letters.recent);
        let mut json = format!(
            r#"{{"total":{},"file":{file},"dead_letters":["#,
            self.dead_lettered.load(Relaxed)
        );
        for (i, letter) in recent.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(letter.get());
        }
        json.push_str("]}");
        json
    }

    /// Takes events off the queue and delivers them until the shutdown
    /// deadline; then dead-letters what is still queued.
    pub async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<BusEntry>) {
        let mut phase = self.phase.subscribe();
        loop {
            let entry = loop {
                let draining = *phase.borrow() == Phase::Draining;
                let next = if draining {
                    Phase::Expired
                } else {
                    Phase::Draining
                };
                tokio::select! {
                    entry = queue.recv() => break entry,
                    // Wakes when draining starts, to begin the checks below.
                    () = reached(&mut phase, next) => {
                        if *phase.borrow() == Phase::Expired {
                            break None;
                        }
                    }
                    // Checked here, between receives, no event can be in
                    // the dispatcher's hands while the bus looks empty.
                    () = tokio::time::sleep(DRAIN_POLL), if draining => {
                        if queue.is_empty() && lock(&self.outstanding).is_empty() {
                            self.drained.notify_one();
                        }
                    }
                }
            };
            let Some(entry) = entry else { break };
            let key = self.next_key.fetch_add(1, Relaxed);
            let event = Arc::new(eventbridge_event(&entry));
            lock(&self.outstanding).insert(key, Arc::clone(&event));
            self.taken.fetch_add(1, Relaxed);
            // The event is received before a delivery slot is awaited, so
            // a redelivery waiting for a slot is never queued behind a
            // dispatcher idling on an empty queue. Closed at the deadline:
            // the event is outstanding, and `drain` dead-letters it.
            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
                break;
            };
            tokio::spawn(Arc::clone(&self).deliver(key, event, slot));
        }
        queue.close();
        // Until every sender's reserved slot is filled or released (retries
        // release theirs once the slots are closed), so an entry being
        // published right now is not dropped with the queue.
        let rest = async {
            while let Some(entry) = queue.recv().await {
                self.taken.fetch_add(1, Relaxed);
                self.dead_letter(
                    None,
                    &eventbridge_event(&entry),
                    "shutdown_timeout",
                    "shutdown",
                    0,
                );
            }
        };
        if tokio::time::timeout(Duration::from_secs(1), rest)
            .await
            .is_err()
        {
            warn!("a publisher held a queue slot past the shutdown deadline");
        }
    }

    /// Delivers one event, receiving it again after retryable failures.
    async fn deliver(self: Arc<Self>, key: u64, event: Arc<String>, slot: OwnedSemaphorePermit) {
        let mut slot = Some(slot);
        let mut receives = 1;
        let mut phase = self.phase.subscribe();
        loop {
            self.in_flight.fetch_add(1, Relaxed);
            let result = self.connector.deliver_event(&event, None).await;
            self.in_flight.fetch_sub(1, Relaxed);
            drop(slot.take());
            let error = match result {
                Ok(_) => {
                    if lock(&self.outstanding).remove(&key).is_some() {
                        self.delivered.fetch_add(1, Relaxed);
                    } else {
                        // Dead-lettered at the shutdown deadline meanwhile.
                        info!(key, "delivered after being dead-lettered at shutdown");
                    }
                    return;
                }
                Err(error) => error,
            };
            if error.class() == Class::Permanent || receives >= self.redelivery.max_receives {
                self.dead_letter(Some(key), &event, error.code(), class(&error), receives);
                return;
            }
            // Wait for the next receive holding a queue slot, so waiting
            // events count against the queue's bound.
            self.retrying.fetch_add(1, Relaxed);
            let Ok(queue_slot) = self.queue.reserve().await else {
                self.retrying.fetch_sub(1, Relaxed);
                self.dead_letter(Some(key), &event, error.code(), class(&error), receives);
                return;
            };
            self.held_slots.fetch_add(1, Relaxed);
            let delay = self.redelivery.delay(receives);
            if *phase.borrow() == Phase::Running {
                // Shutdown cuts the wait short: one more try at once.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = reached(&mut phase, Phase::Draining) => {}
                }
            } else {
                // While shutting down, retries come quickly until the deadline.
                tokio::time::sleep(delay.min(SHUTDOWN_RETRY_DELAY)).await;
            }
            let next = Arc::clone(&self.slots).acquire_owned().await;
            drop(queue_slot);
            self.held_slots.fetch_sub(1, Relaxed);
            self.retrying.fetch_sub(1, Relaxed);
            match next {
                Ok(next) => slot = Some(next),
                Err(_) => {
                    self.dead_letter(Some(key), &event, error.code(), class(&error), receives);
                    return;
                }
            }
            receives += 1;
        }
    }

    /// Moves an event to the dead letters. With a key, only if it is still
    /// outstanding (the shutdown deadline may have dead-lettered it).
    fn dead_letter(&self, key: Option<u64>, event: &str, reason: &str, class: &str, receives: u32) {
        if let Some(key) = key
            && lock(&self.outstanding).remove(&key).is_none()
        {
            return;
        }
        let ids = EventIds::read(event);
        warn!(
            tenant_id = ids.tenant_id,
            submission_id = ids.submission_id,
            reason,
            receives,
            "dead-lettered"
        );
        let Ok(event) = RawValue::from_string(event.to_owned()) else {
            // Built by `eventbridge_event`: always JSON.
            self.dead_lettered.fetch_add(1, Relaxed);
            return;
        };
        let letter = DeadLetter {
            submission_id: ids.submission_id,
            tenant_id: ids.tenant_id,
            reason,
            class,
            receives,
            dead_lettered_at: received_at(SystemTime::now()),
            event: &event,
        };
        let Ok(line) = serde_json::value::to_raw_value(&letter) else {
            self.dead_lettered.fetch_add(1, Relaxed); // strings and JSON only: cannot fail
            return;
        };
        if let Some((path, file)) = &self.dead_letters.file {
            let mut file = lock(file);
            let written = file
                .write_all(line.get().as_bytes())
                .and_then(|()| file.write_all(b"\n"));
            if let Err(e) = written {
                error!(file = %path.display(), error = %e, "cannot write the dead-letter file");
            }
        }
        let mut recent = lock(&self.dead_letters.recent);
        if recent.len() == DEAD_LETTERS_IN_MEMORY {
            recent.pop_front();
        }
        recent.push_back(line);
        // Counted under the list's lock, so a listing's total and its
        // entries agree.
        self.dead_lettered.fetch_add(1, Relaxed);
    }

    /// Shutdown: delivers what was accepted, for up to `timeout`; then
    /// stops the dispatcher (`dispatcher` is its task) and dead-letters
    /// whatever is left. Returns the final counts.
    pub async fn drain(
        &self,
        timeout: Duration,
        dispatcher: tokio::task::JoinHandle<()>,
    ) -> Snapshot {
        self.phase.send_replace(Phase::Draining);
        let _ = tokio::time::timeout(timeout, self.drained.notified()).await;
        self.phase.send_replace(Phase::Expired);
        self.slots.close();
        let _ = dispatcher.await;
        let left: Vec<(u64, Arc<String>)> = lock(&self.outstanding)
            .iter()
            .map(|(key, event)| (*key, Arc::clone(event)))
            .collect();
        for (key, event) in left {
            self.dead_letter(Some(key), &event, "shutdown_timeout", "shutdown", 0);
        }
        self.snapshot()
    }
}

/// Waits until the bus is at `phase` or past it. The guard `wait_for`
/// returns is dropped here, before any other await.
async fn reached(watch: &mut watch::Receiver<Phase>, phase: Phase) {
    let _ = watch.wait_for(|p| *p >= phase).await;
}

fn class(error: &DeliveryError) -> &'static str {
    error.class().as_str()
}

/// A lock whose holder may have panicked: every structure behind one stays
/// consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The event an EventBridge rule with an SQS target puts in a record's
/// body, for a published entry.
fn eventbridge_event(entry: &BusEntry) -> String {
    let source = serde_json::to_string(&*entry.source).unwrap_or_default();
    format!(
        r#"{{"version":"0","id":"{id}","detail-type":"{detail_type}","source":{source},"account":"000000000000","time":"{time}","region":"local","resources":[],"detail":{detail}}}"#,
        id = uuid::Uuid::new_v4(),
        detail_type = entry.detail_type,
        time = received_at(entry.time),
        detail = entry.detail,
    )
}

/// The IDs of an event, for dead-letter records and logs.
#[derive(Default, serde::Deserialize)]
struct EventIds<'a> {
    #[serde(borrow)]
    submission_id: Option<&'a str>,
    #[serde(borrow)]
    tenant_id: Option<&'a str>,
}

impl<'a> EventIds<'a> {
    fn read(event: &'a str) -> Self {
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow, default)]
            detail: EventIds<'a>,
        }
        serde_json::from_str::<Envelope<'a>>(event)
            .map(|e| e.detail)
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_delays_grow_and_stay_within_half_to_full() {
        let policy = Redelivery::default();
        for (receives, ceiling) in [(1, 1), (2, 2), (3, 4), (7, 60), (30, 60)] {
            let ceiling = Duration::from_secs(ceiling);
            for _ in 0..50 {
                let delay = policy.delay(receives);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{receives}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn events_are_what_eventbridge_puts_in_an_sqs_record() {
        let entry = BusEntry {
            source: Arc::from("form-bridge"),
            detail_type: "form.submission",
            time: SystemTime::UNIX_EPOCH,
            detail: r#"{"version":"1","submission_id":"s","tenant_id":"acme","payload":{}}"#
                .to_owned(),
        };
        let json = eventbridge_event(&entry);
        let event: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(event["detail-type"], "form.submission");
        assert_eq!(event["source"], "form-bridge");
        assert_eq!(event["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(event["detail"]["tenant_id"], "acme");
        let ids = EventIds::read(&json);
        assert_eq!(
            (ids.submission_id, ids.tenant_id),
            (Some("s"), Some("acme"))
        );
        assert!(EventIds::read("not json").tenant_id.is_none());
    }
}
