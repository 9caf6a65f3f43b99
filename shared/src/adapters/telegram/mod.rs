//! The Telegram port over teloxide-core's `Bot`, pointed at `TELEGRAM_API_URL`.

pub mod wire;
pub use wire::parse_update;

use crate::metrics::{self, Metric};
use std::time::Duration;

use async_trait::async_trait;
use teloxide_core::Bot;
use teloxide_core::errors::{ApiError, RequestError};
use teloxide_core::payloads::setters::*;
use teloxide_core::requests::{Request, Requester};
use teloxide_core::types::{
    AllowedUpdate, ChatId, ChatMemberKind, InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice,
    PreCheckoutQueryId, Seconds, TelegramTransactionId, UserId, WebAppInfo,
};

use crate::config::Secret;
use crate::domain::{TelegramUserId, Update};
pub use crate::ports::{BotRights, WebhookState};
use crate::ports::{
    ChannelHealth, InviteMode, InviteRequest, LinkButton, Presence, StarInvoice, StarPage, StarRefund, StarTransaction,
    Telegram, TelegramError,
};

pub struct BotApi {
    bot: Bot,
    channel: ChatId,
}

/// The bot as `getMe` describes it.
#[derive(Debug)]
pub struct BotIdentity {
    pub id: i64,
    pub username: String,
}

impl BotApi {
    /// `timeout` bounds each call (long polling needs more than its own `timeout`).
    pub fn new(token: &Secret, api_url: &str, channel_id: i64, timeout: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(api_url).map_err(|e| format!("bad setting TELEGRAM_API_URL: {e}"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let bot = Bot::with_client(token.expose(), client).set_api_url(url);
        Ok(Self { bot, channel: ChatId(channel_id) })
    }

    /// One long poll: the updates after `offset`, with the kinds telegate needs.
    pub async fn poll(&self, offset: i32, timeout_seconds: u32) -> Result<Vec<Update>, TelegramError> {
        let updates = self
            .bot
            .get_updates()
            .offset(offset)
            .timeout(timeout_seconds)
            .allowed_updates(allowed_updates())
            .send()
            .await
            .map_err(failed("getUpdates"))?;
        // teloxide's types re-serialise to the Bot API's JSON, which our own parser reads.
        Ok(updates
            .into_iter()
            .filter_map(|u| serde_json::to_vec(&u).ok().and_then(|v| parse_update(&v).ok()))
            .collect())
    }

    pub async fn webhook_state(&self) -> Result<WebhookState, TelegramError> {
        let info = self.bot.get_webhook_info().send().await.map_err(failed("getWebhookInfo"))?;
        Ok(WebhookState {
            url: info.url.map(|u| u.to_string()),
            pending_update_count: info.pending_update_count,
            last_error_message: info.last_error_message,
            allowed_updates: info.allowed_updates.map(|kinds| {
                kinds
                    .iter()
                    .filter_map(|k| serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)))
                    .collect()
            }),
        })
    }

    pub async fn me(&self) -> Result<BotIdentity, TelegramError> {
        let me = self.bot.get_me().send().await.map_err(failed("getMe"))?;
        Ok(BotIdentity { id: i64::try_from(me.user.id.0).unwrap_or_default(), username: me.username().to_owned() })
    }

    /// The channel's title (`getChat`).
    pub async fn channel_title(&self) -> Result<String, TelegramError> {
        let chat = self.bot.get_chat(self.channel).send().await.map_err(failed("getChat"))?;
        Ok(chat.title().unwrap_or("(no title)").to_owned())
    }

    pub async fn rights(&self, bot_id: i64) -> Result<BotRights, TelegramError> {
        let member = self
            .bot
            .get_chat_member(self.channel, UserId(bot_id.unsigned_abs()))
            .send()
            .await
            .map_err(failed("getChatMember"))?;
        Ok(BotRights {
            administrator: member.kind.is_privileged(),
            can_invite_users: match &member.kind {
                ChatMemberKind::Owner(_) => true,
                ChatMemberKind::Administrator(a) => a.can_invite_users,
                _ => false,
            },
            can_restrict_members: member.kind.can_restrict_members(),
        })
    }

