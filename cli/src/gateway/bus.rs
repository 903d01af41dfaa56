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
//! tenant whose share is full first. Dead letters are appended to the
//! dead-letter file as JSON lines, which the operations listener indexes
//! (`dead_letters.rs`); none is kept in memory here.
//!
//! Every event accepted is in one place at a time, and the counts
//! ([`Snapshot`]) change together under one lock: at any moment `accepted
//! = delivered + dead_lettered + retrying + in_flight + queue_depth`.
//!
//! Shutdown ([`Bus::drain`]): retries waiting on a delay are tried at once
//! and then every second at most, queued events are still delivered; at
//! the deadline, whatever is left is dead-lettered as `shutdown_timeout`
//! with the receives it had: queued events, events waiting for a retry,
//! and deliveries still in flight, which are stopped (the request may
//! have reached the endpoint, as when a Lambda times out mid-delivery;
//! receivers drop duplicates by `webhook-id`). Nothing accepted is dropped,
//! and nothing is both delivered and dead-lettered.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
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
use tracing::{error, warn};

/// The connector as the local gateway runs it.
pub type LocalConnector = Connector<MemoryTenantStore, HttpDeliveryClient>;

/// The longest wait between receives once shutdown has begun.
const SHUTDOWN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long [`Bus::drain`] waits, after the deadline, for deliveries in
/// flight and retries waiting to dead-letter their events (they do so as
/// soon as they see the deadline).
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// The dead-letter reason and class of events left at the deadline.
const SHUTDOWN_REASON: &str = "shutdown_timeout";
const SHUTDOWN_CLASS: &str = "shutdown";

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

/// One event dead-lettered, as written to the dead-letter file (and
/// listed from it by the operations listener).
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

/// The tenants' lanes, the round-robin list of those that may start a
/// delivery now, and the counts: every change of an event's place and of
/// the counts happens under the one lock that guards this, so a
/// [`Snapshot`] always adds up.
#[derive(Default)]
struct Lanes {
    by_tenant: HashMap<Arc<str>, Lane>,
    ready: VecDeque<Arc<str>>,
    /// Accepted and not yet delivered or dead-lettered: `queued +
    /// in_flight + waiting`.
    held: usize,
    queued: usize,
    in_flight: usize,
    /// Waiting to be received again after a retryable failure.
    waiting: usize,
    /// Since start.
    accepted: u64,
    delivered: u64,
    dead_lettered: u64,
    /// The shutdown deadline passed: nothing more is taken or queued.
    closed: bool,
}

/// Where an event the bus holds, and not queued, is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    InFlight,
    Waiting,
}

/// Where it goes next.
enum Next {
    Delivered,
    DeadLettered,
    /// Off its delivery slot, to be received again after a delay.
    Waiting,
    /// Back on its tenant's queue.
    Queued(Job),
}

impl Lanes {
    fn lane(&mut self, tenant: &Arc<str>) -> &mut Lane {
        self.by_tenant.entry(Arc::clone(tenant)).or_default()
    }

