//! Lambda function `console` — HTTP API: the console's pages for support and admins (`/console/…`).

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Console).await
}
