//! A store written by the previous release (before the ledger: no invoice records, no refund
//! states, no renewal hold, `v1:<offer>` payloads), opened by this one, on both stores: its Stars
//! subscriber keeps access, renews with the old payload, and its old payment moves through a
//! refund; the statistics read the old counters. And an invoice the last release made, before an
//! invoice kept its language, still buys what it sold while `/buy` makes one per language.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::json;
use std::collections::HashMap;

use crate::support::{TestApp, updates};
use telegate_core::domain::TokenHash;
use telegate_testkit::fake_telegram::updates::Renewal;

const OFFERS: &str = r#"{
    "monthly": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true},
    "pass": {"name": "Week pass", "days": 7, "stars": 100}
}"#;
const SUPPORT: &str = "@telegate_support";
const PERIOD: u32 = 2_592_000;
const DAY: i64 = 86_400;
const PAYMENT: &str = "01a0000000000001aaaaaaaa";
const MEMBERSHIP: &str = "m-old-1";
const CHARGE: &str = "stxOLD1";
const ACCOUNT: i64 = 7001;

fn t(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What the previous release wrote for the subscriber: the payment 28 days ago (`user_info` as
/// it was), the counters the statistics read.
fn old_user_info(paid: DateTime<Utc>) -> serde_json::Value {
    json!({"stars": 250, "telegram_user_id": ACCOUNT, "telegram_payment_charge_id": CHARGE,
           "renewing": true, "is_recurring": true, "renewal": false,
           "subscription_expiration_date": (paid + Duration::days(30)).to_rfc3339()})
}

fn old_counters(paid: DateTime<Utc>) -> Vec<(String, i64)> {
    let bucket = format!("stars.renewing.d{}", paid.format("%Y%m%d"));
    vec![("stars.revenue".into(), 250), (bucket, 1), ("members.active".into(), 1), ("members.total".into(), 1)]
}

/// An SQLite store at schema `version`, as the release that stopped there left it.
fn sqlite_at_schema(data: &crate::support::TempDir, version: u32) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data.0.join("telegate.sqlite3")).unwrap();
    for step in 1..=version {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shared/src/adapters/sqlite/migrations");
        conn.execute_batch(&std::fs::read_to_string(format!("{dir}/v{step}.sql")).unwrap()).unwrap();
        conn.pragma_update(None, "user_version", step).unwrap();
    }
    conn
}

