//! The access flow end to end over HTTP: payment → validation → /start → invite → join → status.

use crate::support;

use crate::support::{CHANNEL, TestApp, updates};
use futures_util::future::join_all;
use serde_json::json;

const ALICE: i64 = 1001;
const BOB: i64 = 1002;

#[tokio::test]
async fn the_whole_flow_from_payment_to_an_active_membership() {
    let app = TestApp::spawn().await;
    let alice = app.jwt("alice", "user");

    let (status, payment) = app
        .post(
            "/api/payments/pending-payments/create/",
            &alice,
            json!({"offer_id": "monthly", "transaction_id": "TX-1", "user_info": {"name": "Alice"}}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(payment["status"], "transaction_submitted");
    let payment_id = payment["id"].as_str().unwrap().to_owned();

    let (_, pending) =
        app.get("/api/payments/admin/pending-payments/?status=transaction_submitted", &app.jwt("s", "support")).await;
    assert_eq!(pending.as_array().unwrap().len(), 1);

    let (status, issued) = app
        .post(
            &format!("/api/payments/admin/pending-payments/{payment_id}/validate/"),
            &app.jwt("s", "support"),
            json!({"admin_notes": "ok"}),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap();
    assert_eq!(issued["success"], true);
    assert_eq!(issued["payment_id"], payment_id.as_str());
    assert_eq!(
        issued["bot_link"],
        format!("https://t.me/{}?start={token}", telegate_testkit::fake_telegram::BOT_USERNAME)
    );
    assert!(token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(issued["expires_at"].as_str().unwrap().ends_with('Z'));

    // The notification and the email carry the link.
    let (_, notes) = app.get("/api/telegram/notifications/", &alice).await;
    assert_eq!(notes[0]["type"], "payment_verified");
    assert_eq!(notes[0]["action_url"], issued["bot_link"]);
    assert_eq!(notes[0]["id"], issued["notification_id"]);
    app.drain().await;
    let mails: Vec<_> = std::fs::read_dir(app.data.0.join("outbox")).unwrap().collect();
    assert_eq!(mails.len(), 1, "one validation email");

    // /start <token>: ban lifted first, then a join-request invite, then the reply with the button.
    assert_eq!(app.start_command(ALICE, token).await, 200);
    let methods: Vec<String> = app.fake().calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(methods, ["unbanChatMember", "createChatInviteLink", "sendMessage"]);
    let unban = &app.fake().calls_to("unbanChatMember")[0];
    assert_eq!((unban.params["user_id"].clone(), unban.params["only_if_banned"].clone()), (json!(ALICE), json!(true)));
    let invite = &app.fake().calls_to("createChatInviteLink")[0];
    assert_eq!(invite.params["chat_id"], json!(CHANNEL));
    assert_eq!(invite.params["creates_join_request"], json!(true));
    assert!(invite.params["name"].as_str().unwrap().starts_with("tg-"));
    let reply = &app.fake().calls_to("sendMessage")[0];
    assert_eq!(reply.params["chat_id"], json!(ALICE));
    assert_eq!(reply.params["reply_markup"]["inline_keyboard"][0][0]["text"], "Rejoindre le canal");
    let link = app.last_invite_link().unwrap();

    // The join request from Alice is approved; the join starts the membership.
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await, 200);
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 1);
    assert_eq!(app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await, 200);
    app.drain().await;
    let revoked = app.fake().calls_to("revokeChatInviteLink");
    assert_eq!(revoked.len(), 1, "the used link is revoked");
    assert_eq!(revoked[0].params["invite_link"], link.as_str());
    assert!(app.texts_to(ALICE).last().unwrap().contains("Bienvenue"));

    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], true);
    assert_eq!(status["telegram_username"], format!("user{ALICE}"));
    let m = &status["memberships"][0];
    assert_eq!((m["channel_name"].as_str(), m["subscription_type"].as_str()), (Some("Test Channel"), Some("monthly")));
    assert_eq!((m["is_active"].clone(), m["days_remaining"].clone()), (json!(true), json!(30)));
    let joined = chrono::DateTime::parse_from_rfc3339(m["joined_at"].as_str().unwrap()).unwrap();
    let ends = chrono::DateTime::parse_from_rfc3339(m["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((ends - joined).num_days(), 30);

    let (_, notes) = app.get("/api/telegram/notifications/", &alice).await;
    let kinds: Vec<&str> = notes.as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["access_granted", "payment_verified"]);

    // /status in the bot tells the same.
    app.webhook(updates::text(app.update_id(), ALICE, "en", "/status")).await;
    assert!(app.texts_to(ALICE).last().unwrap().contains("30 day(s) left"));
}

#[tokio::test]
async fn a_token_used_by_another_account_is_refused_without_saying_why() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-2").await;
    let token = issued["token"].as_str().unwrap();
    app.start_command(ALICE, token).await;
    app.fake().clear_calls();

    app.start_command(BOB, token).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "no invite for another account");
    let refusal = app.texts_to(BOB).pop().unwrap();
    // The same words as for a token that never existed.
    app.start_command(BOB, "NoSuchTokenAtAll_0123456789").await;
    assert_eq!(app.texts_to(BOB).pop().unwrap(), refusal);
    assert!(refusal.contains("pas valide"));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-3").await;
    app.advance(24 * 3600 + 1).await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty());
    assert!(app.texts_to(ALICE).pop().unwrap().contains("pas valide"));
}

