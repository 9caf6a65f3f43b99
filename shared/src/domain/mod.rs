//! The domain: entities, newtypes and rules. No AWS, no HTTP, no Telegram client here.

mod audit;
mod ids;
mod job;
mod membership;
mod notification;
mod offer;
mod payment;
mod reason;
pub mod texts;
mod token;
mod update;

pub use audit::{AuditAction, AuditEntry};
pub use ids::{AuditId, MembershipId, NotificationId, PaymentId, RunId, TelegramUserId, UserId};
pub use job::{Job, REQUESTED_RUN_DAYS, RUN_DEADLINE_MINUTES, RequestedRun, RunStatus, Schedule};
pub use membership::{AccountBar, Exemption, Membership, MembershipStatus, extended_end};
pub use notification::{Notification, NotificationKind, READ_NOTIFICATION_DAYS, UNREAD_NOTIFICATION_DAYS};
pub use offer::{
    Invoice, MAX_STARS, Offer, Offers, STAR_SUBSCRIPTION_DAYS, STARS_RENEWAL_WAIT_HOURS, offer_of_payload, sale_of,
    stars_payload,
};
pub use payment::{Payment, PaymentStatus, STARS_TRANSACTION_PREFIX, StarsPaid, parse_transaction_id, transaction_key};
pub use reason::Reason;
pub use texts::Lang;
pub use token::{AccessToken, TokenHash, TokenRecord, TokenStatus};
pub use update::{
    ChatJoinRequest, ChatMemberStatus, ChatMemberUpdated, IncomingMessage, InviteLinkRef, PreCheckoutQuery,
    SubscriptionState, SubscriptionUpdated, SuccessfulPayment, TgUser, Update, UpdateKind,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DomainError {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: &'static str },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: &'static str) -> Self {
        Self::Invalid { field, reason }
    }
}
