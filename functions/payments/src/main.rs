//! Lambda function `payments` — HTTP API: submit, list, validate and reject payments.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Payments).await
}
