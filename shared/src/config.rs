//! Settings from the environment, parsed once at start-up. A missing or bad setting is one clear line.

use std::fmt;

use std::collections::HashMap;

use crate::domain::{Job, Offers, Schedule};
use crate::ports::InviteMode;

/// A secret value: usable, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub enum JwtKey {
    Hs256(Secret),
    Rs256Pem(String),
    JwksUrl(String),
    /// A process that serves no API route (the webhook, the consumer, the jobs) is given no key:
    /// every API token is refused.
    None,
}

#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub key: JwtKey,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// The AWS resources, as template.yaml passes them: with them, the store is DynamoDB, side
/// effects go through SQS and mail through SES.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsResources {
    pub table: String,
    pub queue_url: String,
    pub mail_from: String,
    /// The SES configuration set mail is sent with (`MAIL_CONFIGURATION_SET`, optional): bounces
    /// and complaints suppress the address, reputation metrics are kept.
    pub mail_configuration_set: Option<String>,
    /// The EventBridge bus business events go to.
    pub event_bus: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub start_failures_per_account: u32,
    pub start_failures_per_token: u32,
    pub generated_tokens_per_payment: u32,
    /// Fresh invites (`/start` with a valid token) per Telegram account per hour.
    pub invites_per_account: u32,
    /// `/buy` (and a bare `/start` showing the offers) per Telegram account per minute.
    pub offers_per_minute: u32,
    /// `getChatMember` calls per second during reconciliation, and active members checked per run.
    pub reconcile_per_second: u32,
    pub reconcile_active_per_run: u32,
    /// Seconds a reconciliation run may spend before it stops and reports (under the function's timeout).
    pub reconcile_max_seconds: u32,
    /// Seconds any other scheduled job may run before it stops starting new batches.
    pub job_max_seconds: u32,
    /// Bot API calls per second the bot makes, all functions together (`PacedTelegram`): under
    /// Telegram's ~30 per second, with room for the calls that are not paced.
    pub telegram_per_second: u32,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub bot_token: Option<Secret>,
    pub bot_username: String,
    pub channel_id: i64,
    pub channel_name: String,
    /// Only where the webhook is served: without it the webhook route refuses every call.
    pub webhook_secret: Option<Secret>,
    pub telegram_api_url: String,
    /// Bound on each Bot API call (long polling excepted); a timeout is retried like a 5xx.
    pub telegram_timeout_seconds: u32,
    pub token_ttl_hours: u32,
    pub invite_ttl_seconds: u32,
    pub subscription_days: u32,
    /// Hours a member stays after the end of the period paid for before removal (`GRACE_HOURS`).
    pub grace_hours: u32,
    pub expiry_warning_days: Vec<u32>,
    pub invite_mode: InviteMode,
    pub jwt: JwtSettings,
    pub offers: Offers,
    /// Who answers buyers' payment questions (`PAY_SUPPORT_CONTACT`: an @username, an address);
    /// `/paysupport` gives it. Required when an offer is sold in Stars (Telegram's terms).
    pub pay_support: Option<String>,
    pub aws: Option<AwsResources>,
    /// The sender of emails (`MAIL_FROM`): the outbox's locally, the SES-verified address with AWS.
    pub mail_from: String,
    /// Abuse limits, per hour: failed `/start` per Telegram account and per token, and tokens a
    /// payment's owner may generate.
    pub limits: Limits,
    /// When each job runs (`SCHEDULE_<JOB>`), for the local scheduler; EventBridge has its own.
    pub schedules: HashMap<Job, Schedule>,
    /// `TELEGATE_TEST_CLOCK=1`: the clock can be moved through `/_local/clock/advance`. Never in Lambda.
    pub test_clock: bool,
    /// Telegram accounts that sign in to the console as admins (`ADMIN_TELEGRAM_IDS`), besides
    /// the channel's administrators, and as support (`SUPPORT_TELEGRAM_IDS`).
    pub staff: crate::auth::Staff,
    /// Where the console is published (`CONSOLE_URL`, https): the bot's `/admin` opens it as a
    /// Mini App. Unset, `/admin` says so.
    pub console_url: Option<String>,
    /// The key console sessions are signed with (`CONSOLE_SESSION_KEY`, 32 characters or more):
    /// the same in every container of the console function. Locally, without it, a key of the
    /// process (sessions end with it).
    pub console_session_key: Option<Secret>,
    /// Signing in to the console in a browser, with the identity provider the API trusts.
    pub console_oidc: Option<OidcSettings>,
}

