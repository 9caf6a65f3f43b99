//! Lambda function `telegram-webhook` — its Function URL: Telegram's updates.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::TelegramWebhook).await
}
