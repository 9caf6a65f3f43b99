//! Tokens and memberships: issue, bind, open, extend, activate.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::*;
use super::{SqliteStore, bump, fault, get_membership, get_token, insert_membership, memberships_where};
use crate::adapters::stored::{day_bucket, hour_bucket, ts};
use crate::domain::{
    Membership, MembershipId, MembershipStatus, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord,
    TokenStatus, UserId, extended_end,
};
use crate::ports::*;

#[async_trait]
impl AccessStore for SqliteStore {
    async fn issue_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let status: Option<String> = tx
                .query_row("SELECT status FROM payments WHERE id = ?1", [t.payment_id.as_str()], |r| r.get(0))
                .optional()
                .map_err(fault)?;
            if status.and_then(|s| PaymentStatus::parse(&s).ok()).is_some_and(|s| s.is_refund()) {
                return Err(StoreError::Conflict("payment_refunded"));
            }
            // Opened: used, bound and live, or past its end with its days in a membership that
            // runs, or that waits for the join on another live token.
            let opened: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM tokens t WHERE t.payment_id = ?1
                       AND (t.status = 'used' OR (t.status = 'bound' AND t.expires_at > ?2)
                            OR (t.status IN ('bound', 'expired') AND EXISTS (
                                  SELECT 1 FROM memberships m WHERE m.id = t.membership_id
                                    AND (m.status = 'active' OR (m.status = 'pending' AND EXISTS (
                                          SELECT 1 FROM tokens o WHERE o.membership_id = m.id AND o.hash != t.hash
                                            AND o.status = 'bound' AND o.expires_at > ?2))))))",
                    params![t.payment_id.as_str(), ts(t.created_at)],
                    |r| r.get(0),
                )
                .map_err(fault)?;
            if opened > 0 {
                return Err(StoreError::Conflict("already_redeemed"));
            }
            // A pending membership opened by a token we replace will never start.
            tx.execute(
                "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'token replaced'
                 WHERE status = 'pending' AND id IN
                   (SELECT membership_id FROM tokens WHERE payment_id = ?2 AND status = 'bound')",
                params![ts(t.created_at), t.payment_id.as_str()],
            )
            .map_err(fault)?;
            let replaced = tx
                .execute(
                    "UPDATE tokens SET status = 'replaced' WHERE payment_id = ?1 AND status IN ('pending', 'bound')",
                    [t.payment_id.as_str()],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.total", 1)?;
            bump(&tx, "tokens.pending", 1 - replaced as i64)?;
            bump(&tx, &hour_bucket(t.created_at), 1)?;
            insert_token(&tx, t)?;
            tx.commit().map_err(fault)
        })
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.with(|conn| get_token(conn, hash.as_str()))
    }

    async fn live_tokens(&self, payment: &PaymentId) -> Result<Vec<TokenHash>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT hash FROM tokens WHERE payment_id = ?1
                       AND (status IN ('pending', 'bound', 'used') OR (status = 'expired' AND membership_id IS NOT NULL))",
                )
                .map_err(fault)?;
            let hashes = stmt
                .query_map([payment.as_str()], |r| r.get::<_, String>(0))
                .map_err(fault)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fault)?;
            Ok(hashes.into_iter().map(TokenHash::from_stored).collect())
        })
    }

    async fn bind_token(
        &self,
        hash: &TokenHash,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE tokens SET status = 'bound', telegram_user_id = ?1
                 WHERE hash = ?2 AND status = 'pending' AND telegram_user_id IS NULL AND expires_at > ?3",
                params![account.get(), hash.as_str(), ts(now)],
            )
            .map_err(fault)?;
            let token = get_token(conn, hash.as_str())?;
            Ok(token.filter(|t| {
                t.telegram_user_id == Some(account) && matches!(t.status, TokenStatus::Bound | TokenStatus::Used)
            }))
        })
    }

    async fn open_membership(&self, hash: &TokenHash, m: &Membership) -> Result<Applied, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let claimed = tx
                .execute(
                    "UPDATE tokens SET membership_id = ?1 WHERE hash = ?2 AND membership_id IS NULL AND status = 'bound'",
                    params![m.id.as_str(), hash.as_str()],
                )
                .map_err(fault)?;
            if claimed == 0 {
                return already(&tx, hash);
            }
            insert_membership(&tx, m)?;
            tx.commit().map_err(fault)?;
            Ok(Applied::Now(Box::new(m.clone())))
        })
    }

    async fn extend_membership(
        &self,
        hash: &TokenHash,
        id: &MembershipId,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(m) = get_membership(&tx, id.as_str())? else {
                return Err(StoreError::Unavailable(format!("membership {id} vanished").into()));
            };
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Applied::Ended);
            }
            let active = m.status == MembershipStatus::Active;
            let claimed = tx
                .execute(
                    "UPDATE tokens SET membership_id = ?1,
                       status = CASE WHEN ?2 THEN 'used' ELSE status END,
                       used_at = CASE WHEN ?2 THEN ?3 ELSE used_at END
                     WHERE hash = ?4 AND membership_id IS NULL AND status = 'bound'",
                    params![id.as_str(), active, ts(now), hash.as_str()],
                )
                .map_err(fault)?;
            if claimed == 0 {
                return already(&tx, hash);
            }
            let days = get_token(&tx, hash.as_str())?.map_or(0, |t| t.days);
            if active {
                bump(&tx, "tokens.used", 1)?;
                bump(&tx, "tokens.pending", -1)?;
                let end = extended_end(m.expires_at, now, days);
                tx.execute("UPDATE memberships SET expires_at = ?1 WHERE id = ?2", params![ts(end), id.as_str()])
                    .map_err(fault)?;
            } else {
                tx.execute(
                    "UPDATE memberships SET pending_days = pending_days + ?1 WHERE id = ?2",
                    params![days, id.as_str()],
                )
                .map_err(fault)?;
            }
            let updated =
                get_membership(&tx, id.as_str())?.ok_or(StoreError::Unavailable("membership vanished".into()))?;
            tx.commit().map_err(fault)?;
            Ok(Applied::Now(Box::new(updated)))
        })
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| get_membership(conn, id.as_str()))
    }

    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT * FROM memberships WHERE telegram_user_id = ?1 AND status IN ('pending', 'active')
                 ORDER BY id DESC LIMIT 1",
                [account.get()],
                membership_from,
            )
            .optional()
            .map_err(fault)
        })
    }

    async fn last_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT * FROM memberships WHERE telegram_user_id = ?1 ORDER BY id DESC LIMIT 1",
                [account.get()],
                membership_from,
            )
            .optional()
            .map_err(fault)
        })
    }

    async fn account_with_username(&self, username: &str) -> Result<Option<TelegramUserId>, StoreError> {
        let id: Option<i64> = self.with(|conn| {
            conn.query_row(
                "SELECT telegram_user_id FROM memberships WHERE telegram_username = ?1 COLLATE NOCASE
                 ORDER BY id DESC LIMIT 1",
                [username],
                |r| r.get(0),
            )
            .optional()
            .map_err(fault)
        })?;
        id.map(|id| TelegramUserId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
    }

    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM memberships WHERE invite_link = ?1", [link], membership_from)
                .optional()
                .map_err(fault)
        })
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(conn, "SELECT * FROM memberships WHERE user_id = ?1 ORDER BY id DESC", [user.as_str()])
        })
    }

    async fn set_invite(&self, id: &MembershipId, link: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute(
                "UPDATE memberships SET invite_link = ?1, invite_expires_at = ?2 WHERE id = ?3",
                params![link, ts(expires_at), id.as_str()],
            )
            .map_err(fault)?;
            bump(&tx, "invites.total", 1)?;
            tx.commit().map_err(fault)
        })
    }

    async fn activate_membership(
        &self,
        id: &MembershipId,
        period_from: DateTime<Utc>,
        now: DateTime<Utc>,
        username: Option<&str>,
    ) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(m) = get_membership(&tx, id.as_str())?.filter(|m| m.status == MembershipStatus::Pending) else {
                return Ok(None);
            };
            let end = period_from + Duration::days(i64::from(m.pending_days));
            tx.execute(
                "UPDATE memberships SET status = 'active', joined_at = ?1, expires_at = ?2, pending_days = 0, in_channel = 1,
                   telegram_username = COALESCE(?3, telegram_username)
                 WHERE id = ?4",
                params![ts(now), ts(end), username, id.as_str()],
            )
            .map_err(fault)?;
            let used = tx.execute(
                "UPDATE tokens SET status = 'used', used_at = ?1 WHERE membership_id = ?2 AND status = 'bound'",
                params![ts(now), id.as_str()],
            )
            .map_err(fault)?;
            bump(&tx, "tokens.used", used as i64)?;
            bump(&tx, "tokens.pending", -(used as i64))?;
            bump(&tx, "invites.accepted", 1)?;
            bump(&tx, "members.total", 1)?;
            bump(&tx, "members.active", 1)?;
            bump(&tx, &day_bucket(now), 1)?;
            let updated = get_membership(&tx, id.as_str())?;
            tx.commit().map_err(fault)?;
            Ok(updated)
        })
    }

    async fn set_in_channel(&self, id: &MembershipId, in_channel: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE memberships SET in_channel = ?1, left_at = CASE WHEN ?1 THEN left_at ELSE ?2 END WHERE id = ?3",
                params![in_channel, ts(now), id.as_str()],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn set_renewal(&self, id: &MembershipId, until: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("UPDATE memberships SET renews_until = ?1 WHERE id = ?2", params![until.map(ts), id.as_str()])
                .map(drop)
                .map_err(fault)
        })
    }
}

/// Why a token's period was not applied: it was already (by a concurrent or earlier call), or the
/// token is no longer bound (revoked or expired since it was bound), so it opens nothing.
fn already(conn: &Connection, hash: &TokenHash) -> Result<Applied, StoreError> {
    let token = get_token(conn, hash.as_str())?.ok_or(StoreError::Unavailable("token vanished".into()))?;
    Ok(applied_before(&token))
}

/// One token row, as issued (pending) or as the import brings it (bound or used).
pub(super) fn insert_token(conn: &Connection, t: &TokenRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tokens (hash, payment_id, user_id, offer_name, days, status, created_at, expires_at,
           telegram_user_id, membership_id, used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            t.hash.as_str(),
            t.payment_id.as_str(),
            t.user_id.as_str(),
            t.offer_name,
            t.days,
            t.status.as_str(),
            ts(t.created_at),
            ts(t.expires_at),
            t.telegram_user_id.map(TelegramUserId::get),
            t.membership_id.as_ref().map(|m| m.as_str()),
            t.used_at.map(ts),
        ],
    )
    .map(drop)
    .map_err(fault)
}
