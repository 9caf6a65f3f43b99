//! What both stores write the same way: times, and the names of the counters' time buckets.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// Fixed-width UTC timestamps, so that text order is time order (SQLite columns, DynamoDB sort keys).
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(raw: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc))
}

/// Tokens issued per hour: "recent" sums the last 24 buckets, whatever the size of the table.
pub(crate) fn hour_bucket(at: DateTime<Utc>) -> String {
    format!("tokens.issued.h{}", at.format("%Y%m%d%H"))
}

/// Memberships started per day: "recent joins" sums the last 7 buckets.
pub(crate) fn day_bucket(at: DateTime<Utc>) -> String {
    format!("members.joined.d{}", at.format("%Y%m%d"))
}

/// The buckets that `tokens_recent` (24 hours) and `members_recent_joins` (7 days) add up at `now`.
pub(crate) fn recent_buckets(now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
    let hours = (0..24).map(|h| hour_bucket(now - Duration::hours(h))).collect();
    let days = (0..7).map(|d| day_bucket(now - Duration::days(d))).collect();
    (hours, days)
}
