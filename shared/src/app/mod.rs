//! Use cases. Each takes parsed input and the caller, talks only to ports, and returns domain
//! results or an `AppError`; the HTTP layer decides status codes in one place.

mod access;
mod admin;
mod admission;
mod bot;
pub mod effects;
mod ending;
mod health;
mod invoices;
mod job_runs;
mod jobs;
mod limits;
mod members;
mod notifications;
mod payments;
mod refunds;
mod staff;
mod stars;
mod status;
mod wiring;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod unit_tests;

use std::sync::Arc;

use crate::auth::{Caller, Role};
use crate::config::Settings;
use serde_json::Value;

use crate::domain::texts::{self, Text};
use crate::domain::{
    AuditAction, AuditEntry, AuditId, DomainError, Membership, Notification, NotificationId, NotificationKind,
    TelegramUserId, UserId,
};
use crate::ports::{
    AuditLog, Cause, Clock, Effect, Email, Envelope, NotificationStore, PaymentStore, Queue, Stats, StoreError,
};

pub use access::{Issued, Issuer};
pub use admin::{Admin, MemberFile, StatsView};
pub use admission::Admission;
pub use bot::Bot;
pub use ending::Ending;
pub use health::{Health, HealthView, JobHealth};
pub use invoices::Sales;
pub use job_runs::JobRuns;
pub use jobs::Jobs;
pub use members::Members;
pub use notifications::Inbox;
pub use payments::{OwnPayment, PaymentDesk, SubmitPayment};
pub use refunds::{Refund, Refunds};
pub use staff::StaffRoles;
pub use stars::Stars;
pub use status::{MembershipView, Status, StatusView};
pub use wiring::{Missing, Ports, consumer};

/// Every use case, as the local host serves them, built once per process from the ports
/// (`wiring.rs`). A Lambda function builds only the services it serves.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub payments: Arc<PaymentDesk>,
    pub issuer: Arc<Issuer>,
    pub inbox: Arc<Inbox>,
    pub status: Arc<Status>,
    pub ending: Arc<Ending>,
    pub refunds: Arc<Refunds>,
    pub admin: Arc<Admin>,
    pub jobs: Arc<Jobs>,
    pub job_runs: Arc<JobRuns>,
    pub bot: Arc<Bot>,
    pub health: Arc<Health>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    RateLimited(&'static str),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A dependency we cannot do without is down or throttled (the store, the queue, Telegram,
    /// the JWKS endpoint): worth trying again shortly (503 with `Retry-After`).
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A real fault on our side; the cause goes to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { .. } => Self::Invalid(e.to_string()),
            DomainError::Random(_) => Self::Internal(e.to_string().into()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            other => Self::Internal(Cause::new(other)),
        }
    }
}

/// The adapters name the service in the cause (`DynamoDB: …`, `SQS send: …`).
impl From<crate::ports::QueueError> for AppError {
    fn from(e: crate::ports::QueueError) -> Self {
        Self::Unavailable(e.0)
    }
}

impl From<crate::ports::TelegramError> for AppError {
    fn from(e: crate::ports::TelegramError) -> Self {
        use crate::ports::TelegramError::*;
        match e {
            RetryAfter(_) | Unavailable(_) => Self::Unavailable(Cause::new(e)),
            Refused(_) | Unreachable(_) | AlreadyDone(_) | Administrator(_) => Self::Internal(Cause::new(e)),
        }
    }
}

pub(crate) fn require(caller: &Caller, role: Role) -> Result<(), AppError> {
    if caller.has(role) {
        Ok(())
    } else {
        Err(AppError::Forbidden(match role {
            Role::Admin => "this action needs the admin role",
            Role::Support => "this action needs the support role",
            Role::User => "this action needs a signed-in user",
        }))
    }
}

/// In-app notifications with their copies by email and Telegram, and the effects queue.
#[derive(Clone)]
pub struct Notifier {
    pub(crate) notifications: Arc<dyn NotificationStore>,
    pub(crate) payments: Arc<dyn PaymentStore>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Notifier {
    /// Queues side effects; each key makes a redelivery harmless.
    pub(crate) async fn enqueue(&self, effects: Vec<(String, Effect)>) -> Result<(), AppError> {
        if effects.is_empty() {
            return Ok(());
        }
        let envelopes =
            effects.into_iter().map(|(idempotency_key, effect)| Envelope { idempotency_key, effect }).collect();
        Ok(self.queue.enqueue(envelopes).await?)
    }

    /// An in-app notification, plus the same text by email and Telegram when given. The effects'
    /// keys derive from `key`, so a retried caller does not send twice.
    pub(crate) async fn notify(&self, notice: Notice<'_>) -> Result<NotificationId, AppError> {
        let now = self.clock.now();
        let notification = Notification {
            id: NotificationId::generate(now)?,
            user_id: notice.user.clone(),
            kind: notice.kind,
            title: notice.text.title.clone(),
            message: notice.text.body.clone(),
            action_url: notice.action_url,
            created_at: now,
            read: false,
        };
        self.notifications.add_notification(&notification).await?;
        let mut effects = Vec::new();
        if let Some(account) = notice.telegram {
            effects.push((
                format!("msg:{}", notice.key),
                Effect::SendMessage { chat_id: account.get(), text: notice.text.body.clone() },
            ));
        }
        if let Some(to) = notice.email {
            let email = Email {
                to,
                subject: notice.text.title.clone(),
                text: notice.text.body.clone(),
                html: texts::to_html(&notice.text.title, &notice.text.body),
            };
            effects.push((format!("mail:{}", notice.key), Effect::SendEmail { email }));
        }
        self.enqueue(effects).await?;
        Ok(notification.id)
    }

    /// `notify` for a member: their payer's email and their Telegram account.
    pub(crate) async fn notify_member(
        &self,
        m: &Membership,
        kind: NotificationKind,
        text: &Text,
        key: &str,
    ) -> Result<NotificationId, AppError> {
        let email = self.payments.payment(&m.payment_id).await?.and_then(|p| p.email);
        self.notify(Notice {
            user: &m.user_id,
            kind,
            text,
            action_url: None,
            email,
            telegram: Some(m.telegram_user_id),
            key: key.to_owned(),
        })
        .await
    }

    /// The language of the member's payer, for the texts sent to them.
    pub(crate) async fn payer_lang(&self, m: &Membership) -> Result<crate::domain::Lang, AppError> {
        Ok(self.payments.payment(&m.payment_id).await?.map(|p| p.lang).unwrap_or_default())
    }
}

/// The audit log, with what follows an entry: the suspicious-attempt counters and the business
/// events.
#[derive(Clone)]
pub struct Auditor {
    pub(crate) audit_log: Arc<dyn AuditLog>,
    pub(crate) stats: Arc<dyn Stats>,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Auditor {
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: AuditAction,
        user: Option<&UserId>,
        telegram: Option<TelegramUserId>,
        details: Value,
    ) -> Result<(), AppError> {
        self.audit_as(Meaning::Plain, actor, action, user, telegram, details).await
    }

