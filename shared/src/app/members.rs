//! What happens in the channel: join requests, joins and departures.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{AppError, Auditor, Meaning, Notifier, telegram_actor};
use crate::config::Settings;
use crate::domain::{
    AccountBar, AuditAction, ChatJoinRequest, ChatMemberStatus, ChatMemberUpdated, Membership, MembershipStatus,
    NotificationKind, Payment, TelegramUserId, TokenHash, TokenRecord, TokenStatus, texts,
};
use crate::ports::{AccessStore, AccountBars, Clock, Effect, LifecycleStore, PaymentStore};

/// The channel's membership events: join requests and members joining, leaving or removed.
#[derive(Clone)]
pub struct Members {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) auditor: Auditor,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lifecycle: Arc<dyn LifecycleStore>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) settings: Arc<Settings>,
}

impl Members {
    /// Approves only an account that redeemed a token (an invite still open, or an active
    /// membership); declines anyone else and, when the link was one of ours, records whose it was.
    pub(crate) async fn on_join_request(&self, update_id: i64, request: &ChatJoinRequest) -> Result<(), AppError> {
        let Ok(account) = TelegramUserId::parse(request.from.id) else {
            return Ok(());
        };
        let now = self.clock.now();
        let link = request.invite_link.as_ref().map(|l| l.invite_link.clone());
        let link_owner = match &link {
            Some(link) => self.access.membership_by_invite(link).await?,
            None => None,
        };
        let current = self.access.current_membership(account).await?;
        let barred = self.bars.account_bar(account).await?.is_some();
        let entitled = current.as_ref().filter(|m| m.admits(now) && !barred);
        // The effects an update decides are keyed by its id: Telegram's retries of it are one event.
        let key = format!("update:{update_id}:join-request");
        let actor = telegram_actor(account);
        if let Some(m) = entitled {
            tracing::info!(telegram_user = %account, membership = %m.id, "join request approved");
            self.auditor
                .audit(
                    &actor,
                    AuditAction::JoinApproved,
                    Some(&m.user_id),
                    Some(account),
                    json!({ "membership_id": m.id, "invite_link": link }),
                )
                .await?;
            return self.notifier.enqueue(vec![(key, Effect::ApproveJoinRequest { telegram_user_id: account })]).await;
        }
        let leaked_from = link_owner.as_ref().filter(|o| o.telegram_user_id != account);
        match leaked_from {
            Some(owner) => tracing::warn!(
                telegram_user = %account,
                link_of_membership = %owner.id,
                link_of_telegram_user = %owner.telegram_user_id,
                "join request with another member's invite link declined"
            ),
            None => {
                tracing::info!(telegram_user = %account, "join request without a membership declined")
            }
        }
        self.auditor
            .audit(
                &actor,
                AuditAction::JoinDeclined,
                leaked_from.map(|o| &o.user_id),
                Some(account),
                json!({
                    "invite_link": link,
                    "link_of_membership": leaked_from.map(|o| o.id.clone()),
                    "link_of_telegram_user": leaked_from.map(|o| o.telegram_user_id),
                }),
            )
            .await?;
        self.notifier.enqueue(vec![(key, Effect::DeclineJoinRequest { telegram_user_id: account })]).await
    }

    pub(crate) async fn on_chat_member(&self, update_id: i64, update: &ChatMemberUpdated) -> Result<(), AppError> {
        let user = &update.user;
        let Ok(account) = TelegramUserId::parse(user.id) else {
            return Ok(());
        };
        let (before, after) = (update.before, update.after);
        // Administrators and the owner are never touched, nor bots the admins add.
        if after.is_staff() || user.is_bot {
            return Ok(());
        }
        // An administrator demoted to member is from now on in the channel like anyone: kept with
        // a membership (or an exemption), otherwise removed as a stranger.
        if before.is_staff() {
            return if after.is_in_chat() { self.on_join(update_id, update, account).await } else { Ok(()) };
        }
        let by_an_administrator = after == ChatMemberStatus::Banned
            && !update.from.is_bot
            && Some(update.from.id) != self.settings.bot_id()
            && update.from.id != user.id;
        match (before.is_in_chat(), after.is_in_chat()) {
            (false, true) => self.on_join(update_id, update, account).await,
            (_, false) if by_an_administrator => self.on_removal_by_administrator(update, account).await,
            (true, false) => self.on_leave(account).await,
            _ => Ok(()),
        }
    }

