//! Use cases. Each takes parsed input and the caller, talks only to ports, and returns domain
//! results or an `AppError`; the HTTP layer decides status codes in one place.

mod access;
mod bot;
pub mod effects;
mod members;
mod notifications;
mod payments;
mod status;

use std::sync::Arc;

use crate::auth::{Caller, Role};
use crate::config::Settings;
use crate::domain::DomainError;
use crate::ports::{Clock, Effect, Envelope, Queue, Store, StoreError, Telegram};

pub use access::Issued;
pub use payments::SubmitPayment;
pub use status::{MembershipView, StatusView};

/// The application: settings and ports, built once per process.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub telegram: Arc<dyn Telegram>,
    pub queue: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
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
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A dependency we cannot do without is down (e.g. the JWKS endpoint).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A real fault on our side or a dependency's; the cause goes to the log, not to the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { .. } => Self::Invalid(e.to_string()),
            DomainError::Random(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::ports::QueueError> for AppError {
    fn from(e: crate::ports::QueueError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::ports::TelegramError> for AppError {
    fn from(e: crate::ports::TelegramError) -> Self {
        Self::Internal(e.to_string())
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

impl App {
    /// Queues side effects; each key makes a redelivery harmless.
    pub(crate) async fn enqueue(&self, effects: Vec<(String, Effect)>) -> Result<(), AppError> {
        if effects.is_empty() {
            return Ok(());
        }
        let envelopes = effects
            .into_iter()
            .map(|(idempotency_key, effect)| Envelope {
                idempotency_key,
                effect,
            })
            .collect();
        Ok(self.queue.enqueue(envelopes).await?)
    }

    pub fn bot_link(&self, token: &crate::domain::AccessToken) -> String {
        format!(
            "https://t.me/{}?start={}",
            self.settings.bot_username,
            token.expose()
        )
    }
}