    /// As `audit`, saying what the entry means for what follows it (the counters, the business
    /// events): decided here, by the caller that knows, never read back from the entry's details.
    pub(crate) async fn audit_as(
        &self,
        meaning: Meaning,
        actor: &str,
        action: AuditAction,
        user: Option<&UserId>,
        telegram: Option<TelegramUserId>,
        details: Value,
    ) -> Result<(), AppError> {
        let at = self.clock.now();
        let entry = AuditEntry {
            id: AuditId::generate(at)?,
            at,
            actor: actor.to_owned(),
            action,
            user_id: user.cloned(),
            telegram_user_id: telegram,
            details,
        };
        self.audit_log.record(&entry).await?;
        if let Some(attempt) = suspicious(&entry, meaning) {
            // The log line a CloudWatch metric filter counts (template.yaml's alarm on a spike).
            tracing::warn!(attempt = attempt.name(), telegram_user = ?entry.telegram_user_id, "suspicious access attempt");
            if let Err(e) = self.stats.count_attempt(attempt, at).await {
                tracing::error!(error = %e, "could not count a suspicious access attempt");
            }
        }
        // A business event for integrations, carried by the queue like any other effect (retried,
        // dead-lettered). The request has done what it was asked; a queue that refuses now loses
        // only the event (the audit log keeps the entry), so that is logged, not answered.
        if meaning != Meaning::Rejoined
            && let Some(envelope) = business_event(&entry)
            && let Err(e) = self.queue.enqueue(vec![envelope]).await
        {
            tracing::error!(audit_id = %entry.id, error = %e, "business event not queued");
        }
        Ok(())
    }
}

pub(crate) struct Notice<'a> {
    pub user: &'a UserId,
    pub kind: NotificationKind,
    pub text: &'a Text,
    pub action_url: Option<String>,
    pub email: Option<String>,
    pub telegram: Option<TelegramUserId>,
    pub key: String,
}

pub(crate) fn actor(caller: &Caller) -> String {
    format!("user:{}", caller.user_id)
}

pub(crate) fn telegram_actor(account: TelegramUserId) -> String {
    format!("telegram:{account}")
}

/// The fixed one-hour window an attempt counts in, and when its counter may be forgotten.
pub(crate) fn hour_window(now: chrono::DateTime<chrono::Utc>) -> (String, chrono::DateTime<chrono::Utc>) {
    let start = now.format("%Y%m%d%H").to_string();
    (start, now + chrono::Duration::hours(2))
}

/// What an audited action means beyond its action, for the counters and business events that
/// follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Meaning {
    Plain,
    /// A member back in the channel within a paid period: not a new membership (no event).
    Rejoined,
    /// An account removed for being in the channel with no membership: a suspicious attempt.
    Stranger,
}

/// The business event an audit entry is, if it is one (see `AuditAction::event_type`).
pub(crate) fn business_event(entry: &AuditEntry) -> Option<crate::ports::Envelope> {
    let detail_type = entry.action.event_type()?;
    let mut detail = serde_json::json!({
        "audit_id": entry.id,
        "at": entry.at,
        "user_id": entry.user_id,
        "telegram_user_id": entry.telegram_user_id,
    });
    if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), &entry.details) {
        for (k, v) in extra {
            d.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Some(crate::ports::Envelope {
        idempotency_key: format!("event:{}", entry.id),
        effect: crate::ports::Effect::Publish {
            event: crate::ports::BusinessEvent {
                id: entry.id.to_string(),
                detail_type: detail_type.to_owned(),
                at: entry.at,
                detail,
            },
        },
    })
}

/// The suspicious access attempt an audit entry records, if it is one.
fn suspicious(entry: &AuditEntry, meaning: Meaning) -> Option<crate::ports::Attempt> {
    use crate::ports::Attempt;
    match (entry.action, meaning) {
        (AuditAction::TokenRefused, _) => Some(Attempt::RefusedToken),
        (AuditAction::JoinDeclined, _) => Some(Attempt::DeclinedJoin),
        // Removed for being in the channel without an active membership (not by an admin's hand).
        (AuditAction::MemberRemoved, Meaning::Stranger) => Some(Attempt::RemovedStranger),
        _ => None,
    }
}
