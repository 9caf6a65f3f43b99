//! The audit log and the abuse limits' counters.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::rows::*;
use super::{SqliteStore, fault, rows_where};
use crate::adapters::stored::ts;
use crate::domain::{AuditEntry, TelegramUserId, UserId};
use crate::ports::*;

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO audit (id, at, actor, action, user_id, telegram_user_id, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.id.as_str(),
                    ts(e.at),
                    e.actor,
                    e.action.as_str(),
                    e.user_id.as_ref().map(UserId::as_str),
                    e.telegram_user_id.map(TelegramUserId::get),
                    e.details.to_string(),
                ],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn audit(&self, of: AuditOf<'_>, page: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        let (user, action) = match of {
            AuditOf::Everyone => (None, None),
            AuditOf::User(user) => (Some(user.as_str()), None),
            AuditOf::Action(action) => (None, Some(action.as_str())),
        };
        self.with(|conn| {
            let rows = rows_where(
                conn,
                "SELECT * FROM audit WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR action = ?2)
                 AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
                params![user, action, page.after, page.limit + 1],
                audit_from,
            )?;
            Ok(Page::of(rows, page.limit, |e| e.id.to_string()))
        })
    }
}

#[async_trait]
impl RateLimits for SqliteStore {
    async fn hit(&self, key: &str, until: DateTime<Utc>) -> Result<u32, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "INSERT INTO rate_limits (key, count, until) VALUES (?1, 1, ?2)
                 ON CONFLICT(key) DO UPDATE SET count = count + 1 RETURNING count",
                params![key, ts(until)],
                |r| r.get(0),
            )
            .map_err(fault)
        })
    }

    async fn hits(&self, key: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT count FROM rate_limits WHERE key = ?1 AND until > ?2", params![key, ts(now)], |r| {
                r.get(0)
            })
            .optional()
            .map(|c| c.unwrap_or(0))
            .map_err(fault)
        })
    }
}