/// The console's OpenID Connect client (authorization code with PKCE), as Cognito's hosted UI or
/// any provider serves it: `CONSOLE_OIDC_CLIENT_ID`, `CONSOLE_OIDC_AUTHORIZE_URL`,
/// `CONSOLE_OIDC_TOKEN_URL`, all three or none. The ID token it returns is checked as the API
/// checks its tokens (the JWT settings), so `JWT_AUDIENCE` is this client's id.
#[derive(Clone, Debug, PartialEq)]
pub struct OidcSettings {
    pub client_id: String,
    pub authorize_url: String,
    pub token_url: String,
}

fn console_oidc(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<OidcSettings>, ConfigError> {
    let names = ["CONSOLE_OIDC_CLIENT_ID", "CONSOLE_OIDC_AUTHORIZE_URL", "CONSOLE_OIDC_TOKEN_URL"];
    let [client_id, authorize_url, token_url] = names.map(get);
    match (client_id, authorize_url, token_url) {
        (None, None, None) => Ok(None),
        (Some(client_id), Some(authorize_url), Some(token_url)) => {
            for (name, url) in [(names[1], &authorize_url), (names[2], &token_url)] {
                if reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "https" | "http")) {
                    return Err(ConfigError(format!("bad setting {name}: {url:?} is not an address")));
                }
            }
            Ok(Some(OidcSettings { client_id, authorize_url, token_url }))
        }
        _ => Err(ConfigError(format!("the console's sign-in needs all of {} or none", names.join(", ")))),
    }
}

/// The console's session key: long enough that it cannot be guessed.
fn console_session_key(get: &dyn Fn(&str) -> Option<String>, needed: bool) -> Result<Option<Secret>, ConfigError> {
    match get("CONSOLE_SESSION_KEY") {
        Some(key) if key.len() >= 32 => Ok(Some(Secret::new(key))),
        Some(_) => Err(ConfigError("bad setting CONSOLE_SESSION_KEY: 32 characters or more".into())),
        None if needed => Err(ConfigError(
            "missing setting CONSOLE_SESSION_KEY: the key every container signs console sessions with".into(),
        )),
        None => Ok(None),
    }
}

/// The console's public address: Telegram opens Mini Apps over https only.
fn console_url(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()) {
        Some(url) if url.starts_with("https://") && reqwest::Url::parse(&url).is_ok() => Ok(Some(url)),
        Some(url) => Err(ConfigError(format!("bad setting CONSOLE_URL: {url:?} is not an https address"))),
        None => Ok(None),
    }
}

