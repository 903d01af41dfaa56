//! Each submission accepted once: idempotency keys and where they are kept.
//!
//! Senders retry, and attackers replay: the same signed request sent again
//! inside the replay window must not become a second submission with a
//! second `webhook-id`. Every accepted request has one or more keys
//! ([`IdempotencyKey`]), docs/protocol.md, section 10:
//!
//! - the `Idempotency-Key` header when present, scoped to the tenant, with
//!   the body's digest as its fingerprint, so the same key with another
//!   body is told apart ([`Claim::Mismatch`]);
//! - on the submissions route, always, the signed identity (timestamp,
//!   tenant and `Content-Digest`, which binds the body);
//! - on a source route, always, what the provider signed, and its event ID
//!   when it gives one (in the body, or a header the signature covers).
//!
//! A request first [claims](IdempotencyStore::claim) its key: the first
//! claim wins ([`Claim::New`], with a [`Ticket`]) and must end with
//! [`complete`](IdempotencyStore::complete) (the answer is kept for the
//! TTL and replayed) or [`release`](IdempotencyStore::release) (it failed,
//! so a retry may succeed). A claim that is neither completed nor released
//! within the lease (a crashed process) lapses, so a retry is not blocked
//! for the whole TTL. The ticket carries a token of that one claim:
//! completing or releasing acts only on the claim that token won, so a
//! request that outlived its lease can never overwrite the answer of the
//! request that claimed the key after it ([`IdempotencyError::Lapsed`]).
//!
//! A request with several keys (an `Idempotency-Key` beside the signed
//! identity; a provider's event ID beside what it signed) claims them all
//! at once with [`claim_all`](IdempotencyStore::claim_all): all won
//! ([`Claims::Won`]) or none held, so two copies of a request can never
//! split its keys between them, each see the other's claim and neither be
//! accepted.
//!
//! Keys are stored hashed (SHA-256, domain-separated): a store never holds
//! a header value, a signature or a body. [`MemoryIdempotencyStore`] is the
//! local gateway's (and tests'): bounded, newest kept.
//! `DynamoDbIdempotencyStore` (the `aws` feature) is the one a deployed
//! stack uses: one table shared by every Lambda execution environment,
//! one conditional write for a request's one key, one transaction of them
//! for several.
//! Both pass the same tests.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::later;
use crate::tenant_id::TenantId;

#[cfg(feature = "aws")]
mod dynamodb;
#[cfg(test)]
mod tests;

#[cfg(feature = "aws")]
pub use dynamodb::DynamoDbIdempotencyStore;

/// How long an accepted request's answer is replayed by default
/// (`IDEMPOTENCY_TTL_SECONDS`): a day.
pub const DEFAULT_TTL: Duration = Duration::from_secs(86_400);

/// How long a claim holds before it lapses if the request never ends
/// (longer than any request may take).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The longest `Idempotency-Key` header accepted.
pub const MAX_HEADER_KEY_LEN: usize = 255;

/// A request's idempotency key and its body's fingerprint, both hashed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyKey {
    id: [u8; 32],
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdempotencyKey({})", hex::encode(&self.id[..6]))
    }
}

/// Why an `Idempotency-Key` header cannot be a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty, longer than 255 characters, or not printable ASCII.
    #[error("Idempotency-Key must be 1 to 255 printable ASCII characters")]
    Invalid,
}

impl IdempotencyKey {
    /// From an `Idempotency-Key` header, scoped to `tenant`; `body` is the
    /// raw request body, so that reusing the key for another body is seen.
    pub fn from_header(tenant: &TenantId, header: &str, body: &[u8]) -> Result<Self, KeyError> {
        if !valid_header_key(header) {
            return Err(KeyError::Invalid);
        }
        Ok(Self {
            id: hash(&[b"header", tenant.as_str().as_bytes(), header.as_bytes()]),
            fingerprint: hash(&[b"body", body]),
        })
    }

