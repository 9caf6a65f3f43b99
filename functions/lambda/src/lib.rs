//! The Lambda side of telegate: each function's `main` calls `serve_function` with its
//! `Function`, which builds the settings, the AWS clients and only the services the function
//! serves once per container, then runs the same core use cases as `telegate serve`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use axum::Router;
use serde_json::{Value, json};

use telegate_core::adapters::aws::{AwsAdapters, SdkConfig, lambda_sdk_config};
use telegate_core::adapters::clock::SystemClock;
use telegate_core::adapters::dynamodb::DynamoPace;
use telegate_core::adapters::eventbridge::EventBridgeBus;
use telegate_core::adapters::pace::PacedTelegram;
use telegate_core::adapters::ses::SesMailer;
use telegate_core::adapters::sqs::{Delivery, SqsQueue};
use telegate_core::adapters::telegram::BotApi;
use telegate_core::app::effects::{Consumer, EffectRunner};
use telegate_core::app::{AppError, Jobs, Ports};
use telegate_core::auth::JwtVerifier;
use telegate_core::config::{ConfigError, Needs, Settings};
use telegate_core::domain::{Job, RunId};
use telegate_core::ports::{JobStarter, Queue, Telegram};
use tracing::Instrument;

pub type Error = lambda_runtime::Error;
pub use lambda_runtime::Diagnostic;

/// Why a function does not start: one line in its log, naming the function and the setting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Missing(#[from] telegate_core::app::Missing),
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
    #[error("the console: {0}")]
    Console(AppError),
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

/// The telegate functions, as the template names them (`Binary:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Payments,
    GenerateToken,
    Notifications,
    Status,
    Revoke,
    Stats,
    TelegramWebhook,
    SideEffects,
    ScheduledJobs,
    Console,
}

impl Function {
    pub const ALL: [Self; 10] = [
        Self::Payments,
        Self::GenerateToken,
        Self::Notifications,
        Self::Status,
        Self::Revoke,
        Self::Stats,
        Self::TelegramWebhook,
        Self::SideEffects,
        Self::ScheduledJobs,
        Self::Console,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Payments => "payments",
            Self::GenerateToken => "generate-token",
            Self::Notifications => "notifications",
            Self::Status => "status",
            Self::Revoke => "revoke",
            Self::Stats => "stats",
            Self::TelegramWebhook => "telegram-webhook",
            Self::SideEffects => "side-effects",
            Self::ScheduledJobs => "scheduled-jobs",
            Self::Console => "console",
        }
    }

    /// The function a binary of the template is (`Binary:`), if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The secrets and AWS clients the function is given (template.yaml passes exactly these):
    /// only the webhook, the consumer and the jobs call Telegram (an admin's job run is started
    /// on the bus and runs in the scheduled-jobs function); only the webhook needs its secret;
    /// every API function verifies API tokens. Status and the notifications only read and mark
    /// read; stats starts job runs on the bus; the consumer sends the mail and publishes the
    /// business events. The console checks Telegram's launch data with the bot's token (and reads
    /// the channel's administrators), the identity provider's tokens as the API does, and signs
    /// its sessions with the key every container shares; it does what stats and revoke do.
    pub fn needs(self) -> Needs {
        use Function::*;
        let (bot_token, webhook_secret, api_tokens) = match self {
            Payments | GenerateToken | Notifications | Status | Revoke | Stats => (false, false, true),
            TelegramWebhook => (true, true, false),
            SideEffects | ScheduledJobs => (true, false, false),
            Console => (true, false, true),
        };
        let queue = !matches!(self, Status | Notifications);
        let mail = self == SideEffects;
        let events = matches!(self, Stats | SideEffects | Console);
        let console = self == Console;
        Needs { bot_token, webhook_secret, api_tokens, queue, mail, events, console }
    }
}

/// What a function serves, built from only the services it uses.
pub enum Served {
    /// An HTTP API or Function URL function: its routes, with exactly its services as state.
    Http(Router),
    /// The SQS consumer of the effects queue.
    Effects(Effects),
    /// The scheduled jobs, and the runs admins ask for.
    Jobs(Scheduled),
}

/// The side-effects function's: the consumer and the queue it settles records on.
pub struct Effects {
    pub consumer: Arc<Consumer>,
    pub queue: Arc<SqsQueue>,
    /// What one record may take: a Bot API call or two, each bounded by TELEGRAM_TIMEOUT_SECONDS.
    pub per_record: Duration,
}

/// The scheduled-jobs function's: the jobs, and how long one run may take (`JOB_MAX_SECONDS`).
pub struct Scheduled {
    pub jobs: Arc<Jobs>,
    pub max_run: Duration,
}

/// Everything a function needs, built once per container.
pub struct Wiring {
    pub function: Function,
    /// What its services were built from.
    pub ports: Ports,
    pub served: Served,
}

