//! Each submission accepted once: idempotency keys and where they are kept.
//!
//! Senders retry, and attackers replay: the same signed request sent again
//! inside the replay window must not become a second submission with a
//! second `webhook-id`. Every accepted request has a key ([`IdempotencyKey`]):
//!
//! - the `Idempotency-Key` header when present, scoped to the tenant, with
//!   the body's digest as its fingerprint, so the same key with another
//!   body is told apart ([`Claim::Mismatch`]);
//! - else, on the submissions route, the signed identity (timestamp, tenant
//!   and `Content-Digest`, which binds the body);
//! - else, on a source route, the provider's event or delivery ID.
//!
//! A request first [claims](IdempotencyStore::claim) its key: the first
//! claim wins ([`Claim::New`]) and must end with
//! [`complete`](IdempotencyStore::complete) (the answer is kept for the
//! TTL and replayed) or [`release`](IdempotencyStore::release) (it failed,
//! so a retry may succeed). A claim that is neither completed nor released
//! within the lease (a crashed process) lapses, so a retry is not blocked
//! for the whole TTL.
//!
//! Keys are stored hashed (SHA-256, domain-separated): a store never holds
//! a header value, a signature or a body. [`MemoryIdempotencyStore`] is the
//! local gateway's (and tests'): bounded, newest kept.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::later;
use crate::tenant_id::TenantId;

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

    /// From a provider's event or delivery ID on a source route; `body` is
    /// the raw request body.
    pub fn from_event_id(tenant: &TenantId, source: &str, event_id: &str, body: &[u8]) -> Self {
        Self {
            id: hash(&[
                b"event",
                tenant.as_str().as_bytes(),
                source.as_bytes(),
                event_id.as_bytes(),
            ]),
            fingerprint: hash(&[b"body", body]),
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

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The first: process the request, then complete or release the key.
    New,
    /// Accepted before, within the TTL: answer with these submission IDs
    /// again and publish nothing.
    Replay(Arc<[String]>),
    /// The key was used for a different body (422).
    Mismatch,
    /// The first request with this key is still being processed (409).
    InProgress,
}

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IdempotencyError {
    /// The backing service failed or timed out.
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
}

/// Where idempotency keys are kept.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key`: [`Claim::New`] for the first request, else what the
    /// first one left.
    fn claim(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Claim, IdempotencyError>> + Send;

    /// The request that claimed `key` was accepted with these submission
    /// IDs: replay them for the TTL.
    fn complete(
        &self,
        key: &IdempotencyKey,
        submission_ids: &[String],
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;

    /// The request that claimed `key` failed: a retry may succeed.
    fn release(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<(), IdempotencyError>> + Send;
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
    /// Matches the `order` entry that stands for this slot.
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
        if let Some(slot) = keys.slots.get(&key.id).filter(|s| now < s.expires) {
            if slot.fingerprint != key.fingerprint {
                return Claim::Mismatch;
            }
            return match &slot.state {
                State::Claimed => Claim::InProgress,
                State::Done(ids) => Claim::Replay(Arc::clone(ids)),
            };
        }
        let generation = keys.next_generation;
        keys.next_generation += 1;
        keys.remove(&key.id);
        keys.slots.insert(
            key.id,
            Slot {
                fingerprint: key.fingerprint,
                state: State::Claimed,
                expires: later(now, self.lease),
                generation,
            },
        );
        keys.weight += 1;
        keys.order.push_back((key.id, generation));
        keys.trim(now, self.max_weight);
        Claim::New
    }

    fn complete_now(&self, key: &IdempotencyKey, submission_ids: &[String]) {
        let now = Instant::now();
        let mut keys = self.lock();
        let expires = later(now, self.ttl);
        let done = State::Done(submission_ids.iter().cloned().collect());
        let added = weight(&done);
        if let Some(slot) = keys.slots.get_mut(&key.id) {
            let before = weight(&slot.state);
            slot.state = done;
            slot.fingerprint = key.fingerprint;
            slot.expires = expires;
            keys.weight = keys.weight - before + added;
            keys.trim(now, self.max_weight);
            return;
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
        keys.order.push_back((key.id, generation));
        keys.trim(now, self.max_weight);
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(&self, key: &IdempotencyKey) -> Result<Claim, IdempotencyError> {
        Ok(self.claim_now(key))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        submission_ids: &[String],
    ) -> Result<(), IdempotencyError> {
        self.complete_now(key, submission_ids);
        Ok(())
    }

    async fn release(&self, key: &IdempotencyKey) -> Result<(), IdempotencyError> {
        // Its `order` entry goes stale and is skipped when trimmed.
        self.lock().remove(&key.id);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn header_keys_are_scoped_to_the_tenant_and_validated() {
        let body = b"{}";
        let a = IdempotencyKey::from_header(&tenant("acme"), "order-1", body).unwrap();
        let b = IdempotencyKey::from_header(&tenant("globex"), "order-1", body).unwrap();
        assert_ne!(a.id(), b.id());
        let other_body = IdempotencyKey::from_header(&tenant("acme"), "order-1", b"[]").unwrap();
        assert_eq!(a.id(), other_body.id());
        assert_ne!(a.fingerprint(), other_body.fingerprint());
        for bad in ["", "tab\there", "é", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::from_header(&tenant("acme"), bad, body),
                Err(KeyError::Invalid),
                "{bad:?}"
            );
        }
        assert!(IdempotencyKey::from_header(&tenant("acme"), &"k".repeat(255), body).is_ok());
        // The kinds never collide, and Debug shows no key material.
        let signed = IdempotencyKey::from_signed_identity(&tenant("acme"), "order-1", "");
        assert_ne!(signed.id(), a.id());
        assert!(!format!("{a:?}").contains("order-1"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_claim_wins_and_its_answer_is_replayed_for_the_ttl() {
        let store = MemoryIdempotencyStore::new(Duration::from_secs(3_600), 100);
        let key =
            IdempotencyKey::from_signed_identity(&tenant("acme"), "1700000000", "sha-256=:x:");
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
        // A duplicate while the first is being processed.
        assert_eq!(store.claim(&key).await.unwrap(), Claim::InProgress);
        store.complete(&key, &ids(&["s1", "s2"])).await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                store.claim(&key).await.unwrap(),
                Claim::Replay(ids(&["s1", "s2"]).into())
            );
        }
        tokio::time::advance(Duration::from_secs(3_600)).await;
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reused_header_key_with_another_body_is_a_mismatch() {
        let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 100);
        let first = IdempotencyKey::from_header(&tenant("acme"), "k1", b"{\"a\":1}").unwrap();
        let second = IdempotencyKey::from_header(&tenant("acme"), "k1", b"{\"a\":2}").unwrap();
        assert_eq!(store.claim(&first).await.unwrap(), Claim::New);
        assert_eq!(store.claim(&second).await.unwrap(), Claim::Mismatch);
        store.complete(&first, &ids(&["s1"])).await.unwrap();
        assert_eq!(store.claim(&second).await.unwrap(), Claim::Mismatch);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_key_and_a_lapsed_claim_may_be_claimed_again() {
        let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 100);
        let key = IdempotencyKey::from_event_id(&tenant("acme"), "stripe-main", "evt_1", b"{}");
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
        store.release(&key).await.unwrap();
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
        // Never completed nor released (a crash): blocked for the lease only.
        tokio::time::advance(DEFAULT_LEASE - Duration::from_secs(1)).await;
        assert_eq!(store.claim(&key).await.unwrap(), Claim::InProgress);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bound_counts_keys_and_their_ids_the_oldest_dropped_first() {
        // Each key below answers with one ID: it weighs 2; 6 hold three.
        let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 6);
        let keys: Vec<IdempotencyKey> = (0..5)
            .map(|i| IdempotencyKey::from_header(&tenant("acme"), &format!("k{i}"), b"{}").unwrap())
            .collect();
        for key in &keys {
            assert_eq!(store.claim(key).await.unwrap(), Claim::New);
            store.complete(key, &ids(&["s"])).await.unwrap();
        }
        assert_eq!((store.len(), store.weight()), (3, 6));
        // The newest are replayed; the oldest were dropped.
        assert!(matches!(
            store.claim(&keys[4]).await.unwrap(),
            Claim::Replay(_)
        ));
        assert_eq!(store.claim(&keys[0]).await.unwrap(), Claim::New);
        // A batch's answer weighs what its IDs do.
        let batch = IdempotencyKey::from_header(&tenant("acme"), "batch", b"[]").unwrap();
        assert_eq!(store.claim(&batch).await.unwrap(), Claim::New);
        store
            .complete(&batch, &ids(&["a", "b", "c", "d"]))
            .await
            .unwrap();
        assert_eq!(
            (store.len(), store.weight()),
            (2, 6),
            "k0 claimed (1) and the batch (5)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn released_keys_leave_no_garbage_behind() {
        let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 100_000);
        let keep = IdempotencyKey::from_header(&tenant("acme"), "kept", b"{}").unwrap();
        store.claim(&keep).await.unwrap();
        store.complete(&keep, &ids(&["s"])).await.unwrap();
        for i in 0..10_000 {
            let key =
                IdempotencyKey::from_header(&tenant("acme"), &format!("r{i}"), b"{}").unwrap();
            store.claim(&key).await.unwrap();
            store.release(&key).await.unwrap();
        }
        assert_eq!(store.len(), 1);
        assert!(
            store.lock().order.len() <= 2 * 1024 + 1,
            "{}",
            store.lock().order.len()
        );
    }
}
