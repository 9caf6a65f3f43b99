//! Lambda function `side-effects` — SQS: the queued effects (Telegram calls, emails, business events).

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::SideEffects).await
}
