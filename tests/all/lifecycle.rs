//! Steps 6–7: scheduled jobs, expiry, warnings, cleanup, revoke, stats and the audit log — with
//! the test clock, never with sleeps.

use crate::support;

use crate::support::{CHANNEL, TestApp, updates};
use serde_json::{Value, json};

const ALICE: i64 = 6001;
const BOB: i64 = 6002;
const DAY: i64 = 86_400;

async fn run_job(app: &TestApp, job: &str) -> u64 {
    let run = app.run_job(job).await;
    assert_eq!((run["status"].as_str(), run["job"].as_str()), (Some("done"), Some(job)), "{run}");
    run["processed"].as_u64().unwrap()
}

async fn notifications(app: &TestApp, user: &str) -> Vec<Value> {
    let (_, body) = app.get("/api/telegram/notifications/?limit=100", &app.jwt(user, "user")).await;
    body.as_array().unwrap().clone()
}

fn kinds(notes: &[Value]) -> Vec<String> {
    notes.iter().map(|n| n["type"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_expiry_sweep_removes_notifies_and_a_second_run_changes_nothing() {
    let app = TestApp::spawn().await;
    app.member("alice", "TX-E1", ALICE).await;
    app.fake().clear_calls();

    // 31 days later the daily 00:00 run has happened (the clock drives the scheduler).
    let (_, moved) =
        app.request(reqwest::Method::POST, "/_local/clock/advance", None, Some(json!({"seconds": 31 * DAY}))).await;
    let ran: Vec<&Value> =
        moved["jobs_run"].as_array().unwrap().iter().filter(|j| j["job"] == "expire-subscriptions").collect();
    assert_eq!(ran[0]["processed"], 1, "{moved}");
    app.drain().await;

    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], false);
    assert_eq!(status["memberships"][0]["status"], "expired");
    let bans = app.calls_for_user("banChatMember", ALICE);
    assert_eq!(bans.len(), 1, "removed by a ban, as the guide does");
    assert_eq!(bans[0].params["chat_id"], json!(CHANNEL));
    assert!(app.calls_for_user("unbanChatMember", ALICE).is_empty(), "the ban stays until a new payment");
    assert_eq!(kinds(&notifications(&app, "alice").await)[0], "access_expired");
    assert!(app.texts_to(ALICE).last().unwrap().contains("renouvelez"));

    assert_eq!(run_job(&app, "expire-subscriptions").await, 0, "a second run does nothing");
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);
    assert_eq!(kinds(&notifications(&app, "alice").await).iter().filter(|k| *k == "access_expired").count(), 1);
}

#[tokio::test]
async fn expire_tokens_marks_old_unused_tokens_once() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    let issued = app.paid("alice", "TX-T1").await;
    app.paid("bob", "TX-T2").await;
    assert_eq!(run_job(&app, "expire-tokens").await, 0, "nothing is old yet");
    app.advance(25 * 3600).await;
    // Reads already refuse the token, before any job ran.
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty());
    assert_eq!(run_job(&app, "expire-tokens").await, 2);
    assert_eq!(run_job(&app, "expire-tokens").await, 0);
    // A support agent can issue a fresh token for the payment.
    let (s, fresh) = app
        .post("/api/telegram/generate-token/", &app.jwt("s", "support"), json!({"payment_id": issued["payment_id"]}))
        .await;
    assert_eq!(s, 200);
    app.start_command(ALICE, fresh["token"].as_str().unwrap()).await;
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
}

#[tokio::test]
async fn warnings_go_out_once_per_threshold_and_a_late_first_run_sends_one() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    app.member("alice", "TX-W1", ALICE).await;
    app.fake().clear_calls();

    app.advance(26 * DAY).await; // 4 days left: no threshold yet
    assert_eq!(run_job(&app, "expiration-warnings").await, 0);
    app.advance(DAY + 3600).await; // 3 days minus an hour left
    assert_eq!(run_job(&app, "expiration-warnings").await, 1);
    assert_eq!(run_job(&app, "expiration-warnings").await, 0, "not repeated");
    app.advance(2 * DAY).await; // 23 hours left
    assert_eq!(run_job(&app, "expiration-warnings").await, 1, "the 1-day warning");
    assert_eq!(run_job(&app, "expiration-warnings").await, 0);
    app.drain().await;
    let warnings: Vec<String> = app.texts_to(ALICE);
    assert_eq!(warnings.len(), 2);
    assert!(warnings[0].contains("dans 3 jour(s)") && warnings[1].contains("dans 1 jour(s)"), "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("renouvelez")), "says how to renew");
    let notes = notifications(&app, "alice").await;
    assert_eq!(kinds(&notes).iter().filter(|k| *k == "expiration_warning").count(), 2);

    // Bob joins later; the first run he sees is with half a day left: one warning, not two.
    app.member("bob", "TX-W2", BOB).await;
    app.advance(29 * DAY + 12 * 3600).await;
    let sent = run_job(&app, "expiration-warnings").await;
    assert_eq!(sent, 1, "only Bob is warned (Alice has expired by now)");
    app.drain().await;
    assert_eq!(app.texts_to(BOB).iter().filter(|t| t.contains("jour(s)")).count(), 1);
}

