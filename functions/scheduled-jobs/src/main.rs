//! Lambda function `scheduled-jobs`: EventBridge schedules; the event names the job. Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("scheduled-jobs").await
}
