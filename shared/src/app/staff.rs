//! Who has a console role among Telegram accounts: the channel's administrators (read from
//! Telegram, trusted a few minutes) and `ADMIN_TELEGRAM_IDS` as admins, `SUPPORT_TELEGRAM_IDS`
//! as support. One answer for the bot's `/admin` and the console's sign-in inside Telegram.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use super::AppError;
use crate::auth::{Role, Staff};
use crate::ports::{Clock, Telegram};

/// How long the channel's administrators are trusted as read: a `/admin` typed over and over
/// costs Telegram one call in that time.
const ADMINISTRATORS_MINUTES: i64 = 5;

pub struct StaffRoles {
    pub(crate) staff: Staff,
    pub(crate) telegram: Arc<dyn Telegram>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) administrators: Mutex<Option<(DateTime<Utc>, Vec<i64>)>>,
}

impl StaffRoles {
    /// The console role of a Telegram account, if it has one.
    pub async fn role_of(&self, account: i64) -> Result<Option<Role>, AppError> {
        Ok(self.staff.role(account, &self.channel_administrators().await?))
    }

    async fn channel_administrators(&self) -> Result<Vec<i64>, AppError> {
        let now = self.clock.now();
        let cached = self.administrators.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((_, ids)) = cached.filter(|(at, _)| now - *at < Duration::minutes(ADMINISTRATORS_MINUTES)) {
            return Ok(ids);
        }
        let ids: Vec<i64> = self.telegram.administrators().await?.into_iter().map(|a| a.get()).collect();
        *self.administrators.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, ids.clone()));
        Ok(ids)
    }
}
