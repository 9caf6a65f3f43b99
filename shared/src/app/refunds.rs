//! Money going back: an admin's refund of a payment in Stars, the record of a manual payment's
//! refund (made where it was paid), and the refund of a payment that cannot give access (the
//! access a refund ends, and renewals stopped: `ending.rs`).
//! A refund moves the payment along its states (`PaymentStatus::may_become`); the queued
//! `refundStarPayment`'s outcome is recorded by the effect consumer (`Consumer::record_refund`).

use std::sync::Arc;

use serde_json::json;

use super::{AppError, Auditor, Ending, Notifier, actor, require};
use crate::auth::{Caller, Role};
use crate::domain::{AuditAction, Payment, PaymentId, PaymentStatus, Reason, STARS_TRANSACTION_PREFIX, TelegramUserId};
use crate::ports::{Clock, Effect, PaymentStore, Withdrawn};

/// Refunds: of payments in Stars, and the record of a manual payment's.
#[derive(Clone)]
pub struct Refunds {
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ending: Arc<Ending>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
}

impl Refunds {
    /// `POST /api/telegram/admin/refund/` (admin): one payment's money goes back. A payment in
    /// Stars as `refund_stars` gives it back. A manual payment is refunded where it was paid (a
    /// bank, a payment provider): this records it, so that it buys nothing again, its days are
    /// taken back as a refund in Stars takes them, and what its validation added to the web
    /// revenue is counted refunded. Asked again, it answers `refunded` and does nothing.
    pub async fn refund(&self, caller: &Caller, payment_id: &str, reason: &str) -> Result<Refund, AppError> {
        require(caller, Role::Admin)?;
        let payment = self.find(payment_id).await?;
        if payment.stars_payer().is_some() {
            return self.give_stars_back(caller, &payment, reason).await;
        }
        let reason = Reason::parse(reason)?;
        let reason = reason.as_str();
        let (status, _) = self.ask(&payment, reason).await?;
        if status == PaymentStatus::Refunded {
            return Ok(Refund { status, revoked_count: 0, access_until: None });
        }
        // Asked now, or by a first ask that stopped half-way: both steps are harmless to repeat.
        let ended = self.ending.withdraw_period(&payment, None, &actor(caller), &format!("refund: {reason}")).await?;
        let recorded = self.payments.move_refund(&payment.id, PaymentStatus::Refunded, None, self.clock.now()).await?;
        let refund = Refund::of(PaymentStatus::Refunded, &ended);
        if recorded.is_some() {
            let details = json!({ "payment_id": payment.id, "transaction_id": payment.transaction_id,
                                  "reason": reason, "revoked_count": refund.revoked_count,
                                  "refunded_cents": payment.revenue_cents });
            self.auditor
                .audit(&actor(caller), AuditAction::PaymentRefunded, Some(&payment.user_id), None, details)
                .await?;
            tracing::info!(payment = %payment.id, by = %caller.user_id, "manual payment's refund recorded");
        }
        Ok(refund)
    }

    /// `POST /api/telegram/admin/stars/refund/` (admin): the Stars of one payment go back. The
    /// payment moves to `refund_requested` (from `validated`, or from `refund_failed` to try
    /// again), the access it paid into ends as a revoke ends it (renewal cancelled too), and
    /// `refundStarPayment` is queued; its outcome moves the payment to `refunded` or
    /// `refund_failed`. Asked again, nothing is done twice: the answer is where the refund stands.
    pub async fn refund_stars(&self, caller: &Caller, payment_id: &str, reason: &str) -> Result<Refund, AppError> {
        require(caller, Role::Admin)?;
        let payment = self.find(payment_id).await?;
        self.give_stars_back(caller, &payment, reason).await
    }

