//! Ending access, in one room: a revoke, the end of a period (the expiry sweep), a refund's end
//! (the days its payment bought taken back), and the cancellation of a revoked payer's renewals.
//! Each ends what it ends in the store with the removal's intent in the same write, then queues
//! the removal, tells the member and audits (`end_access`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::jobs::{BATCH, out_of_time};
use super::{AppError, Auditor, Notifier, actor, require};
use crate::auth::{Caller, Role};
use crate::config::Settings;
use crate::domain::{
    AuditAction, Membership, NotificationKind, Payment, Reason, TelegramUserId, TokenHash, UserId, texts,
};
use crate::ports::{AccessStore, Clock, Effect, Envelope, LifecycleStore, PaymentStore, Queue, Stats, Withdrawn};

/// Ending access: revoke, the expiry sweep, a refund's end, cancelling a renewal.
#[derive(Clone)]
pub struct Ending {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lifecycle: Arc<dyn LifecycleStore>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) stats: Arc<dyn Stats>,
}

impl Ending {
    /// Every pending or active membership of the user is revoked, unused tokens too; the member
    /// leaves the channel through the queue. Revoking again finds nothing: 0.
    pub async fn revoke_access(&self, caller: &Caller, user_id: &str, reason: &str) -> Result<usize, AppError> {
        require(caller, Role::Admin)?;
        let user = UserId::parse(user_id)?;
        let reason = Reason::parse(reason)?;
        let reason = reason.as_str();
        let how = EndedBy::Revoked(reason);
        let intents = move |m: &crate::domain::Membership| vec![removal(m, how)];
        let revoked = self.lifecycle.revoke_user(&user, reason, self.clock.now(), &intents).await?;
        for m in &revoked {
            self.end_access(m, &actor(caller), how, intents(m)).await?;
        }
        self.cancel_renewals(&user).await?;
        tracing::info!(user = %user, by = %caller.user_id, count = revoked.len(), "access revoked");
        Ok(revoked.len())
    }

