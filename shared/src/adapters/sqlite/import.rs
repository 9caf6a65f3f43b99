//! Records brought over from the system telegate replaces, each written once with its counters.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::access::insert_token;
use super::notifications::insert_notification;
use super::payments::insert_payment;
use super::rows::time;
use super::{SqliteStore, bump, fault, insert_membership};
use crate::adapters::stored::{membership_counters, token_counters, ts};
use crate::domain::{Exemption, TelegramUserId};
use crate::ports::*;

fn exists(conn: &Connection, sql: &str, key: impl rusqlite::ToSql) -> Result<bool, StoreError> {
    conn.query_row(sql, [key], |_| Ok(())).optional().map(|r| r.is_some()).map_err(fault)
}

fn write(conn: &Connection, record: &Imported) -> Result<Written, StoreError> {
    match record {
        Imported::Payment { payment, .. } => {
            if exists(conn, "SELECT 1 FROM payments WHERE id = ?1", payment.id.as_str())? {
                return Ok(Written::Already);
            }
            match insert_payment(conn, payment) {
                Ok(()) => {}
                Err(StoreError::Conflict(code)) => return Ok(Written::Refused(code)),
                Err(e) => return Err(e),
            }
        }
        Imported::Token(t) => {
            if exists(conn, "SELECT 1 FROM tokens WHERE hash = ?1", t.hash.as_str())? {
                return Ok(Written::Already);
            }
            insert_token(conn, t)?;
            for (name, delta, _) in token_counters(t) {
                bump(conn, &name, delta)?;
            }
        }
        Imported::Membership { membership: m, .. } => {
            if exists(conn, "SELECT 1 FROM memberships WHERE id = ?1", m.id.as_str())? {
                return Ok(Written::Already);
            }
            insert_membership(conn, m)?;
            for (name, delta, _) in membership_counters(m) {
                bump(conn, &name, delta)?;
            }
        }
        Imported::Notification(n) => {
            if exists(conn, "SELECT 1 FROM notifications WHERE id = ?1", n.id.as_str())? {
                return Ok(Written::Already);
            }
            insert_notification(conn, n)?;
        }
        Imported::Exempt(e) => {
            let inserted = conn
                .execute(
                    "INSERT INTO exempt_accounts (telegram_user_id, note, at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(telegram_user_id) DO NOTHING",
                    params![e.telegram_user_id.get(), e.note, ts(e.at)],
                )
                .map_err(fault)?;
            if inserted == 0 {
                return Ok(Written::Already);
            }
        }
    }
    Ok(Written::New)
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import(&self, records: &[Imported]) -> Result<Vec<Written>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let written = records.iter().map(|r| write(&tx, r)).collect::<Result<Vec<_>, _>>()?;
            tx.commit().map_err(fault)?;
            Ok(written)
        })
    }
}

#[async_trait]
impl Exemptions for SqliteStore {
    async fn exemption(&self, account: TelegramUserId) -> Result<Option<Exemption>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM exempt_accounts WHERE telegram_user_id = ?1", [account.get()], |r| {
                Ok(Exemption { telegram_user_id: account, note: r.get("note")?, at: time(r, "at")? })
            })
            .optional()
            .map_err(fault)
        })
    }
}
