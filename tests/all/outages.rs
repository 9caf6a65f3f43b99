//! Outages that must lose nothing: Telegram down, or DynamoDB throttled, for three minutes during
//! the night's expiry run dead-letters no removal, and the ended member is out once it is back
//! (the retry policy's budget is longer than the outage). On the local host: its own queue, on
//! the app's clock; SQS, in real time. And a store that is down answers 503 on every route.

use std::time::Duration;

use crate::support::TestApp;

/// The app's clock moves `seconds` in `step`s, the queue given `pause` at each to try what is due.
async fn let_time_pass(app: &TestApp, seconds: i64, step: i64, pause: Duration) {
    for _ in 0..seconds / step {
        app.advance(step).await;
        tokio::time::sleep(pause).await;
    }
}

#[tokio::test]
async fn a_three_minute_telegram_outage_during_the_expiry_loses_no_removal_on_the_local_host() {
    // Telegram does not answer: each call is given up at the client's timeout (1 s here, so the
    // test is quick; 10 s by default). A 5xx would be the same to the queue, but teloxide waits
    // 10 s after each before answering.
    let app = TestApp::spawn_with(&[("TELEGRAM_TIMEOUT_SECONDS", "1")]).await;
    let members = [9401];
    for (i, account) in members.iter().enumerate() {
        app.member(&format!("outage-{i}"), &format!("TX-OUTAGE-{i}"), *account).await;
    }
    app.fake().set_outage(true);
    // Past the end: the expiry runs and queues the three removals, which meet the outage.
    app.advance(31 * 86_400).await;
    // Three minutes, in steps long enough for the queue to try what became due (the removal and
    // the notice, a second each).
    let_time_pass(&app, 180, 20, Duration::from_millis(2_300)).await;
    let tried = app.fake().calls_to("banChatMember").len();
    assert!(tried >= 3, "the removal was tried during the outage, and failed: {tried} calls");
    assert!(members.iter().all(|m| app.fake().member_status(*m) == "member"), "nobody removed while down");
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "nothing given up during the outage");

    app.fake().set_outage(false);
    let_time_pass(&app, 300, 30, Duration::from_millis(100)).await;
    app.drain().await;
    assert!(app.running().effects.dead_letters().await.unwrap().is_empty(), "nothing dead-lettered");
    for account in members {
        assert_eq!(app.fake().member_status(account), "kicked", "{account} removed once Telegram was back");
    }
}

