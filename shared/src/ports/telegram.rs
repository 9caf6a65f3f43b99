//! The Bot API calls telegate makes, on the one configured channel.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::TelegramUserId;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TelegramError {
    /// Flood control: try again after this many seconds.
    #[error("Telegram asks to retry after {0} s")]
    RetryAfter(u32),
    /// The user blocked the bot or no longer exists: messages cannot reach them.
    #[error("the user cannot be reached: {0}")]
    Unreachable(String),
    /// A permanent refusal (bad request, missing rights).
    #[error("Telegram refused: {0}")]
    Refused(String),
    /// Network faults, timeouts and 5xx: worth retrying.
    #[error("Telegram unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteMode {
    /// `creates_join_request`: only the account that redeemed the token is approved.
    JoinRequest,
    /// The guide's `member_limit = 1` link.
    MemberLimit,
}

#[derive(Clone, Debug)]
pub struct InviteRequest {
    pub name: String,
    pub expire_at: DateTime<Utc>,
    pub mode: InviteMode,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkButton {
    pub text: String,
    pub url: String,
}

/// The Bot API calls telegate makes, on the one configured channel.
#[async_trait]
pub trait Telegram: Send + Sync {
    async fn send_message(&self, chat_id: i64, text: &str, button: Option<&LinkButton>) -> Result<(), TelegramError>;
    async fn create_invite(&self, request: &InviteRequest) -> Result<String, TelegramError>;
    async fn revoke_invite(&self, link: &str) -> Result<(), TelegramError>;
    async fn unban(&self, user: TelegramUserId, only_if_banned: bool) -> Result<(), TelegramError>;
    async fn ban(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    async fn approve_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    async fn decline_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    /// Whether the account is in the channel now (`getChatMember`).
    async fn presence(&self, user: TelegramUserId) -> Result<Presence, TelegramError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    In,
    Out,
    /// An administrator or the owner: never touched.
    Staff,
}
