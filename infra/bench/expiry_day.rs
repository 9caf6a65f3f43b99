//! An expiry day at Telegram's limit: `EXPIRY_MEMBERS` (10,000) members due the same day expire
//! against the fake Bot API with flood control on (`FLOOD_LIMIT`, 30 calls in any second, then
//! 429 with `retry_after` 3 s), every Bot API call paced at `TELEGRAM_CALLS_PER_SECOND` (30).
//! Twice: on the local host (SQLite, the in-process queue), and on AWS's parts (DynamoDB, SQS on
//! the stand-in; `EXPIRY_AWS_MEMBERS`, 2,000) with `CONSUMERS` (3) hosts consuming the queue at
//! once, sharing the pace through the table as the functions do.
//! Run: `. infra/moto.sh; . infra/dynamodb-local.sh; cargo run --release --example expiry-day`.
//! Prints a Markdown table: how long the effects took to drain against the ideal (calls / pace),
//! the 429s met, each member banned exactly once, the dead letters.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use telegate::host::{Options, Running};
use telegate_core::config::Settings;
use telegate_core::domain::Job;
use telegate_fake_telegram::FakeTelegram;

const RETRY_AFTER: u32 = 3;

fn number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn settings(api_url: &str, pace: usize, aws: &[(&'static str, String)]) -> Result<Settings, String> {
    let mut env: HashMap<&str, String> = HashMap::from([
        ("TELEGRAM_BOT_TOKEN", "123456:bench-token".to_owned()),
        ("TELEGRAM_API_URL", api_url.to_owned()),
        ("TELEGRAM_BOT_USERNAME", "bench_bot".into()),
        ("TELEGRAM_CHANNEL_ID", "-1001234567890".into()),
        ("TELEGRAM_WEBHOOK_SECRET", "bench".into()),
        ("JWT_HS256_SECRET", "bench-secret-bench-secret-bench-secret".into()),
        ("TELEGRAM_CALLS_PER_SECOND", pace.to_string()),
        ("JOB_MAX_SECONDS", "3600".into()),
    ]);
    env.extend(aws.iter().cloned());
    Settings::from_env(&|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

/// One back end's expiry day: the hosts (the first runs the job) and where their dead letters are.
async fn expiry_day(
    label: &str,
    data: &std::path::Path,
    hosts: Vec<Running>,
    queue_url: Option<&str>,
    fake: &FakeTelegram,
    members: usize,
    pace: usize,
) -> String {
    let store = telegate::import::open_store(&hosts[0].ports.settings, data).await.expect("the store opens");
    for chunk in common::records(members, members).chunks(500) {
        store.import(chunk).await.expect("the members are written");
    }
    fake.clear_calls();
    let flooded_before = fake.flooded();
    let start = Instant::now();
    let mut processed = 0;
    loop {
        let run = hosts[0].app.jobs.run_job(Job::ExpireSubscriptions, "bench").await.expect("the sweep runs");
        processed += run.processed;
        if run.complete {
            break;
        }
    }
    let swept = start.elapsed();
    // Done when every member is banned and told, and nothing is left waiting.
    let limit = Duration::from_secs((members * 3 / pace) as u64 + 600);
    let mut last_change = (0, Instant::now());
    loop {
        let calls = fake.calls().len();
        if calls != last_change.0 {
            last_change = (calls, Instant::now());
        }
        let bans = fake.calls_to("banChatMember").len();
        let told = fake.calls_to("sendMessage").len();
        if bans >= members && told >= members {
            break;
        }
        assert!(start.elapsed() < limit, "{label}: not drained after {limit:?}: {bans} bans, {told} messages");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = last_change.1.duration_since(start);
    for h in &hosts {
        h.effects.drain().await;
    }
    let calls = fake.calls();
    let mut bans: HashMap<i64, usize> = HashMap::new();
    for c in calls.iter().filter(|c| c.method == "banChatMember") {
        *bans.entry(c.params["user_id"].as_i64().unwrap_or_default()).or_default() += 1;
    }
    let once = bans.len() == members && bans.values().all(|n| *n == 1);
    let dead = match queue_url {
        Some(url) => telegate_testkit::local_aws::dead_letters(url).await.expect("the DLQ is read"),
        None => hosts[0].effects.dead_letters().await.expect("the dead letters are read").len(),
    };
    let ideal = calls.len() as f64 / pace as f64;
    format!(
        "| {label} | {members} | {processed} | {:.1} | {} | {ideal:.0} | {:.0} | {:+.1} % | {:.1} | {} | {} | {dead} |",
        swept.as_secs_f64(),
        calls.len(),
        drained.as_secs_f64(),
        (drained.as_secs_f64() / ideal - 1.0) * 100.0,
        calls.len() as f64 / drained.as_secs_f64(),
        fake.flooded() - flooded_before,
        if once { "yes" } else { "**no**" },
    )
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let members = number("EXPIRY_MEMBERS", 10_000);
    let pace = number("TELEGRAM_CALLS_PER_SECOND", 30);
    let flood = number("FLOOD_LIMIT", 30);
    let consumers = number("CONSUMERS", 3);
    let running = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    running.fake.set_flood_limit(flood, RETRY_AFTER);
    let options = Options { polling: false, scheduler: false };

    println!(
        "Pace {pace} calls/s; the fake Bot API refuses a call beyond {flood} in any second with 429, retry_after {RETRY_AFTER} s.\n"
    );
    println!(
        "| back end | members due | expired | sweep (s) | Bot API calls | ideal drain (s) | drain (s) | against ideal | calls/s | 429s | each banned once | dead letters |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    let dir = std::env::temp_dir().join(format!("telegate-expiry-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let local = Running::spawn(settings(&running.url, pace, &[])?, &dir, options).await.map_err(|e| e.to_string())?;
    println!(
        "{}",
        expiry_day("local host (SQLite, in-process queue)", &dir, vec![local], None, &running.fake, members, pace)
            .await
    );
    let _ = std::fs::remove_dir_all(&dir);

    let resources = telegate_testkit::local_aws::provision().await?;
    let mut hosts = Vec::new();
    for i in 0..consumers {
        let data = dir.join(format!("host-{i}"));
        hosts.push(
            Running::spawn(settings(&running.url, pace, &resources)?, &data, options)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    // Fewer through the stand-ins: moto carries about 11 calls a second (BENCHMARKS.md).
    let aws_members = number("EXPIRY_AWS_MEMBERS", 2_000);
    let label = format!("AWS parts: DynamoDB + SQS, {consumers} consumers");
    let queue_url = resources.iter().find(|(k, _)| *k == "QUEUE_URL").map(|(_, v)| v.as_str());
    println!("{}", expiry_day(&label, &dir.join("host-0"), hosts, queue_url, &running.fake, aws_members, pace).await);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
