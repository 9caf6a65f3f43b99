//! Runs what `sam build` produced, as the template deploys it: every `AWS::Serverless::Function`
//! of `template.yaml`, its `bootstrap` from the SAM build folder (arm64, run under qemu-user on an
//! x86_64 machine), with the environment the template gives it — each `!Ref` and secret resolved to
//! resources created on the local AWS stand-in and test values — under the Lambda Runtime API
//! emulator, answering a sample event from `events/` as `events/expected.json` says; then the whole
//! flow through those functions only (`deploy_flow.rs`): payment, validation, `/start`, join
//! request, join, status, stats, revoke, expiry by the scheduled-jobs function, and an admin's job
//! run, with the queue on the stand-in delivered to the consumer in batches and what is put on the
//! event bus delivered as the template's rules say. Each invocation gets the deadline of its
//! function's `Timeout`, and only the secrets the template gives it.
//!
//! `bash infra/sam.sh` runs it after `sam build`:
//! `cargo run --example deploy-check -- target/template.json .aws-sam/build`, where the JSON is
//! the template decoded by cfn-lint (intrinsics as `{"Ref": …}`, `{"Fn::Sub": …}`).
//! A variable the template passes that this check cannot resolve, a sample whose method and path no
//! HTTP API route of the template serves (or a Function URL request to a function without a URL), a
//! missing function or binary, a binary for another architecture, or a wrong answer is a failure.
//! Prints `N passed, M failed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use telegate_testkit::fake_telegram::FakeTelegram;
use telegate_testkit::lambda_emulator::{SAMPLES, check, invoke_with_timeout, sample};

#[path = "deploy_bus.rs"]
mod bus;
use bus::{Bus, bus_call};
#[path = "deploy_flow.rs"]
mod flow;
#[path = "deploy_outage.rs"]
mod outage;

/// The deployment's parameters and secrets, as an operator would give them.
fn parameter(name: &str, resources: &HashMap<String, String>) -> Option<String> {
    Some(match name {
        "BotUsername" => "telegate_fake_bot".into(),
        "ChannelId" => "-1001234567890".into(),
        "ChannelName" => "telegate".into(),
        "MailFrom" => resources.get("MAIL_FROM")?.clone(),
        "SecretName" => "telegate".into(),
        // The flow's offer is sold on the website and in Stars (a renewing subscription).
        "Offers" => r#"{"monthly": {"name": "Monthly", "days": 30, "stars": 250, "renewing": true}}"#.into(),
        "PaySupportContact" => "@telegate_support".into(),
        "JwtIssuer" | "JwtAudience" | "AlarmEmail" | "JwksUrl" => String::new(),
        // The console: the Mini App's admins, no identity provider (its sign-in is tested locally).
        "AdminTelegramIds" => "777000".into(),
        "SupportTelegramIds"
        | "ConsoleUrl"
        | "ConsoleOidcClientId"
        | "ConsoleOidcAuthorizeUrl"
        | "ConsoleOidcTokenUrl" => String::new(),
        _ => return None,
    })
}

fn secret(key: &str) -> Option<&'static str> {
    Some(match key {
        "bot_token" => "123456:DEPLOY-CHECK",
        "webhook_secret" => "events-webhook-secret",
        "jwt_hs256_secret" => "events-secret-not-for-production-0123456789",
        // The stack generates it (template.yaml); the console's sample cookie is signed with this.
        "console_session_key" => "events-console-key-not-for-production-0123456789",
        _ => return None,
    })
}

/// The stack the check plays (`${AWS::StackName}`).
pub const STACK: &str = "deploy-check";

