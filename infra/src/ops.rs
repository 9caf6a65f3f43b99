//! Ops commands: `telegate set-webhook` and `telegate doctor`, one clear line per check (the bot,
//! the channel, the bot's rights, the webhook, and with AWS settings the table and the queue).

use telegate_core::adapters::aws::sdk_config;
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::adapters::sqs::SqsQueue;
use telegate_core::adapters::telegram::{BotApi, allowed_updates};
use telegate_core::config::Settings;

/// The update kinds the webhook must carry, as the Bot API names them.
const NEEDED: [&str; 3] = ["message", "chat_member", "chat_join_request"];

pub async fn set_webhook(bot: &BotApi, settings: &Settings, url: Option<&str>) -> Result<String, String> {
    match url {
        Some(url) => {
            let secret = settings.webhook_secret.as_ref().ok_or("✗ missing setting TELEGRAM_WEBHOOK_SECRET")?;
            bot.set_webhook(url, secret).await.map_err(|e| format!("✗ setWebhook failed: {e}"))?;
            let kinds: Vec<String> =
                allowed_updates().iter().filter_map(|k| serde_json::to_value(k).ok()).map(|v| v.to_string()).collect();
            Ok(format!("✓ webhook set to {url} with its secret, allowed_updates {}", kinds.join(", ")))
        }
        None => {
            bot.delete_webhook().await.map_err(|e| format!("✗ deleteWebhook failed: {e}"))?;
            Ok("✓ webhook removed: `telegate serve` can long-poll".into())
        }
    }
}

/// Every check as a line; `true` when all passed.
pub async fn doctor(bot: &BotApi, settings: &Settings) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    let mut check = |passed: bool, line: String| {
        ok &= passed;
        lines.push(format!("{} {line}", if passed { "✓" } else { "✗" }));
    };

    let me = match bot.me().await {
        Ok(me) => {
            check(true, format!("bot token: the bot is @{} (id {})", me.username, me.id));
            let same = me.username.eq_ignore_ascii_case(&settings.bot_username);
            check(
                same,
                if same {
                    format!("TELEGRAM_BOT_USERNAME matches (deep links go to @{})", me.username)
                } else {
                    format!(
                        "TELEGRAM_BOT_USERNAME is {} but the token belongs to @{} → fix: set TELEGRAM_BOT_USERNAME={}",
                        settings.bot_username, me.username, me.username
                    )
                },
            );
            Some(me)
        }
        Err(e) => {
            check(false, format!("bot token: getMe failed ({e}) → fix: copy the token again from @BotFather (/token)"));
            None
        }
    };

    match bot.channel_title().await {
        Ok(title) => check(true, format!("channel: {title:?} ({})", settings.channel_id)),
        Err(e) => check(
            false,
            format!(
                "channel {}: getChat failed ({e}) → fix: TELEGRAM_CHANNEL_ID is the numeric id (-100…) and the bot must be an administrator of the channel",
                settings.channel_id
            ),
        ),
    }

    if let Some(me) = &me {
        match bot.rights(me.id).await {
            Ok(r) if r.administrator && r.can_invite_users && r.can_restrict_members => {
                check(true, "bot rights in the channel: administrator, can invite users, can ban users".into())
            }
            Ok(r) => {
                let missing: Vec<&str> = [
                    (!r.administrator, "administrator"),
                    (!r.can_invite_users, "Invite users via link"),
                    (!r.can_restrict_members, "Ban users"),
                ]
                .into_iter()
                .filter_map(|(m, name)| m.then_some(name))
                .collect();
                check(
                    false,
                    format!(
                        "bot rights in the channel: missing {} → fix: channel → Administrators → @{} → enable them",
                        missing.join(", "),
                        me.username
                    ),
                )
            }
            Err(e) => check(
                false,
                format!("bot rights: getChatMember failed ({e}) → fix: add the bot to the channel as an administrator"),
            ),
        }
    }

    match bot.webhook_state().await {
        Ok(w) => match w.url.as_deref().filter(|u| !u.is_empty()) {
            None => check(
                true,
                "webhook: none registered (`telegate serve` long-polls; in AWS run `telegate set-webhook --url …`)"
                    .into(),
            ),
            Some(url) => {
                let kinds = w.allowed_updates.unwrap_or_default();
                let missing: Vec<&str> = NEEDED.iter().copied().filter(|k| !kinds.iter().any(|x| x == k)).collect();
                check(
                    missing.is_empty(),
                    if missing.is_empty() {
                        format!(
                            "webhook: {url}, allowed_updates {}, {} pending",
                            kinds.join(", "),
                            w.pending_update_count
                        )
                    } else {
                        format!(
                            "webhook: {url} does not receive {} → fix: telegate set-webhook --url {url}",
                            missing.join(", ")
                        )
                    },
                );
                if let Some(err) = w.last_error_message {
                    check(
                        false,
                        format!(
                            "webhook: Telegram's last delivery failed: {err} → fix: the URL must answer 200 over HTTPS and TELEGRAM_WEBHOOK_SECRET must match the one set"
                        ),
                    );
                }
            }
        },
        Err(e) => check(false, format!("webhook: getWebhookInfo failed ({e})")),
    }

    if let Some(aws) = &settings.aws {
        let config = sdk_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &aws.table);
        match store.table_exists().await {
            Ok(true) => check(true, format!("DynamoDB table {} exists", aws.table)),
            Ok(false) => check(
                false,
                format!(
                    "DynamoDB table {} does not exist → fix: deploy template.yaml (sam deploy) or correct TABLE_NAME",
                    aws.table
                ),
            ),
            Err(e) => {
                check(false, format!("DynamoDB table {}: {e} → fix: check the region and credentials", aws.table))
            }
        }
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&config), &aws.queue_url);
        match queue.backlog().await {
            Ok(n) => check(true, format!("SQS queue reachable, {n} effect(s) waiting")),
            Err(e) => check(
                false,
                format!("SQS queue {}: {e} → fix: deploy template.yaml or correct QUEUE_URL", aws.queue_url),
            ),
        }
    }
    (lines, ok)
}

