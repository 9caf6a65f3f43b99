//! `telegate doctor` and `telegate set-webhook`, run as the real binary against the fake Bot API.

use crate::support;

use crate::support::{BOT_TOKEN, CHANNEL, JWT_SECRET, WEBHOOK_SECRET};
use serde_json::json;
use telegate_testkit::fake_telegram::{BOT_USERNAME, FakeTelegram, RunningFake};

async fn telegate(fake: &RunningFake, args: &[&str], username: &str) -> (i32, String, String) {
    telegate_with(fake, args, username, &[]).await
}

/// A data folder whose store has a run of every job recorded `ago` before now.
async fn data_with_job_runs(ago: chrono::Duration) -> support::TempDir {
    use telegate_core::ports::JobLog;
    let dir = support::TempDir::new();
    let store = telegate_core::adapters::sqlite::SqliteStore::open(&dir.0.join("telegate.sqlite3")).unwrap();
    for job in telegate_core::domain::Job::ALL {
        store.record_job_run(job.name(), chrono::Utc::now() - ago).await.unwrap();
    }
    dir
}

async fn telegate_with(
    fake: &RunningFake,
    args: &[&str],
    username: &str,
    extra: &[(&str, String)],
) -> (i32, String, String) {
    let data = data_with_job_runs(chrono::Duration::minutes(1)).await;
    let data_path = data.0.display().to_string();
    let has_data = extra.iter().any(|(k, _)| *k == "TELEGATE_DATA");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_telegate"))
        .args(args)
        .env_clear()
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .env("TELEGRAM_BOT_USERNAME", username)
        .env("TELEGRAM_CHANNEL_ID", CHANNEL.to_string())
        .env("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("TELEGRAM_API_URL", &fake.url)
        .env("JWT_HS256_SECRET", JWT_SECRET)
        .envs((!has_data).then_some(("TELEGATE_DATA", data_path.as_str())))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains(BOT_TOKEN) && !stderr.contains(BOT_TOKEN), "the bot token was printed");
    assert!(!stdout.contains(WEBHOOK_SECRET) && !stderr.contains(WEBHOOK_SECRET), "the webhook secret was printed");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test]
async fn doctor_is_all_green_for_a_well_set_up_bot() {
    let fake = FakeTelegram::start().await.unwrap();
    let (code, out, _) = telegate(&fake, &["doctor"], BOT_USERNAME).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 11, "five checks of the bot, six of the jobs: {out}");
    assert!(lines.iter().all(|l| l.starts_with('✓')), "{out}");
    assert!(out.contains("job expire-subscriptions: last run"), "{out}");
    assert!(out.contains("can invite users, can ban users"));
    assert!(out.contains("webhook: none registered"));
}

#[tokio::test]
async fn doctor_names_each_problem_with_its_fix() {
    let fake = FakeTelegram::start().await.unwrap();
    fake.fake.set_bot_rights(false, true);
    fake.fake.set_webhook_url("https://old.example/hook");
    let (code, out, _) = telegate(&fake, &["doctor"], "someone_else_bot").await;
    assert_eq!(code, 1, "{out}");
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with('✗')).collect();
    assert_eq!(failed.len(), 3, "{out}");
    assert!(failed[0].contains("TELEGRAM_BOT_USERNAME") && failed[0].contains("fix"));
    assert!(failed[1].contains("Invite users via link") && !failed[1].contains("Ban users"));
    assert!(failed[2].contains("chat_member, chat_join_request") && failed[2].contains("telegate set-webhook --url"));
}

#[tokio::test]
async fn set_webhook_registers_the_secret_and_the_update_kinds_and_can_remove_it() {
    let fake = FakeTelegram::start().await.unwrap();
    let (code, out, _) =
        telegate(&fake, &["set-webhook", "--url", "https://telegate.example/api/telegram/webhook"], BOT_USERNAME).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with('✓'));
    let call = &fake.fake.calls_to("setWebhook")[0];
    assert_eq!(call.params["url"], "https://telegate.example/api/telegram/webhook");
    assert_eq!(call.params["secret_token"], WEBHOOK_SECRET);
    let kinds = json!(["message", "chat_member", "chat_join_request", "pre_checkout_query"]);
    assert_eq!(call.params["allowed_updates"], kinds);

    let (code, out, _) = telegate(&fake, &["doctor"], BOT_USERNAME).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(
        "webhook: https://telegate.example/api/telegram/webhook, allowed_updates message, chat_member, chat_join_request, pre_checkout_query"
    ));

    let (code, _, _) = telegate(&fake, &["set-webhook", "--delete"], BOT_USERNAME).await;
    assert_eq!(code, 0);
    assert_eq!(fake.fake.calls_to("deleteWebhook").len(), 1);
}

