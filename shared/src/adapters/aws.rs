//! The AWS SDK configuration, built once per process: region and credentials from the usual
//! chain, `AWS_ENDPOINT_URL` (and the per-service variants) for a local stand-in, rustls on ring.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http).load().await
}
