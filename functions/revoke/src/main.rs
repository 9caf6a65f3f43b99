//! Lambda function `revoke` — HTTP API: the admin's revoke and support's reinstatement.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::Revoke).await
}
