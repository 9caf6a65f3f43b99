//! The store is the one truth about who may be in the channel: a queued effect carries out the
//! membership as it is when the effect runs, and a ban is never lost between commit and queue.

use crate::support;

use std::time::Duration;

use crate::support::{CHANNEL, Fault, TestApp, on_store, updates};
use serde_json::json;

const ALICE: i64 = 8201;

/// Waits (boundedly: 30 s, for a stand-in busy with the other tests of the binary) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1200 {
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
    // Long enough for the renewal below to finish first, even on a loaded machine (the renewal
    // goes through the queue too; on a busy stand-in it took more than 5 s once).
    app.fake().fail_next("banChatMember", Fault::RetryAfter(15), 1);
    app.advance(30 * 86_400 + 60).await; // the expiry job runs: the ban meets flood control
    until("the ban met flood control", || app.calls_for_user("banChatMember", ALICE).len() == 1).await;

    let renewal = app.paid("alice", "TX-STALE-2").await;
    assert_eq!(app.start_command(ALICE, renewal["token"].as_str().unwrap()).await, 200);
    let link = app.last_invite_link().expect("a fresh invite");
    assert_eq!(app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await, 200);
    until("approved", || app.fake().member_status(ALICE) == "member").await;
    assert_eq!(app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await, 200);
    app.drain().await;
    // SQS's counts are approximate: wait (boundedly, 30 s) until the ban's retry has been seen and
    // dropped; moto may be busy with the other tests of the binary.
    for _ in 0..300 {
        if audit_actions(&app).await.contains(&"effect_dropped".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audit_actions(&app).await.contains(&"effect_dropped".to_owned()), "the dropped ban is audited");
    assert_eq!(app.fake().member_status(ALICE), "member", "the paying member is still in the channel");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1, "only the attempt flood control refused");
    let status = app.status_of("alice").await;
    assert_eq!(status["has_active_subscription"], true, "{status}");
}

