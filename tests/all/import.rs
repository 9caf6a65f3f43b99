//! Moving in from the Django system (`telegate import`): a realistic `dumpdata` fixture of the
//! guide's five models goes into both stores with nothing lost, nothing doubled, bad rows refused
//! with their reasons; imported links open the channel, imported members are warned and removed
//! at their imported end, kept accounts never are.

use crate::support;

use std::sync::Arc;

use crate::support::{CHANNEL, TestApp};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use telegate::import::{self, Context, Importable, Mapping, Plan};
use telegate_core::adapters::sqlite::SqliteStore;
use telegate_core::domain::{Offers, TelegramUserId};
use telegate_core::ports::Imported;

const OFFERS: &str = r#"{"monthly": {"name": "Mensuel", "days": 30}}"#;
const KEPT: i64 = 990_001;

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn row(model: &str, pk: i64, fields: Value) -> Value {
    json!({"model": format!("payments_app.{model}"), "pk": pk, "fields": fields})
}

/// What the generator put in the dump, to check the import against.
#[derive(Default, Debug)]
struct Expected {
    payments: usize,
    tokens_pending: usize,
    tokens_used: usize,
    tokens_expired: usize,
    members_active: usize,
    members_ended: usize,
    notifications: usize,
    refused: Vec<(&'static str, String, &'static str)>,
}

/// A realistic dump: 150 payments in every status, the validated ones' `Payment` rows and
/// tokens (used, unopened, expired), members (active, left, expired, revoked), 300 notifications
/// of every type, rows of another model, and four rows that must be refused.
fn dump(now: DateTime<Utc>) -> (String, Expected) {
    let mut rows = vec![row("user", 1, json!({"username": "ignored"}))];
    rows[0]["model"] = json!("auth.user");
    let mut e = Expected::default();
    let kinds = [
        "payment_verified",
        "payment_rejected",
        "access_granted",
        "expiration_warning",
        "access_expired",
        "access_revoked",
    ];
    for i in 0..150i64 {
        let user = 100 + i;
        let created = now - Duration::days(60) + Duration::minutes(i);
        let status = ["transaction_submitted", "validated", "rejected"][(i % 3) as usize];
        rows.push(row(
            "pendingpayment",
            i,
            json!({"user": user, "offer_id": "monthly", "transaction_id": format!("TX-LEGACY-{i:04}"),
                   "status": status, "user_info": "{\"phone\": \"+33600000000\"}", "admin_notes": "checked",
                   "rejection_reason": if status == "rejected" { json!("no such transfer") } else { Value::Null },
                   "created_at": at(created), "updated_at": at(created + Duration::hours(1))}),
        ));
        e.payments += 1;
        for k in 0..2 {
            rows.push(row(
                "telegramnotification",
                i * 2 + k,
                json!({"user": user, "notification_type": kinds[((i * 2 + k) % 6) as usize], "title": "Titre",
                       "message": "Message", "action_url": if k == 0 { json!("https://t.me/bot?start=x") } else { json!("") },
                       "is_read": k == 1, "created_at": at(now - Duration::days(2) + Duration::minutes(i))}),
            ));
            e.notifications += 1;
        }
        if status != "validated" {
            continue;
        }
        rows.push(row(
            "payment",
            i,
            json!({"user": user, "pending_payment": i, "amount": "9.90", "created_at": at(created + Duration::hours(1))}),
        ));
        let account = 500_000 + i;
        let token = format!("legacyToken_{i:04}-abcdefghijklmnopqrstuvwxyz0123");
        let kind = (i / 3) % 4;
        let used = kind <= 1;
        let expires = match kind {
            2 => now + Duration::hours(20),
            3 => now - Duration::days(2),
            _ => created + Duration::days(1),
        };
        rows.push(row(
            "telegrambottoken",
            i,
            json!({"user": user, "payment": i, "token": token, "expires_at": at(expires), "is_used": used,
                   "telegram_user_id": if used { json!(account) } else { Value::Null },
                   "created_at": at(created + Duration::hours(1)),
                   "used_at": if used { json!(at(created + Duration::hours(2))) } else { Value::Null }}),
        ));
        match kind {
            0 | 1 => e.tokens_used += 1,
            2 => e.tokens_pending += 1,
            _ => e.tokens_expired += 1,
        }
        if used {
            let state = match (kind, i % 5, i % 7) {
                (0, _, 0) => "left",
                (0, _, _) => "active",
                (_, 0, _) => "revoked",
                _ => "expired",
            };
            let end = if kind == 0 { now + Duration::days(1 + i % 40) } else { now - Duration::days(10) };
            rows.push(row(
                "telegramchannelmember",
                i,
                json!({"user": user, "telegram_user_id": account, "telegram_username": format!("member{i}"),
                       "channel_id": CHANNEL, "joined_at": at(created + Duration::hours(3)),
                       "subscription_end_date": at(end), "status": state}),
            ));
            if kind == 0 { e.members_active += 1 } else { e.members_ended += 1 }
        }
    }
    // Rows that must be refused, each for its own reason.
    let refused = [
        row(
            "pendingpayment",
            900,
            json!({"user": 900, "offer_id": "yearly", "transaction_id": "TX-900", "status": "validated", "created_at": at(now)}),
        ),
        row(
            "pendingpayment",
            901,
            json!({"user": 901, "offer_id": "monthly", "transaction_id": "TX-901", "status": "validated", "created_at": "31/12/2025"}),
        ),
        row(
            "pendingpayment",
            902,
            json!({"user": 902, "offer_id": "monthly", "transaction_id": "tx-legacy-0001 ", "status": "transaction_submitted", "created_at": at(now)}),
        ),
        row(
            "telegrambottoken",
            903,
            json!({"user": 101, "payment": 1, "token": "this is not a token!", "expires_at": at(now + Duration::hours(5)), "is_used": false}),
        ),
    ];
    rows.extend(refused);
    e.refused = vec![
        ("pendingpayment", "900".into(), "unknown offer"),
        ("pendingpayment", "901".into(), "created_at is not a date"),
        ("pendingpayment", "902".into(), "duplicate transaction id"),
        ("telegrambottoken", "903".into(), "not a valid deep-link payload"),
    ];
    (serde_json::to_string_pretty(&rows).unwrap(), e)
}

