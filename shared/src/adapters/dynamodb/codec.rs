//! Items to domain types and back. An item that does not parse is reported, never guessed.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};

use super::{Item, keys};
use crate::adapters::stored::{parse_ts, ts};
use crate::domain::{
    AuditAction, AuditEntry, AuditId, Lang, Membership, MembershipId, MembershipStatus, Notification, NotificationId,
    NotificationKind, Payment, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
};
use crate::ports::{Envelope, StoreError};

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

pub(super) fn get_s(item: &Item, k: &str) -> Result<String, StoreError> {
    opt_s(item, k)?.ok_or_else(|| StoreError::Corrupt(format!("item without {k}")))
}

pub(super) fn opt_s(item: &Item, k: &str) -> Result<Option<String>, StoreError> {
    match item.get(k) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(StoreError::Corrupt(format!("{k} is not a string"))),
    }
}

pub(super) fn get_n<T: FromStr>(item: &Item, k: &str) -> Result<T, StoreError> {
    match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| StoreError::Corrupt(format!("{k} is not a number"))),
        _ => Err(StoreError::Corrupt(format!("item without number {k}"))),
    }
}

pub(super) fn opt_n<T: FromStr>(item: &Item, k: &str) -> Result<Option<T>, StoreError> {
    if item.contains_key(k) { get_n(item, k).map(Some) } else { Ok(None) }
}

pub(super) fn get_bool(item: &Item, k: &str) -> bool {
    matches!(item.get(k), Some(AttributeValue::Bool(true)))
}

pub(super) fn time(item: &Item, k: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_time(&get_s(item, k)?)
}

pub(super) fn opt_time(item: &Item, k: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    opt_s(item, k)?.map(|v| parse_time(&v)).transpose()
}

pub(super) fn parse_time(v: &str) -> Result<DateTime<Utc>, StoreError> {
    parse_ts(v).map_err(|e| StoreError::Corrupt(format!("bad time {v:?}: {e}")))
}

pub(super) fn parsed<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// An item is gone once its TTL has passed, whether or not DynamoDB has deleted it yet.
pub(super) fn alive(item: &Item, now: DateTime<Utc>) -> bool {
    opt_n::<i64>(item, "ttl").ok().flatten().is_none_or(|t| t > now.timestamp())
}

pub(super) fn set(item: &mut Item, k: &str, v: Option<AttributeValue>) {
    if let Some(v) = v {
        item.insert(k.into(), v);
    }
}

pub(super) fn payment_item(p: &Payment) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(keys::payment(&p.id))),
        ("sk".into(), s("PAY")),
        ("gsi1pk".into(), s(keys::payments_of_user(&p.user_id))),
        ("gsi1sk".into(), s(p.id.as_str())),
        ("gsi2pk".into(), s(keys::payments_by_status(p.status.as_str()))),
        ("gsi2sk".into(), s(p.id.as_str())),
        ("gsi3pk".into(), s(keys::ALL_PAYMENTS)),
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
    set(&mut i, "refund_note", p.refund_note.clone().map(s));
    set(&mut i, "revenue_cents", p.revenue_cents.map(n));
    i
}

pub(super) fn payment_from(i: &Item) -> Result<Payment, StoreError> {
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
        refund_note: opt_s(i, "refund_note")?,
        revenue_cents: opt_n(i, "revenue_cents")?,
        lang: Lang::from_code(opt_s(i, "lang")?.as_deref()),
    })
}

/// The item that keeps a transaction id unique, keyed by its `transaction_key`.
pub(super) fn tx_item(transaction_key: &str, payment: &PaymentId) -> Item {
    HashMap::from([
        ("pk".into(), s(keys::transaction(transaction_key))),
        ("sk".into(), s("TX")),
        ("payment_id".into(), s(payment.as_str())),
    ])
}

pub(super) const TOKEN_KEEP: i64 = 7; // days an unused token stays after its end, for support to see