/// One environment value of the template, resolved; `Err` names what could not be.
fn resolve(value: &Value, resources: &HashMap<String, String>) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap_or_default();
            match name {
                "Table" => resources.get("TABLE_NAME").cloned().ok_or("no table".into()),
                "EffectsQueue" => resources.get("QUEUE_URL").cloned().ok_or("no queue".into()),
                "EventBus" => resources.get("EVENT_BUS_NAME").cloned().ok_or("no event bus".into()),
                "MailConfigurationSet" => {
                    resources.get("MAIL_CONFIGURATION_SET").cloned().ok_or("no configuration set".into())
                }
                // The stack's copies of the secret's keys (their ARNs).
                "BotTokenSecret" | "WebhookSecretSecret" | "JwtKeySecret" | "ConsoleSessionKeySecret" => {
                    resources.get(name).cloned().ok_or(format!("no secret {name}"))
                }
                _ => parameter(name, resources).ok_or(format!("!Ref {name}")),
            }
        }
        Value::Object(o) if o.contains_key("Fn::Sub") => {
            let text = o["Fn::Sub"].as_str().ok_or("Fn::Sub with variables")?;
            // The stack's name, as the metrics' namespace uses it; the API's address, as the
            // console's is by default.
            let text = text
                .replace("${AWS::StackName}", STACK)
                .replace("${HttpApi}", "deploy-check-api")
                .replace("${AWS::Region}", "eu-west-1")
                .replace("${AWS::URLSuffix}", "amazonaws.com");
            if text.contains("${") { Err(format!("Fn::Sub {text}")) } else { Ok(text) }
        }
        other => Err(format!("{other}")),
    }
}

/// The way in the template gives the function for an HTTP sample: an HTTP API route matching its
/// method and path (`{x}` one segment, `{proxy+}` the rest; the API routes `/x/` to `/x`), or the
/// function's own URL for a request to a Lambda Function URL host. `Ok(None)` for other events.
fn route(properties: &Value, event: &Value) -> Result<Option<String>, String> {
    let (Some(method), Some(path)) = (event["requestContext"]["http"]["method"].as_str(), event["rawPath"].as_str())
    else {
        return Ok(None);
    };
    if event["requestContext"]["domainName"].as_str().is_some_and(|d| d.contains(".lambda-url.")) {
        return match properties.get("FunctionUrlConfig") {
            Some(_) => Ok(Some("the function URL".into())),
            None => Err("a Function URL request, and the template gives the function no URL".into()),
        };
    }
    let wanted: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let events = properties["Events"].as_object().cloned().unwrap_or_default();
    for e in events.values().filter(|e| e["Type"] == "HttpApi") {
        let (m, p) = (e["Properties"]["Method"].as_str().unwrap_or(""), e["Properties"]["Path"].as_str().unwrap_or(""));
        let pattern: Vec<&str> = p.split('/').collect();
        let same_path = pattern.iter().enumerate().all(|(i, seg)| {
            (seg.ends_with("+}") && wanted.len() > i)
                || wanted.get(i).is_some_and(|w| *seg == *w || (seg.starts_with('{') && !w.is_empty()))
        }) && (pattern.last().is_some_and(|l| l.ends_with("+}")) || pattern.len() == wanted.len());
        if same_path && (m.eq_ignore_ascii_case("ANY") || m.eq_ignore_ascii_case(method)) {
            return Ok(Some(format!("{m} {p}")));
        }
    }
    Err(format!("no route in the template for {method} {path}"))
}

/// `Some("aarch64")` or `Some("x86_64")` from the ELF header.
fn architecture(binary: &Path) -> Result<&'static str, String> {
    let bytes = std::fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF binary", binary.display()));
    }
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0xB7 => Ok("aarch64"),
        0x3E => Ok("x86_64"),
        other => Err(format!("{}: unknown machine {other:#x}", binary.display())),
    }
}

/// How to run `binary` here: directly, or under qemu-user when it is arm64 on another machine.
fn command(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let arch = architecture(binary)?;
    if arch == std::env::consts::ARCH {
        return Ok(vec![binary.to_owned()]);
    }
    if arch != "aarch64" {
        return Err(format!("{}: built for {arch}; the template deploys arm64", binary.display()));
    }
    Ok(vec!["qemu-aarch64".into(), "-L".into(), "/usr/aarch64-linux-gnu".into(), binary.to_owned()])
}

