//! The AWS back end (DynamoDB + SQS + SES on the local stand-in) runs the same flow as the
//! embedded one; the queue and mailer contracts run against both.

use crate::support;

use crate::support::{CHANNEL, Fault, TestApp, on_store, updates};
use serde_json::json;
use telegate_core::domain::TelegramUserId;
use telegate_core::ports::{Effect, Email, Envelope};

const ALICE: i64 = 7001;

#[tokio::test]
async fn the_whole_access_flow_runs_on_dynamodb_sqs_and_ses() {
    let app = TestApp::spawn_aws().await;
    // Her own address: other tests send mail through the same stand-in.
    let alice = support::unique("alice");
    let issued = app.paid(&alice, "TX-AWS1").await;
    let token = issued["token"].as_str().unwrap();
    app.start_command(ALICE, token).await;
    app.start_command(ALICE + 1, token).await; // another account: refused
    assert_eq!(app.fake().calls_to("createChatInviteLink").len(), 1);
    let link = app.last_invite_link().unwrap();
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE + 1, &link)).await;
    app.webhook(updates::join_request(app.update_id(), CHANNEL, ALICE, &link)).await;
    app.drain().await;
    assert_eq!(app.calls_for_user("approveChatJoinRequest", ALICE).len(), 1, "approved through SQS");
    assert_eq!(app.calls_for_user("declineChatJoinRequest", ALICE + 1).len(), 1);
    app.webhook(updates::joined(app.update_id(), CHANNEL, ALICE, Some(&link))).await;
    app.drain().await;

    let status = app.status_of(&alice).await;
    assert_eq!(status["has_active_subscription"], true);
    assert_eq!(status["memberships"][0]["days_remaining"], 30);
    let mails = support::ses_mails_to(&format!("{alice}@example.com")).await;
    assert_eq!(mails.len(), 2, "validation and access granted, through SES: {mails:?}");
    assert!(mails.iter().any(|(_, body)| body.contains(token)), "the validation mail carries the link");

    // The lifecycle on the same back end: expiry sweeps through the end-date index.
    app.advance(31 * 86_400).await;
    app.drain().await;
    assert_eq!(app.status_of(&alice).await["memberships"][0]["status"], "expired");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 1);
    let (_, stats) = app.get("/api/telegram/admin/stats/", &app.jwt("root", "admin")).await;
    assert_eq!(stats["members"], json!({"total": 1, "active": 0, "recent_joins": 0}));
}

fn envelope(key: &str, effect: Effect) -> Envelope {
    Envelope { idempotency_key: key.into(), effect }
}

/// The queue contract: effects are carried out, each key once, Telegram's 429 is waited out.
async fn queue_contract(app: TestApp) {
    let who = TelegramUserId::parse(ALICE).unwrap();
    app.fake().fail_next("banChatMember", Fault::RetryAfter(1), 1);
    let queue = app.running().ports.queue.clone().unwrap();
    queue
        .enqueue(vec![
            envelope("c-msg", Effect::SendMessage { chat_id: ALICE, text: "hello".into() }),
            envelope("c-msg", Effect::SendMessage { chat_id: ALICE, text: "hello".into() }),
            envelope("c-remove", Effect::RemoveMember { telegram_user_id: who, keep_banned: false }),
        ])
        .await
        .unwrap();
    app.drain().await;
    queue.enqueue(vec![envelope("c-msg", Effect::SendMessage { chat_id: ALICE, text: "hello".into() })]).await.unwrap();
    app.drain().await;
    assert_eq!(app.texts_to(ALICE), ["hello"], "one key, one message, however often it is delivered");
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 2, "429, then again after retry_after");
    assert_eq!(app.calls_for_user("unbanChatMember", ALICE).len(), 1);
}

