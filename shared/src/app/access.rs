//! Access tokens: issued on validation (or on request), redeemed once in Telegram, bound to the
//! first account that opens them.

use chrono::{DateTime, Duration, Utc};

use serde_json::json;

use super::{App, AppError, Notice, actor, hour_window, telegram_actor};
use crate::auth::{Caller, Role};
use crate::domain::{
    AccessToken, AuditAction, Membership, MembershipId, MembershipStatus, NotificationId, NotificationKind, Offer,
    Payment, PaymentId, PaymentStatus, TelegramUserId, TgUser, TokenHash, TokenRecord, TokenStatus, texts,
};
use crate::ports::{Applied, InviteRequest, StoreError};

/// A freshly issued token, shown once to the caller.
#[derive(Debug)]
pub struct Issued {
    pub payment_id: PaymentId,
    pub bot_link: String,
    pub token: AccessToken,
    pub expires_at: DateTime<Utc>,
    pub notification_id: NotificationId,
}

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

impl App {
    /// A new token for a validated payment, for support or the payment's owner. It replaces the
    /// payment's earlier unopened token; once a token was opened in Telegram, the payment is redeemed.
    pub async fn generate_token(
        &self,
        caller: &Caller,
        payment_id: &PaymentId,
        transaction_id: Option<&str>,
    ) -> Result<Issued, AppError> {
        let payment = self.store.payment(payment_id).await?.ok_or(AppError::NotFound("no such payment"))?;
        if payment.user_id != caller.user_id && !caller.has(Role::Support) {
            // The same answer as for a payment that does not exist: ids of others are not confirmed.
            return Err(AppError::NotFound("no such payment"));
        }
        if let Some(tx) = transaction_id
            && tx.trim() != payment.transaction_id
        {
            return Err(AppError::Invalid("transaction_id does not match this payment".into()));
        }
        if !caller.has(Role::Support) {
            let (window, until) = hour_window(self.clock.now());
            let count = self.store.hit(&format!("generate:{}:{window}", payment.id), until).await?;
            if count > self.settings.limits.generated_tokens_per_payment {
                return Err(AppError::RateLimited(
                    "too many new links for this payment in the last hour; try again later",
                ));
            }
        }
        if payment.status.is_refund() {
            return Err(refunded(&payment));
        }
        if payment.status != PaymentStatus::Validated {
            return Err(AppError::Conflict {
                code: "payment_not_validated",
                message: format!(
                    "tokens are issued only for validated payments; this one is {}",
                    payment.status.as_str()
                ),
            });
        }
        self.issue_access(caller, &payment).await
    }