#[tokio::test]
async fn ops_commands_without_a_bot_token_stop_with_exit_2() {
    let out =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_telegate")).arg("doctor").env_clear().output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

/// The AWS settings of fresh resources on the stand-in, with every job's run recorded in the table.
async fn aws_env_with_jobs_run() -> Vec<(&'static str, String)> {
    let mut env: Vec<(&str, String)> = support::aws_resources().await;
    for k in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env.push((k, std::env::var(k).unwrap()));
    }
    // DynamoDB may be on its own stand-in (infra/test.sh's second pass, on DynamoDB Local).
    if let Ok(dynamodb) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        env.push(("AWS_ENDPOINT_URL_DYNAMODB", dynamodb));
    }
    use telegate_core::ports::JobLog;
    let table = env.iter().find(|(k, _)| *k == "TABLE_NAME").unwrap().1.clone();
    let config = telegate_core::adapters::aws::sdk_config().await;
    let store = telegate_core::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    for job in telegate_core::domain::Job::ALL {
        store.record_job_run(job.name(), chrono::Utc::now()).await.unwrap();
    }
    env
}

#[tokio::test]
async fn doctor_checks_the_table_and_the_queue_when_aws_settings_are_given() {
    let fake = FakeTelegram::start().await.unwrap();
    let mut env = aws_env_with_jobs_run().await;
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ DynamoDB table") && out.contains("✓ SQS queue reachable"), "{out}");
    assert!(out.contains("✓ job reconcile-members: last run"), "{out}");

    for (k, v) in env.iter_mut() {
        if *k == "TABLE_NAME" {
            *v = "no-such-table".into();
        }
    }
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 1);
    assert!(out.contains("✗ DynamoDB table no-such-table does not exist → fix"), "{out}");
}

#[tokio::test]
async fn doctor_names_a_job_that_missed_its_schedule_and_how_to_fix_it() {
    let fake = FakeTelegram::start().await.unwrap();
    // Every job last ran 8 days ago: even the weekly clean-up has missed a run since.
    let data = data_with_job_runs(chrono::Duration::days(8)).await;
    let env = [("TELEGATE_DATA", data.0.display().to_string())];
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 1, "{out}");
    let missed: Vec<&str> = out.lines().filter(|l| l.starts_with("✗ job ")).collect();
    assert_eq!(missed.len(), 6, "{out}");
    assert!(missed.iter().all(|l| l.contains("but it was due at") && l.contains("→ fix")), "{out}");

    // No store where the data folder should be: said, not created.
    let empty = support::TempDir::new();
    let env = [("TELEGATE_DATA", empty.0.join("nothing-here").display().to_string())];
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 1);
    assert!(out.contains("✗ no store at"), "{out}");
    assert!(!empty.0.join("nothing-here").exists());
}

#[tokio::test]
async fn doctor_checks_that_the_stacks_job_schedules_exist_and_are_enabled() {
    use aws_sdk_eventbridge::types::RuleState;
    let fake = FakeTelegram::start().await.unwrap();
    let mut env = aws_env_with_jobs_run().await;
    let stack = support::unique("stack");
    let config = telegate_core::adapters::aws::sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let put = |name: String, state: RuleState| {
        let events = events.clone();
        async move {
            events.put_rule().name(name).schedule_expression("cron(0 * * * ? *)").state(state).send().await.unwrap();
        }
    };
    for i in 0..5 {
        put(format!("{stack}-ScheduledJobsFunctionJob{i}-ABC123"), RuleState::Enabled).await;
    }
    env.push(("TELEGATE_STACK", stack.clone()));
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ EventBridge: 5 of the 6 job schedules") && out.contains("sam deploy"), "{out}");

    let last = format!("{stack}-ScheduledJobsFunctionJob5-ABC123");
    put(last.clone(), RuleState::Disabled).await;
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("aws events enable-rule --name {last}")), "{out}");

    put(last, RuleState::Enabled).await;
    let (code, out, _) = telegate_with(&fake, &["doctor"], BOT_USERNAME, &env).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ EventBridge: the 6 job schedules"), "{out}");
}