pub(super) fn token_item(t: &TokenRecord) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(keys::token(t.hash.as_str()))),
        ("sk".into(), s("TOKEN")),
        ("gsi2pk".into(), s(keys::tokens_by_status(t.status.as_str()))),
        ("gsi2sk".into(), s(ts(t.expires_at))),
        ("gsi3pk".into(), s(keys::tokens_of_user(&t.user_id))),
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

pub(super) fn token_from(i: &Item) -> Result<TokenRecord, StoreError> {
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

pub(super) fn membership_item(m: &Membership, token: &TokenHash) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(keys::membership(&m.id))),
        ("sk".into(), s("MEM")),
        ("gsi1pk".into(), s(keys::account(m.telegram_user_id))),
        ("gsi1sk".into(), s(m.id.as_str())),
        ("gsi3pk".into(), s(keys::memberships_of_user(&m.user_id))),
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

pub(super) fn membership_from(i: &Item) -> Result<Membership, StoreError> {
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
        renews_until: opt_time(i, "renews_until")?,
    })
}

pub(super) fn token_hashes(i: &Item) -> Vec<String> {
    match i.get("token_hashes") {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

pub(super) fn notification_item(x: &Notification) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(keys::user(&x.user_id))),
        ("sk".into(), s(keys::notification(&x.id))),
        ("gsi2pk".into(), s(keys::notifications_by_age(if x.read { "read" } else { "unread" }))),
        ("gsi2sk".into(), s(ts(x.created_at))),
        ("id".into(), s(x.id.as_str())),
        ("user_id".into(), s(x.user_id.as_str())),
        ("kind".into(), s(x.kind.as_str())),
        ("title".into(), s(&x.title)),
        ("message".into(), s(&x.message)),
        ("created_at".into(), s(ts(x.created_at))),
        ("read".into(), b(x.read)),
        ("ttl".into(), n(x.kept_until().timestamp())),
    ]);
    set(&mut i, "action_url", x.action_url.clone().map(s));
    i
}

pub(super) fn notification_from(i: &Item) -> Result<Notification, StoreError> {
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

pub(super) fn audit_item(e: &AuditEntry) -> Item {
    let mut i: Item = HashMap::from([
        ("pk".into(), s(keys::audit(&e.id))),
        ("sk".into(), s("AUDIT")),
        ("gsi3pk".into(), s(keys::ALL_AUDIT)),
        ("gsi3sk".into(), s(e.id.as_str())),
        ("gsi2pk".into(), s(keys::audit_of_action(e.action.as_str()))),
        ("gsi2sk".into(), s(e.id.as_str())),
        ("id".into(), s(e.id.as_str())),
        ("at".into(), s(ts(e.at))),
        ("actor".into(), s(&e.actor)),
        ("action".into(), s(e.action.as_str())),
        ("details".into(), s(e.details.to_string())),
    ]);
    if let Some(u) = &e.user_id {
        i.insert("gsi1pk".into(), s(keys::audit_of_user(u)));
        i.insert("gsi1sk".into(), s(e.id.as_str()));
        i.insert("user_id".into(), s(u.as_str()));
    }
    set(&mut i, "telegram_user_id", e.telegram_user_id.map(|t| n(t.get())));
    i
}

pub(super) fn audit_from(i: &Item) -> Result<AuditEntry, StoreError> {
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

/// An effect intent (see `EffectOutbox`), written in the transaction of the state change.
pub(super) fn intent_item(e: &Envelope, now: DateTime<Utc>) -> Result<Item, StoreError> {
    let body = serde_json::to_string(e).map_err(|e| StoreError::Unavailable(crate::ports::Cause::new(e)))?;
    Ok(HashMap::from([
        ("pk".into(), s(keys::INTENTS)),
        ("sk".into(), s(&e.idempotency_key)),
        ("body".into(), s(body)),
        ("created_at".into(), s(ts(now))),
    ]))
}

pub(super) fn intent_from(i: &Item) -> Result<Envelope, StoreError> {
    parsed(serde_json::from_str(&get_s(i, "body")?))
}
