//! Opening a token in Telegram: bound to the first account that opens it, a membership opened or
//! extended, and a personal invite when the account is not in the channel.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{AppError, Auditor, telegram_actor};
use crate::config::Settings;
use crate::domain::{
    AccessToken, AuditAction, Lang, Membership, MembershipId, MembershipStatus, TelegramUserId, TgUser, TokenRecord,
    TokenStatus, texts,
};
use crate::ports::{
    AccessStore, AccountBars, Applied, Clock, InviteRequest, LinkButton, PaymentStore, RateLimits, Telegram,
};

/// What opening a token in Telegram led to.
#[derive(Debug)]
pub enum Redemption {
    /// Unknown, expired, replaced or bound to another account: one answer for all.
    Refused,
    Invite {
        link: String,
    },
    Extended {
        end: DateTime<Utc>,
    },
    AlreadyMember {
        end: DateTime<Utc>,
    },
    /// The account's current membership was paid by another web account: the token is not used.
    OtherPayer,
}

/// Lets a token's account into the channel: redeems `/start <token>`, opens or extends the membership, invites.
#[derive(Clone)]
pub struct Admission {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) auditor: Auditor,
    pub(crate) bars: Arc<dyn AccountBars>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Arc<dyn RateLimits>,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) telegram: Arc<dyn Telegram>,
}

impl Admission {
    /// `/start <token>` from `from`: bind, open or extend the membership, and invite when needed.
    pub(crate) async fn redeem(
        &self,
        from: &TgUser,
        account: TelegramUserId,
        raw: &str,
    ) -> Result<Redemption, AppError> {
        let outcome = self.redeem_token(from, account, raw).await?;
        let token = || AccessToken::parse(raw).map(|t| t.hash().label().to_owned()).unwrap_or_default();
        let refused = match outcome {
            Redemption::OtherPayer => {
                Some(json!({ "token": token(), "reason": "the account's current membership has another payer" }))
            }
            Redemption::Refused => {
                tracing::info!(telegram_user = %account, token = token(), "token refused");
                Some(json!({ "token": token() }))
            }
            _ => None,
        };
        if let Some(details) = refused {
            let actor = telegram_actor(account);
            self.auditor.audit(&actor, AuditAction::TokenRefused, None, Some(account), details).await?;
        }
        Ok(outcome)
    }

    async fn redeem_token(&self, from: &TgUser, account: TelegramUserId, raw: &str) -> Result<Redemption, AppError> {
        let Ok(token) = AccessToken::parse(raw) else {
            return Ok(Redemption::Refused);
        };
        // A channel administrator removed this account by hand: no token lets it back by itself.
        if self.bars.account_bar(account).await?.is_some() {
            tracing::info!(telegram_user = %account, "barred account: /start refused");
            return Ok(Redemption::Refused);
        }
        let hash = token.hash();
        let now = self.clock.now();
        let Some(record) = self.access.token(&hash).await? else {
            return Ok(Redemption::Refused);
        };
        // A refund takes back every token of its payment; one a store kept from before that
        // (an earlier release's refund did not reach a link issued since) buys nothing either.
        if self.payments.payment(&record.payment_id).await?.is_some_and(|p| p.status.is_refund()) {
            tracing::info!(token = record.hash.label(), "a token of a refunded payment: refused");
            return Ok(Redemption::Refused);
        }
        let foreign = record.telegram_user_id.is_some_and(|t| t != account);
        // One period, one payer: a token of another web account is never added to this account's
        // current membership (revoking that payer would not remove what they paid for). It stays
        // unbound, for another Telegram account or for after this membership ends.
        if record.membership_id.is_none()
            && let Some(current) = self.access.current_membership(account).await?
            && current.user_id != record.user_id
            && current.holds_place(now)
        {
            tracing::info!(telegram_user = %account, token = record.hash.label(), "token of another payer: not applied");
            return Ok(Redemption::OtherPayer);
        }
        let record = match record.status {
            _ if foreign => return Ok(Redemption::Refused),
            TokenStatus::Pending if !record.is_expired(now) => {
                match self.access.bind_token(&hash, account, now).await? {
                    Some(bound) => bound,
                    None => return Ok(Redemption::Refused),
                }
            }
            TokenStatus::Bound if !record.is_expired(now) => record,
            // A used token keeps helping its own account back in while the membership lasts.
            TokenStatus::Used => record,
            _ => return Ok(Redemption::Refused),
        };
        self.admit(&record, from, account, now).await
    }

