//! The DynamoDB adapter: one table that every execution environment shares.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::ErrorKind;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::InterceptorContext;
use aws_sdk_dynamodb::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::{
    Claim, Claims, DEFAULT_LEASE, IdempotencyError, IdempotencyKey, IdempotencyStore, Ticket,
    claim_one_by_one, distinct,
};

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
/// A claim's condition: no item, or one past its `expires_at`.
const CLAIM_CONDITION: &str = "attribute_not_exists(#pk) OR #expires_at <= :now";
/// The most actions one `TransactWriteItems` takes.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Items in a transaction that another transaction holds, or one
/// holding an item that a single write touches, are refused with a
/// `TransactionConflict` (docs/architecture.md, idempotency keys in
/// DynamoDB).
const TRANSACTION_CONFLICT: &str = "TransactionConflictException";

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
/// - [`claim_all`](IdempotencyStore::claim_all) of several keys is one
///   `TransactWriteItems` of those same conditional puts, each with
///   `ALL_OLD`: all are written or none. A cancelled transaction gives a
///   reason per key: a failed condition comes with the item that beat it,
///   read like a single claim's (a `GetItem` of that key only if the item
///   is missing); a `TransactionConflict` (another transaction on the key
///   at that moment) is [`Claims::InProgress`], so the sender's retry
///   gets the answer.
/// - [`complete`](IdempotencyStore::complete) is an `UpdateItem` on
///   condition that the item still carries the claim's token (or is gone),
///   [`release`](IdempotencyStore::release) a `DeleteItem` on condition of
///   the token: a request that outlived its lease never overwrites the
///   claim that came after it.
///
/// Every call is safe to send again, so the SDK's retries stay on: a claim
/// whose first attempt was written but whose answer was lost finds its own
/// token in the item and is still [`Claim::New`]. A transaction carries
/// its claim's token as its `ClientRequestToken` too, so DynamoDB answers
/// a retry of one that succeeded with success, and a service that ignores
/// the token (moto) cancels it on items that all hold the claim's own
/// token, which is a win as well. A single write that meets another
/// request's transaction on its item (`TransactionConflictException`) is
/// retried like a throttled one: the transaction ends within milliseconds.
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
            .retry_classifier(TransactionConflictIsTransient)
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

    /// The item a claim of `key` under `token` writes at `now`.
    fn claim_item(
        &self,
        key: &IdempotencyKey,
        token: u128,
        now: u64,
    ) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), blob(key.id())),
            (FINGERPRINT.to_owned(), blob(key.fingerprint())),
            (STATE.to_owned(), AttributeValue::S(CLAIMED.to_owned())),
            (TOKEN.to_owned(), blob(&token.to_be_bytes())),
            (
                EXPIRES_AT.to_owned(),
                number(now.saturating_add(self.lease.as_secs())),
            ),
        ])
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
            .set_item(Some(self.claim_item(key, token, now)))
            .condition_expression(CLAIM_CONDITION)
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
        match error.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(e)) => {
                self.beaten(key, e.item(), token, now).await
            }
            // Another request's transaction holds the key still, after the
            // SDK's retries: that request is in progress.
            Some(PutItemError::TransactionConflictException(_)) => Ok(Claim::InProgress),
            _ => Err(unavailable(&error)),
        }
    }

    /// What a claim of `key` whose condition failed finds: `item` as the
    /// answer returned it, else (an endpoint that ignores
    /// ReturnValuesOnConditionCheckFailure) as read now.
    async fn beaten(
        &self,
        key: &IdempotencyKey,
        item: Option<&HashMap<String, AttributeValue>>,
        token: u128,
        now: u64,
    ) -> Result<Claim, IdempotencyError> {
        match item {
            Some(item) => found(item, key, token, now),
            None => match self.get(key).await? {
                Some(item) => found(&item, key, token, now),
                // Gone since (released): the first request failed; ask
                // the sender to retry rather than loop here.
                None => Ok(Claim::InProgress),
            },
        }
    }

    /// One claim of every key in `keys` (distinct, 2 to 100 of them)
    /// under `token`, in one transaction (a retried claim reuses its
    /// token, which is also the transaction's `ClientRequestToken`).
    pub(crate) async fn claim_all_with(
        &self,
        keys: &[IdempotencyKey],
        token: u128,
    ) -> Result<Claims, IdempotencyError> {
        let now = self.now();
        let puts = keys
            .iter()
            .map(|key| {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(self.claim_item(key, token, now)))
                    .condition_expression(CLAIM_CONDITION)
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#expires_at", EXPIRES_AT)
                    .expression_attribute_values(":now", number(now))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .map_err(|e| {
                        IdempotencyError::Unavailable(format!("the claim could not be built: {e}"))
                    })?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect::<Result<Vec<_>, IdempotencyError>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(puts))
            .client_request_token(hex::encode(token.to_be_bytes()))
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claims::Won(tickets(keys, token))),
            Err(error) => error,
        };
        let reasons = match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                e.cancellation_reasons()
            }
            _ => return Err(unavailable(&error)),
        };
        if reasons.len() != keys.len() {
            return Err(IdempotencyError::Unavailable(
                "DynamoDB cancelled the claim without a reason per key".to_owned(),
            ));
        }
        self.cancelled(keys, reasons, token, now).await
    }

    /// What a cancelled claim of `keys` under `token` found, from the
    /// reasons DynamoDB gave (one per key, in key order): the refusal of
    /// the first key that is not free, or, if every key holds this claim's
    /// own token (a retry of a transaction that had succeeded, sent to a
    /// service that ignores `ClientRequestToken`), a win.
    async fn cancelled(
        &self,
        keys: &[IdempotencyKey],
        reasons: &[CancellationReason],
        token: u128,
        now: u64,
    ) -> Result<Claims, IdempotencyError> {
        let mut ours = Vec::new();
        let mut refused = None;
        for (key, reason) in keys.iter().zip(reasons) {
            let claim = match reason.code() {
                // Its condition held: it was free, and is not written.
                Some("None") | None => continue,
                Some("ConditionalCheckFailed") => self.beaten(key, reason.item(), token, now).await,
                Some("TransactionConflict") => Ok(Claim::InProgress),
                Some(code) => Err(IdempotencyError::Unavailable(format!(
                    "DynamoDB cancelled the claim: {code}"
                ))),
            };
            match claim.map(Claim::into_ticket) {
                Ok(Ok(ticket)) => ours.push(ticket),
                Ok(Err(refusal)) => {
                    refused = Some(Ok(refusal));
                    break;
                }
                Err(e) => {
                    refused = Some(Err(e));
                    break;
                }
            }
        }
        if refused.is_none() && ours.len() == keys.len() {
            return Ok(Claims::Won(ours));
        }
        // Some of this claim's own items with others free or refused: not
        // one transaction's outcome, but hold nothing, and let the sender
        // come back.
        for ticket in &ours {
            if let Err(e) = self.release(ticket).await {
                tracing::warn!(error = %e, "releasing a refused claim failed; it lapses with its lease");
            }
        }
        refused.unwrap_or(Ok(Claims::InProgress))
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

    async fn claim_all(&self, keys: &[IdempotencyKey]) -> Result<Claims, IdempotencyError> {
        let keys = match distinct(keys) {
            Ok(keys) => keys,
            Err(refused) => return Ok(refused),
        };
        match keys.as_slice() {
            [] => Ok(Claims::Won(Vec::new())),
            [key] => Ok(Claims::from(self.claim_with(key, new_token()?).await?)),
            keys if keys.len() <= MAX_TRANSACTION_ITEMS => {
                self.claim_all_with(keys, new_token()?).await
            }
            // More than a transaction takes: no request has that many.
            keys => claim_one_by_one(self, keys).await,
        }
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

/// A ticket of `token` per key, in key order.
fn tickets(keys: &[IdempotencyKey], token: u128) -> Vec<Ticket> {
    keys.iter().map(|key| Ticket::new(*key, token)).collect()
}

/// Retries a single write that met another request's transaction on its
/// item (`TransactionConflictException`), which the SDK does not retry by
/// itself: that transaction ends within milliseconds, and a completion
/// given up on would leave its key claimed until the lease ends. Retried
/// within the SDK's attempts (3) and the call's bound (2 s).
#[derive(Debug)]
struct TransactionConflictIsTransient;

impl ClassifyRetry for TransactionConflictIsTransient {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error
            .downcast_ref::<PutItemError>()
            .and_then(ProvideErrorMetadata::code)
            .or_else(|| {
                error
                    .downcast_ref::<UpdateItemError>()
                    .and_then(ProvideErrorMetadata::code)
            })
            .or_else(|| {
                error
                    .downcast_ref::<DeleteItemError>()
                    .and_then(ProvideErrorMetadata::code)
            });
        if code == Some(TRANSACTION_CONFLICT) {
            // Soon, not after the exponential backoff's second or more,
            // which would outlast the call's bound; with jitter, so that
            // two writers do not meet again.
            let delay = Duration::from_millis(fastrand::u64(10..=50));
            RetryAction::retryable_error_with_explicit_delay(ErrorKind::TransientError, delay)
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "TransactionConflictIsTransient"
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
