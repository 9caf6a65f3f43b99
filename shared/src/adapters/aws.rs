//! The AWS SDK configuration, built once per process: region and credentials from the usual
//! chain, `AWS_ENDPOINT_URL` (and the per-service variants) for a local stand-in, rustls on ring
//! with AWS's roots embedded.

use std::sync::Arc;

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore, rustls_provider::CryptoMode};

use super::dynamodb::DynamoStore;
use super::eventbridge::EventBridgeBus;
use super::ses::SesMailer;
use super::sqs::SqsQueue;
use crate::config::{AwsResources, Needs};

pub async fn sdk_config() -> aws_config::SdkConfig {
    loader().load().await
}

/// As `sdk_config`, every service at `endpoint` whatever the environment says (a test's stand-in).
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    loader().endpoint_url(endpoint).load().await
}

/// In Lambda: region and credentials are the ones Lambda puts in every function's environment
/// (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read
/// from there alone. The usual chain would also build the providers a function never uses (web
/// identity's STS client, profiles, the instance metadata client) at every cold start.
pub async fn lambda_sdk_config() -> aws_config::SdkConfig {
    use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
    loader()
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .region(EnvironmentVariableRegionProvider::new())
        .load()
        .await
}

fn loader() -> aws_config::ConfigLoader {
    // The builder does not refuse a trust store today; if it ever does, the SDK's default (the
    // platform's store) still trusts AWS, only slower to load.
    let tls = TlsContext::builder().with_trust_store(trust_store()).build().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the embedded AWS roots were refused: using the platform's store");
        TlsContext::default()
    });
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// The certificate authorities of AWS's endpoints (Amazon Trust Services: Amazon Root CA 1 to 4,
/// and Starfield Services Root G2 which cross-signs them), as Mozilla's set has them (a test checks
/// them against it). The SDK calls nothing else. Reading the platform's store instead cost 3 to
/// 4 ms at every cold start (BENCHMARKS.md); an operator who sets `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` (a proxy that inspects TLS) gets the platform's store as well.
const AWS_ROOTS: &str = include_str!("aws-roots.pem");

fn trust_store() -> TrustStore {
    let platform = std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some();
    TrustStore::empty().with_native_roots(platform).with_pem_certificate(AWS_ROOTS.as_bytes())
}

/// The AWS side of telegate, as the settings name it: the table, the queue, SES and the event bus.
/// Built the same way by the Lambda functions and by `telegate serve` with AWS settings; a
/// function builds only the clients it needs (`needs`), and has none of the others.
pub struct AwsAdapters {
    pub store: Arc<DynamoStore>,
    pub queue: Option<Arc<SqsQueue>>,
    pub mailer: Option<Arc<SesMailer>>,
    /// The event bus: business events, and the job runs an admin asks for.
    pub events: Option<Arc<EventBridgeBus>>,
}

impl AwsAdapters {
    /// `config`: `sdk_config` or, in Lambda, `lambda_sdk_config`.
    pub fn build(config: &aws_config::SdkConfig, aws: &AwsResources, needs: &Needs) -> Self {
        Self {
            store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(config), &aws.table)),
            queue: needs.queue.then(|| Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(config), &aws.queue_url))),
            mailer: needs.mail.then(|| {
                Arc::new(
                    SesMailer::new(aws_sdk_sesv2::Client::new(config), &aws.mail_from)
                        .with_configuration_set(aws.mail_configuration_set.clone()),
                )
            }),
            events: needs
                .events
                .then(|| Arc::new(EventBridgeBus::new(aws_sdk_eventbridge::Client::new(config), &aws.event_bus))),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The embedded roots are five certificates, each one of Mozilla's set as it is today.
    #[test]
    fn the_embedded_roots_are_aws_s_five_in_mozilla_s_set() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let roots: Vec<CertificateDer> = CertificateDer::pem_slice_iter(super::AWS_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .expect("PEM certificates");
        assert_eq!(roots.len(), 5);
        for root in &roots {
            assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.contains(root), "a root Mozilla's set no longer has");
        }
    }
}
