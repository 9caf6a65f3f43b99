//! Every file in events/ goes to its function's handler (the routes or handler each Lambda `main`
//! runs), on DynamoDB/SQS/SES on the stand-in and the fake Bot API; each function starts with only
//! the secrets it is given.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::Value;
use telegate_core::adapters::aws::sdk_config;
use telegate_core::config::Settings;
use telegate_lambda::{Function, JobError, StartupError, Wiring, handle_schedule, handle_sqs};
use telegate_testkit::fake_telegram::FakeTelegram;
use tower::ServiceExt;

pub(crate) const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events");

/// Every function, each wired as its `main` wires it, on the same resources.
pub(crate) struct Functions(BTreeMap<Function, Wiring>);

impl Functions {
    pub(crate) fn of(&self, function: Function) -> &Wiring {
        &self.0[&function]
    }

    /// A function by its name in events/expected.json.
    pub(crate) fn named(&self, name: &str) -> &Wiring {
        self.of(Function::parse(name).unwrap_or_else(|| panic!("no function {name}")))
    }

    pub(crate) fn store(&self) -> &dyn telegate_core::ports::Store {
        self.of(Function::Status).ports.store.as_ref()
    }
}

/// The functions on fresh resources of the stand-in, with Telegram as the fake Bot API.
async fn wiring() -> (telegate_testkit::fake_telegram::RunningFake, Functions) {
    wiring_with(&sdk_config().await).await
}