    /// From the submissions route's signed identity: the
    /// `X-FormBridge-Timestamp` and `Content-Digest` headers as sent. The
    /// digest binds the body, so the fingerprint is the key itself.
    pub fn from_signed_identity(tenant: &TenantId, timestamp: &str, content_digest: &str) -> Self {
        let id = hash(&[
            b"signed",
            timestamp.as_bytes(),
            tenant.as_str().as_bytes(),
            content_digest.as_bytes(),
        ]);
        Self {
            id,
            fingerprint: id,
        }
    }

    /// From a provider's event or delivery ID on a source route. The ID
    /// alone is the fingerprint: a provider sends the same event again
    /// with bytes that may differ (HubSpot's `attemptNumber`, a Jotform
    /// submission edited), and it is still the same event, answered with
    /// its first answer, never 422.
    pub fn from_event_id(tenant: &TenantId, source: &str, event_id: &str) -> Self {
        let id = hash(&[
            b"event",
            tenant.as_str().as_bytes(),
            source.as_bytes(),
            event_id.as_bytes(),
        ]);
        Self {
            id,
            fingerprint: id,
        }
    }

    /// From what a source's provider signed: the signed timestamp, if any,
    /// and the body; with the event's type when a header names it (Shopify
    /// sends `orders/create` and `orders/updated` for a new order, with
    /// bodies that can be identical: they are two events). Canonical: no
    /// rewording of the signature header changes it, and a new key needs a
    /// new signature, which needs the secret (or, for the type, which is
    /// not signed, a captured body sent under another type).
    pub fn from_signed_content(
        tenant: &TenantId,
        source: &str,
        signed_timestamp: Option<i64>,
        event_type: Option<&str>,
        body: &[u8],
    ) -> Self {
        let timestamp = signed_timestamp.map(i64::to_be_bytes);
        let id = hash(&[
            b"signed content",
            tenant.as_str().as_bytes(),
            source.as_bytes(),
            timestamp.as_ref().map_or(&[][..], |t| &t[..]),
            event_type.unwrap_or_default().as_bytes(),
            body,
        ]);
        Self {
            id,
            fingerprint: id,
        }
    }

    /// The hashed key, as stores keep it (32 bytes).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The hashed fingerprint of what the key stands for (32 bytes).
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
}

/// Whether `key` may be an `Idempotency-Key`: 1 to 255 printable ASCII
/// characters.
pub fn valid_header_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_HEADER_KEY_LEN
        && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Whether `table` may name a DynamoDB table (`IDEMPOTENCY_TABLE`): a
/// name of 3 to 255 characters of `A-Z a-z 0-9 _ . -`, or a table ARN
/// (`arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`, at most 1,024
/// characters), which DynamoDB's item calls also take.
pub fn valid_table_name(table: &str) -> bool {
    let name_ok = |name: &str| {
        (3..=255).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    if !table.starts_with("arn:") {
        return name_ok(table);
    }
    let parts: Vec<&str> = table.splitn(6, ':').collect();
    table.len() <= 1024
        && parts.len() == 6
        && !parts[1].is_empty()
        && parts[2] == "dynamodb"
        && parts[5].strip_prefix("table/").is_some_and(name_ok)
}

/// SHA-256 over length-prefixed parts, under a version tag: no two
/// different lists of parts hash alike.
fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"form-bridge idempotency v1");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// A won claim: what completing or releasing its key needs. The token
/// names this one claim, so that only the request that won it settles it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    key: IdempotencyKey,
    token: u128,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({:?})", self.key)
    }
}

impl Ticket {
    /// The ticket of a claim of `key` that a store told apart from every
    /// other claim of it by `token` (for store implementations).
    pub fn new(key: IdempotencyKey, token: u128) -> Self {
        Self { key, token }
    }

    /// The claimed key.
    pub fn key(&self) -> &IdempotencyKey {
        &self.key
    }

