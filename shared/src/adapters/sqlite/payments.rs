//! Payments and their unique transaction ids.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::rows::*;
use super::{SqliteStore, bump, fault, is_unique_violation, rows_where};
use crate::adapters::stored::{payment_counters, refund_counters, review_counters, ts};
use crate::domain::{Payment, PaymentId, PaymentStatus, UserId, transaction_key};
use crate::ports::*;

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn insert_payment(&self, p: &Payment) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            insert_payment(&tx, p)?;
            tx.commit().map_err(fault)
        })
    }

    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM payments WHERE id = ?1", [id.as_str()], payment_from)
                .optional()
                .map_err(fault)
        })
    }

    async fn payment_with_transaction(&self, transaction_id: &str) -> Result<Option<Payment>, StoreError> {
        let key = transaction_key(transaction_id);
        self.with(|conn| {
            conn.query_row("SELECT * FROM payments WHERE transaction_key = ?1", [key], payment_from)
                .optional()
                .map_err(fault)
        })
    }

    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError> {
        self.with(|conn| {
            rows_where(
                conn,
                "SELECT * FROM payments WHERE user_id = ?1 ORDER BY id DESC",
                [user.as_str()],
                payment_from,
            )
        })
    }

    async fn list_payments(
        &self,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<Payment>, StoreError> {
        self.with(|conn| {
            let rows = rows_where(
                conn,
                "SELECT * FROM payments WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2)
                 ORDER BY id DESC LIMIT ?3",
                params![status.map(PaymentStatus::as_str), page.after, page.limit + 1],
                payment_from,
            )?;
            Ok(Page::of(rows, page.limit, |p| p.id.to_string()))
        })
    }

    async fn review_payment(&self, id: &PaymentId, r: &Review) -> Result<Option<Payment>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let changed = tx
                .execute(
                    "UPDATE payments SET status = ?1, reviewed_by = ?2, admin_notes = COALESCE(?3, admin_notes),
                       reject_reason = ?4, transaction_id = COALESCE(?5, transaction_id), updated_at = ?6,
                       transaction_key = COALESCE(?8, transaction_key), revenue_cents = ?9
                     WHERE id = ?7 AND status = 'transaction_submitted'",
                    params![
                        r.to.as_str(),
                        r.by.as_str(),
                        r.admin_notes,
                        r.reason,
                        r.transaction_id,
                        ts(r.at),
                        id.as_str(),
                        r.transaction_id.as_deref().map(transaction_key),
                        r.counted_cents(),
                    ],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) { StoreError::Conflict("transaction_id_taken") } else { fault(e) }
                })?;
            if changed == 0 {
                return Ok(None);
            }
            // A validation's web revenue counts in the same write.
            for (name, delta, _) in review_counters(r) {
                bump(&tx, &name, delta)?;
            }
            let reviewed = tx
                .query_row("SELECT * FROM payments WHERE id = ?1", [id.as_str()], payment_from)
                .optional()
                .map_err(fault)?;
            tx.commit().map_err(fault)?;
            Ok(reviewed)
        })
    }

    async fn move_refund(
        &self,
        id: &PaymentId,
        to: PaymentStatus,
        note: Option<&str>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Payment>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let current = tx
                .query_row("SELECT * FROM payments WHERE id = ?1", [id.as_str()], payment_from)
                .optional()
                .map_err(fault)?;
            let Some(mut p) = current.filter(|p| p.status.may_become(to)) else { return Ok(None) };
            tx.execute(
                "UPDATE payments SET status = ?1, refund_note = COALESCE(?2, refund_note), updated_at = ?3 WHERE id = ?4",
                params![to.as_str(), note, ts(at), id.as_str()],
            )
            .map_err(fault)?;
            if to == PaymentStatus::Refunded {
                for (name, delta, _) in refund_counters(&p, at) {
                    super::bump(&tx, &name, delta)?;
                }
            }
            tx.commit().map_err(fault)?;
            (p.status, p.updated_at) = (to, at);
            p.refund_note = note.map(str::to_owned).or(p.refund_note);
            Ok(Some(p))
        })
    }
}

/// Fails with `Conflict("transaction_id_taken")` when another payment has the transaction id.
pub(super) fn insert_payment(conn: &rusqlite::Connection, p: &Payment) -> Result<(), StoreError> {
    let user_info = p.user_info.as_ref().map(|v| v.to_string());
    conn.execute(
        "INSERT INTO payments (id, user_id, email, offer_id, transaction_id, user_info, status, admin_notes,
           reject_reason, created_at, updated_at, reviewed_by, lang, transaction_key, refund_note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            p.id.as_str(),
            p.user_id.as_str(),
            p.email,
            p.offer_id,
            p.transaction_id,
            user_info,
            p.status.as_str(),
            p.admin_notes,
            p.reject_reason,
            ts(p.created_at),
            ts(p.updated_at),
            p.reviewed_by.as_ref().map(UserId::as_str),
            p.lang.as_str(),
            p.transaction_key(),
            p.refund_note,
        ],
    )
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("transaction_id_taken") } else { fault(e) })?;
    // A payment in Stars counts its revenue with it (the caller's transaction).
    for (name, delta, _) in payment_counters(p) {
        super::bump(conn, &name, delta)?;
    }
    Ok(())
}
