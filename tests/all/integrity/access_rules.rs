//! A channel administrator's removal, support's way back, one payer per period.

use serde_json::json;

use super::{ALICE, audit_actions};
use crate::support::{self, CHANNEL, TestApp, on_store, updates};

/// A channel administrator bans a member by hand: the bot respects it. The member's used link
/// neither unbans nor re-invites them, their join request is declined, their membership ends, until
/// support reinstates the account and the payment.
async fn a_removal_by_a_channel_administrator_is_respected_until_support_reinstates(app: TestApp) {
    const ADMIN: i64 = 4242;
    let issued = app.member("alice", "TX-ADMIN-KICK", ALICE).await;
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(app.webhook(updates::removed_by_admin(app.update_id(), CHANNEL, ALICE, ADMIN)).await, 200);
    app.drain().await;
    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], false, "{status}");

    let unbans = app.calls_for_user("unbanChatMember", ALICE).len();
    assert_eq!(app.start_command(ALICE, &token).await, 200);
    assert_eq!(app.calls_for_user("unbanChatMember", ALICE).len(), unbans, "the used link does not unban");
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "nor re-invite");
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, "https://t.me/+old")).await, 200);
    app.drain().await;
    assert_eq!(app.calls_for_user("declineChatJoinRequest", ALICE).len(), 1);

    // A new link for the same payment: refused until support reinstates it, with a true message.
    let support = app.jwt("s", "support");
    let body = json!({"payment_id": issued["payment_id"]});
    let (status, answer) = app.post("/api/telegram/generate-token/", &support, body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("already_redeemed")));
    assert!(answer["error"]["message"].as_str().unwrap().contains("reinstate"), "{answer}");
    let reinstate = json!({"telegram_user_id": ALICE, "payment_id": issued["payment_id"], "reason": "appeal accepted"});
    let (status, answer) = app.post("/api/telegram/admin/reinstate/", &app.jwt("bob", "user"), reinstate.clone()).await;
    assert_eq!(status, 403, "support only: {answer}");
    let (status, answer) = app.post("/api/telegram/admin/reinstate/", &support, reinstate).await;
    assert_eq!((status, &answer["bar_lifted"], &answer["tokens_retired"]), (200, &json!(true), &json!(1)), "{answer}");
    let (status, fresh) = app.post("/api/telegram/generate-token/", &support, body).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(app.start_command(ALICE, fresh["token"].as_str().unwrap()).await, 200);
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 2, "back in through support");
    assert!(audit_actions(&app).await.contains(&"reinstated".to_owned()));
}