#[tokio::test]
async fn the_same_account_resending_its_token_before_joining_gets_a_fresh_invite() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-4").await;
    let token = issued["token"].as_str().unwrap();
    app.start_command(ALICE, token).await;
    let first = app.last_invite_link().unwrap();
    app.advance(600).await; // the first invite has expired
    app.start_command(ALICE, token).await;
    let second = app.last_invite_link().unwrap();
    assert_ne!(first, second);
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 2);
    let revoked = app.fake().calls_to("revokeChatInviteLink");
    assert_eq!(revoked[0].params["invite_link"], first.as_str(), "the earlier link is retired");
}

#[tokio::test]
async fn two_simultaneous_starts_with_one_token_produce_one_invite() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-5").await;
    let token = issued["token"].as_str().unwrap();
    let accounts: Vec<i64> = (0..10).map(|i| 5000 + i).collect();
    let results = join_all(accounts.iter().map(|a| app.start_command(*a, token))).await;
    assert!(results.iter().all(|s| *s == 200));
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "exactly one invite");
    let with_button = app.fake().calls_to("sendMessage").iter().filter(|c| !c.params["reply_markup"].is_null()).count();
    assert_eq!(with_button, 1);
}

#[tokio::test]
async fn a_strangers_join_request_with_a_members_link_is_declined() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-6").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, BOB, &link)).await, 200);
    app.drain().await;
    assert_eq!(app.calls_for_user("declineChatJoinRequest", BOB).len(), 1);
    assert!(app.calls_for_user("approveChatJoinRequest", BOB).is_empty());
}

#[tokio::test]
async fn a_join_without_a_membership_is_removed_but_not_banned_and_admins_are_left_alone() {
    let app = TestApp::spawn().await;
    app.webhook(updates::joined(app.update_id(), CHANNEL, BOB, None)).await;
    app.drain().await;
    let calls: Vec<String> = app.fake().calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(calls, ["banChatMember", "unbanChatMember"], "ban then unban, so paying later lets them in");
    assert_eq!(app.calls_for_user("unbanChatMember", BOB)[0].params["only_if_banned"], json!(true));

    app.fake().clear_calls();
    app.webhook(updates::admin_promoted(app.update_id(), CHANNEL, 4242)).await;
    app.drain().await;
    assert!(app.fake().calls().is_empty(), "an administrator is never touched");

    // Updates about other chats are not ours to act on.
    app.webhook(updates::joined(app.update_id(), -100999, BOB, None)).await;
    app.drain().await;
    assert!(app.fake().calls().is_empty());
}

#[tokio::test]
async fn an_administrator_demoted_to_member_without_a_membership_is_removed_as_a_stranger() {
    let app = TestApp::spawn().await;
    app.webhook(updates::admin_promoted(app.update_id(), CHANNEL, 4343)).await;
    app.webhook(updates::admin_demoted(app.update_id(), CHANNEL, 4343)).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", 4343).len(), 1, "removed at the demotion");
    assert_eq!(app.calls_for_user("unbanChatMember", 4343).len(), 1, "not banned: paying lets them in");
    let (_, audit) = app.get("/api/telegram/admin/audit/?limit=20", &app.jwt("root", "admin")).await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "member_removed"), "{audit}");

    // One who also paid stays.
    app.member("erin", "TX-DEMOTED", 4344).await;
    app.webhook(updates::admin_demoted(app.update_id(), CHANNEL, 4344)).await;
    app.drain().await;
    assert!(app.calls_for_user("banChatMember", 4344).is_empty(), "a paying member stays");
}

/// A paying member the creator made an administrator: the end of their period removes nothing
/// (Telegram refuses to ban an administrator: not a failure, nothing dead-lettered). Demoted after
/// the end, they are removed as anyone without a membership.
#[tokio::test]
async fn a_member_made_administrator_is_not_removed_at_the_end_and_is_once_demoted() {
    let app = TestApp::spawn().await;
    app.member("alice", "TX-PROMOTED", ALICE).await;
    app.fake().set_member_status(ALICE, "administrator");
    assert_eq!(app.webhook(updates::member_promoted(app.update_id(), CHANNEL, ALICE)).await, 200);
    app.advance(31 * 86_400).await;
    assert_eq!(app.run_job("expire-subscriptions").await["status"], "done");
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "asked once, refused by Telegram");
    assert_eq!(app.fake().member_status(ALICE), "administrator");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "an administrator's refusal is no fault");
    assert_eq!(app.status_of("alice").await["has_active_subscription"], false);

    app.fake().set_member_status(ALICE, "member");
    assert_eq!(app.webhook(updates::admin_demoted(app.update_id(), CHANNEL, ALICE)).await, 200);
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 2, "removed at the demotion");
    assert_eq!(app.fake().member_status(ALICE), "left", "not banned: paying again lets them in");
}

