//! The DynamoDB store: one table, items told apart by key prefix (see infra/TABLES.md).
//! Every state change that must happen once is a conditional write or a transaction; the sweeps
//! query an index by end date; TTL removes tokens, update ids, warnings and old notifications,
//! and reads treat an item past its expiry as gone.

use std::collections::HashMap;
use std::str::FromStr;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::domain::{
    AuditAction, AuditEntry, AuditId, Lang, Membership, MembershipId, MembershipStatus, Notification, NotificationId,
    NotificationKind, Payment, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
    extended_end,
};
use crate::ports::{
    AccessStore, Applied, AuditLog, Counters, LifecycleStore, NotificationStore, Page, PageRequest, PaymentStore,
    RateLimits, Review, StoreError, UpdateLog,
};

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

    /// Creates the table as template.yaml declares it (tests and local stand-ins; AWS uses the template).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(fault)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(fault)
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?);
        for gsi in GSI {
            request = request
                .attribute_definitions(attr(&format!("{gsi}pk"))?)
                .attribute_definitions(attr(&format!("{gsi}sk"))?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(gsi)
                        .key_schema(key(&format!("{gsi}pk"), KeyType::Hash)?)
                        .key_schema(key(&format!("{gsi}sk"), KeyType::Range)?)
                        .projection(Projection::builder().projection_type(ProjectionType::All).build())
                        .build()
                        .map_err(fault)?,
                );
        }
        request.send().await.map_err(fault)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().map_err(fault)?,
            )
            .send()
            .await
            .map_err(fault)?;
        Ok(())
    }

    /// `true` when the table exists (for `doctor`).
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(fault(e)),
        }
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
        let mut start: Option<Item> = None;
        loop {
            let out = request.clone().set_exclusive_start_key(start.take()).send().await.map_err(fault)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if q.limit.is_none_or(|l| items.len() < l as usize) => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), Cancelled> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t)) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code() == Some("ConditionalCheckFailed"))
                        .collect::<Vec<_>>(),
                    _ => return Err(Cancelled::Fault(fault(e))),
                };
                if reasons.iter().any(|c| *c) {
                    Err(Cancelled::Condition(reasons))
                } else {
                    Err(Cancelled::Fault(fault(e)))
                }
            }
        }
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
        let key = format!("COUNTER#{name}");
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
        self.get(&format!("TOKEN#{hash}"), "TOKEN").await?.map(|i| token_from(&i)).transpose()
    }

    async fn membership_record(&self, id: &str) -> Result<Option<Membership>, StoreError> {
        self.get(&format!("MEM#{id}"), "MEM").await?.map(|i| membership_from(&i)).transpose()
    }

    async fn payment_record(&self, id: &str) -> Result<Option<Payment>, StoreError> {
        self.get(&format!("PAY#{id}"), "PAY").await?.map(|i| payment_from(&i)).transpose()
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
}

impl<'a> Query<'a> {
    fn on(index: Option<&'a str>, condition: &'a str, values: Vec<(&'a str, AttributeValue)>) -> Self {
        Self { index, condition, values, forward: false, limit: None }
    }
    fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
    fn oldest_first(mut self) -> Self {
        self.forward = true;
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

fn fault<E: std::fmt::Debug>(e: E) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB: {e:?}"))
}

fn is_condition<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn get_s(item: &Item, k: &str) -> Result<String, StoreError> {
    opt_s(item, k)?.ok_or_else(|| StoreError::Unavailable(format!("item without {k}")))
}

fn opt_s(item: &Item, k: &str) -> Result<Option<String>, StoreError> {
    match item.get(k) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(StoreError::Unavailable(format!("{k} is not a string"))),
    }
}

fn get_n<T: FromStr>(item: &Item, k: &str) -> Result<T, StoreError> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| StoreError::Unavailable(format!("{k} is not a number"))),
        _ => Err(StoreError::Unavailable(format!("item without number {k}"))),
    }
}

fn opt_n<T: FromStr>(item: &Item, k: &str) -> Result<Option<T>, StoreError> {
    if item.contains_key(k) { get_n(item, k).map(Some) } else { Ok(None) }
}

fn get_bool(item: &Item, k: &str) -> bool {
    matches!(item.get(k), Some(AttributeValue::Bool(true)))
}

fn time(item: &Item, k: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_time(&get_s(item, k)?)
}

fn opt_time(item: &Item, k: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_s(item, k)?.map(|v| parse_time(&v)).transpose()
}

fn parse_time(v: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn parsed<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Unavailable(format!("corrupt item: {e}")))
}

/// An item is gone once its TTL has passed, whether or not DynamoDB has deleted it yet.
fn alive(item: &Item, now: DateTime<Utc>) -> bool {
    opt_n::<i64>(item, "ttl").ok().flatten().is_none_or(|t| t > now.timestamp())
}

fn set(item: &mut Item, k: &str, v: Option<AttributeValue>) {
    if let Some(v) = v {
        item.insert(k.into(), v);
    }
}

// ---- payments ----

fn payment_item(p: &Payment) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(format!("PAY#{}", p.id))),
        ("sk".into(), s("PAY")),
        ("gsi1pk".into(), s(format!("USERPAY#{}", p.user_id))),
        ("gsi1sk".into(), s(p.id.as_str())),
        ("gsi2pk".into(), s(format!("PAYSTATUS#{}", p.status.as_str()))),
        ("gsi2sk".into(), s(p.id.as_str())),
        ("gsi3pk".into(), s("PAYALL")),
        ("gsi3sk".into(), s(p.id.as_str())),
        ("id".into(), s(p.id.as_str())),
        ("user_id".into(), s(p.user_id.as_str())),
        ("offer_id".into(), s(&p.offer_id)),
        ("transaction_id".into(), s(&p.transaction_id)),
        ("status".into(), s(p.status.as_str())),
        ("created_at".into(), s(ts(p.created_at))),
        ("updated_at".into(), s(ts(p.updated_at))),
        ("lang".into(), s(p.lang.as_str())),
    ]);
    set(&mut i, "email", p.email.clone().map(s));
    set(&mut i, "user_info", p.user_info.as_ref().map(|v| s(v.to_string())));
    set(&mut i, "admin_notes", p.admin_notes.clone().map(s));
    set(&mut i, "reject_reason", p.reject_reason.clone().map(s));
    set(&mut i, "reviewed_by", p.reviewed_by.as_ref().map(|u| s(u.as_str())));
    i
}

