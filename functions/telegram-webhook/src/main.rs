//! Lambda function `telegram-webhook`: Telegram's webhook. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("telegram-webhook").await
}
