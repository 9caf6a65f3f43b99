//! The Lambda side of telegate: each function's `main` calls one of `serve_http`, `serve_sqs` or
//! `serve_schedule`, which build the settings and AWS clients once per container and then run
//! the same core use cases as `telegate serve`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::Router;
use serde_json::{Value, json};

use telegate_core::adapters::aws::{AwsAdapters, SdkConfig, lambda_sdk_config};
use telegate_core::adapters::clock::SystemClock;
use telegate_core::adapters::dynamodb::DynamoPace;
use telegate_core::adapters::pace::PacedTelegram;
use telegate_core::adapters::sqs::{Delivery, SqsQueue};
use telegate_core::adapters::telegram::{BotApi, NoBot};
use telegate_core::app::effects::{Consumer, EffectRunner};
use telegate_core::app::{App, AppError};
use telegate_core::auth::JwtVerifier;
use telegate_core::config::{ConfigError, Needs, Settings};
use telegate_core::domain::{Job, RunId};
use telegate_core::http::{HttpState, finish};
use telegate_core::ports::{QueueError, Telegram};
use tracing::Instrument;

pub type Error = lambda_runtime::Error;
pub use lambda_runtime::Diagnostic;

/// Why a function does not start: one line in its log, naming the function and the setting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0} is not a telegate function")]
    UnknownFunction(String),
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error("TELEGATE_TEST_CLOCK is for the local host only, never in Lambda")]
    TestClock,
    #[error("missing setting TABLE_NAME (and QUEUE_URL, MAIL_FROM, EVENT_BUS_NAME): the template passes them")]
    NoAwsResources,
    #[error("the Telegram client: {0}")]
    Telegram(String),
    #[error(transparent)]
    Secret(#[from] telegate_core::adapters::secrets::SecretError),
}

/// Why a scheduled or requested job run failed; Lambda records its `errorType` (the runtime's
/// `Diagnostic`), and EventBridge retries the invocation.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The event names no job: a rule of the template is wrong; retrying cannot help.
    #[error("the event names no job: {0:?}")]
    UnknownJob(String),
    #[error("the event's run id is not one: {0:?}")]
    BadRunId(String),
    #[error("the job failed: {0}")]
    Failed(#[from] telegate_core::app::AppError),
}

