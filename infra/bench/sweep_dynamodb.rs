//! The expiry sweep and the stats read on DynamoDB (AWS's DynamoDB Local, started by
//! infra/dynamodb-local.sh: `AWS_ENDPOINT_URL_DYNAMODB`), with 1k, 10k and 100k active memberships
//! of which 100 are due: time, items read, and the capacity DynamoDB reports consumed (a proxy in
//! front of it asks every call for `ReturnConsumedCapacity: TOTAL` and adds up the answers).
//! Run: `cargo run --release --example sweep-dynamodb`. Prints a Markdown table.

#[path = "common.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use telegate_core::adapters::clock::SystemClock;
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::app::Ports;
use telegate_core::config::Settings;
use telegate_core::domain::Job;
use telegate_core::ports::{ImportStore, Stats};

use common::{CountingQueue, NoTelegram};

const DUE: usize = 100;
const STATS_READS: usize = 50;

/// What the calls through the proxy consumed and read.
#[derive(Default, Clone, Copy)]
struct Usage {
    read_units: f64,
    write_units: f64,
    items_read: u64,
    calls: u64,
}

struct Proxy {
    upstream: String,
    usage: Mutex<Usage>,
}

fn capacity(answer: &Value, usage: &mut Usage) {
    let entries: Vec<&Value> = match &answer["ConsumedCapacity"] {
        Value::Array(list) => list.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    };
    for c in entries {
        usage.read_units += c["ReadCapacityUnits"].as_f64().unwrap_or(0.0);
        usage.write_units += c["WriteCapacityUnits"].as_f64().unwrap_or(0.0);
        // DynamoDB Local reports only the total for some operations.
        if c["ReadCapacityUnits"].is_null() && c["WriteCapacityUnits"].is_null() {
            usage.read_units += c["CapacityUnits"].as_f64().unwrap_or(0.0);
        }
    }
    usage.items_read += answer["Count"].as_u64().unwrap_or(0);
    usage.items_read += u64::from(answer["Item"].is_object());
    if let Some(responses) = answer["Responses"].as_object() {
        usage.items_read += responses.values().filter_map(Value::as_array).map(|a| a.len() as u64).sum::<u64>();
    }
}

async fn forward(State(p): State<Arc<Proxy>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    // Ask for the capacity (DynamoDB Local does not check request signatures).
    let mut request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(o) = request.as_object_mut() {
        o.insert("ReturnConsumedCapacity".into(), Value::String("TOTAL".into()));
    }
    let body = serde_json::to_vec(&request).map(Bytes::from).unwrap_or(body);
    let answer = telegate_testkit::local_aws::pass_on(&p.upstream, method, &uri, &headers, body).await;
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX).await.unwrap_or_default();
    if let Ok(parsed) = serde_json::from_slice::<Value>(&bytes) {
        let mut usage = p.usage.lock().unwrap();
        usage.calls += 1;
        capacity(&parsed, &mut usage);
    }
    (status, [("content-type", "application/x-amz-json-1.0")], bytes).into_response()
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .map_err(|_| "AWS_ENDPOINT_URL_DYNAMODB must point at DynamoDB Local (infra/bench/run.sh starts it)")?;
    let proxy = Arc::new(Proxy { upstream, usage: Mutex::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let proxy_url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let router = axum::Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let config = telegate_core::adapters::aws::sdk_config().await;
    let direct = aws_sdk_dynamodb::Client::new(&config);
    let through_proxy = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(&proxy_url).build(),
    );
    let env = [
        ("TELEGRAM_BOT_USERNAME", "bench_bot"),
        ("TELEGRAM_CHANNEL_ID", "-100"),
        ("TELEGRAM_WEBHOOK_SECRET", "bench"),
        ("JWT_HS256_SECRET", "bench-secret-bench-secret-bench-secret"),
    ];
    let settings = Arc::new(
        Settings::from_env(&|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
            .map_err(|e| e.to_string())?,
    );

    println!(
        "| memberships | due | sweep (ms) | processed | items read | read units | write units | read / due row | write / due row | stats read median (ms) | stats read units |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [1_000, 10_000, 100_000] {
        let table = format!("sweep-bench-{n}-{}", std::process::id());
        DynamoStore::create_table(&direct, &table).await.map_err(|e| e.to_string())?;
        let seeding = DynamoStore::new(direct.clone(), &table);
        let all = common::records(n, DUE);
        for chunk in all.chunks(500) {
            seeding.import(chunk).await.map_err(|e| e.to_string())?;
        }
        let store = Arc::new(DynamoStore::new(through_proxy.clone(), &table));
        let queue = Arc::new(CountingQueue::default());
        let app = Ports {
            settings: settings.clone(),
            store: store.clone(),
            telegram: Some(Arc::new(NoTelegram)),
            queue: Some(queue),
            clock: Arc::new(SystemClock),
            jobs: None,
        }
        .jobs()
        .map_err(|e| e.to_string())?;
        *proxy.usage.lock().unwrap() = Usage::default();
        let t = Instant::now();
        let run = app.run_job(Job::ExpireSubscriptions, "bench").await.map_err(|e| e.to_string())?;
        let sweep_ms = t.elapsed().as_secs_f64() * 1e3;
        let sweep = *proxy.usage.lock().unwrap();

        let mut reads = Vec::new();
        *proxy.usage.lock().unwrap() = Usage::default();
        for _ in 0..STATS_READS {
            let t = Instant::now();
            store.counters(Utc::now()).await.map_err(|e| e.to_string())?;
            reads.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let stats_units = proxy.usage.lock().unwrap().read_units / STATS_READS as f64;
        reads.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| {n} | {DUE} | {sweep_ms:.0} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {stats_units:.1} |",
            run.processed,
            sweep.items_read,
            sweep.read_units,
            sweep.write_units,
            sweep.read_units / DUE as f64,
            sweep.write_units / DUE as f64,
            reads[reads.len() / 2],
        );
    }
    Ok(())
}