fn payment_from(i: &Item) -> Result<Payment, StoreError> {
    Ok(Payment {
        id: parsed(PaymentId::parse(&get_s(i, "id")?))?,
        user_id: parsed(UserId::parse(&get_s(i, "user_id")?))?,
        email: opt_s(i, "email")?,
        offer_id: get_s(i, "offer_id")?,
        transaction_id: get_s(i, "transaction_id")?,
        user_info: opt_s(i, "user_info")?.map(|v| parsed(serde_json::from_str(&v))).transpose()?,
        status: parsed(PaymentStatus::parse(&get_s(i, "status")?))?,
        admin_notes: opt_s(i, "admin_notes")?,
        reject_reason: opt_s(i, "reject_reason")?,
        created_at: time(i, "created_at")?,
        updated_at: time(i, "updated_at")?,
        reviewed_by: opt_s(i, "reviewed_by")?.map(|u| parsed(UserId::parse(&u))).transpose()?,
        lang: Lang::from_code(opt_s(i, "lang")?.as_deref()),
    })
}

fn tx_item(transaction_id: &str, payment: &PaymentId) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("TX#{transaction_id}"))),
        ("sk".into(), s("TX")),
        ("payment_id".into(), s(payment.as_str())),
    ])
}

fn page<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more { items.last().map(id) } else { None };
    Page { items, next }
}

#[async_trait]
impl PaymentStore for DynamoStore {
    async fn insert_payment(&self, p: &Payment) -> Result<(), StoreError> {
        let items = vec![
            self.put(payment_item(p), Some("attribute_not_exists(pk)"), vec![])?,
            self.put(tx_item(&p.transaction_id, &p.id), Some("attribute_not_exists(pk)"), vec![])?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(Cancelled::Condition(_)) => Err(StoreError::Conflict("transaction_id_taken")),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        self.payment_record(id.as_str()).await
    }

    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError> {
        let items =
            self.query(Query::on(Some("gsi1"), "gsi1pk = :p", vec![(":p", s(format!("USERPAY#{user}")))])).await?;
        items.iter().map(payment_from).collect()
    }

    async fn list_payments(&self, status: Option<PaymentStatus>, p: &PageRequest) -> Result<Page<Payment>, StoreError> {
        let (index, pk_name, pk) = match status {
            Some(st) => ("gsi2", "gsi2pk", format!("PAYSTATUS#{}", st.as_str())),
            None => ("gsi3", "gsi3pk", "PAYALL".to_owned()),
        };
        let sk_name = if index == "gsi2" { "gsi2sk" } else { "gsi3sk" };
        let mut values = vec![(":p", s(pk))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":c", s(after.as_str())));
                format!("{pk_name} = :p AND {sk_name} < :c")
            }
            None => format!("{pk_name} = :p"),
        };
        let items = self.query(Query::on(Some(index), &condition, values).limit(p.limit + 1)).await?;
        let payments = items.iter().map(payment_from).collect::<Result<Vec<_>, _>>()?;
        Ok(page(payments, p.limit, |x| x.id.to_string()))
    }

    async fn review_payment(&self, id: &PaymentId, r: &Review) -> Result<Option<Payment>, StoreError> {
        let Some(current) = self.payment_record(id.as_str()).await? else { return Ok(None) };
        if current.status != PaymentStatus::TransactionSubmitted {
            return Ok(None);
        }
        let mut reviewed = current.clone();
        reviewed.status = r.to;
        reviewed.reviewed_by = Some(r.by.clone());
        reviewed.admin_notes = r.admin_notes.clone().or(current.admin_notes.clone());
        reviewed.reject_reason = r.reason.clone();
        reviewed.updated_at = r.at;
        let submitted = || vec![(":submitted", s(PaymentStatus::TransactionSubmitted.as_str()))];
        let new_tx = r.transaction_id.as_ref().filter(|t| **t != current.transaction_id);
        if let Some(tx) = new_tx {
            reviewed.transaction_id = tx.clone();
        }
        let mut items = vec![self.put(payment_item(&reviewed), Some("#status = :submitted"), submitted())?];
        if let Some(tx) = new_tx {
            items.push(self.put(tx_item(tx, id), Some("attribute_not_exists(pk)"), vec![])?);
            items.push(self.delete((&format!("TX#{}", current.transaction_id), "TX"))?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(Some(reviewed)),
            Err(Cancelled::Condition(reasons)) if reasons.first() == Some(&true) => Ok(None),
            Err(Cancelled::Condition(_)) => Err(StoreError::Conflict("transaction_id_taken")),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }
}

// ---- tokens and memberships ----

const TOKEN_KEEP: i64 = 7; // days an unused token stays after its end, for support to see

fn token_item(t: &TokenRecord) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(format!("TOKEN#{}", t.hash.as_str()))),
        ("sk".into(), s("TOKEN")),
        ("gsi2pk".into(), s(format!("TOKSTATUS#{}", t.status.as_str()))),
        ("gsi2sk".into(), s(ts(t.expires_at))),
        ("gsi3pk".into(), s(format!("USERTOK#{}", t.user_id))),
        ("gsi3sk".into(), s(t.hash.as_str())),
        ("hash".into(), s(t.hash.as_str())),
        ("payment_id".into(), s(t.payment_id.as_str())),
        ("user_id".into(), s(t.user_id.as_str())),
        ("offer_name".into(), s(&t.offer_name)),
        ("days".into(), n(t.days)),
        ("status".into(), s(t.status.as_str())),
        ("created_at".into(), s(ts(t.created_at))),
        ("expires_at".into(), s(ts(t.expires_at))),
        ("ttl".into(), n((t.expires_at + Duration::days(TOKEN_KEEP)).timestamp())),
    ]);
    set(&mut i, "telegram_user_id", t.telegram_user_id.map(|a| n(a.get())));
    set(&mut i, "membership_id", t.membership_id.as_ref().map(|m| s(m.as_str())));
    set(&mut i, "used_at", t.used_at.map(|u| s(ts(u))));
    i
}