impl From<JobError> for lambda_runtime::Diagnostic {
    fn from(e: JobError) -> Self {
        let error_type = match &e {
            JobError::UnknownJob(_) => "UnknownJob",
            JobError::BadRunId(_) => "BadRunId",
            JobError::Failed(_) => "JobFailed",
        };
        lambda_runtime::Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// The routers, for the functions' `main`s.
pub use telegate_core::http;

/// Everything a function needs, built once per container.
pub struct Wiring {
    pub app: App,
    pub verifier: Arc<JwtVerifier>,
    /// The effects queue (`None` for a function that queues nothing: status).
    pub queue: Option<Arc<SqsQueue>>,
    pub consumer: Arc<Consumer>,
}

impl Wiring {
    /// From the settings: a missing one is one clear line in the log and the function fails to start.
    /// `config`: the AWS SDK's (`lambda_sdk_config`).
    pub async fn build(settings: Settings, needs: Needs, config: &SdkConfig) -> Result<Self, StartupError> {
        if settings.test_clock {
            return Err(StartupError::TestClock);
        }
        let aws = settings.aws.clone().ok_or(StartupError::NoAwsResources)?;
        let adapters = AwsAdapters::build(config, &aws, &needs);
        let queue = adapters.queue();
        let AwsAdapters { store, queue: sqs, mailer, events, jobs } = adapters;
        let timeout = Duration::from_secs(u64::from(settings.telegram_timeout_seconds));
        // A function that makes no Bot API call is given no token (template.yaml). Those that
        // do take their turns from one pace, kept in the table for every function at once.
        let telegram: Arc<dyn Telegram> = match &settings.bot_token {
            Some(token) => Arc::new(PacedTelegram::new(
                Arc::new(
                    BotApi::new(token, &settings.telegram_api_url, settings.channel_id, timeout)
                        .map_err(StartupError::Telegram)?,
                ),
                Arc::new(DynamoPace::new(&store, settings.limits.telegram_per_second)),
            )),
            None => Arc::new(NoBot),
        };
        let clock = Arc::new(SystemClock);
        let consumer =
            Arc::new(Consumer::new(EffectRunner::new(telegram.clone(), mailer, events), store.clone(), clock.clone()));
        let verifier = Arc::new(JwtVerifier::new(&settings.jwt)?);
        let app = App { settings: Arc::new(settings), store, telegram, queue, clock, jobs };
        Ok(Self { app, verifier, queue: sqs, consumer })
    }

    /// A function's settings from its environment, its secrets read from Secrets Manager where
    /// the environment names them (`<NAME>_ARN`, as the template does): exactly the secrets it
    /// needs (`needs`). A missing setting or an unreadable secret is one line naming the
    /// function, and the function does not start.
    pub async fn from_env(name: &str) -> Result<Self, Error> {
        let built = async {
            let needs = needs(name).ok_or_else(|| StartupError::UnknownFunction(name.into()))?;
            let config = lambda_sdk_config().await;
            let env = |k: &str| std::env::var(k).ok();
            let secrets = telegate_core::adapters::secrets::read(&config, &env).await?;
            let settings = Settings::from_env_for(&|k| secrets.get(k).cloned().or_else(|| env(k)), needs)?;
            Self::build(settings, needs, &config).await
        };
        // CloudWatch reads the alarms' metrics from the log, under the stack's namespace.
        telegate_core::metrics::enable(&std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "telegate".into()));
        built.await.map_err(|e| {
            let line = format!("function {name}: {e}");
            tracing::error!("{line}");
            Error::from(line)
        })
    }

    /// One function's routes, finished with the JSON 404/405 answers.
    pub fn router(&self, routes: Router<HttpState>) -> Router {
        finish(routes, HttpState { app: self.app.clone(), verifier: self.verifier.clone() })
    }
}

pub const FUNCTIONS: [&str; 9] = [
    "payments",
    "generate-token",
    "notifications",
    "status",
    "revoke",
    "stats",
    "telegram-webhook",
    "side-effects",
    "scheduled-jobs",
];

/// The secrets each function is given (template.yaml passes exactly these): only the webhook, the
/// consumer and the jobs call Telegram (an admin's job run is started on the bus and runs in the
/// scheduled-jobs function); only the webhook needs its secret; every API function verifies API
/// tokens.
pub fn needs(name: &str) -> Option<Needs> {
    let (bot_token, webhook_secret, api_tokens) = match name {
        "payments" | "generate-token" | "notifications" | "status" | "revoke" | "stats" => (false, false, true),
        "telegram-webhook" => (true, true, false),
        "side-effects" | "scheduled-jobs" => (true, false, false),
        _ => return None,
    };
    // Status only reads; stats starts job runs on the bus; the consumer sends the mail and
    // publishes the business events.
    let queue = name != "status";
    let mail = name == "side-effects";
    let events = matches!(name, "stats" | "side-effects");
    Some(Needs { bot_token, webhook_secret, api_tokens, queue, mail, events })
}

/// A function's HTTP routes, by name (its `main` passes them to `serve_http`); for the tests and
/// the deployment check, which serve every function.
pub fn routes(name: &str) -> Option<Router<HttpState>> {
    use telegate_core::http::*;
    Some(match name {
        "payments" => payments_routes(),
        "generate-token" => generate_token_routes(),
        "notifications" => notifications_routes(),
        "status" => status_routes(),
        "revoke" => revoke_routes(),
        "stats" => admin_routes(),
        "telegram-webhook" => webhook_routes(),
        _ => return None,
    })
}

/// JSON logs to CloudWatch (`RUST_LOG` / `AWS_LAMBDA_LOG_LEVEL` pick the level).
pub fn init_logs() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// An API Gateway (HTTP API) or Function URL function `name` serving `routes`.
pub async fn serve_http(name: &str, routes: Router<HttpState>) -> Result<(), Error> {
    init_logs();
    let wiring = Wiring::from_env(name).await?;
    let mut router = wiring.router(routes);
    if name == "telegram-webhook" {
        router = router.layer(axum::middleware::map_response(count_webhook_answer));
    }
    lambda_http::run(router).await
}

/// Each answer to Telegram by status class: a handled 500 is no Lambda error, and Telegram
/// retries it (the `WebhookAnswers` alarm reads the `5xx`).
async fn count_webhook_answer(response: axum::response::Response) -> axum::response::Response {
    let class = match response.status().as_u16() {
        500.. => "5xx",
        400..=499 => "4xx",
        _ => "2xx",
    };
    telegate_core::metrics::count(telegate_core::metrics::Metric::WebhookAnswer { class });
    response
}

/// The SQS consumer: each record is handled and settled; the failures are reported so that only
/// they come back (`ReportBatchItemFailures`). A record is started only while the invocation has
/// time left for it (`deadline`): the ones it cannot start are put back as fresh copies (a receive
/// spent on a record never tried would bring it nearer the dead letters), or, if that fails,
/// reported as failures; either way they come back whole instead of being cut off half-way.
pub async fn handle_sqs(wiring: &Wiring, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
    let mut failures = Vec::new();
    // One record may take a Bot API call or two, each bounded by TELEGRAM_TIMEOUT_SECONDS.
    let needs = Duration::from_secs(2 * u64::from(wiring.app.settings.telegram_timeout_seconds) + 1);
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_record", message = %id);
        let settled = if SystemTime::now() + needs > deadline {
            span.in_scope(|| tracing::warn!("not started: the invocation is running out of time; put back"));
            let body = record.body.as_deref().unwrap_or_default();
            match &wiring.queue {
                Some(queue) => {
                    queue.put_back(body).await.inspect_err(|e| tracing::error!(error = %e, "not put back")).is_ok()
                }
                None => false,
            }
        } else {
            let delivery = Delivery {
                message_id: id.clone(),
                receipt_handle: record.receipt_handle.unwrap_or_default(),
                body: record.body.unwrap_or_default(),
                receive_count: record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            };
            // A function without the queue cannot settle a record: every one comes back.
            let handled = match &wiring.queue {
                Some(queue) => queue.handle(&wiring.consumer, &delivery).instrument(span.clone()).await,
                None => Err(QueueError("this function has no queue client (telegate_lambda::needs)".into())),
            };
            handled.unwrap_or_else(|e| {
                span.in_scope(|| tracing::error!(error = %e, "could not settle the message"));
                false
            })
        };
        if !settled {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

pub async fn serve_sqs(name: &str) -> Result<(), Error> {
    init_logs();
    let wiring = Arc::new(Wiring::from_env(name).await?);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let wiring = wiring.clone();
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        async move { Ok::<_, Error>(handle_sqs(&wiring, event.payload, deadline).await) }
    }))
    .await
}

