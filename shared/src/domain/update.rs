//! A Telegram update as telegate acts on it: parsed at the edge (`adapters::telegram::wire`, the
//! Bot API's JSON), so that a decision reads values (a member's status, a subscription's state, a
//! private chat), never Telegram's strings. Kinds we do not handle are `UpdateKind::Other`, and
//! acknowledged without effect.

use super::Lang;

#[derive(Clone, Debug)]
pub struct Update {
    pub update_id: i64,
    pub kind: UpdateKind,
}

#[derive(Clone, Debug)]
pub enum UpdateKind {
    Message(IncomingMessage),
    ChatMember(ChatMemberUpdated),
    JoinRequest(ChatJoinRequest),
    PreCheckout(PreCheckoutQuery),
    Subscription(SubscriptionUpdated),
    Other,
}

/// Who sent an update, or whom it is about.
#[derive(Clone, Debug)]
pub struct TgUser {
    pub id: i64,
    pub is_bot: bool,
    pub username: Option<String>,
    /// From the user's Telegram language (`language_code`).
    pub lang: Lang,
}

#[derive(Clone, Debug)]
pub struct IncomingMessage {
    pub chat_id: i64,
    /// A private chat with the bot (commands are answered only there).
    pub private: bool,
    pub from: Option<TgUser>,
    /// Unix time.
    pub date: i64,
    pub text: Option<String>,
    pub successful_payment: Option<SuccessfulPayment>,
}

/// Telegram asks whether to go ahead with a payment: the bot must answer within 10 seconds.
#[derive(Clone, Debug)]
pub struct PreCheckoutQuery {
    pub id: String,
    pub from: TgUser,
    pub currency: String,
    pub total_amount: u32,
    pub invoice_payload: String,
}

/// What happened to a Stars subscription. Only told; the end of the period paid for decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Cancelled by the user: it will not renew.
    Canceled,
    /// Re-enabled.
    Active,
    /// A renewal could not be charged.
    Failed,
    /// A state this version does not know.
    Other,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canceled => "canceled",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Other => "other",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SubscriptionUpdated {
    pub user: TgUser,
    pub invoice_payload: String,
    pub state: SubscriptionState,
}

/// A payment Telegram took: the first of a purchase or subscription, or a renewal.
#[derive(Clone, Debug)]
pub struct SuccessfulPayment {
    pub currency: String,
    pub total_amount: u32,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
    /// Unix time when a subscription's period paid for ends (subscriptions only).
    pub subscription_expiration_date: Option<i64>,
    pub is_recurring: bool,
    pub is_first_recurring: bool,
}

/// The invite link an update came through: ours are named after the membership they admit.
#[derive(Clone, Debug)]
pub struct InviteLinkRef {
    pub invite_link: String,
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatMemberStatus {
    Owner,
    Administrator,
    Member,
    /// Restricted but still in the chat.
    RestrictedMember,
    /// Banned: out, and kept out until unbanned.
    Banned,
    /// Left, or restricted and not in the chat.
    Out,
}

impl ChatMemberStatus {
    pub fn is_in_chat(self) -> bool {
        !matches!(self, Self::Out | Self::Banned)
    }
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Owner | Self::Administrator)
    }
}

/// A member's status in a chat changed: `user`'s, by `from`.
#[derive(Clone, Debug)]
pub struct ChatMemberUpdated {
    pub chat_id: i64,
    pub from: TgUser,
    pub user: TgUser,
    pub before: ChatMemberStatus,
    pub after: ChatMemberStatus,
    pub invite_link: Option<InviteLinkRef>,
}

#[derive(Clone, Debug)]
pub struct ChatJoinRequest {
    pub chat_id: i64,
    pub from: TgUser,
    pub invite_link: Option<InviteLinkRef>,
}
