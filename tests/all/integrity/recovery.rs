//! What a killed handler, a job out of time or a restart leaves is done afterwards.

use serde_json::json;

use super::ALICE;
use crate::support::{self, Fault, TestApp, on_store, updates};

/// The webhook function is killed while it handles an update (its claim is never completed nor
/// released): Telegram's retry after the function's timeout is processed, not eaten.
async fn an_update_whose_handler_was_killed_is_processed_on_retry(app: TestApp) {
    let issued = app.paid("alice", "TX-KILLED").await;
    let id = app.update_id();
    let start = updates::text(id, ALICE, "fr", &format!("/start {}", issued["token"].as_str().unwrap()));
    let now = app.running().ports.clock.now();
    assert!(app.running().ports.store.claim_update(id, now).await.unwrap(), "the killed handler's claim");
    assert_eq!(app.webhook(start.clone()).await, 200);
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "not twice while the lease holds");
    app.advance(31).await;
    assert_eq!(app.webhook(start.clone()).await, 200);
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "the retry is processed");
    assert_eq!(app.webhook(start).await, 200);
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1, "and only once");
}

/// A job stops starting batches when its time is up; what it left is done by the next run.
#[tokio::test]
async fn a_job_cut_short_by_its_time_limit_leaves_the_rest_to_the_next_run() {
    let mut app = TestApp::spawn_with(&[("TELEGATE_SCHEDULER", "0"), ("JOB_MAX_SECONDS", "0")]).await;
    app.member("alice", "TX-CUT", ALICE).await;
    app.advance(31 * 86_400).await;
    let run = app.run_job("expire-subscriptions").await;
    assert_eq!(
        (run["processed"].clone(), run["complete"].clone()),
        (json!(0), json!(false)),
        "no time: nothing started"
    );
    assert_eq!(app.status_of("alice").await["memberships"][0]["status"], "active", "not touched half-way");
    app.env.insert("JOB_MAX_SECONDS".into(), "240".into());
    app.restart().await;
    app.advance(31 * 86_400).await; // the test clock starts again at the real time after a restart
    let run = app.run_job("expire-subscriptions").await;
    assert_eq!((run["processed"].clone(), run["complete"].clone()), (json!(1), json!(true)), "the next run does it");
    app.drain().await;
    assert_eq!(app.fake().member_status(ALICE), "kicked");
}

/// `serve`'s queue keeps its effects in the store: what a crash left queued is carried out when
/// the host starts again, and dead letters stay visible to admins, across restarts.
#[tokio::test]
async fn the_local_queue_survives_a_restart_and_shows_its_dead_letters() {
    use telegate_core::adapters::local_queue::QueueLog;
    use telegate_core::ports::{Effect, Envelope};
    let mut app = TestApp::spawn().await;
    app.running.take().expect("running").stop().await.expect("stopped");
    {
        // What a crash leaves: an effect queued and never carried out.
        let store = telegate_core::adapters::sqlite::SqliteStore::open(&app.data.0.join("telegate.sqlite3")).unwrap();
        let left = Envelope {
            idempotency_key: "left-by-a-crash".into(),
            effect: Effect::SendMessage { chat_id: ALICE, text: "still sent".into() },
        };
        store.push(&[left], chrono::Utc::now()).await.unwrap();
    }
    app.restart().await;
    app.drain().await;
    assert_eq!(app.texts_to(ALICE), ["still sent"]);

    // A permanent refusal goes to the dead letters at once (a 5xx would take five tries).
    app.fake().fail_next("declineChatJoinRequest", Fault::BotBlocked, 1);
    let who = telegate_core::domain::TelegramUserId::parse(ALICE).unwrap();
    let doomed =
        Envelope { idempotency_key: "doomed".into(), effect: Effect::DeclineJoinRequest { telegram_user_id: who } };
    app.running().ports.queue.as_ref().unwrap().enqueue(vec![doomed]).await.unwrap();
    app.drain().await;
    app.restart().await;
    let (status, dead) = app.get("/api/telegram/admin/dead-letters/", &app.jwt("root", "admin")).await;
    assert_eq!(status, 200);
    let dead = dead.as_array().expect("a list").clone();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["envelope"]["idempotency_key"], "doomed");
    assert!(dead[0]["error"].as_str().unwrap().contains("cannot be reached"), "{dead:?}");
    assert_eq!(app.get("/api/telegram/admin/dead-letters/", &app.jwt("bob", "user")).await.0, 403);
}

support::on_both_stores!(
    on_store =>
    an_update_whose_handler_was_killed_is_processed_on_retry,
);