/// An EventBridge schedule: the rule's input names the job (`{"job": "expire-tokens"}`); or a run
/// an admin asked for, from the bus (`detail: {job, run_id}`), recorded under its id.
/// No batch is started later than `deadline` minus a margin for the batch itself: a run cut short
/// leaves the rest to the next one (each job is idempotent and reads what is still due).
pub async fn handle_schedule(wiring: &Wiring, event: Value, deadline: SystemTime) -> Result<Value, JobError> {
    let name = event["job"].as_str().or_else(|| event["detail"]["job"].as_str()).unwrap_or_default();
    let job = Job::parse(name).map_err(|_| JobError::UnknownJob(name.into()))?;
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(JOB_MARGIN);
    let own = Duration::from_secs(u64::from(wiring.app.settings.limits.job_max_seconds));
    let until = std::time::Instant::now() + left.min(own);
    let app = &wiring.app;
    let run = match event["detail"]["run_id"].as_str() {
        Some(id) => {
            let id = RunId::parse(id).map_err(|_| JobError::BadRunId(id.into()))?;
            app.run_requested(job, &id, until).await
        }
        None => match app.run_job_until(job, "eventbridge", until).await {
            // A run an admin asked for is at it: this schedule's run is not needed twice.
            Err(AppError::Conflict { code: "job_running", message }) => {
                return Ok(json!({ "job": job.name(), "skipped": message }));
            }
            other => other,
        },
    }?;
    Ok(json!({ "job": job.name(), "processed": run.processed, "complete": run.complete }))
}

/// A failed run, and a run that stopped before its work was done, count for the job's alarm; a
/// complete run for the overdue alarm.
fn counted(job: &str, outcome: &Result<Value, JobError>) {
    use telegate_core::metrics::{Metric, count};
    match outcome {
        Ok(answer) if answer["complete"] == true => count(Metric::JobRunCompleted { job }),
        Ok(_) => {}
        Err(_) => count(Metric::JobRunFailed { job }),
    }
}

/// Time kept back from a scheduled invocation for the batch in progress to finish.
const JOB_MARGIN: Duration = Duration::from_secs(30);

pub async fn serve_schedule(name: &str) -> Result<(), Error> {
    init_logs();
    let wiring = Arc::new(Wiring::from_env(name).await?);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
        let wiring = wiring.clone();
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        async move {
            let job = event.payload["job"].as_str().or_else(|| event.payload["detail"]["job"].as_str());
            let job = job.unwrap_or_default().to_owned();
            let outcome = handle_schedule(&wiring, event.payload, deadline).await;
            counted(&job, &outcome);
            outcome
        }
    }))
    .await
}
