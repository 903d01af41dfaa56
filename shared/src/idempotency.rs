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
        let printable = header.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if header.is_empty() || header.len() > MAX_HEADER_KEY_LEN || !printable {
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
    /// the oldest are dropped first.
    order: VecDeque<([u8; 32], u64)>,
    next_generation: u64,
}

impl Keys {
    /// Drops expired slots from the front, and the oldest while over
    /// `max_keys`.
    fn trim(&mut self, now: Instant, max_keys: usize) {
        while let Some(&(id, generation)) = self.order.front() {
            let current = self.slots.get(&id).filter(|s| s.generation == generation);
            match current {
                None => {}
                Some(slot) if slot.expires <= now || self.slots.len() > max_keys => {
                    self.slots.remove(&id);
                }
                Some(_) => break,
            }
            self.order.pop_front();
        }
    }
}

/// Keys kept in memory, for the local gateway and tests: at most
/// `max_keys`, the oldest dropped first (a replay older than that is
/// accepted again).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    ttl: Duration,
    lease: Duration,
    max_keys: usize,
    keys: Mutex<Keys>,
}

impl MemoryIdempotencyStore {
    /// A store replaying answers for `ttl`, holding at most `max_keys`
    /// keys, with the default lease.
    pub fn new(ttl: Duration, max_keys: usize) -> Self {
        Self {
            ttl,
            lease: DEFAULT_LEASE,
            max_keys: max_keys.max(1),
            keys: Mutex::new(Keys::default()),
        }
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
        keys.trim(now, self.max_keys);
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
        keys.slots.insert(
            key.id,
            Slot {
                fingerprint: key.fingerprint,
                state: State::Claimed,
                expires: later(now, self.lease),
                generation,
            },
        );
        keys.order.push_back((key.id, generation));
        keys.trim(now, self.max_keys);
        Claim::New
    }

    fn complete_now(&self, key: &IdempotencyKey, submission_ids: &[String]) {
        let now = Instant::now();
        let mut keys = self.lock();
        let expires = later(now, self.ttl);
        let done = State::Done(submission_ids.iter().cloned().collect());
        if let Some(slot) = keys.slots.get_mut(&key.id) {
            slot.state = done;
            slot.fingerprint = key.fingerprint;
            slot.expires = expires;
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
        keys.trim(now, self.max_keys);
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
        self.lock().slots.remove(&key.id);
        Ok(())
    }
}

/// `at + d`, saturating far in the future instead of overflowing.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
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
    async fn at_most_max_keys_are_held_the_oldest_dropped_first() {
        let store = MemoryIdempotencyStore::new(DEFAULT_TTL, 3);
        let keys: Vec<IdempotencyKey> = (0..5)
            .map(|i| IdempotencyKey::from_header(&tenant("acme"), &format!("k{i}"), b"{}").unwrap())
            .collect();
        for key in &keys {
            assert_eq!(store.claim(key).await.unwrap(), Claim::New);
            store.complete(key, &ids(&["s"])).await.unwrap();
        }
        assert_eq!(store.len(), 3);
        // The newest are replayed; the oldest were dropped.
        assert!(matches!(
            store.claim(&keys[4]).await.unwrap(),
            Claim::Replay(_)
        ));
        assert_eq!(store.claim(&keys[0]).await.unwrap(), Claim::New);
        assert_eq!(store.len(), 3);
    }
}
