//! The in-process bus: EventBridge, the rules, SQS and its dead-letter
//! queue on one machine, with each tenant's deliveries kept apart.
//!
//! Ingest publishes through a [`BusPublisher`] into one lane per tenant.
//! The dispatcher starts deliveries as slots (`DELIVERY_CONCURRENCY`) free
//! up, taking tenants in turn (round robin) and at most
//! `DELIVERY_CONCURRENCY_PER_DESTINATION` at once for one tenant, and hands
//! each event, as the EventBridge event an SQS record would carry, to
//! [`Connector::deliver_event`]: the Lambda's own code, with its tenant
//! cache, breakers, signing and in-invocation retries. A tenant whose
//! endpoint is slow or failing, or who floods, waits on its own lane; the
//! next free slot goes to the next tenant with work. What happens after a
//! delivery is what SQS would do:
//!
//! - delivered: done;
//! - a permanent failure: dead-lettered at once (the Lambda leaves that to
//!   the queue's receive limit; locally nobody is redeploying the endpoint);
//! - a retryable failure: received again after a growing delay (the
//!   visibility timeout), up to `max_receives`, then dead-lettered.
//!
//! Every event accepted counts against the bus's capacity and its tenant's
//! share until it is delivered or dead-lettered, waiting retries included:
//! memory stays bounded, and intake answers 503 rather than growing, to the
//! tenant whose share is full first. Dead letters are kept for
//! `GET /v1/dead-letters` and, with `--dead-letters FILE`, appended to that
//! file as JSON lines.
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
use shared::publish::{BusEntry, EntryFailure, EventPublisher, MAX_ENTRIES_PER_CALL, PublishError};
use shared::store::MemoryTenantStore;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

/// The connector as the local gateway runs it.
pub type LocalConnector = Connector<MemoryTenantStore, HttpDeliveryClient>;

/// Dead letters kept in memory for `GET /v1/dead-letters` (the newest).
const DEAD_LETTERS_IN_MEMORY: usize = 1_000;
/// The longest wait between receives once shutdown has begun.
const SHUTDOWN_RETRY_DELAY: Duration = Duration::from_secs(1);

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

/// How much the bus holds and delivers at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events accepted and not yet delivered or dead-lettered (queued, in
    /// flight and waiting to be received again); beyond it, 503.
    pub capacity: usize,
    /// The same, for one tenant: a tenant whose endpoint is slow or down,
    /// or who floods, fills its own share and gets 503, not the others.
    pub tenant_capacity: usize,
    /// Deliveries in flight at once (`DELIVERY_CONCURRENCY`).
    pub concurrency: usize,
    /// Deliveries in flight at once to one tenant's destination
    /// (`DELIVERY_CONCURRENCY_PER_DESTINATION`).
    pub per_destination: usize,
}

/// One event waiting for, or in, a delivery.
struct Job {
    key: u64,
    event: Arc<String>,
    /// Receives so far.
    receives: u32,
}

/// One tenant's events.
#[derive(Default)]
struct Lane {
    queue: VecDeque<Job>,
    in_flight: usize,
    /// Accepted and not yet done: queued, in flight or waiting to retry.
    held: usize,
    /// In the round-robin list.
    ready: bool,
}

/// The tenants' lanes and the round-robin list of those that may start a
/// delivery now.
#[derive(Default)]
struct Lanes {
    by_tenant: HashMap<Arc<str>, Lane>,
    ready: VecDeque<Arc<str>>,
    held: usize,
    queued: usize,
    in_flight: usize,
    /// The shutdown deadline passed: nothing more is taken.
    closed: bool,
}

impl Lanes {
    fn lane(&mut self, tenant: &Arc<str>) -> &mut Lane {
        self.by_tenant.entry(Arc::clone(tenant)).or_default()
    }

    /// Queues `job` at the back of its tenant's lane.
    fn push(&mut self, tenant: &Arc<str>, job: Job, limits: &Limits) {
        self.lane(tenant).queue.push_back(job);
        self.queued += 1;
        self.mark_ready(tenant, limits);
    }

    /// Puts the tenant at the back of the round-robin list if it has an
    /// event to deliver and room under its in-flight cap.
    fn mark_ready(&mut self, tenant: &Arc<str>, limits: &Limits) {
        let Some(lane) = self.by_tenant.get_mut(tenant) else {
            return;
        };
        if !lane.ready && !lane.queue.is_empty() && lane.in_flight < limits.per_destination {
            lane.ready = true;
            self.ready.push_back(Arc::clone(tenant));
        }
    }

