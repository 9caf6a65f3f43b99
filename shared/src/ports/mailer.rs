//! Email to users (SES in AWS, `.eml` files locally).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth trying again (the service was unavailable, throttled…).
    #[error("mail not sent: {0}")]
    Unavailable(#[source] super::Cause),
    /// No retry changes it (the recipient or the sender is refused): not retried into the DLQ.
    #[error("mail refused: {0}")]
    Refused(#[source] super::Cause),
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}
