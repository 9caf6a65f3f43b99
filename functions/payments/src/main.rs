//! Lambda function `payments`: API Gateway routes of payments. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("payments").await
}