    /// The next delivery to start: the first ready tenant's oldest event,
    /// that tenant going to the back of the list; with no tenant ready, an
    /// event of a tenant over its cap ([`Lanes::overflow`]).
    fn next(&mut self, limits: &Limits) -> Option<(Arc<str>, Job)> {
        while self.in_flight < limits.concurrency {
            let Some(tenant) = self.ready.pop_front() else {
                return self.overflow(limits);
            };
            let Some(lane) = self.by_tenant.get_mut(&tenant) else {
                continue;
            };
            lane.ready = false;
            let Some(job) = lane.queue.pop_front() else {
                continue;
            };
            lane.in_flight += 1;
            self.in_flight += 1;
            self.queued -= 1;
            self.mark_ready(&tenant, limits);
            return Some((tenant, job));
        }
        None
    }

    /// When every tenant with events waiting is at its cap, the slots
    /// beyond a reserve (a quarter) still serve them, the tenant with the
    /// fewest in flight first (then the oldest event): a lone busy tenant
    /// gets most of the bus, and a tenant that turns up finds a free slot
    /// at once.
    fn overflow(&mut self, limits: &Limits) -> Option<(Arc<str>, Job)> {
        let reserve = limits.concurrency / 4;
        if self.queued == 0 || self.in_flight + reserve >= limits.concurrency {
            return None;
        }
        let (tenant, lane) = self
            .by_tenant
            .iter_mut()
            .filter(|(_, lane)| !lane.queue.is_empty())
            .min_by_key(|(_, lane)| (lane.in_flight, lane.queue.front().map(|job| job.key)))?;
        let job = lane.queue.pop_front()?;
        lane.in_flight += 1;
        self.in_flight += 1;
        self.queued -= 1;
        Some((Arc::clone(tenant), job))
    }

    /// A delivery of `tenant`'s ended (`in_flight`) or an event waiting to
    /// retry was given up; `done`: the event leaves the bus.
    fn settle(&mut self, tenant: &Arc<str>, in_flight: bool, done: bool, limits: &Limits) {
        let Some(lane) = self.by_tenant.get_mut(tenant) else {
            return;
        };
        if in_flight {
            lane.in_flight -= 1;
            self.in_flight -= 1;
        }
        if done {
            lane.held -= 1;
            self.held -= 1;
        }
        if lane.held == 0 && !lane.ready {
            self.by_tenant.remove(tenant);
        } else {
            self.mark_ready(tenant, limits);
        }
    }
}

/// The bus between ingest and the connector.
pub struct Bus {
    connector: LocalConnector,
    limits: Limits,
    redelivery: Redelivery,
    lanes: Mutex<Lanes>,
    /// Wakes the dispatcher: an event was queued or a delivery ended.
    wake: Notify,
    /// Events accepted and not yet delivered or dead-lettered, by key:
    /// what the shutdown deadline dead-letters.
    outstanding: Mutex<HashMap<u64, Arc<String>>>,
    next_key: AtomicU64,
    accepted: AtomicU64,
    delivered: AtomicU64,
    dead_lettered: AtomicU64,
    retrying: AtomicUsize,
    phase: watch::Sender<Phase>,
    drained: Notify,
    dead_letters: DeadLetters,
}

impl Bus {
    /// A bus delivering through `connector` within `limits`. Dead letters
    /// are appended to `dead_letter_file` when given (created if missing).
    pub fn new(
        connector: LocalConnector,
        limits: Limits,
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
        let limits = Limits {
            capacity: limits.capacity.max(MAX_ENTRIES_PER_CALL),
            tenant_capacity: limits.tenant_capacity.max(MAX_ENTRIES_PER_CALL),
            concurrency: limits.concurrency.max(1),
            per_destination: limits.per_destination.max(1),
        };
        Ok(Self {
            connector,
            limits,
            redelivery,
            lanes: Mutex::new(Lanes::default()),
            wake: Notify::new(),
            outstanding: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            retrying: AtomicUsize::new(0),
            phase: watch::Sender::new(Phase::Running),
            drained: Notify::new(),
            dead_letters: DeadLetters {
                recent: Mutex::new(VecDeque::new()),
                file,
            },
        })
    }

