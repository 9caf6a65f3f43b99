//! The admin side: reinstate, statistics, audit log (a revoke is in `ending.rs`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::{AppError, Auditor, actor, require};
use crate::auth::{Caller, Role};
use crate::domain::{AuditAction, AuditEntry, Membership, Payment, PaymentId, Reason, TelegramUserId, UserId};
use crate::ports::{
    AccessStore, AccountBars, AuditLog, AuditOf, Clock, LifecycleStore, Page, PageRequest, PaymentStore, Stats,
    StoreError,
};

#[derive(Debug)]
pub struct Reinstated {
    pub bar_lifted: bool,
    pub tokens_retired: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsView {
    pub tokens: TokenStats,
    pub invites: InviteStats,
    pub members: MemberStats,
    /// Members active, this month first, then the eleven before (beside `members`, whose shape
    /// is the API's contract).
    pub members_by_month: Vec<crate::ports::MonthActive>,
    /// The guide's "monitor fraudulent access attempts": the last 24 hours.
    pub attempts: AttemptStats,
    /// Web payments validated, at their offers' `price_cents`: revenue, and per month.
    pub web: crate::ports::WebCounters,
    /// Payments in Telegram Stars: revenue, running subscriptions, and per month the payments,
    /// new subscriptions, renewals and lapses (churn).
    pub stars: crate::ports::StarsCounters,
}

#[derive(Debug, Serialize)]
pub struct AttemptStats {
    pub refused_tokens: i64,
    pub declined_joins: i64,
    pub removed_strangers: i64,
    /// This hour first, then the 23 before.
    pub by_hour: Vec<crate::ports::HourAttempts>,
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

/// A member as support sees them: the web user, their payments and memberships (newest first),
/// and the newest of what the audit log says about them.
#[derive(Debug)]
pub struct MemberFile {
    pub user: UserId,
    pub payments: Vec<Payment>,
    pub memberships: Vec<Membership>,
    /// The newest of the notifications the user was sent (in the app, and by mail with them).
    pub notifications: Vec<crate::domain::Notification>,
    pub audit: Vec<AuditEntry>,
}

/// The admin side: reinstate, statistics, the audit log, a member's file.
#[derive(Clone)]
pub struct Admin {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) lifecycle: Arc<dyn LifecycleStore>,
    pub(crate) audit_log: Arc<dyn AuditLog>,
    pub(crate) auditor: Auditor,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) notifications: Arc<dyn crate::ports::NotificationStore>,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) stats: Arc<dyn Stats>,
}