/// The deployed system as the template describes it, on the local stand-in: each function's built
/// `bootstrap` with its own environment, started under the Runtime API emulator per invocation.
#[derive(Clone)]
pub struct Platform {
    functions: HashMap<String, (String, Value)>,
    globals: serde_json::Map<String, Value>,
    resources: HashMap<String, String>,
    telegram_url: String,
    build: PathBuf,
    logs: PathBuf,
    global_timeout: Option<u64>,
    bus: Arc<Bus>,
    bus_url: String,
    /// The template's conditions, for `Fn::If` in an environment.
    conditions: serde_json::Map<String, Value>,
    /// Set in every function's environment after the template's (another endpoint for a service).
    extra_env: Vec<(String, String)>,
}

impl Platform {
    fn function(&self, name: &str) -> Result<&(String, Value), String> {
        self.functions.get(name).ok_or(format!("the template has no function in functions/{name}"))
    }

    /// Whether the template's condition `name` holds with the check's parameters (`Fn::Not`,
    /// `Fn::Equals`, `Condition`: what the template uses).
    fn holds(&self, name: &str) -> Result<bool, String> {
        let condition = self.conditions.get(name).ok_or(format!("no condition {name}"))?;
        self.evaluate(condition)
    }

    fn evaluate(&self, condition: &Value) -> Result<bool, String> {
        if let Some(inner) = condition["Fn::Not"].get(0) {
            return self.evaluate(inner).map(|held| !held);
        }
        if let Some([a, b]) = condition["Fn::Equals"].as_array().map(Vec::as_slice) {
            return Ok(resolve(a, &self.resources)? == resolve(b, &self.resources)?);
        }
        match condition["Condition"].as_str() {
            Some(name) => self.holds(name),
            None => Err(format!("a condition the check cannot evaluate: {condition}")),
        }
    }

    fn binary(&self, name: &str) -> Result<PathBuf, String> {
        Ok(self.build.join(&self.function(name)?.0).join("bootstrap"))
    }

