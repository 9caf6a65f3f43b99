//! Lambda function `revoke`: API Gateway routes of revoke. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("revoke").await
}
