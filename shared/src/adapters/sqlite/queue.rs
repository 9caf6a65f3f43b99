//! The local queue's log: queued effects survive a crash or a restart; dead letters stay visible.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::rows::time;
use super::{SqliteStore, fault};
use crate::adapters::local_queue::{DeadLetter, QueueLog, Queued};
use crate::adapters::stored::{parse_ts, ts};
use crate::ports::{Envelope, StoreError};

fn envelope(body: &str) -> Result<Envelope, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Unavailable(crate::ports::Cause::with("corrupt queued effect", e)))
}

#[async_trait]
impl QueueLog for SqliteStore {
    async fn push(&self, envelopes: &[Envelope], at: DateTime<Utc>) -> Result<(), StoreError> {
        let bodies = envelopes
            .iter()
            .map(|e| serde_json::to_string(e).map_err(|e| StoreError::Unavailable(crate::ports::Cause::new(e))))
            .collect::<Result<Vec<_>, _>>()?;
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            for body in &bodies {
                tx.execute(
                    "INSERT INTO local_queue (body, attempt, not_before) VALUES (?1, 0, ?2)",
                    params![body, ts(at)],
                )
                .map_err(fault)?;
            }
            tx.commit().map_err(fault)
        })
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Queued>, StoreError> {
        let rows: Vec<(i64, String, u32)> = self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT seq, body, attempt FROM local_queue WHERE dead_error IS NULL AND not_before <= ?1
                     ORDER BY seq LIMIT ?2",
                )
                .map_err(fault)?;
            let rows =
                stmt.query_map(params![ts(now), limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(fault)?;
            rows.collect::<Result<_, _>>().map_err(fault)
        })?;
        rows.into_iter().map(|(seq, body, attempt)| Ok(Queued { seq, envelope: envelope(&body)?, attempt })).collect()
    }

    async fn retry_at(&self, seq: i64, attempt: u32, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE local_queue SET attempt = ?2, not_before = ?3 WHERE seq = ?1",
                params![seq, attempt, ts(at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn remove(&self, seq: i64) -> Result<(), StoreError> {
        self.with(|conn| conn.execute("DELETE FROM local_queue WHERE seq = ?1", [seq]).map(drop).map_err(fault))
    }

    async fn bury(&self, seq: i64, error: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE local_queue SET dead_error = ?2, dead_at = ?3 WHERE seq = ?1",
                params![seq, error, ts(at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn waiting(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT COUNT(*) FROM local_queue WHERE dead_error IS NULL", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(fault)
        })
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = self.with(|conn| {
            conn.query_row("SELECT MIN(not_before) FROM local_queue WHERE dead_error IS NULL", [], |r| r.get(0))
                .optional()
                .map(Option::flatten)
                .map_err(fault)
        })?;
        next.map(|t| parse_ts(&t).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>)> = self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT body, dead_error, dead_at FROM local_queue WHERE dead_error IS NOT NULL ORDER BY seq")
                .map_err(fault)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, time(r, "dead_at")?))).map_err(fault)?;
            rows.collect::<Result<_, _>>().map_err(fault)
        })?;
        rows.into_iter().map(|(body, error, at)| Ok(DeadLetter { envelope: envelope(&body)?, error, at })).collect()
    }
}
