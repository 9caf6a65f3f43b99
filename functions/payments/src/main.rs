//! Lambda function `payments` — HTTP API: submit, list, validate and reject payments.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("payments", telegate_lambda::http::payments_routes()).await
}
