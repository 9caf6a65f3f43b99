//! The scheduled jobs' reads and writes, statistics and the job log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::rows::*;
use super::{SqliteStore, bump, fault, get_membership, get_token, memberships_where, write_intents};
use crate::adapters::stored::{active_month_counter, attempt_bucket, counter_names, counters_from, lapse_counter, ts};
use crate::domain::{
    Membership, MembershipId, MembershipStatus, REQUESTED_RUN_DAYS, RequestedRun, RunId, TokenHash, TokenStatus, UserId,
};
use crate::ports::*;

#[async_trait]
impl LifecycleStore for SqliteStore {
    async fn expire_tokens(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let now = ts(now);
            let batch = "SELECT hash FROM tokens WHERE status IN ('pending', 'bound') AND expires_at <= ?1
                         ORDER BY expires_at LIMIT ?2";
            // Memberships opened by a token that expires before the join never start, unless a
            // live token still backs them.
            tx.execute(
                &format!(
                    "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'token expired before joining'
                     WHERE status = 'pending'
                       AND id IN (SELECT membership_id FROM tokens
                                  WHERE hash IN ({batch}) AND status = 'bound' AND membership_id IS NOT NULL)
                       AND NOT EXISTS (SELECT 1 FROM tokens t
                                       WHERE t.membership_id = memberships.id AND t.status = 'bound' AND t.expires_at > ?1)"
                ),
                params![&now, limit],
            )
            .map_err(fault)?;
            let expired = tx
                .execute(&format!("UPDATE tokens SET status = 'expired' WHERE hash IN ({batch})"), params![&now, limit])
                .map_err(fault)?;
            bump(&tx, "tokens.pending", -(expired as i64))?;
            tx.commit().map_err(fault)?;
            Ok(expired as u64)
        })
    }

    async fn due_memberships(
        &self,
        cutoff: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND expires_at <= ?1 AND (?2 IS NULL OR expires_at > ?2)
                 ORDER BY expires_at LIMIT ?3",
                params![ts(cutoff), after.map(ts), limit],
            )
        })
    }

    async fn expire_membership(
        &self,
        id: &MembershipId,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        intents: &[Envelope],
    ) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let changed = tx
                .execute(
                    "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'subscription ended', in_channel = 0
                     WHERE id = ?2 AND status = 'active' AND expires_at <= ?3 AND (renews_until IS NULL OR renews_until <= ?1)",
                    params![ts(now), id.as_str(), ts(cutoff)],
                )
                .map_err(fault)?;
            if changed == 0 {
                return Ok(None);
            }
            bump(&tx, "members.active", -1)?;
            write_intents(&tx, intents, now)?;
            let m = get_membership(&tx, id.as_str())?;
            tx.commit().map_err(fault)?;
            Ok(m)
        })
    }

    async fn ending_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page<Membership>, StoreError> {
        // The cursor is the last (end, id) of the page before.
        let (after_end, after_id) = match page.after.as_deref().and_then(|c| c.split_once('|')) {
            Some((end, id)) => (end.to_owned(), Some(id.to_owned())),
            None => (ts(from), None),
        };
        self.with(|conn| {
            let rows = memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND expires_at <= ?2
                   AND (expires_at > ?1 OR (expires_at = ?1 AND id > ?3))
                 ORDER BY expires_at, id LIMIT ?4",
                params![after_end, ts(until), after_id, page.limit + 1],
            )?;
            Ok(Page::of(rows, page.limit, |m| format!("{}|{}", m.expires_at.map(ts).unwrap_or_default(), m.id)))
        })
    }

    async fn claim_warning(
        &self,
        id: &MembershipId,
        threshold_days: u32,
        period_end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO warnings (membership_id, threshold, period_end) VALUES (?1, ?2, ?3)",
                params![id.as_str(), threshold_days, ts(period_end)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let targets = memberships_where(
                &tx,
                "SELECT * FROM memberships WHERE user_id = ?1 AND status IN ('pending', 'active')",
                [user.as_str()],
            )?;
            let tokens = tx
                .execute(
                    "UPDATE tokens SET status = 'revoked' WHERE user_id = ?1 AND status IN ('pending', 'bound')",
                    [user.as_str()],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.pending", -(tokens as i64))?;
            let mut revoked = Vec::with_capacity(targets.len());
            for m in &targets {
                revoked.push(revoke(&tx, m, reason, now, intents)?);
            }
            tx.commit().map_err(fault)?;
            Ok(revoked)
        })
    }

    async fn revoke_membership(
        &self,
        id: &MembershipId,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(m) = get_membership(&tx, id.as_str())?
                .filter(|m| matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active))
            else {
                return Ok(None);
            };
            let revoked = revoke(&tx, &m, reason, now, intents)?;
            tx.commit().map_err(fault)?;
            Ok(Some(revoked))
        })
    }

    async fn withdraw_token(
        &self,
        hash: &TokenHash,
        reason: &str,
        now: DateTime<Utc>,
        intents: &IntentsFor<'_>,
    ) -> Result<Withdrawn, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(token) = get_token(&tx, hash.as_str())?.filter(|t| t.status != TokenStatus::Revoked) else {
                return Ok(Withdrawn::Nothing);
            };
            tx.execute("UPDATE tokens SET status = 'revoked' WHERE hash = ?1", [hash.as_str()]).map_err(fault)?;
            if matches!(token.status, TokenStatus::Pending | TokenStatus::Bound) {
                bump(&tx, "tokens.pending", -1)?;
            }
            let live = match &token.membership_id {
                Some(id) => get_membership(&tx, id.as_str())?
                    .filter(|m| matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active)),
                None => None,
            };
            let Some(m) = live else {
                tx.commit().map_err(fault)?;
                return Ok(Withdrawn::Nothing);
            };
            // Waiting for the join, it lives on only while another live token keeps it waiting:
            // days left of purchases whose period is over open nothing.
            let waits = m.status != MembershipStatus::Pending || kept_waiting(&tx, m.id.as_str(), hash.as_str(), now)?;
            let outcome = match m.without_days(token.days, now).filter(|_| waits) {
                Some(shorter) => {
                    tx.execute(
                        "UPDATE memberships SET pending_days = ?1, expires_at = ?2 WHERE id = ?3",
                        params![shorter.pending_days, shorter.expires_at.map(ts), m.id.as_str()],
                    )
                    .map_err(fault)?;
                    Withdrawn::Shortened(Box::new(shorter))
                }
                None => Withdrawn::Revoked(Box::new(revoke(&tx, &m, reason, now, intents)?)),
            };
            tx.commit().map_err(fault)?;
            Ok(outcome)
        })
    }

    async fn ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE ended_at >= ?1 AND status IN ('expired', 'revoked')
                 ORDER BY ended_at DESC LIMIT ?2",
                params![ts(since), limit],
            )
        })
    }

    async fn active_in_channel(&self, limit: u32) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND in_channel = 1 ORDER BY expires_at LIMIT ?1",
                params![limit],
            )
        })
    }
}

