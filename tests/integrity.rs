//! The store is the one truth about who may be in the channel: a queued effect carries out the
//! membership as it is when the effect runs, and a ban is never lost between commit and queue.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{CHANNEL, Fault, TestApp, updates};

const ALICE: i64 = 8201;

/// Waits (boundedly) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    let (status, entries) = app.get("/api/telegram/admin/audit/?limit=100", &app.jwt("root", "admin")).await;
    assert_eq!(status, 200);
    entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

/// Expiry queues a ban; Telegram answers 429 for a few seconds; meanwhile the member pays again,
/// is let back in and joins. The old ban then runs: it must see the new membership and do nothing.
async fn a_ban_made_stale_by_a_renewal_does_not_remove_the_member(app: TestApp) {
    app.member("alice", "TX-STALE-1", ALICE).await;
    app.fake().fail_next("banChatMember", Fault::RetryAfter(2), 1);
    app.advance(30 * 86_400 + 60).await; // the expiry job runs: the ban meets flood control
    until("the ban met flood control", || app.calls_for_user("banChatMember", ALICE).len() == 1).await;

    let renewal = app.paid("alice", "TX-STALE-2").await;
    assert_eq!(app.start_command(ALICE, renewal["token"].as_str().unwrap()).await, 200);
    let link = app.last_invite_link().expect("a fresh invite");
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await, 200);
    until("approved", || app.fake().member_status(ALICE) == "member").await;
    assert_eq!(app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await, 200);
    app.drain().await; // the ban's retry has run by now

    assert_eq!(app.fake().member_status(ALICE), "member", "the paying member is still in the channel");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "only the attempt flood control refused");
    assert!(audit_actions(&app).await.contains(&"effect_dropped".to_owned()), "the dropped ban is audited");
    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], true, "{status}");
}

/// An approval queued before a revoke must not let the revoked account in when it finally runs.
async fn an_approval_queued_before_a_revoke_becomes_a_decline(app: TestApp) {
    let issued = app.paid("alice", "TX-STALE-3").await;
    assert_eq!(app.start_command(ALICE, issued["token"].as_str().unwrap()).await, 200);
    let link = app.last_invite_link().expect("an invite");
    app.fake().fail_next("approveChatJoinRequest", Fault::RetryAfter(2), 1);
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await, 200);
    until("the approval met flood control", || app.calls_for_user("approveChatJoinRequest", ALICE).len() == 1).await;

    let (status, body) = app
        .post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), json!({"user_id": "alice", "reason": "fraud"}))
        .await;
    assert_eq!((status, body["revoked_count"].clone()), (200, json!(1)), "{body}");
    app.drain().await;

    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 1, "never approved after the revoke");
    assert_eq!(app.calls_for_user("declineChatJoinRequest", ALICE).len(), 1, "declined instead");
    assert_ne!(app.fake().member_status(ALICE), "member");
}

#[tokio::test]
async fn a_ban_made_stale_by_a_renewal_does_not_remove_the_member_on_sqlite() {
    a_ban_made_stale_by_a_renewal_does_not_remove_the_member(TestApp::spawn().await).await;
}

#[tokio::test]
async fn a_ban_made_stale_by_a_renewal_does_not_remove_the_member_on_dynamodb() {
    a_ban_made_stale_by_a_renewal_does_not_remove_the_member(TestApp::spawn_aws().await).await;
}

#[tokio::test]
async fn an_approval_queued_before_a_revoke_becomes_a_decline_on_sqlite() {
    an_approval_queued_before_a_revoke_becomes_a_decline(TestApp::spawn().await).await;
}

#[tokio::test]
async fn an_approval_queued_before_a_revoke_becomes_a_decline_on_dynamodb() {
    an_approval_queued_before_a_revoke_becomes_a_decline(TestApp::spawn_aws().await).await;
}
