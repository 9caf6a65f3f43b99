//! An outage loses nothing, through the functions `sam build` produced: a night's expiry queues
//! its removals, then for `OUTAGE_SECONDS` (180) Telegram answers every call with 502 (one
//! scenario) or DynamoDB throttles every call (the other), while the queue is delivered to the
//! consumer as Lambda's event source does it (the queue's visibility, the receive counts, the
//! redrive to the dead-letter queue after `maxReceiveCount`). Afterwards every ended member is out
//! of the channel and the dead-letter queue is empty. Each scenario has its own resources, bot and
//! DynamoDB endpoint, and runs beside the rest of the check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::ports::{ImportStore, Written};
use telegate_testkit::fake_telegram::FakeTelegram;

use super::Platform;
use super::flow::deliver;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Every Bot API call answered 502 Bad Gateway.
    Telegram,
    /// Every DynamoDB call answered `ThrottlingException`.
    DynamoDb,
}

const MEMBERS: [i64; 2] = [881_001, 881_002];

/// DynamoDB for the scenario's functions: the stand-in, or a throttle while `throttled`.
struct Throttle {
    url: String,
    throttled: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Throttle {
    async fn start() -> Result<Self, String> {
        let upstream = std::env::var("AWS_ENDPOINT_URL").map_err(|_| "AWS_ENDPOINT_URL is not set")?;
        let (throttled, refused) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (on, count) = (throttled.clone(), refused.clone());
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (upstream, on, count) = (upstream.clone(), on.clone(), count.clone());
            async move {
                if on.load(Ordering::SeqCst) {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                    return (StatusCode::BAD_REQUEST, [("content-type", "application/x-amz-json-1.0")], body)
                        .into_response();
                }
                telegate_testkit::local_aws::pass_on(&upstream, method, &uri, &headers, body).await
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
        Ok(Self { url, throttled, refused })
    }
}

fn outage_length() -> Duration {
    let seconds = std::env::var("OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    Duration::from_secs(seconds)
}

pub async fn run(base: &Platform, fault: Fault) -> Result<String, String> {
    let telegram = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    let throttle = Throttle::start().await?;
    let mut platform = base.clone();
    for (k, v) in telegate_testkit::local_aws::provision().await? {
        platform.resources.insert(k.to_owned(), v);
    }
    platform.telegram_url = telegram.url.clone();
    platform.logs = base.logs.join(format!("outage-{fault:?}").to_lowercase());
    std::fs::create_dir_all(&platform.logs).map_err(|e| e.to_string())?;
    platform.extra_env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), throttle.url.clone()));

    // Two members whose period ended an hour ago, in the channel.
    let config = telegate_core::adapters::aws::sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &platform.resources["TABLE_NAME"]);
    let now = chrono::Utc::now();
    for (i, account) in MEMBERS.iter().enumerate() {
        let tx = format!("TX-OUTAGE-{fault:?}-{i}");
        let records = telegate_testkit::samples::paid_member(
            &format!("outage-{i}"),
            *account,
            &tx,
            now - chrono::Duration::days(31),
            now - chrono::Duration::hours(1),
        );
        let written = store.import(&records).await.map_err(|e| e.to_string())?;
        super::flow::expect(written.iter().all(|w| *w == Written::New), "the members could not be written")?;
        telegram.fake.set_member_status(*account, "member");
    }
    // The night's expiry, then the outage while its removals are being carried out.
    let answer: Value = serde_json::from_str(
        &platform.invoke("scheduled-jobs", platform.schedule_input("expire-subscriptions")?).await?,
    )
    .map_err(|e| format!("scheduled-jobs: {e}"))?;
    super::flow::expect(answer["processed"].as_u64() == Some(2), &format!("expiry: {answer}"))?;
    let set = |down: bool| match fault {
        Fault::Telegram => telegram.fake.set_server_errors(down),
        Fault::DynamoDb => throttle.throttled.store(down, Ordering::SeqCst),
    };
    set(true);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let (length, start) = (outage_length(), Instant::now());
    let give_up = length + Duration::from_secs(600);
    let (mut invocations, mut retried, mut during) = (0, 0, 0);
    let mut down = true;
    loop {
        if down && start.elapsed() >= length {
            set(false);
            down = false;
        }
        let (received, failed) = deliver(&platform, &sqs, None).await?;
        if received > 0 {
            invocations += 1;
            retried += failed.len();
            during += usize::from(down);
        }
        let out = MEMBERS.iter().all(|m| telegram.fake.member_status(*m) == "kicked");
        if !down && out && received == 0 && backlog(&sqs, &platform.resources["QUEUE_URL"]).await? == 0 {
            break;
        }
        if start.elapsed() > give_up {
            return Err(format!(
                "{fault:?}: not done {give_up:?} after the outage began (logs: {})",
                platform.logs.display()
            ));
        }
        if received == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let dead = telegate_testkit::local_aws::dead_letters(&platform.resources["QUEUE_URL"]).await?;
    super::flow::expect(dead == 0, &format!("{fault:?}: {dead} effects in the dead-letter queue"))?;
    super::flow::expect(during > 0 && retried > 0, &format!("{fault:?}: the outage met no delivery"))?;
    let hit = match fault {
        Fault::Telegram => telegram.fake.calls_to("banChatMember").len() > 1,
        Fault::DynamoDb => throttle.refused.load(Ordering::SeqCst) > 0,
    };
    super::flow::expect(hit, &format!("{fault:?}: the fault was never met"))?;
    Ok(format!(
        "{fault:?} down for {} s during the expiry: {invocations} deliveries, {retried} records retried, both members out after {} s, no dead letter",
        length.as_secs(),
        start.elapsed().as_secs()
    ))
}

/// Messages in the queue, visible or not.
async fn backlog(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<usize, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| format!("SQS attributes: {e:?}"))?;
    Ok(out.attributes.unwrap_or_default().values().filter_map(|v| v.parse::<usize>().ok()).sum())
}
