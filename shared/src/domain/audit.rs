use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AuditId, DomainError, TelegramUserId, UserId};

/// Everything that happened, with who did it and to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    PaymentSubmitted,
    PaymentValidated,
    PaymentRejected,
    /// An admin recorded the refund of a manual payment, made where it was paid.
    PaymentRefunded,
    TokenIssued,
    TokenRedeemed,
    TokenRefused,
    InviteCreated,
    JoinApproved,
    JoinDeclined,
    MemberJoined,
    MemberLeft,
    MemberRemoved,
    MembershipExtended,
    WarningSent,
    AccessExpired,
    AccessRevoked,
    JobRun,
    /// A queued channel effect that a later change made stale was not carried out.
    EffectDropped,
    /// Support lifted a channel administrator's removal, or let a redeemed payment have a new token.
    Reinstated,
    /// Records brought over from the system telegate replaces (`telegate import`).
    Imported,
    /// A channel effect or email given up after its retries (the dead-letter queue).
    EffectDeadLettered,
    /// A payment in Telegram Stars was received (once per charge id).
    StarsPaid,
    /// A pre-checkout query was refused (offer gone or repriced, account barred).
    StarsCheckoutRefused,
    /// A Star payment for an invoice telegate did not create (a tip, paid media, another
    /// program's invoice): it grants nothing and is left alone.
    StarsNotOurs,
    /// A Stars payment was refunded (it could not be honoured, or an admin refunded it).
    StarsRefunded,
    /// A buyer asked for payment support (`/paysupport`).
    PaySupportRequested,
    /// Telegram told of a Stars subscription cancelled, re-enabled or failing to renew.
    StarsSubscriptionChanged,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentSubmitted => "payment_submitted",
            Self::PaymentValidated => "payment_validated",
            Self::PaymentRejected => "payment_rejected",
            Self::PaymentRefunded => "payment_refunded",
            Self::TokenIssued => "token_issued",
            Self::TokenRedeemed => "token_redeemed",
            Self::TokenRefused => "token_refused",
            Self::InviteCreated => "invite_created",
            Self::JoinApproved => "join_approved",
            Self::JoinDeclined => "join_declined",
            Self::MemberJoined => "member_joined",
            Self::MemberLeft => "member_left",
            Self::MemberRemoved => "member_removed",
            Self::MembershipExtended => "membership_extended",
            Self::WarningSent => "warning_sent",
            Self::AccessExpired => "access_expired",
            Self::AccessRevoked => "access_revoked",
            Self::JobRun => "job_run",
            Self::EffectDropped => "effect_dropped",
            Self::Reinstated => "reinstated",
            Self::Imported => "imported",
            Self::EffectDeadLettered => "effect_dead_lettered",
            Self::StarsPaid => "stars_paid",
            Self::StarsCheckoutRefused => "stars_checkout_refused",
            Self::StarsNotOurs => "stars_not_ours",
            Self::StarsRefunded => "stars_refunded",
            Self::PaySupportRequested => "pay_support_requested",
            Self::StarsSubscriptionChanged => "stars_subscription_changed",
        }
    }

    /// The business event an entry of this kind is published as (its `detail-type` on the bus),
    /// if it is one: EVENTS.md documents each.
    pub fn event_type(self) -> Option<&'static str> {
        Some(match self {
            Self::PaymentSubmitted => "Payment Submitted",
            Self::PaymentValidated => "Payment Validated",
            Self::PaymentRejected => "Payment Rejected",
            Self::PaymentRefunded => "Payment Refunded",
            Self::MemberJoined => "Membership Started",
            Self::MembershipExtended => "Membership Extended",
            Self::AccessExpired => "Membership Ended",
            Self::AccessRevoked => "Membership Revoked",
            Self::JoinDeclined => "Join Declined",
            Self::EffectDeadLettered => "Effect Dead-Lettered",
            Self::StarsPaid => "Stars Payment Received",
            Self::StarsRefunded => "Stars Payment Refunded",
            _ => return None,
        })
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        const ALL: [AuditAction; 28] = [
            AuditAction::PaymentSubmitted,
            AuditAction::PaymentValidated,
            AuditAction::PaymentRejected,
            AuditAction::PaymentRefunded,
            AuditAction::TokenIssued,
            AuditAction::TokenRedeemed,
            AuditAction::TokenRefused,
            AuditAction::InviteCreated,
            AuditAction::JoinApproved,
            AuditAction::JoinDeclined,
            AuditAction::MemberJoined,
            AuditAction::MemberLeft,
            AuditAction::MemberRemoved,
            AuditAction::MembershipExtended,
            AuditAction::WarningSent,
            AuditAction::AccessExpired,
            AuditAction::AccessRevoked,
            AuditAction::JobRun,
            AuditAction::EffectDropped,
            AuditAction::Reinstated,
            AuditAction::Imported,
            AuditAction::EffectDeadLettered,
            AuditAction::StarsPaid,
            AuditAction::StarsCheckoutRefused,
            AuditAction::StarsNotOurs,
            AuditAction::StarsRefunded,
            AuditAction::PaySupportRequested,
            AuditAction::StarsSubscriptionChanged,
        ];
        ALL.into_iter().find(|a| a.as_str() == raw).ok_or(DomainError::invalid("audit action", "unknown"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: DateTime<Utc>,
    /// `user:<id>`, `telegram:<id>`, `job:<name>` or `system`.
    pub actor: String,
    pub action: AuditAction,
    pub user_id: Option<UserId>,
    pub telegram_user_id: Option<TelegramUserId>,
    pub details: serde_json::Value,
}
