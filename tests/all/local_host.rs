//! The `telegate` binary and the local host: restart, demo, start-up errors, long polling.

use crate::support;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{TempDir, TestApp, updates};
use serde_json::json;

const ALICE: i64 = 3001;

fn telegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_telegate"))
}

#[tokio::test]
async fn state_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let issued = app.member("alice", "TX-S", ALICE).await;
    let pending = app.paid("bob", "TX-S2").await;
    let before = app.status_of("alice").await;

    app.restart().await;

    assert_eq!(app.status_of("alice").await, before, "membership kept");
    let (_, notes) = app.get("/api/telegram/notifications/", &app.jwt("alice", "user")).await;
    assert_eq!(notes.as_array().unwrap().len(), 2);
    // The token issued before the restart still works, once, and the used one stays bound.
    app.fake().clear_calls();
    app.start_command(4001, pending["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
    app.start_command(4002, issued["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
    // Updates seen before the restart are still recognised.
    let (s, _) = app
        .post(
            "/api/payments/pending-payments/create/",
            &app.jwt("carol", "user"),
            json!({"offer_id": "m", "transaction_id": "TX-S"}),
        )
        .await;
    assert_eq!(s, 409, "the transaction id is still taken");
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-H").await;
    let token = issued["token"].as_str().unwrap();
    let db = rusqlite::Connection::open(app.data.0.join("telegate.sqlite3")).unwrap();
    let rows: Vec<String> = db
        .prepare("SELECT hash || '|' || payment_id || '|' || user_id || '|' || status FROM tokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].contains(token), "the token itself is not in the tokens table");
    let hash = rows[0].split('|').next().unwrap();
    assert_eq!(hash.len(), 64, "a SHA-256 in hex");
    // Only the user's own notification holds the link, as the contract asks.
    let holders: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM notifications WHERE instr(action_url, ?1) > 0 AND user_id = 'alice'",
            [token],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(holders, 1);
}

#[test]
fn the_demo_runs_the_whole_flow_and_exits_0() {
    let out = telegate().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("The whole flow works"));
    assert!(stdout.contains("Rejoindre le canal"));
}

#[test]
fn a_missing_setting_stops_start_up_with_one_clear_line_and_exit_2() {
    let data = TempDir::new();
    let out = telegate()
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(&data.0)
        .env_clear()
        .env("TELEGRAM_BOT_TOKEN", "123:abc")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("missing setting TELEGRAM_CHANNEL_ID"), "{stderr}");
    assert!(!stderr.contains("123:abc"));
}

#[test]
fn serve_runs_with_nothing_configured_and_stops_on_sigterm() {
    let data = TempDir::new();
    let port = free_port();
    let mut child = telegate()
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data.0)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the server listens");
    // A token minted from the same data folder is accepted.
    let jwt = telegate().args(["jwt", "--sub", "alice", "--data"]).arg(&data.0).env_clear().output().unwrap();
    let jwt = String::from_utf8(jwt.stdout).unwrap().trim().to_owned();
    let status = http_get(port, "/api/telegram/status/", &jwt);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let secrets = std::fs::read_to_string(data.0.join("dev-secrets.json")).unwrap();

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful stop on SIGTERM");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&secrets).unwrap();
    for secret in [parsed["jwt_hs256_secret"].as_str().unwrap(), parsed["webhook_secret"].as_str().unwrap(), &jwt] {
        assert!(!stderr.contains(secret), "a secret reached the log");
    }
    assert!(stderr.contains("telegate jwt"), "the log says how to get a token");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str, jwt: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {jwt}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn long_polling_feeds_the_same_handler_as_the_webhook() {
    let app = TestApp::spawn().await;
    let poller_data = TempDir::new();
    // A second host on its own store, polling the same fake Telegram.
    let mut env = app.env.clone();
    env.insert("TELEGATE_TEST_CLOCK".into(), "0".into());
    let poller = support::start_polling(&env, &poller_data).await;
    app.fake().push_update(updates::text(9001, ALICE, "en", "/help"));
    let mut replied = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if app.texts_to(ALICE).iter().any(|t| t.starts_with("Commands")) {
            replied = true;
            break;
        }
    }
    assert!(replied, "the polled /help was answered");
    let polls = app.fake().calls_to("getWebhookInfo");
    assert_eq!(polls.len(), 1, "the webhook state is checked before polling");
    poller.stop().await.unwrap();
}
