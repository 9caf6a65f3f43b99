//! Lambda function `notifications` — HTTP API: in-app notifications.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Notifications).await
}