fn context(now: DateTime<Utc>, keep: Vec<i64>) -> Context {
    Context {
        offers: Offers::from_json(OFFERS, 30).unwrap(),
        channel_id: CHANNEL,
        now,
        keep: keep.into_iter().map(|k| TelegramUserId::parse(k).unwrap()).collect(),
    }
}

fn count(plan: &Plan, kind: &str, status: &str) -> usize {
    plan.records.iter().filter(|r| import::describe(r) == (kind, status.to_owned())).count()
}

#[test]
fn the_plan_reads_every_model_and_refuses_each_bad_row_with_its_reason() {
    let now = Utc::now();
    let (raw, e) = dump(now);
    let plan = import::plan(&raw, &Mapping::default(), &context(now, vec![KEPT])).unwrap();

    let refused: Vec<(String, String)> = plan.refused.iter().map(|r| (r.model.clone(), r.pk.clone())).collect();
    let expected: Vec<(String, String)> = e.refused.iter().map(|(m, pk, _)| (m.to_string(), pk.clone())).collect();
    assert_eq!(refused, expected, "{:#?}", plan.refused);
    for (r, (_, _, why)) in plan.refused.iter().zip(&e.refused) {
        assert!(r.reason.contains(why), "{} {}: {:?} should say {why:?}", r.model, r.pk, r.reason);
    }
    assert_eq!(
        plan.records.iter().filter(|r| matches!(r, Imported::Payment { .. })).count(),
        e.payments,
        "every good payment"
    );
    assert_eq!(count(&plan, "payments", "validated"), 50);
    assert_eq!(count(&plan, "payments", "rejected"), 50);
    assert_eq!(count(&plan, "payments", "transaction_submitted"), 50);
    assert_eq!(count(&plan, "tokens", "pending"), e.tokens_pending);
    assert_eq!(count(&plan, "tokens", "used"), e.tokens_used);
    assert_eq!(count(&plan, "tokens", "expired"), e.tokens_expired);
    assert_eq!(count(&plan, "memberships", "active"), e.members_active);
    assert_eq!(count(&plan, "memberships", "expired") + count(&plan, "memberships", "revoked"), e.members_ended);
    assert!(count(&plan, "memberships", "revoked") > 0);
    assert_eq!(count(&plan, "notifications", "read") + count(&plan, "notifications", "unread"), e.notifications);
    assert_eq!(count(&plan, "kept accounts", "exempt"), 1);
    assert_eq!(plan.other_models.get("auth.user"), Some(&1));
    assert!(plan.unused_fields["payment"].contains("amount"), "{:?}", plan.unused_fields);
    assert!(!plan.unused_fields.contains_key("telegramchannelmember"), "every member field is used");
    // Every used token names the membership it started.
    for r in &plan.records {
        if let Imported::Token(t) = r
            && t.status == telegate_core::domain::TokenStatus::Used
        {
            assert!(t.membership_id.is_some(), "{t:?}");
        }
    }
}

