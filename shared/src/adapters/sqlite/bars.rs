//! Accounts barred by a channel administrator's removal, and support's way back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::rows::time;
use super::{SqliteStore, bump, fault};
use crate::adapters::stored::ts;
use crate::domain::{AccountBar, PaymentId, TelegramUserId};
use crate::ports::*;

#[async_trait]
impl AccountBars for SqliteStore {
    async fn bar_account(&self, bar: &AccountBar) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO account_bars (telegram_user_id, reason, by, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(telegram_user_id) DO UPDATE SET reason = excluded.reason, by = excluded.by, at = excluded.at",
                params![bar.telegram_user_id.get(), bar.reason, bar.by, ts(bar.at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn account_bar(&self, account: TelegramUserId) -> Result<Option<AccountBar>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM account_bars WHERE telegram_user_id = ?1", [account.get()], |r| {
                Ok(AccountBar { telegram_user_id: account, reason: r.get("reason")?, by: r.get("by")?, at: at(r)? })
            })
            .optional()
            .map_err(fault)
        })
    }

    async fn lift_bar(&self, account: TelegramUserId) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM account_bars WHERE telegram_user_id = ?1", [account.get()])
                .map(|n| n == 1)
                .map_err(fault)
        })
    }

    async fn reopen_payment(&self, payment: &PaymentId) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let open: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM tokens t JOIN memberships m ON m.id = t.membership_id
                     WHERE t.payment_id = ?1 AND m.status IN ('pending', 'active')",
                    [payment.as_str()],
                    |r| r.get(0),
                )
                .map_err(fault)?;
            if open > 0 {
                return Err(StoreError::Conflict("access_still_open"));
            }
            let bound = tx
                .execute(
                    "UPDATE tokens SET status = 'revoked' WHERE payment_id = ?1 AND status = 'bound'",
                    [payment.as_str()],
                )
                .map_err(fault)?;
            let used = tx
                .execute(
                    "UPDATE tokens SET status = 'revoked' WHERE payment_id = ?1 AND status = 'used'",
                    [payment.as_str()],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.pending", -(bound as i64))?;
            tx.commit().map_err(fault)?;
            Ok((bound + used) as u64)
        })
    }
}

fn at(r: &rusqlite::Row) -> rusqlite::Result<DateTime<Utc>> {
    time(r, "at")
}
