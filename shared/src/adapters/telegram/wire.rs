//! The Bot API's JSON for the updates telegate reads (the webhook's body, `getUpdates`), and its
//! parsing into the domain's `Update`: Telegram's strings are read here, and only here.

use serde::{Deserialize, Serialize};

use crate::domain::{self, ChatMemberStatus, Lang, SubscriptionState, UpdateKind};

/// An update as Telegram sends it, parsed into what telegate acts on. A body that is not an update
/// is an error; a kind telegate does not handle is `UpdateKind::Other`.
pub fn parse_update(body: &[u8]) -> Result<domain::Update, serde_json::Error> {
    serde_json::from_slice::<Update>(body).map(domain::Update::from)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Update {
    pub(crate) update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<IncomingMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chat_member: Option<ChatMemberUpdated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chat_join_request: Option<ChatJoinRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pre_checkout_query: Option<PreCheckoutQuery>,
    /// A Stars subscription cancelled, re-enabled or failing to renew (newer Bot API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subscription: Option<SubscriptionUpdated>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct TgUser {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) is_bot: bool,
    #[serde(default)]
    pub(crate) first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) language_code: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct TgChat {
    pub(crate) id: i64,
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct IncomingMessage {
    pub(crate) message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<TgUser>,
    pub(crate) chat: TgChat,
    #[serde(default)]
    pub(crate) date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) successful_payment: Option<SuccessfulPayment>,
}

/// Telegram asks whether to go ahead with a payment: the bot must answer within 10 seconds.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct PreCheckoutQuery {
    pub(crate) id: String,
    pub(crate) from: TgUser,
    pub(crate) currency: String,
    pub(crate) total_amount: u32,
    pub(crate) invoice_payload: String,
}

/// A change of a Stars subscription: `canceled` (by the user), `active` (re-enabled) or `failed`
/// (a renewal could not be charged). Only told; the end of the period paid for decides.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SubscriptionUpdated {
    pub(crate) user: TgUser,
    pub(crate) invoice_payload: String,
    pub(crate) state: String,
}

/// A payment Telegram took: the first of a purchase or subscription, or a renewal.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SuccessfulPayment {
    pub(crate) currency: String,
    pub(crate) total_amount: u32,
    pub(crate) invoice_payload: String,
    pub(crate) telegram_payment_charge_id: String,
    #[serde(default)]
    pub(crate) provider_payment_charge_id: String,
    /// Unix time when a subscription's period paid for ends (subscriptions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subscription_expiration_date: Option<i64>,
    #[serde(default)]
    pub(crate) is_recurring: bool,
    #[serde(default)]
    pub(crate) is_first_recurring: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct InviteLinkRef {
    pub(crate) invite_link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) creates_join_request: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ChatMember {
    pub(crate) user: TgUser,
    pub(crate) status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) is_member: Option<bool>,
}

impl ChatMember {
    pub(crate) fn status(&self) -> ChatMemberStatus {
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

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ChatMemberUpdated {
    pub(crate) chat: TgChat,
    pub(crate) from: TgUser,
    #[serde(default)]
    pub(crate) date: i64,
    pub(crate) old_chat_member: ChatMember,
    pub(crate) new_chat_member: ChatMember,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) invite_link: Option<InviteLinkRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) via_join_request: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct ChatJoinRequest {
    pub(crate) chat: TgChat,
    pub(crate) from: TgUser,
    #[serde(default)]
    pub(crate) date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) invite_link: Option<InviteLinkRef>,
}

impl From<Update> for domain::Update {
    fn from(u: Update) -> Self {
        let kind = if let Some(m) = u.message {
            UpdateKind::Message(domain::IncomingMessage {
                chat_id: m.chat.id,
                private: m.chat.kind == "private",
                from: m.from.map(domain::TgUser::from),
                date: m.date,
                text: m.text,
                successful_payment: m.successful_payment.map(|p| domain::SuccessfulPayment {
                    currency: p.currency,
                    total_amount: p.total_amount,
                    invoice_payload: p.invoice_payload,
                    telegram_payment_charge_id: p.telegram_payment_charge_id,
                    subscription_expiration_date: p.subscription_expiration_date,
                    is_recurring: p.is_recurring,
                    is_first_recurring: p.is_first_recurring,
                }),
            })
        } else if let Some(c) = u.chat_member {
            UpdateKind::ChatMember(domain::ChatMemberUpdated {
                chat_id: c.chat.id,
                from: c.from.into(),
                before: c.old_chat_member.status(),
                after: c.new_chat_member.status(),
                user: c.new_chat_member.user.into(),
                invite_link: c.invite_link.map(domain::InviteLinkRef::from),
            })
        } else if let Some(j) = u.chat_join_request {
            UpdateKind::JoinRequest(domain::ChatJoinRequest {
                chat_id: j.chat.id,
                from: j.from.into(),
                invite_link: j.invite_link.map(domain::InviteLinkRef::from),
            })
        } else if let Some(q) = u.pre_checkout_query {
            UpdateKind::PreCheckout(domain::PreCheckoutQuery {
                id: q.id,
                from: q.from.into(),
                currency: q.currency,
                total_amount: q.total_amount,
                invoice_payload: q.invoice_payload,
            })
        } else if let Some(s) = u.subscription {
            let state = match s.state.as_str() {
                "canceled" => SubscriptionState::Canceled,
                "active" => SubscriptionState::Active,
                "failed" => SubscriptionState::Failed,
                other => {
                    tracing::warn!(state = other, "a subscription state this version does not know");
                    SubscriptionState::Other
                }
            };
            UpdateKind::Subscription(domain::SubscriptionUpdated {
                user: s.user.into(),
                invoice_payload: s.invoice_payload,
                state,
            })
        } else {
            UpdateKind::Other
        };
        Self { update_id: u.update_id, kind }
    }
}