/// A stand-in in front of the local AWS one that can be made to throttle every DynamoDB call
/// (`ThrottlingException`, which the SDK tries again, then gives up); the other services' calls
/// go through.
struct Failing {
    url: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// SQS receives answered "nothing", so that what is queued waits (`hold_receives`).
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Failing {
    async fn start() -> Self {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, Uri};
        use axum::response::IntoResponse;
        let upstream = std::env::var("AWS_ENDPOINT_URL").expect("the local AWS stand-in (infra/moto.sh)");
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, hold) = (down.clone(), held.clone());
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (upstream, down) = (upstream.clone(), flag.load(std::sync::atomic::Ordering::SeqCst));
            let held = hold.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let dynamodb = target.starts_with("DynamoDB_");
                if held && target.ends_with(".ReceiveMessage") {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return ([("content-type", "application/x-amz-json-1.0")], "{}").into_response();
                }
                if down && dynamodb {
                    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                    return (
                        axum::http::StatusCode::BAD_REQUEST,
                        [("content-type", "application/x-amz-json-1.0")],
                        body,
                    )
                        .into_response();
                }
                telegate_testkit::local_aws::pass_on(&upstream, method, &uri, &headers, body).await
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
        Self { url, down, held }
    }

    fn hold_receives(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::SeqCst);
    }

    fn stop(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn resume(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// DynamoDB throttling every call for three minutes while the night's removals are carried out,
/// on the local host running on AWS's parts (the SQS consumer, real time): nothing is
/// dead-lettered, and the ended member is out once DynamoDB answers again.
#[tokio::test]
async fn a_three_minute_dynamodb_throttle_during_the_expiry_loses_no_removal_on_the_local_host() {
    let stand_in = Failing::start().await;
    let app = TestApp::spawn_aws_through(&stand_in.url).await;
    let account = 9402;
    app.member("throttled", "TX-THROTTLE-1", account).await;
    // The expiry runs and queues the removal, which waits for DynamoDB to throttle.
    stand_in.hold_receives(true);
    tokio::time::sleep(Duration::from_secs(2)).await; // a long poll already waiting ends empty
    app.advance(31 * 86_400).await;
    stand_in.stop();
    stand_in.hold_receives(false);
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(180)).await;
    assert_eq!(app.fake().member_status(account), "member", "nothing removed while DynamoDB refused");
    stand_in.resume();
    while app.fake().member_status(account) != "kicked" {
        assert!(start.elapsed() < Duration::from_secs(600), "not removed 7 minutes after DynamoDB came back");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let queue = app.env["QUEUE_URL"].clone();
    assert_eq!(telegate_testkit::local_aws::dead_letters(&queue).await.unwrap(), 0, "nothing dead-lettered");
}

/// Whether `response` is the answer to an outage: 503, `Retry-After`, the JSON error (the
/// console's: its page saying so).
async fn is_outage_answer(response: axum::response::Response) -> Result<(), String> {
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let html = response.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let said = if html {
        String::from_utf8_lossy(&body).contains("try again shortly").then_some("unavailable")
    } else {
        json["error"]["code"].as_str()
    };
    match (status, retry.as_deref(), said) {
        (503, Some("5"), Some("unavailable")) => Ok(()),
        other => Err(format!("{other:?}: {}", String::from_utf8_lossy(&body))),
    }
}

/// Every route of every function, on DynamoDB that stops answering: 503 with `Retry-After`, never
/// a 500; and the same requests go through once it is back.
#[tokio::test]
async fn a_store_outage_answers_503_with_retry_after_on_every_route_on_dynamodb() {
    use tower::ServiceExt;
    let stand_in = Failing::start().await;
    let config = telegate_core::adapters::aws::sdk_config_at(&stand_in.url).await;
    let (_telegram, wiring) = crate::lambda_events::wiring_with(&config).await;
    telegate_testkit::samples::seed(wiring.store()).await.unwrap();
    let expected: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/expected.json", crate::lambda_events::EVENTS)).unwrap(),
    )
    .unwrap();
    // The requests a function serves and that reach the store (the others are refused before).
    let requests: Vec<(String, &str)> = expected
        .iter()
        .filter(|c| c["status"].as_u64().is_some_and(|s| s < 300))
        .filter_map(|c| {
            let name = c["function"].as_str()?;
            let _http = wiring.named(name).router()?;
            let file = c["file"].as_str()?;
            Some((std::fs::read_to_string(format!("{}/{file}", crate::lambda_events::EVENTS)).ok()?, name))
        })
        .collect();
    assert!(requests.len() >= 10, "the samples cover the routes: {}", requests.len());

    stand_in.stop();
    let answers = futures_util::future::join_all(requests.iter().map(|(text, name)| {
        let router = wiring.named(name).router().unwrap();
        let request = lambda_http::request::from_str(text).unwrap();
        async move { (name, router.oneshot(request).await.unwrap()) }
    }))
    .await;
    for (name, response) in answers {
        is_outage_answer(response).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // Back: each request, sent again, is answered as if the outage had never been.
    stand_in.down.store(false, std::sync::atomic::Ordering::SeqCst);
    for (text, name) in &requests {
        let request = lambda_http::request::from_str(text).unwrap();
        let response = wiring.named(name).router().unwrap().oneshot(request).await.unwrap();
        assert!(response.status().is_success(), "{name}: {}", response.status());
    }
}

/// The embedded store that cannot be written (another process holds it): a payment submitted and
/// a Telegram update answer 503 with `Retry-After` after the store's wait; both go through after.
#[tokio::test]
async fn a_store_outage_answers_503_with_retry_after_on_sqlite() {
    let app = TestApp::spawn().await;
    let path = app.data.0.join(telegate::local_env::STORE_FILE);
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let jwt = app.jwt("outage-buyer", "user");
    let submit = || {
        app.http
            .post(format!("{}/api/payments/pending-payments/create/", app.base))
            .bearer_auth(&jwt)
            .json(&serde_json::json!({"offer_id": "monthly", "transaction_id": "TX-OUTAGE-SQLITE"}))
            .send()
    };
    let refused = submit().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    holder.execute_batch("ROLLBACK").unwrap();
    let accepted = submit().await.unwrap();
    assert_eq!(accepted.status().as_u16(), 201, "nothing half-written by the refused one");
}
