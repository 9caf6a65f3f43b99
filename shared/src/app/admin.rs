//! The admin side: revoke, statistics, audit log.

use serde::Serialize;

use super::jobs::{Ending, removal};
use super::{App, AppError, actor, require};
use crate::auth::{Caller, Role};
use crate::domain::{AuditEntry, UserId};
use crate::ports::{Page, PageRequest};

#[derive(Debug, Serialize)]
pub struct StatsView {
    pub tokens: TokenStats,
    pub invites: InviteStats,
    pub members: MemberStats,
}

#[derive(Debug, Serialize)]
pub struct TokenStats {
    pub total: i64,
    pub pending: i64,
    pub used: i64,
    pub recent: i64,
}

#[derive(Debug, Serialize)]
pub struct InviteStats {
    pub total: i64,
    pub accepted: i64,
    /// accepted / total, in percent, two decimals.
    pub acceptance_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct MemberStats {
    pub total: i64,
    pub active: i64,
    pub recent_joins: i64,
}

impl App {
    /// Every pending or active membership of the user is revoked, unused tokens too; the member
    /// leaves the channel through the queue. Revoking again finds nothing: 0.
    pub async fn revoke_access(&self, caller: &Caller, user_id: &str, reason: &str) -> Result<usize, AppError> {
        require(caller, Role::Admin)?;
        let user = UserId::parse(user_id)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(AppError::Invalid("reason must be 1 to 500 characters".into()));
        }
        let how = Ending::Revoked(reason);
        let intents = move |m: &crate::domain::Membership| vec![removal(m, how)];
        let revoked = self.store.revoke_user(&user, reason, self.clock.now(), &intents).await?;
        for m in &revoked {
            self.end_access(m, &actor(caller), how, intents(m)).await?;
        }
        tracing::info!(user = %user, by = %caller.user_id, count = revoked.len(), "access revoked");
        Ok(revoked.len())
    }

    pub async fn stats(&self, caller: &Caller) -> Result<StatsView, AppError> {
        require(caller, Role::Admin)?;
        let c = self.store.counters(self.clock.now()).await?;
        let rate = if c.invites_total > 0 {
            (c.invites_accepted as f64 * 10_000.0 / c.invites_total as f64).round() / 100.0
        } else {
            0.0
        };
        Ok(StatsView {
            tokens: TokenStats {
                total: c.tokens_total,
                pending: c.tokens_pending,
                used: c.tokens_used,
                recent: c.tokens_recent,
            },
            invites: InviteStats { total: c.invites_total, accepted: c.invites_accepted, acceptance_rate: rate },
            members: MemberStats {
                total: c.members_total,
                active: c.members_active,
                recent_joins: c.members_recent_joins,
            },
        })
    }

    pub async fn audit_log(
        &self,
        caller: &Caller,
        user: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, AppError> {
        require(caller, Role::Admin)?;
        let user = user.map(UserId::parse).transpose()?;
        Ok(self.store.audit(user.as_ref(), page).await?)
    }
}
