//! Lambda function `stats` — HTTP API: the admin's statistics, audit log and job runs.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Stats).await
}