/// How late a job may be before `doctor` calls it missed: a run may be under way, or the
/// scheduler a few minutes behind.
const JOB_GRACE_MINUTES: i64 = 30;

/// The guide's "scheduled tasks do not run": each job's last run from the store's job log, with a
/// ✗ and the fix when it missed its last scheduled time.
pub async fn job_checks(
    store: &dyn telegate_core::ports::Store,
    settings: &Settings,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(bool, String)> {
    let mut checks = Vec::new();
    for job in telegate_core::domain::Job::ALL {
        let schedule = settings.schedule(job);
        let due = schedule.last_due(now - chrono::Duration::minutes(JOB_GRACE_MINUTES));
        let fix = format!(
            "→ fix: in AWS, check that the schedule rules are enabled (sam deploy) and the scheduled-jobs function's errors in CloudWatch; locally, keep `telegate serve` running (its scheduler runs the jobs); run it now with POST /api/telegram/admin/jobs/{}/run/",
            job.name()
        );
        match store.last_job_run(job.name()).await {
            Ok(Some(last)) if last >= due => {
                checks.push((true, format!("job {}: last run {}", job.name(), last.format("%Y-%m-%d %H:%M UTC"))))
            }
            Ok(Some(last)) => checks.push((
                false,
                format!(
                    "job {}: last run {}, but it was due at {} {fix}",
                    job.name(),
                    last.format("%Y-%m-%d %H:%M UTC"),
                    due.format("%Y-%m-%d %H:%M UTC")
                ),
            )),
            Ok(None) => checks.push((false, format!("job {}: never ran {fix}", job.name()))),
            Err(e) => checks.push((false, format!("job {}: the job log cannot be read ({e})", job.name()))),
        }
    }
    checks
}

/// With AWS: the scheduled-jobs function's EventBridge schedules of the stack exist and are
/// enabled (SAM names them `<stack>-ScheduledJobsFunction<Event>-<suffix>`).
pub async fn schedule_checks(client: &aws_sdk_eventbridge::Client, stack: &str) -> Vec<(bool, String)> {
    let mut rules = Vec::new();
    let mut next = None;
    loop {
        let page = match client.list_rules().name_prefix(stack).set_next_token(next.take()).send().await {
            Ok(p) => p,
            Err(e) => {
                let why = aws_sdk_eventbridge::error::DisplayErrorContext(e);
                return vec![(false, format!("EventBridge schedules of {stack}: cannot list them ({why})"))];
            }
        };
        rules.extend(page.rules().iter().cloned());
        match page.next_token() {
            Some(t) => next = Some(t.to_owned()),
            None => break,
        }
    }
    let schedules: Vec<_> = rules
        .iter()
        .filter(|r| r.name().is_some_and(|n| n.contains("ScheduledJobsFunction")) && r.schedule_expression().is_some())
        .collect();
    let disabled: Vec<&str> = schedules
        .iter()
        .filter(|r| r.state() != Some(&aws_sdk_eventbridge::types::RuleState::Enabled))
        .filter_map(|r| r.name())
        .collect();
    let expected = telegate_core::domain::Job::ALL.len();
    if schedules.len() < expected {
        return vec![(
            false,
            format!(
                "EventBridge: {} of the {expected} job schedules of stack {stack} exist → fix: sam deploy the stack (template.yaml declares them)",
                schedules.len()
            ),
        )];
    }
    if !disabled.is_empty() {
        let first = disabled[0];
        return vec![(
            false,
            format!(
                "EventBridge: schedules disabled: {} → fix: aws events enable-rule --name {first}",
                disabled.join(", ")
            ),
        )];
    }
    vec![(true, format!("EventBridge: the {expected} job schedules of stack {stack} are enabled"))]
}