    /// The function's environment: the template's (globals, then its own), resolved, and what
    /// Lambda and the account give every function.
    fn environment(&self, name: &str) -> Result<HashMap<String, String>, String> {
        let (id, properties) = self.function(name)?;
        let mut env = HashMap::new();
        let own = properties["Environment"]["Variables"].as_object().cloned().unwrap_or_default();
        for (k, v) in self.globals.iter().chain(own.iter()) {
            // `Fn::If` picks a value by a condition; `AWS::NoValue` leaves the variable out.
            let v = match v.get("Fn::If").and_then(Value::as_array) {
                Some(choice) if choice.len() == 3 => {
                    let name = choice[0].as_str().ok_or(format!("{k}: a condition without a name"))?;
                    &choice[if self.holds(name)? { 1 } else { 2 }]
                }
                _ => v,
            };
            if v["Ref"] == "AWS::NoValue" {
                continue;
            }
            env.insert(k.clone(), resolve(v, &self.resources).map_err(|e| format!("{k}: cannot resolve {e}"))?);
        }
        // Exactly the secrets the function uses, each named by its ARN (read when the function
        // starts) and readable by its role, never a value in its environment: one it lacks stops
        // it, one it does not use should be neither named nor readable.
        let needs = telegate_lambda::Function::parse(name).ok_or(format!("{name} is not a telegate function"))?.needs();
        let policies = serde_json::to_string(&properties["Policies"]).map_err(|e| e.to_string())?;
        for (secret, resource, needed) in [
            ("TELEGRAM_BOT_TOKEN", "BotTokenSecret", needs.bot_token),
            ("TELEGRAM_WEBHOOK_SECRET", "WebhookSecretSecret", needs.webhook_secret),
            ("JWT_HS256_SECRET", "JwtKeySecret", needs.api_tokens),
            ("CONSOLE_SESSION_KEY", "ConsoleSessionKeySecret", needs.console),
        ] {
            if env.contains_key(secret) {
                return Err(format!("{id}: {secret} is a value in its environment, not a secret it reads"));
            }
            if env.contains_key(&format!("{secret}_ARN")) != needed {
                let given = if needed { "is not given" } else { "is given but not used" };
                return Err(format!("{id}: {secret}_ARN {given} in the template"));
            }
            if policies.contains(&format!("{{\"Ref\":\"{resource}\"}}")) != needed {
                let how = if needed { "cannot read" } else { "may read but does not use" };
                return Err(format!("{id}: its role {how} {resource}"));
            }
        }
        // The AWS clients it builds are the services its role allows: one more is a client that
        // cannot be used, one less a call that fails in production.
        for (action, needed) in
            [("sqs:SendMessage", needs.queue), ("ses:SendEmail", needs.mail), ("events:PutEvents", needs.events)]
        {
            if policies.contains(&format!("\"{action}\"")) != needed {
                let how = if needed {
                    "builds a client for it but its role does not allow"
                } else {
                    "is allowed but does not use"
                };
                return Err(format!("{id} {how} {action}"));
            }
        }
        for (k, v) in [
            ("TELEGRAM_API_URL", self.telegram_url.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", id.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/deploy-check"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "deploy-check"),
            ("TZ", "UTC"),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        for k in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
            env.insert(k.to_owned(), std::env::var(k).map_err(|_| format!("{k} is not set"))?);
        }
        env.extend(self.extra_env.iter().cloned());
        env.insert("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), self.bus_url.clone());
        Ok(env)
    }

    /// The input the template's schedule gives the scheduled-jobs function for `job`.
    fn schedule_input(&self, job: &str) -> Result<String, String> {
        let (_, properties) = self.function("scheduled-jobs")?;
        let events = properties["Events"].as_object().ok_or("scheduled-jobs has no events")?;
        events
            .values()
            .filter(|e| e["Type"] == "Schedule")
            .filter_map(|e| e["Properties"]["Input"].as_str())
            .find(|input| serde_json::from_str::<Value>(input).is_ok_and(|v| v["job"] == job))
            .map(str::to_owned)
            .ok_or(format!("the template schedules no {job}"))
    }

    /// The function's `Timeout` (its own, else the template's global one).
    fn timeout(&self, name: &str) -> Result<Duration, String> {
        let (_, properties) = self.function(name)?;
        let seconds = properties["Timeout"].as_u64().or(self.global_timeout).ok_or(format!("{name}: no Timeout"))?;
        Ok(Duration::from_secs(seconds))
    }

    /// One invocation of the built function, with its deadline as Lambda would set it: its answer.
    async fn invoke(&self, name: &str, event: String) -> Result<String, String> {
        let env = self.environment(name)?;
        let binary = self.binary(name)?;
        let log = self.logs.join(format!("{name}.log"));
        let run = invoke_with_timeout(&command(&binary)?, &env, vec![event], &log, self.timeout(name)?).await?;
        run.answers.into_iter().next().ok_or(format!("{name}: no answer"))
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(template), Some(build)) = (args.get(1), args.get(2)) else {
        return Err("usage: deploy-check <template.json> <sam build folder>".into());
    };
    let template: Value = serde_json::from_str(&std::fs::read_to_string(template).map_err(|e| e.to_string())?)
        .map_err(|e| format!("template: {e}"))?;
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return Err("AWS_ENDPOINT_URL must point at the local AWS stand-in (infra/moto.sh)".into());
    }
    let expected: Vec<Value> = serde_json::from_str(&sample("expected.json")).map_err(|e| e.to_string())?;
    let logs = PathBuf::from("target/deploy-check");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;

