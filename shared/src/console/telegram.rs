//! Signing in inside Telegram (a Mini App): the launch data Telegram gives the page
//! (`tgWebAppData`) is checked as Telegram documents — HMAC-SHA-256 over the sorted `key=value`
//! lines without `hash`, with the key HMAC-SHA-256("WebAppData", bot token) — and must be fresh.
//! Who may come in: the channel's administrators and `ADMIN_TELEGRAM_IDS` as admins,
//! `SUPPORT_TELEGRAM_IDS` as support.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;

use super::session::hmac;
use crate::app::StaffRoles;
use crate::config::Secret;

/// How old launch data may be: Telegram signs it when the Mini App opens.
pub const LAUNCH_DATA_MINUTES: i64 = 60;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why launch data does not sign anyone in.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the launch data is not signed by this bot")]
    Signature,
    #[error("the launch data is older than {LAUNCH_DATA_MINUTES} minutes")]
    Stale,
    #[error("the launch data names no user")]
    NoUser,
}

/// The check of launch data, with the key derived from the bot's token.
pub struct LaunchData {
    key: [u8; 32],
}

impl LaunchData {
    pub fn new(bot_token: &Secret) -> Self {
        Self { key: hmac(b"WebAppData", bot_token.expose().as_bytes()) }
    }

    /// The Telegram user the launch data (`tgWebAppData`, a query string) was signed for.
    pub fn verify(&self, launch_data: &str, now: DateTime<Utc>) -> Result<i64, Refused> {
        let mut pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(launch_data).map_err(|_| Refused::Signature)?;
        let position = pairs.iter().position(|(k, _)| k == "hash").ok_or(Refused::Signature)?;
        let (_, hash) = pairs.remove(position);
        pairs.sort();
        let check = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n");
        let expected = hex(&hmac(&self.key, check.as_bytes()));
        if !bool::from(expected.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Refused::Signature);
        }
        let value = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let signed_at =
            value("auth_date").and_then(|t| t.parse::<i64>().ok()).and_then(|t| DateTime::from_timestamp(t, 0));
        if signed_at.is_none_or(|at| now - at >= Duration::minutes(LAUNCH_DATA_MINUTES)) {
            return Err(Refused::Stale);
        }
        let user: serde_json::Value =
            value("user").and_then(|u| serde_json::from_str(u).ok()).ok_or(Refused::NoUser)?;
        user["id"].as_i64().ok_or(Refused::NoUser)
    }
}

/// Signing in inside Telegram: the launch data's check, and who among Telegram accounts has a
/// console role.
pub struct TelegramSignIn {
    pub launch: LaunchData,
    pub staff: Arc<StaffRoles>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Launch data as Telegram signs it, for `bot_token`.
    pub fn signed(bot_token: &str, fields: &[(&str, &str)]) -> String {
        let key = hmac(b"WebAppData", bot_token.as_bytes());
        let mut sorted: Vec<_> = fields.to_vec();
        sorted.sort();
        let check = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n");
        let mut pairs: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        pairs.push(("hash".into(), hex(&hmac(&key, check.as_bytes()))));
        serde_urlencoded::to_string(&pairs).unwrap()
    }

    #[test]
    fn launch_data_signs_in_only_as_telegram_signed_it_and_while_fresh() {
        let sign_in = LaunchData::new(&Secret::new("123456:TEST-TOKEN"));
        let now = Utc::now();
        let fresh = now.timestamp().to_string();
        let user = r#"{"id":5001,"first_name":"Ada"}"#;
        let data = signed("123456:TEST-TOKEN", &[("auth_date", &fresh), ("query_id", "q1"), ("user", user)]);
        assert_eq!(sign_in.verify(&data, now), Ok(5001));

        let other_bot = signed("654321:OTHER", &[("auth_date", &fresh), ("user", user)]);
        assert_eq!(sign_in.verify(&other_bot, now), Err(Refused::Signature));
        let tampered = data.replace("5001", "5002");
        assert_eq!(sign_in.verify(&tampered, now), Err(Refused::Signature));
        assert_eq!(sign_in.verify("user=%7B%22id%22%3A1%7D", now), Err(Refused::Signature), "no hash");
        let old = (now - Duration::minutes(LAUNCH_DATA_MINUTES)).timestamp().to_string();
        let stale = signed("123456:TEST-TOKEN", &[("auth_date", &old), ("user", user)]);
        assert_eq!(sign_in.verify(&stale, now), Err(Refused::Stale));
        let nobody = signed("123456:TEST-TOKEN", &[("auth_date", &fresh)]);
        assert_eq!(sign_in.verify(&nobody, now), Err(Refused::NoUser));
    }
}
