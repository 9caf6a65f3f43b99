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
use telegate_core::domain::{Job, Membership, Payment, PaymentStatus, TelegramUserId, UserId};
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
        let consumer = telegate_core::app::consumer(EffectRunner::new(telegram, mailer, events), &store, clock.clone());
        Self { running, app, queue, clock, consumer, _outbox: outbox }
    }
}

/// An active member of `user` on `account`, written through the store's own operations.
async fn active_member(store: &Arc<dyn Store>, user: &str, account: i64) -> Membership {
    let now = Utc::now();
    let payment = Payment {
        status: PaymentStatus::Validated,
        ..telegate_testkit::samples::payment(user, &format!("TX-LOST-{user}"), now)
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
    assert!(app.ending.revoke_access(&admin, "lost-bob", "chargeback").await.is_err(), "the queue fault is reported");
    clock.advance(31 * 86_400).unwrap();
    assert!(app.jobs.run_job(Job::ExpireSubscriptions, "test").await.is_err(), "the queue fault is reported");
    assert!(app.ending.revoke_access(&admin, "lost-bob", "again").await.unwrap() == 0, "a retry finds nothing to do");
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