    /// The claim's token.
    pub fn token(&self) -> u128 {
        self.token
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The first: process the request, then complete or release the key
    /// with this ticket.
    New(Ticket),
    /// Accepted before, within the TTL: answer with these submission IDs
    /// again and publish nothing.
    Replay(Arc<[String]>),
    /// The key was used for a different body (422).
    Mismatch,
    /// The first request with this key is still being processed (409).
    InProgress,
}

impl Claim {
    /// The ticket of a won claim, or the refusal it is.
    fn into_ticket(self) -> Result<Ticket, Claims> {
        match self {
            Self::New(ticket) => Ok(ticket),
            refused => Err(Claims::from(refused)),
        }
    }
}

/// What claiming all of a request's keys at once found
/// ([`IdempotencyStore::claim_all`]): every key won, or none held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claims {
    /// Every key was new and is now held: process the request, then
    /// complete or release each ticket. One ticket per distinct key, in
    /// the order the keys were given.
    Won(Vec<Ticket>),
    /// A key was accepted before, within the TTL: answer with these
    /// submission IDs again and publish nothing. No key is held.
    Replay(Arc<[String]>),
    /// A key was used for a different body (422). No key is held.
    Mismatch,
    /// The first request with a key is still being processed (409). No
    /// key is held.
    InProgress,
}

impl From<Claim> for Claims {
    /// One key's claim, as a claim of all (one) keys.
    fn from(claim: Claim) -> Self {
        match claim {
            Claim::New(ticket) => Self::Won(vec![ticket]),
            Claim::Replay(ids) => Self::Replay(ids),
            Claim::Mismatch => Self::Mismatch,
            Claim::InProgress => Self::InProgress,
        }
    }
}

/// `keys` without repeats, in order: a key given twice is claimed once.
/// The same key given with two fingerprints is a mismatch.
fn distinct(keys: &[IdempotencyKey]) -> Result<Vec<IdempotencyKey>, Claims> {
    let mut distinct: Vec<IdempotencyKey> = Vec::with_capacity(keys.len());
    for key in keys {
        match distinct.iter().find(|k| k.id == key.id) {
            None => distinct.push(*key),
            Some(k) if k.fingerprint == key.fingerprint => {}
            Some(_) => return Err(Claims::Mismatch),
        }
    }
    Ok(distinct)
}

/// Claims `keys` one after another, in the order given, and releases what
/// it won at the first refusal or failure: all or nothing for a store
/// that cannot claim several keys at once. Two requests with the same
/// keys in the same order never split them, since whichever claims the
/// first key first is the only one that goes on.
async fn claim_one_by_one<S: IdempotencyStore + ?Sized>(
    store: &S,
    keys: &[IdempotencyKey],
) -> Result<Claims, IdempotencyError> {
    let keys = match distinct(keys) {
        Ok(keys) => keys,
        Err(refused) => return Ok(refused),
    };
    let mut won = Vec::with_capacity(keys.len());
    for key in &keys {
        let refused = match store.claim(key).await.map(Claim::into_ticket) {
            Ok(Ok(ticket)) => {
                won.push(ticket);
                continue;
            }
            Ok(Err(refused)) => Ok(refused),
            Err(e) => Err(e),
        };
        release_all(store, &won).await;
        return refused;
    }
    Ok(Claims::Won(won))
}

/// Releases the tickets of a request that was refused, at once. A release
/// that fails leaves its claim to lapse with the lease.
async fn release_all<S: IdempotencyStore + ?Sized>(store: &S, tickets: &[Ticket]) {
    for released in join_all(tickets.iter().map(|t| store.release(t))).await {
        if let Err(e) = released {
            tracing::warn!(error = %e, "releasing a refused request's claim failed; it lapses with its lease");
        }
    }
}

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdempotencyError {
    /// The backing service failed or timed out.
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
    /// The claim had lapsed and the key was claimed again meanwhile: the
    /// newer claim's outcome is kept, this answer is not.
    #[error("the claim lapsed and the key was claimed again; its answer was not kept")]
    Lapsed,
}

