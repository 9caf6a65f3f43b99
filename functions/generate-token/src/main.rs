//! Lambda function `generate-token` — HTTP API: a fresh token for a validated payment.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::GenerateToken).await
}
