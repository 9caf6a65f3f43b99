//! Lambda function `status` — HTTP API: the caller's memberships (reads the table only).

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("status", telegate_lambda::http::status_routes()).await
}
