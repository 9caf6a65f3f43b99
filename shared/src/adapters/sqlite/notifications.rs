//! In-app notifications and their clean-up.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

use super::rows::*;
use super::{SqliteStore, fault, rows_where};
use crate::adapters::stored::{day_bucket, hour_bucket, ts};
use crate::domain::{Notification, NotificationId, READ_NOTIFICATION_DAYS, UNREAD_NOTIFICATION_DAYS, UserId};
use crate::ports::*;

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn add_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.with(|conn| insert_notification(conn, n))
    }

    async fn notifications(
        &self,
        user: &UserId,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<Page<Notification>, StoreError> {
        let (read_since, unread_since) = retention_cutoffs(now);
        self.with(|conn| {
            let rows = rows_where(
                conn,
                "SELECT * FROM notifications WHERE user_id = ?1 AND (?2 IS NULL OR id < ?2)
                   AND created_at >= CASE WHEN read = 1 THEN ?4 ELSE ?5 END
                 ORDER BY id DESC LIMIT ?3",
                params![user.as_str(), page.after, page.limit + 1, read_since, unread_since],
                notification_from,
            )?;
            Ok(Page::of(rows, page.limit, |n| n.id.to_string()))
        })
    }

    async fn mark_read(&self, user: &UserId, id: &NotificationId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let (read_since, unread_since) = retention_cutoffs(now);
        self.with(|conn| {
            conn.execute(
                "UPDATE notifications SET read = 1 WHERE id = ?1 AND user_id = ?2
                   AND created_at >= CASE WHEN read = 1 THEN ?3 ELSE ?4 END",
                params![id.as_str(), user.as_str(), read_since, unread_since],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let read = tx
                .execute(
                    "DELETE FROM notifications WHERE id IN
                       (SELECT id FROM notifications WHERE read = 1 AND created_at < ?1 LIMIT ?2)",
                    params![ts(read_before), limit],
                )
                .map_err(fault)?;
            let unread = tx
                .execute(
                    "DELETE FROM notifications WHERE id IN
                       (SELECT id FROM notifications WHERE read = 0 AND created_at < ?1 LIMIT ?2)",
                    params![ts(unread_before), limit - read as u32],
                )
                .map_err(fault)?;
            // Stats buckets older than any window that reads them.
            tx.execute(
                "DELETE FROM counters WHERE (name LIKE 'tokens.issued.h%' AND name < ?1)
                    OR (name LIKE 'members.joined.d%' AND name < ?2)",
                params![hour_bucket(read_before), day_bucket(read_before)],
            )
            .map_err(fault)?;
            tx.commit().map_err(fault)?;
            Ok((read + unread) as u64)
        })
    }
}

/// The oldest creation times still kept at `now`, for read and for unread notifications.
fn retention_cutoffs(now: DateTime<Utc>) -> (String, String) {
    (ts(now - Duration::days(READ_NOTIFICATION_DAYS)), ts(now - Duration::days(UNREAD_NOTIFICATION_DAYS)))
}

pub(super) fn insert_notification(conn: &rusqlite::Connection, n: &Notification) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO notifications (id, user_id, kind, title, message, action_url, created_at, read)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            n.id.as_str(),
            n.user_id.as_str(),
            n.kind.as_str(),
            n.title,
            n.message,
            n.action_url,
            ts(n.created_at),
            n.read
        ],
    )
    .map(drop)
    .map_err(fault)
}
