//! Lambda function `status` — HTTP API: the caller's memberships (reads the table only).

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Status).await
}
