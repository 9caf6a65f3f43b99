//! `TestApp`: telegate serving on a random loopback port, against the fake Telegram Bot API, on a
//! fresh SQLite store in a temporary folder, with the test clock on.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use telegate::host::{Options, Running};
use telegate::jwt::mint;
use telegate_core::auth::{Caller, Role};
use telegate_core::config::Settings;
use telegate_core::domain::UserId;
use telegate_testkit::fake_telegram::{BOT_USERNAME, FakeTelegram, RunningFake};

#[allow(unused_imports)]
pub use telegate_testkit::fake_telegram::{Call, Fault, updates};

pub mod browser;
pub mod idp;

pub const CHANNEL: i64 = -1_000_777_000_111;
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0001";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
pub const BOT_TOKEN: &str = "123456:TEST-TOKEN-never-logged";

/// A folder removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).expect("OS random source");
        let name: String = rand.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("telegate-test-{name}"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub running: Option<Running>,
    pub base: String,
    pub telegram: RunningFake,
    pub http: reqwest::Client,
    pub data: TempDir,
    pub env: HashMap<String, String>,
    next_update: std::sync::atomic::AtomicI64,
}

impl TestApp {
    /// The store the app runs on, opened as `telegate import` opens it: the import is not one
    /// of the app's services, and its writes are not part of the store the services see.
    pub async fn importer(&self) -> std::sync::Arc<dyn telegate::import::Importable> {
        telegate::import::open_store(&self.running().ports.settings, &self.data.0).await.expect("the store opens")
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// The same host on DynamoDB, SQS and SES, on the local AWS stand-in.
    pub async fn spawn_aws() -> Self {
        let resources = aws_resources().await;
        let extra: Vec<(&str, &str)> = resources.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::spawn_with(&extra).await
    }

    /// On the embedded store, or (`aws`) on DynamoDB, SQS and SES on the stand-in.
    pub async fn spawn_on_store(aws: bool) -> Self {
        Self::spawn_on_store_with(aws, &[]).await
    }

    /// As `spawn_on_store`, with extra (or overriding) settings.
    pub async fn spawn_on_store_with(aws: bool, extra: &[(&str, &str)]) -> Self {
        let resources = if aws { aws_resources().await } else { Vec::new() };
        let mut all: Vec<(&str, &str)> = resources.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(extra);
        Self::spawn_with(&all).await
    }

    /// Spawns with extra (or overriding) settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_on(TempDir::new(), extra).await
    }

    /// On fresh resources of the stand-in, every AWS call going through `endpoint` (a test's
    /// stand-in in front of the local one, that can fail them).
    pub async fn spawn_aws_through(endpoint: &str) -> Self {
        let resources = aws_resources().await;
        let extra: Vec<(&str, &str)> = resources.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let aws = telegate_core::adapters::aws::sdk_config_at(endpoint).await;
        Self::spawn_inner(TempDir::new(), &extra, Some(aws)).await
    }

    /// Spawns on a data folder that already holds a store (one an earlier release wrote).
    pub async fn spawn_on(data: TempDir, extra: &[(&str, &str)]) -> Self {
        Self::spawn_inner(data, extra, None).await
    }

