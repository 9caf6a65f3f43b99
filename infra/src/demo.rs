//! `telegate demo`: the whole access flow on a temporary store against the built-in fake
//! Telegram, told step by step. It checks each step and fails loudly, so it doubles as a smoke test.

use std::collections::HashMap;

use serde_json::{Value, json};
use telegate_core::config::Settings;

use crate::host::{Options, Running};
use crate::jwt::mint;
use telegate_fake_telegram::{BOT_USERNAME, FakeTelegram, updates};

const CHANNEL: i64 = -1_001_234_567_890;
const ALICE_TG: i64 = 424_242;
const MALLORY_TG: i64 = 666_666;
const BOB_TG: i64 = 515_151;
const JWT_SECRET: &str = "demo-secret-demo-secret-demo-secret-0123";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";

pub async fn run() -> Result<(), String> {
    let telegram = FakeTelegram::start().await.map_err(|e| format!("fake Telegram: {e}"))?;
    let data = std::env::temp_dir().join(format!(
        "telegate-demo-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    let env: HashMap<&str, String> = HashMap::from([
        ("TELEGRAM_BOT_TOKEN", "123456:DEMO-TOKEN".to_owned()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME.to_owned()),
        ("TELEGRAM_CHANNEL_ID", CHANNEL.to_string()),
        ("TELEGRAM_CHANNEL_NAME", "Le Club (démo)".to_owned()),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("TELEGRAM_API_URL", telegram.url.clone()),
        ("JWT_HS256_SECRET", JWT_SECRET.to_owned()),
        (
            "OFFERS",
            r#"{"premium-30": {"name": "Premium", "days": 30},
                "monthly": {"name": "Mensuel", "days": 30, "stars": 250, "renewing": true}}"#
                .to_owned(),
        ),
        ("PAY_SUPPORT_CONTACT", "@club_support".to_owned()),
    ]);
    let settings = Settings::from_env(&|k| env.get(k).cloned()).map_err(|e| e.to_string())?;
    let running = Running::spawn(settings, &data, Options { polling: false, scheduler: false })
        .await
        .map_err(|e| e.to_string())?;
    let result = story(&running, &telegram.fake).await;
    let stopped = running.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    result?;
    stopped.map_err(|e| e.to_string())?;
    println!("\n✓ The whole flow works. Run it for real with `telegate serve` (see README).");
    Ok(())
}

struct Api<'a> {
    http: reqwest::Client,
    base: &'a str,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        jwt: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(jwt);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    async fn telegram(&self, update: Value) -> Result<(), String> {
        let res = self
            .http
            .post(format!("{}/api/telegram/webhook", self.base))
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .json(&update)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        expect(res.status().as_u16() == 200, "the webhook accepts the update")
    }
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("✗ demo step failed: {what}")) }
}

fn step(n: u32, text: &str) {
    println!("\n{n}. {text}");
}

