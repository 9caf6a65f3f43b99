//! `telegate`: the local host of the whole system.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use telegate::host::{Host, Options};
use telegate::local_env::{dev_secrets, local_settings};
use telegate_core::adapters::telegram::BotApi;
use telegate_core::config::Settings;

#[derive(Parser)]
#[command(name = "telegate", version, about = "Paid access to a private Telegram channel — local host")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every route on one port, on the embedded store (SQLite in --data).
    Serve {
        #[arg(long, env = "TELEGATE_BIND", default_value = "127.0.0.1:3000")]
        bind: String,
        #[arg(long, env = "TELEGATE_DATA", default_value = "./telegate-data")]
        data: PathBuf,
    },
    /// Run the whole flow against a built-in fake Telegram and tell it step by step.
    #[cfg(feature = "demo")]
    Demo,
    /// Register the webhook with its secret and allowed_updates message, chat_member, chat_join_request, pre_checkout_query.
    SetWebhook {
        /// The public HTTPS URL of POST /api/telegram/webhook.
        #[arg(long, required_unless_present = "delete")]
        url: Option<String>,
        /// Remove the webhook instead (so that `serve` can long-poll).
        #[arg(long, conflicts_with = "url")]
        delete: bool,
    },
    /// Check the bot token, the channel, the bot's rights, the webhook, the AWS resources and that
    /// every scheduled job ran when due; a fix for each ✗.
    Doctor {
        #[arg(long, env = "TELEGATE_DATA", default_value = "./telegate-data")]
        data: PathBuf,
        /// With the AWS settings: the CloudFormation stack's name, to check its job schedules.
        #[arg(long, env = "TELEGATE_STACK")]
        stack: Option<String>,
    },
    /// Import the Django system's `manage.py dumpdata` fixture into the configured store.
    Import {
        /// The JSON fixture.
        dump: PathBuf,
        /// Field renames, user ids and offer ids for a dump that differs from the guide's.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Telegram ids of accounts to keep though no record covers them (one per line, or CSV).
        #[arg(long)]
        keep: Option<PathBuf>,
        /// Print what would be imported and refused; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Compare the store with the dump instead of importing.
        #[arg(long, conflicts_with = "dry_run")]
        verify: bool,
        #[arg(long, env = "TELEGATE_DATA", default_value = "./telegate-data")]
        data: PathBuf,
    },
    /// Print an API token signed with the local secret (JWT_HS256_SECRET, else the data folder's).
    Jwt {
        #[arg(long)]
        sub: String,
        #[arg(long, default_value = "user", value_parser = ["user", "support", "admin"])]
        role: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value_t = 60)]
        minutes: i64,
        #[arg(long, env = "TELEGATE_DATA", default_value = "./telegate-data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its own story; its logs only show what went wrong (and the leak warning).
    #[cfg(feature = "demo")]
    let quiet = matches!(cli.command, Command::Demo);
    #[cfg(not(feature = "demo"))]
    let quiet = false;
    init_logs(if quiet { "warn" } else { "info" });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telegate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve { bind, data } => runtime.block_on(serve(bind, data)),
        #[cfg(feature = "demo")]
        Command::Demo => match runtime.block_on(telegate::demo::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::SetWebhook { url, delete: _ } => runtime.block_on(ops(|bot, settings| async move {
            let line = telegate::ops::set_webhook(&bot, &settings, url.as_deref()).await;
            match line {
                Ok(l) => (vec![l], true),
                Err(l) => (vec![l], false),
            }
        })),
        Command::Doctor { data, stack } => runtime.block_on(ops(|bot, settings| async move {
            let (mut lines, mut ok) = telegate::ops::doctor(&bot, &settings).await;
            if let (Some(_), Some(stack)) = (&settings.aws, &stack) {
                let config = telegate_core::adapters::aws::sdk_config().await;
                let client = aws_sdk_eventbridge::Client::new(&config);
                for (passed, line) in telegate::ops::schedule_checks(&client, stack).await {
                    ok &= passed;
                    lines.push(format!("{} {line}", if passed { "✓" } else { "✗" }));
                }
            }
            let local = data.join(telegate::local_env::STORE_FILE);
            if settings.aws.is_none() && !local.exists() {
                lines.push(format!(
                    "✗ no store at {} to read the job log from → fix: set TELEGATE_DATA (or --data) to the folder `telegate serve` uses",
                    local.display()
                ));
                return (lines, false);
            }
            match telegate::import::open_store(&settings, &data).await {
                Ok(store) => {
                    for (passed, line) in telegate::ops::job_checks(store.as_ref(), &settings, chrono::Utc::now()).await {
                        ok &= passed;
                        lines.push(format!("{} {line}", if passed { "✓" } else { "✗" }));
                    }
                }
                Err(e) => {
                    ok = false;
                    lines.push(format!("✗ the store cannot be opened to read the job log: {e}"));
                }
            }
            (lines, ok)
        })),
        Command::Import { dump, mapping, keep, dry_run, verify, data } => {
            let request = telegate::import::Request { dump, mapping, keep, dry_run, verify };
            runtime.block_on(async move {
                let settings = match local_settings(&data, &|k| std::env::var(k).ok()) {
                    Ok(l) => l.settings,
                    Err(e) => {
                        eprintln!("telegate: {e}");
                        return ExitCode::from(2);
                    }
                };
                let (lines, ok) = telegate::import::run(request, &settings, &data).await;
                for line in lines {
                    println!("{line}");
                }
                if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
            })
        }
        Command::Jwt { sub, role, email, minutes, data } => {
            let secret = match std::env::var("JWT_HS256_SECRET") {
                Ok(s) if !s.is_empty() => Ok(s),
                _ => dev_secrets(&data).map(|s| s.jwt_hs256_secret),
            };
            match secret.and_then(|s| telegate::jwt::mint(&s, &sub, &role, email.as_deref(), minutes)) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("telegate: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Runs an ops command with the real settings (no local defaults: these talk to the real bot).
async fn ops<F, Fut>(run: F) -> ExitCode
where
    F: FnOnce(BotApi, Settings) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, bool)>,
{
    let settings = match Settings::from_env(&|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("telegate: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(token) = settings.bot_token.clone() else {
        eprintln!("telegate: missing setting TELEGRAM_BOT_TOKEN: the token @BotFather gave the bot");
        return ExitCode::from(2);
    };
    let bot = match BotApi::new(
        &token,
        &settings.telegram_api_url,
        settings.channel_id,
        std::time::Duration::from_secs(20),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("telegate: {e}");
            return ExitCode::from(2);
        }
    };
    let (lines, ok) = run(bot, settings).await;
    for line in lines {
        println!("{line}");
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn serve(bind: String, data: PathBuf) -> ExitCode {
    let local = match local_settings(&data, &|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("telegate: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = local.settings;
    let options = Options {
        polling: settings.bot_token.is_some() && std::env::var("TELEGATE_POLLING").as_deref() != Ok("0"),
        scheduler: std::env::var("TELEGATE_SCHEDULER").as_deref() != Ok("0"),
    };
    let has_bot = settings.bot_token.is_some();
    let host = match Host::build(settings, &data, options).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("telegate: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("telegate: cannot listen on {bind}: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(bind = %bind, data = %data.display(), "telegate serving every route");
    // On the terminal, not in the log: the link is a credential, for whoever started the host.
    match listener
        .local_addr()
        .map_err(|e| e.to_string())
        .and_then(|a| host.console_link(&format!("http://{a}")).map_err(|e| e.to_string()))
    {
        Ok(link) => println!("telegate: the console, signed in as the local admin (one use, 10 minutes): {link}"),
        Err(e) => eprintln!("telegate: no console sign-in link: {e}"),
    }
    if local.used_dev_jwt_secret || local.used_dev_webhook_secret {
        tracing::info!(
            file = %data.join(telegate::local_env::DEV_SECRETS).display(),
            "using local development secrets; mint an API token with `telegate jwt --sub alice --role admin`"
        );
    }
    if !has_bot {
        tracing::info!(
            outbox = %data.join("telegram-outbox.jsonl").display(),
            "no TELEGRAM_BOT_TOKEN: Bot API calls are written to the Telegram outbox; updates arrive on the webhook route"
        );
    }
    tracing::info!(outbox = %data.join("outbox").display(), "emails are written to the mail outbox");
    match host.run(listener, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("telegate: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