    /// Registers the webhook with its secret and the update kinds telegate needs.
    pub async fn set_webhook(&self, url: &str, secret: &Secret) -> Result<(), TelegramError> {
        let url = reqwest::Url::parse(url).map_err(|e| TelegramError::Refused(format!("bad webhook url: {e}")))?;
        self.bot
            .set_webhook(url)
            .secret_token(secret.expose().to_owned())
            .allowed_updates(allowed_updates())
            .send()
            .await
            .map(drop)
            .map_err(failed("setWebhook"))
    }

    pub async fn delete_webhook(&self) -> Result<(), TelegramError> {
        self.bot.delete_webhook().send().await.map(drop).map_err(failed("deleteWebhook"))
    }
}

/// Telegram does not send `chat_member` updates unless asked; `pre_checkout_query` for Stars.
pub fn allowed_updates() -> Vec<AllowedUpdate> {
    vec![
        AllowedUpdate::Message,
        AllowedUpdate::ChatMember,
        AllowedUpdate::ChatJoinRequest,
        AllowedUpdate::PreCheckoutQuery,
    ]
}

fn user(id: TelegramUserId) -> UserId {
    UserId(id.get().unsigned_abs())
}

#[async_trait]
impl Telegram for BotApi {
    async fn channel_health(&self) -> Result<ChannelHealth, TelegramError> {
        let me = self.me().await?;
        Ok(ChannelHealth { rights: self.rights(me.id).await?, webhook: self.webhook_state().await? })
    }

    async fn send_message(&self, chat_id: i64, text: &str, buttons: &[LinkButton]) -> Result<(), TelegramError> {
        let mut request = self.bot.send_message(ChatId(chat_id), text);
        if !buttons.is_empty() {
            let mut rows = Vec::new();
            for b in buttons {
                let url =
                    reqwest::Url::parse(&b.url).map_err(|e| TelegramError::Refused(format!("bad button url: {e}")))?;
                rows.push(vec![match b.mini_app {
                    true => InlineKeyboardButton::web_app(b.text.clone(), WebAppInfo { url }),
                    false => InlineKeyboardButton::url(b.text.clone(), url),
                }]);
            }
            request = request.reply_markup(InlineKeyboardMarkup::new(rows));
        }
        request.send().await.map(drop).map_err(failed("sendMessage"))
    }

    async fn create_invite(&self, invite: &InviteRequest) -> Result<String, TelegramError> {
        let request =
            self.bot.create_chat_invite_link(self.channel).name(invite.name.clone()).expire_date(invite.expire_at);
        let request = match invite.mode {
            InviteMode::JoinRequest => request.creates_join_request(true),
            InviteMode::MemberLimit => request.member_limit(1),
        };
        request.send().await.map(|l| l.invite_link).map_err(failed("createChatInviteLink"))
    }

    async fn revoke_invite(&self, link: &str) -> Result<(), TelegramError> {
        self.bot
            .revoke_chat_invite_link(self.channel, link)
            .send()
            .await
            .map(drop)
            .map_err(failed("revokeChatInviteLink"))
    }

    async fn unban(&self, id: TelegramUserId, only_if_banned: bool) -> Result<(), TelegramError> {
        self.bot
            .unban_chat_member(self.channel, user(id))
            .only_if_banned(only_if_banned)
            .send()
            .await
            .map(drop)
            .map_err(failed("unbanChatMember"))
    }

    async fn ban(&self, id: TelegramUserId) -> Result<(), TelegramError> {
        self.bot.ban_chat_member(self.channel, user(id)).send().await.map(drop).map_err(failed("banChatMember"))
    }

    async fn approve_join_request(&self, id: TelegramUserId) -> Result<(), TelegramError> {
        self.bot
            .approve_chat_join_request(self.channel, user(id))
            .send()
            .await
            .map(drop)
            .map_err(failed("approveChatJoinRequest"))
    }

    async fn presence(&self, id: TelegramUserId) -> Result<Presence, TelegramError> {
        let member = match self.bot.get_chat_member(self.channel, user(id)).send().await {
            Ok(member) => member,
            // A deleted account is out of every chat.
            Err(RequestError::Api(ApiError::UserNotFound | ApiError::UserDeactivated)) => return Ok(Presence::Out),
            Err(e) => return Err(failed("getChatMember")(e)),
        };
        Ok(match member.kind {
            ChatMemberKind::Owner(_) | ChatMemberKind::Administrator(_) => Presence::Staff,
            ChatMemberKind::Member(_) => Presence::In,
            ChatMemberKind::Restricted(r) if r.is_member => Presence::In,
            _ => Presence::Out,
        })
    }