/// The same, their AWS clients built from `config` (another endpoint, say).
pub(crate) async fn wiring_with(
    config: &telegate_core::adapters::aws::SdkConfig,
) -> (telegate_testkit::fake_telegram::RunningFake, Functions) {
    let telegram = FakeTelegram::start().await.unwrap();
    let mut env: HashMap<&str, String> = support::aws_resources().await.into_iter().collect();
    for (k, v) in [
        ("TELEGRAM_BOT_TOKEN", "123456:EVENTS"),
        ("TELEGRAM_BOT_USERNAME", "telegate_fake_bot"),
        ("TELEGRAM_CHANNEL_ID", "-1001234567890"),
        ("TELEGRAM_WEBHOOK_SECRET", "events-webhook-secret"),
        ("JWT_HS256_SECRET", "events-secret-not-for-production-0123456789"),
        ("CONSOLE_SESSION_KEY", "events-console-key-not-for-production-0123456789"),
        // As the deployment check deploys it: the samples' offer, also sold in Stars.
        ("OFFERS", r#"{"monthly": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true}}"#),
        ("PAY_SUPPORT_CONTACT", "@telegate_support"),
    ] {
        env.insert(k, v.to_owned());
    }
    env.insert("TELEGRAM_API_URL", telegram.url.clone());
    let settings = Settings::from_env(&|k| env.get(k).cloned()).unwrap();
    let mut functions = BTreeMap::new();
    for function in Function::ALL {
        let wiring = Wiring::build(function, settings.clone(), config).await.unwrap();
        functions.insert(function, wiring);
    }
    (telegram, Functions(functions))
}

#[tokio::test]
async fn every_sample_event_gets_the_expected_answer_from_its_function() {
    let (telegram, wiring) = wiring().await;
    telegate_testkit::samples::seed(wiring.store()).await.unwrap();

    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{EVENTS}/expected.json")).unwrap()).unwrap();
    let mut covered = BTreeSet::new();
    for case in &expected {
        let file = case["file"].as_str().unwrap();
        let name = case["function"].as_str().unwrap();
        let text = std::fs::read_to_string(format!("{EVENTS}/{file}")).unwrap();
        let function = wiring.named(name);
        match (function.router(), function.effects(), function.scheduled()) {
            (Some(router), _, _) => {
                let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let response = router.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                assert_eq!(
                    status,
                    case["status"].as_u64().unwrap() as u16,
                    "{file}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            (_, Some(effects), _) => {
                let event: SqsEvent = serde_json::from_str(&text).unwrap();
                let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
                let response = handle_sqs(effects, event, deadline).await;
                let failed: Vec<&str> =
                    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                let want: Vec<&str> =
                    case["failures"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
                assert_eq!(failed, want, "{file}: only the poison message comes back");
            }
            (_, _, Some(scheduled)) => {
                let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
                let answer = handle_schedule(scheduled, serde_json::from_str(&text).unwrap(), deadline).await.unwrap();
                assert_eq!(answer["job"], case["job"], "{file}");
                assert!(answer["processed"].is_u64());
            }
            _ => panic!("{name} serves nothing"),
        }
        covered.insert(file.to_owned());
    }

    // What the events made happen, as the Bot API saw it.
    let fake = &telegram.fake;
    assert!(
        fake.calls_to("sendMessage").iter().any(|c| c.params["text"] == "Bonjour"),
        "the SQS record was carried out"
    );
    assert!(fake.calls_to("banChatMember").iter().any(|c| c.params["user_id"] == 424242));
    assert!(fake.calls_to("declineChatJoinRequest").is_empty(), "join requests are decided through the queue");
    let answer = &fake.calls_to("answerPreCheckoutQuery")[0].params;
    assert_eq!((answer["pre_checkout_query_id"].as_str(), answer["ok"].as_bool()), (Some("pcq-events-1"), Some(true)));
    let invited = fake
        .calls_to("sendMessage")
        .iter()
        .any(|c| c.params["chat_id"] == 515151 && c.params["reply_markup"]["inline_keyboard"][0][0]["url"].is_string());
    assert!(invited, "the Stars buyer got a personal invite");

    // No sample goes untested.
    let mut on_disk = BTreeSet::new();
    for dir in std::fs::read_dir(EVENTS).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                on_disk.insert(format!(
                    "{}/{}",
                    dir.file_name().unwrap().to_string_lossy(),
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert_eq!(on_disk, covered, "every file in events/ is listed in expected.json");
    let names: BTreeSet<&str> = expected.iter().map(|c| c["function"].as_str().unwrap()).collect();
    assert_eq!(names.len(), Function::ALL.len(), "every function has sample events");
}

#[tokio::test]
async fn a_function_refuses_to_start_with_the_test_clock_or_without_aws_resources() {
    let base = [
        ("TELEGRAM_BOT_TOKEN", "1:x"),
        ("TELEGRAM_BOT_USERNAME", "b"),
        ("TELEGRAM_CHANNEL_ID", "-100"),
        ("TELEGRAM_WEBHOOK_SECRET", "s"),
        ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    let settings = |extra: &[(&str, &str)]| {
        let map: HashMap<&str, &str> = base.iter().chain(extra).copied().collect();
        Settings::from_env(&|k| map.get(k).map(|v| v.to_string())).unwrap()
    };
    let Err(e) = Wiring::build(Function::Status, settings(&[]), &sdk_config().await).await else {
        panic!("started without AWS resources")
    };
    assert!(matches!(e, StartupError::NoAwsResources) && e.to_string().contains("TABLE_NAME"), "{e}");
    let aws = [
        ("TABLE_NAME", "t"),
        ("QUEUE_URL", "http://q"),
        ("MAIL_FROM", "a@b.c"),
        ("EVENT_BUS_NAME", "e"),
        ("TELEGATE_TEST_CLOCK", "1"),
    ];
    let Err(e) = Wiring::build(Function::Status, settings(&aws), &sdk_config().await).await else {
        panic!("started with the test clock")
    };
    assert!(matches!(e, StartupError::TestClock) && e.to_string().contains("TELEGATE_TEST_CLOCK"), "{e}");
    let map: HashMap<&str, &str> = base.iter().chain(&aws[..3]).copied().collect();
    let missing = Settings::from_env(&|k| map.get(k).map(|v| v.to_string())).unwrap_err();
    assert!(missing.to_string().contains("EVENT_BUS_NAME"), "{missing}");
}

#[tokio::test]
async fn a_batch_that_runs_out_of_time_puts_its_unstarted_records_back_without_spending_a_receive() {
    let (telegram, wiring) = wiring().await;
    let text = std::fs::read_to_string(format!("{EVENTS}/side-effects/batch.json")).unwrap();
    let event: SqsEvent = serde_json::from_str(&text).unwrap();
    let mut bodies: Vec<String> = event.records.iter().map(|r| r.body.clone().unwrap()).collect();
    // Less time left than one record may need (two Bot API calls of TELEGRAM_TIMEOUT_SECONDS).
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let effects = wiring.of(Function::SideEffects).effects().unwrap();
    let response = handle_sqs(effects, event, deadline).await;
    assert!(response.batch_item_failures.is_empty(), "settled: no receive counted towards the dead letters");
    assert!(telegram.fake.calls().is_empty(), "none was started");
    // Each is on the queue again, whole, as a fresh message (received once so far).
    let config = telegate_core::adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let url = effects.queue.url().to_owned();
    let mut again = Vec::new();
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount).cloned());
            assert_eq!(count.as_deref(), Some("1"), "a fresh copy");
            again.push(m.body.unwrap());
        }
        if again.len() >= bodies.len() {
            break;
        }
    }
    again.sort();
    bodies.sort();
    assert_eq!(again, bodies, "every record put back whole");
}

#[tokio::test]
async fn each_function_starts_with_only_the_secrets_it_uses_and_names_a_missing_one() {
    let resources = support::aws_resources().await;
    let base: Vec<(&str, String)> = resources
        .into_iter()
        .chain([("TELEGRAM_BOT_USERNAME", "b".to_owned()), ("TELEGRAM_CHANNEL_ID", "-100".to_owned())])
        .collect();
    let secrets = [
        ("TELEGRAM_BOT_TOKEN", "1:x"),
        ("TELEGRAM_WEBHOOK_SECRET", "s"),
        ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ("CONSOLE_SESSION_KEY", "a console session key of 32 characters or more"),
    ];
    for function in Function::ALL {
        let (name, needs) = (function.name(), function.needs());
        let given: Vec<(&str, &str)> = secrets
            .iter()
            .filter(|(k, _)| match *k {
                "TELEGRAM_BOT_TOKEN" => needs.bot_token,
                "TELEGRAM_WEBHOOK_SECRET" => needs.webhook_secret,
                "CONSOLE_SESSION_KEY" => needs.console,
                _ => needs.api_tokens,
            })
            .copied()
            .collect();
        let env = |without: Option<&str>| {
            let map: HashMap<String, String> = base
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .chain(given.iter().filter(|(k, _)| Some(*k) != without).map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            move |k: &str| map.get(k).cloned()
        };
        let settings = Settings::from_env_for(&env(None), needs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let wiring = Wiring::build(function, settings, &sdk_config().await)
            .await
            .unwrap_or_else(|e| panic!("{name} starts with its own secrets only: {e}"));
        // Only the clients it uses: no queue, no Bot API where it has no use for them.
        assert_eq!(wiring.ports.queue.is_some(), needs.queue, "{name}");
        assert_eq!(wiring.ports.telegram.is_some(), needs.bot_token, "{name}");
        assert_eq!(wiring.ports.jobs.is_some(), needs.events, "{name}");
        for (missing, _) in &given {
            let e = Settings::from_env_for(&env(Some(missing)), needs).unwrap_err();
            assert!(e.to_string().contains(missing), "{name} without {missing}: {e}");
        }
    }
    // Status, given no bot token, serves its route and calls no Telegram.
    assert!(!Function::Status.needs().bot_token && !Function::Status.needs().webhook_secret);
    assert!(!Function::Stats.needs().bot_token, "an admin's job run runs in the scheduled-jobs function");
}

/// An admin's job run: the stats function answers 202 at once with a run id; the run, delivered by
/// the bus to the scheduled-jobs function, is recorded under that id and read back.
#[tokio::test]
async fn a_job_run_asked_of_the_stats_function_runs_in_the_scheduled_jobs_function() {
    let (_telegram, wiring) = wiring().await;
    let router = wiring.of(Function::Stats).router().unwrap();
    let scheduled = wiring.of(Function::ScheduledJobs).scheduled().unwrap();
    let jwt = telegate::jwt::mint("events-secret-not-for-production-0123456789", "root", "admin", None, 10).unwrap();
    let admin = format!("Bearer {jwt}");
    let call = |method: &str, path: String| {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", &admin)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let response =
        router.clone().oneshot(call("POST", "/api/telegram/admin/jobs/expire-tokens/run/".into())).await.unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let queued: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(
        (queued["job"].as_str(), queued["status"].as_str()),
        (Some("expire-tokens"), Some("queued")),
        "{queued}"
    );
    let id = queued["run_id"].as_str().unwrap();
    assert_eq!(location, format!("/api/telegram/admin/job-runs/{id}/"));

    let event = serde_json::json!({
        "version": "0", "id": "e1", "detail-type": "Job Run Requested", "source": "telegate.jobs",
        "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"job": "expire-tokens", "run_id": id},
    });
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
    let answer = handle_schedule(scheduled, event.clone(), deadline).await.unwrap();
    assert_eq!(answer["job"], "expire-tokens");

    let response = router.clone().oneshot(call("GET", location)).await.unwrap();
    assert_eq!(response.status(), 200);
    let run: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(
        (run["status"].as_str(), run["processed"].as_u64()),
        (Some("done"), answer["processed"].as_u64()),
        "{run}"
    );
    assert_eq!((run["complete"].as_bool(), run["requested_by"].as_str()), (Some(true), Some("user:root")));
    assert!(run["started_at"].is_string() && run["finished_at"].is_string(), "{run}");

    // A run delivered for another job than the one asked for is refused, and the record stands.
    let mut other = event;
    other["detail"]["job"] = "expire-subscriptions".into();
    let refused = handle_schedule(scheduled, other, deadline).await.unwrap_err();
    assert!(matches!(refused, JobError::Failed(_)), "{refused}");
    assert_eq!(telegate_lambda::Diagnostic::from(refused).error_type, "JobFailed");
    let unknown = handle_schedule(scheduled, serde_json::json!({"job": "reboot"}), deadline).await.unwrap_err();
    assert_eq!(telegate_lambda::Diagnostic::from(unknown).error_type, "UnknownJob");
    let response =
        router.oneshot(call("GET", "/api/telegram/admin/job-runs/0000019ab9f3a1c00000ffff/".into())).await.unwrap();
    assert_eq!(response.status(), 404, "an unknown run");
}