/// A list of Telegram user ids, separated by commas or spaces.
fn telegram_ids(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Vec<i64>, ConfigError> {
    let raw = get(name).unwrap_or_default();
    raw.split([',', ' '])
        .filter(|id| !id.is_empty())
        .map(|id| {
            id.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ConfigError(format!("bad setting {name}: {id:?} is not a Telegram user id")))
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What a process needs: the secrets (each Lambda function is given only the ones it uses, and a
/// missing one stops it at start-up) and the AWS services besides its table (a function builds
/// only those clients; its role grants no others, template.yaml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// It calls the Bot API (`TELEGRAM_BOT_TOKEN`).
    pub bot_token: bool,
    /// It serves the webhook (`TELEGRAM_WEBHOOK_SECRET`).
    pub webhook_secret: bool,
    /// It serves API routes (`JWT_HS256_SECRET`, `JWT_PUBLIC_KEY_PEM` or `JWT_JWKS_URL`).
    pub api_tokens: bool,
    /// It queues side effects on SQS (`sqs:SendMessage`).
    pub queue: bool,
    /// It sends mail through SES (`ses:SendEmail`).
    pub mail: bool,
    /// It puts events on the bus (`events:PutEvents`): business events, or an admin's job run.
    pub events: bool,
    /// It serves the console, whose sessions every container must read (`CONSOLE_SESSION_KEY`).
    pub console: bool,
}

impl Needs {
    /// The local host: every route and service; a bot token is optional (without it, the
    /// Telegram outbox).
    pub const LOCAL: Needs = Needs {
        bot_token: false,
        webhook_secret: true,
        api_tokens: true,
        queue: true,
        mail: true,
        events: true,
        console: false,
    };
}

impl Settings {
    /// When `job` runs: its `SCHEDULE_<JOB>` setting, else the guide's beat schedule.
    pub fn schedule(&self, job: Job) -> Schedule {
        self.schedules.get(&job).copied().unwrap_or(job.default_schedule())
    }

    /// The bot's own Telegram id: the number before the `:` of its token (`None` without a bot).
    pub fn bot_id(&self) -> Option<i64> {
        self.bot_token.as_ref()?.expose().split_once(':')?.0.parse().ok()
    }

    /// Reads every setting through `env` (the process environment, or a map in tests), for the
    /// local host.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_env_for(env, Needs::LOCAL)
    }

    /// As `from_env`, requiring exactly the secrets `needs` names.
    pub fn from_env_for(env: &dyn Fn(&str) -> Option<String>, needs: Needs) -> Result<Self, ConfigError> {
        let get = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required =
            |name: &str, what: &str| get(name).ok_or_else(|| ConfigError(format!("missing setting {name}: {what}")));

        let channel_raw =
            required("TELEGRAM_CHANNEL_ID", "the numeric id of the private channel, e.g. -1001234567890")?;
        let channel_id: i64 = channel_raw.parse().map_err(|_| {
            ConfigError(format!(
                "bad setting TELEGRAM_CHANNEL_ID: {channel_raw:?} is not a numeric chat id (e.g. -1001234567890)"
            ))
        })?;
        let bot_username = required("TELEGRAM_BOT_USERNAME", "the bot's @username, used in deep links")?;
        let bot_username = bot_username.trim_start_matches('@').to_owned();
        if bot_username.is_empty() || !bot_username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ConfigError("bad setting TELEGRAM_BOT_USERNAME: letters, digits and _ only".into()));
        }
        let subscription_days = number(&get, "SUBSCRIPTION_DAYS", 30, 1, 3660)?;
        let offers = match get("OFFERS") {
            Some(raw) => Offers::from_json(&raw, subscription_days).map_err(ConfigError)?,
            None => Offers::any(subscription_days),
        };
        let pay_support = get("PAY_SUPPORT_CONTACT").map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        if pay_support.is_none() && !offers.in_stars().is_empty() {
            return Err(ConfigError(
                "missing setting PAY_SUPPORT_CONTACT: OFFERS sells in Telegram Stars, and Telegram's terms require \
                 /paysupport to name who answers buyers (an @username or an address)"
                    .into(),
            ));
        }

        let bot_token = match get("TELEGRAM_BOT_TOKEN") {
            Some(t) => Some(Secret::new(t)),
            None if needs.bot_token => {
                return Err(ConfigError(
                    "missing setting TELEGRAM_BOT_TOKEN: the token @BotFather gave the bot".into(),
                ));
            }
            None => None,
        };
        let webhook_secret = match get("TELEGRAM_WEBHOOK_SECRET") {
            Some(s) => Some(Secret::new(s)),
            None if needs.webhook_secret => {
                return Err(ConfigError(
                    "missing setting TELEGRAM_WEBHOOK_SECRET: the secret Telegram sends in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -)".into(),
                ));
            }
            None => None,
        };
        Ok(Self {
            bot_token,
            bot_username,
            channel_id,
            channel_name: get("TELEGRAM_CHANNEL_NAME").unwrap_or_else(|| "telegate".into()),
            webhook_secret,
            telegram_api_url: get("TELEGRAM_API_URL").unwrap_or_else(|| "https://api.telegram.org".into()),
            telegram_timeout_seconds: number(&get, "TELEGRAM_TIMEOUT_SECONDS", 10, 1, 120)?,
            token_ttl_hours: number(&get, "TOKEN_TTL_HOURS", 24, 1, 24 * 365)?,
            invite_ttl_seconds: number(&get, "INVITE_TTL_SECONDS", 300, 30, 86_400)?,
            subscription_days,
            grace_hours: number(&get, "GRACE_HOURS", 0, 0, 24 * 30)?,
            expiry_warning_days: warning_days(get("EXPIRY_WARNING_DAYS"))?,
            invite_mode: match get("INVITE_MODE").as_deref() {
                None | Some("join_request") => InviteMode::JoinRequest,
                Some("member_limit") => InviteMode::MemberLimit,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "bad setting INVITE_MODE: {other:?} (join_request or member_limit)"
                    )));
                }
            },
            jwt: jwt_settings(&get, needs.api_tokens)?,
            offers,
            pay_support,
            schedules: schedules(&get)?,
            aws: aws_resources(&get)?,
            mail_from: get("MAIL_FROM").unwrap_or_else(|| "telegate <no-reply@localhost>".into()),
            staff: crate::auth::Staff {
                admins: telegram_ids(&get, "ADMIN_TELEGRAM_IDS")?,
                support: telegram_ids(&get, "SUPPORT_TELEGRAM_IDS")?,
            },
            console_url: console_url(get("CONSOLE_URL"))?,
            console_session_key: console_session_key(&get, needs.console)?,
            console_oidc: console_oidc(&get)?,
            limits: Limits {
                start_failures_per_account: number(&get, "START_FAILURES_PER_HOUR", 5, 1, 10_000)?,
                start_failures_per_token: number(&get, "TOKEN_FAILURES_PER_HOUR", 10, 1, 10_000)?,
                generated_tokens_per_payment: number(&get, "GENERATE_TOKEN_PER_HOUR", 5, 1, 10_000)?,
                invites_per_account: number(&get, "START_INVITES_PER_HOUR", 5, 1, 10_000)?,
                offers_per_minute: number(&get, "BUY_PER_MINUTE", 5, 1, 10_000)?,
                reconcile_per_second: number(&get, "RECONCILE_PER_SECOND", 20, 1, 1000)?,
                reconcile_active_per_run: number(&get, "RECONCILE_ACTIVE_PER_RUN", 2000, 0, 1_000_000)?,
                reconcile_max_seconds: number(&get, "RECONCILE_MAX_SECONDS", 240, 0, 3600)?,
                telegram_per_second: number(&get, "TELEGRAM_CALLS_PER_SECOND", 25, 1, 1000)?,
                job_max_seconds: number(&get, "JOB_MAX_SECONDS", 240, 0, 3600)?,
            },
            test_clock: get("TELEGATE_TEST_CLOCK").as_deref() == Some("1"),
        })
    }
}

