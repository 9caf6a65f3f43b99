//! The statistics: counters kept in the same writes as the events they count, so that reading
//! them costs the same at any size (a store role, in the `Store` union).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// Counters kept up to date as events happen, so that reading them costs the same at any size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub tokens_total: i64,
    pub tokens_pending: i64,
    pub tokens_used: i64,
    /// Tokens issued in the 24 hours before `now` (hourly buckets).
    pub tokens_recent: i64,
    pub invites_total: i64,
    pub invites_accepted: i64,
    pub members_total: i64,
    pub members_active: i64,
    /// Memberships started in the 7 days before `now` (daily buckets).
    pub members_recent_joins: i64,
    /// Suspicious access attempts in the 24 hours before `now` (hourly buckets): `/start` with a
    /// token refused, join requests declined, strangers removed from the channel.
    pub refused_tokens_recent: i64,
    pub declined_joins_recent: i64,
    pub removed_strangers_recent: i64,
    /// The same, hour by hour: this hour first, then the 23 before.
    pub attempts_by_hour: Vec<HourAttempts>,
    /// Members active: this month's now, then for each of the eleven months before as the daily
    /// expiry run last saw it in that month (0 before there were any).
    pub members_active_by_month: Vec<MonthActive>,
    pub web: WebCounters,
    pub stars: StarsCounters,
}

/// Payments validated by support, at their offer's web price (`price_cents`), from counters kept
/// in the writes that validate them; refunds an admin recorded (the money went back where it was
/// paid), by the month recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WebCounters {
    pub revenue_total_cents: i64,
    pub refunded_total_cents: i64,
    pub net_total_cents: i64,
    /// This month first, then the eleven before.
    pub months: Vec<WebMonth>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WebMonth {
    /// `YYYY-MM`, UTC: the month validated.
    pub month: String,
    pub revenue_cents: i64,
    pub refunded_cents: i64,
    pub net_cents: i64,
    pub payments: i64,
}

/// The members active in a month.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MonthActive {
    /// `YYYY-MM`, UTC.
    pub month: String,
    pub active: i64,
}

/// The suspicious access attempts of one hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HourAttempts {
    /// `YYYY-MM-DDTHH`, UTC.
    pub hour: String,
    pub refused_tokens: i64,
    pub declined_joins: i64,
    pub removed_strangers: i64,
}

impl HourAttempts {
    pub fn total(&self) -> i64 {
        self.refused_tokens + self.declined_joins + self.removed_strangers
    }
}

/// Payments in Telegram Stars, from counters kept in the writes that record them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StarsCounters {
    /// Gross: every Star paid.
    pub revenue_total: i64,
    /// Stars given back (counted when Telegram confirmed the refund).
    pub refunded_total: i64,
    /// Gross less refunded.
    pub net_total: i64,
    /// Subscriptions that paid in the last 30 days (each pays once per 30 days while it runs).
    pub active_subscriptions: i64,
    /// This month first, then the eleven before.
    pub months: Vec<StarsMonth>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StarsMonth {
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// Gross, by the month paid.
    pub revenue: i64,
    /// Given back, by the month refunded.
    pub refunded: i64,
    pub net: i64,
    pub payments: i64,
    pub new_subscriptions: i64,
    pub renewals: i64,
    /// Subscriptions whose access ended unrenewed (the churn).
    pub lapsed: i64,
}

/// A suspicious access attempt, counted per hour (the guide's "monitor fraudulent access attempts").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// `/start` with a token that is unknown, expired, foreign or of another payer.
    RefusedToken,
    /// A join request with a link that is not the requester's.
    DeclinedJoin,
    /// Someone in the channel without an active membership, removed.
    RemovedStranger,
}

impl Attempt {
    pub const ALL: [Attempt; 3] = [Attempt::RefusedToken, Attempt::DeclinedJoin, Attempt::RemovedStranger];
    pub fn name(self) -> &'static str {
        match self {
            Self::RefusedToken => "refused_token",
            Self::DeclinedJoin => "declined_join",
            Self::RemovedStranger => "removed_stranger",
        }
    }
}

/// The statistics, read from counters kept in the same writes as the events they count.
#[async_trait]
pub trait Stats: Send + Sync {
    async fn counters(&self, now: DateTime<Utc>) -> Result<Counters, StoreError>;
    /// Counts one attempt in the hour of `at` (kept a little over a day).
    async fn count_attempt(&self, attempt: Attempt, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Keeps the number of members active now as the figure of the month of `at` (the daily
    /// expiry run does, after removing the members whose access ended).
    async fn record_active_members(&self, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Counts a Stars subscription that lapsed, in the month of `at`.
    async fn count_lapse(&self, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// A Stars subscription whose period paid for ends at `end` stops (`-1`: cancelled or failed)
    /// or starts again (`1`: re-enabled) counting among the active ones.
    async fn count_subscription(&self, end: DateTime<Utc>, delta: i64) -> Result<(), StoreError>;
}
