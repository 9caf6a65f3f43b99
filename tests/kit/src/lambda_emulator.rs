//! A small emulator of the Lambda Runtime API: it runs a function's `bootstrap` as Lambda does
//! (the environment given, `AWS_LAMBDA_RUNTIME_API` pointing at itself), hands it events one by
//! one and collects the answers. The cold-start benchmark and the check of what `sam build`
//! produced both run the functions through it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::mpsc;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events");
/// The hello-world floor of the benchmark: its answer is only a status.
pub const FLOOR: &str = "floor";
/// Each function of the design card with the sample event it answers first.
pub const SAMPLES: [(&str, &str); 10] = [
    ("payments", "payments/mine.json"),
    ("generate-token", "generate-token/generate.json"),
    ("notifications", "notifications/list.json"),
    ("status", "status/status.json"),
    ("revoke", "revoke/revoke.json"),
    ("stats", "stats/stats.json"),
    ("telegram-webhook", "telegram-webhook/start.json"),
    ("side-effects", "side-effects/batch.json"),
    ("scheduled-jobs", "scheduled-jobs/expire-tokens.json"),
    ("console", "console/payments.json"),
];
/// Longer than any function takes to start and answer, even emulated (qemu) on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(120);

enum Seen {
    Next(Instant),
    Response(Instant, String),
    Error(String),
}

struct Runtime {
    events: Mutex<VecDeque<String>>,
    seen: mpsc::UnboundedSender<Seen>,
    /// The function's timeout: each invocation's deadline is this far from its start.
    timeout: Duration,
}

async fn next(State(rt): State<Arc<Runtime>>) -> (HeaderMap, String) {
    let _ = rt.seen.send(Seen::Next(Instant::now()));
    let event = rt.events.lock().unwrap().pop_front();
    // No more events: hold the call, as Lambda does while a container is frozen.
    let Some(event) = event else { std::future::pending().await };
    let mut headers = HeaderMap::new();
    let deadline = chrono::Utc::now().timestamp_millis() + rt.timeout.as_millis() as i64;
    headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_static("bench-request"));
    headers.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:bench"),
    );
    headers.insert("lambda-runtime-trace-id", HeaderValue::from_static("Root=1-00000000-000000000000000000000000"));
    (headers, event)
}

async fn response(State(rt): State<Arc<Runtime>>, UrlPath(_id): UrlPath<String>, body: String) -> StatusCode {
    let _ = rt.seen.send(Seen::Response(Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, body: String) -> StatusCode {
    let _ = rt.seen.send(Seen::Error(body));
    StatusCode::ACCEPTED
}

/// What one cold start of a function did.
pub struct Run {
    /// From exec to the first `GET …/invocation/next`.
    pub init: Duration,
    /// From exec to the response to the first event.
    pub first: Duration,
    pub peak_rss_kib: u64,
    /// The function's answers, in order.
    pub answers: Vec<String>,
}

/// Starts `command` (a `bootstrap`, or an emulator and its arguments before it) under a fresh
/// Runtime API, feeds it `events` one by one, and measures; each invocation has 30 seconds.
pub async fn invoke(
    command: &[PathBuf],
    env: &HashMap<String, String>,
    events: Vec<String>,
    log: &Path,
) -> Result<Run, String> {
    invoke_with_timeout(command, env, events, log, Duration::from_secs(30)).await
}

/// As `invoke`, with the function's own timeout (the deadline each invocation is given).
pub async fn invoke_with_timeout(
    command: &[PathBuf],
    env: &HashMap<String, String>,
    events: Vec<String>,
    log: &Path,
    timeout: Duration,
) -> Result<Run, String> {
    let (program, args) = command.split_first().ok_or("no command")?;
    let binary = command.last().ok_or("no command")?;
    let (seen, mut rx) = mpsc::unbounded_channel();
    let count = events.len();
    let runtime = Arc::new(Runtime { events: Mutex::new(events.into()), seen, timeout });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let pid = child.id().ok_or("no pid")?;

    let mut init = None;
    let mut first = None;
    let mut answers = Vec::new();
    let outcome = tokio::time::timeout(TIMEOUT, async {
        while let Some(event) = rx.recv().await {
            match event {
                Seen::Next(at) => {
                    init.get_or_insert(at - started);
                }
                Seen::Response(at, body) => {
                    first.get_or_insert(at - started);
                    answers.push(body);
                    if answers.len() == count {
                        return Ok(());
                    }
                }
                Seen::Error(body) => return Err(format!("the function reported an error: {body}")),
            }
        }
        Err("the emulator stopped".to_owned())
    })
    .await;
    let peak_rss_kib = peak_rss_kib(pid);
    let _ = child.kill().await;
    server.abort();
    outcome.map_err(|_| format!("{}: no answer within {} s", binary.display(), TIMEOUT.as_secs()))??;
    Ok(Run {
        init: init.ok_or("no next call")?,
        first: first.ok_or("no response")?,
        peak_rss_kib: peak_rss_kib?,
        answers,
    })
}

fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM".to_owned())
}

/// A sample event from `events/`.
pub fn sample(file: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}/{file}")).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// What `events/expected.json` says the answer to `file` is, checked on the function's answer.
pub fn check(expected: &[Value], name: &str, file: &str, answer: &str) -> Result<String, String> {
    let answer: Value = serde_json::from_str(answer).map_err(|e| format!("{name}: answer is not JSON: {e}"))?;
    if name == FLOOR {
        return Ok(answer["statusCode"].to_string());
    }
    let case = expected.iter().find(|c| c["file"] == file).ok_or(format!("{file} is not in expected.json"))?;
    let (got, want) = if let Some(status) = case.get("status") {
        (answer["statusCode"].clone(), status.clone())
    } else if let Some(job) = case.get("job") {
        (answer["job"].clone(), job.clone())
    } else {
        let failures: Vec<Value> = answer["batchItemFailures"]
            .as_array()
            .map(|a| a.iter().map(|f| f["itemIdentifier"].clone()).collect())
            .unwrap_or_default();
        (Value::from(failures), case["failures"].clone())
    };
    if got == want { Ok(got.to_string()) } else { Err(format!("{name} ({file}): answered {got}, expected {want}")) }
}
