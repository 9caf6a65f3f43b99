//! Secrets never reach the logs: a whole flow through the real binary at RUST_LOG=debug, then
//! every secret is searched for in what it printed.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{BOT_TOKEN, CHANNEL, JWT_SECRET, TempDir, WEBHOOK_SECRET, updates};
use serde_json::json;
use telegate::jwt::mint;
use telegate_testkit::fake_telegram::{BOT_USERNAME, FakeTelegram};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn a_whole_flow_logs_no_secret() {
    let fake = FakeTelegram::start().await.unwrap();
    let data = TempDir::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_telegate"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data.0)
        .env_clear()
        .env("RUST_LOG", "debug")
        .env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .env("TELEGRAM_BOT_USERNAME", BOT_USERNAME)
        .env("TELEGRAM_CHANNEL_ID", CHANNEL.to_string())
        .env("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("TELEGRAM_API_URL", &fake.url)
        .env("JWT_HS256_SECRET", JWT_SECRET)
        .env("TELEGATE_POLLING", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server starts");

    let user = mint(JWT_SECRET, "alice", "user", Some("alice@example.com"), 30).unwrap();
    let support = mint(JWT_SECRET, "sam", "support", None, 30).unwrap();
    let payment: serde_json::Value = http
        .post(format!("{base}/api/payments/pending-payments/create/"))
        .bearer_auth(&user)
        .json(&json!({"offer_id": "monthly", "transaction_id": "TX-SECRET"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issued: serde_json::Value = http
        .post(format!("{base}/api/payments/admin/pending-payments/{}/validate/", payment["id"].as_str().unwrap()))
        .bearer_auth(&support)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    let hook = |update: serde_json::Value| {
        http.post(format!("{base}/api/telegram/webhook"))
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .json(&update)
            .send()
    };
    assert!(hook(updates::text(1, 5001, "fr", &format!("/start {token}"))).await.unwrap().status().is_success());
    assert!(hook(updates::text(2, 5002, "fr", &format!("/start {token}"))).await.unwrap().status().is_success());
    let link = fake.fake.calls_to("createChatInviteLink").len();
    assert_eq!(link, 1);
    assert!(
        hook(updates::join_request(3, CHANNEL, 5001, "https://t.me/+fake000002")).await.unwrap().status().is_success()
    );
    assert!(hook(updates::joined(4, CHANNEL, 5001, None)).await.unwrap().status().is_success());
    // A wrong webhook secret and a bad JWT are refused, and their values are not echoed either.
    let wrong = http
        .post(format!("{base}/api/telegram/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", "guess-secret-123")
        .body("{}")
        .send();
    assert_eq!(wrong.await.unwrap().status().as_u16(), 401);
    let bad = http.get(format!("{base}/api/telegram/status/")).bearer_auth(format!("{user}x")).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    let status: serde_json::Value =
        http.get(format!("{base}/api/telegram/status/")).bearer_auth(&user).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["has_active_subscription"], true, "the flow really ran");

    let killed = std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap();
    assert!(killed.success());
    assert!(child.wait().await.unwrap().success());
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
    child.stdout.take().unwrap().read_to_string(&mut logs).await.unwrap();
    assert!(logs.lines().count() > 20, "debug logs were written:\n{logs}");
    assert!(logs.contains("token redeemed"), "the flow is in the log");
    for (what, secret) in [
        ("bot token", BOT_TOKEN),
        ("bot token's secret part", BOT_TOKEN.split(':').nth(1).unwrap()),
        ("webhook secret", WEBHOOK_SECRET),
        ("JWT secret", JWT_SECRET),
        ("user JWT", &user),
        ("support JWT", &support),
        ("access token", &token),
        ("guessed webhook secret", "guess-secret-123"),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the log");
    }
}

/// In AWS a function's secrets are not in its environment: it is given their ARNs
/// (`<NAME>_ARN`) and reads them when it starts. A secret it cannot read stops it with a line
/// naming the setting and the ARN, never a value.
#[tokio::test]
async fn a_function_reads_its_secrets_from_secrets_manager_when_it_starts() {
    use std::collections::HashMap;
    use telegate_core::adapters::{aws::sdk_config, secrets};
    let config = sdk_config().await;
    let token_arn = telegate_testkit::local_aws::secret(BOT_TOKEN).await.unwrap();
    let hook_arn = telegate_testkit::local_aws::secret(WEBHOOK_SECRET).await.unwrap();
    let env: HashMap<String, String> = HashMap::from([
        ("TELEGRAM_BOT_TOKEN_ARN".into(), token_arn.clone()),
        ("TELEGRAM_WEBHOOK_SECRET_ARN".into(), hook_arn),
        ("TELEGRAM_BOT_TOKEN".into(), "not this one".into()),
    ]);
    let read = secrets::read(&config, &|k| env.get(k).cloned()).await.unwrap();
    assert_eq!(
        read,
        HashMap::from([
            ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
            ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.into())
        ])
    );
    // Nothing named, nothing read.
    assert!(secrets::read(&config, &|_| None).await.unwrap().is_empty());

    let gone = token_arn.replace("telegate-secret", "telegate-gone");
    let env = HashMap::from([("JWT_HS256_SECRET_ARN".to_owned(), gone.clone())]);
    let e = secrets::read(&config, &|k| env.get(k).cloned()).await.unwrap_err().to_string();
    assert!(e.contains("JWT_HS256_SECRET_ARN") && e.contains(&gone), "{e}");
}
