//! The local host: the whole system in one process on the embedded store. The same core the
//! Lambda functions run, wired to SQLite, the in-process queue and file outboxes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use telegate_core::adapters::aws::{AwsAdapters, sdk_config};
use telegate_core::adapters::clock::{SystemClock, TestClock};
use telegate_core::adapters::dynamodb::DynamoPace;
use telegate_core::adapters::local_jobs::{JobRequests, LocalJobs};
use telegate_core::adapters::local_queue::{DeadLetter, LocalQueue, QueueLog};
use telegate_core::adapters::outbox::{OutboxEvents, OutboxMailer, OutboxTelegram};
use telegate_core::adapters::pace::{LocalPace, PacedTelegram};
use telegate_core::adapters::sqlite::SqliteStore;
use telegate_core::adapters::sqs::SqsQueue;
use telegate_core::adapters::telegram::BotApi;
use telegate_core::app::effects::{Consumer, EffectRunner};
use telegate_core::app::{App, Ports};
use telegate_core::auth::JwtVerifier;
use telegate_core::auth::Role;
use telegate_core::config::{Needs, Settings};
use telegate_core::console::Console;
use telegate_core::http::{self, HttpState, JsonBody};
use telegate_core::ports::{Clock, EventBus, Mailer, Pace, Queue, Store, Telegram};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Why the local host does not start or stop cleanly: one line, its cause kept.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot create the data folder {path}: {source}")]
    DataFolder { path: PathBuf, source: std::io::Error },
    #[error("cannot open the store: {0}")]
    Store(#[from] telegate_core::ports::StoreError),
    #[error("cannot open {what}: {source}")]
    Outbox { what: &'static str, source: std::io::Error },
    #[error("the Telegram client: {0}")]
    Telegram(String),
    #[error("the console: {0}")]
    Console(String),
    #[error("the AWS adapters were built without {0}")]
    NotBuilt(&'static str),
    #[error(transparent)]
    Missing(#[from] telegate_core::app::Missing),
    #[error(transparent)]
    Settings(#[from] telegate_core::config::ConfigError),
    #[error("cannot serve HTTP: {0}")]
    Serve(#[from] std::io::Error),
    #[error("the host's task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the local host runs besides HTTP.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Long-poll Telegram (only with a bot token).
    pub polling: bool,
    /// Run the scheduled jobs on their schedule (`TELEGATE_SCHEDULER=0` turns it off).
    pub scheduler: bool,
}

/// Where decided side effects go, and who carries them out.
#[derive(Clone)]
pub enum Effects {
    /// The in-process queue of the embedded default.
    Local(LocalQueue),
    /// SQS, consumed here by long polling (in AWS, by the side-effects function).
    Sqs(Arc<SqsQueue>, Arc<Consumer>),
}

impl Effects {
    fn queue(&self) -> Arc<dyn Queue> {
        match self {
            Self::Local(q) => Arc::new(q.clone()),
            Self::Sqs(q, _) => q.clone(),
        }
    }

    /// Waits until every decided effect has been carried out (or dead-lettered).
    pub async fn drain(&self) {
        match self {
            Self::Local(q) => q.drain().await,
            // Two minutes at most: on a busy stand-in an effect takes a second (each is several
            // calls), and one under flood control waits out Telegram's delay first.
            Self::Sqs(q, _) => {
                for _ in 0..2_400 {
                    if q.backlog().await.is_ok_and(|n| n == 0) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tracing::warn!("the SQS backlog did not empty within 2 minutes");
            }
        }
    }

    /// The effects that will not be carried out (locally; in AWS they are in the dead-letter queue,
    /// alarmed). A store that cannot be read answers as an error, never as "none".
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, String> {
        match self {
            Self::Local(q) => q.dead_letters().await.map_err(|e| e.to_string()),
            Self::Sqs(..) => Ok(Vec::new()),
        }
    }
}

pub struct Host {
    pub app: App,
    /// What the services were built from (the tests and benchmarks reach the store through it).
    pub ports: Ports,
    /// Serialises job runs (the scheduler's ticks, the test clock's, those an admin asks for).
    jobs: Arc<tokio::sync::Mutex<()>>,
    /// The job runs admins ask for, until `run` starts their runner.
    requests: std::sync::Mutex<Option<JobRequests>>,
    options: Options,
    pub effects: Effects,
    pub test_clock: Option<Arc<TestClock>>,
    /// The real Bot API client, when a bot token is configured.
    pub bot: Option<Arc<BotApi>>,
    pub data: PathBuf,
    verifier: Arc<JwtVerifier>,
    /// The console's sessions (signed with a key of this process) and its one-time sign-in.
    pub console: Console,
}

/// Where the host keeps its state and sends its effects: the embedded store, or AWS.
struct Backend {
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    events: Arc<dyn EventBus>,
    /// The SQS queue in AWS; locally the log the durable local queue keeps in the store's file.
    queue: Result<Arc<SqsQueue>, Arc<dyn QueueLog>>,
    /// The pace of Bot API calls: this process's, or the one the functions share in the table.
    pace: Arc<dyn Pace>,
}

impl Host {
    /// Builds every adapter once: the embedded store, local queue and outboxes in `data`, or
    /// DynamoDB, SQS and SES when the settings name AWS resources. Needs a Tokio runtime.
    pub async fn build(settings: Settings, data: &Path, options: Options) -> Result<Self, HostError> {
        Self::build_with(settings, data, options, None).await
    }

    /// As `build`, its AWS clients built from `aws` when given (another endpoint: a test's
    /// stand-in in front of the local one).
    pub async fn build_with(
        settings: Settings,
        data: &Path,
        options: Options,
        aws: Option<telegate_core::adapters::aws::SdkConfig>,
    ) -> Result<Self, HostError> {
        std::fs::create_dir_all(data).map_err(|source| HostError::DataFolder { path: data.to_owned(), source })?;
        // Two clients: calls bounded by TELEGRAM_TIMEOUT_SECONDS, long polls by their own 25 s + margin.
        let (bot, calls) = match &settings.bot_token {
            Some(token) => {
                let api = |timeout| BotApi::new(token, &settings.telegram_api_url, settings.channel_id, timeout);
                let calls = Arc::new(
                    api(Duration::from_secs(u64::from(settings.telegram_timeout_seconds)))
                        .map_err(HostError::Telegram)?,
                );
                (Some(Arc::new(api(Duration::from_secs(40)).map_err(HostError::Telegram)?)), Some(calls))
            }
            None => (None, None),
        };
        let test_clock = settings.test_clock.then(|| Arc::new(TestClock::default()));
        let clock: Arc<dyn Clock> = match &test_clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let Backend { store, mailer, events, queue: effects, pace } = match &settings.aws {
            None => {
                let store =
                    Arc::new(SqliteStore::open(&data.join(crate::local_env::STORE_FILE)).map_err(HostError::Store)?);
                let mailer = OutboxMailer::new(data.join("outbox"), settings.mail_from.clone())
                    .map_err(|source| HostError::Outbox { what: "the mail outbox", source })?;
                let events = OutboxEvents::new(data.join("events.jsonl"))
                    .map_err(|source| HostError::Outbox { what: "the events file", source })?;
                // The local queue keeps its effects in the same file: a crash or restart loses none.
                let log: Arc<dyn QueueLog> = store.clone();
                let pace = Arc::new(LocalPace::new(settings.limits.telegram_per_second));
                Backend { store, mailer: Arc::new(mailer), events: Arc::new(events), queue: Err(log), pace }
            }
            Some(resources) => {
                let config = match aws {
                    Some(config) => config,
                    None => sdk_config().await,
                };
                let AwsAdapters { store, queue, mailer, events, .. } =
                    AwsAdapters::build(&config, resources, &Needs::LOCAL);
                let queue = queue.ok_or(HostError::NotBuilt("the queue"))?;
                let mailer = mailer.ok_or(HostError::NotBuilt("SES"))?;
                let events = events.ok_or(HostError::NotBuilt("the event bus"))?;
                // The same pace as the functions': a host beside them shares Telegram's limit.
                let pace = Arc::new(DynamoPace::new(&store, settings.limits.telegram_per_second));
                Backend { store, mailer, events, queue: Ok(queue), pace }
            }
        };
        let telegram: Arc<dyn Telegram> = match calls {
            Some(b) => Arc::new(PacedTelegram::new(b, pace)),
            // Written to a file: nothing to flood.
            None => Arc::new(
                OutboxTelegram::new(data.join("telegram-outbox.jsonl"))
                    .map_err(|source| HostError::Outbox { what: "the Telegram outbox", source })?,
            ),
        };
        let consumer = Arc::new(telegate_core::app::consumer(
            EffectRunner::new(telegram.clone(), mailer, events),
            &store,
            clock.clone(),
        ));
        let effects = match effects {
            Err(log) => Effects::Local(LocalQueue::start(consumer, log, clock.clone())),
            Ok(queue) => Effects::Sqs(queue, consumer),
        };
        let verifier = Arc::new(JwtVerifier::new(&settings.jwt)?);
        // An admin's job run is run here, in the background, whatever the back end.
        let (starter, requests) = LocalJobs::channel();
        let ports = Ports {
            settings: Arc::new(settings),
            store,
            telegram: Some(telegram),
            queue: Some(effects.queue()),
            clock,
            jobs: Some(Arc::new(starter)),
        };
        let app = App::new(&ports)?;
        let console = Console::build(&ports).map_err(|e| HostError::Console(e.to_string()))?;
        Ok(Self {
            app,
            ports,
            jobs: Arc::default(),
            requests: std::sync::Mutex::new(Some(requests)),
            options,
            effects,
            test_clock,
            bot,
            data: data.to_owned(),
            verifier,
            console,
        })
    }

    /// A one-time link that signs its opener in to the console as the local admin (the one before
    /// it stops working). `telegate serve` prints it, as Jupyter prints its token.
    pub fn console_link(&self, base_url: &str) -> Result<String, HostError> {
        console_link(&self.console, base_url)
    }

    /// Every route of the contract, plus `/_local/clock/advance` when the test clock is on.
    pub fn router(&self) -> Router {
        let state = HttpState { app: self.app.clone(), verifier: self.verifier.clone(), console: self.console.clone() };
        let mut router = http::router(state);
        if let Some(clock) = &self.test_clock {
            let state = ClockState {
                clock: clock.clone(),
                app: self.app.clone(),
                jobs: self.jobs.clone(),
                scheduler: self.options.scheduler,
            };
            router = router.merge(Router::new().route("/_local/clock/advance", post(advance_clock)).with_state(state));
        }
        let dead = DeadLetterState { effects: self.effects.clone(), verifier: self.verifier.clone() };
        router = router.merge(
            Router::new().route("/api/telegram/admin/dead-letters/", axum::routing::get(dead_letters)).with_state(dead),
        );
        router.merge(Router::new().route("/healthz", axum::routing::get(|| async { axum::Json(json!({"ok": true})) })))
    }

    /// Serves HTTP on `listener` and, with a bot token and polling on, long-polls Telegram into the
    /// same handler as the webhook, until `shutdown` resolves.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let poller = match (&self.bot, self.options.polling) {
            (Some(bot), true) => {
                Some(tokio::spawn(crate::polling::poll(bot.clone(), self.app.clone(), stop_rx.clone())))
            }
            _ => None,
        };
        let ticker = self
            .options
            .scheduler
            .then(|| tokio::spawn(crate::tasks::schedule(self.app.clone(), self.jobs.clone(), stop_rx.clone())));
        let requests = self.requests.lock().ok().and_then(|mut r| r.take());
        let runner = requests.map(|r| tokio::spawn(crate::tasks::run_requested(self.app.clone(), r, stop_rx.clone())));
        // Runs asked for before a stop: queued ones run now, running ones are recorded failed.
        if let Err(e) = self.app.job_runs.recover_requested_runs().await {
            tracing::error!(error = %e, "could not look for the job runs a stopped process left");
        }
        let consumer_task = match &self.effects {
            Effects::Sqs(queue, consumer) => {
                Some(tokio::spawn(crate::tasks::consume_sqs(queue.clone(), consumer.clone(), stop_rx.clone())))
            }
            Effects::Local(_) => None,
        };
        let router = self.router();
        let mut stop = stop_rx.clone();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        server.await?;
        // Effects already decided are carried out before the process ends.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.effects.drain()).await;
        if let Some(task) = consumer_task {
            task.abort();
        }
        for task in [poller, ticker, runner].into_iter().flatten() {
            let _ = task.await;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

/// Moves the test clock, then runs the jobs that became due, before answering: a test sees
/// their effects without waiting.
async fn advance_clock(State(s): State<ClockState>, JsonBody(body): JsonBody<Advance>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if body.seconds < 0 {
        return http::error_body(axum::http::StatusCode::BAD_REQUEST, "invalid_input", "the clock only moves forward");
    }
    if let Err(why) = s.clock.advance(body.seconds) {
        return http::error_body(axum::http::StatusCode::BAD_REQUEST, "invalid_input", why);
    }
    let mut ran = Vec::new();
    if s.scheduler {
        let _guard = s.jobs.lock().await;
        match s.app.jobs.run_due_jobs().await {
            Ok(jobs) => {
                ran = jobs
                    .into_iter()
                    .map(|(job, processed)| json!({ "job": job.name(), "processed": processed }))
                    .collect()
            }
            Err(e) => return e.into_response(),
        }
    }
    axum::Json(json!({ "now": s.clock.now(), "jobs_run": ran })).into_response()
}

#[derive(Clone)]
struct ClockState {
    clock: Arc<TestClock>,
    app: App,
    jobs: Arc<tokio::sync::Mutex<()>>,
    scheduler: bool,
}

/// A host serving on a free loopback port in the background: the demo and the tests use it.
pub struct Running {
    pub base_url: String,
    pub app: App,
    pub ports: Ports,
    pub console: Console,
    pub effects: Effects,
    pub test_clock: Option<Arc<TestClock>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The console's one-time sign-in link: for the local admin, on this host.
fn console_link(console: &Console, base_url: &str) -> Result<String, HostError> {
    let now = console.clock.now();
    let code =
        console.sessions.sign_in_code(LOCAL_ADMIN, Role::Admin, now).map_err(|e| HostError::Console(e.to_string()))?;
    Ok(format!("{base_url}/console/sign-in?code={code}"))
}

/// Who the local host's one-time link signs in.
pub const LOCAL_ADMIN: &str = "local-admin";

impl Running {
    /// A one-time console sign-in link (`Host::console_link`).
    pub fn console_link(&self) -> Result<String, HostError> {
        console_link(&self.console, &self.base_url)
    }

    pub async fn spawn(settings: Settings, data: &Path, options: Options) -> Result<Self, HostError> {
        Self::spawn_with(settings, data, options, None).await
    }

    /// As `spawn`, the AWS clients built from `aws` when given (`Host::build_with`).
    pub async fn spawn_with(
        settings: Settings,
        data: &Path,
        options: Options,
        aws: Option<telegate_core::adapters::aws::SdkConfig>,
    ) -> Result<Self, HostError> {
        let host = Host::build_with(settings, data, options, aws).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (app, ports, effects, test_clock) =
            (host.app.clone(), host.ports.clone(), host.effects.clone(), host.test_clock.clone());
        let console = host.console.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(host.run(listener, async move {
            let _ = rx.await;
        }));
        Ok(Self { base_url, app, ports, console, effects, test_clock, stop: Some(tx), task })
    }

    /// Graceful stop: in-flight requests finish, queued effects are carried out.
    pub async fn stop(mut self) -> Result<(), HostError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        Ok((&mut self.task).await??)
    }
}

/// One request to a router in process: the status and the JSON body (`Null` when it is not JSON).
/// For the benchmarks and the fuzz targets, which call the router without a socket.
pub async fn answer(router: &Router, request: axum::http::Request<axum::body::Body>) -> (u16, Value) {
    use tower::ServiceExt;
    let response = router.clone().oneshot(request).await.expect("a router's error type is Infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[derive(Clone)]
struct DeadLetterState {
    effects: Effects,
    verifier: Arc<JwtVerifier>,
}

/// `GET /api/telegram/admin/dead-letters/` (admin, local host): the effects the local queue gave up
/// on, with their last error. In AWS they are in the SQS dead-letter queue (alarmed).
async fn dead_letters(State(s): State<DeadLetterState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = match s.verifier.verify_header(header).await {
        Ok(c) => c,
        Err(_) => {
            return http::error_body(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", "invalid or missing token");
        }
    };
    if !caller.has(telegate_core::auth::Role::Admin) {
        return http::error_body(axum::http::StatusCode::FORBIDDEN, "forbidden", "this action needs the admin role");
    }
    match s.effects.dead_letters().await {
        Ok(dead) => axum::Json(dead).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the dead letters");
            http::error_body(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}
