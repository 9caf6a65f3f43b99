//! The console's pages on the local host with 100k active members (and 1,000 payments waiting for
//! review) in the embedded store: each page asked for many times through the router in process,
//! signed in as the local admin; the time to answer (p50, p95, max) and the size of the HTML.
//! Run: `cargo run --release --example console`. Prints a Markdown table.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use serde_json::json;
use telegate::host::{Host, Options};
use telegate_core::config::Settings;
use tower::ServiceExt;

const MEMBERS: usize = 100_000;
const WAITING: usize = 1_000;
const RUNS: usize = 200;

fn settings() -> Result<Settings, String> {
    let env: HashMap<&str, String> = HashMap::from([
        ("TELEGRAM_BOT_USERNAME", "bench_bot".to_owned()),
        ("TELEGRAM_CHANNEL_ID", "-1001234567890".into()),
        ("TELEGRAM_WEBHOOK_SECRET", "bench".into()),
        ("JWT_HS256_SECRET", "bench-secret-bench-secret-bench-secret".into()),
    ]);
    Settings::from_env(&|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

async fn get(router: &axum::Router, path: &str, cookie: &str) -> (u16, usize) {
    let request = Request::get(path).header("cookie", cookie).body(Body::empty()).expect("a request");
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("a body");
    (status, bytes.len())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("telegate-console-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = settings()?;
    let store = telegate::import::open_store(&settings, &dir).await.map_err(|e| e.to_string())?;
    for chunk in common::records(MEMBERS, 0).chunks(500) {
        store.import(chunk).await.map_err(|e| e.to_string())?;
    }
    let host =
        Host::build(settings, &dir, Options { polling: false, scheduler: false }).await.map_err(|e| e.to_string())?;
    let router = host.router();
    // Payments waiting for review, submitted through the API as buyers do.
    let buyer = telegate::jwt::mint("bench-secret-bench-secret-bench-secret", "buyer", "user", None, 60)?;
    for i in 0..WAITING {
        let body = json!({ "offer_id": "monthly", "transaction_id": format!("TX-WAITING-{i}") }).to_string();
        let request = Request::post("/api/payments/pending-payments/create/")
            .header("authorization", format!("Bearer {buyer}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("a request");
        let response = router.clone().oneshot(request).await.expect("the router answers");
        assert_eq!(response.status(), 201);
    }
    let link = host.console_link("http://bench").map_err(|e| e.to_string())?;
    let signed_in = router
        .clone()
        .oneshot(Request::get(link.trim_start_matches("http://bench")).body(Body::empty()).expect("a request"))
        .await
        .expect("the router answers");
    let cookie = signed_in.headers()["set-cookie"].to_str().map_err(|e| e.to_string())?;
    let cookie = cookie.split(';').next().unwrap_or_default().to_owned();

    println!("| page | status | p50 (ms) | p95 (ms) | max (ms) | HTML (KB) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, path) in [
        ("payments queue (1,000 waiting, 25 a page)", "/console/payments"),
        ("all payments (101,000)", "/console/payments?status=all"),
        ("a member by Telegram id", "/console/members?q=1050000"),
        ("a payment by transaction id", "/console/payments?tx=tx-waiting-500"),
        ("overview (stats, six charts, health)", "/console/overview"),
        ("audit log", "/console/audit"),
        ("audit log: refused links only", "/console/audit?action=token_refused"),
        ("jobs", "/console/jobs"),
    ] {
        for _ in 0..20 {
            get(&router, path, &cookie).await;
        }
        let mut times = Vec::with_capacity(RUNS);
        let mut status_and_size = (0, 0);
        for _ in 0..RUNS {
            let t = Instant::now();
            status_and_size = get(&router, path, &cookie).await;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.1} |",
            status_and_size.0,
            at(0.5),
            at(0.95),
            at(1.0),
            status_and_size.1 as f64 / 1024.0
        );
    }
    let css = get(&router, "/console/console.css", "").await;
    println!("\nThe stylesheet: {:.1} KB.", css.1 as f64 / 1024.0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