impl Wiring {
    /// `function` from the settings: a missing one is one clear line in the log and the function
    /// fails to start. `config`: the AWS SDK's (`lambda_sdk_config`).
    pub async fn build(function: Function, settings: Settings, config: &SdkConfig) -> Result<Self, StartupError> {
        if settings.test_clock {
            return Err(StartupError::TestClock);
        }
        let needs = function.needs();
        let aws = settings.aws.clone().ok_or(StartupError::NoAwsResources)?;
        let AwsAdapters { store, queue: sqs, mailer, events } = AwsAdapters::build(config, &aws, &needs);
        let timeout = Duration::from_secs(u64::from(settings.telegram_timeout_seconds));
        // A function that makes no Bot API call is given no token (template.yaml). Those that
        // do take their turns from one pace, kept in the table for every function at once.
        let telegram: Option<Arc<dyn Telegram>> = match (&settings.bot_token, needs.bot_token) {
            (Some(token), true) => Some(Arc::new(PacedTelegram::new(
                Arc::new(
                    BotApi::new(token, &settings.telegram_api_url, settings.channel_id, timeout)
                        .map_err(StartupError::Telegram)?,
                ),
                Arc::new(DynamoPace::new(&store, settings.limits.telegram_per_second)),
            ))),
            _ => None,
        };
        let ports = Ports {
            settings: Arc::new(settings),
            store,
            clock: Arc::new(SystemClock),
            queue: sqs.clone().map(|q| q as Arc<dyn Queue>),
            telegram,
            jobs: events.clone().map(|e| e as Arc<dyn JobStarter>),
        };
        let served = serve(function, &ports, sqs, mailer, events)?;
        Ok(Self { function, ports, served })
    }

    /// A function's settings from its environment, its secrets read from Secrets Manager where
    /// the environment names them (`<NAME>_ARN`, as the template does): exactly the secrets it
    /// needs. A missing setting or an unreadable secret is one line naming the function, and the
    /// function does not start.
    pub async fn from_env(function: Function) -> Result<Self, Error> {
        let built = async {
            let needs = function.needs();
            let config = lambda_sdk_config().await;
            let env = |k: &str| std::env::var(k).ok();
            let secrets = telegate_core::adapters::secrets::read(&config, &env).await?;
            let settings = Settings::from_env_for(&|k| secrets.get(k).cloned().or_else(|| env(k)), needs)?;
            Self::build(function, settings, &config).await
        };
        // CloudWatch reads the alarms' metrics from the log, under the stack's namespace.
        telegate_core::metrics::enable(&std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "telegate".into()));
        built.await.map_err(|e| {
            let line = format!("function {}: {e}", function.name());
            tracing::error!("{line}");
            Error::from(line)
        })
    }

    /// The function's HTTP routes, if it serves HTTP.
    pub fn router(&self) -> Option<Router> {
        match &self.served {
            Served::Http(router) => Some(router.clone()),
            _ => None,
        }
    }

    /// The consumer, if the function is the side-effects one.
    pub fn effects(&self) -> Option<&Effects> {
        match &self.served {
            Served::Effects(effects) => Some(effects),
            _ => None,
        }
    }

    /// The jobs, if the function is the scheduled-jobs one.
    pub fn scheduled(&self) -> Option<&Scheduled> {
        match &self.served {
            Served::Jobs(scheduled) => Some(scheduled),
            _ => None,
        }
    }
}