/// After a revoke, a redeemed payment gets a new link once support reinstates it (defect: never).
#[tokio::test]
async fn a_revoked_payment_gets_a_new_link_once_support_reinstates_it() {
    let app = TestApp::spawn().await;
    let issued = app.member("alice", "TX-REINSTATE", ALICE).await;
    let support = app.jwt("s", "support");
    let body = json!({"payment_id": issued["payment_id"]});
    let reinstate = json!({"payment_id": issued["payment_id"], "reason": "chargeback reversed"});
    let (status, answer) = app.post("/api/telegram/admin/reinstate/", &support, reinstate.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("access_still_open")), "revoke first");
    let (status, _) = app
        .post(
            "/api/telegram/revoke-access/",
            &app.jwt("root", "admin"),
            json!({"user_id": "alice", "reason": "chargeback"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.post("/api/telegram/generate-token/", &support, body.clone()).await.0, 409);
    let (status, answer) = app.post("/api/telegram/admin/reinstate/", &support, reinstate).await;
    assert_eq!((status, &answer["tokens_retired"]), (200, &json!(1)), "{answer}");
    let (status, fresh) = app.post("/api/telegram/generate-token/", &support, body).await;
    assert_eq!(status, 200, "{fresh}");
}

/// A link paid by web user B, opened by a Telegram account whose membership user A paid for, does
/// not extend A's membership: it stays unused, so every period is attributable to its payment and
/// revoking B removes only what B paid for.
#[tokio::test]
async fn a_link_paid_by_another_user_does_not_extend_this_accounts_membership() {
    const BOB: i64 = 8202;
    let app = TestApp::spawn().await;
    app.member("alice", "TX-PAYER-A", ALICE).await;
    let before = app.status_of("alice").await["memberships"][0]["expires_at"].clone();
    let bobs = app.paid("bob", "TX-PAYER-B").await;
    let token = bobs["token"].as_str().unwrap();
    assert_eq!(app.start_command(ALICE, token).await, 200);
    assert!(app.texts_to(ALICE).last().unwrap().contains("payé par un autre compte"), "{:?}", app.texts_to(ALICE));
    assert_eq!(app.status_of("alice").await["memberships"][0]["expires_at"], before, "alice's end unchanged");

    // The link still works for bob's own Telegram account, and revoking bob leaves alice alone.
    assert_eq!(app.start_command(BOB, token).await, 200);
    assert!(app.last_invite_link().is_some());
    assert_eq!(app.status_of("bob").await["memberships"].as_array().unwrap().len(), 1, "bob sees what he paid for");
    let (status, body) = app
        .post(
            "/api/telegram/revoke-access/",
            &app.jwt("root", "admin"),
            json!({"user_id": "bob", "reason": "chargeback"}),
        )
        .await;
    assert_eq!((status, &body["revoked_count"]), (200, &json!(1)));
    assert_eq!(app.status_of("alice").await["has_active_subscription"], true);
}

/// One web account's links opened by two Telegram accounts (a family, a reseller), and a third
/// link not opened yet. A channel administrator removes one of the two accounts: only that
/// account's membership ends. The other stays in with what it holds, and the unused link still
/// opens the channel to a third account (defect: the whole web account was revoked, the other
/// account left in the channel with no membership and the unused link lost).
async fn a_removal_by_a_channel_administrator_ends_only_that_accounts_membership(app: TestApp) {
    const ADMIN: i64 = 4242;
    const FAMILY: i64 = 8203;
    const FRIEND: i64 = 8204;
    app.member("alice", "TX-SHARED-1", ALICE).await;
    app.member("alice", "TX-SHARED-2", FAMILY).await;
    let unused = app.paid("alice", "TX-SHARED-3").await;
    app.fake().set_member_status(ALICE, "kicked");
    assert_eq!(app.webhook(updates::removed_by_admin(app.update_id(), CHANNEL, ALICE, ADMIN)).await, 200);
    app.drain().await;

    let status = app.status_of("alice").await;
    let active: Vec<_> = status["memberships"].as_array().unwrap().iter().filter(|m| m["is_active"] == true).collect();
    assert_eq!(active.len(), 1, "the other account's membership lasts: {status}");
    assert_eq!(active[0]["days_remaining"], 30, "{status}");
    assert_eq!(app.fake().member_status(FAMILY), "member");
    assert!(app.calls_for_user("banChatMember", FAMILY).is_empty(), "the other account is left alone");
    assert_eq!(app.run_job("reconcile-members").await["status"], "done");
    app.drain().await;
    assert_eq!(app.fake().member_status(FAMILY), "member", "and is no stranger");

    assert_eq!(app.start_command(FRIEND, unused["token"].as_str().unwrap()).await, 200);
    let link = app.last_invite_link().expect("the unused link still opens the channel");
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, FRIEND, &link)).await, 200);
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", FRIEND).len(), 1);
}

support::on_both_stores!(
    on_store =>
    a_removal_by_a_channel_administrator_is_respected_until_support_reinstates,
    a_removal_by_a_channel_administrator_ends_only_that_accounts_membership,
);

/// A store an earlier release refunded in: the payment reads refunded, but a link support issued
/// before the refund was left live (that release's refund took back only the charge's own token).
/// Shown in Telegram, it opens nothing.
#[tokio::test]
async fn a_link_of_a_refunded_payment_left_live_by_an_earlier_release_opens_nothing() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-LEFT-LIVE").await;
    let db = rusqlite::Connection::open(app.data.0.join("telegate.sqlite3")).unwrap();
    let id = issued["payment_id"].as_str().unwrap();
    db.execute("UPDATE payments SET status = 'refunded' WHERE id = ?1", [id]).unwrap();
    assert_eq!(app.start_command(ALICE, issued["token"].as_str().unwrap()).await, 200);
    app.drain().await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "no invite");
    assert!(app.calls_for_user("unbanChatMember", ALICE).is_empty(), "nothing lifted");
    assert_eq!(app.status_of("alice").await["memberships"].as_array().map(Vec::len), Some(0));
    let actions = audit_actions(&app).await;
    assert!(actions.contains(&"token_refused".to_owned()), "{actions:?}");
}

/// Offers with a web price, so that a validation counts revenue.
async fn priced(aws: bool) -> TestApp {
    const OFFERS: &str = r#"{"monthly": {"name": "Monthly", "days": 30, "price_cents": 990}}"#;
    TestApp::spawn_on_store_with(aws, &[("OFFERS", OFFERS)]).await
}

support::on_both_stores!(
    priced =>
    a_manual_payments_refund_recorded_by_an_admin_ends_its_access_and_buys_nothing_again,
    a_payment_whose_days_wait_in_a_membership_gets_no_second_link,
);