    /// Active memberships past their end and `GRACE_HOURS` are removed, earliest end first; one
    /// a Stars subscription renews waits while Telegram's renewal may still arrive.
    pub(super) async fn expire_subscriptions(
        &self,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<(u64, bool), AppError> {
        let cutoff = now - Duration::hours(i64::from(self.settings.grace_hours));
        let mut processed = 0;
        let mut after = None;
        loop {
            if out_of_time(deadline) {
                return Ok((processed, false));
            }
            let due = self.lifecycle.due_memberships(cutoff, after, BATCH).await?;
            let mut ended = 0;
            for m in &due {
                if m.renewal_awaited(now) {
                    continue;
                }
                // Conditional: a renewal that landed since the read keeps the membership.
                let intents = [removal(m, EndedBy::Expired)];
                if let Some(expired) = self.lifecycle.expire_membership(&m.id, cutoff, now, &intents).await? {
                    ended += 1;
                    self.end_access(&expired, "job:expire-subscriptions", EndedBy::Expired, intents.to_vec()).await?;
                    self.count_if_subscription_lapsed(&expired, now).await?;
                }
            }
            processed += ended;
            // A full page: those it ended are no longer due, so the next page is read from the same
            // place (many members may end at the same instant: an import, a bulk change). Only a
            // page that ended none (renewals awaited) moves past its last end.
            match due.last().and_then(|m| m.expires_at) {
                Some(_) if due.len() == BATCH as usize && ended > 0 => {}
                Some(last) if due.len() == BATCH as usize => after = Some(last),
                _ => return Ok((processed, true)),
            }
        }
    }

    /// A membership that a Stars subscription paid for and that ended unrenewed is a lapse (the
    /// stats' churn). Counted after the expiry, apart from it: a crash in between loses the count,
    /// never the expiry.
    async fn count_if_subscription_lapsed(&self, ended: &Membership, now: DateTime<Utc>) -> Result<(), AppError> {
        if self.settings.offers.in_stars().is_empty() {
            return Ok(());
        }
        let paid = self.payments.payment(&ended.payment_id).await?.and_then(|p| p.stars_paid());
        if paid.is_some_and(|p| p.renewing) {
            self.stats.count_lapse(now).await?;
        }
        Ok(())
    }

    /// One payment, one period: a refund takes back the days this payment bought, no more. The
    /// membership they were in ends when nothing else paid for it (removed, told, audited as a
    /// revoke), else lasts on what the payer's other payments bought. A refunded subscription
    /// renews no more.
    pub(super) async fn withdraw_period(
        &self,
        payment: &Payment,
        charge: Option<&str>,
        by: &str,
        reason: &str,
    ) -> Result<Withdrawn, AppError> {
        let how = EndedBy::Revoked(reason);
        let intents = move |m: &crate::domain::Membership| vec![removal(m, how)];
        // A Stars payment's own token (keyed by its charge), and any the payment was given
        // since (support reinstated it and asked for a new link): the payment's refund was
        // recorded first, so no other token can be issued for it now.
        let mut hashes: Vec<TokenHash> = charge.map(TokenHash::of_stars_charge).into_iter().collect();
        for hash in self.access.live_tokens(&payment.id).await? {
            if !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
        let renewing = payment.stars_paid().is_some_and(|paid| paid.renewing);
        let mut outcome = Withdrawn::Nothing;
        for hash in &hashes {
            let withdrawn = self.lifecycle.withdraw_token(hash, reason, self.clock.now(), &intents).await?;
            match &withdrawn {
                Withdrawn::Revoked(m) => self.end_access(m, by, how, intents(m)).await?,
                Withdrawn::Shortened(m) => {
                    tracing::info!(membership = %m.id, end = ?m.expires_at, "a refunded payment's days taken back");
                    if renewing {
                        self.access.set_renewal(&m.id, None).await?;
                    }
                }
                Withdrawn::Nothing => continue,
            }
            outcome = withdrawn;
        }
        if renewing {
            self.cancel_renewals(&payment.user_id).await?;
        }
        Ok(outcome)
    }

    /// A revoke also stops the user's Stars subscriptions from renewing. Telegram names a
    /// subscription by the charge id of its first payment: per account, the latest subscription's
    /// first payment (its latest renewing payment when the first is not on record).
    pub(crate) async fn cancel_renewals(&self, user: &UserId) -> Result<(), AppError> {
        // Per account: (is a first payment, when) of the payment that names its subscription.
        let mut named: std::collections::BTreeMap<i64, (bool, Payment)> = std::collections::BTreeMap::new();
        for p in self.payments.payments_of(user).await? {
            let account = p.user_info.as_ref().and_then(|i| i["telegram_user_id"].as_i64());
            let (Some(paid), Some(account)) = (p.stars_paid().filter(|s| s.renewing), account) else { continue };
            let first = !paid.renewal;
            let better =
                named.get(&account).is_none_or(|(was_first, q)| (first, p.created_at) > (*was_first, q.created_at));
            if better {
                named.insert(account, (first, p));
            }
        }
        let mut effects = Vec::new();
        for (account, (_, p)) in named {
            let (Ok(account), Some(charge)) = (TelegramUserId::parse(account), p.stars_charge()) else { continue };
            tracing::info!(payment = %p.id, "the Stars subscription's renewal is cancelled");
            effects.push((
                format!("cancel-subscription:{charge}"),
                Effect::CancelSubscription { telegram_user_id: account, charge_id: charge.to_owned() },
            ));
        }
        self.notifier.enqueue(effects).await
    }

    /// Out of the channel (banned until a new payment lifts it), notified in the app, by Telegram
    /// and email. The removal's intent was written with the state change; it is queued now, and if
    /// that fails the next job run queues it again (`relay_intents`).
    pub(crate) async fn end_access(
        &self,
        m: &Membership,
        actor: &str,
        how: EndedBy<'_>,
        intents: Vec<Envelope>,
    ) -> Result<(), AppError> {
        let lang = self.notifier.payer_lang(m).await?;
        let channel = &self.settings.channel_name;
        let (kind, text, action, details) = match how {
            EndedBy::Expired => (
                NotificationKind::AccessExpired,
                texts::expired(lang, channel, renew_by(m)),
                AuditAction::AccessExpired,
                json!({ "membership_id": m.id, "expires_at": m.expires_at }),
            ),
            EndedBy::Revoked(reason) => (
                NotificationKind::AccessRevoked,
                texts::revoked(lang, channel, reason),
                AuditAction::AccessRevoked,
                json!({ "membership_id": m.id, "reason": reason }),
            ),
        };
        if let Err(e) = self.queue.enqueue(intents).await {
            tracing::warn!(membership = %m.id, error = %e, "removal not queued; its intent is queued by the next job run");
        }
        self.notifier.notify_member(m, kind, &text, &format!("{}:{}", action.as_str(), m.id)).await?;
        self.auditor.audit(actor, action, Some(&m.user_id), Some(m.telegram_user_id), details).await
    }
}

#[derive(Clone, Copy)]
pub(crate) enum EndedBy<'a> {
    Expired,
    Revoked(&'a str),
}

impl EndedBy<'_> {
    fn action(self) -> AuditAction {
        match self {
            Self::Expired => AuditAction::AccessExpired,
            Self::Revoked(_) => AuditAction::AccessRevoked,
        }
    }
}

/// The effect that takes an ended membership's account out of the channel, kept banned until a
/// new payment lifts the ban. One per membership and ending.
pub(crate) fn removal(m: &Membership, how: EndedBy<'_>) -> Envelope {
    Envelope {
        idempotency_key: format!("remove:{}:{}", m.id, how.action().as_str()),
        effect: Effect::RemoveMember { telegram_user_id: m.telegram_user_id, keep_banned: true },
    }
}

/// How the member keeps access: Telegram renews a subscription that is still running; a buyer
/// in Stars with no web account buys again in the bot; a web subscriber on the website.
pub(super) fn renew_by(m: &Membership) -> texts::RenewBy {
    if m.renews_until.is_some() {
        texts::RenewBy::Itself
    } else if m.user_id.is_telegram_account() {
        texts::RenewBy::Buy
    } else {
        texts::RenewBy::Website
    }
}