/// Telegram's flood control delays an effect as often as it says so; it never spends the
/// attempts that lead to the dead letters (5 on both queues).
async fn flood_control_never_dead_letters(app: TestApp) {
    let who = TelegramUserId::parse(ALICE).unwrap();
    app.fake().fail_next("banChatMember", Fault::RetryAfter(1), 7);
    let queue = app.running().ports.queue.clone().unwrap();
    queue
        .enqueue(vec![envelope("flood-remove", Effect::RemoveMember { telegram_user_id: who, keep_banned: true })])
        .await
        .unwrap();
    app.drain().await;
    // SQS's counts are approximate: wait (boundedly, 30 s) for the last delayed copy too.
    support::eventually(async || app.calls_for_user("banChatMember", ALICE).len(), |bans| *bans >= 8).await;
    assert_eq!(app.calls_for_user("banChatMember", ALICE).len(), 8, "seven 429s waited out, then done");
    assert_eq!(app.fake().member_status(ALICE), "kicked");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty());
}

// On the local queue (embedded store) and on SQS (the stand-in).
support::on_both_stores!(on_store => flood_control_never_dead_letters);

#[tokio::test]
async fn the_local_queue_keeps_the_queue_contract() {
    queue_contract(TestApp::spawn().await).await;
}

#[tokio::test]
async fn sqs_keeps_the_queue_contract() {
    queue_contract(TestApp::spawn_aws().await).await;
}

fn mail(to: &str) -> Email {
    Email {
        to: to.into(), subject: "Accès accordé".into(), text: "Bienvenue".into(), html: "<p>Bienvenue</p>".into()
    }
}

#[tokio::test]
async fn the_outbox_mailer_keeps_the_mailer_contract() {
    let app = TestApp::spawn().await;
    app.running()
        .ports
        .queue
        .as_ref()
        .unwrap()
        .enqueue(vec![envelope("m1", Effect::SendEmail { email: mail("bob@example.com") })])
        .await
        .unwrap();
    app.drain().await;
    let files: Vec<_> = std::fs::read_dir(app.data.0.join("outbox")).unwrap().map(|f| f.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains("To: bob@example.com"));
    assert!(eml.contains("Subject: =?utf-8?B?"), "a non-ASCII subject is encoded");
    assert!(eml.contains("text/plain") && eml.contains("text/html") && eml.contains("<p>Bienvenue</p>"));
}

#[tokio::test]
async fn the_ses_mailer_keeps_the_mailer_contract() {
    let app = TestApp::spawn_aws().await;
    let to = format!("{}@example.com", support::unique("bob"));
    app.running()
        .ports
        .queue
        .as_ref()
        .unwrap()
        .enqueue(vec![envelope("m1", Effect::SendEmail { email: mail(&to) })])
        .await
        .unwrap();
    app.drain().await;
    let mails = support::ses_mails_to(&to).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].0, "Accès accordé");
    assert!(mails[0].1.contains("Bienvenue"));
}

#[tokio::test]
async fn a_mail_ses_refuses_is_a_permanent_failure_not_a_retry() {
    use telegate_core::adapters::ses::SesMailer;
    use telegate_core::ports::{MailError, Mailer};
    support::aws_endpoint();
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_sesv2::Client::new(&config);
    let to = format!("{}@example.com", support::unique("carol"));
    // A sender SES has not verified: SES rejects the message, whatever the number of tries.
    let unverified = SesMailer::new(client.clone(), format!("{}@example.org", support::unique("nobody")));
    let refused = unverified.send(&mail(&to)).await;
    assert!(matches!(refused, Err(MailError::Refused(_))), "{refused:?}");
    assert!(support::ses_mails_to(&to).await.is_empty());
    // The verified sender of the stand-in's resources goes through.
    let _ = support::aws_resources().await;
    let verified = SesMailer::new(client, telegate_testkit::local_aws::MAIL_FROM);
    verified.send(&mail(&to)).await.expect("sent");
    assert_eq!(support::ses_mails_to(&to).await.len(), 1);
}