#[test]
fn the_import_refuses_fake_revenue_merged_rows_and_guessable_tokens_and_reads_the_guides_names() {
    let now = Utc::now();
    let token = "LegacyToken_0123456789abcdef";
    let rows = json!([
        // Stars revenue telegate never took.
        {"model": "p.pendingpayment", "pk": 1, "fields": {"user": 1, "offer_id": "monthly", "transaction_id": "Stars:stx1", "status": "validated", "created_at": at(now)}},
        // Two rows with one key: neither is guessed at.
        {"model": "p.pendingpayment", "pk": 2, "fields": {"user": 2, "offer_id": "monthly", "transaction_id": "TX-DUP-A", "status": "validated", "created_at": at(now)}},
        {"model": "p.pendingpayment", "pk": 2, "fields": {"user": 2, "offer_id": "monthly", "transaction_id": "TX-DUP-B", "status": "validated", "created_at": at(now)}},
        // Validation as the guide does it: a Payment with the pending payment's transaction id.
        {"model": "p.pendingpayment", "pk": 3, "fields": {"user": 3, "offer_id": "monthly", "transaction_id": "TX-GUIDE", "status": "validated", "created_at": at(now)}},
        {"model": "p.payment", "pk": 30, "fields": {"user": 3, "offer_id": "monthly", "transaction_id": "TX-GUIDE", "created_at": at(now)}},
        // Tokens that would open the channel for anyone typing them.
        {"model": "p.telegrambottoken", "pk": 40, "fields": {"user": 3, "payment": 30, "token": true, "expires_at": at(now + Duration::hours(5))}},
        {"model": "p.telegrambottoken", "pk": 41, "fields": {"user": 3, "payment": 30, "token": 7, "expires_at": at(now + Duration::hours(5))}},
        {"model": "p.telegrambottoken", "pk": 42, "fields": {"user": 3, "payment": 30, "token": "a", "expires_at": at(now + Duration::hours(5))}},
        // The guide's generate_token(user, payment_id, …).
        {"model": "p.telegrambottoken", "pk": 43, "fields": {"user": 3, "payment_id": 30, "token": token, "expires_at": at(now + Duration::hours(5))}},
    ]);
    let plan = import::plan(&rows.to_string(), &Mapping::default(), &context(now, vec![])).unwrap();
    let refused: Vec<(&str, &str)> = plan.refused.iter().map(|r| (r.model.as_str(), r.pk.as_str())).collect();
    assert_eq!(
        refused,
        [
            ("pendingpayment", "1"),
            ("pendingpayment", "2"),
            ("pendingpayment", "2"),
            ("telegrambottoken", "40"),
            ("telegrambottoken", "41"),
            ("telegrambottoken", "42")
        ],
        "{:#?}",
        plan.refused
    );
    let why = |pk: &str| plan.refused.iter().find(|r| r.pk == pk).unwrap().reason.clone();
    assert!(why("1").contains("Telegram Stars"), "{}", why("1"));
    assert!(why("2").contains("duplicate primary key"), "{}", why("2"));
    assert!(why("40").contains("not a string") && why("41").contains("not a string"), "{}", why("40"));
    assert!(why("42").contains("shorter than 16"), "{}", why("42"));
    assert_eq!(count(&plan, "payments", "validated"), 1, "the Payment row is the pending payment, validated");
    assert_eq!(count(&plan, "tokens", "pending"), 1, "the token naming payment_id is read");
}