    let telegram = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    let mut resources: HashMap<String, String> =
        telegate_testkit::local_aws::provision().await?.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    // The stack's copies of the operator's secret, one per key (template.yaml).
    for (resource, key) in [
        ("BotTokenSecret", "bot_token"),
        ("WebhookSecretSecret", "webhook_secret"),
        ("JwtKeySecret", "jwt_hs256_secret"),
        ("ConsoleSessionKeySecret", "console_session_key"),
    ] {
        let value = secret(key).ok_or(format!("no test value for {key}"))?;
        resources.insert(resource.into(), telegate_testkit::local_aws::secret(value).await?);
    }
    let globals = template["Globals"]["Function"]["Environment"]["Variables"].as_object().cloned().unwrap_or_default();
    let functions: HashMap<String, (String, Value)> = template["Resources"]
        .as_object()
        .ok_or("the template has no Resources")?
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .filter_map(|(id, r)| {
            let name = r["Properties"]["CodeUri"].as_str()?.rsplit('/').next()?.to_owned();
            let mut properties = r["Properties"].clone();
            // A function with a role of its own: what that role allows is its policies.
            if let Some(role) = properties["Role"]["Fn::GetAtt"][0].as_str() {
                properties["Policies"] = template["Resources"][role]["Properties"]["Policies"].clone();
            }
            Some((name, (id.clone(), properties)))
        })
        .collect();
    let bus = Arc::new(Bus {
        upstream: std::env::var("AWS_ENDPOINT_URL").map_err(|e| e.to_string())?,
        entries: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let bus_url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let proxy = axum::Router::new().fallback(bus_call).with_state(bus.clone());
    tokio::spawn(async move { axum::serve(listener, proxy).await });
    let platform = Platform {
        functions,
        globals,
        resources,
        telegram_url: telegram.url.clone(),
        build: PathBuf::from(build),
        logs: logs.clone(),
        global_timeout: template["Globals"]["Function"]["Timeout"].as_u64(),
        bus,
        bus_url,
        conditions: template["Conditions"].as_object().cloned().unwrap_or_default(),
        extra_env: Vec::new(),
    };

    let config = telegate_core::adapters::aws::sdk_config().await;
    let store = telegate_core::adapters::dynamodb::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &platform.resources["TABLE_NAME"],
    );
    telegate_testkit::samples::seed(&store).await.map_err(|e| e.to_string())?;

    // Two outages, each on its own resources, beside the samples and the flow below.
    let outages = async {
        tokio::join!(outage::run(&platform, outage::Fault::Telegram), outage::run(&platform, outage::Fault::DynamoDb))
    };
    let (mut failures, mut passed) = (Vec::new(), 0);
    let checks = async {
        // payments validates the payment that generate-token's sample needs: it goes first.
        let mut cases: Vec<(&str, &str)> = vec![("payments", "payments/validate.json")];
        cases.extend(SAMPLES);
        for (name, file) in cases {
            let outcome = async {
                let (id, properties) = platform.function(name)?;
                let event = sample(file);
                let way_in = route(properties, &serde_json::from_str(&event).map_err(|e| format!("{file}: {e}"))?)?;
                let answer = platform.invoke(name, event).await?;
                let answer = check(&expected, name, file, &answer)?;
                let arch = architecture(&platform.binary(name)?).unwrap_or("?");
                Ok::<_, String>(match way_in {
                    Some(route) => format!("{id} ({arch}) via {route}: {answer}"),
                    None => format!("{id} ({arch}): {answer}"),
                })
            }
            .await;
            match outcome {
                Ok(line) => {
                    passed += 1;
                    println!("ok   {name} `{file}` — {line}");
                }
                Err(e) => {
                    println!("FAIL {name} `{file}` — {e} (log: target/deploy-check/{name}.log)");
                    failures.push(name);
                }
            }
        }

        // The whole flow, through the built functions only, as the deployed system runs it.
        match flow::run(&platform, &telegram.fake, &store).await {
            Ok(steps) => {
                passed += 1;
                println!("ok   the whole flow — {steps}");
            }
            Err(e) => {
                println!("FAIL the whole flow — {e} (logs: target/deploy-check/)");
                failures.push("the whole flow");
            }
        }
    };
    let ((), (telegram_down, dynamodb_down)) = tokio::join!(checks, outages);
    for (what, outcome) in [("a Telegram outage", telegram_down), ("a DynamoDB throttle", dynamodb_down)] {
        match outcome {
            Ok(line) => {
                passed += 1;
                println!("ok   {what} loses nothing — {line}");
            }
            Err(e) => {
                println!("FAIL {what} loses nothing — {e}");
                failures.push(what);
            }
        }
    }
    println!("{passed} passed, {} failed", failures.len());
    if failures.is_empty() { Ok(()) } else { Err(format!("the built functions failed: {failures:?}")) }
}