#[tokio::test]
async fn a_renewal_starts_a_new_period_with_its_own_warnings() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    app.member("alice", "TX-W3", ALICE).await;
    app.advance(28 * DAY).await;
    assert_eq!(run_job(&app, "expiration-warnings").await, 1);
    let renewal = app.paid("alice", "TX-W4").await;
    app.start_command(ALICE, renewal["token"].as_str().unwrap()).await;
    assert_eq!(run_job(&app, "expiration-warnings").await, 0, "32 days left now");
    app.advance(30 * DAY).await;
    assert_eq!(run_job(&app, "expiration-warnings").await, 1, "warned again before the new end");
}

#[tokio::test]
async fn cleanup_deletes_read_notifications_after_30_days_and_unread_after_90() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    app.paid("alice", "TX-C1").await;
    app.paid("alice", "TX-C2").await;
    let notes = notifications(&app, "alice").await;
    let read_id = notes[0]["id"].as_str().unwrap();
    app.post(&format!("/api/telegram/notifications/{read_id}/read/"), &app.jwt("alice", "user"), json!({})).await;

    app.advance(29 * DAY).await;
    assert_eq!(run_job(&app, "cleanup-notifications").await, 0);
    app.advance(2 * DAY).await;
    assert_eq!(run_job(&app, "cleanup-notifications").await, 1, "the read one, after 30 days");
    assert_eq!(notifications(&app, "alice").await.len(), 1);
    app.advance(60 * DAY).await;
    assert_eq!(run_job(&app, "cleanup-notifications").await, 1, "the unread one, after 90 days");
    assert!(notifications(&app, "alice").await.is_empty());
    assert_eq!(run_job(&app, "cleanup-notifications").await, 0);
}

#[tokio::test]
async fn jobs_run_for_admins_only_and_unknown_jobs_are_404() {
    let app = TestApp::spawn().await;
    let (s, _) = app.post("/api/telegram/admin/jobs/expire-tokens/run/", &app.jwt("s", "support"), json!({})).await;
    assert_eq!(s, 403);
    let (s, body) = app.post("/api/telegram/admin/jobs/reboot/run/", &app.jwt("root", "admin"), json!({})).await;
    assert_eq!((s, body["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn revoke_removes_the_member_revokes_tokens_and_a_second_revoke_counts_zero() {
    let app = TestApp::spawn().await;
    app.member("alice", "TX-V1", ALICE).await;
    let unused = app.paid("alice", "TX-V2").await;
    app.fake().clear_calls();

    let body = json!({"user_id": "alice", "reason": "chargeback"});
    let (s, _) = app.post("/api/telegram/revoke-access/", &app.jwt("s", "support"), body.clone()).await;
    assert_eq!(s, 403, "support may not revoke");
    let (s, answer) = app.post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), body.clone()).await;
    assert_eq!((s, answer), (200, json!({"success": true, "revoked_count": 1})));
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);
    let status = app.status_of("alice").await;
    assert_eq!(
        (status["has_active_subscription"].clone(), status["memberships"][0]["status"].clone()),
        (json!(false), json!("revoked"))
    );
    assert_eq!(kinds(&notifications(&app, "alice").await)[0], "access_revoked");
    assert!(app.texts_to(ALICE).last().unwrap().contains("chargeback"));

    // The unused token of the other payment is revoked too.
    app.start_command(ALICE, unused["token"].as_str().unwrap()).await;
    assert!(app.fake().calls_to("createChatInviteLink").is_empty());

    let (_, again) = app.post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), body).await;
    assert_eq!(again["revoked_count"], 0);
    let (s, _) = app
        .post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), json!({"user_id": "alice", "reason": " "}))
        .await;
    assert_eq!(s, 400, "a reason is required");
}

