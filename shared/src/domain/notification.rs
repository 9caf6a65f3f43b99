use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{DomainError, NotificationId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    PaymentVerified,
    PaymentRejected,
    AccessGranted,
    ExpirationWarning,
    AccessExpired,
    AccessRevoked,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentVerified => "payment_verified",
            Self::PaymentRejected => "payment_rejected",
            Self::AccessGranted => "access_granted",
            Self::ExpirationWarning => "expiration_warning",
            Self::AccessExpired => "access_expired",
            Self::AccessRevoked => "access_revoked",
        }
    }
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Ok(match raw {
            "payment_verified" => Self::PaymentVerified,
            "payment_rejected" => Self::PaymentRejected,
            "access_granted" => Self::AccessGranted,
            "expiration_warning" => Self::ExpirationWarning,
            "access_expired" => Self::AccessExpired,
            "access_revoked" => Self::AccessRevoked,
            _ => return Err(DomainError::invalid("notification type", "unknown")),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notification {
    pub id: NotificationId,
    #[serde(skip)]
    pub user_id: UserId,
    #[serde(rename = "type")]
    pub kind: NotificationKind,
    pub title: String,
    pub message: String,
    pub action_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

/// How long a notification is kept after it was created: read ones 30 days, unread ones 90 (the
/// guide's clean-up). Both stores and the clean-up job follow these windows.
pub const READ_NOTIFICATION_DAYS: i64 = 30;
pub const UNREAD_NOTIFICATION_DAYS: i64 = 90;

impl Notification {
    /// The end of this notification's retention.
    pub fn kept_until(&self) -> DateTime<Utc> {
        let days = if self.read { READ_NOTIFICATION_DAYS } else { UNREAD_NOTIFICATION_DAYS };
        self.created_at + chrono::Duration::days(days)
    }
}
