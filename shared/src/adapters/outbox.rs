//! Local stand-ins that write to files: the mail outbox (one `.eml` per mail), the business
//! events (one JSON line per event, as EventBridge would carry it) and, when no bot token is
//! configured, a Telegram outbox (one JSON line per Bot API call).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::json;

use crate::domain::TelegramUserId;
use crate::ports::{
    BusinessEvent, EVENT_SOURCE, Email, EventBus, EventError, InviteRequest, LinkButton, MailError, Mailer, Presence,
    StarInvoice, StarPage, Telegram, TelegramError,
};

pub struct OutboxMailer {
    dir: PathBuf,
    from: String,
}

impl OutboxMailer {
    pub fn new(dir: PathBuf, from: impl Into<String>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, from: from.into() })
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let mut rand = [0u8; 6];
        getrandom::fill(&mut rand).map_err(|e| MailError::Unavailable(format!("random source: {e}").into()))?;
        let now = Utc::now();
        let boundary = format!("telegate-{}", URL_SAFE_NO_PAD.encode(rand));
        let name = format!("{}-{}.eml", now.format("%Y%m%dT%H%M%S%.3fZ"), URL_SAFE_NO_PAD.encode(rand));
        let message = format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{boundary}--\r\n",
            from = self.from,
            to = email.to.replace(['\r', '\n'], ""),
            subject = encode_header(&email.subject),
            date = now.to_rfc2822(),
            text = email.text,
            html = email.html,
        );
        std::fs::write(self.dir.join(name), message)
            .map_err(|e| MailError::Unavailable(format!("random source: {e}").into()))
    }
}

/// RFC 2047 encoding for non-ASCII subjects.
fn encode_header(value: &str) -> String {
    let clean = value.replace(['\r', '\n'], " ");
    if clean.is_ascii() {
        clean
    } else {
        format!("=?utf-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(clean))
    }
}

/// Telegram without a bot: each call is appended to a file, invites are placeholders.
pub struct OutboxTelegram {
    file: Mutex<std::fs::File>,
}

impl OutboxTelegram {
    pub fn new(path: PathBuf) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file: Mutex::new(file) })
    }

    fn record(&self, method: &str, params: serde_json::Value) -> Result<(), TelegramError> {
        let line = json!({ "at": Utc::now(), "method": method, "params": params });
        let mut file = self.file.lock().map_err(|_| TelegramError::Unavailable("outbox lock poisoned".into()))?;
        writeln!(file, "{line}").map_err(|e| TelegramError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Telegram for OutboxTelegram {
    async fn send_message(&self, chat_id: i64, text: &str, buttons: &[LinkButton]) -> Result<(), TelegramError> {
        self.record("sendMessage", json!({ "chat_id": chat_id, "text": text, "buttons": buttons }))
    }
    async fn create_invite(&self, request: &InviteRequest) -> Result<String, TelegramError> {
        let mut rand = [0u8; 9];
        getrandom::fill(&mut rand).map_err(|e| TelegramError::Unavailable(e.to_string()))?;
        let link = format!("https://t.me/+local{}", URL_SAFE_NO_PAD.encode(rand));
        self.record(
            "createChatInviteLink",
            json!({ "name": request.name, "expire_date": request.expire_at, "mode": request.mode, "invite_link": link }),
        )?;
        Ok(link)
    }
    async fn revoke_invite(&self, link: &str) -> Result<(), TelegramError> {
        self.record("revokeChatInviteLink", json!({ "invite_link": link }))
    }
    async fn unban(&self, user: TelegramUserId, only_if_banned: bool) -> Result<(), TelegramError> {
        self.record("unbanChatMember", json!({ "user_id": user, "only_if_banned": only_if_banned }))
    }
    async fn ban(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.record("banChatMember", json!({ "user_id": user }))
    }
    async fn approve_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.record("approveChatJoinRequest", json!({ "user_id": user }))
    }
    async fn presence(&self, user: TelegramUserId) -> Result<Presence, TelegramError> {
        // Without a bot nobody can be in the channel; recorded like every other call.
        self.record("getChatMember", json!({ "user_id": user }))?;
        Ok(Presence::Out)
    }
    async fn administrators(&self) -> Result<Vec<TelegramUserId>, TelegramError> {
        self.record("getChatAdministrators", json!({}))?;
        Ok(Vec::new())
    }

    async fn decline_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.record("declineChatJoinRequest", json!({ "user_id": user }))
    }

    // Without a bot nobody pays: invoice links are placeholders, answers and refunds recorded.
    async fn create_invoice_link(&self, invoice: &StarInvoice) -> Result<String, TelegramError> {
        let link = format!("https://t.me/$local-invoice-{}", invoice.payload.replace(':', "-"));
        self.record(
            "createInvoiceLink",
            json!({ "title": invoice.title, "payload": invoice.payload, "currency": "XTR", "amount": invoice.stars,
                    "renewing": invoice.renewing, "invoice_link": link }),
        )?;
        Ok(link)
    }
    async fn answer_pre_checkout(&self, query_id: &str, refusal: Option<&str>) -> Result<(), TelegramError> {
        self.record(
            "answerPreCheckoutQuery",
            json!({ "pre_checkout_query_id": query_id, "ok": refusal.is_none(), "error_message": refusal }),
        )
    }
    async fn refund_stars(&self, user: TelegramUserId, charge_id: &str) -> Result<(), TelegramError> {
        self.record("refundStarPayment", json!({ "user_id": user, "telegram_payment_charge_id": charge_id }))
    }
    async fn cancel_subscription(
        &self,
        user: TelegramUserId,
        charge_id: &str,
        cancel: bool,
    ) -> Result<(), TelegramError> {
        self.record(
            "editUserStarSubscription",
            json!({ "user_id": user, "telegram_payment_charge_id": charge_id, "is_canceled": cancel }),
        )
    }
    async fn star_payments(&self, offset: u32, limit: u32) -> Result<StarPage, TelegramError> {
        self.record("getStarTransactions", json!({ "offset": offset, "limit": limit }))?;
        Ok(StarPage::default())
    }
}

/// Business events appended to a JSON Lines file, in EventBridge's envelope (`source`,
/// `detail-type`, `time`, `detail`).
pub struct OutboxEvents {
    file: Mutex<std::fs::File>,
}

impl OutboxEvents {
    pub fn new(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file: Mutex::new(file) })
    }
}

#[async_trait]
impl EventBus for OutboxEvents {
    async fn publish(&self, event: &BusinessEvent) -> Result<(), EventError> {
        let line = json!({
            "id": event.id, "source": EVENT_SOURCE, "detail-type": event.detail_type,
            "time": event.at, "detail": event.detail,
        });
        let mut file = self.file.lock().map_err(|_| EventError("the events file lock is poisoned".into()))?;
        writeln!(file, "{line}").map_err(|e| EventError(e.to_string()))
    }
}
