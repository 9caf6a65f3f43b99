//! Lambda function `revoke` — HTTP API: the admin's revoke and support's reinstatement.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_http("revoke", telegate_lambda::http::revoke_routes()).await
}
