//! Lambda function `generate-token` — HTTP API: a fresh token for a validated payment.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("generate-token", telegate_lambda::http::generate_token_routes()).await
}
