//! What the sweep and expiry benchmarks share (each uses its part).
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{Duration, Utc};
use telegate_core::domain::TelegramUserId;
use telegate_core::ports::{
    Envelope, Imported, InviteRequest, LinkButton, Presence, Queue, QueueError, Telegram, TelegramError,
};

/// The sweep only queues effects; the queue counts them.
#[derive(Default)]
pub struct CountingQueue(pub AtomicUsize);

#[async_trait]
impl Queue for CountingQueue {
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), QueueError> {
        self.0.fetch_add(envelopes.len(), Ordering::Relaxed);
        Ok(())
    }
}

/// `n` active members with a validated payment each; the first `due` ended an hour ago, the rest
/// end within 60 days.
pub fn records(n: usize, due: usize) -> Vec<Imported> {
    let now = Utc::now();
    let mut out = Vec::with_capacity(2 * n);
    for i in 0..n {
        let started = now - Duration::days(20);
        let end =
            if i < due { now - Duration::hours(1) } else { now + Duration::minutes(60 + (i as i64 * 7919) % 86_400) };
        let account = 1_000_000 + i as i64;
        out.extend(telegate_testkit::samples::paid_member(
            &format!("u{i}"),
            account,
            &format!("TX-BENCH-{i}"),
            started,
            end,
        ));
    }
    out
}

/// The sweep makes no Bot API call of its own (removals are queued): every call succeeds, and
/// nobody is in the channel.
pub struct NoTelegram;

#[async_trait]
impl Telegram for NoTelegram {
    async fn send_message(&self, _: i64, _: &str, _: &[LinkButton]) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn create_invite(&self, _: &InviteRequest) -> Result<String, TelegramError> {
        Ok(String::new())
    }
    async fn revoke_invite(&self, _: &str) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn unban(&self, _: TelegramUserId, _: bool) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn ban(&self, _: TelegramUserId) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn approve_join_request(&self, _: TelegramUserId) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn decline_join_request(&self, _: TelegramUserId) -> Result<(), TelegramError> {
        Ok(())
    }
    async fn presence(&self, _: TelegramUserId) -> Result<Presence, TelegramError> {
        Ok(Presence::Out)
    }
    async fn administrators(&self) -> Result<Vec<TelegramUserId>, TelegramError> {
        Ok(Vec::new())
    }
}
