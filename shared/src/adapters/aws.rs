//! The AWS SDK configuration, built once per process: region and credentials from the usual
//! chain, `AWS_ENDPOINT_URL` (and the per-service variants) for a local stand-in, rustls on ring.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
}

/// The AWS side of telegate, as the settings name it: the table, the queue, SES and the event bus.
/// Built the same way by the Lambda functions and by `telegate serve` with AWS settings.
pub struct AwsAdapters {
    pub store: std::sync::Arc<super::dynamodb::DynamoStore>,
    pub queue: std::sync::Arc<super::sqs::SqsQueue>,
    pub mailer: std::sync::Arc<super::ses::SesMailer>,
    pub events: std::sync::Arc<super::eventbridge::EventBridgeBus>,
}

impl AwsAdapters {
    pub async fn build(aws: &crate::config::AwsResources) -> Self {
        use std::sync::Arc;
        let config = sdk_config().await;
        Self {
            store: Arc::new(super::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &aws.table)),
            queue: Arc::new(super::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(&config), &aws.queue_url)),
            mailer: Arc::new(
                super::ses::SesMailer::new(aws_sdk_sesv2::Client::new(&config), &aws.mail_from)
                    .with_configuration_set(aws.mail_configuration_set.clone()),
            ),
            events: Arc::new(super::eventbridge::EventBridgeBus::new(
                aws_sdk_eventbridge::Client::new(&config),
                &aws.event_bus,
            )),
        }
    }
}