    async fn give_stars_back(&self, caller: &Caller, payment: &Payment, reason: &str) -> Result<Refund, AppError> {
        let reason = Reason::parse(reason)?;
        let reason = reason.as_str();
        let Some((charge, account)) = payment.stars_payer() else {
            return Err(AppError::Conflict {
                code: "not_a_stars_payment",
                message: "only payments in Telegram Stars are refunded here; record a manual payment's refund with \
                          POST /api/telegram/admin/refund/"
                    .into(),
            });
        };
        let (status, asked_now) = self.ask(payment, reason).await?;
        if status != PaymentStatus::RefundRequested {
            return Ok(Refund { status, revoked_count: 0, access_until: None });
        }
        // Requested now or before (a first ask that failed half-way): taking the period back and
        // the queued refund are harmless to repeat (its token is revoked once, one refund per charge).
        let by = actor(caller);
        let ended = self.ending.withdraw_period(payment, Some(charge), &by, &format!("refund: {reason}")).await?;
        self.notifier.enqueue(vec![refund_effect(payment, account, charge)]).await?;
        let refund = Refund::of(status, &ended);
        if asked_now {
            let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": reason,
                                  "revoked_count": refund.revoked_count, "access_until": refund.access_until });
            self.auditor.audit(&by, AuditAction::StarsRefunded, Some(&payment.user_id), Some(account), details).await?;
            tracing::info!(payment = %payment.id, by = %caller.user_id, "Stars refund requested");
        }
        Ok(refund)
    }

    async fn find(&self, payment_id: &str) -> Result<Payment, AppError> {
        let id = PaymentId::parse(payment_id).map_err(|_| AppError::NotFound("no such payment"))?;
        self.payments.payment(&id).await?.ok_or(AppError::NotFound("no such payment"))
    }

    /// Asks for the payment's refund (`validated` or `refund_failed` → `refund_requested`, with
    /// why): where the refund stands now and whether this ask moved it, or 409 when the payment
    /// was never validated.
    async fn ask(&self, payment: &Payment, reason: &str) -> Result<(PaymentStatus, bool), AppError> {
        let id = &payment.id;
        let moved =
            self.payments.move_refund(id, PaymentStatus::RefundRequested, Some(reason), self.clock.now()).await?;
        let (status, asked_now) = match moved {
            Some(p) => (p.status, true),
            None => (self.payments.payment(id).await?.ok_or(AppError::NotFound("no such payment"))?.status, false),
        };
        if !status.is_refund() {
            return Err(AppError::Conflict {
                code: "payment_not_validated",
                message: format!("only a validated payment is refunded; this one is {}", status.as_str()),
            });
        }
        Ok((status, asked_now))
    }

    /// Paid, and no access can come of it (`why`): the payment moves to `refund_requested` (it
    /// buys nothing from now on) and the Stars go back (queued, retried), audited.
    pub(super) async fn refund_unusable(
        &self,
        payment: &Payment,
        account: TelegramUserId,
        charge: &str,
        why: &str,
    ) -> Result<(), AppError> {
        tracing::warn!(payment = %payment.id, why, "a Stars payment that cannot give access: refunded");
        self.payments.move_refund(&payment.id, PaymentStatus::RefundRequested, Some(why), self.clock.now()).await?;
        self.notifier.enqueue(vec![refund_effect(payment, account, charge)]).await?;
        let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": why });
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
        if payment.stars_payer().is_none_or(|(_, payer)| payer != account) {
            tracing::warn!(payment = %payment.id, "a refund Telegram lists for another account than the payer: left alone");
            return Ok(false);
        }
        let now = self.clock.now();
        // Whether the ledger learns of the refund now; one telegate asked for was audited then.
        let learned = match payment.status {
            PaymentStatus::Validated => {
                self.payments.move_refund(&payment.id, PaymentStatus::RefundRequested, Some(WHY), now).await?.is_some()
            }
            // Asked by telegate: its answer is not recorded yet, or said it failed.
            PaymentStatus::RefundRequested | PaymentStatus::RefundFailed => false,
            _ => return Ok(false),
        };
        // Before the payment reads refunded, so that a stop in between is finished by the next
        // run; harmless to repeat (an admin's refund may have done it).
        let by = "job:reconcile-stars";
        self.ending.withdraw_period(&payment, Some(charge), by, WHY).await?;
        if self.payments.move_refund(&payment.id, PaymentStatus::Refunded, None, now).await?.is_none() {
            return Ok(false);
        }
        tracing::warn!(payment = %payment.id, "a refund Telegram lists, recorded: the payment is refunded");
        if learned {
            let details = json!({ "payment_id": payment.id, "telegram_payment_charge_id": charge, "reason": WHY,
                                  "noticed_by": "reconciliation" });
            self.auditor.audit(by, AuditAction::StarsRefunded, Some(&payment.user_id), Some(account), details).await?;
        }
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

impl Refund {
    fn of(status: PaymentStatus, ended: &Withdrawn) -> Self {
        let (revoked_count, access_until) = match ended {
            Withdrawn::Revoked(_) => (1, None),
            Withdrawn::Shortened(m) => (0, m.expires_at),
            Withdrawn::Nothing => (0, None),
        };
        Self { status, revoked_count, access_until }
    }
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