/// Where idempotency keys are kept.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key`: [`Claim::New`] for the first request, else what the
    /// first one left.
    fn claim(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Claim, IdempotencyError>> + Send;

    /// Claims every key of one request, all or nothing:
    /// [`Claims::Won`] with a ticket per distinct key when each one's
    /// [`claim`](Self::claim) would be new, else the refusal of the first
    /// key in the order given that is not new ([`Claims::Replay`],
    /// [`Claims::Mismatch`] or [`Claims::InProgress`]), with no key held.
    /// On an error no key is held either, except a claim the store wrote
    /// but could not confirm, which lapses with its lease.
    ///
    /// Two requests sharing a key never both win it, and never split the
    /// keys between them (each would then be refused by the other's
    /// claim). The default claims one key after another in the order
    /// given and releases what it won on a refusal: one round trip per
    /// key for a remote store. Stores that can do better claim all at
    /// once.
    fn claim_all(
        &self,
        keys: &[IdempotencyKey],
    ) -> impl Future<Output = Result<Claims, IdempotencyError>> + Send {
        claim_one_by_one(self, keys)
    }

    /// The request holding `ticket` was accepted with these submission
    /// IDs: replay them for the TTL. [`IdempotencyError::Lapsed`] when
    /// another claim of the key came after this one's lease ended.
    fn complete(
        &self,
        ticket: &Ticket,
        submission_ids: &[String],
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;

    /// The request holding `ticket` failed: a retry may succeed. A claim
    /// that was taken over meanwhile is left alone.
    fn release(&self, ticket: &Ticket)
    -> impl Future<Output = Result<(), IdempotencyError>> + Send;
}

#[derive(Debug)]
enum State {
    Claimed,
    Done(Arc<[String]>),
}

#[derive(Debug)]
struct Slot {
    fingerprint: [u8; 32],
    state: State,
    expires: Instant,
    /// Matches the `order` entry that stands for this slot, and is the
    /// token of the claim that made it.
    generation: u64,
}

#[derive(Debug, Default)]
struct Keys {
    slots: HashMap<[u8; 32], Slot>,
    /// Keys in the order they were claimed, with their slot's generation:
    /// the oldest are dropped first. Entries of released or re-claimed
    /// slots go stale and are skipped.
    order: VecDeque<([u8; 32], u64)>,
    next_generation: u64,
    /// What the slots weigh: a key and each submission ID it answers with
    /// count one each.
    weight: usize,
}

/// What a slot counts against the bound: one, plus its answer's IDs (a
/// batch of 100 weighs 101).
fn weight(state: &State) -> usize {
    match state {
        State::Claimed => 1,
        State::Done(ids) => 1 + ids.len(),
    }
}

impl Keys {
    /// What a live slot of `key` refuses a claim with, if there is one.
    fn refusal(&self, key: &IdempotencyKey, now: Instant) -> Option<Claim> {
        let slot = self.slots.get(&key.id).filter(|s| now < s.expires)?;
        if slot.fingerprint != key.fingerprint {
            return Some(Claim::Mismatch);
        }
        Some(match &slot.state {
            State::Claimed => Claim::InProgress,
            State::Done(ids) => Claim::Replay(Arc::clone(ids)),
        })
    }

    /// Claims `key` until `expires`, over any expired slot of it.
    fn insert_claim(&mut self, key: &IdempotencyKey, expires: Instant) -> Ticket {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.remove(&key.id);
        self.slots.insert(
            key.id,
            Slot {
                fingerprint: key.fingerprint,
                state: State::Claimed,
                expires,
                generation,
            },
        );
        self.weight += 1;
        self.order.push_back((key.id, generation));
        Ticket::new(*key, u128::from(generation))
    }

    fn remove(&mut self, id: &[u8; 32]) {
        if let Some(slot) = self.slots.remove(id) {
            self.weight -= weight(&slot.state);
        }
    }

    /// Drops expired slots from the front, and the oldest while over
    /// `max_weight`; compacts the order when stale entries pile up.
    fn trim(&mut self, now: Instant, max_weight: usize) {
        while let Some(&(id, generation)) = self.order.front() {
            let current = self.slots.get(&id).filter(|s| s.generation == generation);
            match current {
                None => {}
                Some(slot) if slot.expires <= now || self.weight > max_weight => {
                    self.remove(&id);
                }
                Some(_) => break,
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.slots.len().max(1024) {
            let slots = &self.slots;
            self.order
                .retain(|(id, g)| slots.get(id).is_some_and(|s| s.generation == *g));
        }
    }
}

/// Keys kept in memory, for the local gateway and tests, bounded by
/// weight: each key counts one, plus one per submission ID of its answer
/// (about 100 bytes each); the oldest are dropped first (a replay older
/// than that is accepted again).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    ttl: Duration,
    lease: Duration,
    max_weight: usize,
    keys: Mutex<Keys>,
}

impl MemoryIdempotencyStore {
    /// A store replaying answers for `ttl`, holding keys and answers of
    /// at most `max_weight` (a key counts one, plus one per submission
    /// ID), with the default lease.
    pub fn new(ttl: Duration, max_weight: usize) -> Self {
        Self {
            ttl,
            lease: DEFAULT_LEASE,
            max_weight: max_weight.max(1),
            keys: Mutex::new(Keys::default()),
        }
    }

    /// What the held keys weigh (see [`MemoryIdempotencyStore`]).
    pub fn weight(&self) -> usize {
        self.lock().weight
    }

    /// Keys held now (expired ones may still count until trimmed).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // Every change under the lock is complete before it is released.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn claim_now(&self, key: &IdempotencyKey) -> Claim {
        let now = Instant::now();
        let mut keys = self.lock();
        keys.trim(now, self.max_weight);
        if let Some(refused) = keys.refusal(key, now) {
            return refused;
        }
        let ticket = keys.insert_claim(key, later(now, self.lease));
        keys.trim(now, self.max_weight);
        Claim::New(ticket)
    }

    /// Every key checked, then every key claimed, under one lock: no other
    /// claim comes between, so nothing is ever held on a refusal.
    fn claim_all_now(&self, keys: &[IdempotencyKey]) -> Claims {
        let distinct = match distinct(keys) {
            Ok(keys) => keys,
            Err(refused) => return refused,
        };
        let now = Instant::now();
        let mut held = self.lock();
        held.trim(now, self.max_weight);
        if let Some(refused) = distinct.iter().find_map(|key| held.refusal(key, now)) {
            return Claims::from(refused);
        }
        let expires = later(now, self.lease);
        let tickets = distinct
            .iter()
            .map(|key| held.insert_claim(key, expires))
            .collect();
        held.trim(now, self.max_weight);
        Claims::Won(tickets)
    }

    fn complete_now(
        &self,
        ticket: &Ticket,
        submission_ids: &[String],
    ) -> Result<(), IdempotencyError> {
        let now = Instant::now();
        let key = ticket.key();
        let mut keys = self.lock();
        let expires = later(now, self.ttl);
        let done = State::Done(submission_ids.iter().cloned().collect());
        let added = weight(&done);
        if let Some(slot) = keys.slots.get_mut(&key.id) {
            if u128::from(slot.generation) != ticket.token() {
                return Err(IdempotencyError::Lapsed);
            }
            let before = weight(&slot.state);
            slot.state = done;
            slot.fingerprint = key.fingerprint;
            slot.expires = expires;
            keys.weight = keys.weight - before + added;
            keys.trim(now, self.max_weight);
            return Ok(());
        }
        // Dropped meanwhile (over the bound): keep the answer anyway.
        let generation = keys.next_generation;
        keys.next_generation += 1;
        keys.slots.insert(
            key.id,
            Slot {
                fingerprint: key.fingerprint,
                state: done,
                expires,
                generation,
            },
        );
        keys.weight += added;
        keys.order.push_back((key.id, generation));
        keys.trim(now, self.max_weight);
        Ok(())
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &IdempotencyKey) -> Result<Claim, IdempotencyError> {
        Ok(self.claim_now(key))
    }

    async fn claim_all(&self, keys: &[IdempotencyKey]) -> Result<Claims, IdempotencyError> {
        Ok(self.claim_all_now(keys))
    }

    async fn complete(
        &self,
        ticket: &Ticket,
        submission_ids: &[String],
    ) -> Result<(), IdempotencyError> {
        self.complete_now(ticket, submission_ids)
    }

    async fn release(&self, ticket: &Ticket) -> Result<(), IdempotencyError> {
        let id = ticket.key().id();
        let mut keys = self.lock();
        let ours = keys
            .slots
            .get(id)
            .is_some_and(|s| u128::from(s.generation) == ticket.token());
        if ours {
            // Its `order` entry goes stale and is skipped when trimmed.
            keys.remove(id);
        }
        Ok(())
    }
}
