//! The DynamoDB store: one table, items told apart by key prefix (see infra/TABLES.md and keys.rs).
//! Every state change that must happen once is a conditional write or a transaction; the sweeps
//! query an index by end date; TTL removes tokens, update ids, warnings and old notifications,
//! and reads treat an item past its expiry as gone. One file per role.

mod access;
mod audit;
mod bars;
mod codec;
mod import;
mod invoices;
mod jobs;
mod keys;
mod lifecycle;
mod notifications;
mod pace;
mod payments;
mod schema;
mod updates;
mod withdraw;

pub use pace::DynamoPace;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, PutRequest, TransactWriteItem, Update, WriteRequest};
use chrono::{DateTime, Utc};

use crate::domain::{Membership, Payment, TelegramUserId, TokenHash, TokenRecord, TokenStatus};
use crate::ports::{Envelope, StoreError};
use codec::*;

type Item = HashMap<String, AttributeValue>;

/// The three general-purpose indexes; each item type fills the ones its access patterns need.
pub const GSI: [&str; 3] = ["gsi1", "gsi2", "gsi3"];

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(fault)?;
        Ok(out.item)
    }

    /// A query on the table or an index, newest (highest sort key) first unless `forward`.
    async fn query(&self, q: Query<'_>) -> Result<Vec<Item>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(q.condition)
            .scan_index_forward(q.forward)
            .set_index_name(q.index.map(str::to_owned));
        for (k, v) in q.values {
            request = request.expression_attribute_values(k, v);
        }
        request = request.set_expression_attribute_names(aliases(&[q.condition]));
        if let Some(limit) = q.limit {
            request = request.limit(limit as i32);
        }
        let mut items = Vec::new();
        let mut start: Option<Item> = q.start;
        loop {
            let out = request.clone().set_exclusive_start_key(start.take()).send().await.map_err(fault)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if q.limit.is_none_or(|l| items.len() < l as usize) => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One transaction. Each call carries its own `ClientRequestToken`, so the SDK's retry of a
    /// transaction that did commit (its answer lost) is answered as a success, not as a failed
    /// condition. A `TransactionConflict` (another transaction on the same items, as on the hot
    /// counters) is tried again after a jittered pause; a failed condition is the caller's answer.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), Cancelled> {
        for attempt in 0..CONFLICT_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(jitter(attempt)).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(request_token()?)
                .send()
                .await;
            let Err(e) = result else { return Ok(()) };
            let reasons: Vec<String> = match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t)) => {
                    t.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_owned()).collect()
                }
                _ => return Err(Cancelled::Fault(fault(e))),
            };
            if reasons.iter().any(|c| c == "ConditionalCheckFailed") {
                return Err(Cancelled::Condition(reasons.iter().map(|c| c == "ConditionalCheckFailed").collect()));
            }
            if !reasons.iter().any(|c| c == "TransactionConflict") {
                return Err(Cancelled::Fault(fault(e)));
            }
            tracing::info!(attempt, "DynamoDB transaction conflict: trying again");
        }
        Err(Cancelled::Fault(StoreError::Unavailable("DynamoDB transactions kept conflicting".into())))
    }

    fn put(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(aliases(&[condition.unwrap_or_default()]));
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        Ok(TransactWriteItem::builder().put(put.build().map_err(fault)?).build())
    }

    /// A pending membership that will never start (its token expired or was replaced) → expired,
    /// on the ended-memberships index that reconciliation reads, however it ended.
    fn close_pending(
        &self,
        id: &crate::domain::MembershipId,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.update(
            (&keys::membership(id), "MEM"),
            "SET #status = :expired, ended_at = :now, end_reason = :why, gsi2pk = :g, gsi2sk = :now",
            Some("#status = :pending"),
            vec![
                (":expired", s("expired")),
                (":now", s(crate::adapters::stored::ts(now))),
                (":why", s(why)),
                (":pending", s("pending")),
                (":g", s(keys::memberships_by_status("expired"))),
            ],
        )
    }

    /// Puts of effect intents, for the transaction of the state change that decided them.
    fn intents(&self, intents: &[Envelope], now: DateTime<Utc>) -> Result<Vec<TransactWriteItem>, StoreError> {
        intents.iter().map(|e| self.put(intent_item(e, now)?, None, vec![])).collect()
    }

    fn update(
        &self,
        key: (&str, &str),
        expression: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(key.0))
            .key("sk", s(key.1))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(aliases(&[expression, condition.unwrap_or_default()]));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        Ok(TransactWriteItem::builder().update(update.build().map_err(fault)?).build())
    }

    fn delete(&self, key: (&str, &str)) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder().table_name(&self.table).key("pk", s(key.0)).key("sk", s(key.1));
        Ok(TransactWriteItem::builder().delete(delete.build().map_err(fault)?).build())
    }

    /// `ADD value :d` on a counter, as one item of a transaction (buckets expire with a TTL).
    fn bump(&self, name: &str, delta: i64, ttl: Option<DateTime<Utc>>) -> Result<TransactWriteItem, StoreError> {
        let key = keys::counter(name);
        match ttl {
            Some(t) => self.update(
                (&key, "COUNTER"),
                "ADD #v :d SET #ttl = :ttl",
                None,
                vec![(":d", n(delta)), (":ttl", n(t.timestamp()))],
            ),
            None => self.update((&key, "COUNTER"), "ADD #v :d", None, vec![(":d", n(delta))]),
        }
    }

    async fn token_record(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.get(&keys::token(hash), "TOKEN").await?.map(|i| token_from(&i)).transpose()
    }

    /// Does a token of the membership `item` other than `token` keep it waiting for the join
    /// (bound, before its end)?
    async fn kept_waiting_by_another(
        &self,
        item: &Item,
        token: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        for other in codec::token_hashes(item).iter().filter(|h| *h != token.as_str()) {
            if self.token_record(other).await?.is_some_and(|o| o.status == TokenStatus::Bound && o.expires_at > now) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn membership_record(&self, id: &str) -> Result<Option<Membership>, StoreError> {
        self.get(&keys::membership(id), "MEM").await?.map(|i| membership_from(&i)).transpose()
    }

    /// Up to 25 writes in one `BatchWriteItem`, asking again for what it leaves unprocessed.
    async fn write_batch(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut pending = Some(HashMap::from([(self.table.clone(), requests)]));
        for attempt in 0u32.. {
            let Some(items) = pending.take().filter(|p| p.values().any(|v| !v.is_empty())) else { return Ok(()) };
            if attempt >= 8 {
                return Err(StoreError::Unavailable("DynamoDB kept leaving writes unprocessed".into()));
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            let out = self.client.batch_write_item().set_request_items(Some(items)).send().await.map_err(fault)?;
            pending = out.unprocessed_items;
        }
        Ok(())
    }

    /// Keeps which account each @username last named (`USERNAME#<lowercase>`), for support's
    /// search. A search aid, written after the memberships' own writes and outside them: if it
    /// fails, the memberships stand and the search by username misses them (logged).
    async fn remember_usernames(&self, named: &[(&str, TelegramUserId)]) {
        for chunk in named.chunks(25) {
            let mut requests = Vec::with_capacity(chunk.len());
            for (username, account) in chunk {
                let item = HashMap::from([
                    ("pk".to_owned(), s(keys::username(username.to_lowercase()))),
                    ("sk".to_owned(), s("USERNAME")),
                    ("telegram_user_id".to_owned(), n(account.get())),
                ]);
                match PutRequest::builder().set_item(Some(item)).build() {
                    Ok(put) => requests.push(WriteRequest::builder().put_request(put).build()),
                    Err(e) => tracing::warn!(error = %e, "a @username the search cannot keep"),
                }
            }
            if let Err(e) = self.write_batch(requests).await {
                tracing::warn!(error = %e, "could not keep accounts' @usernames for the console's search");
            }
        }
    }

    async fn remember_username(&self, username: Option<&str>, account: TelegramUserId) {
        if let Some(username) = username.filter(|u| !u.is_empty()) {
            self.remember_usernames(&[(username, account)]).await;
        }
    }

    async fn payment_record(&self, id: &str) -> Result<Option<Payment>, StoreError> {
        self.get(&keys::payment(id), "PAY").await?.map(|i| payment_from(&i)).transpose()
    }
}

enum Cancelled {
    /// Which items' conditions failed, in order.
    Condition(Vec<bool>),
    Fault(StoreError),
}

impl From<StoreError> for Cancelled {
    fn from(e: StoreError) -> Self {
        Self::Fault(e)
    }
}

struct Query<'a> {
    index: Option<&'a str>,
    condition: &'a str,
    values: Vec<(&'a str, AttributeValue)>,
    forward: bool,
    limit: Option<u32>,
    /// Where to go on from: the keys of the last item of the page before.
    start: Option<Item>,
}

impl<'a> Query<'a> {
    fn on(index: Option<&'a str>, condition: &'a str, values: Vec<(&'a str, AttributeValue)>) -> Self {
        Self { index, condition, values, forward: false, limit: None, start: None }
    }
    fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
    fn oldest_first(mut self) -> Self {
        self.forward = true;
        self
    }
    fn start(mut self, keys: Item) -> Self {
        self.start = Some(keys);
        self
    }
}

/// Attribute names that are reserved words in DynamoDB expressions get a `#` alias.
const ALIASES: [(&str, &str); 6] =
    [("#status", "status"), ("#ttl", "ttl"), ("#v", "value"), ("#read", "read"), ("#name", "name"), ("#days", "days")];

fn aliases(expressions: &[&str]) -> Option<HashMap<String, String>> {
    let used: HashMap<String, String> = ALIASES
        .iter()
        .filter(|(alias, _)| {
            expressions
                .iter()
                .any(|e| e.split(|c: char| !(c.is_alphanumeric() || c == '#' || c == '_')).any(|w| w == *alias))
        })
        .map(|(a, n)| (a.to_string(), n.to_string()))
        .collect();
    (!used.is_empty()).then_some(used)
}

fn fault<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(crate::ports::Cause::with("DynamoDB", e))
}

fn is_condition<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException")
}

/// Whether a conditional write was made (`false`: its condition did not hold); any other error
/// is a fault.
fn held<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition(&e) => Ok(false),
        Err(e) => Err(fault(e)),
    }
}

/// Tries of a transaction that meets `TransactionConflict`.
const CONFLICT_RETRIES: u32 = 6;

/// A random pause, growing with the attempt: 0–20 ms, 0–40 ms, … (full jitter).
fn jitter(attempt: u32) -> std::time::Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map(|()| u16::from_le_bytes(b)).unwrap_or(u16::MAX / 2);
    let cap_ms = 10u64 << attempt.min(6);
    std::time::Duration::from_millis(u64::from(r) % cap_ms.max(1))
}

/// A `ClientRequestToken`: 128 random bits in hex (DynamoDB allows 1–36 characters).
fn request_token() -> Result<String, Cancelled> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Cancelled::Fault(StoreError::Unavailable(format!("random source: {e}").into())))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
