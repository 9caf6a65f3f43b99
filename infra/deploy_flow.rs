//! The whole flow through the functions `sam build` produced, as the deployed system runs it: each
//! HTTP request reaches its function by the template's HTTP API route (or the webhook's Function
//! URL), queued effects are received from the stand-in's SQS queue and delivered to the consumer in
//! batches (what it does not report as failed is deleted, as Lambda's event source does), and the
//! expiry runs on the scheduled-jobs function with the input of the template's own schedule.
//! Payment, validation, `/start`, join request, join, status, stats, revoke, the console inside
//! Telegram (a Mini App sign-in, a validation from the queue), expiry, and an admin's
//! job run, delivered by the bus to the scheduled-jobs function by the template's rule.

use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use telegate_core::adapters::dynamodb::DynamoStore;
use telegate_core::ports::{ImportStore, Written};
use telegate_testkit::fake_telegram::{FakeTelegram, updates};

use super::{Platform, route, secret};

const CHANNEL: i64 = -1_001_234_567_890; // the ChannelId parameter the check deploys with
const ALICE: i64 = 880_001;
const BOB: i64 = 880_002;

struct Flow<'a> {
    platform: &'a Platform,
    fake: &'a FakeTelegram,
    sqs: aws_sdk_sqs::Client,
    invocations: usize,
    effects: usize,
    next_update: i64,
}

fn jwt(sub: &str, role: &str) -> Result<String, String> {
    let key = secret("jwt_hs256_secret").ok_or("no JWT secret")?;
    telegate::jwt::mint(key, sub, role, Some(&format!("{sub}@example.com")), 10)
}

fn request_context(host: &str, method: &str, path: &str) -> Value {
    json!({
        "accountId": "123456789012", "apiId": host.split('.').next().unwrap_or(""), "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or(""),
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "deploy-check"},
        "requestId": format!("flow-{}", Utc::now().timestamp_micros()), "routeKey": "$default", "stage": "$default",
        "time": Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string(), "timeEpoch": Utc::now().timestamp_millis(),
    })
}

impl Flow<'_> {
    /// Sends one HTTP request the way the deployment would route it; the status and JSON body.
    async fn http(&mut self, name: &str, event: Value) -> Result<(u16, Value), String> {
        let (_, properties) = self.platform.function(name)?;
        route(properties, &event)?.ok_or(format!("{name}: not an HTTP event"))?;
        self.invocations += 1;
        let answer: Value = serde_json::from_str(&self.platform.invoke(name, event.to_string()).await?)
            .map_err(|e| format!("{name}: answer is not JSON: {e}"))?;
        let status = answer["statusCode"].as_u64().unwrap_or(0) as u16;
        let body = answer["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn api(
        &mut self,
        name: &str,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<(u16, Value), String> {
        let host = "abc123.execute-api.eu-west-1.amazonaws.com";
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": host, "authorization": format!("Bearer {token}")},
            "requestContext": request_context(host, method, path),
            "isBase64Encoded": false,
            "body": if body.is_null() { Value::Null } else { Value::String(body.to_string()) },
        });
        self.http(name, event).await
    }

    /// A console request through the console function, by the template's route: the status, the
    /// cookies it sets and the page. Each invocation is a process of its own, as Lambda's
    /// containers are: a session opened by one is read by the next only with the stack's key.
    async fn console(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<String>,
    ) -> Result<(u16, Vec<String>, String), String> {
        let host = "abc123.execute-api.eu-west-1.amazonaws.com";
        let mut headers = json!({"host": host, "x-forwarded-proto": "https", "accept": "text/html"});
        if form.is_some() {
            headers["content-type"] = json!("application/x-www-form-urlencoded");
        }
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "cookies": cookie.map(|c| vec![c]).unwrap_or_default(), "headers": headers,
            "requestContext": request_context(host, method, path), "isBase64Encoded": false, "body": form,
        });
        let (_, properties) = self.platform.function("console")?;
        route(properties, &event)?.ok_or("console: not an HTTP event")?;
        self.invocations += 1;
        let answer: Value = serde_json::from_str(&self.platform.invoke("console", event.to_string()).await?)
            .map_err(|e| format!("console: answer is not JSON: {e}"))?;
        let status = answer["statusCode"].as_u64().unwrap_or(0) as u16;
        let cookies = answer["cookies"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned);
        let mut body = answer["body"].as_str().unwrap_or_default().to_owned();
        if answer["isBase64Encoded"] == true {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD.decode(&body).map_err(|e| e.to_string())?;
            body = String::from_utf8_lossy(&bytes).into_owned();
        }
        Ok((status, cookies.collect(), body))
    }

    async fn telegram(&mut self, update: Value) -> Result<(), String> {
        let host = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6.lambda-url.eu-west-1.on.aws";
        let path = "/api/telegram/webhook";
        let event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json", "host": host,
                        "x-telegram-bot-api-secret-token": secret("webhook_secret").unwrap_or("")},
            "requestContext": request_context(host, "POST", path),
            "isBase64Encoded": false, "body": update.to_string(),
        });
        let (status, body) = self.http("telegram-webhook", event).await?;
        if status != 200 {
            return Err(format!("the webhook answered {status}: {body}"));
        }
        Ok(())
    }

    fn update_id(&mut self) -> i64 {
        self.next_update += 1;
        self.next_update
    }

    /// `function`'s last invocation wrote the alarms' `metric` as CloudWatch reads it: an Embedded
    /// Metric Format line under the stack's namespace (with `dimension`, when given).
    fn emitted(&self, function: &str, metric: &str, dimension: Option<(&str, &str)>) -> Result<(), String> {
        let path = self.platform.logs.join(format!("{function}.log"));
        let log = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let namespace = format!("telegate/{}", super::STACK);
        let found = log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|line| {
            let definition = &line["_aws"]["CloudWatchMetrics"][0];
            definition["Namespace"] == namespace.as_str()
                && definition["Metrics"][0]["Name"] == metric
                && line[metric].is_number()
                && dimension.is_none_or(|(key, value)| line[key] == value)
        });
        expect(found, &format!("{function} wrote no {metric} metric {dimension:?} (log: {})", path.display()))
    }

    /// Delivers the queue to the consumer until it is empty, ten messages per invocation; a
    /// failure the consumer reports is a failure of the check.
    async fn drain(&mut self) -> Result<(), String> {
        for _ in 0..50 {
            let (received, failed) = deliver(self.platform, &self.sqs, Some(60)).await?;
            if received == 0 {
                return Ok(());
            }
            self.invocations += 1;
            if !failed.is_empty() {
                return Err(format!(
                    "the consumer reported failures: {failed:?} (log: target/deploy-check/side-effects.log)"
                ));
            }
            self.effects += received;
        }
        Err("the queue never emptied".into())
    }

    fn calls_for(&self, method: &str, user: i64) -> usize {
        self.fake.calls_to(method).iter().filter(|c| c.params["user_id"] == json!(user)).count()
    }
}