    /// Token, in-app notification and email for a validated payment.
    pub(crate) async fn issue_access(&self, by: &Caller, payment: &Payment) -> Result<Issued, AppError> {
        let offer = self.settings.offers.find(&payment.offer_id)?;
        let now = self.clock.now();
        let token = AccessToken::generate()?;
        let record = self.pending_token(token.hash(), payment, &offer, now);
        let expires_at = record.expires_at;
        match self.store.issue_token(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict {
                    code: "already_redeemed",
                    message: "this payment's link was already opened by a Telegram account; to give it a new one, \
                              revoke that access, then reinstate the payment (support)"
                        .into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let bot_link = self.bot_link(&token);
        let text = texts::payment_verified(payment.lang, &offer.name, &bot_link, self.settings.token_ttl_hours);
        let notification_id = self
            .notify(Notice {
                user: &payment.user_id,
                kind: NotificationKind::PaymentVerified,
                text: &text,
                action_url: Some(bot_link.clone()),
                email: payment.email.clone(),
                telegram: None,
                key: format!("token:{}", record.hash.label()),
            })
            .await?;
        self.audit(
            &actor(by),
            AuditAction::TokenIssued,
            Some(&payment.user_id),
            None,
            json!({ "payment_id": payment.id, "token": record.hash.label(), "expires_at": expires_at }),
        )
        .await?;
        tracing::info!(payment = %payment.id, token = record.hash.label(), "access token issued");
        Ok(Issued { payment_id: payment.id.clone(), bot_link, token, expires_at, notification_id })
    }

    /// A new pending token under `hash` for `payment`'s offer, valid `TOKEN_TTL_HOURS`.
    pub(crate) fn pending_token(
        &self,
        hash: TokenHash,
        payment: &Payment,
        offer: &Offer,
        now: DateTime<Utc>,
    ) -> TokenRecord {
        TokenRecord {
            hash,
            payment_id: payment.id.clone(),
            user_id: payment.user_id.clone(),
            offer_name: offer.name.clone(),
            days: offer.days,
            status: TokenStatus::Pending,
            created_at: now,
            expires_at: now + Duration::hours(i64::from(self.settings.token_ttl_hours)),
            telegram_user_id: None,
            membership_id: None,
            used_at: None,
        }
    }

    /// `/start <token>` from `from`: bind, open or extend the membership, and invite when needed.
    pub(crate) async fn redeem(
        &self,
        from: &TgUser,
        account: TelegramUserId,
        raw: &str,
    ) -> Result<Redemption, AppError> {
        let outcome = self.redeem_token(from, account, raw).await?;
        if let Redemption::OtherPayer = outcome {
            let token = AccessToken::parse(raw).map(|t| t.hash().label().to_owned()).unwrap_or_default();
            self.audit(
                &telegram_actor(account),
                AuditAction::TokenRefused,
                None,
                Some(account),
                json!({ "token": token, "reason": "the account's current membership has another payer" }),
            )
            .await?;
        }
        if let Redemption::Refused = outcome {
            let token = AccessToken::parse(raw).map(|t| t.hash().label().to_owned()).unwrap_or_default();
            tracing::info!(telegram_user = %account, token, "token refused");
            self.audit(
                &telegram_actor(account),
                AuditAction::TokenRefused,
                None,
                Some(account),
                json!({ "token": token }),
            )
            .await?;
        }
        Ok(outcome)
    }

    async fn redeem_token(&self, from: &TgUser, account: TelegramUserId, raw: &str) -> Result<Redemption, AppError> {
        let Ok(token) = AccessToken::parse(raw) else {
            return Ok(Redemption::Refused);
        };
        // A channel administrator removed this account by hand: no token lets it back by itself.
        if self.store.account_bar(account).await?.is_some() {
            tracing::info!(telegram_user = %account, "barred account: /start refused");
            return Ok(Redemption::Refused);
        }
        let hash = token.hash();
        let now = self.clock.now();
        let Some(record) = self.store.token(&hash).await? else {
            return Ok(Redemption::Refused);
        };
        let foreign = record.telegram_user_id.is_some_and(|t| t != account);
        // One period, one payer: a token of another web account is never added to this account's
        // current membership (revoking that payer would not remove what they paid for). It stays
        // unbound, for another Telegram account or for after this membership ends.
        if record.membership_id.is_none()
            && let Some(current) = self.store.current_membership(account).await?
            && current.user_id != record.user_id
            && current.holds_place(now)
        {
            tracing::info!(telegram_user = %account, token = record.hash.label(), "token of another payer: not applied");
            return Ok(Redemption::OtherPayer);
        }
        let record = match record.status {
            _ if foreign => return Ok(Redemption::Refused),
            TokenStatus::Pending if !record.is_expired(now) => {
                match self.store.bind_token(&hash, account, now).await? {
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
        self.audit(
            &telegram_actor(account),
            AuditAction::TokenRedeemed,
            Some(&record.user_id),
            Some(account),
            json!({ "token": record.hash.label(), "payment_id": record.payment_id }),
        )
        .await?;

        let (membership, extended) = match &record.membership_id {
            Some(id) => (self.store.membership(id).await?, false),
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
        let current = self.store.current_membership(account).await?;
        let extended = match &current {
            Some(m) => self.store.extend_membership(&record.hash, &m.id, now).await?,
            None => Applied::Ended,
        };
        let (applied, extending) = match extended {
            // No membership to extend, or it ended meanwhile: the token opens a new one.
            Applied::Ended => {
                let m = Membership::pending(MembershipId::generate(now)?, record, account, from.username.clone(), now);
                (self.store.open_membership(&record.hash, &m).await?, false)
            }
            other => (other, current.is_some_and(|c| c.status == MembershipStatus::Active)),
        };
        Ok(match applied {
            Applied::Now(m) => {
                let extended = extending;
                if extended {
                    tracing::info!(membership = %m.id, end = ?m.expires_at, "membership extended");
                    self.audit(
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
            Applied::Already(id) => (self.store.membership(&id).await?, false),
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
        self.store.set_invite(&membership.id, &link, expire_at).await?;
        tracing::info!(membership = %membership.id, mode = ?request.mode, "invite link created");
        self.audit(
            &telegram_actor(account),
            AuditAction::InviteCreated,
            Some(&membership.user_id),
            Some(account),
            json!({ "membership_id": membership.id, "mode": request.mode, "expires_at": expire_at }),
        )
        .await?;
        Ok(link)
    }
}

/// A payment whose money went back (or is going back) buys nothing again, by any route.
pub(crate) fn refunded(payment: &Payment) -> AppError {
    AppError::Conflict {
        code: "payment_refunded",
        message: format!("this payment was refunded ({}): it gives no access again", payment.status.as_str()),
    }
}
