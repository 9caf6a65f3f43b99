//! Access tokens: issued on validation (or on request), redeemed once in Telegram, bound to the
//! first account that opens them.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{AppError, Auditor, Notice, Notifier, actor, hour_window};
use crate::auth::{Caller, Role};
use crate::config::Settings;
use crate::domain::{
    AccessToken, AuditAction, NotificationId, NotificationKind, Offer, Payment, PaymentId, PaymentStatus, TokenHash,
    TokenRecord, TokenStatus, texts,
};
use crate::ports::{AccessStore, Clock, PaymentStore, RateLimits, StoreError};

/// A freshly issued token, shown once to the caller.
#[derive(Debug)]
pub struct Issued {
    pub payment_id: PaymentId,
    pub bot_link: String,
    pub token: AccessToken,
    pub expires_at: DateTime<Utc>,
    pub notification_id: NotificationId,
}

/// Issues access tokens for validated payments.
#[derive(Clone)]
pub struct Issuer {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Arc<dyn RateLimits>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) settings: Arc<Settings>,
}

impl Issuer {
    pub fn bot_link(&self, token: &AccessToken) -> String {
        format!("https://t.me/{}?start={}", self.settings.bot_username, token.expose())
    }

    /// A new token for a validated payment, for support or the payment's owner. It replaces the
    /// payment's earlier unopened token; once a token was opened in Telegram, the payment is redeemed.
    pub async fn generate_token(
        &self,
        caller: &Caller,
        payment_id: &PaymentId,
        transaction_id: Option<&str>,
    ) -> Result<Issued, AppError> {
        let payment = self.payments.payment(payment_id).await?.ok_or(AppError::NotFound("no such payment"))?;
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
            let count = self.limits.hit(&format!("generate:{}:{window}", payment.id), until).await?;
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
        let offer = self.settings.offers.find(&payment.offer_id).map_err(|_| offer_not_on_sale(payment))?;
        let now = self.clock.now();
        let token = AccessToken::generate()?;
        let record = self.pending_token(token.hash(), payment, &offer, now);
        let expires_at = record.expires_at;
        match self.access.issue_token(&record).await {
            Ok(()) => {}
            // Refunded since it was read: the store decided it with the write.
            Err(StoreError::Conflict("payment_refunded")) => return Err(refunded(payment)),
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
            .notifier
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
        self.auditor
            .audit(
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
}

/// A payment whose money went back (or is going back) buys nothing again, by any route.
pub(crate) fn refunded(payment: &Payment) -> AppError {
    AppError::Conflict {
        code: "payment_refunded",
        message: format!("this payment was refunded ({}): it gives no access again", payment.status.as_str()),
    }
}

/// The payment's offer is no longer in `OFFERS`: its days are unknown, so no link is made.
pub(crate) fn offer_not_on_sale(payment: &Payment) -> AppError {
    AppError::Conflict {
        code: "offer_not_on_sale",
        message: format!(
            "this payment's offer ({}) is no longer in OFFERS, so its length is unknown: put the offer back to \
             give it a link, or reject the payment",
            payment.offer_id
        ),
    }
}