/// One delivery as Lambda's event source makes it: up to ten messages received from the queue
/// (`visibility`: for how long, else the queue's own), with their receive counts, go to the
/// consumer in one invocation; those it does not report as failed are deleted, the others come
/// back when visible again (or go to the dead-letter queue by the queue's redrive policy). How many
/// were received, and the ids of those that failed.
pub(super) async fn deliver(
    platform: &Platform,
    sqs: &aws_sdk_sqs::Client,
    visibility: Option<i32>,
) -> Result<(usize, Vec<String>), String> {
    let url = &platform.resources["QUEUE_URL"];
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .set_visibility_timeout(visibility)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .map_err(|e| format!("SQS receive: {e:?}"))?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok((0, Vec::new()));
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount).cloned())
                .unwrap_or_else(|| "1".into());
            json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": {"ApproximateReceiveCount": count, "SentTimestamp": "0", "SenderId": "deploy-check",
                               "ApproximateFirstReceiveTimestamp": "0"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:effects", "awsRegion": "eu-west-1",
            })
        })
        .collect();
    let answer: Value =
        serde_json::from_str(&platform.invoke("side-effects", json!({ "Records": records }).to_string()).await?)
            .map_err(|e| format!("side-effects: {e}"))?;
    let failed: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for m in messages.iter().filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id.as_deref())) {
        sqs.delete_message()
            .queue_url(url)
            .set_receipt_handle(m.receipt_handle.clone())
            .send()
            .await
            .map_err(|e| format!("SQS delete: {e:?}"))?;
    }
    Ok((messages.len(), failed))
}

pub(super) fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