#[async_trait]
impl Stats for SqliteStore {
    async fn counters(&self, now: DateTime<Utc>) -> Result<Counters, StoreError> {
        self.with(|conn| {
            // One read of every counter the figures need (a counter never written is absent: 0).
            let names = counter_names(now);
            let marks = vec!["?"; names.len()].join(", ");
            let mut stmt =
                conn.prepare(&format!("SELECT name, value FROM counters WHERE name IN ({marks})")).map_err(fault)?;
            let values: std::collections::HashMap<String, i64> = stmt
                .query_map(rusqlite::params_from_iter(&names), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(fault)?
                .collect::<Result<_, _>>()
                .map_err(fault)?;
            Ok(counters_from(now, &|n| values.get(n).copied().unwrap_or(0)))
        })
    }

    async fn count_attempt(&self, attempt: Attempt, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| bump(conn, &attempt_bucket(attempt, at), 1))
    }

    async fn count_lapse(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| bump(conn, &lapse_counter(at), 1))
    }

    async fn record_active_members(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO counters (name, value)
                 SELECT ?1, COALESCE((SELECT value FROM counters WHERE name = 'members.active'), 0) WHERE 1
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [active_month_counter(at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn count_subscription(&self, end: DateTime<Utc>, delta: i64) -> Result<(), StoreError> {
        let (name, delta, _) = crate::adapters::stored::subscription_end(end, delta);
        self.with(|conn| bump(conn, &name, delta))
    }
}

#[async_trait]
impl JobLog for SqliteStore {
    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT at FROM job_runs WHERE job = ?1", [job], |r| time(r, "at")).optional().map_err(fault)
        })
    }

    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO job_runs (job, at) VALUES (?1, ?2) ON CONFLICT(job) DO UPDATE SET at = excluded.at",
                params![job, ts(at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn put_requested_run(&self, run: &RequestedRun) -> Result<(), StoreError> {
        let body = serde_json::to_string(run).map_err(|e| StoreError::Unavailable(crate::ports::Cause::new(e)))?;
        // What DynamoDB's TTL does there: runs asked for more than the kept days ago go.
        let forgotten = run.requested_at - chrono::Duration::days(REQUESTED_RUN_DAYS);
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute("DELETE FROM requested_runs WHERE requested_at < ?1", [ts(forgotten)]).map_err(fault)?;
            tx.execute(
                "INSERT INTO requested_runs (run_id, requested_at, body) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(run_id) DO UPDATE SET body = excluded.body",
                params![run.run_id.as_str(), ts(run.requested_at), body],
            )
            .map_err(fault)?;
            tx.commit().map_err(fault)
        })
    }

    async fn job_cursor(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT cursor FROM job_cursors WHERE job = ?1", [job], |r| r.get(0))
                .optional()
                .map_err(fault)
        })
    }

    async fn set_job_cursor(&self, job: &str, cursor: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO job_cursors (job, cursor) VALUES (?1, ?2) ON CONFLICT(job) DO UPDATE SET cursor = excluded.cursor",
                params![job, cursor],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn requested_run(&self, id: &RunId) -> Result<Option<RequestedRun>, StoreError> {
        let body: Option<String> = self.with(|conn| {
            conn.query_row("SELECT body FROM requested_runs WHERE run_id = ?1", [id.as_str()], |r| r.get(0))
                .optional()
                .map_err(fault)
        })?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(format!("requested run {id}: {e}"))))
            .transpose()
    }

    async fn claim_job(
        &self,
        job: &str,
        slot: JobSlot,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.with(|conn| {
            let taken = conn
                .execute(
                    "INSERT INTO job_slots (job, slot, holder, until) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(job, slot) DO UPDATE SET holder = excluded.holder, until = excluded.until
                     WHERE job_slots.until <= ?5 OR job_slots.holder = excluded.holder",
                    params![job, slot.name(), holder, ts(until), ts(now)],
                )
                .map_err(fault)?;
            if taken == 1 { Ok(None) } else { slot_holder(conn, job, slot) }
        })
    }

    async fn release_job(&self, job: &str, slot: JobSlot, holder: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM job_slots WHERE job = ?1 AND slot = ?2 AND holder = ?3",
                params![job, slot.name(), holder],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn job_holder(&self, job: &str, slot: JobSlot) -> Result<Option<String>, StoreError> {
        self.with(|conn| slot_holder(conn, job, slot))
    }
}