/// An approval queued before a revoke must not let the revoked account in when it finally runs.
async fn an_approval_queued_before_a_revoke_becomes_a_decline(app: TestApp) {
    let issued = app.paid("alice", "TX-STALE-3").await;
    assert_eq!(app.start_command(ALICE, issued["token"].as_str().unwrap()).await, 200);
    let link = app.last_invite_link().expect("an invite");
    app.fake().fail_next("approveChatJoinRequest", Fault::RetryAfter(4), 1);
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

mod lost_between_commit_and_queue {
    //! The process dies (or the queue refuses) right after expiry or revoke committed: the
    //! removal's intent, written in the same transaction, is queued again by the next job run.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use chrono::{Duration, Utc};
    use telegate_core::adapters::clock::TestClock;
    use telegate_core::adapters::outbox::{OutboxEvents, OutboxMailer};
    use telegate_core::adapters::telegram::BotApi;
    use telegate_core::app::effects::{Consumer, EffectRunner, Outcome};
    use telegate_core::app::{App, Ports};
    use telegate_core::auth::{Caller, Role};
    use telegate_core::config::{Secret, Settings};
    use telegate_core::domain::{Job, Lang, Membership, Payment, PaymentId, PaymentStatus, TelegramUserId, UserId};
    use telegate_core::ports::{Clock, Effect, Envelope, Queue, QueueError, Store};
    use telegate_testkit::fake_telegram::FakeTelegram;

    use crate::support::{self, BOT_TOKEN, CHANNEL, JWT_SECRET, WEBHOOK_SECRET};

    /// A queue that refuses while `down`, and keeps what it accepted.
    #[derive(Default)]
    pub(super) struct FlakyQueue {
        pub(super) down: AtomicBool,
        pub(super) sent: std::sync::Mutex<Vec<Envelope>>,
    }

    #[async_trait]
    impl Queue for FlakyQueue {
        async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(QueueError("injected: the queue is down".into()));
            }
            self.sent.lock().unwrap().extend(envelopes);
            Ok(())
        }
    }

    impl FlakyQueue {
        fn removals_of(&self, account: i64) -> Vec<Envelope> {
            self.sent
                .lock()
                .unwrap()
                .iter()
                .filter(|e| matches!(e.effect, Effect::RemoveMember { telegram_user_id, .. } if telegram_user_id.get() == account))
                .cloned()
                .collect()
        }
    }

    /// The app on `store`, with the fake Bot API, a queue that can be down, the test clock, and
    /// the consumer that carries out what the queue accepted.
    pub(super) struct Rig {
        pub(super) running: telegate_testkit::fake_telegram::RunningFake,
        pub(super) app: App,
        pub(super) queue: Arc<FlakyQueue>,
        pub(super) clock: Arc<TestClock>,
        pub(super) consumer: Consumer,
        _outbox: support::TempDir,
    }

    impl Rig {
        pub(super) async fn new(store: Arc<dyn Store>) -> Self {
            let running = FakeTelegram::start().await.unwrap();
            let env = [
                ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
                ("TELEGRAM_BOT_USERNAME", "telegate_fake_bot".to_owned()),
                ("TELEGRAM_CHANNEL_ID", CHANNEL.to_string()),
                ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
                ("TELEGRAM_API_URL", running.url.clone()),
                ("JWT_HS256_SECRET", JWT_SECRET.to_owned()),
            ];
            let settings = Settings::from_env(&|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
            let telegram = Arc::new(
                BotApi::new(&Secret::new(BOT_TOKEN), &running.url, CHANNEL, std::time::Duration::from_secs(5)).unwrap(),
            );
            let clock = Arc::new(TestClock::default());
            let queue = Arc::new(FlakyQueue::default());
            let app = App::new(&Ports {
                settings: Arc::new(settings),
                store: store.clone(),
                telegram: Some(telegram.clone()),
                queue: Some(queue.clone()),
                clock: clock.clone(),
                jobs: Some(Arc::new(telegate_core::adapters::local_jobs::LocalJobs::channel().0)),
            })
            .unwrap();
            let outbox = support::TempDir::new();
            let mailer = Arc::new(OutboxMailer::new(outbox.0.clone(), "t <t@localhost>").unwrap());
            let events = Arc::new(OutboxEvents::new(outbox.0.join("events.jsonl")).unwrap());
            let consumer =
                telegate_core::app::consumer(EffectRunner::new(telegram, mailer, events), &store, clock.clone());
            Self { running, app, queue, clock, consumer, _outbox: outbox }
        }
    }

    /// An active member of `user` on `account`, written through the store's own operations.
    async fn active_member(store: &Arc<dyn Store>, user: &str, account: i64) -> Membership {
        let now = Utc::now();
        let payment = Payment {
            id: PaymentId::generate(now).unwrap(),
            user_id: UserId::parse(user).unwrap(),
            email: None,
            offer_id: "monthly".into(),
            transaction_id: format!("TX-LOST-{user}"),
            user_info: None,
            status: PaymentStatus::Validated,
            admin_notes: None,
            reject_reason: None,
            created_at: now,
            updated_at: now,
            reviewed_by: None,
            refund_note: None,
            lang: Lang::Fr,
        };
        store.insert_payment(&payment).await.unwrap();
        let (_, record) = support::records::token(&payment, now);
        store.issue_token(&record).await.unwrap();
        let who = TelegramUserId::parse(account).unwrap();
        let bound = store.bind_token(&record.hash, who, now).await.unwrap().unwrap();
        let m = support::records::pending_membership(&bound, who, now);
        store.open_membership(&record.hash, &m).await.unwrap();
        store.activate_membership(&m.id, now, now, None).await.unwrap().unwrap()
    }

    async fn no_ban_is_lost(store: Arc<dyn Store>) {
        let rig = Rig::new(store.clone()).await;
        let (fake, app, queue, clock, consumer) = (&rig.running.fake, &rig.app, &rig.queue, &rig.clock, &rig.consumer);
        let (alice, bob) = (8301, 8302);
        active_member(&store, "lost-alice", alice).await;
        active_member(&store, "lost-bob", bob).await;
        fake.set_member_status(alice, "member");
        fake.set_member_status(bob, "member");

        // The queue is down right after each commit: expiry of alice, revoke of bob.
        queue.down.store(true, Ordering::SeqCst);
        let admin = Caller { user_id: UserId::parse("root").unwrap(), email: None, role: Role::Admin };
        assert!(
            app.ending.revoke_access(&admin, "lost-bob", "chargeback").await.is_err(),
            "the queue fault is reported"
        );
        clock.advance(31 * 86_400).unwrap();
        assert!(app.jobs.run_job(Job::ExpireSubscriptions, "test").await.is_err(), "the queue fault is reported");
        assert!(
            app.ending.revoke_access(&admin, "lost-bob", "again").await.unwrap() == 0,
            "a retry finds nothing to do"
        );
        assert_eq!(
            app.jobs.run_job(Job::ExpireSubscriptions, "test").await.unwrap().processed,
            0,
            "a job with the queue down"
        );
        assert!(queue.sent.lock().unwrap().is_empty());

        // The queue is back: the next job run, a few minutes later, queues both removals again.
        queue.down.store(false, Ordering::SeqCst);
        clock.advance(6 * 60).unwrap();
        app.jobs.run_job(Job::ExpireTokens, "test").await.unwrap();
        let removals: Vec<Envelope> = [queue.removals_of(alice), queue.removals_of(bob)].concat();
        assert_eq!(removals.len(), 2, "both removals relayed: {removals:?}");
        for envelope in &removals {
            assert_eq!(consumer.handle(envelope).await, Outcome::Done);
        }
        assert_eq!((fake.member_status(alice).as_str(), fake.member_status(bob).as_str()), ("kicked", "kicked"));

        // Settled: nothing is relayed again, and a redelivery does nothing.
        assert!(store.pending_intents(clock.now() + Duration::days(1), 100).await.unwrap().is_empty());
        app.jobs.run_job(Job::ExpireTokens, "test").await.unwrap();
        assert_eq!(queue.removals_of(alice).len() + queue.removals_of(bob).len(), 2, "not relayed twice");
        assert_eq!(consumer.handle(&removals[0]).await, Outcome::AlreadyDone);
        assert_eq!(fake.calls_to("banChatMember").len(), 2);
    }

    #[tokio::test]
    async fn no_ban_is_lost_between_commit_and_queue_on_sqlite() {
        let dir = support::TempDir::new();
        let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("lost.sqlite3")).unwrap();
        no_ban_is_lost(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn no_ban_is_lost_between_commit_and_queue_on_dynamodb() {
        no_ban_is_lost(Arc::new(support::dynamo_store().await)).await;
    }
    /// A job run that cannot be started (the rig's runner is gone) is a clear failure, never a
    /// queued run that nothing will run.
    #[tokio::test]
    async fn a_job_run_that_cannot_be_started_is_refused_not_left_queued() {
        let dir = support::TempDir::new();
        let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("runs.sqlite3")).unwrap();
        let rig = Rig::new(Arc::new(store)).await;
        let admin = Caller { user_id: UserId::parse("root").unwrap(), email: None, role: Role::Admin };
        let refused = rig.app.job_runs.request_job_run(&admin, "expire-tokens").await;
        assert!(matches!(refused, Err(telegate_core::app::AppError::Unavailable(_))), "{refused:?}");
        let user = Caller { role: Role::User, ..admin };
        assert!(matches!(
            rig.app.job_runs.request_job_run(&user, "expire-tokens").await,
            Err(telegate_core::app::AppError::Forbidden(_))
        ));
    }
}