/// Builds what `function` serves: only the services it uses, from the ports it was given.
fn serve(
    function: Function,
    ports: &Ports,
    sqs: Option<Arc<SqsQueue>>,
    mailer: Option<Arc<SesMailer>>,
    events: Option<Arc<EventBridgeBus>>,
) -> Result<Served, StartupError> {
    use Function::*;
    use telegate_core::http::*;
    let http = |routes: Router| Ok(Served::Http(routes));
    // Only the functions with bearer-token routes hold a verifier.
    let verifier = || JwtVerifier::new(&ports.settings.jwt).map(Arc::new);
    match function {
        Payments => http(finish(
            payments_routes(),
            PaymentsState { payments: Arc::new(ports.payment_desk()?), verifier: verifier()? },
        )),
        GenerateToken => http(finish(
            generate_token_routes(),
            GenerateTokenState { issuer: Arc::new(ports.issuer()?), verifier: verifier()? },
        )),
        Notifications => http(finish(
            notifications_routes(),
            NotificationsState { inbox: Arc::new(ports.inbox()?), verifier: verifier()? },
        )),
        Status => {
            http(finish(status_routes(), StatusState { status: Arc::new(ports.status()?), verifier: verifier()? }))
        }
        Revoke => http(finish(
            revoke_routes(),
            RevokeState {
                ending: Arc::new(ports.ending()?),
                admin: Arc::new(ports.admin()?),
                refunds: Arc::new(ports.refunds()?),
                verifier: verifier()?,
            },
        )),
        Stats => http(finish(
            admin_routes(),
            AdminState {
                admin: Arc::new(ports.admin()?),
                job_runs: Arc::new(ports.job_runs()?),
                verifier: verifier()?,
            },
        )),
        TelegramWebhook => http(
            finish(webhook_routes(), WebhookState { bot: Arc::new(ports.bot()?) })
                .layer(axum::middleware::map_response(count_webhook_answer)),
        ),
        SideEffects => {
            let missing = |what| StartupError::Missing(telegate_core::app::Missing(what));
            let telegram = ports.telegram.clone().ok_or(missing("Telegram"))?;
            let runner =
                EffectRunner::new(telegram, mailer.ok_or(missing("SES"))?, events.ok_or(missing("the event bus"))?);
            let consumer = Arc::new(telegate_core::app::consumer(runner, &ports.store, ports.clock.clone()));
            let per_record = Duration::from_secs(2 * u64::from(ports.settings.telegram_timeout_seconds) + 1);
            Ok(Served::Effects(Effects { consumer, queue: sqs.ok_or(missing("the queue"))?, per_record }))
        }
        Console => http(finish(
            telegate_core::console::console_routes(),
            ConsoleState {
                payments: Arc::new(ports.payment_desk()?),
                admin: Arc::new(ports.admin()?),
                job_runs: Arc::new(ports.job_runs()?),
                ending: Arc::new(ports.ending()?),
                refunds: Arc::new(ports.refunds()?),
                health: Arc::new(ports.health()),
                console: telegate_core::console::Console::build(ports).map_err(StartupError::Console)?,
                verifier: verifier()?,
            },
        )),
        ScheduledJobs => Ok(Served::Jobs(Scheduled {
            jobs: Arc::new(ports.jobs()?),
            max_run: Duration::from_secs(u64::from(ports.settings.limits.job_max_seconds)),
        })),
    }
}

/// JSON logs to CloudWatch (`RUST_LOG` / `AWS_LAMBDA_LOG_LEVEL` pick the level).
pub fn init_logs() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Runs `function` in Lambda: its `main` calls this, and nothing else.
pub async fn serve_function(function: Function) -> Result<(), Error> {
    init_logs();
    match Wiring::from_env(function).await?.served {
        Served::Http(router) => lambda_http::run(router).await,
        Served::Effects(effects) => {
            let effects = Arc::new(effects);
            lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
                let effects = effects.clone();
                let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
                async move { Ok::<_, Error>(handle_sqs(&effects, event.payload, deadline).await) }
            }))
            .await
        }
        Served::Jobs(scheduled) => {
            let scheduled = Arc::new(scheduled);
            lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| {
                let scheduled = scheduled.clone();
                let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
                async move {
                    let job = event.payload["job"].as_str().or_else(|| event.payload["detail"]["job"].as_str());
                    let job = job.unwrap_or_default().to_owned();
                    let outcome = handle_schedule(&scheduled, event.payload, deadline).await;
                    counted(&job, &outcome);
                    outcome
                }
            }))
            .await
        }
    }
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
pub async fn handle_sqs(effects: &Effects, event: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("sqs_record", message = %id);
        let settled = if SystemTime::now() + effects.per_record > deadline {
            span.in_scope(|| tracing::warn!("not started: the invocation is running out of time; put back"));
            let body = record.body.as_deref().unwrap_or_default();
            effects.queue.put_back(body).await.inspect_err(|e| tracing::error!(error = %e, "not put back")).is_ok()
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
            let handled = effects.queue.handle(&effects.consumer, &delivery).instrument(span.clone()).await;
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

/// An EventBridge schedule: the rule's input names the job (`{"job": "expire-tokens"}`); or a run
/// an admin asked for, from the bus (`detail: {job, run_id}`), recorded under its id.
/// No batch is started later than `deadline` minus a margin for the batch itself: a run cut short
/// leaves the rest to the next one (each job is idempotent and reads what is still due).
pub async fn handle_schedule(scheduled: &Scheduled, event: Value, deadline: SystemTime) -> Result<Value, JobError> {
    let name = event["job"].as_str().or_else(|| event["detail"]["job"].as_str()).unwrap_or_default();
    let job = Job::parse(name).map_err(|_| JobError::UnknownJob(name.into()))?;
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(JOB_MARGIN);
    let until = std::time::Instant::now() + left.min(scheduled.max_run);
    let jobs = &scheduled.jobs;
    let run = match event["detail"]["run_id"].as_str() {
        Some(id) => {
            let id = RunId::parse(id).map_err(|_| JobError::BadRunId(id.into()))?;
            jobs.run_requested(job, &id, until).await
        }
        None => match jobs.run_job_until(job, "eventbridge", until).await {
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
