//! The part of a Telegram `Update` telegate acts on, parsed at the edge. Kinds we do not handle
//! parse as `UpdateKind::Other` and are acknowledged without effect.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<IncomingMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_member: Option<ChatMemberUpdated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_join_request: Option<ChatJoinRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_checkout_query: Option<PreCheckoutQuery>,
    /// A Stars subscription cancelled, re-enabled or failing to renew (newer Bot API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionUpdated>,
}

pub enum UpdateKind<'a> {
    Message(&'a IncomingMessage),
    ChatMember(&'a ChatMemberUpdated),
    JoinRequest(&'a ChatJoinRequest),
    PreCheckout(&'a PreCheckoutQuery),
    Subscription(&'a SubscriptionUpdated),
    Other,
}

impl Update {
    pub fn kind(&self) -> UpdateKind<'_> {
        if let Some(m) = &self.message {
            UpdateKind::Message(m)
        } else if let Some(c) = &self.chat_member {
            UpdateKind::ChatMember(c)
        } else if let Some(j) = &self.chat_join_request {
            UpdateKind::JoinRequest(j)
        } else if let Some(q) = &self.pre_checkout_query {
            UpdateKind::PreCheckout(q)
        } else if let Some(s) = &self.subscription {
            UpdateKind::Subscription(s)
        } else {
            UpdateKind::Other
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TgUser {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct TgChat {
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IncomingMessage {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<TgUser>,
    pub chat: TgChat,
    #[serde(default)]
    pub date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_payment: Option<SuccessfulPayment>,
}

/// Telegram asks whether to go ahead with a payment: the bot must answer within 10 seconds.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PreCheckoutQuery {
    pub id: String,
    pub from: TgUser,
    pub currency: String,
    pub total_amount: u32,
    pub invoice_payload: String,
}

/// A change of a Stars subscription: `canceled` (by the user), `active` (re-enabled) or `failed`
/// (a renewal could not be charged). Only told; the end of the period paid for decides.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SubscriptionUpdated {
    pub user: TgUser,
    pub invoice_payload: String,
    pub state: String,
}

/// A payment Telegram took: the first of a purchase or subscription, or a renewal.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SuccessfulPayment {
    pub currency: String,
    pub total_amount: u32,
    pub invoice_payload: String,
    pub telegram_payment_charge_id: String,
    #[serde(default)]
    pub provider_payment_charge_id: String,
    /// Unix time when a subscription's period paid for ends (subscriptions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date: Option<i64>,
    #[serde(default)]
    pub is_recurring: bool,
    #[serde(default)]
    pub is_first_recurring: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct InviteLinkRef {
    pub invite_link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub creates_join_request: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatMember {
    pub user: TgUser,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_member: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatMemberStatus {
    Owner,
    Administrator,
    Member,
    /// Restricted but still in the chat.
    RestrictedMember,
    /// Banned (`kicked`): out, and kept out until unbanned.
    Banned,
    /// Left, or restricted and not in the chat.
    Out,
}

impl ChatMember {
    pub fn status(&self) -> ChatMemberStatus {
        match self.status.as_str() {
            "creator" => ChatMemberStatus::Owner,
            "administrator" => ChatMemberStatus::Administrator,
            "member" => ChatMemberStatus::Member,
            "restricted" if self.is_member.unwrap_or(false) => ChatMemberStatus::RestrictedMember,
            "kicked" => ChatMemberStatus::Banned,
            _ => ChatMemberStatus::Out,
        }
    }
}

impl ChatMemberStatus {
    pub fn is_in_chat(self) -> bool {
        !matches!(self, Self::Out | Self::Banned)
    }
    pub fn is_staff(self) -> bool {
        matches!(self, Self::Owner | Self::Administrator)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatMemberUpdated {
    pub chat: TgChat,
    pub from: TgUser,
    #[serde(default)]
    pub date: i64,
    pub old_chat_member: ChatMember,
    pub new_chat_member: ChatMember,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<InviteLinkRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_join_request: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChatJoinRequest {
    pub chat: TgChat,
    pub from: TgUser,
    #[serde(default)]
    pub date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<InviteLinkRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_message_parses_as_a_message() {
        let u: Update = serde_json::from_str(
            r#"{"update_id":7,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},
                "from":{"id":5,"is_bot":false,"first_name":"A","language_code":"en"},"text":"/start abc"}}"#,
        )
        .unwrap();
        assert!(matches!(u.kind(), UpdateKind::Message(m) if m.text.as_deref() == Some("/start abc")));
    }

    #[test]
    fn an_unhandled_kind_parses_as_other() {
        let u: Update = serde_json::from_str(r#"{"update_id":8,"poll":{"id":"x"}}"#).unwrap();
        assert!(matches!(u.kind(), UpdateKind::Other));
    }

    #[test]
    fn restricted_members_still_in_the_chat_count_as_in() {
        let m: ChatMember =
            serde_json::from_str(r#"{"user":{"id":1,"first_name":"a"},"status":"restricted","is_member":true}"#)
                .unwrap();
        assert!(m.status().is_in_chat());
        let gone: ChatMember = serde_json::from_str(r#"{"user":{"id":1},"status":"kicked"}"#).unwrap();
        assert_eq!(gone.status(), ChatMemberStatus::Banned);
        assert!(!gone.status().is_in_chat());
    }
}
