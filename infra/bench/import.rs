//! The import from the Django system (`telegate import`): 1k, 10k and 100k active members, each
//! with its validated payment and used token (three records per member), planned from a
//! `dumpdata` fixture and written into DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`, started by
//! infra/dynamodb-local.sh) and the embedded SQLite store; then the same import again, which
//! writes nothing. Run: `cargo run --release --example import`. Prints a Markdown table.

use std::time::Instant;

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::json;
use telegate::import::{self, Context, Mapping};
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::adapters::sqlite::SqliteStore;
use telegate_core::domain::Offers;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const CHANNEL: i64 = -1_000_000_000_001;

fn dump(members: usize) -> String {
    let now = Utc::now();
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut rows = Vec::with_capacity(members * 3);
    for i in 0..members {
        let created = now - Duration::days(20) + Duration::seconds(i as i64);
        rows.push(json!({"model": "payments.pendingpayment", "pk": i, "fields": {
            "user": i, "offer_id": "monthly", "transaction_id": format!("TX-{i:07}"), "status": "validated",
            "created_at": at(created)}}));
        rows.push(json!({"model": "telegram.telegrambottoken", "pk": i, "fields": {
            "user": i, "pending_payment": i, "token": format!("tok{i:07}_abcdefghijklmnopqrstuvwxyzABCDEFGH"),
            "expires_at": at(created + Duration::days(1)), "is_used": true, "telegram_user_id": 1_000_000 + i,
            "created_at": at(created)}}));
        rows.push(json!({"model": "telegram.telegramchannelmember", "pk": i, "fields": {
            "user": i, "telegram_user_id": 1_000_000 + i, "channel_id": CHANNEL, "joined_at": at(created),
            "subscription_end_date": at(created + Duration::days(30)), "status": "active"}}));
    }
    serde_json::to_string(&rows).expect("a dump")
}

async fn measure(store: &dyn import::Importable, name: &str, members: usize) -> Result<String, String> {
    let raw = dump(members);
    let now = Utc::now();
    let cx = Context {
        offers: Offers::from_json(r#"{"monthly": {"name": "Mensuel", "days": 30}}"#, 30)?,
        channel_id: CHANNEL,
        now,
        keep: Vec::new(),
    };
    let started = Instant::now();
    let plan = import::plan(&raw, &Mapping::default(), &cx).map_err(|e| e.to_string())?;
    let planned = started.elapsed();
    if !plan.refused.is_empty() {
        return Err(format!("{} rows refused: {:?}", plan.refused.len(), plan.refused.first()));
    }
    let started = Instant::now();
    let outcome = import::apply(store, &plan, now, &|_, _| {}).await.map_err(|e| e.to_string())?;
    let wrote = started.elapsed();
    let new: usize = outcome.new.values().sum();
    if new != plan.records.len() {
        return Err(format!("{new} of {} records written", plan.records.len()));
    }
    let counters = store.counters(now).await.map_err(|e| e.to_string())?;
    if counters.members_active != members as i64 {
        return Err(format!("members.active is {} after importing {members}", counters.members_active));
    }
    let started = Instant::now();
    let again = import::apply(store, &plan, now, &|_, _| {}).await.map_err(|e| e.to_string())?;
    let rerun = started.elapsed();
    if !again.new.is_empty() {
        return Err("the second import wrote something".into());
    }
    Ok(format!(
        "| {name} | {members} | {} | {:.2} s | {:.1} s | {:.0} | {:.1} s |",
        plan.records.len(),
        planned.as_secs_f64(),
        wrote.as_secs_f64(),
        plan.records.len() as f64 / wrote.as_secs_f64(),
        rerun.as_secs_f64(),
    ))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        return Err("AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local (infra/bench/run.sh starts it)".into());
    }
    println!("| store | members | records | plan | write | records/s | second run (writes nothing) |");
    println!("|---|---|---|---|---|---|---|");
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let dir = std::env::temp_dir().join(format!("telegate-import-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for members in SIZES {
        let table = format!("import-bench-{members}-{}", std::process::id());
        DynamoStore::create_table(&client, &table).await.map_err(|e| e.to_string())?;
        let dynamo = DynamoStore::new(client.clone(), table);
        println!("{}", measure(&dynamo, "DynamoDB Local", members).await?);
        let sqlite = SqliteStore::open(&dir.join(format!("{members}.sqlite3"))).map_err(|e| e.to_string())?;
        println!("{}", measure(&sqlite, "SQLite", members).await?);
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