    /// Takes a new event for `tenant`, at the back of its queue.
    fn accept(&mut self, tenant: &Arc<str>, event: Arc<String>, limits: &Limits) {
        let job = Job {
            key: self.accepted,
            event,
            receives: 0,
        };
        self.accepted += 1;
        self.lane(tenant).held += 1;
        self.held += 1;
        self.push(tenant, job, limits);
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
        while !self.closed && self.in_flight < limits.concurrency {
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

    /// Moves one of `tenant`'s events from `from` to `to`, counting it.
    fn settle(&mut self, tenant: &Arc<str>, from: Stage, to: Next, limits: &Limits) {
        let Some(lane) = self.by_tenant.get_mut(tenant) else {
            return;
        };
        match from {
            Stage::InFlight => {
                lane.in_flight -= 1;
                self.in_flight -= 1;
            }
            Stage::Waiting => self.waiting -= 1,
        }
        match to {
            Next::Delivered => {
                lane.held -= 1;
                self.held -= 1;
                self.delivered += 1;
            }
            Next::DeadLettered => {
                lane.held -= 1;
                self.held -= 1;
                self.dead_lettered += 1;
            }
            Next::Waiting => self.waiting += 1,
            Next::Queued(job) => {
                lane.queue.push_back(job);
                self.queued += 1;
            }
        }
        if lane.held == 0 && !lane.ready {
            self.by_tenant.remove(tenant);
        } else {
            self.mark_ready(tenant, limits);
        }
    }

    /// Takes every queued event off the bus, counted as dead-lettered
    /// (the caller writes them): the shutdown deadline.
    fn sweep(&mut self) -> Vec<Job> {
        let mut swept = Vec::with_capacity(self.queued);
        for lane in self.by_tenant.values_mut() {
            lane.held -= lane.queue.len();
            lane.ready = false;
            swept.extend(lane.queue.drain(..));
        }
        self.queued -= swept.len();
        self.held -= swept.len();
        self.dead_lettered += swept.len() as u64;
        self.ready.clear();
        self.by_tenant.retain(|_, lane| lane.held > 0);
        swept
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
    /// Wakes [`Bus::drain`]: the bus may hold nothing now.
    emptied: Notify,
    phase: watch::Sender<Phase>,
    /// Where dead letters are appended, when given.
    dead_letter_file: Option<(PathBuf, Mutex<File>)>,
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
        let dead_letter_file = match dead_letter_file {
            None => None,
            Some(path) => {
                let mut options = File::options();
                options.create(true).append(true);
                // It holds submissions' payloads: its owner's only.
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let file = options.open(path).with_context(|| {
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
            emptied: Notify::new(),
            phase: watch::Sender::new(Phase::Running),
            dead_letter_file,
        })
    }

    /// The limits in force (after raising any below their minimum).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The current counts, read together: they add up.
    pub fn snapshot(&self) -> Snapshot {
        let lanes = lock(&self.lanes);
        Snapshot {
            accepted: lanes.accepted,
            delivered: lanes.delivered,
            dead_lettered: lanes.dead_lettered,
            retrying: lanes.waiting as u64,
            in_flight: lanes.in_flight as u64,
            queue_depth: lanes.queued as u64,
        }
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
        for (tenant, event) in events {
            lanes.accept(&tenant, Arc::new(event), &self.limits);
        }
        drop(lanes);
        self.wake.notify_one();
        Ok(())
    }

    /// Starts deliveries as slots free up, tenants in turn, until the
    /// shutdown deadline.
    pub async fn run(self: Arc<Self>) {
        let mut phase = self.phase.subscribe();
        loop {
            let started: Vec<(Arc<str>, Job)> = {
                let mut lanes = lock(&self.lanes);
                std::iter::from_fn(|| lanes.next(&self.limits)).collect()
            };
            for (tenant, job) in started {
                tokio::spawn(Arc::clone(&self).deliver(tenant, job));
            }
            let next = match *phase.borrow() {
                Phase::Running => Phase::Draining,
                Phase::Draining | Phase::Expired => Phase::Expired,
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
    }

    /// Delivers one event; after a retryable failure, waits and queues it
    /// again in its tenant's lane. At the shutdown deadline, stops and
    /// dead-letters it.
    async fn deliver(self: Arc<Self>, tenant: Arc<str>, mut job: Job) {
        let mut phase = self.phase.subscribe();
        if *phase.borrow() == Phase::Expired {
            // Taken as the deadline came: not received this time.
            self.shut_out(&tenant, Stage::InFlight, &job);
            return;
        }
        job.receives += 1;
        let result = tokio::select! {
            result = self.connector.deliver_event(&job.event, None) => result,
            () = reached(&mut phase, Phase::Expired) => {
                // The request may have reached the endpoint: this receive
                // counts, as when a Lambda times out mid-delivery.
                self.shut_out(&tenant, Stage::InFlight, &job);
                return;
            }
        };
        let error = match result {
            Ok(_) => {
                self.settle(&tenant, Stage::InFlight, Next::Delivered);
                return;
            }
            Err(error) => error,
        };
        if error.class() == Class::Permanent || job.receives >= self.redelivery.max_receives {
            self.write_dead_letter(&job, error.code(), class(&error));
            self.settle(&tenant, Stage::InFlight, Next::DeadLettered);
            return;
        }
        // Off the delivery slot while waiting, but still held: waiting
        // events count against the bounds.
        self.settle(&tenant, Stage::InFlight, Next::Waiting);
        let delay = self.redelivery.delay(job.receives);
        // Shutdown cuts a wait short, for one more try at once; while
        // shutting down, retries come quickly until the deadline.
        let (delay, until) = match *phase.borrow() {
            Phase::Running => (delay, Phase::Draining),
            Phase::Draining | Phase::Expired => (delay.min(SHUTDOWN_RETRY_DELAY), Phase::Expired),
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = reached(&mut phase, until) => {}
        }
        let mut lanes = lock(&self.lanes);
        if lanes.closed {
            drop(lanes);
            self.shut_out(&tenant, Stage::Waiting, &job);
            return;
        }
        lanes.settle(&tenant, Stage::Waiting, Next::Queued(job), &self.limits);
        drop(lanes);
        self.wake.notify_one();
    }

    /// Moves one of `tenant`'s events and wakes the dispatcher (and
    /// [`Bus::drain`] when the bus is empty).
    fn settle(&self, tenant: &Arc<str>, from: Stage, to: Next) {
        let empty = {
            let mut lanes = lock(&self.lanes);
            lanes.settle(tenant, from, to, &self.limits);
            lanes.held == 0
        };
        self.wake.notify_one();
        if empty {
            self.emptied.notify_one();
        }
    }

    /// Dead-letters an event the shutdown deadline caught in `from`.
    fn shut_out(&self, tenant: &Arc<str>, from: Stage, job: &Job) {
        self.write_dead_letter(job, SHUTDOWN_REASON, SHUTDOWN_CLASS);
        self.settle(tenant, from, Next::DeadLettered);
    }

    /// Logs a dead letter and appends it to the file, if any. The caller
    /// counts it (after, so that the file never has fewer lines than the
    /// count).
    fn write_dead_letter(&self, job: &Job, reason: &str, class: &str) {
        let ids = EventIds::read(&job.event);
        warn!(
            tenant_id = ids.tenant_id,
            submission_id = ids.submission_id,
            reason,
            receives = job.receives,
            "dead-lettered"
        );
        let Some((path, file)) = &self.dead_letter_file else {
            return;
        };
        // Built by `eventbridge_event`: always JSON, so neither fails.
        let Ok(event) = RawValue::from_string(job.event.as_str().to_owned()) else {
            return;
        };
        let letter = DeadLetter {
            submission_id: ids.submission_id,
            tenant_id: ids.tenant_id,
            reason,
            class,
            receives: job.receives,
            dead_lettered_at: received_at(SystemTime::now()),
            event: &event,
        };
        let Ok(mut line) = serde_json::to_vec(&letter) else {
            return;
        };
        line.push(b'\n');
        if let Err(e) = lock(file).write_all(&line) {
            error!(file = %path.display(), error = %e, "cannot write the dead-letter file");
        }
    }

    /// Until the bus holds nothing.
    async fn until_empty(&self) {
        loop {
            let held = lock(&self.lanes).held;
            if held == 0 {
                return;
            }
            // A notification since the check is kept: not missed.
            self.emptied.notified().await;
        }
    }

    /// Shutdown: delivers what was accepted, for up to `timeout`; then
    /// stops the dispatcher (`dispatcher` is its task) and dead-letters
    /// whatever is left (module docs). Returns the final counts: every
    /// event accepted delivered or dead-lettered.
    pub async fn drain(
        &self,
        timeout: Duration,
        dispatcher: tokio::task::JoinHandle<()>,
    ) -> Snapshot {
        self.phase.send_replace(Phase::Draining);
        self.wake.notify_one();
        let _ = tokio::time::timeout(timeout, self.until_empty()).await;
        self.phase.send_replace(Phase::Expired);
        {
            let mut lanes = lock(&self.lanes);
            lanes.closed = true;
            // Written under the lock that counted them: a snapshot taken
            // meanwhile waits, and then matches the file.
            for job in lanes.sweep() {
                self.write_dead_letter(&job, SHUTDOWN_REASON, SHUTDOWN_CLASS);
            }
        }
        self.wake.notify_one();
        let _ = dispatcher.await;
        // Deliveries in flight and retries waiting see the deadline at once
        // and dead-letter their events themselves.
        if tokio::time::timeout(DEADLINE_GRACE, self.until_empty())
            .await
            .is_err()
        {
            error!(
                held = lock(&self.lanes).held,
                "events still held after the shutdown deadline"
            );
        }
        self.snapshot()
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
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use testkit::Reply;

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
        lanes.settle(&other, Stage::InFlight, Next::Delivered, &LIMITS);
        lanes.settle(&other, Stage::InFlight, Next::Delivered, &LIMITS);
        assert_eq!(next(&mut lanes), Some(202));
        assert_eq!(next(&mut lanes), None);
        // fastco's end: its lane is forgotten, and slowco's backlog takes
        // the freed slots beyond the reserve.
        lanes.settle(&fast, Stage::InFlight, Next::Delivered, &LIMITS);
        lanes.settle(&fast, Stage::InFlight, Next::Delivered, &LIMITS);
        assert!(!lanes.by_tenant.contains_key(&fast));
        assert_eq!((next(&mut lanes), next(&mut lanes)), (Some(3), Some(4)));
        assert_eq!(next(&mut lanes), None);
        assert_eq!((lanes.in_flight, lanes.held), (6, 101));
    }

    /// A bus delivering acme's events to `url`, `concurrency` at once,
    /// holding at most 10, dead letters appended to `file`.
    fn bus_to(url: &str, concurrency: usize, redelivery: Redelivery, file: &Path) -> Arc<Bus> {
        // One attempt per receive, and no breaker: every failure is the
        // bus's to retry.
        let env: HashMap<&str, &str> = HashMap::from([
            ("DELIVERY_ATTEMPTS", "1"),
            ("BREAKER_FAILURE_THRESHOLD", "1000"),
            ("BREAKER_FAILURE_RATE_PERCENT", "100"),
        ]);
        let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
        let mut config = connectors::Config::from_env(&shared::config::Env::new(lookup)).unwrap();
        config.allow_private_destinations = true;
        let record = testkit::TenantRecordBuilder::new("acme")
            .secret(testkit::VECTOR.secret)
            .destination(url, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .json();
        let store = MemoryTenantStore::from_json(&format!("[{record}]")).unwrap();
        let client = connectors::HttpDeliveryClient::new(config.client_options()).unwrap();
        let connector = Connector::new(
            store,
            client,
            &config,
            shared::telemetry::Metrics::off("connector"),
        );
        let limits = Limits {
            capacity: 10,
            tenant_capacity: 10,
            concurrency,
            per_destination: concurrency,
        };
        Arc::new(Bus::new(connector, limits, redelivery, Some(file)).unwrap())
    }

    /// `n` submissions of acme's, as ingest publishes them.
    fn entries(n: usize) -> Vec<BusEntry> {
        let ids = shared::event::SubmissionIds::default();
        (0..n)
            .map(|i| BusEntry {
                source: Arc::from("form-bridge"),
                detail_type: "form.submission",
                time: SystemTime::now(),
                detail: format!(
                    r#"{{"version":"1","submission_id":"{}","tenant_id":"acme","routing":"shared","received_at":"2026-01-01T00:00:00.000Z","content_type":"application/json","payload":{{"n":{i}}}}}"#,
                    ids.next(SystemTime::now())
                ),
            })
            .collect()
    }

    /// Whether the counts add up: every event accepted is in exactly one
    /// place.
    fn adds_up(s: &Snapshot) -> bool {
        s.accepted == s.delivered + s.dead_lettered + s.retrying + s.in_flight + s.queue_depth
    }

    /// Reads the bus's counts over and over, on another thread, until
    /// stopped; returns the snapshots that did not add up.
    fn watch_counts(bus: &Arc<Bus>) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<Snapshot>>) {
        let stop = Arc::new(AtomicBool::new(false));
        let (bus, stopped) = (Arc::clone(bus), Arc::clone(&stop));
        let sampler = std::thread::spawn(move || {
            let mut wrong = Vec::new();
            while !stopped.load(Relaxed) {
                let snapshot = bus.snapshot();
                if !adds_up(&snapshot) && wrong.len() < 10 {
                    wrong.push(snapshot);
                }
                std::thread::yield_now();
            }
            wrong
        });
        (stop, sampler)
    }

    /// The dead-letter file's lines, as JSON.
    fn dead_letters(file: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn scratch_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("formbridge-bus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        let _ = std::fs::remove_file(&file);
        file
    }

    async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
        for _ in 0..3_000 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_deadline_a_full_queue_is_dead_lettered_and_the_counts_add_up() {
        // One delivery at a time, to an endpoint that hangs: one event in
        // flight, nine queued, when the shutdown deadline comes.
        let endpoint =
            testkit::HttpServer::start(|_, _| Reply::json(200, "").after(Duration::from_secs(120)));
        let file = scratch_file("deadline.jsonl");
        let bus = bus_to(&endpoint.url(), 1, Redelivery::default(), &file);
        let (stop, sampler) = watch_counts(&bus);
        let dispatcher = tokio::spawn(Arc::clone(&bus).run());
        bus.publish(&entries(10)).unwrap();
        wait_for("the first delivery", || endpoint.requests().len() == 1).await;
        let last = bus.drain(Duration::from_millis(300), dispatcher).await;
        stop.store(true, Relaxed);
        assert_eq!(sampler.join().unwrap(), [], "counts that did not add up");
        assert_eq!(
            last,
            Snapshot {
                accepted: 10,
                dead_lettered: 10,
                ..Snapshot::default()
            }
        );
        assert_eq!(bus.snapshot(), last, "nothing moves after the drain");
        // The event in flight was received once; the queued ones never.
        let letters = dead_letters(&file);
        let mut receives: Vec<u64> = letters
            .iter()
            .map(|l| l["receives"].as_u64().unwrap())
            .collect();
        receives.sort_unstable();
        assert_eq!(receives, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(
            letters
                .iter()
                .all(|l| l["reason"] == "shutdown_timeout" && l["class"] == "shutdown")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retries_add_up_while_running_and_at_the_deadline() {
        // Every other answer a 503: events fail, wait, are received again;
        // the counts add up at every moment. Then the endpoint fails for
        // good and the retry delay is long: at the deadline events wait for
        // a retry, and are dead-lettered with the receives they had.
        let failing = Arc::new(AtomicBool::new(false));
        let endpoint = {
            let failing = Arc::clone(&failing);
            testkit::HttpServer::start(move |_, n| {
                if failing.load(Relaxed) || n % 2 == 0 {
                    Reply::json(503, "")
                } else {
                    Reply::json(200, "")
                }
            })
        };
        let file = scratch_file("retries.jsonl");
        let redelivery = Redelivery {
            max_receives: 1_000,
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        };
        let bus = bus_to(&endpoint.url(), 2, redelivery, &file);
        let (stop, sampler) = watch_counts(&bus);
        let dispatcher = tokio::spawn(Arc::clone(&bus).run());
        for round in 1..=5 {
            bus.publish(&entries(10)).unwrap();
            wait_for("every event delivered", || {
                bus.snapshot().delivered == 10 * round
            })
            .await;
        }
        failing.store(true, Relaxed);
        bus.publish(&entries(10)).unwrap();
        // Received and failed a few times each (the breaker may open: its
        // refusals are retried the same way).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let last = bus.drain(Duration::from_millis(200), dispatcher).await;
        stop.store(true, Relaxed);
        assert_eq!(sampler.join().unwrap(), [], "counts that did not add up");
        assert_eq!(
            (last.accepted, last.delivered, last.dead_lettered),
            (60, 50, 10)
        );
        assert!(
            adds_up(&last) && last.retrying + last.in_flight + last.queue_depth == 0,
            "{last:?}"
        );
        let letters = dead_letters(&file);
        assert_eq!(letters.len(), 10);
        assert!(
            letters.iter().all(|l| l["receives"].as_u64().unwrap() >= 1),
            "{letters:?}"
        );
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
