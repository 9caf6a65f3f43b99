//! Lambda function `scheduled-jobs` — EventBridge schedules: the jobs named by each rule's input.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::serve_function(telegate_lambda::Function::ScheduledJobs).await
}
