//! Abuse limits: guessing tokens from one account, hammering one token from many, and an owner
//! generating links in a loop, are all bounded per hour.

use crate::support;

use crate::support::TestApp;
use serde_json::json;

const ALICE: i64 = 9001;
const GUESSER: i64 = 9002;

#[tokio::test]
async fn five_failed_starts_then_silence_until_the_hour_passes() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.start_command(GUESSER, &format!("guess_{i}_aaaaaaaaaaaaaaaaaaaaaa")).await;
    }
    assert_eq!(app.texts_to(GUESSER).len(), 5, "five polite refusals");
    app.start_command(GUESSER, "guess_6_aaaaaaaaaaaaaaaaaaaaaa").await;
    // Even a valid token is not looked at while the account is locked out.
    let issued = app.paid("mallory", "TX-AB1").await;
    app.start_command(GUESSER, issued["token"].as_str().unwrap()).await;
    assert_eq!(app.texts_to(GUESSER).len(), 5, "silence");
    assert!(app.fake().calls_to("createChatInviteLink").is_empty());
    // /help still answers: only /start is limited.
    app.webhook(support::updates::text(app.update_id(), GUESSER, "fr", "/help")).await;
    assert_eq!(app.texts_to(GUESSER).len(), 6);

    app.advance(3600).await;
    app.start_command(GUESSER, issued["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "the next hour, the valid token works");
}

#[tokio::test]
async fn a_hammered_token_goes_silent_for_strangers_but_not_for_its_owner() {
    let app = TestApp::spawn_with(&[("TOKEN_FAILURES_PER_HOUR", "3")]).await;
    let issued = app.paid("alice", "TX-AB2").await;
    let token = issued["token"].as_str().unwrap();
    app.start_command(ALICE, token).await;
    for stranger in 0..3 {
        app.start_command(20_000 + stranger, token).await;
    }
    assert_eq!(app.texts_to(20_002).len(), 1, "refused");
    app.start_command(20_003, token).await;
    assert!(app.texts_to(20_003).is_empty(), "silence for the fourth stranger");
    app.start_command(ALICE, token).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 2, "the owner still gets a fresh invite");
}

#[tokio::test]
async fn an_owner_generating_links_in_a_loop_gets_429_but_support_does_not() {
    let app = TestApp::spawn_with(&[("GENERATE_TOKEN_PER_HOUR", "2")]).await;
    let issued = app.paid("alice", "TX-AB3").await;
    let body = json!({"payment_id": issued["payment_id"]});
    let owner = app.jwt("alice", "user");
    for _ in 0..2 {
        assert_eq!(app.post("/api/telegram/generate-token/", &owner, body.clone()).await.0, 200);
    }
    let (status, answer) = app.post("/api/telegram/generate-token/", &owner, body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (429, Some("rate_limited")));
    assert_eq!(app.post("/api/telegram/generate-token/", &app.jwt("s", "support"), body.clone()).await.0, 200);
    app.advance(3600).await;
    assert_eq!(app.post("/api/telegram/generate-token/", &owner, body).await.0, 200, "a new hour");
}

#[tokio::test]
async fn re_sending_a_valid_start_gets_fresh_invites_only_a_few_times_an_hour() {
    let app = TestApp::spawn_with(&[("START_INVITES_PER_HOUR", "3")]).await;
    let issued = app.paid("alice", "TX-AB4").await;
    let token = issued["token"].as_str().unwrap();
    for _ in 0..5 {
        app.start_command(ALICE, token).await;
    }
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 3, "three fresh invites, then silence");
    assert_eq!(app.texts_to(ALICE).len(), 3);
    app.advance(3600).await;
    app.start_command(ALICE, token).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 4, "the next hour, one more");
}