fn number(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => match raw.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(ConfigError(format!("bad setting {name}: {raw:?} (a whole number from {min} to {max})"))),
        },
    }
}

fn aws_resources(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<AwsResources>, ConfigError> {
    match (get("TABLE_NAME"), get("QUEUE_URL")) {
        (None, None) => Ok(None),
        (Some(table), Some(queue_url)) => {
            let mail_from = get("MAIL_FROM")
                .ok_or_else(|| ConfigError("missing setting MAIL_FROM: the SES-verified sender address".into()))?;
            let event_bus = get("EVENT_BUS_NAME").ok_or_else(|| {
                ConfigError("missing setting EVENT_BUS_NAME: the EventBridge bus business events go to".into())
            })?;
            let mail_configuration_set = get("MAIL_CONFIGURATION_SET");
            Ok(Some(AwsResources { table, queue_url, mail_from, mail_configuration_set, event_bus }))
        }
        (Some(_), None) => {
            Err(ConfigError("missing setting QUEUE_URL: TABLE_NAME is set, so the SQS queue is needed too".into()))
        }
        (None, Some(_)) => {
            Err(ConfigError("missing setting TABLE_NAME: QUEUE_URL is set, so the DynamoDB table is needed too".into()))
        }
    }
}

fn schedules(get: &dyn Fn(&str) -> Option<String>) -> Result<HashMap<Job, Schedule>, ConfigError> {
    Job::ALL
        .into_iter()
        .map(|job| {
            let name = job.setting();
            match get(&name) {
                None => Ok((job, job.default_schedule())),
                Some(raw) => Schedule::parse(&raw)
                    .map(|s| (job, s))
                    .map_err(|e| ConfigError(format!("bad setting {name}: {raw:?}: {e}"))),
            }
        })
        .collect()
}

fn warning_days(raw: Option<String>) -> Result<Vec<u32>, ConfigError> {
    let raw = raw.unwrap_or_else(|| "3,1".into());
    let mut days = raw
        .split(',')
        .map(|d| d.trim().parse::<u32>().ok().filter(|d| (1..=60).contains(d)))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ConfigError(format!("bad setting EXPIRY_WARNING_DAYS: {raw:?} (e.g. 3,1)")))?;
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    Ok(days)
}