/// SQLite at schema 13, as the previous release left it.
fn previous_release_sqlite(data: &crate::support::TempDir, now: DateTime<Utc>) {
    let conn = sqlite_at_schema(data, 13);
    let paid = now - Duration::days(28);
    conn.execute(
        "INSERT INTO payments (id, user_id, offer_id, transaction_id, user_info, status, created_at, updated_at,
           reviewed_by, lang, transaction_key)
         VALUES (?1, 'tg:7001', 'monthly', 'stars:stxOLD1', ?2, 'validated', ?3, ?3,
           'telegram-stars', 'fr', 'stars:stxold1')",
        rusqlite::params![PAYMENT, old_user_info(paid).to_string(), t(paid)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO tokens (hash, payment_id, user_id, offer_name, days, status, created_at, expires_at,
           telegram_user_id, membership_id, used_at)
         VALUES (?1, ?2, 'tg:7001', 'Monthly', 30, 'used', ?3, ?4, 7001, ?5, ?3)",
        rusqlite::params![
            TokenHash::of_stars_charge(CHARGE).as_str(),
            PAYMENT,
            t(paid),
            t(paid + Duration::days(1)),
            MEMBERSHIP
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO memberships (id, user_id, telegram_user_id, payment_id, offer_name, pending_days, status,
           created_at, joined_at, expires_at, in_channel)
         VALUES (?1, 'tg:7001', 7001, ?2, 'Monthly', 0, 'active', ?3, ?3, ?4, 1)",
        rusqlite::params![MEMBERSHIP, PAYMENT, t(paid), t(paid + Duration::days(30))],
    )
    .unwrap();
    for (name, value) in old_counters(paid) {
        conn.execute("INSERT INTO counters (name, value) VALUES (?1, ?2)", rusqlite::params![name, value]).unwrap();
    }
}

/// The same items on DynamoDB, attribute for attribute as the previous release's codec wrote
/// them (no `refund_note`, no `renews_until`, no `INVOICE#`/`SALE#` items, the charge's `TX#` key
/// case-folded as it then was).
async fn previous_release_dynamodb(table: &str, now: DateTime<Utc>) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let paid = now - Duration::days(28);
    let hash = TokenHash::of_stars_charge(CHARGE);
    let items: Vec<HashMap<String, AttributeValue>> = vec![
        HashMap::from([
            ("pk".into(), s(&format!("PAY#{PAYMENT}"))),
            ("sk".into(), s("PAY")),
            ("gsi1pk".into(), s("USERPAY#tg:7001")),
            ("gsi1sk".into(), s(PAYMENT)),
            ("gsi2pk".into(), s("PAYSTATUS#validated")),
            ("gsi2sk".into(), s(PAYMENT)),
            ("gsi3pk".into(), s("PAYALL")),
            ("gsi3sk".into(), s(PAYMENT)),
            ("id".into(), s(PAYMENT)),
            ("user_id".into(), s("tg:7001")),
            ("offer_id".into(), s("monthly")),
            ("transaction_id".into(), s("stars:stxOLD1")),
            ("status".into(), s("validated")),
            ("created_at".into(), s(&t(paid))),
            ("updated_at".into(), s(&t(paid))),
            ("lang".into(), s("fr")),
            ("user_info".into(), s(&old_user_info(paid).to_string())),
            ("reviewed_by".into(), s("telegram-stars")),
        ]),
        HashMap::from([
            ("pk".into(), s("TX#stars:stxold1")),
            ("sk".into(), s("TX")),
            ("payment_id".into(), s(PAYMENT)),
        ]),
        HashMap::from([
            ("pk".into(), s(&format!("TOKEN#{}", hash.as_str()))),
            ("sk".into(), s("TOKEN")),
            ("gsi3pk".into(), s("USERTOK#tg:7001")),
            ("gsi3sk".into(), s(hash.as_str())),
            ("hash".into(), s(hash.as_str())),
            ("payment_id".into(), s(PAYMENT)),
            ("user_id".into(), s("tg:7001")),
            ("offer_name".into(), s("Monthly")),
            ("days".into(), n(30)),
            ("status".into(), s("used")),
            ("created_at".into(), s(&t(paid))),
            ("expires_at".into(), s(&t(paid + Duration::days(1)))),
            ("telegram_user_id".into(), n(ACCOUNT)),
            ("membership_id".into(), s(MEMBERSHIP)),
            ("used_at".into(), s(&t(paid))),
        ]),
        HashMap::from([
            ("pk".into(), s(&format!("MEM#{MEMBERSHIP}"))),
            ("sk".into(), s("MEM")),
            ("gsi1pk".into(), s("ACCT#7001")),
            ("gsi1sk".into(), s(MEMBERSHIP)),
            ("gsi2pk".into(), s("MEMSTATUS#active")),
            ("gsi2sk".into(), s(&t(paid + Duration::days(30)))),
            ("gsi3pk".into(), s("USERMEM#tg:7001")),
            ("gsi3sk".into(), s(MEMBERSHIP)),
            ("id".into(), s(MEMBERSHIP)),
            ("user_id".into(), s("tg:7001")),
            ("telegram_user_id".into(), n(ACCOUNT)),
            ("payment_id".into(), s(PAYMENT)),
            ("offer_name".into(), s("Monthly")),
            ("pending_days".into(), n(0)),
            ("status".into(), s("active")),
            ("created_at".into(), s(&t(paid))),
            ("joined_at".into(), s(&t(paid))),
            ("expires_at".into(), s(&t(paid + Duration::days(30)))),
            ("in_channel".into(), AttributeValue::Bool(true)),
            ("token_hashes".into(), AttributeValue::Ss(vec![hash.as_str().to_owned()])),
        ]),
    ];
    let counters = old_counters(paid).into_iter().map(|(name, value)| {
        HashMap::from([
            ("pk".into(), s(&format!("COUNTER#{name}"))),
            ("sk".into(), s("COUNTER")),
            ("value".into(), n(value)),
        ])
    });
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    for item in items.into_iter().chain(counters) {
        client.put_item().table_name(table).set_item(Some(item)).send().await.expect("an old item written");
    }
}