    async fn administrators(&self) -> Result<Vec<TelegramUserId>, TelegramError> {
        let staff =
            self.bot.get_chat_administrators(self.channel).send().await.map_err(failed("getChatAdministrators"))?;
        Ok(staff
            .into_iter()
            .filter(|m| !m.user.is_bot)
            .filter_map(|m| i64::try_from(m.user.id.0).ok().and_then(|id| TelegramUserId::parse(id).ok()))
            .collect())
    }

    async fn decline_join_request(&self, id: TelegramUserId) -> Result<(), TelegramError> {
        self.bot
            .decline_chat_join_request(self.channel, user(id))
            .send()
            .await
            .map(drop)
            .map_err(failed("declineChatJoinRequest"))
    }

    async fn create_invoice_link(&self, invoice: &StarInvoice) -> Result<String, TelegramError> {
        let price = LabeledPrice::new(invoice.title.clone(), invoice.stars);
        let request = self.bot.create_invoice_link(
            invoice.title.clone(),
            invoice.description.clone(),
            invoice.payload.clone(),
            "XTR",
            [price],
        );
        let request = if invoice.renewing {
            request.subscription_period(Seconds::from_seconds(STAR_SUBSCRIPTION_SECONDS))
        } else {
            request
        };
        request.send().await.map_err(failed("createInvoiceLink"))
    }

    async fn answer_pre_checkout(&self, query_id: &str, refusal: Option<&str>) -> Result<(), TelegramError> {
        let request = self.bot.answer_pre_checkout_query(PreCheckoutQueryId(query_id.to_owned()), refusal.is_none());
        let request = match refusal {
            Some(why) => request.error_message(why),
            None => request,
        };
        request.send().await.map(drop).map_err(failed("answerPreCheckoutQuery"))
    }

    async fn refund_stars(&self, id: TelegramUserId, charge_id: &str) -> Result<(), TelegramError> {
        self.bot
            .refund_star_payment(user(id), TelegramTransactionId(charge_id.to_owned()))
            .send()
            .await
            .map(drop)
            .map_err(failed("refundStarPayment"))
    }

    async fn cancel_subscription(
        &self,
        id: TelegramUserId,
        charge_id: &str,
        cancel: bool,
    ) -> Result<(), TelegramError> {
        self.bot
            .edit_user_star_subscription(user(id), TelegramTransactionId(charge_id.to_owned()), cancel)
            .send()
            .await
            .map(drop)
            .map_err(failed("editUserStarSubscription"))
    }

    async fn star_payments(&self, offset: u32, limit: u32) -> Result<StarPage, TelegramError> {
        let page = self
            .bot
            .get_star_transactions()
            .offset(offset)
            .limit(u8::try_from(limit.min(100)).unwrap_or(100))
            .send()
            .await
            .map_err(failed("getStarTransactions"))?;
        // Read through the Bot API's JSON: incoming payments from users, with their payload, and
        // Stars sent back to users.
        let json = serde_json::to_value(&page).map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        let transactions = json["transactions"].as_array().map_or(&[][..], Vec::as_slice);
        let refunds = transactions
            .iter()
            .filter(|t| t["receiver"]["type"] == "user")
            .filter_map(|t| {
                Some(StarRefund {
                    charge_id: t["id"].as_str()?.to_owned(),
                    account: TelegramUserId::parse(t["receiver"]["user"]["id"].as_i64()?).ok()?,
                })
            })
            .collect();
        let payments = transactions
            .iter()
            .filter(|t| t["source"]["type"] == "user")
            .filter_map(|t| {
                Some(StarTransaction {
                    charge_id: t["id"].as_str()?.to_owned(),
                    stars: u32::try_from(t["amount"].as_u64()?).ok()?,
                    at: chrono::DateTime::from_timestamp(t["date"].as_i64()?, 0)?,
                    payer: TelegramUserId::parse(t["source"]["user"]["id"].as_i64()?).ok()?,
                    payload: t["source"]["invoice_payload"].as_str().unwrap_or_default().to_owned(),
                    subscription_period: t["source"]["subscription_period"]
                        .as_u64()
                        .and_then(|s| u32::try_from(s).ok()),
                })
            })
            .collect();
        Ok(StarPage { listed: u32::try_from(transactions.len()).unwrap_or(u32::MAX), payments, refunds })
    }
}

