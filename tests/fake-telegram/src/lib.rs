//! A fake Telegram Bot API on loopback: it answers the methods telegate calls with Bot API JSON,
//! records every call, queues updates for `getUpdates`, and injects faults on demand (429 with
//! `retry_after`, 500). `telegate demo` runs against it, and so do the end-to-end tests.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const BOT_ID: i64 = 7_000_000_001;
pub const BOT_USERNAME: &str = "telegate_fake_bot";

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub params: Value,
    /// The path segment before the method, `bot<token>`: lets tests check which token was used.
    pub bot_segment: String,
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    RetryAfter(u32),
    ServerError,
    BotBlocked,
    /// Carried out, and answered, only after this many milliseconds (longer than the client waits:
    /// a timeout; shorter: a slow Telegram).
    Slow(u64),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    faults: HashMap<String, VecDeque<Fault>>,
    outage: bool,
    /// Every call answered 502 at once (`set_server_errors`).
    server_errors: bool,
    updates: Vec<Value>,
    webhook_url: String,
    webhook_allowed: Value,
    next_id: i64,
    /// Answers to `getChatMember` by user id (status), for reconciliation and doctor.
    member_status: HashMap<i64, String>,
    /// The bot's rights in the channel (can invite users, can restrict members); both by default.
    bot_rights: Option<(bool, bool)>,
    /// What `getWebhookInfo` says of Telegram's last failed delivery.
    webhook_error: Option<String>,
    /// `createInvoiceLink` parameters by the link answered.
    invoices: HashMap<String, Value>,
    /// Stars transactions as `getStarTransactions` lists them, oldest first: incoming payments
    /// and the refunds of them.
    star_payments: Vec<Value>,
    /// Charge ids refunded (`refundStarPayment`) and subscriptions cancelled (`editUserStarSubscription`).
    refunded: Vec<String>,
    cancelled: Vec<String>,
    /// Flood control, as Telegram applies it per bot: at most this many calls in any second,
    /// the rest answered 429 with `retry_after` (`set_flood_limit`).
    flood_limit: Option<(usize, u32)>,
    recent: VecDeque<std::time::Instant>,
    flooded: usize,
}

impl Inner {
    /// Telegram gives a charge's Stars back and lists the refund, as an outgoing transaction to
    /// the payer bearing the charge's id.
    fn refund(&mut self, charge: &str) {
        let paid = self.star_payments.iter().find(|t| t["id"] == charge).cloned().unwrap_or_default();
        let refund = json!({"id": charge, "amount": paid["amount"], "date": chrono::Utc::now().timestamp(),
                            "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": paid["source"]["user"]}});
        self.star_payments.push(refund);
        self.refunded.push(charge.to_owned());
    }
}

#[derive(Clone, Default)]
pub struct FakeTelegram {
    inner: Arc<Mutex<Inner>>,
    new_update: Arc<Notify>,
}

