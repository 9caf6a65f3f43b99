use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::access::{offer_not_on_sale, refunded};
use super::{AppError, Auditor, Issued, Issuer, Notice, Notifier, actor, require};
use crate::auth::{Caller, Role};
use crate::config::Settings;
use crate::domain::{
    AuditAction, Lang, NotificationKind, Payment, PaymentId, PaymentStatus, parse_transaction_id, texts,
};
use crate::ports::{Clock, Page, PageRequest, PaymentStore, Review, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitPayment {
    pub offer_id: String,
    pub transaction_id: String,
    #[serde(default)]
    pub user_info: Option<serde_json::Value>,
}

/// `user_info` is free-form but bounded: it is shown to support, not interpreted.
const USER_INFO_MAX: usize = 4096;

/// Web payments: submitted by users, reviewed by support.
#[derive(Clone)]
pub struct PaymentDesk {
    pub(crate) auditor: Auditor,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) issuer: Arc<Issuer>,
    pub(crate) notifier: Notifier,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) settings: Arc<Settings>,
}

impl PaymentDesk {
    pub async fn submit_payment(&self, caller: &Caller, input: SubmitPayment, lang: Lang) -> Result<Payment, AppError> {
        let offer = self.settings.offers.find(&input.offer_id)?;
        let transaction_id = parse_transaction_id(&input.transaction_id)?;
        if let Some(info) = &input.user_info
            && (!info.is_object() || info.to_string().len() > USER_INFO_MAX)
        {
            return Err(AppError::Invalid(format!("user_info must be a JSON object under {USER_INFO_MAX} bytes")));
        }
        let now = self.clock.now();
        let payment = Payment {
            id: PaymentId::generate(now)?,
            user_id: caller.user_id.clone(),
            email: caller.email.clone(),
            offer_id: input.offer_id.trim().to_owned(),
            transaction_id,
            user_info: input.user_info,
            status: PaymentStatus::TransactionSubmitted,
            admin_notes: None,
            reject_reason: None,
            created_at: now,
            updated_at: now,
            reviewed_by: None,
            refund_note: None,
            revenue_cents: None,
            lang,
        };
        match self.payments.insert_payment(&payment).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict {
                    code: "transaction_id_taken",
                    message: "this transaction id has already been submitted".into(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(payment = %payment.id, user = %payment.user_id, offer = %offer.name, "payment submitted");
        self.auditor.audit(
            &actor(caller),
            AuditAction::PaymentSubmitted,
            Some(&payment.user_id),
            None,
            json!({ "payment_id": payment.id, "offer_id": payment.offer_id, "transaction_id": payment.transaction_id }),
        )
        .await?;
        Ok(payment)
    }

    /// The caller's own payments, as the payer sees them: no internal notes, no reviewer.
    pub async fn my_payments(&self, caller: &Caller) -> Result<Vec<OwnPayment>, AppError> {
        Ok(self.payments.payments_of(&caller.user_id).await?.into_iter().map(OwnPayment::from).collect())
    }

    pub async fn list_payments(
        &self,
        caller: &Caller,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<Payment>, AppError> {
        require(caller, Role::Support)?;
        Ok(self.payments.list_payments(status, page).await?)
    }

    /// The payment with a transaction id, as the buyer wrote it or as Telegram gave the charge
    /// id of a payment in Stars (support).
    pub async fn payment_with_transaction(&self, caller: &Caller, transaction_id: &str) -> Result<Payment, AppError> {
        require(caller, Role::Support)?;
        let typed = transaction_id.trim();
        let mut found = self.payments.payment_with_transaction(typed).await?;
        if found.is_none() && !typed.starts_with(crate::domain::STARS_TRANSACTION_PREFIX) {
            let charge = format!("{}{typed}", crate::domain::STARS_TRANSACTION_PREFIX);
            found = self.payments.payment_with_transaction(&charge).await?;
        }
        found.ok_or(AppError::NotFound("no payment with that transaction id"))
    }

    /// Validates a submitted payment once: a single token, notification and email. Validating it
    /// again changes nothing and says so (409): the token exists only as a hash and cannot be shown again.
    pub async fn validate_payment(
        &self,
        caller: &Caller,
        id: &PaymentId,
        admin_notes: Option<String>,
        transaction_id: Option<String>,
    ) -> Result<Issued, AppError> {
        require(caller, Role::Support)?;
        let transaction_id = transaction_id.as_deref().map(parse_transaction_id).transpose()?;
        // The offer's web price as it stands now: what the revenue counts for this payment. Its
        // link needs the offer's days: an offer taken out of `OFFERS` since the payment was
        // submitted is said before anything changes, never after the payment reads validated.
        let waiting = self.payments.payment(id).await?.filter(|p| p.status == PaymentStatus::TransactionSubmitted);
        let price = match &waiting {
            Some(p) => self.settings.offers.find(&p.offer_id).map_err(|_| offer_not_on_sale(p))?.price_cents,
            None => None,
        };
        let review = Review {
            to: PaymentStatus::Validated,
            by: caller.user_id.clone(),
            admin_notes: bounded("admin_notes", admin_notes)?,
            reason: None,
            transaction_id,
            at: self.clock.now(),
            revenue_cents: price.and_then(|p| i64::try_from(p).ok()),
        };
        let payment = self.review(id, &review).await?;
        tracing::info!(payment = %payment.id, by = %caller.user_id, "payment validated");
        self.auditor
            .audit(
                &actor(caller),
                AuditAction::PaymentValidated,
                Some(&payment.user_id),
                None,
                json!({ "payment_id": payment.id }),
            )
            .await?;
        self.issuer.issue_access(caller, &payment).await
    }

    pub async fn reject_payment(&self, caller: &Caller, id: &PaymentId, reason: String) -> Result<(), AppError> {
        require(caller, Role::Support)?;
        let reason = bounded("reason", Some(reason))?.ok_or(AppError::Invalid("reason must not be empty".into()))?;
        let now = self.clock.now();
        let review = Review {
            to: PaymentStatus::Rejected,
            by: caller.user_id.clone(),
            admin_notes: None,
            reason: Some(reason.clone()),
            transaction_id: None,
            at: now,
            revenue_cents: None,
        };
        let payment = self.review(id, &review).await?;
        tracing::info!(payment = %payment.id, by = %caller.user_id, "payment rejected");
        let text = texts::payment_rejected(payment.lang, &reason);
        self.notifier
            .notify(Notice {
                user: &payment.user_id,
                kind: NotificationKind::PaymentRejected,
                text: &text,
                action_url: None,
                email: payment.email.clone(),
                telegram: None,
                key: format!("reject:{}", payment.id),
            })
            .await?;
        self.auditor
            .audit(
                &actor(caller),
                AuditAction::PaymentRejected,
                Some(&payment.user_id),
                None,
                json!({ "payment_id": payment.id, "reason": reason }),
            )
            .await?;
        Ok(())
    }

    async fn review(&self, id: &PaymentId, review: &Review) -> Result<Payment, AppError> {
        match self.payments.review_payment(id, review).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => match self.payments.payment(id).await? {
                None => Err(AppError::NotFound("no such payment")),
                Some(p) if p.status.is_refund() => Err(refunded(&p)),
                Some(p) => Err(AppError::Conflict {
                    code: match p.status {
                        PaymentStatus::Validated => "already_validated",
                        _ => "already_rejected",
                    },
                    message: format!(
                        "this payment is already {}; nothing was changed (use generate-token for a new link)",
                        p.status.as_str()
                    ),
                }),
            },
            Err(StoreError::Conflict(_)) => Err(AppError::Conflict {
                code: "transaction_id_taken",
                message: "this transaction id is used by another payment".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

fn bounded(field: &str, value: Option<String>) -> Result<Option<String>, AppError> {
    match value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > 2000 => {
            Err(AppError::Invalid(format!("{field} must be at most 2000 characters")))
        }
        other => Ok(other),
    }
}

/// A payment as its payer sees it: status and, when rejected, the reason given to them; support's
/// `admin_notes` and the reviewer's id stay internal.
#[derive(Debug, serde::Serialize)]
pub struct OwnPayment {
    pub id: PaymentId,
    pub offer_id: String,
    pub transaction_id: String,
    pub user_info: Option<serde_json::Value>,
    pub status: PaymentStatus,
    pub reject_reason: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Payment> for OwnPayment {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id,
            offer_id: p.offer_id,
            transaction_id: p.transaction_id,
            user_info: p.user_info,
            status: p.status,
            reject_reason: p.reject_reason,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}