#[test]
fn a_mapping_renames_fields_and_users() {
    let now = Utc::now();
    let rows = json!([
        {"model": "shop.pendingpayment", "pk": 1, "fields": {"owner": 7, "offer_id": "monthly", "transaction_id": "TX-MAP", "status": "validated", "submitted": at(now)}},
    ]);
    let mapping = Mapping::from_json(
        r#"{"fields": {"pendingpayment": {"user": "owner", "created_at": "submitted"}}, "users": {"7": "cognito-7"}}"#,
    )
    .unwrap();
    let plan = import::plan(&rows.to_string(), &mapping, &context(now, vec![])).unwrap();
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
    let Imported::Payment { payment, .. } = &plan.records[0] else { panic!("a payment") };
    assert_eq!(payment.user_id.as_str(), "cognito-7");
    assert!(Mapping::from_json(r#"{"feilds": {}}"#).is_err(), "a misspelt mapping is refused, not ignored");
}

async fn import_twice_and_check(store: Arc<dyn Importable>) {
    let now = Utc::now();
    let (raw, e) = dump(now);
    let plan = import::plan(&raw, &Mapping::default(), &context(now, vec![KEPT])).unwrap();

    // A crash half-way: the first part is written, then the whole import runs again.
    let half = Plan { records: plan.records[..plan.records.len() / 2].to_vec(), ..Plan::default() };
    let first = import::apply(store.as_ref(), &half, now, &|_, _| {}).await.unwrap();
    assert_eq!(first.new.values().sum::<usize>(), half.records.len());
    let rerun = import::apply(store.as_ref(), &plan, now, &|_, _| {}).await.unwrap();
    assert_eq!(rerun.already.values().sum::<usize>(), half.records.len(), "nothing written twice");
    assert_eq!(rerun.new.values().sum::<usize>(), plan.records.len() - half.records.len());
    assert!(rerun.refused.is_empty(), "{:?}", rerun.refused);

    let counters = store.counters(now).await.unwrap();
    let tokens = (e.tokens_pending + e.tokens_used + e.tokens_expired) as i64;
    assert_eq!(counters.tokens_total, tokens);
    assert_eq!(counters.tokens_pending, e.tokens_pending as i64);
    assert_eq!(counters.tokens_used, e.tokens_used as i64);
    assert_eq!(counters.members_active, e.members_active as i64, "kept accounts are not counted as paying");
    assert_eq!(counters.members_total, (e.members_active + e.members_ended) as i64);
    assert_eq!(counters.invites_accepted, counters.members_total);

    // A third run changes nothing, and the store matches the dump.
    let third = import::apply(store.as_ref(), &plan, now, &|_, _| {}).await.unwrap();
    assert!(third.new.is_empty(), "{:?}", third.new);
    assert_eq!(store.counters(now).await.unwrap(), counters);
    assert_eq!(import::verify(store.as_ref(), &plan, now).await.unwrap(), Vec::<String>::new());

    // Statuses and end dates as imported.
    for r in &plan.records {
        if let Imported::Membership { membership, .. } = r {
            let stored = store.membership(&membership.id).await.unwrap().unwrap();
            assert_eq!((stored.status, stored.expires_at), (membership.status, membership.expires_at));
        }
    }
    let (_, kept) = (0, store.exemption(TelegramUserId::parse(KEPT).unwrap()).await.unwrap());
    assert!(kept.is_some());
    let audit = store
        .audit(telegate_core::ports::AuditOf::Everyone, &telegate_core::ports::PageRequest { limit: 10, after: None })
        .await
        .unwrap();
    assert!(audit.items.iter().any(|a| a.action == telegate_core::domain::AuditAction::Imported));

    // A payment of the live system with the same transaction id as a new dump row: refused.
    let clash = json!([{"model": "a.pendingpayment", "pk": 5000, "fields": {"user": 5000, "offer_id": "monthly", "transaction_id": "TX-LEGACY-0003", "status": "validated", "created_at": at(now)}}]);
    let plan = import::plan(&clash.to_string(), &Mapping::default(), &context(now, vec![])).unwrap();
    let outcome = import::apply(store.as_ref(), &plan, now, &|_, _| {}).await.unwrap();
    assert_eq!(outcome.refused.len(), 1, "{outcome:?}");
    assert!(outcome.refused[0].reason.contains("transaction id taken"));
    assert!(import::verify(store.as_ref(), &plan, now).await.unwrap()[0].contains("missing"), "verify tells it");
}

#[tokio::test]
async fn the_dump_imports_into_sqlite_once_and_resumes_after_a_crash() {
    let dir = support::TempDir::new();
    let store = Arc::new(SqliteStore::open(&dir.0.join("telegate.sqlite3")).unwrap());
    import_twice_and_check(store).await;
}

#[tokio::test]
async fn the_dump_imports_into_dynamodb_once_and_resumes_after_a_crash() {
    import_twice_and_check(Arc::new(support::dynamo_store().await)).await;
}

/// A small dump for the live flow: an unopened link, a member near the end, a kept account.
fn live_dump(now: DateTime<Utc>, token: &str) -> String {
    json!([
        {"model": "p.pendingpayment", "pk": 1, "fields": {"user": 42, "offer_id": "monthly", "transaction_id": "TX-LIVE-1", "status": "validated", "created_at": at(now - Duration::hours(3))}},
        {"model": "p.telegrambottoken", "pk": 1, "fields": {"user": 42, "pending_payment": 1, "token": token, "expires_at": at(now + Duration::hours(20)), "is_used": false, "created_at": at(now - Duration::hours(2))}},
        {"model": "p.pendingpayment", "pk": 2, "fields": {"user": 43, "offer_id": "monthly", "transaction_id": "TX-LIVE-2", "status": "validated", "created_at": at(now - Duration::days(28))}},
        {"model": "p.telegramchannelmember", "pk": 2, "fields": {"user": 43, "telegram_user_id": 7002, "channel_id": CHANNEL, "joined_at": at(now - Duration::days(28)), "subscription_end_date": at(now + Duration::days(2) - Duration::hours(1)), "status": "active"}},
        {"model": "p.pendingpayment", "pk": 3, "fields": {"user": 44, "offer_id": "monthly", "transaction_id": "TX-LIVE-3", "status": "validated", "created_at": at(now - Duration::days(29))}},
        {"model": "p.telegramchannelmember", "pk": 3, "fields": {"user": 44, "telegram_user_id": 7003, "channel_id": CHANNEL, "joined_at": at(now - Duration::days(29)), "subscription_end_date": at(now + Duration::hours(12)), "status": "active"}},
    ])
    .to_string()
}

/// Imports into the app's own store: the SQLite file (with the host stopped, as an operator
/// would), or the DynamoDB table it runs on.
async fn import_into(app: &mut TestApp, raw: &str, keep: Vec<i64>) {
    let now = Utc::now();
    let plan = import::plan(raw, &Mapping::default(), &context(now, keep)).unwrap();
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
    if let Some(table) = app.env.get("TABLE_NAME").cloned() {
        let config = telegate_core::adapters::aws::sdk_config().await;
        let store = telegate_core::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
        import::apply(&store, &plan, now, &|_, _| {}).await.unwrap();
        return;
    }
    if let Some(running) = app.running.take() {
        running.stop().await.unwrap();
    }
    let store = SqliteStore::open(&app.data.0.join("telegate.sqlite3")).unwrap();
    import::apply(&store, &plan, now, &|_, _| {}).await.unwrap();
    drop(store);
    app.restart().await;
}

#[tokio::test]
async fn on_sqlite_imported_links_open_the_channel_and_imported_members_are_warned_then_removed_but_kept_accounts_stay()
{
    the_imported_flow(TestApp::spawn_with(&[("OFFERS", OFFERS)]).await).await;
}

#[tokio::test]
async fn on_aws_imported_links_open_the_channel_and_imported_members_are_warned_then_removed_but_kept_accounts_stay() {
    let mut env: Vec<(&str, String)> = support::aws_resources().await;
    env.push(("OFFERS", OFFERS.into()));
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    the_imported_flow(TestApp::spawn_with(&extra).await).await;
}

async fn the_imported_flow(mut app: TestApp) {
    let token = "legacy_Token-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    import_into(&mut app, &live_dump(Utc::now(), token), vec![7003]).await;

    // The old system's unopened link opens the channel.
    assert_eq!(app.start_command(7001, token).await, 200);
    assert!(app.last_invite_link().is_some(), "an invite for the imported link: {:?}", app.texts_to(7001));
    let status = app.status_of("42").await;
    assert_eq!(status["memberships"].as_array().unwrap().len(), 1, "{status}");

    // The imported member is warned before the imported end…
    let run = app.run_job("expiration-warnings").await;
    assert_eq!(run["status"], "done", "{run}");
    app.drain().await;
    assert!(!app.texts_to(7002).is_empty(), "warned");
    let warned = app.texts_to(7002).len();
    app.run_job("expiration-warnings").await;
    app.drain().await;
    assert_eq!(app.texts_to(7002).len(), warned, "once per threshold");

    // …not removed before it…
    app.run_job("expire-subscriptions").await;
    app.drain().await;
    assert!(app.calls_for_user("banChatMember", 7002).is_empty(), "still paid for");

    // …and removed at it; the kept account, whose record also ended, stays in.
    app.advance(2 * 86_400).await;
    app.run_job("expire-subscriptions").await;
    app.drain().await;
    assert_eq!(app.calls_for_user("banChatMember", 7002).len(), 1, "removed at the imported end");
    assert_eq!(app.status_of("43").await["has_active_subscription"], false);
    assert!(app.calls_for_user("banChatMember", 7003).is_empty(), "a kept account is never removed");
}

#[tokio::test]
async fn the_command_dry_runs_imports_and_verifies_and_fails_while_rows_are_refused() {
    let dir = support::TempDir::new();
    let now = Utc::now();
    let (raw, e) = dump(now);
    std::fs::write(dir.0.join("dump.json"), &raw).unwrap();
    std::fs::write(dir.0.join("keep.csv"), format!("telegram_user_id,note\n{KEPT},staff\n\n# legacy\n")).unwrap();
    let env: std::collections::HashMap<&str, String> = [
        ("TELEGRAM_BOT_USERNAME", "bot".to_owned()),
        ("TELEGRAM_CHANNEL_ID", CHANNEL.to_string()),
        ("TELEGRAM_CHANNEL_NAME", "c".into()),
        ("TELEGRAM_WEBHOOK_SECRET", "s".into()),
        ("JWT_HS256_SECRET", support::JWT_SECRET.into()),
        ("OFFERS", OFFERS.into()),
    ]
    .into();
    let settings = telegate_core::config::Settings::from_env(&|k| env.get(k).cloned()).unwrap();
    let request = |dry_run, verify| telegate::import::Request {
        dump: dir.0.join("dump.json"),
        mapping: None,
        keep: Some(dir.0.join("keep.csv")),
        dry_run,
        verify,
    };
    let data = dir.0.join("data");

    let (lines, ok) = telegate::import::run(request(true, false), &settings, &data).await;
    assert!(!ok, "refused rows fail the command");
    let text = lines.join("\n");
    assert!(text.contains(&format!("would import {:>6} memberships active", e.members_active)), "{text}");
    assert!(text.contains("would import      1 kept accounts exempt"), "{text}");
    assert_eq!(text.matches("✗ refused").count(), e.refused.len(), "{text}");
    assert!(text.contains("fields not used in payment: amount"), "{text}");
    assert!(!data.join("telegate.sqlite3").exists(), "a dry run writes nothing");

    let (lines, ok) = telegate::import::run(request(false, false), &settings, &data).await;
    assert!(!ok);
    let text = lines.join("\n");
    assert!(text.contains(&format!("imported {:>6} payments validated", 50)), "{text}");
    assert!(text.contains("4 row(s) refused and not written"), "{text}");

    let (lines, _) = telegate::import::run(request(false, false), &settings, &data).await;
    assert!(lines.iter().all(|l| !l.starts_with("imported")), "a second run imports nothing: {lines:?}");
    let (lines, _) = telegate::import::run(request(false, true), &settings, &data).await;
    assert!(lines.iter().any(|l| l.starts_with("✓ all")), "{lines:?}");

    std::fs::write(dir.0.join("keep.csv"), "990001\n12abc\n").unwrap();
    let (lines, ok) = telegate::import::run(request(true, false), &settings, &data).await;
    assert!(!ok && lines[0].contains("--keep line 2"), "{lines:?}");
}