    async fn spawn_inner(
        data: TempDir,
        extra: &[(&str, &str)],
        aws: Option<telegate_core::adapters::aws::SdkConfig>,
    ) -> Self {
        let telegram = FakeTelegram::start().await.expect("fake Telegram");
        let mut env: HashMap<String, String> = [
            ("TELEGRAM_BOT_TOKEN", BOT_TOKEN),
            ("TELEGRAM_BOT_USERNAME", BOT_USERNAME),
            ("TELEGRAM_CHANNEL_ID", &CHANNEL.to_string()),
            ("TELEGRAM_CHANNEL_NAME", "Test Channel"),
            ("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("TELEGRAM_API_URL", &telegram.url),
            ("JWT_HS256_SECRET", JWT_SECRET),
            ("TELEGATE_TEST_CLOCK", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let settings = Settings::from_env(&|k| env.get(k).cloned()).expect("test settings");
        let running = Running::spawn_with(settings, &data.0, options(&env, false), aws).await.expect("server starts");
        Self {
            base: running.base_url.clone(),
            running: Some(running),
            telegram,
            http: reqwest::Client::new(),
            data,
            env,
            next_update: std::sync::atomic::AtomicI64::new(1000),
        }
    }

    pub fn fake(&self) -> &FakeTelegram {
        &self.telegram.fake
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Stops the server gracefully and starts a new one on the same data folder.
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
        let running = start(&self.env, &self.data, false).await;
        self.base = running.base_url.clone();
        self.running = Some(running);
    }

    /// Restarts with the setting `key` changed to `value`, as an operator changing it does.
    pub async fn restart_with(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
        self.restart().await;
    }

    pub fn jwt(&self, sub: &str, role: &str) -> String {
        mint(JWT_SECRET, sub, role, Some(&format!("{sub}@example.com")), 30).expect("mint")
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        jwt: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(j) = jwt {
            req = req.bearer_auth(j);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("HTTP request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, jwt: &str, body: Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(jwt), Some(body)).await
    }

    pub async fn get(&self, path: &str, jwt: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, Some(jwt), None).await
    }

    /// Asks for a job run as an admin (`202`, queued) and waits until it has ended: the run as
    /// `GET …/admin/job-runs/{id}/` reads it (`status`, `processed`, `complete`…).
    pub async fn run_job(&self, job: &str) -> Value {
        let admin = self.jwt("root", "admin");
        let (status, queued) = self.post(&format!("/api/telegram/admin/jobs/{job}/run/"), &admin, json!({})).await;
        assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
        let path = format!("/api/telegram/admin/job-runs/{}/", queued["run_id"].as_str().unwrap());
        for _ in 0..600 {
            let (status, run) = self.get(&path, &admin).await;
            assert_eq!(status, 200, "{run}");
            if run["status"] != "queued" && run["status"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the {job} run did not end within 12 s");
    }

    /// Delivers an update to the webhook with the right secret; returns the status.
    pub async fn webhook(&self, update: Value) -> u16 {
        self.http
            .post(format!("{}/api/telegram/webhook", self.base))
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .json(&update)
            .send()
            .await
            .expect("webhook")
            .status()
            .as_u16()
    }

    /// The app's time (its test clock).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.running().ports.clock.now()
    }

    pub fn update_id(&self) -> i64 {
        self.next_update.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn start_command(&self, tg_user: i64, token: &str) -> u16 {
        self.webhook(updates::text(self.update_id(), tg_user, "fr", &format!("/start {token}"))).await
    }

    pub async fn advance(&self, seconds: i64) {
        let (status, _) =
            self.request(reqwest::Method::POST, "/_local/clock/advance", None, Some(json!({"seconds": seconds}))).await;
        assert_eq!(status, 200, "clock advanced");
    }

    /// Waits until queued side effects have been carried out.
    pub async fn drain(&self) {
        self.running().effects.drain().await;
    }

    /// Submits a payment for `user` and has support validate it: the validation answer.
    pub async fn paid(&self, user: &str, tx: &str) -> Value {
        let (status, payment) = self
            .post(
                "/api/payments/pending-payments/create/",
                &self.jwt(user, "user"),
                json!({"offer_id": "monthly", "transaction_id": tx}),
            )
            .await;
        assert_eq!(status, 201, "payment submitted: {payment}");
        let id = payment["id"].as_str().expect("payment id");
        let (status, issued) = self
            .post(
                &format!("/api/payments/admin/pending-payments/{id}/validate/"),
                &self.jwt("support-1", "support"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "payment validated: {issued}");
        issued
    }

    /// Pays, opens the link from `tg_user` and joins: an active member. Returns the validation answer.
    pub async fn member(&self, user: &str, tx: &str, tg_user: i64) -> Value {
        let issued = self.paid(user, tx).await;
        assert_eq!(self.start_command(tg_user, issued["token"].as_str().expect("token")).await, 200);
        let link = self.last_invite_link().expect("an invite");
        assert_eq!(self.webhook(updates::join_request(self.update_id(), CHANNEL, tg_user, &link)).await, 200);
        assert_eq!(self.webhook(updates::joined(self.update_id(), CHANNEL, tg_user, Some(&link))).await, 200);
        self.drain().await;
        issued
    }

    pub fn last_invite_link(&self) -> Option<String> {
        self.fake()
            .calls_to("sendMessage")
            .iter()
            .rev()
            .find_map(|c| c.params["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().map(str::to_owned))
    }

    /// The texts the bot sent to a chat, oldest first.
    pub fn texts_to(&self, chat: i64) -> Vec<String> {
        self.fake()
            .calls_to("sendMessage")
            .iter()
            .filter(|c| c.params["chat_id"] == json!(chat))
            .filter_map(|c| c.params["text"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn calls_for_user(&self, method: &str, user: i64) -> Vec<Call> {
        self.fake().calls_to(method).into_iter().filter(|c| c.params["user_id"] == json!(user)).collect()
    }

    /// The status `user` reads. A Stars buyer with no web account (`tg:<id>`) has no token the
    /// API accepts (the namespace is telegate's), so theirs is read from the same use case.
    pub async fn status_of(&self, user: &str) -> Value {
        let user_id = UserId::parse(user).expect("a user id");
        if user_id.is_telegram_account() {
            let caller = Caller { user_id, email: None, role: Role::User };
            let view = self.running().app.status.status(&caller).await.expect("the status");
            return serde_json::to_value(view).expect("a status as JSON");
        }
        let (status, body) = self.get("/api/telegram/status/", &self.jwt(user, "user")).await;
        assert_eq!(status, 200);
        body
    }
}

fn options(env: &HashMap<String, String>, polling: bool) -> Options {
    Options { polling, scheduler: env.get("TELEGATE_SCHEDULER").map(String::as_str) != Some("0") }
}

async fn start(env: &HashMap<String, String>, data: &TempDir, polling: bool) -> Running {
    let settings = Settings::from_env(&|k| env.get(k).cloned()).expect("test settings");
    Running::spawn(settings, &data.0, options(env, polling)).await.expect("server starts")
}

/// Reads `probe` every 100 ms until `done` holds, for at most 30 s: the last value read (the
/// caller asserts on it). For what lands a little later on SQS, without waiting out its retries.
pub async fn eventually<T>(mut probe: impl AsyncFnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let mut last = probe().await;
    for _ in 0..300 {
        if done(&last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        last = probe().await;
    }
    last
}

pub async fn start_polling(env: &HashMap<String, String>, data: &TempDir) -> Running {
    start(env, data, true).await
}

/// The local AWS stand-in that `infra/test.sh` starts (moto's server). Without it the AWS tests
/// fail loudly: they never skip, and never talk to a real AWS account.
pub fn aws_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the local AWS stand-in (got {endpoint:?}): run the tests with `bash infra/test.sh`, which starts it"
    );
    endpoint
}

pub use telegate_testkit::local_aws::unique;

/// A fresh DynamoDB table on the stand-in.
pub async fn dynamo_store() -> telegate_core::adapters::dynamodb::DynamoStore {
    use telegate_core::adapters::dynamodb::DynamoStore;
    aws_endpoint();
    let config = telegate_core::adapters::aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("telegate");
    DynamoStore::create_table(&client, &table).await.expect("create the table on the stand-in");
    DynamoStore::new(client, table)
}

/// A fresh table, queue (with its dead-letter queue, redrive after 5) and verified sender on
/// the stand-in, as the settings name them.
pub async fn aws_resources() -> Vec<(&'static str, String)> {
    aws_endpoint();
    telegate_testkit::local_aws::provision().await.expect("AWS resources on the stand-in")
}

/// Mails SES accepted for `to`, as the stand-in recorded them (subject, body).
pub async fn ses_mails_to(to: &str) -> Vec<(String, String)> {
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", aws_endpoint())).await.unwrap().json().await.unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| m["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|x| x == to)))
        .map(|m| (m["subject"].as_str().unwrap_or("").to_owned(), m["body"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// Records as the store contract and the fault tests write them through the stores' own operations.
pub mod records {
    use chrono::{DateTime, Duration, Utc};
    use telegate_core::domain::{
        AccessToken, Membership, MembershipId, Payment, TelegramUserId, TokenRecord, TokenStatus,
    };

    /// A fresh pending token for the payment (30 days, 24 hours to open it), and its secret.
    pub fn token(p: &Payment, now: DateTime<Utc>) -> (AccessToken, TokenRecord) {
        let t = AccessToken::generate().unwrap();
        let record = TokenRecord {
            hash: t.hash(),
            payment_id: p.id.clone(),
            user_id: p.user_id.clone(),
            offer_name: "Monthly".into(),
            days: 30,
            status: TokenStatus::Pending,
            created_at: now,
            expires_at: now + Duration::hours(24),
            telegram_user_id: None,
            membership_id: None,
            used_at: None,
        };
        (t, record)
    }

    /// The pending membership a token bound to `who` opens.
    pub fn pending_membership(r: &TokenRecord, who: TelegramUserId, now: DateTime<Utc>) -> Membership {
        Membership::pending(MembershipId::generate(now).unwrap(), r, who, None, now)
    }
}

/// One test body, an `async fn(TestApp)`, run on each store: `<body>::on_sqlite` and
/// `<body>::on_dynamodb`, each on a fresh app from `app(aws)`, a function in scope in the test
/// file (`support::on_store`, or the file's own that adds settings).
macro_rules! on_both_stores {
    ($app:ident => $($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn on_sqlite() {
                super::$body(super::$app(false).await).await;
            }
            #[tokio::test]
            async fn on_dynamodb() {
                super::$body(super::$app(true).await).await;
            }
        }
    )*};
}
pub(crate) use on_both_stores;

/// A fresh app on the embedded store, or (`aws`) on the stand-in: for `on_both_stores!`.
pub async fn on_store(aws: bool) -> TestApp {
    TestApp::spawn_on_store(aws).await
}