    /// A token bound to `account` (redeemed by it, or a Stars payment's own): the membership it
    /// opens or extends, and the invite when the account is not in the channel.
    pub(crate) async fn admit(
        &self,
        record: &TokenRecord,
        from: &TgUser,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Redemption, AppError> {
        tracing::info!(token = record.hash.label(), telegram_user = %account, "token redeemed");
        self.auditor
            .audit(
                &telegram_actor(account),
                AuditAction::TokenRedeemed,
                Some(&record.user_id),
                Some(account),
                json!({ "token": record.hash.label(), "payment_id": record.payment_id }),
            )
            .await?;

        let (membership, extended) = match &record.membership_id {
            Some(id) => (self.access.membership(id).await?, false),
            None => self.apply_token(record, from, account, now).await?,
        };
        let Some(membership) =
            membership.filter(|m| matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active))
        else {
            return Ok(Redemption::Refused);
        };
        if membership.status == MembershipStatus::Active {
            let Some(end) = membership.expires_at.filter(|_| membership.is_active(now)) else {
                return Ok(Redemption::Refused);
            };
            if membership.in_channel {
                return Ok(if extended { Redemption::Extended { end } } else { Redemption::AlreadyMember { end } });
            }
        }
        let link = self.invite(&membership).await?;
        Ok(Redemption::Invite { link })
    }

    /// Opens a membership with the token's period, or adds it to the account's current one.
    /// Returns the membership and whether an active one was extended.
    async fn apply_token(
        &self,
        record: &TokenRecord,
        from: &TgUser,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<(Option<Membership>, bool), AppError> {
        let current = self.access.current_membership(account).await?;
        let extended = match &current {
            Some(m) => self.access.extend_membership(&record.hash, &m.id, now).await?,
            None => Applied::Ended,
        };
        let (applied, extending) = match extended {
            // No membership to extend, or it ended meanwhile: the token opens a new one.
            Applied::Ended => {
                let m = Membership::pending(MembershipId::generate(now)?, record, account, from.username.clone(), now);
                (self.access.open_membership(&record.hash, &m).await?, false)
            }
            other => (other, current.is_some_and(|c| c.status == MembershipStatus::Active)),
        };
        Ok(match applied {
            Applied::Now(m) => {
                let extended = extending;
                if extended {
                    tracing::info!(membership = %m.id, end = ?m.expires_at, "membership extended");
                    self.auditor
                        .audit(
                            &telegram_actor(account),
                            AuditAction::MembershipExtended,
                            Some(&m.user_id),
                            Some(account),
                            json!({ "membership_id": m.id, "token": record.hash.label(), "expires_at": m.expires_at }),
                        )
                        .await?;
                }
                (Some(*m), extended)
            }
            Applied::Already(id) => (self.access.membership(&id).await?, false),
            Applied::Ended => (None, false),
        })
    }

    /// A personal invite for a membership: lift an earlier ban, retire the previous link, create a
    /// fresh one bound to the membership by its name.
    pub(crate) async fn invite(&self, membership: &Membership) -> Result<String, AppError> {
        let account = membership.telegram_user_id;
        self.telegram.unban(account, true).await?;
        if let Some(old) = &membership.invite_link
            && let Err(e) = self.telegram.revoke_invite(old).await
        {
            tracing::warn!(membership = %membership.id, error = %e, "could not revoke the previous invite link");
        }
        let expire_at = self.clock.now() + Duration::seconds(i64::from(self.settings.invite_ttl_seconds));
        let request =
            InviteRequest { name: format!("tg-{}", membership.id), expire_at, mode: self.settings.invite_mode };
        let link = self.telegram.create_invite(&request).await?;
        self.access.set_invite(&membership.id, &link, expire_at).await?;
        tracing::info!(membership = %membership.id, mode = ?request.mode, "invite link created");
        self.auditor
            .audit(
                &telegram_actor(account),
                AuditAction::InviteCreated,
                Some(&membership.user_id),
                Some(account),
                json!({ "membership_id": membership.id, "mode": request.mode, "expires_at": expire_at }),
            )
            .await?;
        Ok(link)
    }

    pub(crate) fn redemption_reply(&self, redemption: Redemption, lang: Lang) -> (String, Vec<LinkButton>) {
        let channel = &self.settings.channel_name;
        match redemption {
            Redemption::Refused => (texts::refusal(lang), Vec::new()),
            Redemption::Invite { link } => (
                texts::invite(lang, channel, u64::from(self.settings.invite_ttl_seconds).div_ceil(60)),
                vec![LinkButton::link(texts::join_button(lang), link)],
            ),
            Redemption::Extended { end } => (texts::extended(lang, channel, end), Vec::new()),
            Redemption::AlreadyMember { end } => (texts::already_member(lang, channel, end), Vec::new()),
            Redemption::OtherPayer => (texts::other_payer(lang, channel), Vec::new()),
        }
    }
}