fn token_from(i: &Item) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        hash: TokenHash::from_stored(get_s(i, "hash")?),
        payment_id: parsed(PaymentId::parse(&get_s(i, "payment_id")?))?,
        user_id: parsed(UserId::parse(&get_s(i, "user_id")?))?,
        offer_name: get_s(i, "offer_name")?,
        days: get_n(i, "days")?,
        status: parsed(TokenStatus::parse(&get_s(i, "status")?))?,
        created_at: time(i, "created_at")?,
        expires_at: time(i, "expires_at")?,
        telegram_user_id: opt_n::<i64>(i, "telegram_user_id")?.map(|t| parsed(TelegramUserId::parse(t))).transpose()?,
        membership_id: opt_s(i, "membership_id")?.map(|m| parsed(MembershipId::parse(&m))).transpose()?,
        used_at: opt_time(i, "used_at")?,
    })
}

fn membership_item(m: &Membership, token: &TokenHash) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(format!("MEM#{}", m.id))),
        ("sk".into(), s("MEM")),
        ("gsi1pk".into(), s(format!("ACCT#{}", m.telegram_user_id))),
        ("gsi1sk".into(), s(m.id.as_str())),
        ("gsi3pk".into(), s(format!("USERMEM#{}", m.user_id))),
        ("gsi3sk".into(), s(m.id.as_str())),
        ("id".into(), s(m.id.as_str())),
        ("user_id".into(), s(m.user_id.as_str())),
        ("telegram_user_id".into(), n(m.telegram_user_id.get())),
        ("payment_id".into(), s(m.payment_id.as_str())),
        ("offer_name".into(), s(&m.offer_name)),
        ("pending_days".into(), n(m.pending_days)),
        ("status".into(), s(m.status.as_str())),
        ("created_at".into(), s(ts(m.created_at))),
        ("in_channel".into(), b(m.in_channel)),
        ("token_hashes".into(), AttributeValue::Ss(vec![token.as_str().to_owned()])),
    ]);
    set(&mut i, "telegram_username", m.telegram_username.clone().map(s));
    set(&mut i, "joined_at", m.joined_at.map(|t| s(ts(t))));
    set(&mut i, "expires_at", m.expires_at.map(|t| s(ts(t))));
    set(&mut i, "left_at", m.left_at.map(|t| s(ts(t))));
    set(&mut i, "invite_link", m.invite_link.clone().map(s));
    set(&mut i, "invite_expires_at", m.invite_expires_at.map(|t| s(ts(t))));
    i
}

fn membership_from(i: &Item) -> Result<Membership, StoreError> {
    Ok(Membership {
        id: parsed(MembershipId::parse(&get_s(i, "id")?))?,
        user_id: parsed(UserId::parse(&get_s(i, "user_id")?))?,
        telegram_user_id: parsed(TelegramUserId::parse(get_n(i, "telegram_user_id")?))?,
        telegram_username: opt_s(i, "telegram_username")?,
        payment_id: parsed(PaymentId::parse(&get_s(i, "payment_id")?))?,
        offer_name: get_s(i, "offer_name")?,
        pending_days: get_n(i, "pending_days")?,
        status: parsed(MembershipStatus::parse(&get_s(i, "status")?))?,
        created_at: time(i, "created_at")?,
        joined_at: opt_time(i, "joined_at")?,
        expires_at: opt_time(i, "expires_at")?,
        in_channel: get_bool(i, "in_channel"),
        left_at: opt_time(i, "left_at")?,
        invite_link: opt_s(i, "invite_link")?,
        invite_expires_at: opt_time(i, "invite_expires_at")?,
        ended_at: opt_time(i, "ended_at")?,
        end_reason: opt_s(i, "end_reason")?,
    })
}

