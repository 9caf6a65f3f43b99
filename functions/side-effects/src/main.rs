//! Lambda function `side-effects`: the SQS consumer of side effects (partial batch failures). Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("side-effects").await
}