pub struct RunningFake {
    pub fake: FakeTelegram,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeTelegram {
    /// Serves the fake on a free loopback port; `url` is what `TELEGRAM_API_URL` should be.
    pub async fn start() -> std::io::Result<RunningFake> {
        let fake = FakeTelegram::default();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().route("/{bot}/{method}", any(handle)).with_state(fake.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RunningFake { fake, url, task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the calls from the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.lock().calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Telegram down until `set_outage(false)`: every call hangs 30 s, then answers 502 (a gateway
    /// giving up), so the client gives up first, at its own timeout.
    pub fn set_outage(&self, down: bool) {
        self.lock().outage = down;
    }

    /// Flood control from now on: a call beyond `per_second` in the last second is refused with
    /// 429 and `retry_after` (and not recorded in `calls`: Telegram did not carry it out).
    pub fn set_flood_limit(&self, per_second: usize, retry_after: u32) {
        self.lock().flood_limit = Some((per_second, retry_after));
    }

    /// How many calls flood control refused.
    pub fn flooded(&self) -> usize {
        self.lock().flooded
    }

    /// Telegram failing until `set_server_errors(false)`: every call answers 502 Bad Gateway at once.
    pub fn set_server_errors(&self, failing: bool) {
        self.lock().server_errors = failing;
    }

    /// The next `times` calls of `method` fail with `fault`.
    pub fn fail_next(&self, method: &str, fault: Fault, times: usize) {
        let mut inner = self.lock();
        let queue = inner.faults.entry(method.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// A webhook registered by someone else, receiving only `message` updates.
    pub fn set_webhook_url(&self, url: &str) {
        let mut inner = self.lock();
        inner.webhook_url = url.to_owned();
        inner.webhook_allowed = json!(["message"]);
    }

    /// Telegram's last failed delivery to the webhook, as `getWebhookInfo` reports it.
    pub fn set_webhook_error(&self, message: &str) {
        self.lock().webhook_error = Some(message.to_owned());
    }

    pub fn set_bot_rights(&self, can_invite_users: bool, can_restrict_members: bool) {
        self.lock().bot_rights = Some((can_invite_users, can_restrict_members));
    }

    pub fn set_member_status(&self, user_id: i64, status: &str) {
        self.lock().member_status.insert(user_id, status.to_owned());
    }

    /// Whether the account is in the channel as far as this fake knows: `member`, `kicked`, `left`…
    pub fn member_status(&self, user_id: i64) -> String {
        self.lock().member_status.get(&user_id).cloned().unwrap_or_else(|| "left".into())
    }

    /// A call at `now` beyond the flood limit: its `retry_after`.
    fn flood(&self, now: std::time::Instant) -> Option<u32> {
        let mut inner = self.lock();
        let (limit, retry_after) = inner.flood_limit?;
        while inner.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            inner.recent.pop_front();
        }
        if inner.recent.len() >= limit {
            inner.flooded += 1;
            return Some(retry_after);
        }
        inner.recent.push_back(now);
        None
    }

    /// What `getChatMember` answers follows the calls that change it, as in Telegram.
    fn follow_presence(&self, method: &str, p: &Value) {
        let Some(user) = p["user_id"].as_i64() else { return };
        let mut inner = self.lock();
        let now = inner.member_status.get(&user).cloned().unwrap_or_else(|| "left".into());
        let next = match method {
            "approveChatJoinRequest" => "member",
            "banChatMember" => "kicked",
            "unbanChatMember" if p["only_if_banned"] == json!(true) && now != "kicked" => return,
            "unbanChatMember" => "left",
            _ => return,
        };
        inner.member_status.insert(user, next.into());
    }

    /// What `createInvoiceLink` was asked for the invoice behind `link`.
    pub fn invoice(&self, link: &str) -> Option<Value> {
        self.lock().invoices.get(link).cloned()
    }

    /// Telegram takes a Stars payment of `user` for an invoice: it is listed by
    /// `getStarTransactions` from now on. Its fresh charge id.
    pub fn take_star_payment(&self, user: i64, payload: &str, stars: u32, subscription_period: Option<u32>) -> String {
        self.take_star_payment_at(user, payload, stars, subscription_period, chrono::Utc::now().timestamp())
    }

    /// `take_star_payment` dated `at` (Unix seconds), for a test whose clock has moved.
    pub fn take_star_payment_at(
        &self,
        user: i64,
        payload: &str,
        stars: u32,
        subscription_period: Option<u32>,
        at: i64,
    ) -> String {
        let mut inner = self.lock();
        inner.next_id += 1;
        let charge = format!("stxFAKE{:08}", inner.next_id);
        let mut source = json!({"type": "user", "transaction_type": "invoice_payment",
                                "user": {"id": user, "is_bot": false, "first_name": format!("User{user}")},
                                "invoice_payload": payload});
        if let Some(period) = subscription_period {
            source["subscription_period"] = json!(period);
        }
        inner.star_payments.push(json!({"id": charge, "amount": stars, "date": at, "source": source}));
        charge
    }

    /// The Stars of `charge` go back by another way than telegate's (another program using the
    /// bot's token, an earlier release that did not record it): Telegram lists the refund.
    pub fn refund_elsewhere(&self, charge: &str) {
        assert!(self.took(charge), "Telegram refunds only a charge it took: {charge}");
        self.lock().refund(charge);
    }

    /// Whether Telegram took `charge` (`getStarTransactions` lists it).
    pub fn took(&self, charge: &str) -> bool {
        self.lock().star_payments.iter().any(|t| t["id"] == charge)
    }

    pub fn refunded(&self) -> Vec<String> {
        self.lock().refunded.clone()
    }

    pub fn cancelled_subscriptions(&self) -> Vec<String> {
        self.lock().cancelled.clone()
    }

    /// Why Telegram refuses a call, if it does (400 `Bad Request: …`).
    fn refusal(&self, method: &str, p: &Value) -> Option<&'static str> {
        let inner = self.lock();
        let charge = p["telegram_payment_charge_id"].as_str().unwrap_or("");
        let known = inner.star_payments.iter().any(|t| t["id"] == charge);
        let status = p["user_id"].as_i64().and_then(|u| inner.member_status.get(&u)).map(String::as_str);
        match method {
            "banChatMember" if status == Some("creator") => Some("can't remove chat owner"),
            "banChatMember" if status == Some("administrator") => Some("user is an administrator of the chat"),
            "refundStarPayment" | "editUserStarSubscription" if !known => Some("CHARGE_NOT_FOUND"),
            "refundStarPayment" if inner.refunded.iter().any(|c| c == charge) => Some("CHARGE_ALREADY_REFUNDED"),
            _ => None,
        }
    }

    /// Queues an update for `getUpdates` (long polling).
    pub fn push_update(&self, update: Value) {
        self.lock().updates.push(update);
        self.new_update.notify_waiters();
    }
}

async fn handle(
    State(fake): State<FakeTelegram>,
    Path((bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // Bot API method names are case-insensitive; teloxide writes them capitalised (`SendMessage`).
    let method = camel_case(&method);
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let params = parse_params(content_type, &body);
    if !bot.starts_with("bot") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
        )
            .into_response();
    }
    if method == "getUpdates" {
        return get_updates(&fake, &params).await;
    }
    if let Some(retry_after) = fake.flood(std::time::Instant::now()) {
        return too_many_requests(retry_after);
    }
    let fault = {
        let mut inner = fake.lock();
        inner.calls.push(Call { method: method.clone(), params: params.clone(), bot_segment: bot });
        inner.faults.get_mut(&method).and_then(VecDeque::pop_front)
    };
    let (outage, server_errors) = {
        let inner = fake.lock();
        (inner.outage, inner.server_errors)
    };
    if outage {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if outage || server_errors {
        return error(502, json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}));
    }
    // A slow call is carried out, late (whether or not the client still waits for it), as Telegram does.
    if let Some(Fault::Slow(ms)) = fault {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if matches!(fault, None | Some(Fault::Slow(_))) {
        if let Some(why) = fake.refusal(&method, &params) {
            return error(400, json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {why}")}));
        }
        fake.follow_presence(&method, &params);
    }
    match fault {
        Some(Fault::RetryAfter(s)) => too_many_requests(s),
        Some(Fault::ServerError) => {
            error(500, json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}))
        }
        Some(Fault::BotBlocked) => {
            error(403, json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}))
        }
        None | Some(Fault::Slow(_)) => ok(without_nulls(answer(&fake, &method, &params))),
    }
}

/// The Bot API takes JSON, or multipart/form-data (teloxide sends `setWebhook` that way).
fn parse_params(content_type: &str, body: &[u8]) -> Value {
    if body.is_empty() {
        return json!({});
    }
    let Some(boundary) = content_type.split("boundary=").nth(1).map(|b| b.trim_matches('"')) else {
        return serde_json::from_slice(body).unwrap_or(json!({}));
    };
    let text = String::from_utf8_lossy(body);
    let mut params = serde_json::Map::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else { continue };
        let Some(name) = head.split("name=\"").nth(1).and_then(|n| n.split('"').next()) else { continue };
        let value = value.trim_end_matches("\r\n");
        params.insert(name.to_owned(), serde_json::from_str(value).unwrap_or_else(|_| json!(value)));
    }
    Value::Object(params)
}

fn camel_case(method: &str) -> String {
    let mut chars = method.chars();
    chars.next().map(|c| c.to_ascii_lowercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// The Bot API leaves absent fields out rather than sending `null`.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn too_many_requests(retry_after: u32) -> Response {
    error(
        429,
        json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {retry_after}"), "parameters": {"retry_after": retry_after}}),
    )
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn error(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response()
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "telegate", "username": BOT_USERNAME,
           "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
           "can_connect_to_business": false, "has_main_web_app": false})
}

fn answer(fake: &FakeTelegram, method: &str, p: &Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut inner = fake.lock();
    inner.next_id += 1;
    let n = inner.next_id;
    match method {
        "getMe" => bot_user(),
        "sendMessage" => json!({
            "message_id": n, "date": now, "from": bot_user(),
            "chat": {"id": p["chat_id"], "type": "private", "first_name": "user"},
            "text": p["text"],
        }),
        "createChatInviteLink" => json!({
            "invite_link": format!("https://t.me/+fake{n:06}"), "creator": bot_user(),
            "creates_join_request": p["creates_join_request"].as_bool().unwrap_or(false),
            "is_primary": false, "is_revoked": false, "name": p["name"],
            "expire_date": p["expire_date"], "member_limit": p["member_limit"],
        }),
        "revokeChatInviteLink" => json!({
            "invite_link": p["invite_link"], "creator": bot_user(), "creates_join_request": false,
            "is_primary": false, "is_revoked": true,
        }),
        "getWebhookInfo" => {
            let mut info = json!({
                "url": inner.webhook_url, "has_custom_certificate": false, "pending_update_count": 0,
                "allowed_updates": inner.webhook_allowed,
            });
            if let Some(error) = &inner.webhook_error {
                info["last_error_date"] = json!(1_700_000_000);
                info["last_error_message"] = json!(error);
            }
            info
        }
        "getChat" => {
            json!({"id": p["chat_id"], "type": "channel", "title": "Fake channel", "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": {"unlimited_gifts": false, "limited_gifts": false, "unique_gifts": false, "premium_subscription": false}})
        }
        "getChatMember" => chat_member(&inner, p["user_id"].as_i64().unwrap_or(0)),
        "getChatAdministrators" => {
            let mut staff: Vec<i64> = inner
                .member_status
                .iter()
                .filter(|(_, s)| *s == "administrator" || *s == "creator")
                .map(|(id, _)| *id)
                .collect();
            staff.sort_unstable();
            staff.insert(0, BOT_ID);
            json!(staff.into_iter().map(|id| chat_member(&inner, id)).collect::<Vec<_>>())
        }
        "setWebhook" => {
            inner.webhook_url = p["url"].as_str().unwrap_or("").to_owned();
            inner.webhook_allowed = p["allowed_updates"].clone();
            json!(true)
        }
        "deleteWebhook" => {
            inner.webhook_url.clear();
            json!(true)
        }
        "createInvoiceLink" => {
            let link = format!("https://t.me/$fakeinvoice{n:06}");
            inner.invoices.insert(link.clone(), p.clone());
            json!(link)
        }
        "refundStarPayment" => {
            inner.refund(p["telegram_payment_charge_id"].as_str().unwrap_or(""));
            json!(true)
        }
        "editUserStarSubscription" => {
            if p["is_canceled"] == json!(true) {
                inner.cancelled.push(p["telegram_payment_charge_id"].as_str().unwrap_or("").to_owned());
            }
            json!(true)
        }
        "getStarTransactions" => {
            let offset = p["offset"].as_u64().unwrap_or(0) as usize;
            let limit = p["limit"].as_u64().unwrap_or(100) as usize;
            let page: Vec<Value> = inner.star_payments.iter().skip(offset).take(limit).cloned().collect();
            json!({"transactions": page})
        }
        _ => json!(true),
    }
}

async fn get_updates(fake: &FakeTelegram, params: &Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    // Long polling, kept short so that a stopping server is never held up for long.
    let wait = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0).min(2));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = fake.new_update.notified();
        let ready: Vec<Value> = {
            let inner = fake.lock();
            inner.updates.iter().filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset).cloned().collect()
        };
        if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
            return ok(Value::Array(ready));
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// Telegram updates as the Bot API sends them, for the demo and the tests.
pub mod updates {
    use serde_json::{Value, json};