#[tokio::test]
async fn a_member_who_expired_comes_back_by_paying_again_and_the_ban_is_lifted_first() {
    let app = TestApp::spawn().await;
    app.member("alice", "TX-B1", ALICE).await;
    app.advance(31 * DAY).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);
    app.fake().clear_calls();

    let again = app.paid("alice", "TX-B2").await;
    app.start_command(ALICE, again["token"].as_str().unwrap()).await;
    let methods: Vec<String> = app.fake().calls().iter().map(|c| c.method.clone()).collect();
    assert_eq!(methods, ["unbanChatMember", "createChatInviteLink", "sendMessage"], "unban, then invite");
    let link = app.last_invite_link().unwrap();
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 1);
    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], true);
    assert_eq!(status["memberships"][0]["days_remaining"], 30, "a new period from the new join");
}

#[tokio::test]
async fn stats_after_a_scripted_history_equal_the_hand_count() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    let admin = app.jwt("root", "admin");
    app.member("alice", "TX-S1", ALICE).await; // token used, 1 invite accepted, 1 member
    let bob = app.paid("bob", "TX-S2").await;
    app.start_command(BOB, bob["token"].as_str().unwrap()).await;
    app.start_command(BOB, bob["token"].as_str().unwrap()).await; // 2 more invites, not accepted
    let carol = app.paid("carol", "TX-S3").await; // pending
    app.post("/api/telegram/generate-token/", &app.jwt("carol", "user"), json!({"payment_id": carol["payment_id"]}))
        .await; // replaces it

    let (s, mut stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    assert_eq!(s, 200);
    // Nothing sold in Stars: zeros, twelve months (the Stars tests count them); the web revenue,
    // the months of members and the hours of attempts are the console's tests'.
    let stars = stats.as_object_mut().unwrap().remove("stars").unwrap();
    assert_eq!((stars["revenue_total"].as_i64(), stars["months"].as_array().map(Vec::len)), (Some(0), Some(12)));
    let web = stats.as_object_mut().unwrap().remove("web").unwrap();
    assert_eq!(web["revenue_total_cents"], 0, "no offer has a web price here");
    let months = stats.as_object_mut().unwrap().remove("members_by_month").unwrap();
    assert_eq!(months[0]["active"], 1, "this month: as it is now");
    let hours = stats["attempts"].as_object_mut().unwrap().remove("by_hour").unwrap();
    assert_eq!(hours.as_array().map(Vec::len), Some(24));
    assert_eq!(
        stats,
        json!({
            "tokens": {"total": 4, "pending": 2, "used": 1, "recent": 4},
            "invites": {"total": 3, "accepted": 1, "acceptance_rate": 33.33},
            "members": {"total": 1, "active": 1, "recent_joins": 1},
            "attempts": {"refused_tokens": 0, "declined_joins": 0, "removed_strangers": 0},
        })
    );

    app.post("/api/telegram/revoke-access/", &admin, json!({"user_id": "alice", "reason": "test"})).await;
    app.advance(8 * DAY).await;
    assert_eq!(run_job(&app, "expire-tokens").await, 2);
    let (_, stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    assert_eq!(stats["tokens"], json!({"total": 4, "pending": 0, "used": 1, "recent": 0}));
    assert_eq!(stats["members"], json!({"total": 1, "active": 0, "recent_joins": 0}));
    let (s, _) = app.get("/api/telegram/admin/stats/", &app.jwt("s", "support")).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn stats_count_the_suspicious_access_attempts_of_the_last_24_hours() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    let admin = app.jwt("root", "admin");
    app.member("alice", "TX-F1", ALICE).await;
    // Two /start with tokens that are not valid, one with a made-up one.
    app.start_command(BOB, "not-a-real-token").await;
    app.start_command(BOB, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    // Alice's invite link used by a stranger: declined; a stranger who got in anyway: removed.
    let link = app.last_invite_link().unwrap();
    app.webhook(updates::join_request(app.update_id(), CHANNEL, 6099, &link)).await;
    app.webhook(updates::joined(app.update_id(), CHANNEL, 6098, None)).await;
    app.drain().await;
    let (_, mut stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    let hours = stats["attempts"].as_object_mut().unwrap().remove("by_hour").unwrap();
    assert_eq!(
        hours[0]["refused_tokens"].as_i64().unwrap() + hours[1]["refused_tokens"].as_i64().unwrap(),
        2,
        "this hour's"
    );
    assert_eq!(stats["attempts"], json!({"refused_tokens": 2, "declined_joins": 1, "removed_strangers": 1}), "{stats}");

    // A day later they have aged out.
    app.advance(25 * 3600).await;
    let (_, mut stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    let hours = stats["attempts"].as_object_mut().unwrap().remove("by_hour").unwrap();
    assert!(hours.as_array().unwrap().iter().all(|h| h["refused_tokens"] == 0), "{hours}");
    assert_eq!(stats["attempts"], json!({"refused_tokens": 0, "declined_joins": 0, "removed_strangers": 0}));
}

#[tokio::test]
async fn the_audit_log_tells_a_whole_flow_newest_first() {
    let app = TestApp::spawn().await;
    let issued = app.paid("alice", "TX-A1").await;
    app.start_command(BOB, "not-a-real-token").await;
    app.start_command(ALICE, issued["token"].as_str().unwrap()).await;
    let link = app.last_invite_link().unwrap();
    app.webhook(updates::join_request(app.update_id(), CHANNEL, BOB, &link)).await;
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await;
    app.webhook(updates::left(app.update_id(), CHANNEL, ALICE)).await;
    app.post("/api/telegram/revoke-access/", &app.jwt("root", "admin"), json!({"user_id": "alice", "reason": "test"}))
        .await;

    let (s, entries) = app.get("/api/telegram/admin/audit/?user_id=alice", &app.jwt("root", "admin")).await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "access_revoked",
            "member_left",
            "member_joined",
            "join_approved",
            "join_declined",
            "invite_created",
            "token_redeemed",
            "token_issued",
            "payment_validated",
            "payment_submitted"
        ]
    );
    let declined = entries.as_array().unwrap().iter().find(|e| e["action"] == "join_declined").unwrap();
    assert_eq!(declined["telegram_user_id"], BOB, "who tried");
    assert_eq!(declined["details"]["link_of_telegram_user"], ALICE, "whose link leaked");
    assert_eq!(entries[0]["actor"], "user:root");
    assert_eq!(entries[0]["details"]["reason"], "test");

    let (_, all) = app.get("/api/telegram/admin/audit/?limit=100", &app.jwt("root", "admin")).await;
    assert!(all.as_array().unwrap().iter().any(|e| e["action"] == "token_refused" && e["telegram_user_id"] == BOB));
    let (s, _) = app.get("/api/telegram/admin/audit/", &app.jwt("s", "support")).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn a_member_who_blocked_the_bot_is_still_warned_in_the_app_and_by_mail() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    app.member("alice", "TX-BL1", ALICE).await;
    app.drain().await;
    let mails_before = std::fs::read_dir(app.data.0.join("outbox")).unwrap().count();
    app.fake().fail_next("sendMessage", support::Fault::BotBlocked, 10);
    app.advance(28 * DAY).await;
    assert_eq!(run_job(&app, "expiration-warnings").await, 1);
    app.drain().await;
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "a blocked bot is not retried");
    assert_eq!(kinds(&notifications(&app, "alice").await)[0], "expiration_warning");
    let mails_after = std::fs::read_dir(app.data.0.join("outbox")).unwrap().count();
    assert_eq!(mails_after, mails_before + 1, "the warning went by mail");
}

/// Alice paid, joined and was revoked; suppose the ban did not hold (an admin re-added her).
async fn revoked_but_back_in(app: &TestApp, tx: &str) {
    app.member("alice", tx, ALICE).await;
    app.post(
        "/api/telegram/revoke-access/",
        &app.jwt("root", "admin"),
        json!({"user_id": "alice", "reason": "refund"}),
    )
    .await;
    app.drain().await;
    app.fake().set_member_status(ALICE, "member");
}

#[tokio::test]
async fn reconciliation_removes_who_is_still_in_and_records_who_left() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0"), ("RECONCILE_PER_SECOND", "1000")]).await;
    app.member("bob", "TX-RC2", BOB).await;
    revoked_but_back_in(&app, "TX-RC1").await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);
    // And Bob left without us noticing.
    app.fake().set_member_status(BOB, "left");
    app.advance(3600).await;

    // Flood control on the first check: the run stops without guessing anything.
    app.fake().fail_next("getChatMember", support::Fault::RetryAfter(1), 1);
    assert_eq!(run_job(&app, "reconcile-members").await, 0, "nothing checked, nothing changed");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);

    assert_eq!(run_job(&app, "reconcile-members").await, 2, "one removal, one departure recorded");
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 2, "removed again");
    assert!(!app.calls_for_user("getChatMember", ALICE).is_empty());
    let (_, audit) = app.get("/api/telegram/admin/audit/?user_id=bob", &app.jwt("root", "admin")).await;
    assert_eq!(audit[0]["action"], "member_left");
    assert_eq!(audit[0]["details"]["noticed_by"], "reconciliation");

    // Now consistent: a second run fixes nothing.
    assert_eq!(run_job(&app, "reconcile-members").await, 0);
}