/// Two payments' links opened 12 hours apart, the member not joined yet: the first link's 24
/// hours pass while the second keeps the membership waiting. The first payment's days are in
/// that membership: its owner gets no new link for it, before or after the join (they got one,
/// and its days twice; or the replaced link closed the membership, with the second payment's
/// days in it).
async fn a_payment_whose_days_wait_in_a_membership_gets_no_second_link(app: TestApp) {
    let first = app.paid("alice", "TX-TWICE-1").await;
    assert_eq!(app.start_command(ALICE, first["token"].as_str().unwrap()).await, 200);
    app.advance(12 * 3600).await;
    let second = app.paid("alice", "TX-TWICE-2").await;
    assert_eq!(app.start_command(ALICE, second["token"].as_str().unwrap()).await, 200);
    let new_link = async || {
        let body = json!({"payment_id": first["payment_id"]});
        let (status, answer) = app.post("/api/telegram/generate-token/", &app.jwt("alice", "user"), body).await;
        (status, answer["error"]["code"].as_str().map(str::to_owned))
    };
    app.advance(12 * 3600 + 60).await; // the first link's end, before expire-tokens runs
    assert_eq!(new_link().await, (409, Some("already_redeemed".into())), "the first link's days wait");
    app.advance(3600).await;
    assert_eq!(app.run_job("expire-tokens").await["status"], "done");
    assert_eq!(new_link().await, (409, Some("already_redeemed".into())), "and after expire-tokens");
    let link = app.last_invite_link().expect("an invite");
    assert_eq!(app.webhook(updates::text(app.update_id(), ALICE, "fr", "/start")).await, 200);
    let fresh = app.last_invite_link().expect("a fresh invite");
    assert_ne!(fresh, link);
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &fresh)).await, 200);
    assert_eq!(app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&fresh))).await, 200);
    app.drain().await;
    let status = app.status_of("alice").await;
    assert_eq!(status["memberships"][0]["days_remaining"], 60, "both payments' days: {status}");
    assert_eq!(new_link().await, (409, Some("already_redeemed".into())), "and after the join");
}

/// A manual payment refunded where it was paid (the bank sent the money back): an admin records
/// it, and a refund is final as for Stars: the access it bought ends, no route gives it a link
/// again, and the web revenue counts it refunded.
async fn a_manual_payments_refund_recorded_by_an_admin_ends_its_access_and_buys_nothing_again(app: TestApp) {
    let issued = app.member("alice", "TX-BANK-REFUND", ALICE).await;
    let id = issued["payment_id"].clone();
    let body = json!({"payment_id": id, "reason": "paid back by bank transfer"});
    let (status, _) = app.post("/api/telegram/admin/refund/", &app.jwt("s", "support"), body.clone()).await;
    assert_eq!(status, 403, "admins only");
    let (status, answer) = app.post("/api/telegram/admin/stars/refund/", &app.jwt("root", "admin"), body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("not_a_stars_payment")), "{answer}");

    let (status, answer) = app.post("/api/telegram/admin/refund/", &app.jwt("root", "admin"), body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["refund"].as_str(), answer["refunded"].as_bool(), answer["revoked_count"].as_i64()),
        (Some("refunded"), Some(true), Some(1))
    );
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "the access it bought ended");
    assert_eq!(app.status_of("alice").await["has_active_subscription"], false);
    assert!(app.fake().calls_to("refundStarPayment").is_empty(), "nothing asked of Telegram");
    let (status, again) = app.post("/api/telegram/admin/refund/", &app.jwt("root", "admin"), body).await;
    assert_eq!((status, again["refund"].as_str(), again["revoked_count"].as_i64()), (200, Some("refunded"), Some(0)));

    // Final: support's reinstatement and a new link are refused, the used link opens nothing.
    let support = app.jwt("s", "support");
    let reinstate = json!({"payment_id": id, "reason": "asked nicely"});
    let (status, answer) = app.post("/api/telegram/admin/reinstate/", &support, reinstate).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("payment_refunded")), "{answer}");
    let (status, answer) = app.post("/api/telegram/generate-token/", &support, json!({"payment_id": id})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("payment_refunded")), "{answer}");
    let validate = format!("/api/payments/admin/pending-payments/{}/validate/", id.as_str().unwrap());
    let (status, answer) = app.post(&validate, &support, json!({})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("payment_refunded")), "{answer}");
    assert_eq!(app.start_command(ALICE, issued["token"].as_str().unwrap()).await, 200);
    app.drain().await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "no new invite");

    let (_, refunded) = app.get("/api/payments/admin/pending-payments/?status=refunded", &support).await;
    assert_eq!(refunded[0]["refund_note"], "paid back by bank transfer", "{refunded}");
    let (_, stats) = app.get("/api/telegram/admin/stats/", &app.jwt("root", "admin")).await;
    let web = &stats["web"];
    let totals =
        (web["revenue_total_cents"].as_i64(), web["refunded_total_cents"].as_i64(), web["net_total_cents"].as_i64());
    assert_eq!(totals, (Some(990), Some(990), Some(0)), "{web}");
    assert_eq!(
        (web["months"][0]["refunded_cents"].as_i64(), web["months"][0]["net_cents"].as_i64()),
        (Some(990), Some(0))
    );
    let actions = audit_actions(&app).await;
    assert_eq!(actions.iter().filter(|a| *a == "payment_refunded").count(), 1, "{actions:?}");
}