impl From<TgUser> for domain::TgUser {
    fn from(u: TgUser) -> Self {
        Self { id: u.id, is_bot: u.is_bot, username: u.username, lang: Lang::from_code(u.language_code.as_deref()) }
    }
}

impl From<InviteLinkRef> for domain::InviteLinkRef {
    fn from(l: InviteLinkRef) -> Self {
        Self { invite_link: l.invite_link, name: l.name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> domain::Update {
        parse_update(json.as_bytes()).unwrap()
    }

    #[test]
    fn a_start_message_in_a_private_chat_parses_with_its_sender_s_language() {
        let u = parse(
            r#"{"update_id":7,"message":{"message_id":1,"date":1,"chat":{"id":5,"type":"private"},
                "from":{"id":5,"is_bot":false,"first_name":"A","language_code":"en"},"text":"/start abc"}}"#,
        );
        let UpdateKind::Message(m) = u.kind else { panic!("{u:?}") };
        assert_eq!((m.text.as_deref(), m.private), (Some("/start abc"), true));
        assert_eq!(m.from.map(|f| f.lang), Some(Lang::En));
        let group =
            parse(r#"{"update_id":9,"message":{"message_id":1,"chat":{"id":-5,"type":"group"},"text":"/start"}}"#);
        assert!(matches!(group.kind, UpdateKind::Message(m) if !m.private));
    }

    #[test]
    fn an_unhandled_kind_parses_as_other_and_a_body_that_is_no_update_is_refused() {
        assert!(matches!(parse(r#"{"update_id":8,"poll":{"id":"x"}}"#).kind, UpdateKind::Other));
        assert!(parse_update(br#"{"message":{}}"#).is_err());
    }

    #[test]
    fn a_member_s_status_is_read_here_restricted_members_still_in_the_chat_count_as_in() {
        let change = |old: &str, new: &str| {
            parse(&format!(
                r#"{{"update_id":1,"chat_member":{{"chat":{{"id":-100,"type":"channel"}},"from":{{"id":2}},
                    "old_chat_member":{old},"new_chat_member":{new}}}}}"#
            ))
        };
        let u = change(
            r#"{"user":{"id":1},"status":"left"}"#,
            r#"{"user":{"id":1,"first_name":"a"},"status":"restricted","is_member":true}"#,
        );
        let UpdateKind::ChatMember(c) = u.kind else { panic!("{u:?}") };
        assert_eq!(
            (c.before, c.after, c.user.id, c.from.id),
            (ChatMemberStatus::Out, ChatMemberStatus::RestrictedMember, 1, 2)
        );
        assert!(c.after.is_in_chat());
        let u = change(r#"{"user":{"id":1},"status":"member"}"#, r#"{"user":{"id":1},"status":"kicked"}"#);
        let UpdateKind::ChatMember(c) = u.kind else { panic!("{u:?}") };
        assert_eq!(c.after, ChatMemberStatus::Banned);
        assert!(!c.after.is_in_chat());
    }

    #[test]
    fn a_subscription_s_state_is_read_here() {
        let state = |s: &str| {
            let u = parse(&format!(
                r#"{{"update_id":1,"subscription":{{"user":{{"id":3}},"invoice_payload":"v1:m","state":"{s}"}}}}"#
            ));
            match u.kind {
                UpdateKind::Subscription(s) => s.state,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(state("canceled"), SubscriptionState::Canceled);
        assert_eq!(state("active"), SubscriptionState::Active);
        assert_eq!(state("failed"), SubscriptionState::Failed);
        assert_eq!(state("paused"), SubscriptionState::Other);
    }
}