#[tokio::test]
async fn a_renewal_by_an_active_member_extends_from_the_current_end() {
    let app = TestApp::spawn().await;
    app.member("alice", "TX-7", ALICE).await;
    let first_end = app.status_of("alice").await["memberships"][0]["expires_at"].as_str().unwrap().to_owned();
    app.advance(10 * 86_400).await;
    let renewal = app.paid("alice", "TX-8").await;
    app.fake().clear_calls();
    app.start_command(ALICE, renewal["token"].as_str().unwrap()).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "still in the channel: no invite needed");
    assert!(app.texts_to(ALICE).pop().unwrap().contains("prolongé"));
    let status = app.status_of("alice").await;
    assert_eq!(status["memberships"].as_array().unwrap().len(), 1, "one membership, extended");
    let old = chrono::DateTime::parse_from_rfc3339(&first_end).unwrap();
    let new = chrono::DateTime::parse_from_rfc3339(status["memberships"][0]["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((new - old).num_days(), 30, "30 more days from the old end, not from now");
    assert_eq!(status["memberships"][0]["days_remaining"], json!(50));

    // The same renewal token sent again changes nothing.
    app.start_command(ALICE, renewal["token"].as_str().unwrap()).await;
    assert_eq!(app.status_of("alice").await["memberships"][0]["expires_at"], status["memberships"][0]["expires_at"]);
}

#[tokio::test]
async fn a_member_who_left_is_recorded_and_can_come_back_with_a_fresh_invite() {
    let app = TestApp::spawn().await;
    let issued = app.member("alice", "TX-9", ALICE).await;
    app.webhook(updates::left(app.update_id(), CHANNEL, ALICE)).await;
    assert_eq!(app.status_of("alice").await["has_active_subscription"], true, "leaving does not end what was paid");
    app.fake().clear_calls();
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "a fresh invite to come back");
    // And nobody else can use that used token.
    app.start_command(BOB, issued["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
}

#[tokio::test]
async fn member_limit_mode_issues_the_guides_one_person_link() {
    let app = TestApp::spawn_with(&[("INVITE_MODE", "member_limit")]).await;
    let issued = app.paid("alice", "TX-10").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let invite = &app.fake().calls_to("createChatInviteLink")[0];
    assert_eq!(invite.params["member_limit"], json!(1));
    assert!(invite.params["creates_join_request"].is_null());
}

#[tokio::test]
async fn english_speakers_get_english_replies() {
    let app = TestApp::spawn().await;
    app.webhook(updates::text(app.update_id(), ALICE, "en-US", "/help")).await;
    assert!(app.texts_to(ALICE).pop().unwrap().starts_with("Commands"));
    app.webhook(updates::text(app.update_id(), ALICE, "fr", "/start")).await;
    assert!(app.texts_to(ALICE).pop().unwrap().starts_with("Bienvenue"));
}

#[tokio::test]
async fn telegram_flood_control_on_an_approval_is_retried_after_retry_after() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-11").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    app.fake().fail_next("approveChatJoinRequest", support::Fault::RetryAfter(1), 1);
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 2, "429 then success");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_telegram_server_error_on_an_approval_is_retried_until_it_succeeds() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-12").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    app.fake().fail_next("approveChatJoinRequest", support::Fault::ServerError, 1);
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    // teloxide-core itself waits 10 s after a 5xx before reporting it; the queue then retries.
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 2, "500 then success");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_blocked_bot_does_not_stop_the_join_from_being_recorded() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-13").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    app.fake().fail_next("sendMessage", support::Fault::BotBlocked, 1);
    app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await;
    app.drain().await;
    assert_eq!(app.status_of("alice").await["has_active_subscription"], true);
    assert!(
        app.running().effects.dead_letters().await.unwrap().is_empty(),
        "an unreachable user is not a failure to retry"
    );
}

#[tokio::test]
async fn two_join_requests_in_the_same_second_are_two_decisions() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-14").await;
    let token = issued["token"].as_str().unwrap();
    app.start_command(ALICE, token).await;
    let first = app.last_invite_link().unwrap();
    app.start_command(ALICE, token).await;
    let second = app.last_invite_link().unwrap();
    for link in [first, second] {
        let mut request = updates::join_request(app.update_id(), CHANNEL, ALICE, &link);
        request["chat_join_request"]["date"] = json!(1_795_608_000);
        app.webhook(request).await;
    }
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 2, "each update decides its own effect");
}

#[tokio::test]
async fn a_telegram_timeout_on_an_approval_is_retried() {
    let app = TestApp::spawn_with(&[("TELEGRAM_TIMEOUT_SECONDS", "1")]).await;
    let issued = app.paid("alice", "TX-15").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    app.fake().fail_next("approveChatJoinRequest", support::Fault::Slow(2_500), 1);
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 2, "timed out, then done");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty());
}