#[tokio::test]
async fn reconciliation_removes_an_administrator_demoted_unnoticed_who_never_paid() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0"), ("RECONCILE_PER_SECOND", "1000")]).await;
    app.member("frank", "TX-STAFF", 4647).await;
    app.fake().set_member_status(4646, "administrator");
    app.fake().set_member_status(4647, "administrator");
    assert_eq!(run_job(&app, "reconcile-members").await, 0, "the administrators are noted");
    // Both demoted, their updates lost; only 4647 paid.
    app.fake().set_member_status(4646, "member");
    app.fake().set_member_status(4647, "member");
    assert_eq!(run_job(&app, "reconcile-members").await, 1);
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", 4646).len(), 1, "removed");
    assert_eq!(app.calls_for_user("unbanChatMember", 4646).len(), 1, "not banned for good");
    assert!(app.calls_for_user("banChatMember", 4647).is_empty(), "a paying member stays");
    assert_eq!(run_job(&app, "reconcile-members").await, 0, "once");
}

#[tokio::test]
async fn reconciliation_stops_when_its_time_is_up_without_guessing() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0"), ("RECONCILE_MAX_SECONDS", "0")]).await;
    revoked_but_back_in(&app, "TX-RC3").await;
    app.advance(3600).await;

    assert_eq!(run_job(&app, "reconcile-members").await, 0, "no time to check anyone");
    assert!(app.calls_for_user("getChatMember", ALICE).is_empty(), "nothing checked");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "only the revoke's removal");
}