/// Telegram's only subscription period: 30 days.
const STAR_SUBSCRIPTION_SECONDS: u32 = 2_592_000;

/// A failed call of `method`, sorted, and counted for the alarms (a user who blocked the bot is
/// no failure of ours).
fn failed(method: &'static str) -> impl Fn(RequestError) -> TelegramError {
    move |e| {
        let error = map_error(e);
        match &error {
            TelegramError::RetryAfter(_) => metrics::count(Metric::TelegramFloodWait { method }),
            TelegramError::Unreachable(_) => {}
            _ => metrics::count(Metric::TelegramError { method }),
        }
        error
    }
}

/// Sorts teloxide's errors by what the caller should do. teloxide already hides the token in
/// network errors' URLs.
fn map_error(e: RequestError) -> TelegramError {
    match e {
        RequestError::RetryAfter(s) => TelegramError::RetryAfter(s.seconds()),
        RequestError::Api(api) => match api {
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::CantInitiateConversation
            | ApiError::CantTalkWithBots
            | ApiError::ChatNotFound => TelegramError::Unreachable(api.to_string()),
            ApiError::Unknown(text) if is_server_fault(&text) => TelegramError::Unavailable(text),
            other => {
                let text = other.to_string();
                if ALREADY_DONE.iter().any(|marker| text.contains(marker)) {
                    TelegramError::AlreadyDone(text)
                } else if ADMINISTRATOR.iter().any(|marker| text.contains(marker)) {
                    TelegramError::Administrator(text)
                } else {
                    TelegramError::Refused(text)
                }
            }
        },
        RequestError::Network(e) => TelegramError::Unavailable(e.to_string()),
        RequestError::InvalidJson { source, .. } => {
            TelegramError::Unavailable(format!("Telegram's answer did not parse: {source}"))
        }
        RequestError::MigrateToChatId(id) => TelegramError::Refused(format!("the channel moved to chat id {id}")),
        RequestError::Io(e) => TelegramError::Unavailable(e.to_string()),
    }
}

/// Telegram's refusals that say what was asked is already so: a join request already decided (or
/// withdrawn), an account already in, an invite link already revoked, a charge already refunded.
const ALREADY_DONE: [&str; 4] =
    ["HIDE_REQUESTER_MISSING", "USER_ALREADY_PARTICIPANT", "INVITE_HASH_EXPIRED", "CHARGE_ALREADY_REFUNDED"];

/// Telegram's refusals to restrict an administrator or the owner of the channel.
const ADMINISTRATOR: [&str; 2] = ["user is an administrator of the chat", "can't remove chat owner"];

fn is_server_fault(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["internal server error", "bad gateway", "gateway timeout", "service unavailable"].iter().any(|s| t.contains(s))
}

#[cfg(test)]
mod tests {
    use teloxide_core::errors::{ApiError, RequestError};

    use super::map_error;
    use crate::ports::TelegramError;

    /// Telegram's words are read here, and only here: the callers get what to do.
    #[test]
    fn telegrams_refusals_are_sorted_by_what_to_do() {
        let api = |text: &str| RequestError::Api(ApiError::Unknown(text.into()));
        assert!(matches!(map_error(api("Bad Request: CHARGE_ALREADY_REFUNDED")), TelegramError::AlreadyDone(_)));
        assert!(matches!(map_error(api("Bad Request: HIDE_REQUESTER_MISSING")), TelegramError::AlreadyDone(_)));
        let admin = map_error(api("Bad Request: user is an administrator of the chat"));
        assert!(matches!(admin, TelegramError::Administrator(_)), "{admin:?}");
        assert!(matches!(map_error(api("Bad Request: can't remove chat owner")), TelegramError::Administrator(_)));
        assert!(matches!(map_error(api("Bad Request: CHARGE_NOT_FOUND")), TelegramError::Refused(_)));
        assert!(matches!(map_error(api("Bad Gateway")), TelegramError::Unavailable(_)));
        assert!(matches!(map_error(RequestError::Api(ApiError::BotBlocked)), TelegramError::Unreachable(_)));
    }
}
