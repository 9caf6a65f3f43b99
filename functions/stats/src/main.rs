//! Lambda function `stats` — HTTP API: the admin's statistics, audit log and job runs.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("stats", telegate_lambda::http::admin_routes()).await
}