#[tokio::test]
async fn a_mail_ses_refuses_is_given_up_at_once_audited_and_announced() {
    let mut resources = support::aws_resources().await;
    for (k, v) in resources.iter_mut() {
        if *k == "MAIL_FROM" {
            *v = format!("{}@unverified.example", support::unique("nobody"));
        }
    }
    let extra: Vec<(&str, &str)> = resources.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn_with(&extra).await;
    let to = format!("{}@example.com", support::unique("dave"));
    app.running()
        .ports
        .queue
        .as_ref()
        .unwrap()
        .enqueue(vec![envelope("refused-mail", Effect::SendEmail { email: mail(&to) })])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    app.drain().await;
    // Retried, it would come back after a back-off and keep the backlog above zero for minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "given up at once, not retried");
    assert!(support::ses_mails_to(&to).await.is_empty());
    let (_, audit) = app.get("/api/telegram/admin/audit/?limit=50", &app.jwt("root", "admin")).await;
    let given_up: Vec<&serde_json::Value> =
        audit.as_array().unwrap().iter().filter(|a| a["action"] == "effect_dead_lettered").collect();
    assert_eq!(given_up.len(), 1, "{audit}");
    assert_eq!(given_up[0]["details"]["effect"], "send_email");
    assert!(given_up[0]["details"]["error"].as_str().unwrap().contains("refused"), "{audit}");
}

/// The pace contract: turns taken at once by several callers (`paces`: one process's, or two
/// functions' over one table) never overlap, each starts `1 / per_second` after the one before
/// or later, and a pace left idle starts the next turn now.
async fn pace_contract(paces: Vec<std::sync::Arc<dyn telegate_core::ports::Pace>>, per_second: u32) {
    use std::time::{Duration, SystemTime};
    let every = Duration::from_secs(1) / per_second;
    let asked = SystemTime::now();
    let mut callers = Vec::new();
    for (i, pace) in paces.iter().cycle().take(6).enumerate() {
        let pace = pace.clone();
        callers.push(tokio::spawn(async move {
            let mut turns = Vec::new();
            for j in 0..8u32 {
                let calls = 1 + (i as u32 + j) % 2; // a removal takes two turns
                turns.push((pace.reserve(calls).await, calls));
            }
            turns
        }));
    }
    let mut turns = Vec::new();
    for c in callers {
        turns.extend(c.await.unwrap());
    }
    turns.sort();
    assert_eq!(turns.len(), 48);
    assert!(turns[0].0 >= asked - Duration::from_millis(5), "the first turn is not in the past");
    for pair in turns.windows(2) {
        let ((a, calls), (b, _)) = (pair[0], pair[1]);
        assert!(b >= a + every * calls, "turns overlap: {a:?} for {calls} and {b:?}");
    }
    // Left idle: the next turn is now, not after the last one given.
    let last = turns.last().map(|(t, calls)| *t + every * *calls).unwrap();
    tokio::time::sleep(last.duration_since(SystemTime::now()).unwrap_or_default() + every).await;
    let now = SystemTime::now();
    let next = paces[0].reserve(1).await;
    assert!(next >= now - Duration::from_millis(5) && next <= SystemTime::now(), "an idle pace starts now");
}

#[tokio::test]
async fn one_process_paces_its_telegram_calls() {
    let pace = telegate_core::adapters::pace::LocalPace::new(100);
    pace_contract(vec![std::sync::Arc::new(pace)], 100).await;
}

#[tokio::test]
async fn functions_share_one_pace_through_the_table() {
    use telegate_core::adapters::dynamodb::DynamoPace;
    // moto answers `UPDATED_OLD` apart from the update it applies: two concurrent adds can both
    // read the same old value (seen with 8 threads × 50 adds), so the shared pace's atomic
    // step holds only on DynamoDB Local and DynamoDB. The test command runs this test in its
    // DynamoDB Local pass and leaves it out of the moto pass.
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "run this test on DynamoDB Local (`. infra/dynamodb-local.sh` after `. infra/moto.sh`), not on moto"
    );
    let store = support::dynamo_store().await;
    // Two functions' paces over the same table (each container has its own).
    let (webhook, consumer) = (DynamoPace::new(&store, 100), DynamoPace::new(&store, 100));
    pace_contract(vec![std::sync::Arc::new(webhook), std::sync::Arc::new(consumer)], 100).await;
}
