//! Cold start of every Lambda function, against the floor (a hello-world `lambda_http` binary
//! built with the same profile), under a small emulator of the Lambda Runtime API.
//!
//! Run by `bash infra/bench/run.sh`, which builds the packages with cargo-lambda and starts the
//! local AWS stand-in; by hand:
//! `cargo run --release --example coldstart -- target/lambda 20` with `AWS_ENDPOINT_URL` set.
//!
//! Each run execs the package's `bootstrap` with a Lambda-like environment (128 MB, the settings
//! `template.yaml` passes, AWS on the stand-in, Telegram on the fake Bot API) and measures:
//! - init: from exec to the first `GET /2018-06-01/runtime/invocation/next`;
//! - first response: from exec to the `POST .../response` of the first event (a sample from
//!   `events/`, checked against the answer `events/expected.json` gives for it);
//! - peak RSS: `VmHWM` of the process once it has answered.
//!
//! Runs are interleaved (every binary once, then again) so that noise spreads evenly. Prints
//! Markdown tables: medians with min–max, and each function's ratio to the floor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use telegate_testkit::fake_telegram::FakeTelegram;
use telegate_testkit::lambda_emulator::{FLOOR, Run, SAMPLES, check, invoke, sample};

/// The floor, then each function, with the sample event of its first (timed) invocation.
fn cases() -> Vec<(&'static str, &'static str)> {
    std::iter::once((FLOOR, "status/status.json")).chain(SAMPLES).collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

fn spread(xs: &[f64]) -> String {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(0.0, f64::max);
    format!("{:.1} ({:.1}–{:.1})", median(xs.to_vec()), min, max)
}

fn size_mib(path: &Path) -> Result<f64, String> {
    Ok(std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len() as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let packages = PathBuf::from(args.get(1).map_or("target/lambda", String::as_str));
    let runs: usize = args.get(2).map_or(Ok(20), |r| r.parse()).map_err(|e| format!("runs: {e}"))?;
    if std::env::var("AWS_ENDPOINT_URL").is_err() {
        return Err("AWS_ENDPOINT_URL must point at the local AWS stand-in: run `bash infra/bench/run.sh`".into());
    }
    let expected: Vec<Value> = serde_json::from_str(&sample("expected.json")).map_err(|e| e.to_string())?;
    let logs = PathBuf::from("target/bench-logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;

    // What a deployed function has: its resources, its secrets, Telegram (here the fake Bot API).
    let telegram = FakeTelegram::start().await.map_err(|e| e.to_string())?;
    let mut env: HashMap<String, String> =
        telegate_testkit::local_aws::provision().await?.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for (k, v) in [
        ("TELEGRAM_BOT_TOKEN", "123456:BENCH"),
        ("TELEGRAM_BOT_USERNAME", "telegate_fake_bot"),
        ("TELEGRAM_CHANNEL_ID", "-1001234567890"),
        ("TELEGRAM_WEBHOOK_SECRET", "events-webhook-secret"),
        ("JWT_HS256_SECRET", "events-secret-not-for-production-0123456789"),
        // The key the console sample's session cookie is signed with (events/README.md).
        ("CONSOLE_SESSION_KEY", "events-console-key-not-for-production-0123456789"),
        // The same sample is sent at every run: the owner's generate-token limit would answer 429.
        ("GENERATE_TOKEN_PER_HOUR", "10000"),
        ("TELEGRAM_API_URL", telegram.url.as_str()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("RUST_LOG", "info"),
        ("TZ", "UTC"),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    for k in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        env.insert(k.to_owned(), std::env::var(k).map_err(|_| format!("{k} is not set"))?);
    }
    let bootstrap = |name: &str| packages.join(name).join("bootstrap");
    let command = |name: &str| vec![bootstrap(name)];
    let env_for = |name: &str| {
        let mut env = env.clone();
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), name.into());
        env
    };

    // The records the samples refer to, and the payment generate-token needs, validated through
    // the payments function itself (not timed).
    let config = telegate_core::adapters::aws::sdk_config().await;
    let store =
        telegate_core::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &env["TABLE_NAME"]);
    telegate_testkit::samples::seed(&store).await.map_err(|e| e.to_string())?;
    let setup = invoke(
        &command("payments"),
        &env_for("payments"),
        vec![sample("payments/validate.json")],
        &logs.join("setup.log"),
    )
    .await?;
    check(&expected, "payments", "payments/validate.json", &setup.answers[0])?;

    let mut results: HashMap<&str, Vec<Run>> = HashMap::new();
    let mut answers: HashMap<&str, String> = HashMap::new();
    for round in 0..runs {
        for (name, file) in cases() {
            let run = invoke(&command(name), &env_for(name), vec![sample(file)], &logs.join(format!("{name}.log")))
                .await
                .map_err(|e| format!("{name}, run {round}: {e} (log: target/bench-logs/{name}.log)"))?;
            answers.insert(name, check(&expected, name, file, &run.answers[0])?);
            results.entry(name).or_default().push(run);
        }
        eprintln!("coldstart: round {}/{runs}", round + 1);
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let floor_init = median(results[FLOOR].iter().map(|r| ms(r.init)).collect());
    let floor_first = median(results[FLOOR].iter().map(|r| ms(r.first)).collect());
    println!(
        "| function | first event | answer | init ms, median (min–max) | init ÷ floor | first response ms, median (min–max) | first response ÷ floor | peak RSS MiB, median (min–max) | binary MiB | zip MiB |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, file) in cases() {
        let runs = &results[name];
        let init: Vec<f64> = runs.iter().map(|r| ms(r.init)).collect();
        let first: Vec<f64> = runs.iter().map(|r| ms(r.first)).collect();
        let rss: Vec<f64> = runs.iter().map(|r| r.peak_rss_kib as f64 / 1024.0).collect();
        println!(
            "| {} | `{file}` | {} | {} | {:.2} | {} | {:.2} | {} | {:.2} | {:.2} |",
            if name == FLOOR { "**floor** (hello-world lambda_http)" } else { name },
            answers[name],
            spread(&init),
            median(init.clone()) / floor_init,
            spread(&first),
            median(first.clone()) / floor_first,
            spread(&rss),
            size_mib(&bootstrap(name))?,
            size_mib(&packages.join(name).join("bootstrap.zip"))?,
        );
    }
    println!();
    println!(
        "{runs} cold starts per binary, interleaved; AWS calls go to moto on loopback, Telegram calls to the fake Bot API."
    );
    Ok(())
}