pub async fn run(platform: &Platform, fake: &FakeTelegram, store: &DynamoStore) -> Result<String, String> {
    let sqs = aws_sdk_sqs::Client::new(&telegate_core::adapters::aws::sdk_config().await);
    let mut flow = Flow { platform, fake, sqs, invocations: 0, effects: 0, next_update: 9_000_000 };
    let alice = jwt("flow-alice", "user")?;
    let support = jwt("flow-support", "support")?;
    let admin = jwt("flow-admin", "admin")?;

    // A payment, validated by support: a token and a link.
    let (status, payment) = flow
        .api(
            "payments",
            "POST",
            "/api/payments/pending-payments/create/",
            &alice,
            json!({"offer_id": "monthly", "transaction_id": "TX-DEPLOY-FLOW"}),
        )
        .await?;
    expect(status == 201, &format!("payment: {status} {payment}"))?;
    let id = payment["id"].as_str().ok_or("no payment id")?.to_owned();
    let path = format!("/api/payments/admin/pending-payments/{id}/validate/");
    let (status, issued) = flow.api("payments", "POST", &path, &support, json!({})).await?;
    expect(status == 200, &format!("validation: {status} {issued}"))?;
    let token = issued["token"].as_str().ok_or("no token")?.to_owned();
    flow.drain().await?;

    // The link opened in Telegram: an invite for that account.
    let update_id = flow.update_id();
    flow.telegram(updates::text(update_id, ALICE, "fr", &format!("/start {token}"))).await?;
    flow.drain().await?;
    let link = fake
        .calls_to("sendMessage")
        .iter()
        .rev()
        .filter(|c| c.params["chat_id"] == json!(ALICE))
        .find_map(|c| c.params["reply_markup"]["inline_keyboard"][0][0]["url"].as_str().map(str::to_owned))
        .ok_or("/start sent no invite")?;

    // The join request is approved, the join starts the membership.
    let update_id = flow.update_id();
    flow.telegram(updates::join_request(update_id, CHANNEL, ALICE, &link)).await?;
    flow.drain().await?;
    expect(flow.calls_for("approveChatJoinRequest", ALICE) == 1, "the join request was not approved")?;
    let update_id = flow.update_id();
    flow.telegram(updates::joined(update_id, CHANNEL, ALICE, Some(&link))).await?;
    flow.emitted("telegram-webhook", "WebhookAnswers", Some(("Class", "2xx")))?;
    flow.drain().await?;

    let (status, mine) = flow.api("status", "GET", "/api/telegram/status/", &alice, Value::Null).await?;
    expect(status == 200 && mine["has_active_subscription"] == true, &format!("status: {status} {mine}"))?;
    let (status, stats) = flow.api("stats", "GET", "/api/telegram/admin/stats/", &admin, Value::Null).await?;
    expect(status == 200 && stats["members"]["active"].as_i64() >= Some(1), &format!("stats: {status} {stats}"))?;

    // Revoked by an admin: out of the channel.
    let body = json!({"user_id": "flow-alice", "reason": "deployment check"});
    let (status, revoked) = flow.api("revoke", "POST", "/api/telegram/revoke-access/", &admin, body).await?;
    expect(status == 200 && revoked["revoked_count"] == 1, &format!("revoke: {status} {revoked}"))?;
    flow.drain().await?;
    expect(flow.calls_for("banChatMember", ALICE) >= 1, "the revoked member was not removed")?;

    // The console, inside Telegram: an admin of AdminTelegramIds signs in with the Mini App's
    // launch data, then validates a payment from the queue, each step its own invocation.
    let body = json!({"offer_id": "monthly", "transaction_id": "TX-DEPLOY-CONSOLE"});
    let (status, payment) =
        flow.api("payments", "POST", "/api/payments/pending-payments/create/", &alice, body).await?;
    expect(status == 201, &format!("payment: {status} {payment}"))?;
    let bot_token = secret("bot_token").ok_or("no bot token")?;
    let launch = telegate_testkit::fake_telegram::mini_app_launch_data(bot_token, 777_000, Utc::now().timestamp());
    let form = serde_urlencoded::to_string([("launch_data", launch)]).map_err(|e| e.to_string())?;
    let (status, cookies, _) = flow.console("POST", "/console/telegram", None, Some(form)).await?;
    let session = cookies.iter().find(|c| c.starts_with("telegate_console=")).map(|c| c.split(';').next());
    let session = session.flatten().ok_or(format!("console sign-in: {status}, no session cookie"))?.to_owned();
    expect(status == 303, &format!("console sign-in: {status}"))?;
    let (status, _, page) = flow.console("GET", "/console/payments", Some(&session), None).await?;
    expect(status == 200 && page.contains("TX-DEPLOY-CONSOLE"), &format!("console queue: {status}"))?;
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
    let validate = format!("/console/payments/{}/validate", payment["id"].as_str().unwrap_or_default());
    let form = serde_urlencoded::to_string([("csrf", csrf)]).map_err(|e| e.to_string())?;
    let (status, _, page) = flow.console("POST", &validate, Some(&session), Some(form)).await?;
    expect(status == 200 && page.contains("https://t.me/"), &format!("console validation: {status}"))?;

    // A purchase in Telegram Stars, inside the bot: /buy, the pre-checkout, the payment, the invite.
    const CAROL: i64 = 880_003;
    let update_id = flow.update_id();
    flow.telegram(updates::text(update_id, CAROL, "en", "/buy")).await?;
    let invoice = fake.calls_to("createInvoiceLink").last().map(|c| c.params.clone()).ok_or("/buy made no invoice")?;
    expect(
        invoice["currency"] == "XTR" && invoice["subscription_period"] == 2_592_000,
        &format!("invoice: {invoice}"),
    )?;
    let payload = invoice["payload"].as_str().unwrap_or_default().to_owned();
    let update_id = flow.update_id();
    flow.telegram(updates::pre_checkout(update_id, CAROL, "deploy-pcq", &payload, 250)).await?;
    let answer = fake.calls_to("answerPreCheckoutQuery").last().map(|c| c.params.clone()).unwrap_or_default();
    expect(answer["ok"] == true, &format!("pre-checkout: {answer}"))?;
    let charge = fake.take_star_payment(CAROL, &payload, 250, Some(2_592_000));
    let renewal = updates::Renewal { expires: Utc::now().timestamp() + 2_592_000, recurring: true, first: true };
    let update_id = flow.update_id();
    let paid = updates::StarsPaid { payload: &payload, stars: 250, charge: &charge, renewal: Some(renewal) };
    flow.telegram(updates::stars_payment(update_id, CAROL, Utc::now().timestamp(), paid)).await?;
    flow.drain().await?;
    let invited = fake.calls_to("sendMessage").iter().any(|c| {
        c.params["chat_id"] == json!(CAROL) && c.params["reply_markup"]["inline_keyboard"][0][0]["url"].is_string()
    });
    expect(invited && fake.calls_to("createChatInviteLink").len() >= 2, "the Stars buyer got no invite")?;

    // A member whose period ended an hour ago (written as the import writes it), expired by the
    // scheduled-jobs function on the template's own schedule input.
    let now = Utc::now();
    let records = telegate_testkit::samples::paid_member(
        "flow-bob",
        BOB,
        "TX-DEPLOY-FLOW-BOB",
        now - Duration::days(31),
        now - Duration::hours(1),
    );
    let written = store.import(&records).await.map_err(|e| e.to_string())?;
    expect(written.iter().all(|w| *w == Written::New), "the ended member could not be written")?;
    let input = platform.schedule_input("expire-subscriptions")?;
    flow.invocations += 1;
    let answer: Value = serde_json::from_str(&platform.invoke("scheduled-jobs", input).await?)
        .map_err(|e| format!("scheduled-jobs: {e}"))?;
    expect(answer["processed"].as_u64() >= Some(1), &format!("expiry: {answer}"))?;
    flow.emitted("scheduled-jobs", "JobRunsCompleted", Some(("Job", "expire-subscriptions")))?;
    flow.drain().await?;
    expect(flow.calls_for("banChatMember", BOB) == 1, "the expired member was not removed")?;
    flow.emitted("side-effects", "EffectAgeSeconds", None)?;

    // An admin's job run: the stats function answers 202 at once; the bus delivers the run to the
    // scheduled-jobs function by the template's rule; the run is read back by its id.
    let path = "/api/telegram/admin/jobs/expire-tokens/run/";
    let (status, queued) = flow.api("stats", "POST", path, &admin, json!({})).await?;
    expect(status == 202 && queued["status"] == "queued", &format!("job run: {status} {queued}"))?;
    let delivered = platform.deliver_bus().await?;
    flow.invocations += delivered.len();
    expect(
        delivered.iter().filter(|(name, _)| name == "scheduled-jobs").count() == 1,
        &format!(
            "the bus delivered the job run to {:?}, not once to scheduled-jobs",
            delivered.iter().map(|d| &d.0).collect::<Vec<_>>()
        ),
    )?;
    let path = format!("/api/telegram/admin/job-runs/{}/", queued["run_id"].as_str().unwrap_or_default());
    let (status, run) = flow.api("stats", "GET", &path, &admin, Value::Null).await?;
    expect(
        status == 200 && run["status"] == "done" && run["complete"] == true,
        &format!("the job run: {status} {run}"),
    )?;

    Ok(format!(
        "payment, validation, /start, join request, join, status, stats, revoke, the console inside Telegram (sign-in, validation), a Stars purchase, expiry, an admin's job run: {} invocations, {} queued effects carried out",
        flow.invocations, flow.effects
    ))
}