fn token_hashes(i: &Item) -> Vec<String> {
    match i.get("token_hashes") {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn hour_bucket(at: DateTime<Utc>) -> String {
    format!("tokens.issued.h{}", at.format("%Y%m%d%H"))
}

fn day_bucket(at: DateTime<Utc>) -> String {
    format!("members.joined.d{}", at.format("%Y%m%d"))
}

/// Token → used, off the expiry index, no TTL: it keeps helping its own account back in.
const TOKEN_USED: &str = "SET #status = :used, used_at = :now REMOVE gsi2pk, gsi2sk, #ttl";

impl DynamoStore {
    async fn retire_current_token(
        &self,
        payment: &Item,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TransactWriteItem>, i64), StoreError> {
        let Some(current) = opt_s(payment, "current_token")? else { return Ok((Vec::new(), 0)) };
        let Some(token) = self.token_record(&current).await? else { return Ok((Vec::new(), 0)) };
        let live_bound = token.status == TokenStatus::Bound && token.expires_at > now;
        if token.status == TokenStatus::Used || live_bound {
            return Err(StoreError::Conflict("already_redeemed"));
        }
        if !matches!(token.status, TokenStatus::Pending | TokenStatus::Bound) {
            return Ok((Vec::new(), 0));
        }
        let key = format!("TOKEN#{current}");
        let mut items = vec![self.update(
            (&key, "TOKEN"),
            "SET #status = :replaced REMOVE gsi2pk, gsi2sk",
            Some("#status = :was"),
            vec![(":replaced", s("replaced")), (":was", s(token.status.as_str()))],
        )?];
        // A pending membership opened by the token we replace will never start.
        if let Some(m) = &token.membership_id {
            items.push(self.update(
                (&format!("MEM#{m}"), "MEM"),
                "SET #status = :expired, ended_at = :now, end_reason = :why",
                Some("#status = :pending"),
                vec![
                    (":expired", s("expired")),
                    (":now", s(ts(now))),
                    (":why", s("token replaced")),
                    (":pending", s("pending")),
                ],
            )?);
        }
        Ok((items, 1))
    }

    async fn mark_tokens_used(&self, hashes: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
        for hash in hashes {
            let items = vec![
                self.update(
                    (&format!("TOKEN#{hash}"), "TOKEN"),
                    TOKEN_USED,
                    Some("#status = :bound"),
                    vec![(":used", s("used")), (":now", s(ts(now))), (":bound", s("bound"))],
                )?,
                self.bump("tokens.used", 1, None)?,
                self.bump("tokens.pending", -1, None)?,
            ];
            match self.transact(items).await {
                Ok(()) | Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AccessStore for DynamoStore {
    async fn issue_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        // The payment item names its current token: issuing is a compare-and-swap on it.
        for _ in 0..3 {
            let pay_key = format!("PAY#{}", t.payment_id);
            let Some(payment) = self.get(&pay_key, "PAY").await? else {
                return Err(StoreError::Unavailable(format!("payment {} vanished", t.payment_id)));
            };
            let (mut items, replaced) = self.retire_current_token(&payment, t.created_at).await?;
            let (condition, values) = match opt_s(&payment, "current_token")? {
                Some(old) => ("current_token = :old", vec![(":new", s(t.hash.as_str())), (":old", s(old))]),
                None => ("attribute_not_exists(current_token)", vec![(":new", s(t.hash.as_str()))]),
            };
            items.insert(0, self.update((&pay_key, "PAY"), "SET current_token = :new", Some(condition), values)?);
            items.push(self.put(token_item(t), Some("attribute_not_exists(pk)"), vec![])?);
            items.push(self.bump("tokens.total", 1, None)?);
            items.push(self.bump("tokens.pending", 1 - replaced, None)?);
            items.push(self.bump(&hour_bucket(t.created_at), 1, Some(t.created_at + Duration::days(8)))?);
            match self.transact(items).await {
                Ok(()) => return Ok(()),
                // Another issue or a redemption got there first: read again and decide again.
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict("already_redeemed"))
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.token_record(hash.as_str()).await
    }

    async fn bind_token(
        &self,
        hash: &TokenHash,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("TOKEN#{}", hash.as_str())))
            .key("sk", s("TOKEN"))
            .update_expression("SET #status = :bound, telegram_user_id = :a, gsi2pk = :g")
            .condition_expression("#status = :pending AND attribute_not_exists(telegram_user_id) AND expires_at > :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":bound", s("bound"))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":a", n(account.get()))
            .expression_attribute_values(":g", s("TOKSTATUS#bound"))
            .expression_attribute_values(":now", s(ts(now)))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if is_condition(&e) => {}
            Err(e) => return Err(fault(e)),
        }
        Ok(self.token_record(hash.as_str()).await?.filter(|t| {
            t.telegram_user_id == Some(account) && matches!(t.status, TokenStatus::Bound | TokenStatus::Used)
        }))
    }

    async fn open_membership(&self, hash: &TokenHash, m: &Membership) -> Result<Applied, StoreError> {
        let items = vec![
            self.update(
                (&format!("TOKEN#{}", hash.as_str()), "TOKEN"),
                "SET membership_id = :m",
                Some("attribute_not_exists(membership_id)"),
                vec![(":m", s(m.id.as_str()))],
            )?,
            self.put(membership_item(m, hash), Some("attribute_not_exists(pk)"), vec![])?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(Applied::Now(Box::new(m.clone()))),
            Err(Cancelled::Condition(_)) => self.already(hash).await,
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn extend_membership(
        &self,
        hash: &TokenHash,
        id: &MembershipId,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let token_key = format!("TOKEN#{}", hash.as_str());
        let mem_key = format!("MEM#{id}");
        for _ in 0..3 {
            let token =
                self.token_record(hash.as_str()).await?.ok_or(StoreError::Unavailable("token vanished".into()))?;
            if let Some(existing) = token.membership_id {
                return Ok(Applied::Already(existing));
            }
            let m = self
                .membership_record(id.as_str())
                .await?
                .ok_or(StoreError::Unavailable("membership vanished".into()))?;
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Applied::Ended);
            }
            let hashes = AttributeValue::Ss(vec![hash.as_str().to_owned()]);
            let items = if m.status == MembershipStatus::Active {
                let end = extended_end(m.expires_at, now, token.days);
                let old_end = m.expires_at.map(ts).unwrap_or_default();
                vec![
                    self.update(
                        (&token_key, "TOKEN"),
                        "SET membership_id = :m, #status = :used, used_at = :now REMOVE gsi2pk, gsi2sk, #ttl",
                        Some("attribute_not_exists(membership_id)"),
                        vec![(":m", s(id.as_str())), (":used", s("used")), (":now", s(ts(now)))],
                    )?,
                    self.update(
                        (&mem_key, "MEM"),
                        "SET expires_at = :e, gsi2sk = :e ADD token_hashes :h",
                        Some("#status = :active AND expires_at = :old"),
                        vec![(":e", s(ts(end))), (":h", hashes), (":active", s("active")), (":old", s(old_end))],
                    )?,
                    self.bump("tokens.used", 1, None)?,
                    self.bump("tokens.pending", -1, None)?,
                ]
            } else {
                vec![
                    self.update(
                        (&token_key, "TOKEN"),
                        "SET membership_id = :m",
                        Some("attribute_not_exists(membership_id)"),
                        vec![(":m", s(id.as_str()))],
                    )?,
                    self.update(
                        (&mem_key, "MEM"),
                        "ADD pending_days :d, token_hashes :h",
                        Some("#status = :pending"),
                        vec![(":d", n(token.days)), (":h", hashes), (":pending", s("pending"))],
                    )?,
                ]
            };
            match self.transact(items).await {
                Ok(()) => {
                    let m = self
                        .membership_record(id.as_str())
                        .await?
                        .ok_or(StoreError::Unavailable("membership vanished".into()))?;
                    return Ok(Applied::Now(Box::new(m)));
                }
                Err(Cancelled::Condition(reasons)) if reasons.first() == Some(&true) => {
                    return self.already(hash).await;
                }
                // The membership changed under us (a concurrent renewal or join): read again.
                Err(Cancelled::Condition(_)) => continue,
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("the membership kept changing; try again".into()))
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError> {
        self.membership_record(id.as_str()).await
    }

    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        let items =
            self.query(Query::on(Some("gsi1"), "gsi1pk = :p", vec![(":p", s(format!("ACCT#{account}")))])).await?;
        for item in &items {
            let m = membership_from(item)?;
            if matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError> {
        let Some(item) = self.get(&format!("INVITE#{link}"), "INVITE").await? else { return Ok(None) };
        self.membership_record(&get_s(&item, "membership_id")?).await
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        let items =
            self.query(Query::on(Some("gsi3"), "gsi3pk = :p", vec![(":p", s(format!("USERMEM#{user}")))])).await?;
        items.iter().map(membership_from).collect()
    }

    async fn set_invite(&self, id: &MembershipId, link: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        let invite: Item = HashMap::from([
            ("pk".into(), s(format!("INVITE#{link}"))),
            ("sk".into(), s("INVITE")),
            ("membership_id".into(), s(id.as_str())),
            // Kept well past its expiry: a leaked link is traced to its member for months.
            ("ttl".into(), n((expires_at + Duration::days(180)).timestamp())),
        ]);
        let items = vec![
            self.update(
                (&format!("MEM#{id}"), "MEM"),
                "SET invite_link = :l, invite_expires_at = :e",
                None,
                vec![(":l", s(link)), (":e", s(ts(expires_at)))],
            )?,
            self.put(invite, None, vec![])?,
            self.bump("invites.total", 1, None)?,
        ];
        self.transact(items).await.map_err(|e| match e {
            Cancelled::Condition(_) => StoreError::Unavailable("unexpected condition".into()),
            Cancelled::Fault(e) => e,
        })
    }

    async fn activate_membership(
        &self,
        id: &MembershipId,
        now: DateTime<Utc>,
        username: Option<&str>,
    ) -> Result<Option<Membership>, StoreError> {
        let key = format!("MEM#{id}");
        let Some(item) = self.get(&key, "MEM").await? else { return Ok(None) };
        let m = membership_from(&item)?;
        if m.status != MembershipStatus::Pending {
            return Ok(None);
        }
        let end = now + Duration::days(i64::from(m.pending_days));
        let mut values = vec![
            (":active", s("active")),
            (":pending", s("pending")),
            (":now", s(ts(now))),
            (":e", s(ts(end))),
            (":zero", n(0)),
            (":yes", b(true)),
            (":g", s("MEMSTATUS#active")),
        ];
        let mut expression = "SET #status = :active, joined_at = :now, expires_at = :e, pending_days = :zero, in_channel = :yes, gsi2pk = :g, gsi2sk = :e".to_owned();
        if let Some(u) = username {
            expression.push_str(", telegram_username = :u");
            values.push((":u", s(u)));
        }
        let items = vec![
            self.update((&key, "MEM"), &expression, Some("#status = :pending"), values)?,
            self.bump("invites.accepted", 1, None)?,
            self.bump("members.total", 1, None)?,
            self.bump("members.active", 1, None)?,
            self.bump(&day_bucket(now), 1, Some(now + Duration::days(8)))?,
        ];
        match self.transact(items).await {
            Ok(()) => {}
            Err(Cancelled::Condition(_)) => return Ok(None),
            Err(Cancelled::Fault(e)) => return Err(e),
        }
        self.mark_tokens_used(&token_hashes(&item), now).await?;
        self.membership_record(id.as_str()).await
    }

    async fn set_in_channel(&self, id: &MembershipId, in_channel: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("MEM#{id}")))
            .key("sk", s("MEM"))
            .expression_attribute_values(":c", b(in_channel));
        request = if in_channel {
            request.update_expression("SET in_channel = :c")
        } else {
            request
                .update_expression("SET in_channel = :c, left_at = :now")
                .expression_attribute_values(":now", s(ts(now)))
        };
        request.send().await.map(drop).map_err(fault)
    }
}

impl DynamoStore {
    async fn already(&self, hash: &TokenHash) -> Result<Applied, StoreError> {
        self.token_record(hash.as_str())
            .await?
            .and_then(|t| t.membership_id)
            .map(Applied::Already)
            .ok_or(StoreError::Unavailable("token vanished".into()))
    }
}

// ---- notifications ----

fn notification_item(x: &Notification) -> Item {
    let kept = if x.read { 30 } else { 90 };
    let mut i: Item = HashMap::from([
        ("pk".into(), s(format!("USER#{}", x.user_id))),
        ("sk".into(), s(format!("NOTIF#{}", x.id))),
        ("gsi2pk".into(), s(if x.read { "NOTIFAGE#read" } else { "NOTIFAGE#unread" })),
        ("gsi2sk".into(), s(ts(x.created_at))),
        ("id".into(), s(x.id.as_str())),
        ("user_id".into(), s(x.user_id.as_str())),
        ("kind".into(), s(x.kind.as_str())),
        ("title".into(), s(&x.title)),
        ("message".into(), s(&x.message)),
        ("created_at".into(), s(ts(x.created_at))),
        ("read".into(), b(x.read)),
        ("ttl".into(), n((x.created_at + Duration::days(kept)).timestamp())),
    ]);
    set(&mut i, "action_url", x.action_url.clone().map(s));
    i
}

fn notification_from(i: &Item) -> Result<Notification, StoreError> {
    Ok(Notification {
        id: parsed(NotificationId::parse(&get_s(i, "id")?))?,
        user_id: parsed(UserId::parse(&get_s(i, "user_id")?))?,
        kind: parsed(NotificationKind::parse(&get_s(i, "kind")?))?,
        title: get_s(i, "title")?,
        message: get_s(i, "message")?,
        action_url: opt_s(i, "action_url")?,
        created_at: time(i, "created_at")?,
        read: get_bool(i, "read"),
    })
}

#[async_trait]
impl NotificationStore for DynamoStore {
    async fn add_notification(&self, x: &Notification) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(notification_item(x)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn notifications(&self, user: &UserId, p: &PageRequest) -> Result<Page<Notification>, StoreError> {
        let mut values = vec![(":p", s(format!("USER#{user}")))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":lo", s("NOTIF#")));
                values.push((":c", s(format!("NOTIF#{after}"))));
                "pk = :p AND sk BETWEEN :lo AND :c"
            }
            None => {
                values.push((":lo", s("NOTIF#")));
                "pk = :p AND begins_with(sk, :lo)"
            }
        };
        let items = self.query(Query::on(None, condition, values).limit(p.limit + 2)).await?;
        let now = Utc::now();
        let list = items
            .iter()
            .filter(|i| alive(i, now))
            .map(notification_from)
            .filter(|x| x.as_ref().map_or(true, |x| p.after.as_deref() != Some(x.id.as_str())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(list, p.limit, |x| x.id.to_string()))
    }

    async fn mark_read(&self, user: &UserId, id: &NotificationId) -> Result<bool, StoreError> {
        let (pk, sk) = (format!("USER#{user}"), format!("NOTIF#{id}"));
        let Some(item) = self.get(&pk, &sk).await? else { return Ok(false) };
        let mut x = notification_from(&item)?;
        if !alive(&item, Utc::now()) {
            return Ok(false);
        }
        x.read = true;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(notification_item(&x)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }
}

// ---- update log ----

#[async_trait]
impl UpdateLog for DynamoStore {
    async fn claim_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("UPD#{update_id}")))
            .item("sk", s("UPD"))
            .item("ttl", n((now + Duration::hours(24)).timestamp()))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    async fn release_update(&self, update_id: i64) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("UPD#{update_id}")))
            .key("sk", s("UPD"))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn claim_effect(&self, key: &str, now: DateTime<Utc>, lease: Duration) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("EFFECT#{key}")))
            .item("sk", s("EFFECT"))
            .item("done", b(false))
            .item("lease_until", s(ts(now + lease)))
            .item("ttl", n((now + Duration::days(7)).timestamp()))
            .condition_expression("attribute_not_exists(pk) OR (done = :no AND lease_until < :now)")
            .expression_attribute_values(":no", b(false))
            .expression_attribute_values(":now", s(ts(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    async fn complete_effect(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("EFFECT#{key}")))
            .key("sk", s("EFFECT"))
            .update_expression("SET done = :yes, #ttl = :ttl")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":yes", b(true))
            .expression_attribute_values(":ttl", n((now + Duration::days(7)).timestamp()))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn release_effect(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("EFFECT#{key}")))
            .key("sk", s("EFFECT"))
            .condition_expression("done = :no")
            .expression_attribute_values(":no", b(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition(&e) => Ok(()),
            Err(e) => Err(fault(e)),
        }
    }
}

