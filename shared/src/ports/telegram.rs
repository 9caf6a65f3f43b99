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
    /// Refused because what was asked is already so (a join request already decided, an invite
    /// already revoked, a charge already refunded): the call's aim holds.
    #[error("already done: {0}")]
    AlreadyDone(String),
    /// Refused because the account is an administrator or the owner of the channel, whom the bot
    /// may not restrict (the creator made them so: they are never removed).
    #[error("a channel administrator: {0}")]
    Administrator(String),
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
    /// Opens `url` inside Telegram as a Mini App (the console), not in the browser.
    #[serde(default)]
    pub mini_app: bool,
}

impl LinkButton {
    pub fn link(text: impl Into<String>, url: impl Into<String>) -> Self {
        Self { text: text.into(), url: url.into(), mini_app: false }
    }
    pub fn mini_app(text: impl Into<String>, url: impl Into<String>) -> Self {
        Self { text: text.into(), url: url.into(), mini_app: true }
    }
}

/// An invoice in Telegram Stars (`XTR`, one price item, no provider token).
/// What `getWebhookInfo` says, for the local host, `doctor` and the console's health panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebhookState {
    pub url: Option<String>,
    pub pending_update_count: u32,
    pub last_error_message: Option<String>,
    pub allowed_updates: Option<Vec<String>>,
}

/// The bot's standing in the channel, as `getChatMember` describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BotRights {
    pub administrator: bool,
    pub can_invite_users: bool,
    pub can_restrict_members: bool,
}

/// The bot's rights in the channel and Telegram's webhook state, for the console's health panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelHealth {
    pub rights: BotRights,
    pub webhook: WebhookState,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StarInvoice {
    pub title: String,
    pub description: String,
    pub payload: String,
    pub stars: u32,
    /// Renewed by Telegram every 30 days (`subscription_period`).
    pub renewing: bool,
}

/// A page of `getStarTransactions`: how many transactions Telegram listed (of every kind:
/// refunds, withdrawals… a cursor walks over them all), the incoming payments among them, and
/// the Stars that went back to users.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StarPage {
    pub listed: u32,
    pub payments: Vec<StarTransaction>,
    pub refunds: Vec<StarRefund>,
}

/// Stars the bot sent back to a user, as `getStarTransactions` lists them: a refund bears the id
/// of the payment it refunds (gifts and other outgoing transactions bear their own).
#[derive(Clone, Debug, PartialEq)]
pub struct StarRefund {
    /// The `telegram_payment_charge_id` of the payment refunded.
    pub charge_id: String,
    pub account: TelegramUserId,
}

/// One incoming Stars payment as `getStarTransactions` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct StarTransaction {
    /// The `telegram_payment_charge_id` of the payment.
    pub charge_id: String,
    pub stars: u32,
    pub at: DateTime<Utc>,
    pub payer: TelegramUserId,
    pub payload: String,
    /// A subscription's payment (its period, in seconds).
    pub subscription_period: Option<u32>,
}

/// The Bot API calls telegate makes, on the one configured channel, and for payments in Stars.
#[async_trait]
pub trait Telegram: Send + Sync {
    /// A message; each button is a link on its own row.
    async fn send_message(&self, chat_id: i64, text: &str, buttons: &[LinkButton]) -> Result<(), TelegramError>;
    async fn create_invite(&self, request: &InviteRequest) -> Result<String, TelegramError>;
    async fn revoke_invite(&self, link: &str) -> Result<(), TelegramError>;
    async fn unban(&self, user: TelegramUserId, only_if_banned: bool) -> Result<(), TelegramError>;
    async fn ban(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    async fn approve_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    async fn decline_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError>;
    /// Whether the account is in the channel now (`getChatMember`).
    async fn presence(&self, user: TelegramUserId) -> Result<Presence, TelegramError>;
    /// The channel's administrators and owner (`getChatAdministrators`), bots left out.
    async fn administrators(&self) -> Result<Vec<TelegramUserId>, TelegramError>;

    // Payments in Stars. A Telegram that cannot take them refuses, loudly.

    /// `createInvoiceLink`: a link that opens the payment of `invoice` in the buyer's app.
    async fn create_invoice_link(&self, _invoice: &StarInvoice) -> Result<String, TelegramError> {
        Err(no_stars())
    }
    /// `answerPreCheckoutQuery`: go ahead (`refusal: None`) or refuse with a message for the buyer.
    async fn answer_pre_checkout(&self, _query_id: &str, _refusal: Option<&str>) -> Result<(), TelegramError> {
        Err(no_stars())
    }
    /// `refundStarPayment`.
    async fn refund_stars(&self, _user: TelegramUserId, _charge_id: &str) -> Result<(), TelegramError> {
        Err(no_stars())
    }
    /// `editUserStarSubscription`: cancel (`true`) or re-enable the renewal of a subscription.
    async fn cancel_subscription(
        &self,
        _user: TelegramUserId,
        _charge_id: &str,
        _cancel: bool,
    ) -> Result<(), TelegramError> {
        Err(no_stars())
    }
    /// `getStarTransactions`: a page of the bot's Star transactions, oldest first, from `offset`.
    async fn star_payments(&self, _offset: u32, _limit: u32) -> Result<StarPage, TelegramError> {
        Err(no_stars())
    }

    /// The bot's rights in the channel and the webhook's state (`getChatMember`, `getWebhookInfo`).
    async fn channel_health(&self) -> Result<ChannelHealth, TelegramError> {
        Err(TelegramError::Unavailable("no bot on this host: Telegram's calls go to the outbox".into()))
    }
}

fn no_stars() -> TelegramError {
    TelegramError::Refused("this Telegram client takes no payments in Stars".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    In,
    Out,
    /// An administrator or the owner: never touched.
    Staff,
}