/// This release on the SQLite store in `data`.
async fn opened_on_sqlite(data: crate::support::TempDir) -> TestApp {
    TestApp::spawn_on(data, &[("OFFERS", OFFERS), ("PAY_SUPPORT_CONTACT", SUPPORT)]).await
}

/// This release on the DynamoDB table (and queue, mail) of `resources`.
async fn opened_on_dynamodb(resources: &[(&'static str, String)]) -> TestApp {
    let mut extra = vec![("OFFERS", OFFERS), ("PAY_SUPPORT_CONTACT", SUPPORT)];
    extra.extend(resources.iter().map(|(k, v)| (*k, v.as_str())));
    TestApp::spawn_with(&extra).await
}

/// What the opened store must still do for the old subscriber.
async fn keeps_its_stars_subscriber_and_ledger(app: TestApp) {
    app.fake().set_member_status(ACCOUNT, "member");
    let admin = app.jwt("root", "admin");
    let (_, stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    assert_eq!(
        (stats["stars"]["active_subscriptions"].clone(), stats["stars"]["revenue_total"].clone()),
        (json!(1), json!(250)),
        "{stats}"
    );

    // Telegram renews the old subscription with the payload the previous release gave it.
    let expires = app.now().timestamp() + 2 * DAY + i64::from(PERIOD);
    let renewal = Renewal { expires, recurring: true, first: false };
    let charge = app.fake().take_star_payment(ACCOUNT, "v1:monthly", 250, Some(PERIOD));
    let paid = updates::StarsPaid { payload: "v1:monthly", stars: 250, charge: &charge, renewal: Some(renewal) };
    assert_eq!(app.webhook(updates::stars_payment(app.update_id(), ACCOUNT, app.now().timestamp(), paid)).await, 200);
    app.drain().await;
    let status = app.status_of("tg:7001").await;
    assert_eq!(status["memberships"][0]["days_remaining"], 32, "renewed in place: {status}");
    assert!(app.fake().calls_to("createChatInviteLink").is_empty(), "still in: no invite");
    let (_, stats) = app.get("/api/telegram/admin/stats/", &admin).await;
    assert_eq!(stats["stars"]["active_subscriptions"], 1, "one subscription, renewed: {stats}");

    // The old charge told again pays nothing; the old payment moves through a refund, which
    // takes back its own 30 days only.
    let again = updates::StarsPaid { payload: "v1:monthly", stars: 250, charge: CHARGE, renewal: Some(renewal) };
    assert_eq!(app.webhook(updates::stars_payment(app.update_id(), ACCOUNT, app.now().timestamp(), again)).await, 200);
    let (_, payments) = app.get("/api/payments/admin/pending-payments/", &admin).await;
    assert_eq!(payments.as_array().unwrap().len(), 2, "{payments}");
    let body = json!({"payment_id": PAYMENT, "reason": "asked"});
    let (status, answer) = app.post("/api/telegram/admin/stars/refund/", &admin, body).await;
    assert_eq!(
        (status, answer["refund"].as_str(), answer["revoked_count"].clone()),
        (200, Some("requested"), json!(0))
    );
    app.drain().await;
    let status = app.status_of("tg:7001").await;
    assert_eq!(status["memberships"][0]["days_remaining"], 2, "the renewal's days are left: {status}");
    // The fake never took that charge: Telegram refuses, and the old payment reads so.
    let (_, failed) = app.get("/api/payments/admin/pending-payments/?status=refund_failed", &admin).await;
    assert_eq!(failed[0]["id"], PAYMENT, "{failed}");
}

#[tokio::test]
async fn a_sqlite_store_written_by_the_previous_release_keeps_its_stars_subscribers_and_ledger() {
    let data = crate::support::TempDir::new();
    previous_release_sqlite(&data, Utc::now());
    keeps_its_stars_subscriber_and_ledger(opened_on_sqlite(data).await).await;
}

#[tokio::test]
async fn a_dynamodb_table_written_by_the_previous_release_keeps_its_stars_subscribers_and_ledger() {
    let resources = crate::support::aws_resources().await;
    let table = &resources.iter().find(|(k, _)| *k == "TABLE_NAME").expect("a table").1;
    previous_release_dynamodb(table, Utc::now()).await;
    keeps_its_stars_subscriber_and_ledger(opened_on_dynamodb(&resources).await).await;
}

/// An invoice the last release made, before an invoice kept its language: its sale key has none.
const OLD_INVOICE: &str = "v2:00112233445566778899aabbccddeeff";
const OLD_SALE: &str = "pass|100|7|once";
const OLD_LINK: &str = "https://t.me/$old-invoice";

/// What that release's invoice buys, and the pay buttons of this one: one invoice per language.
async fn sells_through_an_invoice_made_before_languages(app: TestApp) {
    let buyer = 7002;
    let charge = app.fake().take_star_payment(buyer, OLD_INVOICE, 100, None);
    let paid = updates::StarsPaid { payload: OLD_INVOICE, stars: 100, charge: &charge, renewal: None };
    assert_eq!(app.webhook(updates::stars_payment(app.update_id(), buyer, app.now().timestamp(), paid)).await, 200);
    app.drain().await;
    crate::stars::join(&app, buyer).await;
    let status = app.status_of("tg:7002").await;
    assert_eq!(status["memberships"][0]["days_remaining"], 7, "the old invoice's week: {status}");

    for (account, lang, description) in [(7003, "en", "Access to"), (7004, "fr", "Accès")] {
        assert_eq!(app.webhook(updates::text(app.update_id(), account, lang, "/buy")).await, 200);
        let invoice = app.fake().invoice(&crate::stars::first_link(&app, account)).expect("an invoice made now");
        assert!(invoice["description"].as_str().unwrap().starts_with(description), "{lang}: {invoice}");
    }
    assert_eq!(app.fake().calls_to("createInvoiceLink").len(), 4, "two offers, two languages");
}

#[tokio::test]
async fn a_sqlite_invoice_made_before_invoices_kept_their_language_still_sells() {
    let data = crate::support::TempDir::new();
    let conn = sqlite_at_schema(&data, 19);
    conn.execute(
        "INSERT INTO invoices (payload, sale, offer_id, stars, days, renewing, link, created_at)
         VALUES (?1, ?2, 'pass', 100, 7, 0, ?3, ?4)",
        rusqlite::params![OLD_INVOICE, OLD_SALE, OLD_LINK, t(Utc::now())],
    )
    .unwrap();
    drop(conn);
    sells_through_an_invoice_made_before_languages(opened_on_sqlite(data).await).await;
}

#[tokio::test]
async fn a_dynamodb_invoice_made_before_invoices_kept_their_language_still_sells() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let resources = crate::support::aws_resources().await;
    let table = &resources.iter().find(|(k, _)| *k == "TABLE_NAME").expect("a table").1;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    for (pk, sk) in [(format!("INVOICE#{OLD_INVOICE}"), "INVOICE"), (format!("SALE#{OLD_SALE}"), "SALE")] {
        let item = HashMap::from([
            ("pk".into(), s(&pk)),
            ("sk".into(), s(sk)),
            ("payload".into(), s(OLD_INVOICE)),
            ("offer_id".into(), s("pass")),
            ("stars".into(), n(100)),
            ("days".into(), n(7)),
            ("renewing".into(), AttributeValue::Bool(false)),
            ("link".into(), s(OLD_LINK)),
            ("created_at".into(), s(&t(Utc::now()))),
        ]);
        client.put_item().table_name(table).set_item(Some(item)).send().await.expect("an old item written");
    }
    sells_through_an_invoice_made_before_languages(opened_on_dynamodb(&resources).await).await;
}