fn jwt_settings(get: &dyn Fn(&str) -> Option<String>, needed: bool) -> Result<JwtSettings, ConfigError> {
    let keys = [get("JWT_HS256_SECRET"), get("JWT_PUBLIC_KEY_PEM"), get("JWT_JWKS_URL")];
    let key = match keys {
        [Some(secret), None, None] => {
            if secret.len() < 32 {
                return Err(ConfigError("bad setting JWT_HS256_SECRET: use at least 32 characters".into()));
            }
            JwtKey::Hs256(Secret::new(secret))
        }
        [None, Some(pem), None] => JwtKey::Rs256Pem(pem.replace("\\n", "\n")),
        [None, None, Some(url)] => JwtKey::JwksUrl(url),
        [None, None, None] if !needed => JwtKey::None,
        [None, None, None] => {
            return Err(ConfigError(
                "missing setting JWT_HS256_SECRET (or JWT_PUBLIC_KEY_PEM, or JWT_JWKS_URL): how API tokens are verified".into(),
            ));
        }
        _ => {
            return Err(ConfigError(
                "conflicting settings: set only one of JWT_HS256_SECRET, JWT_PUBLIC_KEY_PEM, JWT_JWKS_URL".into(),
            ));
        }
    };
    Ok(JwtSettings { key, issuer: get("JWT_ISSUER"), audience: get("JWT_AUDIENCE") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 4] = [
        ("TELEGRAM_CHANNEL_ID", "-1001"),
        ("TELEGRAM_BOT_USERNAME", "@my_bot"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cret"),
        ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn defaults_follow_the_spec() {
        let s = Settings::from_env(&env(&BASE)).unwrap();
        assert_eq!(s.bot_username, "my_bot");
        assert_eq!((s.token_ttl_hours, s.invite_ttl_seconds, s.subscription_days), (24, 300, 30));
        assert_eq!(s.expiry_warning_days, vec![3, 1]);
        assert_eq!(s.invite_mode, InviteMode::JoinRequest);
        assert_eq!(s.telegram_api_url, "https://api.telegram.org");
        assert!(!s.test_clock);
    }

    #[test]
    fn a_missing_setting_is_named_in_one_line() {
        let e = Settings::from_env(&env(&BASE[1..])).unwrap_err();
        assert!(e.0.starts_with("missing setting TELEGRAM_CHANNEL_ID"), "{e}");
        assert!(!e.0.contains('\n'));
    }

    #[test]
    fn bad_numbers_and_conflicting_keys_are_refused() {
        let mut pairs = BASE.to_vec();
        pairs.push(("TOKEN_TTL_HOURS", "zero"));
        assert!(Settings::from_env(&env(&pairs)).unwrap_err().0.contains("TOKEN_TTL_HOURS"));
        let mut pairs = BASE.to_vec();
        pairs.push(("JWT_JWKS_URL", "http://x"));
        assert!(Settings::from_env(&env(&pairs)).unwrap_err().0.contains("conflicting"));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let s = Settings::from_env(&env(&BASE)).unwrap();
        let dump = format!("{s:?}");
        assert!(!dump.contains("s3cret") && !dump.contains("0123456789abcdef"));
    }
}
