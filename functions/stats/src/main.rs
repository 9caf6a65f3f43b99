//! Lambda function `stats`: statistics, audit log, running a job now (admin). Its routes or handler: `telegate_lambda::function`.

#[tokio::main]
async fn main() -> Result<(), telegate_lambda::Error> {
    telegate_lambda::run("stats").await
}