/// A run asked for as the API writes it, not yet started by the runner.
async fn asked_for(app: &TestApp, job: &str, status: &str) -> String {
    use telegate_core::domain::{Job, RequestedRun, RunId};
    use telegate_core::ports::JobSlot;
    let now = app.now();
    let run = RequestedRun::queued(RunId::generate(now).unwrap(), Job::parse(job).unwrap(), "user:root", now);
    let run = if status == "running" { run.started(now) } else { run };
    let store = &app.running().ports.store;
    store.put_requested_run(&run).await.unwrap();
    let until = now + chrono::Duration::minutes(15);
    assert_eq!(store.claim_job(job, JobSlot::Request, run.run_id.as_str(), now, until).await.unwrap(), None);
    run.run_id.to_string()
}

#[tokio::test]
async fn one_run_of_a_job_is_asked_for_at_a_time_and_none_is_left_pending_by_a_stop_or_a_time_limit() {
    let mut app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    let admin = app.jwt("root", "admin");
    // Serving: the start's own look for runs left pending is over.
    assert_eq!(app.get("/api/telegram/admin/stats/", &admin).await.0, 200);
    // Asked for and not started yet: asking again answers that run.
    let queued = asked_for(&app, "expire-tokens", "queued").await;
    for _i in 0..30 {
        let (status, run) = app.post("/api/telegram/admin/jobs/expire-tokens/run/", &admin, json!({})).await;
        assert_eq!((status, run["run_id"].as_str()), (202, Some(queued.as_str())), "attempt {_i}: {run}");
    }
    // Left queued, and another left running, by a process that stopped.
    let running = asked_for(&app, "cleanup-notifications", "running").await;
    app.restart().await;
    let read = |id: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            for _ in 0..300 {
                let (_, run) = app.get(&format!("/api/telegram/admin/job-runs/{id}/"), &admin).await;
                if run["status"] != "queued" && run["status"] != "running" {
                    return run;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("run {id} still pending");
        }
    };
    assert_eq!(read(queued.clone()).await["status"], "done", "the queued run ran after the restart");
    let stopped = read(running).await;
    assert_eq!(stopped["status"], "failed", "{stopped}");
    // A new request is taken now that none is pending.
    let (status, run) = app.post("/api/telegram/admin/jobs/expire-tokens/run/", &admin, json!({})).await;
    assert!(status == 202 && run["run_id"] != json!(queued), "{run}");
    // A run killed by its time limit (a function's timeout) reads failed, not running for ever.
    let killed = asked_for(&app, "reconcile-stars", "running").await;
    app.advance(16 * 60).await;
    assert_eq!(read(killed).await["status"], "failed");
}