    pub fn user(id: i64, lang: &str) -> Value {
        json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "username": format!("user{id}"), "language_code": lang})
    }

    pub fn text(update_id: i64, from: i64, lang: &str, text: &str) -> Value {
        json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": chrono::Utc::now().timestamp(),
            "chat": {"id": from, "type": "private", "first_name": format!("User{from}")},
            "from": user(from, lang), "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": text.split(' ').next().unwrap_or("").len()}],
        }})
    }

    pub fn join_request(update_id: i64, channel: i64, from: i64, link: &str) -> Value {
        json!({"update_id": update_id, "chat_join_request": {
            "chat": {"id": channel, "type": "channel", "title": "Channel"},
            "from": user(from, "fr"), "user_chat_id": from, "date": chrono::Utc::now().timestamp(),
            "invite_link": {"invite_link": link, "creator": {"id": super::BOT_ID, "is_bot": true, "first_name": "telegate"},
                            "creates_join_request": true, "is_primary": false, "is_revoked": false},
        }})
    }

    fn member_update(update_id: i64, channel: i64, user_id: i64, old: &str, new: &str, link: Option<&str>) -> Value {
        let mut update = json!({"update_id": update_id, "chat_member": {
            "chat": {"id": channel, "type": "channel", "title": "Channel"},
            "from": user(user_id, "fr"), "date": chrono::Utc::now().timestamp(),
            "old_chat_member": {"status": old, "user": user(user_id, "fr")},
            "new_chat_member": {"status": new, "user": user(user_id, "fr")},
        }});
        if let Some(link) = link {
            update["chat_member"]["invite_link"] = json!({"invite_link": link,
                "creator": {"id": super::BOT_ID, "is_bot": true, "first_name": "telegate"},
                "creates_join_request": true, "is_primary": false, "is_revoked": false});
        }
        update
    }

    pub fn joined(update_id: i64, channel: i64, user_id: i64, link: Option<&str>) -> Value {
        member_update(update_id, channel, user_id, "left", "member", link)
    }

    pub fn left(update_id: i64, channel: i64, user_id: i64) -> Value {
        member_update(update_id, channel, user_id, "member", "left", None)
    }

    /// A channel administrator (`admin_id`) bans a member by hand in the Telegram app.
    pub fn removed_by_admin(update_id: i64, channel: i64, user_id: i64, admin_id: i64) -> Value {
        let mut update = member_update(update_id, channel, user_id, "member", "kicked", None);
        update["chat_member"]["from"] = user(admin_id, "fr");
        update
    }

    pub fn admin_promoted(update_id: i64, channel: i64, user_id: i64) -> Value {
        member_update(update_id, channel, user_id, "left", "administrator", None)
    }

    /// A member of the channel made an administrator.
    pub fn member_promoted(update_id: i64, channel: i64, user_id: i64) -> Value {
        member_update(update_id, channel, user_id, "member", "administrator", None)
    }

    /// An administrator made a plain member again (still in the channel).
    pub fn admin_demoted(update_id: i64, channel: i64, user_id: i64) -> Value {
        member_update(update_id, channel, user_id, "administrator", "member", None)
    }

    /// Telegram asks the bot whether to take `from`'s payment of `stars` for the invoice `payload`.
    pub fn pre_checkout(update_id: i64, from: i64, query_id: &str, payload: &str, stars: u32) -> Value {
        json!({"update_id": update_id, "pre_checkout_query": {
            "id": query_id, "from": user(from, "fr"), "currency": "XTR", "total_amount": stars,
            "invoice_payload": payload,
        }})
    }

    /// A Stars subscription of `from` changed: `canceled`, `active` or `failed` (newer Bot API).
    pub fn subscription(update_id: i64, from: i64, payload: &str, state: &str) -> Value {
        json!({"update_id": update_id, "subscription": {"user": user(from, "fr"), "invoice_payload": payload, "state": state}})
    }

    /// How a subscription's payment is told: when its period ends, and whether it is a renewal.
    #[derive(Clone, Copy)]
    pub struct Renewal {
        pub expires: i64,
        pub recurring: bool,
        pub first: bool,
    }

    /// What a payment in Stars was: its payload, amount, charge id, and, for a subscription's,
    /// its renewal.
    pub struct StarsPaid<'a> {
        pub payload: &'a str,
        pub stars: u32,
        pub charge: &'a str,
        pub renewal: Option<Renewal>,
    }

    /// The message announcing a payment Telegram took (`successful_payment`), sent at `date`.
    pub fn stars_payment(update_id: i64, from: i64, date: i64, paid: StarsPaid<'_>) -> Value {
        let StarsPaid { payload, stars, charge, renewal } = paid;
        let mut paid = json!({"currency": "XTR", "total_amount": stars, "invoice_payload": payload,
                              "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""});
        if let Some(r) = renewal {
            paid["subscription_expiration_date"] = json!(r.expires);
            paid["is_recurring"] = json!(r.recurring);
            paid["is_first_recurring"] = json!(r.first);
        }
        json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": date,
            "chat": {"id": from, "type": "private", "first_name": format!("User{from}")},
            "from": user(from, "fr"), "successful_payment": paid,
        }})
    }
}