    /// The limits in force (after raising any below their minimum).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The current counts.
    pub fn snapshot(&self) -> Snapshot {
        let (queued, in_flight) = {
            let lanes = lock(&self.lanes);
            (lanes.queued, lanes.in_flight)
        };
        Snapshot {
            accepted: self.accepted.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            retrying: self.retrying.load(Relaxed) as u64,
            in_flight: in_flight as u64,
            queue_depth: queued as u64,
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

    /// Takes a call's entries, all or none: none when the bus, or a
    /// tenant's share of it, cannot hold them all.
    fn publish(&self, entries: &[BusEntry]) -> Result<(), PublishError> {
        let events: Vec<(Arc<str>, String)> = entries
            .iter()
            .map(|entry| {
                let tenant = EventIds::read_detail(&entry.detail).tenant_id;
                (
                    Arc::from(tenant.unwrap_or_default()),
                    eventbridge_event(entry),
                )
            })
            .collect();
        let mut lanes = lock(&self.lanes);
        if lanes.closed {
            return Err(PublishError::Refused("the local bus is closed".to_owned()));
        }
        if lanes.held + events.len() > self.limits.capacity {
            return Err(PublishError::Unavailable(
                "the local queue is full".to_owned(),
            ));
        }
        let mut per_tenant: HashMap<&Arc<str>, usize> = HashMap::new();
        for (tenant, _) in &events {
            *per_tenant.entry(tenant).or_default() += 1;
        }
        for (tenant, n) in &per_tenant {
            let held = lanes.by_tenant.get(*tenant).map_or(0, |lane| lane.held);
            if held + n > self.limits.tenant_capacity {
                return Err(PublishError::Unavailable(format!(
                    "tenant {tenant}'s share of the local queue is full"
                )));
            }
        }
        let mut outstanding = lock(&self.outstanding);
        for (tenant, event) in events {
            let key = self.next_key.fetch_add(1, Relaxed);
            let event = Arc::new(event);
            outstanding.insert(key, Arc::clone(&event));
            lanes.lane(&tenant).held += 1;
            lanes.held += 1;
            let job = Job {
                key,
                event,
                receives: 0,
            };
            lanes.push(&tenant, job, &self.limits);
        }
        drop(outstanding);
        drop(lanes);
        self.accepted.fetch_add(entries.len() as u64, Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// Starts deliveries as slots free up, tenants in turn, until the
    /// shutdown deadline.
    pub async fn run(self: Arc<Self>) {
        let mut phase = self.phase.subscribe();
        loop {
            let mut started = Vec::new();
            let all_done = {
                let mut lanes = lock(&self.lanes);
                while let Some(next) = lanes.next(&self.limits) {
                    started.push(next);
                }
                lanes.held == 0
            };
            for (tenant, job) in started {
                tokio::spawn(Arc::clone(&self).deliver(tenant, job));
            }
            let current = *phase.borrow();
            if current == Phase::Draining && all_done {
                self.drained.notify_one();
            }
            let next = if current == Phase::Running {
                Phase::Draining
            } else {
                Phase::Expired
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = reached(&mut phase, next) => {
                    if *phase.borrow() == Phase::Expired {
                        break;
                    }
                }
            }
        }
        lock(&self.lanes).closed = true;
    }

    /// Delivers one event; after a retryable failure, waits and queues it
    /// again in its tenant's lane.
    async fn deliver(self: Arc<Self>, tenant: Arc<str>, mut job: Job) {
        job.receives += 1;
        let result = self.connector.deliver_event(&job.event, None).await;
        let error = match result {
            Ok(_) => {
                if lock(&self.outstanding).remove(&job.key).is_some() {
                    self.delivered.fetch_add(1, Relaxed);
                } else {
                    // Dead-lettered at the shutdown deadline meanwhile.
                    info!(
                        key = job.key,
                        "delivered after being dead-lettered at shutdown"
                    );
                }
                self.settle(&tenant, true, true);
                return;
            }
            Err(error) => error,
        };
        if error.class() == Class::Permanent || job.receives >= self.redelivery.max_receives {
            self.dead_letter(
                Some(job.key),
                &job.event,
                error.code(),
                class(&error),
                job.receives,
            );
            self.settle(&tenant, true, true);
            return;
        }
        // Off the delivery slot while waiting, but still held: waiting
        // events count against the bounds.
        self.settle(&tenant, true, false);
        self.retrying.fetch_add(1, Relaxed);
        let delay = self.redelivery.delay(job.receives);
        let mut phase = self.phase.subscribe();
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
        self.retrying.fetch_sub(1, Relaxed);
        let mut lanes = lock(&self.lanes);
        if lanes.closed {
            lanes.settle(&tenant, false, true, &self.limits);
            drop(lanes);
            self.dead_letter(
                Some(job.key),
                &job.event,
                error.code(),
                class(&error),
                job.receives,
            );
            return;
        }
        lanes.push(&tenant, job, &self.limits);
        drop(lanes);
        self.wake.notify_one();
    }

    /// Records that a delivery ended or an event left the bus, and wakes
    /// the dispatcher.
    fn settle(&self, tenant: &Arc<str>, in_flight: bool, done: bool) {
        lock(&self.lanes).settle(tenant, in_flight, done, &self.limits);
        self.wake.notify_one();
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
        self.wake.notify_one();
        let _ = tokio::time::timeout(timeout, self.drained.notified()).await;
        self.phase.send_replace(Phase::Expired);
        let _ = dispatcher.await;
        let left: Vec<(u64, Arc<String>)> = lock(&self.outstanding)
            .iter()
            .map(|(key, event)| (*key, Arc::clone(event)))
            .collect();
        for (key, event) in left {
            self.dead_letter(Some(key), &event, "shutdown_timeout", "shutdown", 0);
        }
        let mut snapshot = self.snapshot();
        // Dead-lettered at the deadline: no longer queued.
        snapshot.queue_depth = 0;
        snapshot
    }
}

/// Ingest's publisher in the local gateway: puts events on the [`Bus`].
#[derive(Clone)]
pub struct BusPublisher(Arc<Bus>);

impl BusPublisher {
    /// A publisher onto `bus`.
    pub fn new(bus: Arc<Bus>) -> Self {
        Self(bus)
    }
}

impl EventPublisher for BusPublisher {
    /// All or nothing, like the in-memory queue: when the bus or the
    /// tenant's share is full, nothing is queued and the call fails as
    /// unavailable, which the gateway answers with 503.
    async fn put_events(
        &self,
        entries: &[BusEntry],
    ) -> Result<Vec<Result<(), EntryFailure>>, PublishError> {
        self.0.publish(entries)?;
        Ok(vec![Ok(()); entries.len()])
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
    /// The IDs in a published entry's detail.
    fn read_detail(detail: &'a str) -> Self {
        serde_json::from_str(detail).unwrap_or_default()
    }

    /// The IDs in an EventBridge event's detail.
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

    fn job(key: u64) -> Job {
        Job {
            key,
            event: Arc::new(String::new()),
            receives: 0,
        }
    }

    const LIMITS: Limits = Limits {
        capacity: 1_000,
        tenant_capacity: 1_000,
        concurrency: 8,
        per_destination: 2,
    };

    /// Queues `n` events for `tenant`, keys from `first`.
    fn queue(lanes: &mut Lanes, tenant: &Arc<str>, first: u64, n: u64) {
        for key in first..first + n {
            lanes.lane(tenant).held += 1;
            lanes.held += 1;
            lanes.push(tenant, job(key), &LIMITS);
        }
    }

    #[test]
    fn tenants_take_turns_within_their_caps_and_a_reserve_stays_free() {
        let (slow, fast, other): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("slowco"), Arc::from("fastco"), Arc::from("other"));
        let mut lanes = Lanes::default();
        // A backlog of 100 first, then one event for fastco, three for other.
        queue(&mut lanes, &slow, 0, 100);
        queue(&mut lanes, &fast, 100, 1);
        queue(&mut lanes, &other, 200, 3);
        let mut started = Vec::new();
        while let Some((tenant, job)) = lanes.next(&LIMITS) {
            started.push((tenant.to_string(), job.key));
        }
        // Round robin, two at most per tenant while others wait; then one
        // slot beyond the caps (8 slots, a reserve of 2): the oldest event
        // among the tenants with the fewest in flight.
        let expected: Vec<(String, u64)> = [
            ("slowco", 0),
            ("fastco", 100),
            ("other", 200),
            ("slowco", 1),
            ("other", 201),
            ("slowco", 2),
        ]
        .into_iter()
        .map(|(t, k)| (t.to_owned(), k))
        .collect();
        assert_eq!(started, expected);
        assert_eq!((lanes.in_flight, lanes.queued), (6, 98));
        // Everything hangs; fastco's next event starts at once, in the
        // reserve, and the last slot stays free.
        let next = |lanes: &mut Lanes| lanes.next(&LIMITS).map(|(_, job)| job.key);
        queue(&mut lanes, &fast, 101, 1);
        assert_eq!(next(&mut lanes), Some(101));
        assert_eq!(next(&mut lanes), None);
        // other's two end: its third goes next, under its cap.
        lanes.settle(&other, true, true, &LIMITS);
        lanes.settle(&other, true, true, &LIMITS);
        assert_eq!(next(&mut lanes), Some(202));
        assert_eq!(next(&mut lanes), None);
        // fastco's end: its lane is forgotten, and slowco's backlog takes
        // the freed slots beyond the reserve.
        lanes.settle(&fast, true, true, &LIMITS);
        lanes.settle(&fast, true, true, &LIMITS);
        assert!(!lanes.by_tenant.contains_key(&fast));
        assert_eq!((next(&mut lanes), next(&mut lanes)), (Some(3), Some(4)));
        assert_eq!(next(&mut lanes), None);
        assert_eq!((lanes.in_flight, lanes.held), (6, 101));
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