/// Transaction ids that only look different (case, spaces, invisible characters, compatibility
/// forms) are one transaction; the payer's own spelling is kept for display.
async fn look_alike_transaction_ids_are_one_transaction(app: TestApp) {
    let create = |who: &'static str, tx: &'static str| {
        let jwt = app.jwt(who, "user");
        let app = &app;
        async move {
            app.post("/api/payments/pending-payments/create/", &jwt, json!({"offer_id": "m", "transaction_id": tx}))
                .await
        }
    };
    let (status, _) = create("alice", "TX-1").await;
    assert_eq!(status, 201);
    for alike in ["tx-1", "TX-1\u{200B}", "TX\u{00A0}-1", "ＴＸ－１", "T X-1", "\u{FEFF}TX-1"] {
        let (status, body) = create("bob", alike).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("transaction_id_taken")), "{alike:?}");
    }
    let (status, body) = create("bob", "\u{200B}\u{200B}").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")), "nothing visible: {body}");
    let (_, mine) = app.get("/api/payments/pending-payments/", &app.jwt("alice", "user")).await;
    assert_eq!(mine[0]["transaction_id"], "TX-1", "shown as typed");

    // Support may correct the spelling while validating: the same key is no conflict.
    let (_, p) = create("carol", "Ab-9").await;
    let path = format!("/api/payments/admin/pending-payments/{}/validate/", p["id"].as_str().unwrap());
    let (status, body) = app.post(&path, &app.jwt("s", "support"), json!({"transaction_id": "AB-9"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = create("dave", "ab-9").await;
    assert_eq!(status, 409);
}

#[test]
fn an_older_embedded_store_gets_the_keys_of_its_transaction_ids() {
    let dir = support::TempDir::new();
    let path = dir.0.join("old.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, step) in ["v1", "v2", "v3", "v4", "v5", "v6"].iter().enumerate() {
            let sql = std::fs::read_to_string(format!(
                "{}/shared/src/adapters/sqlite/migrations/{step}.sql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            conn.execute_batch(&sql).unwrap();
            conn.pragma_update(None, "user_version", i as i64 + 1).unwrap();
        }
        for (id, tx) in [("01a0000000000001aaaaaaaa", "TX-OLD"), ("01a0000000000002aaaaaaaa", "tx-old")] {
            conn.execute(
                "INSERT INTO payments (id, user_id, offer_id, transaction_id, status, created_at, updated_at, lang)
                 VALUES (?1, 'u', 'm', ?2, 'transaction_submitted', '2026-01-01T00:00:00.000000Z',
                         '2026-01-01T00:00:00.000000Z', 'fr')",
                [id, tx],
            )
            .unwrap();
        }
    }
    telegate_core::adapters::sqlite::SqliteStore::open(&path).expect("migrated");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let keys: Vec<String> = conn
        .prepare("SELECT transaction_key FROM payments ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, ["tx-old", "tx-old#01a0000000000002aaaaaaaa"], "both kept, the later one made unique");
}

#[tokio::test]
async fn a_payer_sees_the_status_and_the_reason_not_supports_internal_notes() {
    let app = TestApp::spawn().await;
    let user = app.jwt("alice", "user");
    let (_, p) = app
        .post("/api/payments/pending-payments/create/", &user, json!({"offer_id": "m", "transaction_id": "TX-NOTES"}))
        .await;
    let path = format!("/api/payments/admin/pending-payments/{}/reject/", p["id"].as_str().unwrap());
    let (status, _) = app.post(&path, &app.jwt("s", "support"), json!({"reason": "no such transfer"})).await;
    assert_eq!(status, 200);
    let (_, mine) = app.get("/api/payments/pending-payments/", &user).await;
    assert_eq!(
        (mine[0]["status"].as_str(), mine[0]["reject_reason"].as_str()),
        (Some("rejected"), Some("no such transfer"))
    );
    assert!(mine[0].get("admin_notes").is_none() && mine[0].get("reviewed_by").is_none(), "{mine}");
    let (_, all) = app.get("/api/payments/admin/pending-payments/", &app.jwt("s", "support")).await;
    assert_eq!(all[0]["reviewed_by"], "s", "support still sees who reviewed it");
}

#[tokio::test]
async fn a_path_id_that_is_not_utf8_gets_the_json_error_shape() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/api/payments/admin/pending-payments/%FF/validate/", app.base))
        .bearer_auth(app.jwt("s", "support"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");
}

#[tokio::test]
async fn the_webhook_checks_the_secret_before_reading_the_body() {
    let app = TestApp::spawn().await;
    let big = vec![b' '; 2 * 1024 * 1024];
    let res = app
        .http
        .post(format!("{}/api/telegram/webhook", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401, "not 413: the body of a stranger is never read");
}

#[tokio::test]
async fn the_test_clock_refuses_a_move_that_would_overflow_time() {
    let app = TestApp::spawn().await;
    let (status, body) =
        app.request(reqwest::Method::POST, "/_local/clock/advance", None, Some(json!({"seconds": i64::MAX}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_input")), "{body}");
    // And the host still answers.
    assert_eq!(app.status_of("alice").await["has_active_subscription"], false);
    app.advance(86_400).await;
}

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

mod whole_flow_under_faults {
    //! The whole flow with every fault at once: the queue refuses right after commits, Telegram
    //! answers 429 for a while, a consumer dies holding an effect, a webhook dies holding an
    //! update. Afterwards the channel (as the fake Bot API keeps it) matches the store: every
    //! active member is in, every ended one is out, and nothing reached the dead letters.

    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use chrono::Duration;
    use serde_json::Value;
    use telegate_core::adapters::clock::TestClock;
    use telegate_core::app::effects::{Consumer, Outcome};
    use telegate_core::app::{App, SubmitPayment};
    use telegate_core::auth::{Caller, Role};
    use telegate_core::domain::{Job, Lang, TelegramUserId, Update, UserId};
    use telegate_core::ports::{Clock, Envelope, Store};

    use super::lost_between_commit_and_queue::{FlakyQueue, Rig};
    use crate::support::{self, CHANNEL, Fault, updates};

    /// SQS as the consumer sees it: every accepted envelope is delivered until it is settled;
    /// a retry comes back on the next round. Returns the dead letters.
    async fn pump(queue: &FlakyQueue, consumer: &Consumer, clock: &TestClock) -> Vec<(Envelope, String)> {
        let mut dead = Vec::new();
        for _ in 0..30 {
            let batch: Vec<Envelope> = std::mem::take(&mut *queue.sent.lock().unwrap());
            if batch.is_empty() {
                return dead;
            }
            for envelope in batch {
                match consumer.handle(&envelope).await {
                    Outcome::Done | Outcome::AlreadyDone | Outcome::Dropped(_) => {}
                    Outcome::Retry { .. } => queue.sent.lock().unwrap().push(envelope),
                    Outcome::Failed(why) | Outcome::GivenUp { reason: why, .. } => dead.push((envelope, why)),
                }
            }
            // Telegram's retry_after (1 s here) passes, in real time and on the app's clock.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            clock.advance(2).unwrap();
        }
        panic!("effects kept coming back: {:?}", queue.sent.lock().unwrap());
    }

    /// Delivers an update as Telegram does: again after a failure (the webhook answered 500).
    async fn deliver(app: &App, update: Value) {
        let update: Update = serde_json::from_value(update).unwrap();
        for _ in 0..3 {
            if app.bot.handle_update(&update).await.is_ok() {
                return;
            }
        }
        panic!("update {} never went through", update.update_id);
    }

    async fn flow(store: Arc<dyn Store>) {
        let rig = Rig::new(store.clone()).await;
        let (fake, app, queue, clock, consumer) = (&rig.running.fake, &rig.app, &rig.queue, &rig.clock, &rig.consumer);
        let support = Caller { user_id: UserId::parse("support").unwrap(), email: None, role: Role::Admin };
        let mut next_update = 5_000;
        let mut update_id = || {
            next_update += 1;
            next_update
        };

        // Four payers, four accounts, all let in: the queue refuses the first approval right
        // after its decision was committed (the webhook answers 500 and Telegram retries), and
        // flood control answers the approvals for a while.
        fake.fail_next("approveChatJoinRequest", Fault::RetryAfter(1), 3);
        let accounts = [(8401, "w-a"), (8402, "w-b"), (8403, "w-c"), (8404, "w-d")];
        for (i, (account, user)) in accounts.iter().enumerate() {
            let payer = Caller { user_id: UserId::parse(user).unwrap(), email: None, role: Role::User };
            let input =
                SubmitPayment { offer_id: "monthly".into(), transaction_id: format!("TX-WHOLE-{i}"), user_info: None };
            let payment = app.payments.submit_payment(&payer, input, Lang::Fr).await.unwrap();
            let issued = app.payments.validate_payment(&support, &payment.id, None, None).await.unwrap();
            let start = updates::text(update_id(), *account, "fr", &format!("/start {}", issued.token.expose()));
            deliver(app, start).await;
            let link = fake
                .calls_to("sendMessage")
                .iter()
                .rev()
                .find_map(|c| c.params["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().map(str::to_owned))
                .expect("an invite");
            queue.down.store(i == 0, Ordering::SeqCst);
            let request =
                serde_json::from_value::<Update>(updates::join_request(update_id(), CHANNEL, *account, &link)).unwrap();
            if i == 0 {
                assert!(app.bot.handle_update(&request).await.is_err(), "the queue refused after the commit");
                queue.down.store(false, Ordering::SeqCst);
            }
            app.bot.handle_update(&request).await.unwrap();
            pump(queue, consumer, clock).await;
            deliver(app, updates::joined(update_id(), CHANNEL, *account, Some(&link))).await;
        }
        assert!(pump(queue, consumer, clock).await.is_empty());

        // A webhook dies holding a `/status` update; Telegram's retry after the lease is handled.
        let killed = update_id();
        assert!(store.claim_update(killed, clock.now()).await.unwrap());
        clock.advance(31).unwrap();
        deliver(app, updates::text(killed, 8404, "fr", "/status")).await;

        // w-a's subscription ends and w-b is revoked while the queue is down; flood control
        // answers the bans for a while; a consumer dies holding w-a's ban.
        queue.down.store(true, Ordering::SeqCst);
        let admin = Caller { user_id: UserId::parse("root").unwrap(), email: None, role: Role::Admin };
        assert!(app.ending.revoke_access(&admin, "w-b", "chargeback").await.is_err());
        clock.advance(31 * 86_400).unwrap();
        // w-c and w-d renewed in time.
        for (i, (account, user)) in accounts.iter().enumerate().skip(2) {
            queue.down.store(false, Ordering::SeqCst);
            let payer = Caller { user_id: UserId::parse(user).unwrap(), email: None, role: Role::User };
            let input =
                SubmitPayment { offer_id: "monthly".into(), transaction_id: format!("TX-WHOLE-R{i}"), user_info: None };
            let payment = app.payments.submit_payment(&payer, input, Lang::Fr).await.unwrap();
            let issued = app.payments.validate_payment(&support, &payment.id, None, None).await.unwrap();
            deliver(app, updates::text(update_id(), *account, "fr", &format!("/start {}", issued.token.expose())))
                .await;
        }
        queue.down.store(true, Ordering::SeqCst);
        let _ = app.jobs.run_job(Job::ExpireSubscriptions, "test").await;
        queue.down.store(false, Ordering::SeqCst);
        let dying = store.pending_intents(clock.now() + Duration::days(1), 100).await.unwrap();
        let held = dying.iter().find(|e| e.idempotency_key.contains("access_expired")).expect("w-a's removal intent");
        assert!(store.claim_effect(&held.idempotency_key, clock.now(), Duration::seconds(120)).await.unwrap());
        fake.fail_next("banChatMember", Fault::RetryAfter(1), 3);
        clock.advance(6 * 60).unwrap(); // past the dead consumer's lease and the intents' grace
        app.jobs.run_job(Job::ExpireTokens, "test").await.unwrap();
        let dead = pump(queue, consumer, clock).await;
        assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");

        // The channel matches the store.
        let now = clock.now();
        for (account, user) in accounts {
            let current = store.current_membership(TelegramUserId::parse(account).unwrap()).await.unwrap();
            let active = current.as_ref().is_some_and(|m| m.is_active(now));
            let status = fake.member_status(account);
            assert_eq!(active, status == "member", "{user} ({account}): store active = {active}, channel = {status}");
            let expected_active = matches!(user, "w-c" | "w-d");
            assert_eq!(active, expected_active, "{user}");
        }
    }

    #[tokio::test]
    async fn the_channel_matches_the_store_after_every_fault_on_sqlite() {
        let dir = support::TempDir::new();
        let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("whole.sqlite3")).unwrap();
        flow(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn the_channel_matches_the_store_after_every_fault_on_dynamodb() {
        flow(Arc::new(support::dynamo_store().await)).await;
    }
}

support::on_both_stores!(
    on_store =>
    a_ban_made_stale_by_a_renewal_does_not_remove_the_member,
    an_approval_queued_before_a_revoke_becomes_a_decline,
    look_alike_transaction_ids_are_one_transaction,
    an_update_whose_handler_was_killed_is_processed_on_retry,
    a_removal_by_a_channel_administrator_is_respected_until_support_reinstates,
);