// ---- lifecycle ----

#[async_trait]
impl LifecycleStore for DynamoStore {
    async fn expire_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut expired = 0;
        for status in [TokenStatus::Pending, TokenStatus::Bound] {
            let pk = format!("TOKSTATUS#{}", status.as_str());
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk <= :now",
                        vec![(":p", s(pk)), (":now", s(ts(now)))],
                    )
                    .oldest_first(),
                )
                .await?;
            for item in &items {
                let token = token_from(item)?;
                let key = format!("TOKEN#{}", token.hash.as_str());
                let mut writes = vec![
                    self.update(
                        (&key, "TOKEN"),
                        "SET #status = :expired REMOVE gsi2pk, gsi2sk",
                        Some("#status = :was AND expires_at <= :now"),
                        vec![(":expired", s("expired")), (":was", s(status.as_str())), (":now", s(ts(now)))],
                    )?,
                    self.bump("tokens.pending", -1, None)?,
                ];
                // The pending membership it opened never starts, unless another live token backs it.
                if let Some(m) = &token.membership_id
                    && let Some(mem) = self.get(&format!("MEM#{m}"), "MEM").await?
                {
                    let mut others_live = false;
                    for other in token_hashes(&mem).iter().filter(|h| *h != token.hash.as_str()) {
                        if let Some(o) = self.token_record(other).await? {
                            others_live |= o.status == TokenStatus::Bound && o.expires_at > now;
                        }
                    }
                    if !others_live {
                        writes.push(self.update(
                            (&format!("MEM#{m}"), "MEM"),
                            "SET #status = :expired, ended_at = :now, end_reason = :why",
                            Some("#status = :pending"),
                            vec![
                                (":expired", s("expired")),
                                (":now", s(ts(now))),
                                (":why", s("token expired before joining")),
                                (":pending", s("pending")),
                            ],
                        )?);
                    }
                }
                match self.transact(writes).await {
                    Ok(()) => expired += 1,
                    Err(Cancelled::Condition(_)) => {}
                    Err(Cancelled::Fault(e)) => return Err(e),
                }
            }
        }
        Ok(expired)
    }

    async fn due_memberships(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        let items = self
            .query(
                Query::on(
                    Some("gsi2"),
                    "gsi2pk = :p AND gsi2sk <= :now",
                    vec![(":p", s("MEMSTATUS#active")), (":now", s(ts(now)))],
                )
                .oldest_first()
                .limit(limit),
            )
            .await?;
        items.iter().map(membership_from).collect()
    }

    async fn expire_membership(&self, id: &MembershipId, now: DateTime<Utc>) -> Result<Option<Membership>, StoreError> {
        let items = vec![
            self.update(
                (&format!("MEM#{id}"), "MEM"),
                "SET #status = :expired, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
                Some("#status = :active AND expires_at <= :now"),
                vec![
                    (":expired", s("expired")),
                    (":now", s(ts(now))),
                    (":why", s("subscription ended")),
                    (":no", b(false)),
                    (":g", s("MEMSTATUS#expired")),
                    (":active", s("active")),
                ],
            )?,
            self.bump("members.active", -1, None)?,
        ];
        match self.transact(items).await {
            Ok(()) => self.membership_record(id.as_str()).await,
            Err(Cancelled::Condition(_)) => Ok(None),
            Err(Cancelled::Fault(e)) => Err(e),
        }
    }

    async fn ending_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError> {
        let items = self
            .query(
                Query::on(
                    Some("gsi2"),
                    "gsi2pk = :p AND gsi2sk BETWEEN :f AND :u",
                    vec![(":p", s("MEMSTATUS#active")), (":f", s(ts(from))), (":u", s(ts(until)))],
                )
                .oldest_first()
                .limit(limit + 1),
            )
            .await?;
        let mut list = Vec::new();
        for item in &items {
            let m = membership_from(item)?;
            if m.expires_at.is_some_and(|e| e > from) && list.len() < limit as usize {
                list.push(m);
            }
        }
        Ok(list)
    }

    async fn claim_warning(
        &self,
        id: &MembershipId,
        threshold_days: u32,
        period_end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("WARN#{id}#{threshold_days}#{}", ts(period_end))))
            .item("sk", s("WARN"))
            .item("ttl", n((period_end + Duration::days(30)).timestamp()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition(&e) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for (group, before) in [("NOTIFAGE#read", read_before), ("NOTIFAGE#unread", unread_before)] {
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk < :b",
                        vec![(":p", s(group)), (":b", s(ts(before)))],
                    )
                    .oldest_first(),
                )
                .await?;
            for item in &items {
                let (pk, sk) = (get_s(item, "pk")?, get_s(item, "sk")?);
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .send()
                    .await
                    .map_err(fault)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Membership>, StoreError> {
        let mut revoked = Vec::new();
        for m in self.memberships_of(user).await? {
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                continue;
            }
            let mut items = vec![self.update(
                (&format!("MEM#{}", m.id), "MEM"),
                "SET #status = :revoked, ended_at = :now, end_reason = :why, in_channel = :no, gsi2pk = :g, gsi2sk = :now",
                Some("#status = :was"),
                vec![
                    (":revoked", s("revoked")),
                    (":now", s(ts(now))),
                    (":why", s(reason)),
                    (":no", b(false)),
                    (":g", s("MEMSTATUS#revoked")),
                    (":was", s(m.status.as_str())),
                ],
            )?];
            if m.status == MembershipStatus::Active {
                items.push(self.bump("members.active", -1, None)?);
            }
            match self.transact(items).await {
                Ok(()) => {
                    if let Some(r) = self.membership_record(m.id.as_str()).await? {
                        revoked.push(r);
                    }
                }
                Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        let tokens =
            self.query(Query::on(Some("gsi3"), "gsi3pk = :p", vec![(":p", s(format!("USERTOK#{user}")))])).await?;
        for item in &tokens {
            let t = token_from(item)?;
            if !matches!(t.status, TokenStatus::Pending | TokenStatus::Bound) {
                continue;
            }
            let items = vec![
                self.update(
                    (&format!("TOKEN#{}", t.hash.as_str()), "TOKEN"),
                    "SET #status = :revoked REMOVE gsi2pk, gsi2sk",
                    Some("#status = :was"),
                    vec![(":revoked", s("revoked")), (":was", s(t.status.as_str()))],
                )?,
                self.bump("tokens.pending", -1, None)?,
            ];
            match self.transact(items).await {
                Ok(()) | Err(Cancelled::Condition(_)) => {}
                Err(Cancelled::Fault(e)) => return Err(e),
            }
        }
        Ok(revoked)
    }

    async fn counters(&self, now: DateTime<Utc>) -> Result<Counters, StoreError> {
        let fixed = [
            "tokens.total",
            "tokens.pending",
            "tokens.used",
            "invites.total",
            "invites.accepted",
            "members.total",
            "members.active",
        ];
        let hours: Vec<String> = (0..24).map(|h| hour_bucket(now - Duration::hours(h))).collect();
        let days: Vec<String> = (0..7).map(|d| day_bucket(now - Duration::days(d))).collect();
        let names: Vec<String> =
            fixed.iter().map(|f| f.to_string()).chain(hours.iter().cloned()).chain(days.iter().cloned()).collect();
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for name in &names {
            keys = keys.keys(HashMap::from([
                ("pk".to_owned(), s(format!("COUNTER#{name}"))),
                ("sk".to_owned(), s("COUNTER")),
            ]));
        }
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys.build().map_err(fault)?)
            .send()
            .await
            .map_err(fault)?;
        let mut values: HashMap<String, i64> = HashMap::new();
        for item in out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
            let name = get_s(&item, "pk")?.trim_start_matches("COUNTER#").to_owned();
            values.insert(name, get_n(&item, "value")?);
        }
        let get = |k: &str| values.get(k).copied().unwrap_or(0);
        Ok(Counters {
            tokens_total: get("tokens.total"),
            tokens_pending: get("tokens.pending"),
            tokens_used: get("tokens.used"),
            tokens_recent: hours.iter().map(|h| get(h)).sum(),
            invites_total: get("invites.total"),
            invites_accepted: get("invites.accepted"),
            members_total: get("members.total"),
            members_active: get("members.active"),
            members_recent_joins: days.iter().map(|d| get(d)).sum(),
        })
    }

    async fn ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        let mut ended = Vec::new();
        for group in ["MEMSTATUS#expired", "MEMSTATUS#revoked"] {
            let items = self
                .query(
                    Query::on(
                        Some("gsi2"),
                        "gsi2pk = :p AND gsi2sk >= :s",
                        vec![(":p", s(group)), (":s", s(ts(since)))],
                    )
                    .limit(limit),
                )
                .await?;
            for item in &items {
                ended.push(membership_from(item)?);
            }
        }
        ended.sort_by_key(|m| std::cmp::Reverse(m.ended_at));
        ended.truncate(limit as usize);
        Ok(ended)
    }

    async fn active_in_channel(&self, limit: u32) -> Result<Vec<Membership>, StoreError> {
        // Reads at most `limit` items: nearly every active member is in the channel.
        let items = self
            .query(
                Query::on(Some("gsi2"), "gsi2pk = :p", vec![(":p", s("MEMSTATUS#active"))]).oldest_first().limit(limit),
            )
            .await?;
        let mut list = Vec::new();
        for item in &items {
            let m = membership_from(item)?;
            if m.in_channel {
                list.push(m);
            }
        }
        Ok(list)
    }

    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.get(&format!("JOB#{job}"), "JOB").await?.map(|i| time(&i, "at")).transpose()
    }

    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("JOB#{job}")))
            .item("sk", s("JOB"))
            .item("at", s(ts(at)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }
}

