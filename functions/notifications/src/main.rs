//! Lambda function `notifications` — HTTP API: in-app notifications.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("notifications", telegate_lambda::http::notifications_routes()).await
}
