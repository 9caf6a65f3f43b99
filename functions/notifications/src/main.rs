//! Lambda function `notifications`: API Gateway routes of notifications. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("notifications").await
}
