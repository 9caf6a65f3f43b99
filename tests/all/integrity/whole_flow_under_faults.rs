//! The whole flow with every fault at once: the queue refuses right after commits, Telegram
//! answers 429 for a while, a consumer dies holding an effect, a webhook dies holding an
//! update. Afterwards the channel (as the fake Bot API keeps it) matches the store: every
//! active member is in, every ended one is out, and nothing reached the dead letters.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Duration;
use serde_json::Value;
use telegate_core::adapters::clock::TestClock;
use telegate_core::adapters::telegram::parse_update;
use telegate_core::app::effects::{Consumer, Outcome};
use telegate_core::app::{App, SubmitPayment};
use telegate_core::auth::{Caller, Role};
use telegate_core::domain::{Job, Lang, TelegramUserId, UserId};
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
    let update = parse_update(update.to_string().as_bytes()).unwrap();
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
            parse_update(updates::join_request(update_id(), CHANNEL, *account, &link).to_string().as_bytes()).unwrap();
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
        deliver(app, updates::text(update_id(), *account, "fr", &format!("/start {}", issued.token.expose()))).await;
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