// ---- audit ----

fn audit_item(e: &AuditEntry) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(format!("AUDIT#{}", e.id))),
        ("sk".into(), s("AUDIT")),
        ("gsi3pk".into(), s("AUDIT")),
        ("gsi3sk".into(), s(e.id.as_str())),
        ("id".into(), s(e.id.as_str())),
        ("at".into(), s(ts(e.at))),
        ("actor".into(), s(&e.actor)),
        ("action".into(), s(e.action.as_str())),
        ("details".into(), s(e.details.to_string())),
    ]);
    if let Some(u) = &e.user_id {
        i.insert("gsi1pk".into(), s(format!("AUDITUSER#{u}")));
        i.insert("gsi1sk".into(), s(e.id.as_str()));
        i.insert("user_id".into(), s(u.as_str()));
    }
    set(&mut i, "telegram_user_id", e.telegram_user_id.map(|t| n(t.get())));
    i
}

fn audit_from(i: &Item) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: parsed(AuditId::parse(&get_s(i, "id")?))?,
        at: time(i, "at")?,
        actor: get_s(i, "actor")?,
        action: parsed(AuditAction::parse(&get_s(i, "action")?))?,
        user_id: opt_s(i, "user_id")?.map(|u| parsed(UserId::parse(&u))).transpose()?,
        telegram_user_id: opt_n::<i64>(i, "telegram_user_id")?.map(|t| parsed(TelegramUserId::parse(t))).transpose()?,
        details: parsed(serde_json::from_str(&get_s(i, "details")?))?,
    })
}

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(audit_item(e)))
            .send()
            .await
            .map(drop)
            .map_err(fault)
    }

    async fn audit(&self, user: Option<&UserId>, p: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let (index, pk_attr, sk_attr, pk) = match user {
            Some(u) => ("gsi1", "gsi1pk", "gsi1sk", format!("AUDITUSER#{u}")),
            None => ("gsi3", "gsi3pk", "gsi3sk", "AUDIT".to_owned()),
        };
        let mut values = vec![(":p", s(pk))];
        let condition = match &p.after {
            Some(after) => {
                values.push((":c", s(after.as_str())));
                format!("{pk_attr} = :p AND {sk_attr} < :c")
            }
            None => format!("{pk_attr} = :p"),
        };
        let items = self.query(Query::on(Some(index), &condition, values).limit(p.limit + 1)).await?;
        let entries = items.iter().map(audit_from).collect::<Result<Vec<_>, _>>()?;
        Ok(page(entries, p.limit, |e| e.id.to_string()))
    }
}

// ---- abuse limits ----

#[async_trait]
impl RateLimits for DynamoStore {
    async fn hit(&self, key: &str, until: DateTime<Utc>) -> Result<u32, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{key}")))
            .key("sk", s("RATE"))
            .update_expression("ADD #v :one SET #ttl = :ttl")
            .expression_attribute_names("#v", "value")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ttl", n(until.timestamp()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(fault)?;
        get_n(&out.attributes.unwrap_or_default(), "value")
    }

    async fn hits(&self, key: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        match self.get(&format!("RATE#{key}"), "RATE").await? {
            Some(item) if alive(&item, now) => get_n(&item, "value"),
            _ => Ok(0),
        }
    }
}
