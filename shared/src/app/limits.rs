//! Abuse limits: failed `/start` attempts per Telegram account and per token, and fresh invites
//! per account, in one-hour windows.
//! Past a limit the bot stays silent until the window passes; the account a token is bound to is
//! never locked out of it by strangers failing on it.

use super::{Admission, AppError, hour_window};
use crate::domain::{AccessToken, TelegramUserId};

impl Admission {
    pub(crate) async fn start_is_silenced(&self, account: TelegramUserId, raw_token: &str) -> Result<bool, AppError> {
        let now = self.clock.now();
        let (window, _) = hour_window(now);
        let limits = self.settings.limits;
        if self.limits.hits(&format!("start-fail:{account}:{window}"), now).await? >= limits.start_failures_per_account
        {
            return Ok(true);
        }
        // Each fresh invite costs four Bot API calls: one account may not spend the bot's rate.
        if self.limits.hits(&format!("start-invite:{account}:{window}"), now).await? >= limits.invites_per_account {
            return Ok(true);
        }
        let Ok(token) = AccessToken::parse(raw_token) else { return Ok(false) };
        let hash = token.hash();
        if self.limits.hits(&format!("token-fail:{}:{window}", hash.as_str()), now).await?
            < limits.start_failures_per_token
        {
            return Ok(false);
        }
        let owner = self.access.token(&hash).await?.and_then(|t| t.telegram_user_id);
        Ok(owner != Some(account))
    }

    pub(crate) async fn count_start_failure(&self, account: TelegramUserId, raw_token: &str) -> Result<(), AppError> {
        let (window, until) = hour_window(self.clock.now());
        self.limits.hit(&format!("start-fail:{account}:{window}"), until).await?;
        if let Ok(token) = AccessToken::parse(raw_token) {
            self.limits.hit(&format!("token-fail:{}:{window}", token.hash().as_str()), until).await?;
        }
        Ok(())
    }

    /// One more fresh invite sent to `account` this hour.
    pub(crate) async fn count_invite(&self, account: TelegramUserId) -> Result<(), AppError> {
        let (window, until) = hour_window(self.clock.now());
        self.limits.hit(&format!("start-invite:{account}:{window}"), until).await?;
        Ok(())
    }
}