fn slot_holder(conn: &rusqlite::Connection, job: &str, slot: JobSlot) -> Result<Option<String>, StoreError> {
    conn.query_row("SELECT holder FROM job_slots WHERE job = ?1 AND slot = ?2", params![job, slot.name()], |r| r.get(0))
        .optional()
        .map_err(fault)
}

/// A pending or active membership, read in this transaction, revoked with its intents.
fn revoke(
    tx: &rusqlite::Connection,
    m: &Membership,
    reason: &str,
    now: DateTime<Utc>,
    intents: &IntentsFor<'_>,
) -> Result<Membership, StoreError> {
    tx.execute(
        "UPDATE memberships SET status = 'revoked', ended_at = ?1, end_reason = ?2, in_channel = 0 WHERE id = ?3",
        params![ts(now), reason, m.id.as_str()],
    )
    .map_err(fault)?;
    if m.status == MembershipStatus::Active {
        bump(tx, "members.active", -1)?;
    }
    let revoked = get_membership(tx, m.id.as_str())?
        .ok_or_else(|| StoreError::Unavailable("revoked membership vanished".into()))?;
    write_intents(tx, &intents(&revoked), now)?;
    Ok(revoked)
}

/// Does a token of the membership other than `except` keep it waiting for the join (bound,
/// before its end)?
fn kept_waiting(
    tx: &rusqlite::Connection,
    membership: &str,
    except: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM tokens
                          WHERE membership_id = ?1 AND hash != ?2 AND status = 'bound' AND expires_at > ?3)",
        params![membership, except, ts(now)],
        |r| r.get(0),
    )
    .map_err(fault)
}
