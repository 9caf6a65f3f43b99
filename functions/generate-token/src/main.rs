//! Lambda function `generate-token`: API Gateway routes of generate-token. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("generate-token").await
}
