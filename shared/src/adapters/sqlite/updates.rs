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
                "INSERT INTO processed_updates (update_id, at, done, lease_until) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT(update_id) DO UPDATE SET at = excluded.at, done = 0, lease_until = excluded.lease_until
                 WHERE (processed_updates.done = 0 AND processed_updates.lease_until < ?2)
                    OR (processed_updates.done = 1 AND processed_updates.at < ?4)",
                params![update_id, ts(now), ts(now + UPDATE_LEASE), ts(now - UPDATE_RETENTION)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn complete_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute(
                "UPDATE processed_updates SET done = 1, at = ?2 WHERE update_id = ?1",
                params![update_id, ts(now)],
            )
            .map_err(fault)?;
            // The same retention as DynamoDB's TTL: older ids are forgotten (index on `at`).
            tx.execute("DELETE FROM processed_updates WHERE done = 1 AND at < ?1", [ts(now - UPDATE_RETENTION)])
                .map_err(fault)?;
            tx.commit().map_err(fault)
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
                 ON CONFLICT(key) DO UPDATE SET lease_until = excluded.lease_until, done = 0
                 WHERE (effects.done = 0 AND effects.lease_until < ?3)
                    OR (effects.done = 1 AND effects.lease_until < ?4)",
                params![key, ts(now + lease), ts(now), ts(now - EFFECT_RETENTION)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn complete_effect(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            // Once done, `lease_until` records when: keys older than the retention are forgotten.
            tx.execute("UPDATE effects SET done = 1, lease_until = ?2 WHERE key = ?1", params![key, ts(now)])
                .map_err(fault)?;
            tx.execute("DELETE FROM effects WHERE done = 1 AND lease_until < ?1", [ts(now - EFFECT_RETENTION)])
                .map_err(fault)?;
            tx.commit().map_err(fault)
        })
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
                .map(|b| {
                    serde_json::from_str(b)
                        .map_err(|e| StoreError::Unavailable(crate::ports::Cause::with("corrupt intent", e)))
                })
                .collect()
        })
    }

    async fn settle_intent(&self, key: &str) -> Result<(), StoreError> {
        self.with(|conn| conn.execute("DELETE FROM intents WHERE key = ?1", [key]).map(drop).map_err(fault))
    }
}
