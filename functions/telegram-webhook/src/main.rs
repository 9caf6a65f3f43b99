//! Lambda function `telegram-webhook` — its Function URL: Telegram's updates.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("telegram-webhook", telegate_lambda::http::webhook_routes()).await
}
