//! Rows to domain types; a row that does not parse is reported as corrupt, never guessed.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use crate::adapters::stored::parse_ts;
use crate::domain::{
    AuditAction, AuditEntry, AuditId, Lang, Membership, MembershipId, MembershipStatus, Notification, NotificationId,
    NotificationKind, Payment, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
};

pub(super) fn time(row: &Row, col: &str) -> rusqlite::Result<DateTime<Utc>> {
    let raw: String = row.get(col)?;
    parse_time(col, &raw)
}

pub(super) fn opt_time(row: &Row, col: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let raw: Option<String> = row.get(col)?;
    raw.map(|r| parse_time(col, &r)).transpose()
}

fn parse_time(col: &str, raw: &str) -> rusqlite::Result<DateTime<Utc>> {
    parse_ts(raw).map_err(|e| corrupt(col, e.to_string()))
}

fn corrupt(col: &str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("{col}: {why}").into())
}

fn parsed<T, E: std::fmt::Display>(col: &str, r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| corrupt(col, e.to_string()))
}

pub(super) fn payment_from(row: &Row) -> rusqlite::Result<Payment> {
    let user_info: Option<String> = row.get("user_info")?;
    let lang: String = row.get("lang")?;
    let reviewed_by: Option<String> = row.get("reviewed_by")?;
    Ok(Payment {
        id: parsed("id", PaymentId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        email: row.get("email")?,
        offer_id: row.get("offer_id")?,
        transaction_id: row.get("transaction_id")?,
        user_info: user_info.map(|s| parsed("user_info", serde_json::from_str(&s))).transpose()?,
        status: parsed("status", PaymentStatus::parse(&row.get::<_, String>("status")?))?,
        admin_notes: row.get("admin_notes")?,
        reject_reason: row.get("reject_reason")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        reviewed_by: reviewed_by.map(|u| parsed("reviewed_by", UserId::parse(&u))).transpose()?,
        refund_note: row.get("refund_note")?,
        revenue_cents: row.get("revenue_cents")?,
        lang: Lang::from_code(Some(&lang)),
    })
}

pub(super) fn token_from(row: &Row) -> rusqlite::Result<TokenRecord> {
    let tg: Option<i64> = row.get("telegram_user_id")?;
    let membership: Option<String> = row.get("membership_id")?;
    Ok(TokenRecord {
        hash: TokenHash::from_stored(row.get("hash")?),
        payment_id: parsed("payment_id", PaymentId::parse(&row.get::<_, String>("payment_id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        offer_name: row.get("offer_name")?,
        days: row.get("days")?,
        status: parsed("status", TokenStatus::parse(&row.get::<_, String>("status")?))?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        telegram_user_id: tg.map(|t| parsed("telegram_user_id", TelegramUserId::parse(t))).transpose()?,
        membership_id: membership.map(|m| parsed("membership_id", MembershipId::parse(&m))).transpose()?,
        used_at: opt_time(row, "used_at")?,
    })
}

pub(super) fn membership_from(row: &Row) -> rusqlite::Result<Membership> {
    Ok(Membership {
        id: parsed("id", MembershipId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        telegram_user_id: parsed("telegram_user_id", TelegramUserId::parse(row.get("telegram_user_id")?))?,
        telegram_username: row.get("telegram_username")?,
        payment_id: parsed("payment_id", PaymentId::parse(&row.get::<_, String>("payment_id")?))?,
        offer_name: row.get("offer_name")?,
        pending_days: row.get("pending_days")?,
        status: parsed("status", MembershipStatus::parse(&row.get::<_, String>("status")?))?,
        created_at: time(row, "created_at")?,
        joined_at: opt_time(row, "joined_at")?,
        expires_at: opt_time(row, "expires_at")?,
        in_channel: row.get("in_channel")?,
        left_at: opt_time(row, "left_at")?,
        invite_link: row.get("invite_link")?,
        invite_expires_at: opt_time(row, "invite_expires_at")?,
        ended_at: opt_time(row, "ended_at")?,
        end_reason: row.get("end_reason")?,
        renews_until: opt_time(row, "renews_until")?,
    })
}

pub(super) fn notification_from(row: &Row) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: parsed("id", NotificationId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        kind: parsed("kind", NotificationKind::parse(&row.get::<_, String>("kind")?))?,
        title: row.get("title")?,
        message: row.get("message")?,
        action_url: row.get("action_url")?,
        created_at: time(row, "created_at")?,
        read: row.get("read")?,
    })
}

pub(super) fn audit_from(row: &Row) -> rusqlite::Result<AuditEntry> {
    let user: Option<String> = row.get("user_id")?;
    let tg: Option<i64> = row.get("telegram_user_id")?;
    let details: String = row.get("details")?;
    Ok(AuditEntry {
        id: parsed("id", AuditId::parse(&row.get::<_, String>("id")?))?,
        at: time(row, "at")?,
        actor: row.get("actor")?,
        action: parsed("action", AuditAction::parse(&row.get::<_, String>("action")?))?,
        user_id: user.map(|u| parsed("user_id", UserId::parse(&u))).transpose()?,
        telegram_user_id: tg.map(|t| parsed("telegram_user_id", TelegramUserId::parse(t))).transpose()?,
        details: parsed("details", serde_json::from_str(&details))?,
    })
}
