//! The pace of Bot API calls: in one process (`LocalPace`), or shared by every function through
//! the table (`dynamodb::DynamoPace`); and the Telegram port that keeps to it (`PacedTelegram`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::domain::TelegramUserId;
use crate::ports::{InviteRequest, LinkButton, Pace, Presence, StarInvoice, StarPage, Telegram, TelegramError};

/// Turns `1 / per_second` apart, taken in the order asked, in this process.
pub struct LocalPace {
    every: Duration,
    next: Mutex<SystemTime>,
}

impl LocalPace {
    pub fn new(per_second: u32) -> Self {
        Self { every: every(per_second), next: Mutex::new(SystemTime::UNIX_EPOCH) }
    }

    /// The turns that start at `now` or later.
    pub(crate) fn reserve_at(&self, calls: u32, now: SystemTime) -> SystemTime {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let first = (*next).max(now);
        *next = first + self.every * calls;
        first
    }
}

#[async_trait]
impl Pace for LocalPace {
    async fn reserve(&self, calls: u32) -> SystemTime {
        self.reserve_at(calls, SystemTime::now())
    }
}

/// The time between two turns at `per_second` calls a second.
pub fn every(per_second: u32) -> Duration {
    Duration::from_secs(1) / per_second.max(1)
}

/// The Bot API, each call that acts or sends taking its turn from `pace` first. Reads
/// (`getChatMember`, `getChatAdministrators`, `getStarTransactions`) go as they come:
/// reconciliation paces its own. So does `answerPreCheckoutQuery`: Telegram waits 10 s for it.
pub struct PacedTelegram {
    inner: Arc<dyn Telegram>,
    pace: Arc<dyn Pace>,
}

impl PacedTelegram {
    pub fn new(inner: Arc<dyn Telegram>, pace: Arc<dyn Pace>) -> Self {
        Self { inner, pace }
    }

    async fn turn(&self) {
        let start = self.pace.reserve(1).await;
        if let Ok(wait) = start.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl Telegram for PacedTelegram {
    async fn send_message(&self, chat_id: i64, text: &str, buttons: &[LinkButton]) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.send_message(chat_id, text, buttons).await
    }
    async fn create_invite(&self, request: &InviteRequest) -> Result<String, TelegramError> {
        self.turn().await;
        self.inner.create_invite(request).await
    }
    async fn revoke_invite(&self, link: &str) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.revoke_invite(link).await
    }
    async fn unban(&self, user: TelegramUserId, only_if_banned: bool) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.unban(user, only_if_banned).await
    }
    async fn ban(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.ban(user).await
    }
    async fn approve_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.approve_join_request(user).await
    }
    async fn decline_join_request(&self, user: TelegramUserId) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.decline_join_request(user).await
    }
    async fn presence(&self, user: TelegramUserId) -> Result<Presence, TelegramError> {
        self.inner.presence(user).await
    }
    async fn administrators(&self) -> Result<Vec<TelegramUserId>, TelegramError> {
        self.inner.administrators().await
    }
    async fn create_invoice_link(&self, invoice: &StarInvoice) -> Result<String, TelegramError> {
        self.turn().await;
        self.inner.create_invoice_link(invoice).await
    }
    async fn answer_pre_checkout(&self, query_id: &str, refusal: Option<&str>) -> Result<(), TelegramError> {
        self.inner.answer_pre_checkout(query_id, refusal).await
    }
    async fn refund_stars(&self, user: TelegramUserId, charge_id: &str) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.refund_stars(user, charge_id).await
    }
    async fn cancel_subscription(
        &self,
        user: TelegramUserId,
        charge_id: &str,
        cancel: bool,
    ) -> Result<(), TelegramError> {
        self.turn().await;
        self.inner.cancel_subscription(user, charge_id, cancel).await
    }
    async fn star_payments(&self, offset: u32, limit: u32) -> Result<StarPage, TelegramError> {
        self.inner.star_payments(offset, limit).await
    }
    async fn channel_health(&self) -> Result<crate::ports::ChannelHealth, TelegramError> {
        self.turn().await;
        self.inner.channel_health().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::LocalPace;

    #[test]
    fn turns_are_spaced_evenly_and_an_idle_pace_starts_now() {
        let pace = LocalPace::new(10);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(pace.reserve_at(1, t0), t0); // the first call goes at once
        assert_eq!(pace.reserve_at(2, t0), t0 + Duration::from_millis(100)); // two calls in a row
        assert_eq!(pace.reserve_at(1, t0), t0 + Duration::from_millis(300));
        // Idle for a while: no credit saved up, the next turn is now.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(pace.reserve_at(1, later), later);
        assert_eq!(pace.reserve_at(1, later), later + Duration::from_millis(100));
    }
}
