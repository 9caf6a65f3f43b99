//! Fresh AWS resources on a local stand-in (moto), as `template.yaml` would create them in an
//! account: the table, the effects queue with its dead-letter queue (redrive after 5), a
//! verified sender and the business events' bus. Used by the tests and the benchmarks; never by the product.

use aws_sdk_sqs::types::QueueAttributeName;
use telegate_core::adapters::aws::sdk_config;
use telegate_core::adapters::dynamodb::DynamoStore;

pub const MAIL_FROM: &str = "telegate@example.com";

/// `prefix-` and 12 random hex digits: names that do not collide on a shared stand-in.
pub fn unique(prefix: &str) -> String {
    let mut rand = [0u8; 6];
    getrandom::fill(&mut rand).expect("OS random source");
    format!("{prefix}-{}", rand.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A fresh table; its name.
pub async fn table() -> Result<String, String> {
    let config = sdk_config().await;
    let table = unique("telegate");
    DynamoStore::create_table(&aws_sdk_dynamodb::Client::new(&config), &table)
        .await
        .map_err(|e| format!("create the table: {e}"))?;
    Ok(table)
}

/// A fresh table, queue, sender and event bus, as the settings name them (`TABLE_NAME`,
/// `QUEUE_URL`, `MAIL_FROM`, `EVENT_BUS_NAME`).
pub async fn provision() -> Result<Vec<(&'static str, String)>, String> {
    let table = table().await?;
    let config = sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = sqs.create_queue().queue_name(unique("telegate-dlq")).send().await.map_err(|e| format!("DLQ: {e}"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(dlq.queue_url.unwrap_or_default())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("DLQ arn: {e}"))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or("the DLQ has no arn")?;
    let queue = sqs
        .create_queue()
        .queue_name(unique("telegate-effects"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": telegate_core::app::effects::RetryPolicy::SQS.attempts}).to_string(),
        )
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .map_err(|e| format!("create the queue: {e}"))?;
    aws_sdk_sesv2::Client::new(&config)
        .create_email_identity()
        .email_identity(MAIL_FROM)
        .send()
        .await
        .map_err(|e| format!("verify the sender: {e}"))?;
    let configuration_set = unique("telegate-mail");
    aws_sdk_sesv2::Client::new(&config)
        .create_configuration_set()
        .configuration_set_name(&configuration_set)
        .send()
        .await
        .map_err(|e| format!("create the mail configuration set: {e}"))?;
    let bus = unique("telegate-events");
    aws_sdk_eventbridge::Client::new(&config)
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .map_err(|e| format!("create the event bus: {e}"))?;
    Ok(vec![
        ("TABLE_NAME", table),
        ("QUEUE_URL", queue.queue_url.unwrap_or_default()),
        ("MAIL_FROM", MAIL_FROM.into()),
        ("EVENT_BUS_NAME", bus),
        ("MAIL_CONFIGURATION_SET", configuration_set),
    ])
}

/// How many messages the dead-letter queue of the queue at `queue_url` holds (its redrive policy
/// names it).
pub async fn dead_letters(queue_url: &str) -> Result<usize, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws_sdk_sqs::Client::new(&telegate_core::adapters::aws::sdk_config().await);
    let attribute = |url: String, name: QueueAttributeName| {
        let sqs = sqs.clone();
        async move {
            let out = sqs.get_queue_attributes().queue_url(url).attribute_names(name.clone()).send().await;
            out.map_err(|e| e.to_string())?
                .attributes
                .and_then(|a| a.get(&name).cloned())
                .ok_or_else(|| "no such attribute".to_owned())
        }
    };
    let redrive: serde_json::Value =
        serde_json::from_str(&attribute(queue_url.into(), QueueAttributeName::RedrivePolicy).await?)
            .map_err(|e| e.to_string())?;
    let name = redrive["deadLetterTargetArn"].as_str().and_then(|a| a.rsplit(':').next()).ok_or("no DLQ")?;
    let dlq = sqs.get_queue_url().queue_name(name).send().await.map_err(|e| e.to_string())?;
    let count = attribute(dlq.queue_url.unwrap_or_default(), QueueAttributeName::ApproximateNumberOfMessages).await?;
    count.parse().map_err(|e: std::num::ParseIntError| e.to_string())
}

/// A fresh secret on the stand-in holding `value` (as `SecretString`); its ARN.
pub async fn secret(value: &str) -> Result<String, String> {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let created = client
        .create_secret()
        .name(unique("telegate-secret"))
        .secret_string(value)
        .send()
        .await
        .map_err(|e| format!("create a secret: {e}"))?;
    created.arn.ok_or_else(|| "a secret without an ARN".into())
}

/// Passes one call on to the stand-in at `upstream` as it came (a test's proxy in front of it):
/// its answer's status, content type and body.
pub async fn pass_on(
    upstream: &str,
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut request = reqwest::Client::new().request(method, format!("{upstream}{}", uri.path()));
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let answer = match request.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            return (axum::http::StatusCode::BAD_GATEWAY, format!("the stand-in did not answer: {e}")).into_response();
        }
    };
    let status =
        axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get("content-type").cloned();
    let mut response = (status, answer.bytes().await.unwrap_or_default()).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}