#[tokio::test]
async fn a_scheduled_run_waits_while_a_run_asked_for_holds_the_job() {
    use telegate_core::ports::JobSlot;
    let app = TestApp::spawn().await;
    app.member("alice", "TX-SLOT", ALICE).await;
    let store = app.running().ports.store.clone();
    // A run asked for is at expire-subscriptions (elsewhere) when its end and midnight pass.
    let now = app.now();
    let held =
        store.claim_job("expire-subscriptions", JobSlot::Run, "run-elsewhere", now, now + chrono::Duration::days(40));
    assert_eq!(held.await.unwrap(), None);
    app.advance(31 * DAY).await;
    app.drain().await;
    assert!(app.calls_for_user("banChatMember", ALICE).is_empty(), "not run twice at once");
    store.release_job("expire-subscriptions", JobSlot::Run, "run-elsewhere").await.unwrap();
    app.advance(60).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "run at the next tick");
}

#[tokio::test]
async fn a_job_run_asked_through_the_api_answers_at_once_and_is_read_back_by_its_id() {
    let app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0")]).await;
    app.member("alice", "TX-J1", ALICE).await;
    app.advance(31 * DAY).await;
    let admin = app.jwt("root", "admin");
    let run = app.run_job("expire-subscriptions").await;
    assert_eq!(
        (run["status"].as_str(), run["processed"].as_u64(), run["complete"].as_bool()),
        (Some("done"), Some(1), Some(true)),
        "{run}"
    );
    assert_eq!(run["requested_by"], "user:root");
    assert!(
        run["requested_at"].as_str() <= run["started_at"].as_str()
            && run["started_at"].as_str() <= run["finished_at"].as_str(),
        "{run}"
    );
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "the run did the work");
    let (status, again) =
        app.get(&format!("/api/telegram/admin/job-runs/{}/", run["run_id"].as_str().unwrap()), &admin).await;
    assert_eq!((status, &again), (200, &run), "read back as it ended");

    // Only admins ask or read; an unknown job or run is 404.
    let user = app.jwt("alice", "user");
    let (status, _) = app.post("/api/telegram/admin/jobs/expire-tokens/run/", &user, json!({})).await;
    assert_eq!(status, 403);
    let (status, _) =
        app.get(&format!("/api/telegram/admin/job-runs/{}/", run["run_id"].as_str().unwrap()), &user).await;
    assert_eq!(status, 403);
    let (status, body) = app.post("/api/telegram/admin/jobs/reboot/run/", &admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    for unknown in ["0000019ab9f3a1c00000ffff", "not%20an%20id"] {
        let (status, _) = app.get(&format!("/api/telegram/admin/job-runs/{unknown}/"), &admin).await;
        assert_eq!(status, 404, "{unknown}");
    }
}

/// More members than one page of the sweep (500) whose periods end at the same instant (an import,
/// a bulk change of end dates): one run ends them all, instead of one page a day.
#[tokio::test]
async fn members_ending_at_the_same_instant_all_expire_in_one_run() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now();
    let (started, end) = (now - chrono::Duration::days(31), now - chrono::Duration::hours(1));
    let mut records = Vec::new();
    for i in 0..501 {
        let (user, tx) = (format!("same-end-{i}"), format!("TX-SAME-END-{i}"));
        records.extend(telegate_testkit::samples::paid_member(&user, 7_700_000 + i, &tx, started, end));
    }
    app.importer().await.import(&records).await.unwrap();
    assert_eq!(run_job(&app, "expire-subscriptions").await, 501);
}
