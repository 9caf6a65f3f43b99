//! Warm path on the embedded store: latency of the webhook `/start` flow and of `GET status`
//! in process (the router called directly, no socket), then requests per second of the real
//! `telegate serve` binary under wrk on loopback.
//!
//! Run by `bash infra/bench/run.sh`; by hand:
//! `cargo build --release && cargo run --release --example warm -- target/release/telegate`
//! (needs `wrk` on the PATH for the throughput part).
//!
//! The `/start` flow includes what the bot does before answering: binding the token, lifting an
//! earlier ban and creating the invite link, which are calls to the fake Bot API over loopback
//! HTTP (as they would be to Telegram). Prints Markdown tables.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use telegate::host::{Host, Options, answer};
use telegate::jwt::mint;
use telegate_core::config::Settings;
use telegate_testkit::fake_telegram::{BOT_USERNAME, FakeTelegram, updates};

const CHANNEL: i64 = -1_001_234_567_890;
const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-01";
const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const STARTS: usize = 2_000;
const STATUS_READS: usize = 20_000;

/// The same requests, to the router in process or to a server over HTTP.
enum Target {
    InProcess(Router),
    Http(reqwest::Client, String),
}

impl Target {
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
        match self {
            Self::InProcess(router) => {
                let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
                answer(router, req.body(body).expect("a request")).await
            }
            Self::Http(client, base) => {
                let mut req = client.request(method.parse().expect("a method"), format!("{base}{path}"));
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let res = req.send().await.expect("the server answers");
                let status = res.status().as_u16();
                (status, res.json().await.unwrap_or(Value::Null))
            }
        }
    }

    async fn webhook(&self, update: Value) -> u16 {
        self.call("POST", "/api/telegram/webhook", &[("x-telegram-bot-api-secret-token", WEBHOOK_SECRET)], Some(update))
            .await
            .0
    }
}

fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// A paid and validated payment of `user`; its single-use token.
async fn token_for(t: &Target, user: &str, support: &str) -> String {
    let jwt = mint(JWT_SECRET, user, "user", Some("bench@example.com"), 600).expect("a jwt");
    let (status, body) = t
        .call(
            "POST",
            "/api/payments/pending-payments/create/",
            &[("authorization", &bearer(&jwt))],
            Some(json!({"offer_id": "monthly", "transaction_id": format!("TX-{user}")})),
        )
        .await;
    assert_eq!(status, 201, "payment: {body}");
    let path = format!("/api/payments/admin/pending-payments/{}/validate/", body["id"].as_str().unwrap_or_default());
    let (status, body) = t.call("POST", &path, &[("authorization", &bearer(support))], Some(json!({}))).await;
    assert_eq!(status, 200, "validation: {body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// `user` (Telegram account `account`) paid, started the bot, was approved and joined.
async fn member(t: &Target, fake: &FakeTelegram, user: &str, account: i64, support: &str) {
    let token = token_for(t, user, support).await;
    assert_eq!(t.webhook(updates::text(account, account, "en", &format!("/start {token}"))).await, 200);
    let link = fake
        .calls_to("sendMessage")
        .iter()
        .rev()
        .find_map(|c| c.params["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().map(str::to_owned))
        .expect("the bot answered with the invite");
    assert_eq!(t.webhook(updates::join_request(account + 1, CHANNEL, account, &link)).await, 200);
    assert_eq!(t.webhook(updates::joined(account + 2, CHANNEL, account, Some(&link))).await, 200);
}

fn percentiles(mut xs: Vec<Duration>) -> (f64, f64, f64) {
    xs.sort();
    let at = |q: f64| xs[((xs.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

fn settings(telegram: &str) -> Settings {
    let env = env(telegram);
    Settings::from_env(&|k| env.get(k).cloned()).expect("bench settings")
}

fn env(telegram: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("TELEGRAM_BOT_TOKEN", "123456:BENCH".to_owned()),
        ("TELEGRAM_BOT_USERNAME", BOT_USERNAME.to_owned()),
        ("TELEGRAM_CHANNEL_ID", CHANNEL.to_string()),
        ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("TELEGRAM_API_URL", telegram.to_owned()),
        ("JWT_HS256_SECRET", JWT_SECRET.to_owned()),
        ("TELEGATE_POLLING", "0".to_owned()),
        ("TELEGATE_SCHEDULER", "0".to_owned()),
        // Thousands of /start from one process: the abuse limits are not what is measured.
        ("START_FAILURES_PER_HOUR", "10000".to_owned()),
        // Nor is the bot's pace (25 Bot API calls a second by default: /start after /start would
        // measure 40 ms a call): at its highest, 1 ms a turn.
        ("TELEGRAM_CALLS_PER_SECOND", "1000".to_owned()),
    ])
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("telegate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn in_process() -> Result<(), String> {
    let telegram = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    let data = temp("warm");
    let host = Host::build(settings(&telegram.url), &data, Options { polling: false, scheduler: false })
        .await
        .map_err(|e| e.to_string())?;
    let t = Target::InProcess(host.router());
    let support = mint(JWT_SECRET, "sam", "support", None, 600)?;

    // GET status of a member.
    member(&t, &telegram.fake, "alice", 500_000, &support).await;
    let alice = bearer(&mint(JWT_SECRET, "alice", "user", None, 600)?);
    let (status, body) = t.call("GET", "/api/telegram/status/", &[("authorization", &alice)], None).await;
    assert!(status == 200 && body["has_active_subscription"] == json!(true), "alice is a member: {body}");
    let mut reads = Vec::with_capacity(STATUS_READS);
    for i in 0..STATUS_READS + 1_000 {
        let started = Instant::now();
        let (status, _) = t.call("GET", "/api/telegram/status/", &[("authorization", &alice)], None).await;
        if i >= 1_000 {
            reads.push(started.elapsed());
        }
        assert_eq!(status, 200);
    }

    // The webhook /start flow: each with a fresh token (single use) and account.
    let mut tokens = Vec::with_capacity(STARTS);
    for i in 0..STARTS {
        tokens.push(token_for(&t, &format!("buyer{i}"), &support).await);
    }
    telegram.fake.clear_calls();
    let mut starts = Vec::with_capacity(STARTS);
    for (i, token) in tokens.iter().enumerate() {
        let account = 1_000_000 + i as i64;
        let update = updates::text(account, account, "fr", &format!("/start {token}"));
        let started = Instant::now();
        let status = t.webhook(update).await;
        starts.push(started.elapsed());
        assert_eq!(status, 200);
    }
    assert_eq!(telegram.fake.calls_to("createChatInviteLink").len(), STARTS, "one invite per /start");
    host.effects.drain().await;
    let _ = std::fs::remove_dir_all(&data);

    println!("| in process, embedded store | requests | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let (p50, p99, max) = percentiles(reads);
    println!("| `GET /api/telegram/status/` (a member) | {STATUS_READS} | {p50:.3} | {p99:.3} | {max:.3} |");
    let (p50, p99, max) = percentiles(starts);
    println!(
        "| webhook `/start <token>` (bind, unban, invite, reply queued) | {STARTS} | {p50:.3} | {p99:.3} | {max:.3} |"
    );
    println!();
    Ok(())
}

async fn over_loopback(binary: &str) -> Result<(), String> {
    let telegram = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    let data = temp("serve");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let log = std::fs::File::create("target/bench-logs/serve.log").map_err(|e| e.to_string())?;
    let mut server = tokio::process::Command::new(binary)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .envs(env(&telegram.url))
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Target::Http(client, base.clone());
    let support = mint(JWT_SECRET, "sam", "support", None, 600)?;
    member(&t, &telegram.fake, "alice", 500_000, &support).await;
    let alice = bearer(&mint(JWT_SECRET, "alice", "user", None, 600)?);

    println!("| `telegate serve` under wrk, loopback | connections | requests/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (path, name) in [
        ("/healthz", "`GET /healthz` (no store)"),
        ("/api/telegram/status/", "`GET /api/telegram/status/` (JWT, store)"),
    ] {
        let out = tokio::process::Command::new("wrk")
            .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
            .arg(format!("Authorization: {alice}"))
            .arg(format!("{base}{path}"))
            .output()
            .await
            .map_err(|e| format!("wrk: {e} (Debian: apt-get install wrk)"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| "0".into())
        };
        let ms = |v: String| -> f64 {
            if let Some(us) = v.strip_suffix("us") {
                us.parse::<f64>().unwrap_or(0.0) / 1000.0
            } else if let Some(ms) = v.strip_suffix("ms") {
                ms.parse().unwrap_or(0.0)
            } else {
                v.trim_end_matches('s').parse::<f64>().unwrap_or(0.0) * 1000.0
            }
        };
        println!(
            "| {name} | 32 | {} | {:.2} | {:.2} | {} |",
            field("Requests/sec:"),
            ms(field("50%")),
            ms(field("99%")),
            field("Non-2xx or 3xx responses:")
        );
    }
    println!();
    println!("wrk `-t2 -c32 -d10s` and the server share the machine's 2 cores.");
    let _ = server.kill().await;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    std::fs::create_dir_all("target/bench-logs").map_err(|e| e.to_string())?;
    in_process().await?;
    let binary = std::env::args().nth(1).unwrap_or_else(|| "target/release/telegate".into());
    over_loopback(&binary).await
}