fn last_text(fake: &FakeTelegram, chat: i64) -> String {
    fake.calls_to("sendMessage")
        .iter()
        .rev()
        .find(|c| c.params["chat_id"] == json!(chat))
        .and_then(|c| c.params["text"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn story(running: &Running, fake: &FakeTelegram) -> Result<(), String> {
    let api = Api { http: reqwest::Client::new(), base: &running.base_url };
    let alice = mint(JWT_SECRET, "alice", "user", Some("alice@example.com"), 30)?;
    let support = mint(JWT_SECRET, "sam", "support", None, 30)?;
    println!("telegate demo — server {} , fake Telegram Bot API, temporary store", running.base_url);

    step(1, "Alice pays for « Premium » and submits her transaction id.");
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/api/payments/pending-payments/create/",
            &alice,
            Some(json!({"offer_id": "premium-30", "transaction_id": "TX-DEMO-0001"})),
        )
        .await?;
    expect(status == 201, "payment submitted (201)")?;
    let payment_id = body["id"].as_str().unwrap_or_default().to_owned();
    println!("   → payment {payment_id}: {}", body["status"]);

    step(2, "Support validates the payment.");
    let path = format!("/api/payments/admin/pending-payments/{payment_id}/validate/");
    let (status, body) =
        api.call(reqwest::Method::POST, &path, &support, Some(json!({"admin_notes": "bank transfer seen"}))).await?;
    expect(status == 200, "payment validated (200)")?;
    let link = body["bot_link"].as_str().unwrap_or_default().to_owned();
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    println!(
        "   → Alice's personal link (valid 24 h, one Telegram account): {}…",
        &link[..link.len().saturating_sub(30)]
    );
    println!("   → an in-app notification and an email (local outbox) carry the link");

    step(3, "Alice opens the link: Telegram sends « /start <token> » to the bot.");
    api.telegram(updates::text(1, ALICE_TG, "fr", &format!("/start {token}"))).await?;
    let invites = fake.calls_to("createChatInviteLink");
    expect(invites.len() == 1, "one personal invite link created")?;
    expect(invites[0].params["creates_join_request"] == json!(true), "the invite needs approval (join request)")?;
    let invite = fake.calls_to("sendMessage").last().map(|c| c.params.clone()).unwrap_or_default();
    let invite_url = invite["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().unwrap_or_default().to_owned();
    expect(!invite_url.is_empty(), "the reply carries the join button")?;
    println!("   → earlier ban lifted (unbanChatMember, only_if_banned), invite created, bot replies:");
    println!("     « {} »", invite["text"].as_str().unwrap_or_default());
    println!(
        "     [{}] → {invite_url}",
        invite["reply_markup"]["inline_keyboard"][0][0]["text"].as_str().unwrap_or_default()
    );

    step(4, "Mallory got hold of the same link and tries it from another account.");
    api.telegram(updates::text(2, MALLORY_TG, "en", &format!("/start {token}"))).await?;
    println!("   → bot replies: « {} »", last_text(fake, MALLORY_TG));
    expect(fake.calls_to("createChatInviteLink").len() == 1, "no invite for Mallory")?;

    step(5, "Mallory also tries Alice's invite link: Telegram asks the bot to approve.");
    api.telegram(updates::join_request(3, CHANNEL, MALLORY_TG, &invite_url)).await?;
    running.effects.drain().await;
    expect(
        fake.calls_to("declineChatJoinRequest").iter().any(|c| c.params["user_id"] == json!(MALLORY_TG)),
        "Mallory declined",
    )?;
    println!("   → declined, and the log names whose link leaked");

    step(6, "Alice taps « Rejoindre le canal »: her join request is approved.");
    api.telegram(updates::join_request(4, CHANNEL, ALICE_TG, &invite_url)).await?;
    running.effects.drain().await;
    expect(
        fake.calls_to("approveChatJoinRequest").iter().any(|c| c.params["user_id"] == json!(ALICE_TG)),
        "Alice approved",
    )?;
    println!("   → approved");

    step(7, "Telegram reports that Alice joined the channel.");
    api.telegram(updates::joined(5, CHANNEL, ALICE_TG, Some(&invite_url))).await?;
    running.effects.drain().await;
    println!("   → membership starts now for 30 days; the invite link is revoked; bot says:");
    println!("     « {} »", last_text(fake, ALICE_TG));

    step(8, "Alice checks her subscription on the site.");
    let (status, body) = api.call(reqwest::Method::GET, "/api/telegram/status/", &alice, None).await?;
    expect(status == 200 && body["has_active_subscription"] == json!(true), "status shows an active subscription")?;
    let m = &body["memberships"][0];
    let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
    println!(
        "   → {} « {} », until {}, {} days left",
        field("channel_name"),
        field("subscription_type"),
        field("expires_at"),
        m["days_remaining"]
    );

    step(9, "Alice's notifications, newest first.");
    let (_, body) = api.call(reqwest::Method::GET, "/api/telegram/notifications/", &alice, None).await?;
    let kinds: Vec<String> = body
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| format!("{} ({})", n["title"].as_str().unwrap_or(""), n["type"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    expect(kinds.len() == 2, "two notifications: payment verified, access granted")?;
    for k in kinds {
        println!("   → {k}");
    }
    stars(&api, running, fake).await
}

/// Bob pays in Telegram Stars, inside the bot: nobody validates anything.
async fn stars(api: &Api<'_>, running: &Running, fake: &FakeTelegram) -> Result<(), String> {
    step(10, "Bob has no account on the site: he opens the bot and sends /buy.");
    api.telegram(updates::text(10, BOB_TG, "fr", "/buy")).await?;
    let offer = fake.calls_to("sendMessage").last().map(|c| c.params.clone()).unwrap_or_default();
    let button = &offer["reply_markup"]["inline_keyboard"][0][0];
    let invoice = fake.invoice(button["url"].as_str().unwrap_or_default()).ok_or("✗ demo: /buy showed no invoice")?;
    expect(invoice["currency"] == "XTR", "an invoice in Telegram Stars")?;
    println!(
        "   → « {} » [{}]",
        offer["text"].as_str().unwrap_or_default(),
        button["text"].as_str().unwrap_or_default()
    );

    step(11, "Bob taps the button and pays: Telegram asks the bot first, then tells it.");
    let payload = invoice["payload"].as_str().unwrap_or_default().to_owned();
    api.telegram(updates::pre_checkout(11, BOB_TG, "demo-checkout", &payload, 250)).await?;
    let answer = fake.calls_to("answerPreCheckoutQuery").last().map(|c| c.params.clone()).unwrap_or_default();
    expect(answer["ok"] == json!(true), "the pre-checkout is accepted")?;
    let charge = fake.take_star_payment(BOB_TG, &payload, 250, Some(2_592_000));
    let renewal =
        updates::Renewal { expires: chrono::Utc::now().timestamp() + 2_592_000, recurring: true, first: true };
    let paid = updates::StarsPaid { payload: &payload, stars: 250, charge: &charge, renewal: Some(renewal) };
    api.telegram(updates::stars_payment(12, BOB_TG, chrono::Utc::now().timestamp(), paid)).await?;
    running.effects.drain().await;
    expect(fake.calls_to("createChatInviteLink").len() == 2, "a personal invite for Bob")?;
    println!("   → paid 250 ⭐ (renewed every 30 days by Telegram); the bot replies at once:");
    println!("     « {} »", last_text(fake, BOB_TG));
    println!("   → from here on it is Alice's story: join request approved for Bob's account only,");
    println!("     warnings before the end, removal when Telegram stops renewing.");
    Ok(())
}
