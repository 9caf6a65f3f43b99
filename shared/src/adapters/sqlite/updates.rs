//! Telegram update ids and queued effects' keys: what makes a retry harmless.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::params;

use super::{SqliteStore, fault};
use crate::adapters::stored::ts;
use crate::ports::*;

#[async_trait]
impl UpdateLog for SqliteStore {
    async fn claim_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO processed_updates (update_id, at) VALUES (?1, ?2)",
                params![update_id, ts(now)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn release_update(&self, update_id: i64) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM processed_updates WHERE update_id = ?1", [update_id]).map(drop).map_err(fault)
        })
    }
}

#[async_trait]
impl EffectLog for SqliteStore {
    async fn claim_effect(&self, key: &str, now: DateTime<Utc>, lease: Duration) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO effects (key, done, lease_until) VALUES (?1, 0, ?2)
                 ON CONFLICT(key) DO UPDATE SET lease_until = excluded.lease_until
                 WHERE effects.done = 0 AND effects.lease_until < ?3",
                params![key, ts(now + lease), ts(now)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn complete_effect(&self, key: &str, _now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| conn.execute("UPDATE effects SET done = 1 WHERE key = ?1", [key]).map(drop).map_err(fault))
    }

    async fn release_effect(&self, key: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM effects WHERE key = ?1 AND done = 0", [key]).map(drop).map_err(fault)
        })
    }
}

#[async_trait]
impl EffectOutbox for SqliteStore {
    async fn pending_intents(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Envelope>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT body FROM intents WHERE created_at < ?1 ORDER BY created_at LIMIT ?2")
                .map_err(fault)?;
            let bodies = stmt
                .query_map(params![ts(before), limit], |r| r.get::<_, String>(0))
                .map_err(fault)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fault)?;
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).map_err(|e| StoreError::Unavailable(format!("corrupt intent: {e}"))))
                .collect()
        })
    }

    async fn settle_intent(&self, key: &str) -> Result<(), StoreError> {
        self.with(|conn| conn.execute("DELETE FROM intents WHERE key = ?1", [key]).map(drop).map_err(fault))
    }
}
