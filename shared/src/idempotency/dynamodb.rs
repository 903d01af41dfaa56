//! The DynamoDB adapter: one table that every execution environment shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Claim, DEFAULT_LEASE, IdempotencyError, IdempotencyKey, IdempotencyStore, Ticket};

/// The partition key: the hashed idempotency key.
pub(crate) const PK: &str = "pk";
const FINGERPRINT: &str = "fingerprint";
const STATE: &str = "state";
const TOKEN: &str = "claim_token";
/// The table's TTL attribute.
pub(crate) const EXPIRES_AT: &str = "expires_at";
const IDS: &str = "submission_ids";
const CLAIMED: &str = "claimed";
const DONE: &str = "done";

/// Where the store reads the time (epoch seconds go to DynamoDB).
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Keys in a DynamoDB table (`IDEMPOTENCY_TABLE`), shared by every Lambda
/// execution environment.
///
/// One item per key, partition key `pk` (binary, the hashed key):
///
/// | attribute | type | holds |
/// | --- | --- | --- |
/// | `pk` | B | [`IdempotencyKey::id`] (32 bytes) |
/// | `fingerprint` | B | [`IdempotencyKey::fingerprint`] (32 bytes) |
/// | `state` | S | `claimed`, then `done` |
/// | `claim_token` | B | the token of the claim that wrote it (16 random bytes) |
/// | `expires_at` | N | epoch seconds: the lease's end while `claimed`, the TTL's once `done` |
/// | `submission_ids` | L of S | the answer, in request order, once `done` |
///
/// Nothing else: no header value, signature or body is ever stored.
/// `expires_at` is the table's TTL attribute, so DynamoDB deletes old
/// answers and crashed claims by itself. It does so lazily (typically
/// within days), so every check here also treats an item past
/// `expires_at` as absent; a `claimed` item's `expires_at` being its lease
/// end, a lapsed claim is simply an expired item.
///
/// - [`claim`](IdempotencyStore::claim) is one conditional `PutItem`
///   (absent or expired) with `ReturnValuesOnConditionCheckFailure =
///   ALL_OLD`: the losing claim reads the item that beat it in the same
///   round trip ([`Claim::Replay`], [`Claim::Mismatch`] or
///   [`Claim::InProgress`]). Only if an answer lacks the item does a
///   strongly consistent `GetItem` follow.
/// - [`complete`](IdempotencyStore::complete) is an `UpdateItem` on
///   condition that the item still carries the claim's token (or is gone),
///   [`release`](IdempotencyStore::release) a `DeleteItem` on condition of
///   the token: a request that outlived its lease never overwrites the
///   claim that came after it.
///
/// Every call is safe to send again, so the SDK's retries stay on: a claim
/// whose first attempt was written but whose answer was lost finds its own
/// token in the item and is still [`Claim::New`].
#[derive(Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
    ttl: Duration,
    lease: Duration,
    clock: Clock,
}

impl std::fmt::Debug for DynamoDbIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbIdempotencyStore")
            .field("table", &self.table)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl DynamoDbIdempotencyStore {
    /// A store in `table` (a name or ARN) through `client`, replaying
    /// answers for `ttl`, with the default lease.
    pub fn new(client: Client, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            ttl,
            lease: DEFAULT_LEASE,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// A store with a client built from `sdk` (see
    /// [`crate::aws::sdk_config`]), bounded tighter than the other
    /// clients: every request waits on this store before it can be
    /// accepted, and DynamoDB answers in milliseconds, so an attempt gets
    /// 1 s and a call 2 s in all (retries included). A DynamoDB that hangs
    /// costs a request about 2 s per call, then a 503.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(1))
                    .operation_timeout(Duration::from_secs(2))
                    .build(),
            )
            .build();
        Self::new(Client::from_conf(config), table, ttl)
    }

    /// The table's name or ARN.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Runs the store on another clock (tests move time with it).
    #[cfg(test)]
    pub(crate) fn with_clock(
        mut self,
        clock: impl Fn() -> SystemTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn now(&self) -> u64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// One claim of `key` under `token` (a retried claim reuses its token).
    pub(crate) async fn claim_with(
        &self,
        key: &IdempotencyKey,
        token: u128,
    ) -> Result<Claim, IdempotencyError> {
        let now = self.now();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, blob(key.id()))
            .item(FINGERPRINT, blob(key.fingerprint()))
            .item(STATE, AttributeValue::S(CLAIMED.to_owned()))
            .item(TOKEN, blob(&token.to_be_bytes()))
            .item(EXPIRES_AT, number(now.saturating_add(self.lease.as_secs())))
            .condition_expression("attribute_not_exists(#pk) OR #expires_at <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":now", number(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::New(Ticket::new(*key, token))),
            Err(error) => error,
        };
        let existing = match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
            _ => return Err(unavailable(&error)),
        };
        let existing = match existing {
            Some(item) => item,
            // An answer without the item (an endpoint that ignores
            // ReturnValuesOnConditionCheckFailure): read it.
            None => match self.get(key).await? {
                Some(item) => item,
                // Gone since (released): the first request failed; ask
                // the sender to retry rather than loop here.
                None => return Ok(Claim::InProgress),
            },
        };
        found(&existing, key, token, now)
    }

    /// The item of `key`, strongly consistent.
    async fn get(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<HashMap<String, AttributeValue>>, IdempotencyError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, blob(key.id()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(output.item)
    }
}

impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn claim(&self, key: &IdempotencyKey) -> Result<Claim, IdempotencyError> {
        self.claim_with(key, new_token()?).await
    }

    async fn complete(
        &self,
        ticket: &Ticket,
        submission_ids: &[String],
    ) -> Result<(), IdempotencyError> {
        let key = ticket.key();
        let ids = submission_ids
            .iter()
            .map(|id| AttributeValue::S(id.clone()))
            .collect();
        let expires_at = self.now().saturating_add(self.ttl.as_secs());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, blob(key.id()))
            .update_expression(
                "SET #fingerprint = :fingerprint, #state = :done, #ids = :ids, \
                 #token = :token, #expires_at = :expires_at",
            )
            // Still this claim's, or gone (deleted by TTL after a long
            // lapse): then nobody else holds the key and the answer is kept.
            .condition_expression("attribute_not_exists(#pk) OR #token = :token")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#fingerprint", FINGERPRINT)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#ids", IDS)
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":fingerprint", blob(key.fingerprint()))
            .expression_attribute_values(":done", AttributeValue::S(DONE.to_owned()))
            .expression_attribute_values(":ids", AttributeValue::L(ids))
            .expression_attribute_values(":token", blob(&ticket.token().to_be_bytes()))
            .expression_attribute_values(":expires_at", number(expires_at))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Err(IdempotencyError::Lapsed)
                }
                _ => Err(unavailable(&error)),
            },
        }
    }

    async fn release(&self, ticket: &Ticket) -> Result<(), IdempotencyError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, blob(ticket.key().id()))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", TOKEN)
            .expression_attribute_values(":token", blob(&ticket.token().to_be_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                // Another claim's now (or gone): nothing of ours to release.
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(unavailable(&error)),
            },
        }
    }
}

/// What the item that beat a claim says.
fn found(
    item: &HashMap<String, AttributeValue>,
    key: &IdempotencyKey,
    token: u128,
    now: u64,
) -> Result<Claim, IdempotencyError> {
    let malformed =
        || IdempotencyError::Unavailable("an item of the table is malformed".to_owned());
    let bytes = |name: &str| match item.get(name) {
        Some(AttributeValue::B(b)) => Some(b.as_ref()),
        _ => None,
    };
    if bytes(TOKEN) == Some(&token.to_be_bytes()[..]) {
        // Our own claim, written by an attempt whose answer was lost.
        return Ok(Claim::New(Ticket::new(*key, token)));
    }
    let expires_at = match item.get(EXPIRES_AT) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| malformed())?,
        _ => return Err(malformed()),
    };
    if expires_at <= now {
        // The condition saw it live: it cannot be expired at the same
        // `now`; if it is, be careful and let the sender come back.
        return Ok(Claim::InProgress);
    }
    if bytes(FINGERPRINT).ok_or_else(malformed)? != key.fingerprint() {
        return Ok(Claim::Mismatch);
    }
    match item.get(STATE) {
        Some(AttributeValue::S(s)) if s == CLAIMED => Ok(Claim::InProgress),
        Some(AttributeValue::S(s)) if s == DONE => {
            let Some(AttributeValue::L(list)) = item.get(IDS) else {
                return Err(malformed());
            };
            let ids = list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Ok(s.clone()),
                    _ => Err(malformed()),
                })
                .collect::<Result<Arc<[String]>, _>>()?;
            Ok(Claim::Replay(ids))
        }
        _ => Err(malformed()),
    }
}

fn blob(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes))
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A claim's token: random, so no two claims anywhere share one.
fn new_token() -> Result<u128, IdempotencyError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| IdempotencyError::Unavailable(format!("no randomness: {e}")))?;
    Ok(u128::from_be_bytes(bytes))
}

/// What the request is told about a failed call: the status and error
/// code, or the kind of transport failure. Items hold hashes and IDs only,
/// so nothing secret can be in the service's message either.
fn unavailable<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> IdempotencyError {
    let why = match error {
        SdkError::ServiceError(e) => format!(
            "DynamoDB answered {}: {}",
            e.err().code().unwrap_or("an unknown error"),
            e.err().message().unwrap_or("no message")
        ),
        SdkError::TimeoutError(_) => "DynamoDB did not answer in time".to_owned(),
        SdkError::DispatchFailure(_) => "could not reach DynamoDB".to_owned(),
        SdkError::ResponseError(_) => "DynamoDB's answer could not be read".to_owned(),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
        _ => "unexpected SDK error".to_owned(),
    };
    IdempotencyError::Unavailable(why)
}
