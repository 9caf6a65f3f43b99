//! Money going back: an admin's refund of a payment in Stars, and the refund of a payment that
//! cannot give access (the access a refund ends, and renewals stopped: `ending.rs`).
//! A refund moves the payment along its states (`PaymentStatus::may_become`); the queued
//! `refundStarPayment`'s outcome is recorded by the effect consumer (`Consumer::record_refund`).

use std::sync::Arc;

use serde_json::json;

use super::stars::stars_payer;
use super::{AppError, Auditor, Ending, Notifier, actor, require};
use crate::auth::{Caller, Role};
use crate::domain::{AuditAction, Payment, PaymentId, PaymentStatus, Reason, STARS_TRANSACTION_PREFIX, TelegramUserId};
use crate::ports::{Clock, Effect, PaymentStore, Withdrawn};

/// Refunds of payments in Stars.
#[derive(Clone)]
pub struct Refunds {
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ending: Arc<Ending>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
}

impl Refunds {
    /// `POST /api/telegram/admin/stars/refund/` (admin): the Stars of one payment go back. The
    /// payment moves to `refund_requested` (from `validated`, or from `refund_failed` to try
    /// again), the access it paid into ends as a revoke ends it (renewal cancelled too), and
    /// `refundStarPayment` is queued; its outcome moves the payment to `refunded` or
    /// `refund_failed`. Asked again, nothing is done twice: the answer is where the refund stands.
    pub async fn refund_stars(&self, caller: &Caller, payment_id: &str, reason: &str) -> Result<Refund, AppError> {
        require(caller, Role::Admin)?;
        let reason = Reason::parse(reason)?;
        let reason = reason.as_str();
        let id = PaymentId::parse(payment_id).map_err(|_| AppError::NotFound("no such payment"))?;
        let payment = self.payments.payment(&id).await?.ok_or(AppError::NotFound("no such payment"))?;
        let Some((charge, account)) = stars_payer(&payment) else {
            return Err(AppError::Conflict {
                code: "not_a_stars_payment",
                message: "only payments in Telegram Stars are refunded here; refund a manual payment where it was paid"
                    .into(),
            });
        };
        let now = self.clock.now();
        let moved = self.payments.move_refund(&id, PaymentStatus::RefundRequested, Some(reason), now).await?;
        let status = match &moved {
            Some(p) => p.status,
            None => self.payments.payment(&id).await?.ok_or(AppError::NotFound("no such payment"))?.status,
        };
        if !status.is_refund() {
            return Err(AppError::Conflict {
                code: "payment_not_validated",
                message: format!("only a validated payment is refunded; this one is {}", status.as_str()),
            });
        }
        if status != PaymentStatus::RefundRequested {
            return Ok(Refund { status, revoked_count: 0, access_until: None });
        }
        // Requested now or before (a first ask that failed half-way): taking the period back and
        // the queued refund are harmless to repeat (its token is revoked once, one refund per charge).
        let ended = self.ending.withdraw_period(&payment, charge, &actor(caller), &format!("refund: {reason}")).await?;
        self.notifier.enqueue(vec![refund_effect(&payment, account, charge)]).await?;
        let (revoked, access_until) = match &ended {
            Withdrawn::Revoked(_) => (1, None),
            Withdrawn::Shortened(m) => (0, m.expires_at),
            Withdrawn::Nothing => (0, None),
        };
        if moved.is_some() {
            let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": reason,
                                  "revoked_count": revoked, "access_until": access_until });
            self.auditor
                .audit(&actor(caller), AuditAction::StarsRefunded, Some(&payment.user_id), Some(account), details)
                .await?;
            tracing::info!(payment = %payment.id, by = %caller.user_id, "Stars refund requested");
        }
        Ok(Refund { status, revoked_count: revoked, access_until })
    }

    /// Paid, and no access can come of it: the payment moves to `refund_requested` (it buys
    /// nothing from now on) and the Stars go back (queued, retried), audited.
    pub(super) async fn refund_unusable(
        &self,
        payment: &Payment,
        account: TelegramUserId,
        charge: &str,
    ) -> Result<(), AppError> {
        const WHY: &str = "the account may not be let in";
        tracing::warn!(payment = %payment.id, "a Stars payment that cannot give access: refunded");
        self.payments.move_refund(&payment.id, PaymentStatus::RefundRequested, Some(WHY), self.clock.now()).await?;
        self.notifier.enqueue(vec![refund_effect(payment, account, charge)]).await?;
        let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": WHY });
        self.auditor.audit("system", AuditAction::StarsRefunded, Some(&payment.user_id), Some(account), details).await
    }
}

impl Refunds {
    /// A refund Telegram lists (`reconcile-stars`) of a charge telegate's ledger does not show as
    /// refunded: one an earlier release made (it left the payment `validated`), one made with the
    /// bot's token by another program, one whose answer was lost. The Stars went back, so the
    /// payment becomes `refunded` (its Stars out of the revenue) and what it bought ends, as an
    /// admin's refund ends it. Whether the ledger changed.
    pub(super) async fn refunded_in_telegram(&self, charge: &str, account: TelegramUserId) -> Result<bool, AppError> {
        const WHY: &str = "refunded in Telegram";
        let transaction = format!("{STARS_TRANSACTION_PREFIX}{charge}");
        let Some(payment) = self.payments.payment_with_transaction(&transaction).await? else {
            return Ok(false);
        };
        if stars_payer(&payment).is_none_or(|(_, payer)| payer != account) {
            tracing::warn!(payment = %payment.id, "a refund Telegram lists for another account than the payer: left alone");
            return Ok(false);
        }
        let now = self.clock.now();
        match payment.status {
            PaymentStatus::Validated => {
                self.payments.move_refund(&payment.id, PaymentStatus::RefundRequested, Some(WHY), now).await?;
            }
            // Asked by telegate: its answer is not recorded yet, or said it failed.
            PaymentStatus::RefundRequested | PaymentStatus::RefundFailed => {}
            _ => return Ok(false),
        }
        // Before the payment reads refunded, so that a stop in between is finished by the next
        // run; harmless to repeat (an admin's refund may have done it).
        let by = "job:reconcile-stars";
        self.ending.withdraw_period(&payment, charge, by, WHY).await?;
        if self.payments.move_refund(&payment.id, PaymentStatus::Refunded, None, now).await?.is_none() {
            return Ok(false);
        }
        tracing::warn!(payment = %payment.id, "a refund the ledger had not recorded: the payment is refunded");
        let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": WHY,
                              "noticed_by": "reconciliation" });
        self.auditor.audit(by, AuditAction::StarsRefunded, Some(&payment.user_id), Some(account), details).await?;
        Ok(true)
    }
}

/// Where a refund of a payment in Stars stands, as the refund route answers it.
#[derive(Debug)]
pub struct Refund {
    /// `refund_requested`, `refunded` or `refund_failed`.
    pub status: PaymentStatus,
    /// 1 when the membership the payment paid into ended with it, else 0.
    pub revoked_count: usize,
    /// When the membership ends now, if it lasts on the payer's other payments.
    pub access_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `refundStarPayment` for `payment`, once per charge however often it is queued.
fn refund_effect(payment: &Payment, account: TelegramUserId, charge: &str) -> (String, Effect) {
    let effect = Effect::RefundStars {
        telegram_user_id: account,
        charge_id: charge.to_owned(),
        payment_id: Some(payment.id.clone()),
    };
    (format!("refund:{charge}"), effect)
}
