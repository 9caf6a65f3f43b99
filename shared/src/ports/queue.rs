//! Side effects queued by a request and carried out after it (SQS in AWS, in process locally).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{BusinessEvent, Email};
use crate::domain::{PaymentId, TelegramUserId};

/// A side effect to carry out after the request that decided it: at most once in effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    SendMessage {
        chat_id: i64,
        text: String,
    },
    SendEmail {
        email: Email,
    },
    /// Out of the channel. `keep_banned: false` bans then unbans, so the person can come back after paying.
    RemoveMember {
        telegram_user_id: TelegramUserId,
        keep_banned: bool,
    },
    LiftBan {
        telegram_user_id: TelegramUserId,
    },
    ApproveJoinRequest {
        telegram_user_id: TelegramUserId,
    },
    DeclineJoinRequest {
        telegram_user_id: TelegramUserId,
    },
    RevokeInvite {
        link: String,
    },
    /// A business event for integrations, put on the event bus.
    Publish {
        event: BusinessEvent,
    },
    /// A Stars payment given back (`refundStarPayment`); once Telegram confirms it, the payment
    /// is recorded `refunded` (or `refund_failed` with Telegram's refusal). No `payment_id`: an
    /// effect queued by an earlier release, which records nothing.
    RefundStars {
        telegram_user_id: TelegramUserId,
        charge_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payment_id: Option<PaymentId>,
    },
    /// A Stars subscription's renewal stopped (`editUserStarSubscription`, cancelled).
    CancelSubscription {
        telegram_user_id: TelegramUserId,
        charge_id: String,
    },
}

impl Effect {
    /// The Telegram account a channel effect acts on.
    pub fn account(&self) -> Option<TelegramUserId> {
        match self {
            Self::RemoveMember { telegram_user_id, .. }
            | Self::LiftBan { telegram_user_id }
            | Self::ApproveJoinRequest { telegram_user_id }
            | Self::DeclineJoinRequest { telegram_user_id } => Some(*telegram_user_id),
            _ => None,
        }
    }
}

/// An effect with the key that makes redelivery harmless.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub idempotency_key: String,
    pub effect: Effect,
}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(#[source] pub super::Cause);

#[async_trait]
pub trait Queue: Send + Sync {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError>;
}