/// A `ChatMember` as Telegram answers it, from what this fake knows of the account.
fn chat_member(inner: &Inner, user_id: i64) -> Value {
    let default = if user_id == BOT_ID { "administrator" } else { "left" };
    let status = inner.member_status.get(&user_id).cloned().unwrap_or_else(|| default.into());
    let user =
        if user_id == BOT_ID { bot_user() } else { json!({"id": user_id, "is_bot": false, "first_name": "someone"}) };
    let mut member = json!({"status": status, "user": user});
    if status == "administrator" {
        let (invite, restrict) = inner.bot_rights.unwrap_or((true, true));
        for (k, v) in [
            ("can_be_edited", false),
            ("is_anonymous", false),
            ("can_manage_chat", true),
            ("can_delete_messages", true),
            ("can_manage_video_chats", false),
            ("can_restrict_members", restrict),
            ("can_promote_members", false),
            ("can_change_info", false),
            ("can_invite_users", invite),
            ("can_post_stories", false),
            ("can_edit_stories", false),
            ("can_delete_stories", false),
            ("can_post_messages", true),
            ("can_edit_messages", false),
        ] {
            member[k] = json!(v);
        }
    }
    if status == "creator" {
        member["is_anonymous"] = json!(false);
    }
    member
}

/// The launch data Telegram gives a Mini App it opens for `user_id` (`tgWebAppData`), signed with
/// `bot_token` as Telegram signs it: HMAC-SHA-256 over the sorted `key=value` lines, with the key
/// HMAC-SHA-256("WebAppData", bot token).
pub fn mini_app_launch_data(bot_token: &str, user_id: i64, auth_date: i64) -> String {
    use hmac::{Hmac, Mac};
    fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    let user = serde_json::json!({ "id": user_id, "first_name": "Staff", "language_code": "en" }).to_string();
    let mut fields = vec![
        ("auth_date".to_owned(), auth_date.to_string()),
        ("query_id".to_owned(), "AAF".to_owned()),
        ("user".to_owned(), user),
    ];
    fields.sort();
    let check = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n");
    let hash: String =
        mac(&mac(b"WebAppData", bot_token.as_bytes()), check.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    fields.push(("hash".to_owned(), hash));
    serde_urlencoded::to_string(&fields).expect("plain strings")
}