    /// A channel administrator banned the account by hand: that decision is respected. The
    /// account is barred (no `/start`, approval or unban lets it back) and its membership ends,
    /// until support reinstates it.
    async fn on_removal_by_administrator(
        &self,
        update: &ChatMemberUpdated,
        account: TelegramUserId,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let by = telegram_actor(TelegramUserId::parse(update.from.id)?);
        let reason = "removed by a channel administrator";
        self.bars
            .bar_account(&AccountBar { telegram_user_id: account, reason: reason.into(), by: by.clone(), at: now })
            .await?;
        let current = self.access.current_membership(account).await?;
        tracing::warn!(telegram_user = %account, by = %by, "removed by a channel administrator: barred until support reinstates");
        self.auditor
            .audit(
                &by,
                AuditAction::MemberRemoved,
                current.as_ref().map(|m| &m.user_id),
                Some(account),
                json!({ "reason": reason, "membership_id": current.as_ref().map(|m| m.id.clone()) }),
            )
            .await?;
        if let Some(m) = current {
            // Already out of the channel: nothing to queue, only the store to bring in line. Only
            // this account's membership ends: the payer's other accounts keep what they hold.
            if let Some(ended) = self.lifecycle.revoke_membership(&m.id, reason, now, &|_| Vec::new()).await? {
                let lang = self.notifier.payer_lang(&ended).await?;
                let text = texts::revoked(lang, &self.settings.channel_name, reason);
                self.notifier
                    .notify_member(
                        &ended,
                        NotificationKind::AccessRevoked,
                        &text,
                        &format!("access_revoked:{}", ended.id),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Where a membership's paid days start: at the join, unless a Stars purchase opened it. Then
    /// at the payment, as Telegram charged for it (and a renewal lands at its end): the first
    /// purchase whose days are still in it (a refunded one's were taken back), and never so early
    /// that a purchase left in it ends before the period Telegram charged it for (its token's end,
    /// until which its buyer may join).
    async fn period_start(&self, m: &Membership, now: DateTime<Utc>) -> Result<DateTime<Utc>, AppError> {
        let Some(opener) = self.payments.payment(&m.payment_id).await? else { return Ok(now) };
        let Some(opened) = self.purchase_token(&opener, m).await? else {
            // A web link, or a new link support issued for a reinstated payment.
            return Ok(now);
        };
        // The purchases whose days are in it: the opener (read by its key, as the user's list
        // may lag behind a payment just made) and those that extended it.
        let mut purchases = vec![(opener.created_at, opened)];
        for p in self.payments.payments_of(&m.user_id).await? {
            if p.id != opener.id
                && let Some(t) = self.purchase_token(&p, m).await?
            {
                purchases.push((p.created_at, t));
            }
        }
        let (mut first, mut last_end) = (now, None);
        for (paid_at, t) in purchases.into_iter().filter(|(_, t)| t.status != TokenStatus::Revoked) {
            first = first.min(paid_at);
            last_end = last_end.max(Some(t.expires_at));
        }
        let latest = last_end.map_or(first, |end| end - Duration::days(i64::from(m.pending_days)));
        Ok(first.max(latest).min(now))
    }

    /// The token of `p`'s Stars charge, when it opened or extended `m`.
    async fn purchase_token(&self, p: &Payment, m: &Membership) -> Result<Option<TokenRecord>, AppError> {
        let Some(charge) = p.stars_charge() else { return Ok(None) };
        let token = self.access.token(&TokenHash::of_stars_charge(charge)).await?;
        Ok(token.filter(|t| t.membership_id.as_ref() == Some(&m.id)))
    }

    async fn on_join(
        &self,
        update_id: i64,
        update: &ChatMemberUpdated,
        account: TelegramUserId,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let user = &update.user;
        let actor = telegram_actor(account);
        match self.access.current_membership(account).await? {
            Some(m) if m.status == MembershipStatus::Pending => {
                let from = self.period_start(&m, now).await?;
                let Some(active) = self.access.activate_membership(&m.id, from, now, user.username.as_deref()).await?
                else {
                    // Activated by a concurrent delivery of the same join.
                    return Ok(());
                };
                let end = active.expires_at.unwrap_or(now);
                tracing::info!(membership = %active.id, telegram_user = %account, end = %end, "member joined");
                self.auditor
                    .audit(
                        &actor,
                        AuditAction::MemberJoined,
                        Some(&active.user_id),
                        Some(account),
                        json!({ "membership_id": active.id, "expires_at": end }),
                    )
                    .await?;
                let lang = user.lang;
                let text = texts::joined(lang, &self.settings.channel_name, end);
                self.notifier
                    .notify_member(&active, NotificationKind::AccessGranted, &text, &format!("joined:{}", active.id))
                    .await?;
                if let Some(link) = &active.invite_link {
                    self.notifier
                        .enqueue(vec![(format!("revoke:{link}"), Effect::RevokeInvite { link: link.clone() })])
                        .await?;
                }
                Ok(())
            }
            Some(m) if m.is_active(now) => {
                tracing::info!(membership = %m.id, telegram_user = %account, "member back in the channel");
                self.access.set_in_channel(&m.id, true, now).await?;
                self.auditor
                    .audit_as(
                        Meaning::Rejoined,
                        &actor,
                        AuditAction::MemberJoined,
                        Some(&m.user_id),
                        Some(account),
                        json!({ "membership_id": m.id, "rejoined": true }),
                    )
                    .await
            }
            _ => {
                // Not paid for: out, but not banned, so that paying later lets them in.
                let link = update.invite_link.as_ref().map(|l| l.invite_link.clone());
                let owner = match &link {
                    Some(l) => self.access.membership_by_invite(l).await?,
                    None => None,
                };
                tracing::warn!(telegram_user = %account, link_of_membership = ?owner.as_ref().map(|o| &o.id), "join without an active membership: removing");
                self.auditor.audit_as(
                    Meaning::Stranger,
                    &actor,
                    AuditAction::MemberRemoved,
                    owner.as_ref().map(|o| &o.user_id),
                    Some(account),
                    json!({ "reason": "no active membership", "invite_link": link, "link_of_membership": owner.as_ref().map(|o| o.id.clone()) }),
                )
                .await?;
                self.notifier
                    .enqueue(vec![(
                        format!("update:{update_id}:remove-stranger"),
                        Effect::RemoveMember { telegram_user_id: account, keep_banned: false },
                    )])
                    .await
            }
        }
    }

    async fn on_leave(&self, account: TelegramUserId) -> Result<(), AppError> {
        let Some(m) = self.access.current_membership(account).await? else {
            return Ok(());
        };
        if m.status != MembershipStatus::Active {
            return Ok(());
        }
        tracing::info!(membership = %m.id, telegram_user = %account, "member left the channel");
        self.access.set_in_channel(&m.id, false, self.clock.now()).await?;
        self.auditor
            .audit(
                &telegram_actor(account),
                AuditAction::MemberLeft,
                Some(&m.user_id),
                Some(account),
                json!({ "membership_id": m.id }),
            )
            .await
    }
}
