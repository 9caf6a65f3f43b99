use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppError;
use crate::auth::Caller;
use crate::config::Settings;
use crate::domain::{Lang, MembershipStatus, TelegramUserId, texts};
use crate::ports::{AccessStore, Clock};

#[derive(Debug, Serialize)]
pub struct MembershipView {
    pub channel_name: String,
    pub subscription_type: String,
    pub status: MembershipStatus,
    pub joined_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub is_active: bool,
    pub days_remaining: i64,
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub memberships: Vec<MembershipView>,
    pub telegram_username: Option<String>,
    pub has_active_subscription: bool,
}

/// What a subscriber sees of their subscription, on the web and in the bot.
#[derive(Clone)]
pub struct Status {
    pub(crate) access: Arc<dyn AccessStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Arc<Settings>,
}

impl Status {
    pub async fn status(&self, caller: &Caller) -> Result<StatusView, AppError> {
        let now = self.clock.now();
        let memberships = self.access.memberships_of(&caller.user_id).await?;
        let telegram_username = memberships.iter().find_map(|m| m.telegram_username.clone());
        let views: Vec<MembershipView> = memberships
            .iter()
            .map(|m| MembershipView {
                channel_name: self.settings.channel_name.clone(),
                subscription_type: m.offer_name.clone(),
                status: m.status,
                joined_at: m.joined_at,
                expires_at: m.expires_at,
                is_active: m.is_active(now),
                days_remaining: m.days_remaining(now),
            })
            .collect();
        let has_active_subscription = views.iter().any(|v| v.is_active);
        Ok(StatusView { memberships: views, telegram_username, has_active_subscription })
    }

    /// `/status` in the bot: this Telegram account's subscription.
    pub(crate) async fn status_text(&self, account: TelegramUserId, lang: Lang) -> Result<String, AppError> {
        let now = self.clock.now();
        Ok(match self.access.current_membership(account).await? {
            Some(m) if m.is_active(now) => {
                texts::status_active(lang, &m.offer_name, m.expires_at.unwrap_or(now), m.days_remaining(now))
            }
            Some(m) if m.status == MembershipStatus::Pending => texts::status_pending(lang),
            _ => texts::status_none(lang),
        })
    }
}
