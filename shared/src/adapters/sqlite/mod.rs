//! The embedded store: one SQLite file. Every state change that must happen once is a single
//! conditional statement or a transaction under the connection's lock. One file per role.

mod access;
mod audit;
mod bars;
mod import;
mod invoices;
mod lifecycle;
mod notifications;
mod payments;
mod queue;
mod rows;
mod updates;

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::adapters::stored::ts;
use crate::domain::{Membership, TokenRecord, transaction_key};
use crate::ports::{Envelope, StoreError};
use rows::{membership_from, token_from};

/// Each step brings the schema from version i to i + 1; a store is migrated on open.
const MIGRATIONS: [&str; 21] = [
    include_str!("migrations/v1.sql"),
    include_str!("migrations/v2.sql"),
    include_str!("migrations/v3.sql"),
    include_str!("migrations/v4.sql"),
    include_str!("migrations/v5.sql"),
    include_str!("migrations/v6.sql"),
    include_str!("migrations/v7.sql"),
    include_str!("migrations/v8.sql"),
    include_str!("migrations/v9.sql"),
    include_str!("migrations/v10.sql"),
    include_str!("migrations/v11.sql"),
    include_str!("migrations/v12.sql"),
    include_str!("migrations/v13.sql"),
    include_str!("migrations/v14.sql"),
    include_str!("migrations/v15.sql"),
    include_str!("migrations/v16.sql"),
    include_str!("migrations/v17.sql"),
    include_str!("migrations/v18.sql"),
    include_str!("migrations/v19.sql"),
    include_str!("migrations/v20.sql"),
    include_str!("migrations/v21.sql"),
];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (and creates or migrates) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(fault)?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fault)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fault)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fault)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(fault)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(fault)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(
                format!(
                    "the store was written by a newer telegate (schema {version}, this one knows {SCHEMA_VERSION})"
                )
                .into(),
            ));
        }
        for (from, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute_batch(step).map_err(fault)?;
            if from + 1 == 7 {
                fill_transaction_keys(&tx)?;
            }
            tx.pragma_update(None, "user_version", from as i64 + 1).map_err(fault)?;
            tx.commit().map_err(fault)?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        f(&mut conn)
    }
}

fn fault(e: rusqlite::Error) -> StoreError {
    match e {
        // A row whose column does not convert (a bad time, an unknown status): corrupt, not down.
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(crate::ports::Cause::new(e)),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn get_membership(conn: &Connection, id: &str) -> Result<Option<Membership>, StoreError> {
    conn.query_row("SELECT * FROM memberships WHERE id = ?1", [id], membership_from).optional().map_err(fault)
}

fn get_token(conn: &Connection, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    conn.query_row("SELECT * FROM tokens WHERE hash = ?1", [hash], token_from).optional().map_err(fault)
}

fn insert_membership(conn: &Connection, m: &Membership) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO memberships (id, user_id, telegram_user_id, telegram_username, payment_id, offer_name, pending_days,
           status, created_at, joined_at, expires_at, in_channel, left_at, invite_link, invite_expires_at,
           ended_at, end_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            m.id.as_str(),
            m.user_id.as_str(),
            m.telegram_user_id.get(),
            m.telegram_username,
            m.payment_id.as_str(),
            m.offer_name,
            m.pending_days,
            m.status.as_str(),
            ts(m.created_at),
            m.joined_at.map(ts),
            m.expires_at.map(ts),
            m.in_channel,
            m.left_at.map(ts),
            m.invite_link,
            m.invite_expires_at.map(ts),
            m.ended_at.map(ts),
            m.end_reason,
        ],
    )
    .map(drop)
    .map_err(fault)
}

/// Schema 7: the normalised key of every existing transaction id. Two old payments whose ids
/// normalise alike (accepted before) keep both: the later one's key is made unique by its id.
fn fill_transaction_keys(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT id, transaction_id FROM payments ORDER BY id").map_err(fault)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)?
    };
    let mut seen = std::collections::HashSet::new();
    for (id, tx) in rows {
        let mut key = transaction_key(&tx);
        if !seen.insert(key.clone()) {
            key = format!("{key}#{id}");
        }
        conn.execute("UPDATE payments SET transaction_key = ?1 WHERE id = ?2", params![key, id]).map_err(fault)?;
    }
    Ok(())
}

/// Writes effect intents in the caller's transaction (a second write of the same key keeps the first).
fn write_intents(conn: &Connection, intents: &[Envelope], now: DateTime<Utc>) -> Result<(), StoreError> {
    for envelope in intents {
        let body = serde_json::to_string(envelope).map_err(|e| StoreError::Unavailable(crate::ports::Cause::new(e)))?;
        conn.execute(
            "INSERT OR IGNORE INTO intents (key, body, created_at) VALUES (?1, ?2, ?3)",
            params![envelope.idempotency_key, body, ts(now)],
        )
        .map_err(fault)?;
    }
    Ok(())
}

/// Adds `delta` to a counter, in the caller's transaction.
fn bump(conn: &Connection, name: &str, delta: i64) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        params![name, delta],
    )
    .map(drop)
    .map_err(fault)
}

/// The rows `sql` selects, each read by `from_row`.
fn rows_where<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    from_row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(fault)?;
    let rows = stmt.query_map(params, from_row).map_err(fault)?;
    rows.collect::<Result<_, _>>().map_err(fault)
}

fn memberships_where(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Membership>, StoreError> {
    rows_where(conn, sql, params, membership_from)
}
