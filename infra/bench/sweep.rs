//! Sweep scaling: `expire-subscriptions` and the stats read on the embedded store with 1k, 10k and
//! 100k active memberships of which 100 are due. Run: `cargo run --release --example sweep`.
//! Prints a Markdown table (medians of 5 runs) and the query plan of the due-memberships read.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{Duration, SecondsFormat, Utc};
use rusqlite::{Connection, StatementStatus, params};
use telegate_core::adapters::clock::SystemClock;
use telegate_core::adapters::sqlite::SqliteStore;
use telegate_core::app::Ports;
use telegate_core::auth::{Caller, Role};
use telegate_core::config::Settings;
use telegate_core::domain::{Job, UserId};

use common::{CountingQueue, NoTelegram};

const DUE: usize = 100;
const RUNS: usize = 5;
const STATS_READS: usize = 200;

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `n` active memberships; the first `DUE` ended an hour ago, the rest end within 60 days.
fn populate(db: &Connection, n: usize) {
    let now = Utc::now();
    db.execute_batch("BEGIN").unwrap();
    let mut stmt = db
        .prepare(
            "INSERT INTO memberships (id, user_id, telegram_user_id, payment_id, offer_name, pending_days, status,
               created_at, joined_at, expires_at, in_channel)
             VALUES (?1, ?2, ?3, ?4, 'bench', 0, 'active', ?5, ?5, ?6, 1)",
        )
        .unwrap();
    for i in 0..n {
        let end =
            if i < DUE { now - Duration::hours(1) } else { now + Duration::minutes(60 + (i as i64 * 7919) % 86_400) };
        stmt.execute(params![
            format!("m{i:08}"),
            format!("u{i}"),
            1_000_000 + i as i64,
            format!("p{i}"),
            ts(now),
            ts(end)
        ])
        .unwrap();
    }
    db.execute_batch("COMMIT").unwrap();
}

/// Puts the swept memberships back, so that each run finds the same 100 due.
fn reset(db: &Connection) {
    db.execute(
        "UPDATE memberships SET status = 'active', ended_at = NULL, end_reason = NULL WHERE status = 'expired'",
        [],
    )
    .unwrap();
}

/// What SQLite does for the due read: rows stepped through and full-scan steps (0 = index only).
fn due_read_cost(db: &Connection) -> (i32, i32, String) {
    let sql = "SELECT * FROM memberships WHERE status = 'active' AND expires_at <= ?1 ORDER BY expires_at LIMIT 500";
    let plan: Vec<String> = db
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map([ts(Utc::now())], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut stmt = db.prepare(sql).unwrap();
    let rows = stmt.query_map([ts(Utc::now())], |_| Ok(())).unwrap().count();
    assert_eq!(rows, DUE);
    (stmt.get_status(StatementStatus::VmStep), stmt.get_status(StatementStatus::FullscanStep), plan.join("; "))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let env: HashMap<&str, &str> = HashMap::from([
        ("TELEGRAM_BOT_USERNAME", "bench_bot"),
        ("TELEGRAM_CHANNEL_ID", "-100"),
        ("TELEGRAM_WEBHOOK_SECRET", "bench"),
        ("JWT_HS256_SECRET", "bench-secret-bench-secret-bench-secret"),
    ]);
    let settings = Arc::new(Settings::from_env(&|k| env.get(k).map(|v| v.to_string())).unwrap());
    let admin = Caller { user_id: UserId::parse("bench").unwrap(), email: None, role: Role::Admin };
    println!(
        "| memberships | due | sweep median (ms) | processed | effects queued | due-read VM steps | full-scan steps | stats read median (µs) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut plan = String::new();
    for n in [1_000, 10_000, 100_000] {
        let dir = std::env::temp_dir().join(format!("telegate-sweep-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let db = Connection::open(&path).unwrap();
        populate(&db, n);
        db.execute_batch("ANALYZE").unwrap();
        let queue = Arc::new(CountingQueue::default());
        let ports = Ports {
            settings: settings.clone(),
            store: Arc::new(store),
            telegram: Some(Arc::new(NoTelegram)),
            queue: Some(queue.clone()),
            clock: Arc::new(SystemClock),
            jobs: None,
        };
        let (jobs, admin_side) = (ports.jobs().unwrap(), ports.admin().unwrap());
        let (vm_steps, fullscan, p) = due_read_cost(&db);
        plan = p;
        let (mut sweeps, mut reads, mut processed) = (Vec::new(), Vec::new(), 0);
        for _ in 0..RUNS {
            reset(&db);
            queue.0.store(0, Ordering::Relaxed);
            let t = Instant::now();
            processed = jobs.run_job(Job::ExpireSubscriptions, "bench").await.unwrap().processed;
            sweeps.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // The stats read is tens of microseconds: many samples, after a warm-up.
        for i in 0..STATS_READS + 20 {
            let t = Instant::now();
            admin_side.stats(&admin).await.unwrap();
            if i >= 20 {
                reads.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        println!(
            "| {n} | {DUE} | {:.2} | {processed} | {} | {vm_steps} | {fullscan} | {:.0} |",
            median(sweeps),
            queue.0.load(Ordering::Relaxed),
            median(reads)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("\nQuery plan of the due read: {plan}");
}