impl Admin {
    /// Support's way back, audited: lifts a channel administrator's removal of a Telegram account,
    /// and/or lets a payment whose access was revoked or ended have a new link (its opened token is
    /// retired; `409 access_still_open` while that access lasts).
    pub async fn reinstate(
        &self,
        caller: &Caller,
        telegram_user_id: Option<i64>,
        payment_id: Option<&str>,
        reason: &str,
    ) -> Result<Reinstated, AppError> {
        require(caller, Role::Support)?;
        let reason = Reason::parse(reason)?;
        let reason = reason.as_str();
        if telegram_user_id.is_none() && payment_id.is_none() {
            return Err(AppError::Invalid("give telegram_user_id, payment_id or both".into()));
        }
        let account = telegram_user_id.map(TelegramUserId::parse).transpose()?;
        let payment = match payment_id {
            Some(id) => {
                let id = PaymentId::parse(id).map_err(|_| AppError::NotFound("no such payment"))?;
                Some(self.payments.payment(&id).await?.ok_or(AppError::NotFound("no such payment"))?)
            }
            None => None,
        };
        if let Some(p) = payment.as_ref().filter(|p| p.status.is_refund()) {
            return Err(super::access::refunded(p));
        }
        let tokens_retired = match &payment {
            Some(p) => match self.bars.reopen_payment(&p.id).await {
                Ok(n) => n,
                Err(StoreError::Conflict(_)) => {
                    return Err(AppError::Conflict {
                        code: "access_still_open",
                        message: "the access this payment opened is still pending or active; revoke it first".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            },
            None => 0,
        };
        let bar_lifted = match account {
            Some(a) => self.bars.lift_bar(a).await?,
            None => false,
        };
        self.auditor
            .audit(
                &actor(caller),
                AuditAction::Reinstated,
                payment.as_ref().map(|p| &p.user_id),
                account,
                json!({ "reason": reason, "payment_id": payment.as_ref().map(|p| p.id.clone()),
                    "bar_lifted": bar_lifted, "tokens_retired": tokens_retired }),
            )
            .await?;
        tracing::info!(by = %caller.user_id, bar_lifted, tokens_retired, "reinstated");
        Ok(Reinstated { bar_lifted, tokens_retired })
    }

    pub async fn stats(&self, caller: &Caller) -> Result<StatsView, AppError> {
        require(caller, Role::Admin)?;
        let c = self.stats.counters(self.clock.now()).await?;
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
            members_by_month: c.members_active_by_month,
            attempts: AttemptStats {
                refused_tokens: c.refused_tokens_recent,
                declined_joins: c.declined_joins_recent,
                removed_strangers: c.removed_strangers_recent,
                by_hour: c.attempts_by_hour,
            },
            web: c.web,
            stars: c.stars,
        })
    }

    /// The web user of an account's latest membership.
    async fn user_of(&self, account: TelegramUserId) -> Result<Option<UserId>, AppError> {
        Ok(self.access.last_membership(account).await?.map(|m| m.user_id))
    }

    /// The web user of the account a membership last named with this @username.
    async fn user_named(&self, username: &str) -> Result<Option<UserId>, AppError> {
        match self.access.account_with_username(username).await? {
            Some(account) => self.user_of(account).await,
            None => Ok(None),
        }
    }

    /// A user's payments and memberships, newest first.
    async fn records_of(&self, user: &UserId) -> Result<(Vec<Payment>, Vec<Membership>), AppError> {
        Ok((self.payments.payments_of(user).await?, self.access.memberships_of(user).await?))
    }

    /// The audit log, newest first: everyone's, one user's or one kind's (`action`), not both.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        user: Option<&str>,
        action: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, AppError> {
        require(caller, Role::Admin)?;
        let user = user.map(UserId::parse).transpose()?;
        let action = action.map(AuditAction::parse).transpose()?;
        let of = match (&user, action) {
            (None, None) => AuditOf::Everyone,
            (Some(user), None) => AuditOf::User(user),
            (None, Some(action)) => AuditOf::Action(action),
            (Some(_), Some(_)) => return Err(AppError::Invalid("filter by user or by action, not both".into())),
        };
        Ok(self.audit_log.audit(of, page).await?)
    }

    /// A member, looked up by Telegram id or @username (the web user of the account's latest
    /// membership) or by web user id: on keys, never a scan. A bare word is a web user id first,
    /// then a username; `@name` is a username only.
    pub async fn member(&self, caller: &Caller, query: &str) -> Result<MemberFile, AppError> {
        require(caller, Role::Support)?;
        let query = query.trim();
        let not_found = || AppError::NotFound("no member with that Telegram id, @username or user id");
        let account = query.parse::<i64>().ok().and_then(|id| TelegramUserId::parse(id).ok());
        let mut user = match (account, query.strip_prefix('@')) {
            (Some(account), _) => self.user_of(account).await?.map_or_else(|| UserId::parse(query), Ok)?,
            (None, Some(name)) => self.user_named(name).await?.ok_or_else(not_found)?,
            (None, None) => UserId::parse(query)?,
        };
        let mut records = self.records_of(&user).await?;
        // A bare word that is no web user's: the account that @word names, if any.
        if records.0.is_empty()
            && records.1.is_empty()
            && account.is_none()
            && !query.starts_with('@')
            && let Some(named) = self.user_named(query).await?
        {
            records = self.records_of(&named).await?;
            user = named;
        }
        let (payments, memberships) = records;
        if payments.is_empty() && memberships.is_empty() {
            return Err(not_found());
        }
        let audit = self.audit_log.audit(AuditOf::User(&user), &PageRequest { limit: 50, after: None }).await?.items;
        let newest = PageRequest { limit: 20, after: None };
        let notifications = self.notifications.notifications(&user, &newest, self.clock.now()).await?.items;
        Ok(MemberFile { user, payments, memberships, notifications, audit })
    }

    /// The active members, a page at a time by the end of their period (the export): read on
    /// the index by end, never a scan.
    pub async fn active_members(&self, caller: &Caller, page: &PageRequest) -> Result<Page<Membership>, AppError> {
        require(caller, Role::Admin)?;
        // Every end there can be, in the stores' own format (four-digit years).
        let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let until = chrono::DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(from);
        Ok(self.lifecycle.ending_between(from, until, page).await?)
    }
}
